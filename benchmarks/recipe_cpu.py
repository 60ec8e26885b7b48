"""`make train-all PROFILE=cpu` (or `long`), timed as a user runs it, recorded as
benchmarks/results/recipe_<profile>.{json,md}.

The cpu profile is time-budgeted (each net gets a share of the hour and sizes its schedule from the
throughput it measures in its first steps), so the wall time is the same on any 2-core machine and
the accuracy says what that machine can do in it. Run it on a quiet machine:

    python -m benchmarks.recipe_cpu [--data-dir ../shared/data/cifar10] [--runs runs_cpu]

The long profile (40 epochs of the 50,000 per net) outlasts a session on a slow CPU. With `--resume`
each start continues every net where it stopped and is logged as one session in <runs>/sessions.json
(start, machine, load, wall time; a session killed with its machine has no end); the results are written
once the three nets are done, with the wall time summed over the sessions:

    nohup python -m benchmarks.recipe_cpu --profile long --resume --data-dir ../shared/data/cifar10 &

`--models plain_cnn` trains only the nets named (a session too short for three); the results then hold those.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.common import RESULTS, _head, machine, write_results
from cifarlens_runtime.files import atomic_write
from training.models import list_models

ROOT = Path(__file__).resolve().parents[1]
SESSIONS = "sessions.json"


def _heading(payload: dict[str, Any]) -> str:
    sessions = payload.get("sessions") or []
    wall = f"{payload['total_seconds'] / 60:.1f} min of wall time"
    if len(sessions) > 1:
        wall += f" over {len(sessions)} sessions (resumed; see below)"
    return f"# `make train-all PROFILE={payload.get('profile', 'cpu')}`: {wall}"


def _session_lines(payload: dict[str, Any]) -> list[str]:
    """One line per session of a resumed run: when, where, how long, how busy."""
    sessions = payload.get("sessions") or []
    if len(sessions) < 2:
        return []
    lines = ["", "| session | started | CPU | wall | load at start |", "|---:|---|---|---:|---:|"]
    for i, s in enumerate(sessions, 1):
        wall = f"{s['wall_seconds'] / 60:.1f} min" if s.get("wall_seconds") is not None else "ended with the session"
        lines.append(f"| {i} | {s['started']} | {s['cpu']} ({s['cpu_isa']}) | {wall} | {s['load_at_start']:.2f} |")
    return lines


def _device_lines(models: dict[str, Any]) -> list[str]:
    """Where a net's epochs ran on more than one machine or precision, which trained how many."""
    lines = []
    for name, m in models.items():
        by_device = m.get("epochs_by_device") or {}
        if len(by_device) > 1:
            lines.append(f"- {name}: " + "; ".join(f"{n} epochs on {d}" for d, n in by_device.items()))
    return ["", "Epochs by device:", *lines] if lines else []


def _percent(value: float | None) -> str:
    """A fraction as a percentage; `-` where there was none (a long run holds out no val images)."""
    return "-" if value is None else f"{100 * value:.2f} %"


def render(payload: dict[str, Any]) -> str:
    """The Markdown report of a recorded run (also re-rendered from the JSON with --render)."""
    head = [
        _heading(payload),
        "",
        f"Device: {payload['device']}. Test accuracy on the 10,000 test images (`test_acc` with flip TTA).",
        "",
        "| net | test acc (flip TTA) | no TTA | flip + translate | val acc | epochs | images seen | training | images/s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    rows = [
        f"| {n} | {100 * m['test_acc']:.2f} % | {100 * m['test_acc_no_tta']:.2f} % | "
        f"{100 * m['test_acc_flip_translate_tta']:.2f} % | "
        f"{_percent(m.get('val_acc'))} | {m['epochs']} | "
        f"{m['images_seen']:,} | {m['train_seconds'] / 60:.1f} min | {m['images_per_second']:,.0f} |"
        for n, m in payload["models"].items()
    ]
    tail = _session_lines(payload) + _device_lines(payload["models"])
    return "\n".join(head + rows + tail + ([f"\n{payload['note']}"] if payload.get("note") else []))


