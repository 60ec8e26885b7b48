"""`make demo`: from a fresh clone to the page in front of a running TorchServe, in one command.

Each net's checkpoint comes from runs/ only when that net is better there than in committed weights/
by the test accuracy both record in their own metrics.json (a runs/ net without one loses), and one
line per net says which was chosen and why. With no checkpoint anywhere, a smoke training run
(`make train-all PROFILE=smoke`, minutes on a CPU; the page then flags the nets as barely trained).
Then `make export archive serve`, the two URLs, and the page in the foreground as its own process
(`python -m gradio_ui`). This module imports neither torch nor `training` (it reads the metrics JSON
itself). Ctrl-C (or any failure after the server started) stops both: the page, then `make stop`.

The make targets are called through `make` so that their own variables (DATA_DIR, BACKEND, ports,
SERVE_WORKDIR, ...) given on the `make demo` command line reach them unchanged.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cifarlens_runtime.constants import CHECKPOINT_FILE, DEFAULT_WORKDIR, HOST, KEY_FILE, UI_PORT, Ports, url
from cifarlens_runtime.runs import recorded_metrics

# Where the chosen checkpoints are gathered (inside runs/) when they do not all come from one folder.
STAGE = ".demo"
UI_STOP_TIMEOUT_S = 10


@dataclass(frozen=True)
class Choice:
    """One net's checkpoint for the demo, and the line that says why it was chosen."""

    net: str
    checkpoint: Path
    why: str


def _checkpoint(folder: Path, net: str) -> Path | None:
    """`net`'s checkpoint in `folder`: <net>/best.pt, or <net>.pt (a flat layout of committed weights)."""
    for path in (folder / net / CHECKPOINT_FILE, folder / f"{net}.pt"):
        if path.is_file():
            return path
    return None


def _nets(folder: Path) -> list[str]:
    """The nets with a checkpoint in `folder`, by name."""
    if not folder.is_dir():
        return []
    names = {p.parent.name for p in folder.glob(f"*/{CHECKPOINT_FILE}")} | {p.stem for p in folder.glob("*.pt")}
    return sorted(n for n in names if not n.startswith("."))


def _shown(folder: Path, metrics: dict[str, Any]) -> str:
    """`runs/ (test 41.0 % on 200 images, 1 epoch)`: a candidate as the demo's choice line names it."""
    if not metrics:
        return f"{folder}/ (no recorded test accuracy)"
    images = metrics.get("test_images")
    facts = [f"test {100 * metrics['test_acc']:.1f} %" + (f" on {images} images" if images else "")]
    if isinstance(epochs := metrics.get("epochs"), int):
        facts.append(f"{epochs} epoch{'s' if epochs != 1 else ''}")
    return f"{folder}/ ({', '.join(facts)})"


def _pick(net: str, runs: Path, weights: Path) -> Choice:
    """`net` from runs/ only when its recorded test accuracy beats weights/'s; a runs/ net without one loses."""
    ours, shipped = _checkpoint(runs, net), _checkpoint(weights, net)
    if shipped is None and ours is not None:
        return Choice(net, ours, f"{net}: {_shown(runs, recorded_metrics(ours))}; none in {weights}/")
    if ours is None and shipped is not None:
        return Choice(net, shipped, f"{net}: {_shown(weights, recorded_metrics(shipped))}; none in {runs}/")
    assert ours is not None and shipped is not None, f"{net} has a checkpoint in neither folder"
    mine, theirs = recorded_metrics(ours), recorded_metrics(shipped)
    if mine and (not theirs or mine["test_acc"] > theirs["test_acc"]):
        return Choice(net, ours, f"{net}: {_shown(runs, mine)} over {_shown(weights, theirs)}")
    return Choice(net, shipped, f"{net}: {_shown(weights, theirs)} over {_shown(runs, mine)}")


def choose_checkpoints(runs: Path, weights: Path) -> list[Choice]:
    """Each net's checkpoint (see `_pick`). The nets are those of weights/ (the committed set), else those
    of runs/; [] means there is nothing to serve yet."""
    return [_pick(net, runs, weights) for net in _nets(weights) or _nets(runs)]


