"""TrainConfig as command-line options: one `--option` per field, with its help, allowed values and what
each profile sets it to; `--config FILE` replays a saved config.json under the options given beside it."""

from __future__ import annotations

import argparse
import json
import types
import typing
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

from training.config import (
    PLAN,
    RECIPES,
    RESUME_AUTO,
    TrainConfig,
    field_default,
    normalize_resume,
    recipe,
    validate,
)

# Fields a replayed config.json does not carry over: they say what one invocation does, not the run.
NOT_REPLAYED = ("resume", "force_resume", "stop_after")


def _base_type(tp: Any) -> Any:
    """The non-None type of an annotation such as `str | None`."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return args[0]
    return tp


def _bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _show(value: Any) -> str:
    if value is None or value == "":
        return "unset" if value is None else "off"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (bool, dict)):
        return json.dumps(value)
    return str(value)


def _profile_value(profile: str, net: str, name: str) -> str:
    recipe_kw = RECIPES[profile][net]
    if name in PLAN and recipe_kw.get("time_budget"):
        return "by budget"
    return _show(recipe_kw.get(name, field_default(name)))


def profile_values(name: str) -> str:
    """What each profile sets field `name` to (per net where the nets differ), for `--help`."""
    per_profile = {}
    for profile, nets in RECIPES.items():
        values = {net: _profile_value(profile, net, name) for net in nets}
        if len(set(values.values())) == 1:
            per_profile[profile] = next(iter(values.values()))
        else:
            per_profile[profile] = ", ".join(f"{net} {v}" for net, v in values.items())
    if len(set(per_profile.values())) == 1:
        return f"default {next(iter(per_profile.values()))}"
    return "; ".join(f"{p}: {v}" for p, v in per_profile.items())


# argparse's name of an option's argument, by field type, where the field names none.
METAVARS = {int: "N", float: "X", str: "TEXT"}


def _option(f: Any, tp: Any) -> dict[str, Any]:
    """argparse keywords of one field: its type, allowed values and help (default: unset, so recipes fill it)."""
    help_text = f"{f.metadata.get('help', '')} [{profile_values(f.name)}]".replace("%", "%%")
    kw: dict[str, Any] = {"default": None, "help": help_text}
    if f.name == "resume":
        return kw | {"type": normalize_resume, "nargs": "?", "const": RESUME_AUTO, "metavar": "PATH|auto"}
    if tp is bool:
        return kw | {"type": _bool, "nargs": "?", "const": True, "metavar": "BOOL"}
    if typing.get_origin(tp) is dict or tp is dict:
        return kw | {"type": json.loads, "metavar": "JSON"}
    if f.metadata.get("choices"):
        return kw | {"type": tp, "choices": f.metadata["choices"]}
    return kw | {"type": tp, "metavar": f.metadata.get("metavar") or METAVARS.get(tp, "VALUE")}


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """One `--option` per TrainConfig field but `model` (the commands declare it themselves)."""
    hints = typing.get_type_hints(TrainConfig)
    group = parser.add_argument_group(
        "run options", "Each is unset by default: the profile's recipe fills it, with the values in brackets.\n"
        "--dry-run prints what a run will use.",
    )  # fmt: skip
    for f in fields(TrainConfig):
        if f.name != "model":
            group.add_argument("--" + f.name.replace("_", "-"), **_option(f, _base_type(hints[f.name])))


def given_options(args: argparse.Namespace) -> dict[str, Any]:
    """The TrainConfig fields given on the command line (all but `model`)."""
    return {f.name: getattr(args, f.name) for f in fields(TrainConfig)
            if f.name != "model" and getattr(args, f.name, None) is not None}  # fmt: skip


def load_config_file(path: str | Path) -> TrainConfig:
    """A saved config.json to replay: its recipe and paths, without what only its own invocation did
    (`NOT_REPLAYED`: it does not resume or stop early unless asked again)."""
    try:
        saved = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"--config {path}: {exc}") from None
    if not isinstance(saved, dict):
        raise ValueError(f"--config {path}: expected a JSON object of TrainConfig fields")
    return TrainConfig.from_dict({k: v for k, v in saved.items() if k not in NOT_REPLAYED})


def config_from_args(args: argparse.Namespace, model: str, profile: str) -> TrainConfig:
    """Recipe of `model` under `profile` (or the `--config` file when given), overridden by every option given."""
    overrides = given_options(args)
    if getattr(args, "config", None):
        cfg = replace(load_config_file(args.config), **overrides, **({"model": model} if model else {}))
    else:
        cfg = recipe(model, profile, **overrides)
    validate(cfg)
    return cfg