def start_session(runs: Path, info: dict[str, Any]) -> list[dict[str, Any]]:
    """<runs>/sessions.json with this invocation appended (before it trains: a killed session still shows)."""
    path = runs / SESSIONS
    sessions = json.loads(path.read_text()) if path.is_file() else []
    sessions.append({
        "started": info["date"], "cpu": info["cpu"], "cpu_isa": info["cpu_isa"],
        "load_at_start": info["load_average_at_start"][0], "wall_seconds": None, "rc": None,
    })  # fmt: skip
    atomic_write(path, json.dumps(sessions, indent=1))
    return sessions


def end_session(runs: Path, sessions: list[dict[str, Any]], wall: float, rc: int) -> None:
    """This invocation's wall time and exit status, into the entry `start_session` made."""
    sessions[-1].update(wall_seconds=round(wall, 1), rc=rc)
    atomic_write(runs / SESSIONS, json.dumps(sessions, indent=1))


def command(args: argparse.Namespace, runs: Path) -> list[str]:
    """The `make train-all` a user would type for this profile."""
    train_args = f"--out-dir {runs} --progress false" + (" --resume" if args.resume else "")
    if args.models:
        train_args += " --models " + " ".join(args.models)
    cmd = ["make", "train-all", f"PROFILE={args.profile}", f"TRAIN_ARGS={train_args}"]
    return cmd + ([f"DATA_DIR={args.data_dir}"] if args.data_dir else [])


def run_logged(cmd: list[str], log_path: Path, append: bool) -> int:
    """Run `cmd`, echoing and logging its output; SIGTERM is passed on, so the nets save last.pt and stop."""
    with open(log_path, "a" if append else "w") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        signal.signal(signal.SIGTERM, lambda *_: proc.send_signal(signal.SIGTERM))
        assert proc.stdout is not None
        for line in proc.stdout:
            sys.stdout.write(line)
            log.write(line)
            log.flush()
        return proc.wait()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=os.environ.get("DATA_DIR"))
    parser.add_argument("--profile", default="cpu", help="cpu (default), long, or smoke (to try the script)")
    parser.add_argument("--resume", action="store_true", help="continue every net where it stopped (long)")
    parser.add_argument(
        "--models", nargs="+", choices=list_models(), help="only these nets, in this order (default: all three)"
    )
    parser.add_argument("--runs", help="where the runs go, the log too (default runs_<profile>)")
    parser.add_argument("--name", help="the results' name (default recipe_<profile>)")
    parser.add_argument("--results", type=Path, default=RESULTS, help="where the JSON and Markdown go")
    parser.add_argument("--render", action="store_true", help="only rewrite the Markdown from the committed JSON")
    parser.add_argument("--note", default="", help="with --render: a sentence to add to the results")
    return parser


def rerender(path: Path, note: str) -> int:
    """--render: the Markdown again from the JSON (with `note` added to it first)."""
    payload = json.loads(path.read_text())
    if note:
        payload["note"] = note
        path.write_text(json.dumps(payload, indent=1))
    path.with_suffix(".md").write_text(_head(payload["machine"]) + render(payload) + "\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    name = args.name or f"recipe_{args.profile}"
    if args.render:
        return rerender(args.results / f"{name}.json", args.note)
    runs = Path(args.runs or f"runs_{args.profile}").resolve()
    runs.mkdir(parents=True, exist_ok=True)
    info = machine()
    sessions = start_session(runs, info) if args.resume else []
    cmd = command(args, runs)
    print(" ".join(cmd), flush=True)
    start = time.perf_counter()
    rc = run_logged(cmd, runs / f"train_{args.profile}.log", append=args.resume)
    wall = time.perf_counter() - start
    if sessions:
        end_session(runs, sessions, wall, rc)
    if rc != 0:
        print(f"make train-all stopped (exit {rc}); nothing recorded: start it again with --resume", file=sys.stderr)
        return rc
    summary = json.loads((runs / "train_all.json").read_text())
    info["load_average_at_end"] = os.getloadavg()
    total = sum(s["wall_seconds"] or 0.0 for s in sessions) if sessions else wall
    payload = {**summary, "profile": args.profile, "total_seconds": round(total, 1), "command": " ".join(cmd),
               "sessions": sessions, "machine": info}  # fmt: skip
    js, mdp = write_results(name, payload, render(payload), out_dir=args.results)
    print(f"wrote {js} and {mdp}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
