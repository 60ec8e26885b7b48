"""What the serving benchmark compares: a variant (a runtime, a route, a client count) and its summary row."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from benchmarks.common import median_of
from benchmarks.rounds import percentiles, run_rounds

SUMMED = ("b64_img_s", "req_s", "ts_mean_ms", "ts_queue_ms")


@dataclass
class Variant:
    """One compared thing: its group (the table it goes to), its table fields, and how to measure it.

    `measure(n, offset)` times `n` calls starting at input `offset` and returns that round's values:
    `lat` (ms per call) and any of `b64_img_s`, `req_s`, `failures`, `response_bytes`, `ts_mean_ms`,
    `ts_queue_ms`.
    """

    group: str
    fields: dict[str, Any]
    measure: Callable[[int, int], dict[str, Any]]
    n: int
    warmup: Callable[[], Any] | None = None
    rounds: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """The medians over rounds of each round's figures (percentiles from each round's own latencies)."""
        row: dict[str, Any] = {
            **self.fields,
            "rounds": len(self.rounds),
            "n": sum(len(r.get("lat", [])) for r in self.rounds),
        }
        if any(r.get("lat") for r in self.rounds):
            row.update(self._latency())
        for key in SUMMED:
            vals = [r[key] for r in self.rounds if key in r]
            if vals:
                row[key] = median_of(vals)
        if any("response_bytes" in r for r in self.rounds):
            row["response_bytes"] = max(r.get("response_bytes", 0) for r in self.rounds)
        if any("failures" in r for r in self.rounds):  # the HTTP rows (TorchServe's and the v2 server's)
            row["failed"] = sum(len(r.get("failures", [])) for r in self.rounds)
        return row

    def _latency(self) -> dict[str, float]:
        """Medians of the per-round percentiles, and how far the per-round p50s spread (how much the machine moved)."""
        per_round = [percentiles(r.get("lat", [])) for r in self.rounds]
        out = {key: median_of([p[key] for p in per_round]) for key in ("p50_ms", "p95_ms", "p99_ms", "mean_ms")}
        p50s = [p["p50_ms"] for p in per_round if p["p50_ms"] == p["p50_ms"]]
        out["p50_spread_ms"] = round(max(p50s) - min(p50s), 3) if p50s else float("nan")
        return out


def run_variants(variants: list[Variant], rounds: int) -> None:
    """Every variant in each of `rounds` interleaved rounds (benchmarks.rounds), round r at inputs r * n onwards;
    the per-round values land in each variant's `rounds`."""
    results = run_rounds(
        variants,
        rounds,
        measure=lambda v, r: v.measure(v.n, r * v.n),
        warmup=lambda v: v.warmup() if v.warmup is not None else None,
    )
    for v, per_round in zip(variants, results, strict=True):
        v.rounds.extend(per_round)
