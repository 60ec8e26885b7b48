"""Does `torch.compile` pay for training on this CPU? Eager against compiled, per net, in one interleaved run.

Each net as the CPU recipe builds it (training.config.recipe, profile `cpu`), batch 128, bf16 autocast
where the CPU has native bf16 (AMX or AVX512_BF16; whether the recipe then uses it, after its probe, is
`recipe_precision`), the recipe's thread count. Variants, measured in turn within each round,
in an order that changes by the rule of benchmarks.rounds (so a change in load hits all of them): eager
channels_last (the recipe), compiled channels_last, eager NCHW, and eager channels_last at batch 256; where
the recipe trains in bf16, eager and compiled in fp32 too (does bf16 pay on this CPU?). The
compiled net's first step is its compile time; a run of N seconds gains from compiling when
N x (1 - eager/compiled) exceeds it (the break-even below).
Training FLOPs per image are counted on a real training step (forward with the auxiliary heads, loss,
backward) by torch.utils.flop_counter, so GFLOP/s is what the step achieved, not an estimate.
Synthetic batches: this measures the net, not the data pipeline (benchmarks/train_cpu.py, naive against the
project's loader, covers that, in train_cpu_naive.{json,md}).

    python -m benchmarks.train_compile [--models se_net] [--rounds 2] [--seconds 12] [--out DIR] [--force]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from benchmarks.common import RESULTS, check_quiet, finish, machine, markdown_table, median_of, write_results
from benchmarks.rounds import run_rounds
from training.config import recipe
from training.device import cpu_bf16, precision, resolve_device
from training.engine import compute_loss
from training.models import create_model, list_models

BATCH = 128
# variant: (compiled, channels_last, batch, bf16 as the recipe says); the fp32 ones only where the recipe uses bf16
VARIANTS: dict[str, tuple[bool, bool, int, bool]] = {
    "eager": (False, True, BATCH, True),
    "compiled": (True, True, BATCH, True),
    "eager_nchw": (False, False, BATCH, True),
    "eager_b256": (False, True, 2 * BATCH, True),
    "eager_fp32": (False, True, BATCH, False),
    "compiled_fp32": (True, True, BATCH, False),
}
FP32_ONLY = ("eager_fp32", "compiled_fp32")
# Columns of the fp32 comparison, shown where a row has them (a CPU with native bf16, a file written since)
OPTIONAL_COLUMNS = ("eager_fp32_img_s", "compiled_fp32_img_s", "compile_fp32_seconds", "bf16_speedup",
                    "compiled_bf16_speedup", "recipe_precision")  # fmt: skip
WEIGHTS = Path(__file__).resolve().parents[1] / "weights"


def training_step(model: nn.Module, batch: int, channels_last: bool, device: torch.device, bf16: bool) -> Callable:
    """One SGD step of `model` on a fixed synthetic batch (what the recipe's step does, minus the data)."""
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    x = torch.randn(batch, 3, 32, 32, device=device).contiguous(memory_format=fmt)
    y = torch.randint(0, 10, (batch,), device=device)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, nesterov=True)
    criterion = nn.CrossEntropyLoss(label_smoothing=0.2)

    def step() -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            loss, _ = compute_loss(model(x), y, criterion)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def images_per_second(step: Callable, batch: int, seconds: float, min_steps: int = 3) -> float:
    """Steps run for at least `seconds` (and `min_steps`), after one untimed step."""
    step()
    n, start = 0, time.perf_counter()
    while n < min_steps or time.perf_counter() - start < seconds:
        step()
        n += 1
    return n * batch / (time.perf_counter() - start)


def training_gflop_per_image(name: str, kwargs: dict[str, Any]) -> float:
    """FLOPs of one training step per image (forward incl. auxiliary heads, loss, backward), counted."""
    from torch.utils.flop_counter import FlopCounterMode

    model = create_model(name, **kwargs).train()
    step = training_step(model, 4, False, torch.device("cpu"), bf16=False)
    with FlopCounterMode(display=False) as counter:
        step()
    return counter.get_total_flops() / 4 / 1e9


def shipped_kwargs(name: str) -> dict[str, Any]:
    """The constructor arguments of the shipped net (weights/<name>/config.json), for its training FLOPs."""
    path = WEIGHTS / name / "config.json"
    return json.loads(path.read_text()).get("model_kwargs", {}) if path.is_file() else {}


def variants_for(bf16: bool) -> list[str]:
    """The variants worth measuring: the fp32 pair says something only where the recipe trains in bf16."""
    return [v for v in VARIANTS if bf16 or v not in FP32_ONLY]


def build_variants(name: str, kwargs: dict[str, Any], device: torch.device, bf16: bool) -> dict[str, Callable]:
    """The variants' step functions; each its own freshly built net, seeded alike."""
    steps = {}
    for variant in variants_for(bf16):
        compiled, cl, batch, in_bf16 = VARIANTS[variant]
        torch.manual_seed(0)
        model = create_model(name, **kwargs).to(device)
        if cl:
            model = model.to(memory_format=torch.channels_last)
        if compiled:
            model = torch.compile(model)
        steps[variant] = training_step(model, batch, cl, device, bf16 and in_bf16)
    return steps


