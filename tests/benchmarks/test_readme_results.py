import subprocess
import sys
from pathlib import Path

from benchmarks import readme_results

ROOT = Path(__file__).resolve().parents[2]


def test_readme_results_match_the_committed_json() -> None:
    proc = subprocess.run([sys.executable, "-m", "benchmarks.readme_results", "--check"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr


def test_the_serving_block_names_what_a_run_without_v2_lacks() -> None:
    """A serve_cpu.json from `--no-v2` (or from before the v2 rows): dashes where v2 figures would be, the
    TorchServe figures and verdicts as measured."""
    import json

    from benchmarks.readme_results import RESULTS, serve_table, serve_targets

    serve = json.loads((RESULTS / "serve_cpu.json").read_text())
    assert "| – | – |" not in "\n".join(serve_table(serve))  # the committed run has its v2 rows
    serve.pop("v2_sequential"), serve.pop("v2_concurrent")
    serve["targets"] = [{k: v for k, v in t.items() if not k.startswith("v2_")} for t in serve["targets"]]
    table = serve_table(serve)
    assert len(table) == 5 and all(line.count(" – |") == 2 for line in table[2:])
    words = serve_targets(serve)
    assert "v2 server's p50 is – / – / – ms above it (target ≤ 1.5 ms: not measured in this run)" in words
    assert f"{serve['targets'][0]['overhead_ms']:.2f}" in words


def test_the_long_ablation_line_says_how_far_it_got() -> None:
    row = {"candidate": "base", "val_acc": 0.8583, "train_acc": 0.9344}
    payload = {"model": "se_net", "epochs": 15, "runs": [row], "pending": ["cutout 8 px", "EMA"]}
    (line, _) = readme_results.long_ablation_lines(payload)
    assert "1 of 3 candidates done" in line and "base 85.83 % val (train 93.44 %, 7.6 points above val)" in line
    assert line.endswith("Not run yet: cutout 8 px; EMA.")
    payload |= {"runs": [row, {"candidate": "cutout 8 px", "val_acc": 0.8701, "train_acc": 0.9}], "pending": []}
    (line, _) = readme_results.long_ablation_lines(payload)
    assert (
        "2 of 2 candidates done" in line
        and "cutout 8 px 87.01 % (+1.18 points; train 90.00 %, 3.0 points above val)" in line
    )
    assert "Not run yet" not in line and readme_results.long_ablation_lines(payload | {"runs": []}) == []
