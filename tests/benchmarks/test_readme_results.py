import subprocess
import sys
from pathlib import Path

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