def compile_seconds(steps: dict[str, Callable]) -> dict[str, float]:
    """Each compiled variant's first step, which is where it compiles."""
    out = {}
    for variant in (v for v in steps if VARIANTS[v][0]):
        start = time.perf_counter()
        steps[variant]()
        out[variant] = round(time.perf_counter() - start, 1)
    return out


def measure_net(name: str, args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    """Interleaved rounds of the variants of one net (benchmarks.rounds); medians over rounds, compile time
    once."""
    cfg = recipe(name, "cpu")
    native = device.type == "cuda" or cpu_bf16() is not None
    steps = build_variants(name, cfg.model_kwargs, device, native)
    compiles = compile_seconds(steps)
    names = list(steps)

    def measure(variant: str, r: int) -> float:
        img_s = images_per_second(steps[variant], VARIANTS[variant][2], args.seconds)
        print(f"{name} round {r + 1} {variant}: {img_s:.1f} img/s", flush=True)
        return img_s

    rounds = dict(zip(names, run_rounds(names, args.rounds, measure, label=f"{name}: round"), strict=True))
    med = {v: median_of(rounds[v]) for v in names}
    gflop = training_gflop_per_image(name, cfg.model_kwargs)
    gain = 1 - med["eager"] / med["compiled"]
    row = {
        "model": name, "model_kwargs": cfg.model_kwargs, "precision": "bf16-autocast" if native else "fp32",
        "recipe_precision": precision(device, cfg.amp),
        **{f"{v}_img_s": round(med[v], 1) for v in names}, "rounds_img_s": rounds,
        "speedup": round(med["compiled"] / med["eager"], 3), "compile_seconds": compiles["compiled"],
        "break_even_seconds": round(compiles["compiled"] / gain) if gain > 0 else None,
        "train_gflop_per_image": round(gflop, 3),
        "eager_gflop_s": round(med["eager"] * gflop, 1), "compiled_gflop_s": round(med["compiled"] * gflop, 1),
        "shipped_train_gflop_per_image": round(training_gflop_per_image(name, shipped_kwargs(name)), 3),
    }  # fmt: skip
    if "eager_fp32" in med:  # bf16 against fp32, eager and compiled: above 1, bf16 pays here
        row["bf16_speedup"] = round(med["eager"] / med["eager_fp32"], 3)
        row["compiled_bf16_speedup"] = round(med["compiled"] / med["compiled_fp32"], 3)
        row["compile_fp32_seconds"] = compiles["compiled_fp32"]
    return row


def render(payload: dict[str, Any]) -> str:
    """The Markdown table and what it means for the recipes."""
    cols = ["model", "precision", "eager_img_s", "compiled_img_s", "speedup", "compile_seconds",
            "break_even_seconds", "eager_nchw_img_s", "eager_b256_img_s", "train_gflop_per_image",
            "eager_gflop_s", "compiled_gflop_s"]  # fmt: skip
    at = cols.index("eager_nchw_img_s")
    cols[at:at] = [c for c in OPTIONAL_COLUMNS if any(c in r for r in payload["results"])]
    fp32 = (
        "`*_fp32`: without bf16 autocast (`bf16_speedup`: eager bf16 over eager fp32; `compiled_bf16_speedup`: the "
        "same compiled; `recipe_precision`: what training picks here, after training.device's bf16 probe), "
        if "eager_fp32_img_s" in cols
        else ""
    )
    s = payload["settings"]
    return "\n".join([
        "# Training on the CPU: eager against `torch.compile`",
        "",
        markdown_table(payload["results"], cols),
        "",
        f"Training steps per second on synthetic batches, {s['rounds']} interleaved rounds of at least "
        f"{s['seconds']:.0f} s per variant, medians; the CPU recipe's nets (profile `cpu`), batch {BATCH} "
        "(`eager_b256`: 256), channels_last (`eager_nchw`: not), "
        f"{fp32}{payload['threads']} threads. `break_even_seconds`: the run length above which compiling pays. "
        "GFLOP/s from the FLOPs of a training step counted by torch.utils.flop_counter; "
        "`shipped_train_gflop_per_image`: the same count for the shipped nets as built (weights/*/config.json).",
        *(["", payload["note"]] if payload.get("note") else []),  # what a person read in the numbers, kept
    ])  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=list_models(), choices=list_models())
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=12.0, help="timed seconds per variant and round")
    parser.add_argument("--name", default="train_cpu")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--force", action="store_true", help="write the committed results from a busy machine")
    args = parser.parse_args()
    info = machine()
    check_quiet(args.out, args.force, info)
    device = resolve_device("cpu")
    threads = recipe(list_models()[0], "cpu").threads or os.cpu_count()
    torch.set_num_threads(threads)
    rows = [measure_net(name, args, device) for name in args.models]
    payload = {"machine": finish(info), "settings": {k: str(v) if isinstance(v, Path) else v
               for k, v in vars(args).items()}, "threads": threads, "results": rows}  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    for path in write_results(args.name, payload, render(payload), args.out):
        print(path)


if __name__ == "__main__":
    main()
