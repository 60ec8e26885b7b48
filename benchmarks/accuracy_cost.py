"""Accuracy against cost, per net, from the committed JSON: a table (README, Markdown) and a plot.

Accuracy is the shipped nets' test accuracy (weights/<net>/metrics.json, flip TTA and without).
Costs, each from the file that measured it, with its machine:
- parameters (the shipped checkpoint's metrics);
- training FLOPs per image, counted on a real training step of the shipped net as built
  (benchmarks/results/train_cpu.json, `shipped_train_gflop_per_image`; 3 x forward when absent, and said so);
- REST p50 of one prediction through TorchServe (benchmarks/results/serve_cpu.json, sequential requests);
- CPU training time: the time-budgeted CPU run of each net and the accuracy it reached
  (recipe_long.json when it covers the three nets, else recipe_cpu.json); the shipped weights themselves were
  trained where their metrics.json says.
Reading only JSON, it needs no torch:

    python -m benchmarks.accuracy_cost        # writes accuracy_cost.{json,md,png} under benchmarks/results/
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
ORDER = ("plain_cnn", "inception_net", "se_net")
PLOT = "accuracy_cost.png"
COSTS = (  # (row key of the cost, axis label, row key of the accuracy it is plotted against)
    ("params_m", "parameters (M)", "test_acc"),
    ("train_gflop_per_image", "training GFLOP per image", "test_acc"),
    ("rest_p50_ms", "REST p50, one image (ms)", "test_acc"),
    ("cpu_train_minutes", "CPU run: training time (min)", "cpu_run_test_acc"),
)


def _load(name: str, root: Path = RESULTS) -> dict[str, Any] | None:
    path = root / name
    return json.loads(path.read_text()) if path.is_file() else None


def _cpu_run() -> tuple[str, dict[str, Any] | None]:
    """The CPU training run to cite: the long profile's when it has trained all three nets (one rule for all, so
    that the column compares like with like), else the CPU profile's."""
    for name in ("recipe_long.json", "recipe_cpu.json"):
        run = _load(name)
        if run and set(ORDER) <= set(run.get("models", {})):
            return name, run
    return "", None


def rows() -> list[dict[str, Any]]:
    """One row per shipped net: its accuracy and every cost that a committed file measured."""
    compile_rows = {r["model"]: r for r in (_load("train_cpu.json") or {}).get("results", [])}
    serve = {r["model"]: r for r in (_load("serve_cpu.json") or {}).get("rest_sequential", [])}
    cpu_name, cpu = _cpu_run()
    out = []
    for net in ORDER:
        m = _load("metrics.json", ROOT / "weights" / net)
        if m is None:
            continue
        counted = compile_rows.get(net, {}).get("shipped_train_gflop_per_image")
        run = (cpu or {}).get("models", {}).get(net)
        out.append({
            "net": net, "test_acc": m["test_acc"], "test_acc_no_tta": m.get("test_acc_no_tta"),
            "trained_on": m.get("device"), "params_m": round(m["params"] / 1e6, 3),
            "train_gflop_per_image": counted if counted else round(3 * m["mflops"] / 1000, 3),
            "flops_counted": bool(counted),
            "rest_p50_ms": serve.get(net, {}).get("p50_ms"),
            "cpu_train_minutes": round(run["train_seconds"] / 60, 1) if run else None,
            "cpu_run_test_acc": run["test_acc"] if run else None, "cpu_run_from": cpu_name or None,
        })  # fmt: skip
    return out


def measured_on() -> dict[str, dict[str, Any]]:
    """The machine each cost was measured on, as its file recorded it: CPU, instruction sets, load, date."""
    out = {}
    for key, name in (("flops", "train_cpu.json"), ("rest", "serve_cpu.json"), ("cpu_run", _cpu_run()[0])):
        m = (_load(name) or {}).get("machine") if name else None
        if m:
            out[key] = {"file": name, "cpu": m["cpu"], "cpu_extensions": m.get("cpu_extensions"),
                        "load_average_at_start": m.get("load_average_at_start"),
                        "load_average_at_end": m.get("load_average_at_end"), "date": m["date"]}  # fmt: skip
    return out


def sources() -> dict[str, str]:
    """Which machine measured each cost (CPU model and date), for the table's caption."""
    return {key: f"{m['file']} ({m['cpu']}, {m['date'][:10]})" for key, m in measured_on().items()}


def _cell(v: Any, fmt: str) -> str:
    return "–" if v is None else format(v, fmt)


def table(data: list[dict[str, Any]]) -> list[str]:
    """The Markdown table, one line per net."""
    lines = [
        "| net | test acc (flip TTA) | no TTA | params | training GFLOP/image | REST p50 | CPU run: training "
        "| CPU run: test acc |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in data:
        flops = _cell(r["train_gflop_per_image"], ".2f") + ("" if r["flops_counted"] else " (3 × forward)")
        lines.append(
            f"| {r['net']} | **{100 * r['test_acc']:.2f} %** | {_cell(r['test_acc_no_tta'] and 100 * r['test_acc_no_tta'], '.2f')} % "
            f"| {r['params_m']:.2f} M | {flops} | {_cell(r['rest_p50_ms'], '.1f')} ms "
            f"| {_cell(r['cpu_train_minutes'], '.1f')} min | {_cell(r['cpu_run_test_acc'] and 100 * r['cpu_run_test_acc'], '.2f')} % |"
        )  # fmt: skip
    return lines


def plot(data: list[dict[str, Any]], path: Path) -> Path:
    """Four panels: test accuracy (flip TTA) against each cost, one labelled point per net; the CPU
    training time against the accuracy that CPU run reached (not the shipped weights')."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(COSTS), figsize=(4 * len(COSTS), 3.4))
    for ax, (key, label, acc) in zip(axes, COSTS, strict=True):
        for r in data:
            if r[key] is None or r[acc] is None:
                continue
            ax.scatter(r[key], 100 * r[acc], s=40)
            ax.annotate(r["net"], (r[key], 100 * r[acc]), textcoords="offset points", xytext=(4, 4), fontsize=8)
        ax.set_xlabel(label)
        ax.set_ylabel("shipped: test acc, flip TTA (%)" if acc == "test_acc" else "CPU run: test acc, flip TTA (%)")
        ax.margins(x=0.25, y=0.15)
        ax.grid(alpha=0.3)
    fig.suptitle("Accuracy against cost, per net", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main() -> None:
    data = rows()
    src = sources()
    caption = "Costs from " + "; ".join(f"{k}: {v}" for k, v in src.items()) + "."
    md = "\n".join(["# Accuracy against cost", "", *table(data), "", caption, "", f"![accuracy against cost]({PLOT})"])
    # This file times nothing itself: each timing is copied from the file that measured it, with that
    # file's CPU and load (machine.measured_on), so it compares only as that file does.
    machine = {"measured_on": measured_on(), "note": "derived from the files named; no timing measured here"}
    payload = {"machine": machine, "rows": data, "sources": src}
    (RESULTS / "accuracy_cost.json").write_text(json.dumps(payload, indent=1) + "\n")
    (RESULTS / "accuracy_cost.md").write_text(md + "\n")
    print(plot(data, RESULTS / PLOT))


if __name__ == "__main__":
    main()
