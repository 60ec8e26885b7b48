"""`make demo`: from a fresh clone to the page in front of a running TorchServe, in one command.

Checkpoints come from runs/ when every net has one, else from committed weights/, else a smoke
training run (`make train-all PROFILE=smoke`, minutes on a CPU; the page then flags the nets as
barely trained). Then `make export archive serve`, the two URLs, and the page in the foreground as
its own process (`python -m gradio_ui`, which imports neither torch nor `training`). Ctrl-C (or any
failure after the server started) stops both: the page, then `make stop`.

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
from pathlib import Path

from cifarlens_runtime.constants import DEFAULT_WORKDIR, HOST, KEY_FILE, UI_PORT, Ports, url

CHECKPOINT = "best.pt"
UI_STOP_TIMEOUT_S = 10


def _models() -> list[str]:
    from training.models import list_models

    return list_models()


def checkpoint_source(runs: Path, weights: Path, models: Sequence[str]) -> tuple[str, Path | None]:
    """Where the demo's checkpoints come from: ('runs', runs), ('weights', folder) or ('train', None).

    Committed weights may be laid out as weights/<model>/best.pt or weights/<model>.pt; the second
    layout is copied into runs/<model>/best.pt, which the exporter reads.
    """
    if all((runs / m / CHECKPOINT).is_file() for m in models):
        return "runs", runs
    if all((weights / m / CHECKPOINT).is_file() for m in models):
        return "weights", weights
    if all((weights / f"{m}.pt").is_file() for m in models):
        for m in models:
            if not (runs / m / CHECKPOINT).is_file():
                (runs / m).mkdir(parents=True, exist_ok=True)
                shutil.copy2(weights / f"{m}.pt", runs / m / CHECKPOINT)
        return "weights", runs
    return "train", None


def _make(make: str, *args: str) -> None:
    cmd = [*make.split(), "--no-print-directory", *args]
    print(f"+ {' '.join(cmd)}", flush=True)
    subprocess.run(cmd, check=True)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gradio_ui.demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--make", default=os.environ.get("MAKE", "make"), help="the make to call targets with")
    parser.add_argument("--runs", default="runs")
    parser.add_argument("--weights", default="weights", help="committed checkpoints, used when runs/ has none")
    parser.add_argument("--artifacts", default="artifacts")
    parser.add_argument("--url", default=url(Ports.inference), help="TorchServe inference URL of `make serve`")
    parser.add_argument("--management-url", default=url(Ports.management))
    parser.add_argument("--key-file", default=str(DEFAULT_WORKDIR / KEY_FILE), help="key_file.json of `make serve`")
    parser.add_argument("--host", default=HOST)
    parser.add_argument("--port", type=int, default=UI_PORT)
    parser.add_argument("--dry-run", action="store_true", help="only say where the checkpoints come from")
    args = parser.parse_args(argv)

    # Ctrl-C and SIGTERM both end in the `finally` below, even where the caller started us with SIGINT ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupt)
    runs = Path(args.runs)
    source, folder = checkpoint_source(runs, Path(args.weights), _models())
    print(f"checkpoints: {source}" + (f" ({folder})" if folder else " (none yet: smoke training)"), flush=True)
    if args.dry_run:
        return 0
    if source == "train":
        print("No checkpoints under runs/ and no weights/: training every net with PROFILE=smoke (barely trained).")
        train_args = os.environ.get("TRAIN_ARGS", "")
        if "--out-dir" not in train_args:
            train_args = f"{train_args} --out-dir {runs}".strip()
        _make(args.make, "train-all", "PROFILE=smoke", f"TRAIN_ARGS={train_args}")
        folder = runs
    _make(args.make, "export", f"RUNS_DIR={folder}", f"ARTIFACTS_DIR={args.artifacts}")
    _make(args.make, "archive", f"ARTIFACTS_DIR={args.artifacts}")
    _make(args.make, "serve")
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
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # before the server started: nothing to stop
        sys.exit(130)
