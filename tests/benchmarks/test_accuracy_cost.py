"""The accuracy-against-cost table and plot come from the committed JSON, each number from its file."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks import accuracy_cost


def test_rows_cite_the_files_that_measured_them() -> None:
    rows = {r["net"]: r for r in accuracy_cost.rows()}
    assert set(rows) == set(accuracy_cost.ORDER)
    serve = {
        r["model"]: r for r in json.loads((accuracy_cost.RESULTS / "serve_cpu.json").read_text())["rest_sequential"]
    }
    for net, r in rows.items():
        shipped = json.loads((accuracy_cost.ROOT / "weights" / net / "metrics.json").read_text())
        assert r["test_acc"] == shipped["test_acc"] and r["params_m"] == round(shipped["params"] / 1e6, 3)
        assert r["rest_p50_ms"] == serve[net]["p50_ms"]
        assert r["train_gflop_per_image"] > 2 * shipped["mflops"] / 1000  # a training step costs ~3 forwards
    assert rows["inception_net"]["train_gflop_per_image"] > rows["se_net"]["train_gflop_per_image"]
    lines = accuracy_cost.table(list(rows.values()))
    assert len(lines) == 2 + len(rows) and all(f"| {n} |" in "".join(lines) for n in rows)


def test_plot_is_written(tmp_path: Path) -> None:
    path = accuracy_cost.plot(accuracy_cost.rows(), tmp_path / "plot.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000


def test_every_cost_names_the_machine_and_load_it_was_measured_on() -> None:
    measured = accuracy_cost.measured_on()
    assert set(measured) == {"flops", "rest", "cpu_run"}
    for m in measured.values():
        recorded = json.loads((accuracy_cost.RESULTS / m["file"]).read_text())["machine"]
        assert m["cpu"] == recorded["cpu"] and m["load_average_at_start"] == recorded["load_average_at_start"]
        assert m["load_average_at_start"] is not None


def test_the_cpu_run_cited_is_the_long_one_only_once_it_has_trained_all_three(monkeypatch) -> None:
    cpu = {"models": {n: {} for n in accuracy_cost.ORDER}}
    files = {"recipe_cpu.json": cpu, "recipe_long.json": {"models": {"se_net": {}}}}  # a long run of one net so far
    monkeypatch.setattr(accuracy_cost, "_load", lambda name, root=None: files.get(name))
    assert accuracy_cost._cpu_run() == ("recipe_cpu.json", cpu)
    files["recipe_long.json"] = long = {"models": {n: {} for n in accuracy_cost.ORDER}}
    assert accuracy_cost._cpu_run() == ("recipe_long.json", long)
