"""Interleaved rounds: the one way every benchmark compares things it times on a machine it may share.

Timing A and then B lets a burst of other work land on one of them only. So every compared thing (a
variant) is warmed up once, then each of `rounds` rounds measures every variant once, and a figure is
the median of its per-round values. The order changes from round to round by one rule, `round_order`:

    rounds go in pairs, the second of a pair running the first's order backwards; pair p (of P, over n
    variants) runs the list from variant floor(p * n / P) on, wrapping round to the start.

Within a pair every variant has the same mean position, and each one runs after its left neighbour once
and after its right neighbour once, so none always inherits the same one's caches, threads or queued
work; from pair to pair the starts are spread evenly over the list, so no variant is always first or
last. An odd last round is a pair's first half.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import numpy as np

V = TypeVar("V")
R = TypeVar("R")


def round_order(n: int, r: int, rounds: int) -> list[int]:
    """Indices of `n` variants in the order round `r` (from 0) of `rounds` runs them: the module's rule."""
    if n <= 0:
        return []
    pair, backward = divmod(r, 2)
    start = (pair * n) // max((rounds + 1) // 2, 1) % n
    order = [(start + j) % n for j in range(n)]
    return order[::-1] if backward else order


def run_rounds(
    variants: Sequence[V],
    rounds: int,
    measure: Callable[[V, int], R],
    warmup: Callable[[V], Any] | None = None,
    label: str = "round",
) -> list[list[R]]:
    """Warm every variant up (in list order), then `rounds` rounds of `measure(variant, r)` for all of them
    in `round_order`; returns each variant's per-round results, in the order of `variants`. Each round's
    wall time and the load average after it are printed (a round far slower than the others was disturbed)."""
    if warmup is not None:
        for v in variants:
            warmup(v)
    results: list[list[R]] = [[] for _ in variants]
    for r in range(rounds):
        t0 = time.perf_counter()
        for i in round_order(len(variants), r, rounds):
            results[i].append(measure(variants[i], r))
        print(
            f"{label} {r + 1}/{rounds}: {time.perf_counter() - t0:.0f} s, load average {os.getloadavg()[0]:.2f}",
            flush=True,
        )
    return results


def time_calls(
    fn: Callable[[int], Any], n: int, warmup: int = 0, time_cap: float = math.inf, offset: int = 0
) -> list[float]:
    """Latencies (ms) of `fn(offset + i)` for i < n after `warmup` untimed calls; stops early after `time_cap` s
    (a stalled server ends the loop, not the run). The index lets each round send other inputs."""
    for i in range(warmup):
        fn(offset + i)
    out: list[float] = []
    deadline = time.monotonic() + time_cap
    for i in range(n):
        t0 = time.perf_counter()
        fn(offset + i)
        out.append((time.perf_counter() - t0) * 1e3)
        if time.monotonic() > deadline:
            break
    return out


def percentiles(ms: Sequence[float]) -> dict[str, float]:
    """p50/p95/p99 and mean of latencies in ms (NaN when nothing was timed)."""
    if not ms:
        return {"p50_ms": math.nan, "p95_ms": math.nan, "p99_ms": math.nan, "mean_ms": math.nan}
    a = np.asarray(ms, dtype=np.float64)
    p50, p95, p99 = np.percentile(a, [50, 95, 99])
    vals = {"p50_ms": p50, "p95_ms": p95, "p99_ms": p99, "mean_ms": a.mean()}
    return {k: round(float(v), 3) for k, v in vals.items()}
