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


def test_beside_the_ranking_the_readme_says_whether_the_shipped_nets_had_one_budget() -> None:
    def net(seen: int, device: str = "cpu (X)") -> dict:
        return {"images_seen": seen, "epochs": seen // 50_000, "device": device, "test_acc": 0.9}

    same = readme_results.budget_lines({n: net(2_000_000) for n in readme_results.ORDER})
    assert same[0].startswith("The three had one budget: 2.00 M (40 epochs) each, on cpu (X)")
    mixed = "\n".join(readme_results.budget_lines({**{n: net(2_000_000) for n in readme_results.ORDER},
                                                   "se_net": net(2_080_000, "cuda (H200)")}))  # fmt: skip
    assert "different budgets" in mixed and "se_net 2.08 M (41 epochs) on cuda (H200)" in mixed


def test_a_long_run_of_some_nets_says_which_are_still_to_train() -> None:
    row = {"test_acc": 0.89, "test_acc_no_tta": 0.88, "test_acc_flip_translate_tta": 0.891, "val_acc": None,
           "epochs": 40, "train_seconds": 2400.0, "images_per_second": 850.0}  # fmt: skip
    lines = readme_results.long_lines({"models": {"plain_cnn": row}, "device": "cpu (X)", "total_seconds": 2500})
    assert "1 of 3 nets trained, not yet inception_net, se_net" in lines[0]
    assert any(line.startswith("| plain_cnn | **89.00 %** | 88.00 % | 89.10 % | – | 40 |") for line in lines)
