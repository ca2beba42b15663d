"""The price stage at the mission's size: time and memory of `model.price.run_price` on synthetic works.

    python -m bench.price_scale [--works 10765] [--artists 50] [--no-record]

Synthetic inputs of the mission's shape (the final works of `make bench-mission`: 10,765 works of 50
artists, 24 months of sales, five currencies, a 32-d embedding and 50 clusters) with random prices, so only
the cost is measured, not the accuracy. Runs the stage's whole path after reading: conversion, time split,
every candidate of params.yaml's `price` section, predictions, metrics with the paired bootstrap, figures.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from bench import _record
from common import load_params
from model import price


def synthetic_works(n: int, n_artists: int, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """`n` sold works in the layout `price.read_works` returns, and an (n, 32) embedding."""
    rng = np.random.default_rng(seed)
    days = pd.date_range("2018-01-05", "2019-12-20", freq="D")
    low = np.exp(rng.normal(8.8, 1.5, n)).round()
    sale_dates = pd.Series(rng.choice(days, n)).dt.strftime("%Y-%m-%d")
    room = rng.integers(0, 5, n)
    works = pd.DataFrame({
        "lot_key": [f"www-1-{i}" for i in range(n)],
        "artist": rng.choice([f"Artist {i:02d}" for i in range(n_artists)], n),
        "kind": rng.choice(["painting", "drawing", "print", "photograph"], n),
        "sale_id": sale_dates + "-" + room.astype(str), "sale_title": "Sale", "sale_date": sale_dates,
        "sale_start_date": sale_dates,
        "sale_location": np.array(["New York", "London", "Paris", "Hong Kong", "Geneva"])[room],
        "sale_kind": rng.choice(["live", "online"], n),
        "currency": np.array(["USD", "GBP", "EUR", "HKD", "CHF"])[room],
        "price_realised": np.exp(rng.normal(9.0, 1.5, n)).round(), "estimate_low": low, "estimate_high": low * 1.5,
        "sold": True, "withdrawn": False,
        "height_cm": rng.uniform(20, 150, n), "width_cm": rng.uniform(20, 150, n),
        "cluster": rng.integers(0, n_artists, n).astype(str),
    })
    return works, rng.normal(size=(n, 32)).astype(np.float32)


def main(argv: list[str] | None = None) -> str:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--works", type=int, default=10_765)
    parser.add_argument("--artists", type=int, default=50)
    _record.add_record_arguments(parser)
    args = parser.parse_args(argv)
    settings = price.PriceSettings.from_params(load_params(keys=price.PARAMS))
    works, embedding = synthetic_works(args.works, args.artists)
    with tempfile.TemporaryDirectory(prefix="bench-price-") as scratch:
        started = time.perf_counter()
        metrics = price.run_price(works, embedding, settings, Path(scratch) / "price", Path(scratch) / "figures")
        seconds = time.perf_counter() - started
    peak_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    body = (f"`model.price.run_price` on {args.works} synthetic works of {args.artists} artists (random prices: "
            f"cost only), params.yaml's `price` section ({len(price.candidates(settings))} candidates per fitted "
            f"model, {settings.bootstrap_resamples} bootstrap resamples).\n\n"
            + _record.markdown_table(["works", "train", "test", "seconds", "peak memory (GiB)"],
                                     [[args.works, metrics["n"]["train"], metrics["n"]["test"], seconds,
                                       f"{peak_gib:.2f}"]]))
    return _record.publish(args, "bench.price_scale", argv, "Price stage at the mission's size (bench/price_scale.py)",
                           body)


if __name__ == "__main__":
    main()
