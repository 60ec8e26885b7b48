"""The benchmarks' one round-robin rule (benchmarks.rounds), and the serving benchmark's summaries built on it.

Every round runs every variant once; within a pair of rounds every variant has the same mean position and
runs after both its neighbours; over the pairs the first slot moves, so no variant is always first or last.
"""

from __future__ import annotations

import pytest

from benchmarks.rounds import percentiles, round_order, run_rounds, time_calls
from benchmarks.serve_report import targets
from benchmarks.serve_variant import Variant, run_variants


@pytest.mark.parametrize(("n", "rounds"), [(1, 1), (2, 5), (3, 2), (7, 5), (30, 5), (4, 10)])
def test_every_round_runs_every_variant_once(n: int, rounds: int) -> None:
    for r in range(rounds):
        assert sorted(round_order(n, r, rounds)) == list(range(n))


@pytest.mark.parametrize(("n", "rounds"), [(2, 2), (3, 2), (7, 5), (30, 5)])
def test_a_pair_of_rounds_evens_out_positions_and_neighbours(n: int, rounds: int) -> None:
    first, second = round_order(n, 0, rounds), round_order(n, 1, rounds)
    assert second == first[::-1]
    mean = {v: (first.index(v) + second.index(v)) / 2 for v in range(n)}
    assert set(mean.values()) == {(n - 1) / 2}


@pytest.mark.parametrize(("n", "rounds"), [(3, 4), (7, 5), (30, 5), (2, 4)])
def test_no_variant_is_always_first_or_last(n: int, rounds: int) -> None:
    orders = [round_order(n, r, rounds) for r in range(rounds)]
    assert len({o[0] for o in orders}) > 1 and len({o[-1] for o in orders}) > 1
    assert len({o[0] for o in orders[::2]}) == min(n, (rounds + 1) // 2)  # the pairs start at different variants


def test_run_rounds_warms_up_first_and_returns_results_in_variant_order(capsys) -> None:
    log: list[tuple[str, str, int]] = []
    results = run_rounds(
        ["a", "b", "c"],
        4,
        measure=lambda v, r: log.append(("m", v, r)) or f"{v}{r}",
        warmup=lambda v: log.append(("w", v, -1)),
    )
    assert log[:3] == [("w", "a", -1), ("w", "b", -1), ("w", "c", -1)]
    assert [v for _, v, _ in log[3:6]] == ["a", "b", "c"] and [v for _, v, _ in log[6:9]] == ["c", "b", "a"]
    assert results == [[f"{v}{r}" for r in range(4)] for v in "abc"]
    assert capsys.readouterr().out.count("round ") == 4


def test_time_calls_passes_offsets_and_stops_at_the_time_cap() -> None:
    seen: list[int] = []
    assert len(time_calls(seen.append, 3, warmup=2, offset=10)) == 3
    assert seen == [10, 11, 10, 11, 12]
    assert len(time_calls(lambda i: None, 1000, time_cap=0.0)) == 1
    assert percentiles([])["p50_ms"] != percentiles([])["p50_ms"]  # NaN when nothing was timed
    assert percentiles([1.0, 2.0, 3.0])["p50_ms"] == 2.0


def _variant(group: str, fields: dict, p50: float, **extra) -> Variant:
    return Variant(group, fields, lambda n, offset: {"lat": [p50] * n, **extra}, 3)


def test_serve_variants_summaries_and_targets_from_interleaved_rounds(capsys) -> None:
    """Medians over rounds feed the targets: REST p50 against in-process ONNX Runtime, feature maps against the
    prediction, 8 clients against batch-64 throughput, and no failed request."""
    variants = [
        _variant("in_process", {"model": "m", "runtime": "onnxruntime", "threads": 1}, 2.0, b64_img_s=1000.0),
        _variant("rest_sequential", {"model": "m"}, 4.0, failures=[]),
        _variant("rest_concurrent", {"model": "m", "clients": 8}, 9.0, req_s=800.0, failures=[]),
        _variant("rest_feature_maps", {"model": "m", "layer": "block1"}, 6.5, failures=["x: HTTP 500"]),
    ]
    run_variants(variants, 3)
    rows = [v.summary() for v in variants]
    assert all(r["rounds"] == 3 and r["n"] == 9 for r in rows)
    assert rows[0]["p50_ms"] == 2.0 and rows[0]["p50_spread_ms"] == 0.0 and rows[0]["b64_img_s"] == 1000.0
    groups = {v.group: [row] for v, row in zip(variants, rows, strict=True)}
    [t] = targets(["m"], groups, {"m": {"handler": {"backend": "onnxruntime"}}})
    assert (t["overhead_ms"], t["latency_pass"]) == (2.0, "pass")
    assert (t["feature_over_prediction_ms"], t["feature_pass"]) == (2.5, "pass")
    assert (t["ratio"], t["throughput_pass"]) == (0.8, "pass")
    assert (t["failed"], t["failed_pass"], t["all_pass"]) == (3, "FAIL", False)
