"""bench/_timing.py: warm-up calls are not timed, interleaved rounds take turns."""

from __future__ import annotations

import pytest

from bench._timing import measure_interleaved, measure_rate


def test_measure_rate_counts_warmup_and_timed_calls():
    calls = []
    rate = measure_rate(lambda: calls.append(1), items_per_call=4, warmup=2, rounds=3, calls_per_round=5)
    assert len(calls) == 2 + 3 * 5
    assert len(rate.per_round) == 3 and rate.best >= rate.median > 0


def test_measure_rate_rejects_zero_rounds():
    with pytest.raises(ValueError, match="positive"):
        measure_rate(lambda: None, items_per_call=1, warmup=0, rounds=0, calls_per_round=1)


def test_interleaved_rounds_alternate_between_candidates():
    order = []
    plan = {name: (lambda name=name: order.append(name), 1, 1, 2) for name in ("a", "b")}
    rates = measure_interleaved(plan, rounds=2)
    assert order == ["a", "b"] + ["a", "a", "b", "b"] * 2  # warm-up each, then rounds in turn
    assert set(rates) == {"a", "b"} and all(len(r.per_round) == 2 for r in rates.values())
