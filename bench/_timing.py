"""Throughput measurement: warm-up calls first, then several timed rounds; the median round is reported.

The median, not the mean, because a shared machine produces occasional slow rounds (another process got
the cores) and rarely fast ones; the best round is kept too, as the least disturbed estimate.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Rate:
    """Items per second over `rounds` timed rounds."""

    median: float
    best: float
    per_round: tuple[float, ...]


def measure_rate(call: Callable[[], object], items_per_call: int, warmup: int, rounds: int, calls_per_round: int,
                 synchronize: Callable[[], None] = lambda: None) -> Rate:
    """Call `call` `warmup` times untimed, then `rounds` × `calls_per_round` times timed.

    `synchronize` is run before each clock read (CUDA work is asynchronous: without it the clock measures
    only the launch). Raises ValueError for non-positive counts.
    """
    if min(items_per_call, rounds, calls_per_round) < 1 or warmup < 0:
        raise ValueError(f"counts must be positive: items {items_per_call}, rounds {rounds}, "
                         f"calls {calls_per_round}, warm-up {warmup}")
    for _ in range(warmup):
        call()
    synchronize()
    rates = []
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(calls_per_round):
            call()
        synchronize()
        rates.append(items_per_call * calls_per_round / (time.perf_counter() - started))
    return Rate(median=statistics.median(rates), best=max(rates), per_round=tuple(rates))


def measure_interleaved(calls: Mapping[str, tuple[Callable[[], object], int, int, int]], rounds: int,
                        synchronize: Callable[[], None] = lambda: None) -> dict[str, Rate]:
    """Like `measure_rate` for several candidates at once, with their rounds interleaved (A B C A B C ...).

    `calls` maps a name to (call, items_per_call, warmup_calls, calls_per_round). On a shared machine, load
    from other processes then falls on every candidate alike instead of on whichever ran last, so the
    ratios between candidates stay fair even when the absolute rates drift.
    """
    for call, _, warmup, _ in calls.values():
        for _ in range(warmup):
            call()
    synchronize()
    rates: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(rounds):
        for name, (call, items, _, per_round) in calls.items():
            started = time.perf_counter()
            for _ in range(per_round):
                call()
            synchronize()
            rates[name].append(items * per_round / (time.perf_counter() - started))
    return {name: Rate(statistics.median(r), max(r), tuple(r)) for name, r in rates.items()}