def checkpoint_folder(choices: Sequence[Choice], runs: Path) -> Path:
    """One folder with <net>/best.pt for every chosen net, as `make export` reads them: the folder they
    share when they come from one, else copies gathered in runs/.demo/."""
    parents = {c.checkpoint.parent.parent for c in choices}
    if len(parents) == 1 and all(c.checkpoint.name == CHECKPOINT_FILE for c in choices):
        return parents.pop()
    stage = runs / STAGE
    for c in choices:
        (stage / c.net).mkdir(parents=True, exist_ok=True)
        shutil.copy2(c.checkpoint, stage / c.net / CHECKPOINT_FILE)
    return stage


def _make(make: str, *args: str) -> None:
    cmd = [*make.split(), "--no-print-directory", *args]
    print(f"+ {' '.join(cmd)}", flush=True)
    subprocess.run(cmd, check=True)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m gradio_ui.demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--make", default=os.environ.get("MAKE", "make"), help="the make to call targets with")
    parser.add_argument("--runs", default="runs")
    parser.add_argument("--weights", default="weights", help="committed checkpoints, used unless runs/ has better")
    parser.add_argument("--artifacts", default="artifacts")
    parser.add_argument("--url", default=url(Ports.inference), help="TorchServe inference URL of `make serve`")
    parser.add_argument("--management-url", default=url(Ports.management))
    parser.add_argument("--key-file", default=str(DEFAULT_WORKDIR / KEY_FILE), help="key_file.json of `make serve`")
    parser.add_argument("--host", default=HOST)
    parser.add_argument("--port", type=int, default=UI_PORT)
    parser.add_argument("--dry-run", action="store_true", help="only say which checkpoints it would serve, and why")
    return parser


def _smoke_train(make: str, runs: Path) -> Path:
    """No checkpoint anywhere: train every net with PROFILE=smoke into runs/."""
    print("No checkpoints under runs/ and no weights/: training every net with PROFILE=smoke (barely trained).")
    train_args = os.environ.get("TRAIN_ARGS", "")
    if "--out-dir" not in train_args:
        train_args = f"{train_args} --out-dir {runs}".strip()
    _make(make, "train-all", "PROFILE=smoke", f"TRAIN_ARGS={train_args}")
    return runs


def _page(args: argparse.Namespace) -> None:
    """The two URLs, then the page in the foreground until it ends or Ctrl-C; TorchServe is stopped either way."""
    ui: subprocess.Popen | None = None
    try:
        print(
            "\n"
            f"  TorchServe REST:  {args.url}  (management {args.management_url}; token in {args.key_file})\n"
            f"  Inspection page:  http://{args.host}:{args.port}\n"
            "  Ctrl-C stops both.\n",
            flush=True,
        )
        ui = subprocess.Popen(
            [
                sys.executable, "-m", "gradio_ui", "--backend", "torchserve",
                "--url", args.url, "--management-url", args.management_url, "--key-file", args.key_file,
                "--artifacts", args.artifacts, "--host", args.host, "--port", str(args.port),
            ]
        )  # fmt: skip
        ui.wait()
    except KeyboardInterrupt:
        pass
    finally:
        # A second Ctrl-C must not leave TorchServe running.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if ui is not None and ui.poll() is None:
            ui.terminate()
            try:
                ui.wait(timeout=UI_STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                ui.kill()
                ui.wait()
        print("\nstopping TorchServe ...", flush=True)
        subprocess.run([*args.make.split(), "--no-print-directory", "stop"], check=False)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # Ctrl-C and SIGTERM both end in `_page`'s `finally`, even where the caller started us with SIGINT ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupt)
    runs = Path(args.runs)
    choices = choose_checkpoints(runs, Path(args.weights))
    for choice in choices:
        print(choice.why, flush=True)
    if not choices:
        print("checkpoints: none yet (smoke training)", flush=True)
    if args.dry_run:
        return 0
    folder = checkpoint_folder(choices, runs) if choices else _smoke_train(args.make, runs)
    print(f"checkpoints: {folder}", flush=True)
    _make(args.make, "export", f"RUNS_DIR={folder}", f"ARTIFACTS_DIR={args.artifacts}")
    _make(args.make, "archive", f"ARTIFACTS_DIR={args.artifacts}")
    _make(args.make, "serve")
    _page(args)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # before the server started: nothing to stop
        sys.exit(130)
