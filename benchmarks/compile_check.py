"""Does torch.compile pay for a training run? Eager against compiled training steps of each net.

Same batch, bf16 autocast where the device has it, channels_last; reports the compile time (the
first steps) and the steady images/s after it. A run of N seconds gains from compiling only when
N x (1 - eager/compiled) exceeds the compile time. Writes `<out>/compile_check.json`.

    python -m benchmarks.compile_check --out DIR [--models se_net] [--steps 30] [--batch-size 512]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from training.device import autocast, describe_device, resolve_device
from training.engine import compute_loss
from training.models import create_model, list_models


def steps_per_second(model: nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int, device: torch.device) -> float:
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, nesterov=True)
    criterion = nn.CrossEntropyLoss(label_smoothing=0.2)

    def step() -> None:
        with autocast(device):
            loss, _ = compute_loss(model(x), y, criterion)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True)
    parser.add_argument("--models", nargs="+", default=["se_net", "plain_cnn"], choices=list_models())
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=512)
    args = parser.parse_args()
    device = resolve_device("auto")
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    result: dict[str, Any] = {"device": describe_device(device), "torch": torch.__version__, "models": {}}
    out = Path(args.out) / "compile_check.json"
    for name in args.models:
        x = torch.randn(args.batch_size, 3, 32, 32, device=device).contiguous(memory_format=torch.channels_last)
        y = torch.randint(0, 10, (args.batch_size,), device=device)
        model = create_model(name).to(device).to(memory_format=torch.channels_last).train()
        eager = steps_per_second(model, x, y, args.steps, device)
        start = time.perf_counter()
        compiled = torch.compile(model)
        steps_per_second(compiled, x, y, 1, device)  # the compile happens in the first step
        compile_seconds = time.perf_counter() - start
        fast = steps_per_second(compiled, x, y, args.steps, device)
        row = {
            "eager_images_per_second": round(eager * args.batch_size),
            "compiled_images_per_second": round(fast * args.batch_size),
            "speedup": round(fast / eager, 3),
            "compile_seconds": round(compile_seconds, 1),
        }
        gain = 1 - eager / fast
        row["break_even_run_seconds"] = round(compile_seconds / gain, 1) if gain > 0 else None
        result["models"][name] = row
        print(name, row, flush=True)
        out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
