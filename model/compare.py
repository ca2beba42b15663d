"""Stage `compare`: every clustering method × seed at k = model.k, and the k sweep (the paper's Table 2).

(a) Method comparison: each method in `compare.methods` × each seed in `compare.seeds` at k = `model.k`,
    scored against the artist labels (ACC, NMI arithmetic and geometric, ARI, purity) and in its own
    embedding (silhouette, Calinski-Harabasz) → `reports/compare/runs.csv`, `reports/compare/summary.json`
    (mean ± sample std over seeds per method).
(b) k sweep: CAE+k-means and DCEC for k in `compare.sweep_ks` ∪ {model.k}, seeds `compare.sweep_seeds`
    → `reports/compare/sweep.csv` (means over the sweep seeds; CH also relative to its maximum over k, per
    method, as in paap's Table 2). Every DCEC run starts from the one pretrained `models/cae.pt`.

Result cache: one JSON per run in `models/compare_cache/<key>.json` (a `persist: true` output), where the
key hashes the method, k, seed, the method's settings and the sha1 of images.npy, labels.csv and (for
methods that use it) cae.pt. Changing one k or one seed computes only the new runs; a run shared by (a)
and (b) is computed once.
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from common import atomic_path, load_params, progress, write_json
from model.data import ImageSet, load_image_set
from model.methods import CAE_PATH, ClusteringMethod, MethodResult, get_method
from model.metrics import internal_metrics, label_metrics
from model.runtime import keep_freed_memory

IMAGES_PATH = Path("data/final/images.npy")
LABELS_PATH = Path("data/final/labels.csv")
CACHE_DIR = Path("models/compare_cache")
OUT_DIR = Path("reports/compare")
SWEEP_METHODS = ("cae_kmeans", "dcec")  # the two columns of the paper's Table 2
LABEL_KEYS = ("acc", "nmi_arithmetic", "nmi_geometric", "ari", "purity")
INTERNAL_KEYS = ("silhouette", "calinski_harabasz")
METRIC_KEYS = LABEL_KEYS + INTERNAL_KEYS
CACHE_VERSION = 1  # bump when the cached record's meaning changes: every old entry becomes a miss
HASH_CHUNK = 1 << 20


@dataclass(frozen=True, order=True)
class RunSpec:
    method: str
    k: int
    seed: int


def plan_runs(methods: Sequence[str], seeds: Sequence[int], k: int, sweep_ks: Iterable[int],
              sweep_seeds: Sequence[int], sweep_methods: Sequence[str] = SWEEP_METHODS) -> list[RunSpec]:
    """All distinct runs of the comparison and the sweep, grouped by method (so per-method state such as
    the CAE embedding is reused), then by k and seed."""
    specs = {RunSpec(m, int(k), int(s)) for m in methods for s in seeds}
    ks = sorted({int(x) for x in sweep_ks} | {int(k)})
    specs |= {RunSpec(m, kk, int(s)) for m in sweep_methods for kk in ks for s in sweep_seeds}
    order = {name: i for i, name in enumerate(list(methods) + [m for m in sweep_methods if m not in methods])}
    return sorted(specs, key=lambda r: (order[r.method], r.k, r.seed))


def file_sha1(path: Path) -> str:
    """sha1 of a file's bytes, streamed."""
    digest = hashlib.sha1()
    with open(path, "rb") as fh:
        while chunk := fh.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def cache_key(spec: RunSpec, settings: Mapping[str, Any], fingerprints: Mapping[str, str]) -> str:
    """A stable hash of everything that determines one run's result."""
    payload = {"version": CACHE_VERSION, "method": spec.method, "k": spec.k, "seed": spec.seed,
               "settings": dict(settings), "inputs": dict(fingerprints)}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:32]


def finite_or_none(value: float) -> float | None:
    """JSON has no NaN: undefined metrics are written as null."""
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


def check_assignments(result: MethodResult, spec: RunSpec, n: int) -> np.ndarray:
    """The run's assignments as int64, or ValueError naming the run when the shape or range is wrong."""
    labels = np.asarray(result.assignments)
    if labels.shape != (n,):
        raise ValueError(f"{spec}: {labels.shape} assignments for {n} images")
    if labels.size and (labels.min() < 0 or labels.max() >= spec.k):
        raise ValueError(f"{spec}: assignments outside 0..{spec.k - 1} (min {labels.min()}, max {labels.max()})")
    if result.embedding is not None and np.asarray(result.embedding).shape[0] != n:
        raise ValueError(f"{spec}: embedding has {np.asarray(result.embedding).shape[0]} rows for {n} images")
    return labels.astype(np.int64)


def score_run(result: MethodResult, spec: RunSpec, y_true: np.ndarray) -> dict[str, float]:
    """Artist-label metrics, plus silhouette and CH in the method's own embedding (NaN without one)."""
    y_pred = check_assignments(result, spec, y_true.size)
    scores = label_metrics(y_true, y_pred)
    if result.embedding is None:
        scores.update({key: math.nan for key in INTERNAL_KEYS})
    else:
        scores.update(internal_metrics(np.asarray(result.embedding), y_pred, seed=spec.seed))
    return scores


def read_cached(path: Path, key: str) -> dict | None:
    """The cached record at `path` if it is readable and made for `key`; None otherwise (then recomputed)."""
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        print(f"compare: ignoring unreadable cache entry {path} ({exc})", file=sys.stderr)
        return None
    return record if isinstance(record, dict) and record.get("key") == key else None


def compute_run(spec: RunSpec, method: ClusteringMethod, image_set: ImageSet, y_true: np.ndarray,
                key: str) -> dict:
    """Fit one run and build its cache record (metrics with NaN as null, assignments, extra, timing)."""
    started = time.perf_counter()
    result = method.fit(image_set, spec.k, spec.seed)
    seconds = time.perf_counter() - started
    scores = score_run(result, spec, y_true)
    return {"key": key, "version": CACHE_VERSION, "method": spec.method, "k": spec.k, "seed": spec.seed,
            "settings": method.settings, "n": int(y_true.size),
            "metrics": {name: finite_or_none(value) for name, value in scores.items()},
            "n_nonempty_clusters": int(np.unique(result.assignments).size),
            "fit_seconds": round(seconds, 3), "extra": result.extra,
            "assignments": np.asarray(result.assignments, dtype=np.int64).tolist()}


def execute_runs(specs: Sequence[RunSpec], methods: Mapping[str, ClusteringMethod], image_set: ImageSet,
                 cache_dir: Path, fingerprints: Mapping[str, str]) -> list[dict]:
    """Each run from the cache when present, else computed and cached (atomically); one line per run.

    `fingerprints` holds "images" and "labels" sha1s and, used only for methods with `uses_cae`, "cae".
    """
    y_true = image_set.artist_ids
    if y_true is None:
        raise ValueError("compare needs artist labels (data/final/labels.csv)")
    records = []
    for spec in progress(specs, desc="compare", total=len(specs), unit="run"):
        method = methods[spec.method]
        inputs = {name: sha for name, sha in fingerprints.items() if name != "cae" or method.uses_cae}
        key = cache_key(spec, method.settings, inputs)
        path = cache_dir / f"{key}.json"
        record = read_cached(path, key)
        status = "cached"
        if record is None:
            record = compute_run(spec, method, image_set, y_true, key)
            write_json(path, record)
            status = f"computed in {record['fit_seconds']:.1f} s"
        metrics = record["metrics"]
        print(f"compare: {spec.method} k={spec.k} seed={spec.seed}: {status}; "
              f"acc={metrics['acc']:.3f} nmi_arithmetic={metrics['nmi_arithmetic']:.3f}", file=sys.stderr)
        records.append(record)
    return records


def records_frame(records: Sequence[dict]) -> pd.DataFrame:
    """One row per run: method, k, seed, the seven metrics (NaN where undefined), n, n_iter, converged."""
    rows = []
    for record in records:
        row = {"method": record["method"], "k": record["k"], "seed": record["seed"], "n": record["n"],
               "n_nonempty_clusters": record["n_nonempty_clusters"]}
        row.update({key: np.nan if record["metrics"].get(key) is None else record["metrics"][key]
                    for key in METRIC_KEYS})
        row["n_iter"] = record["extra"].get("n_iter")
        row["converged"] = record["extra"].get("converged")
        rows.append(row)
    return pd.DataFrame(rows, columns=["method", "k", "seed", *METRIC_KEYS, "n", "n_nonempty_clusters",
                                       "n_iter", "converged"])


def comparison_runs(frame: pd.DataFrame, methods: Sequence[str], k: int, seeds: Sequence[int]) -> pd.DataFrame:
    """The method-comparison rows (k = model.k, the comparison seeds), in params order."""
    rows = frame[(frame["k"] == k) & frame["seed"].isin(list(seeds)) & frame["method"].isin(list(methods))]
    order = {name: i for i, name in enumerate(methods)}
    return rows.sort_values(["method", "seed"], key=lambda col: col.map(order) if col.name == "method" else col,
                            kind="stable").reset_index(drop=True)


def mean_std(values: np.ndarray) -> dict[str, float | None]:
    """Mean and sample standard deviation (ddof=1; 0 for a single run) of the finite values; null if none."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return {"mean": None, "std": None}
    std = float(np.std(finite, ddof=1)) if finite.size > 1 else 0.0
    return {"mean": float(np.mean(finite)), "std": std}


def summarise(runs: pd.DataFrame, methods: Sequence[str], k: int, seeds: Sequence[int]) -> dict:
    """summary.json: per method, mean ± std over seeds of every metric, with the conventions stated."""
    return {
        "k": int(k), "seeds": [int(s) for s in seeds], "n_seeds": len(seeds), "n": int(runs["n"].iloc[0]),
        "aggregate": "mean and sample standard deviation (ddof=1) over seeds; not best-of",
        "nmi": "nmi_arithmetic: I/((H(Y)+H(C))/2) (sklearn >= 0.22 default, V-measure); "
               "nmi_geometric: I/sqrt(H(Y)H(C)) (DCEC, DEC-keras 2017, DeepCluster)",
        "internal": "silhouette and calinski_harabasz are computed in each method's own embedding "
                    "(kmeans_pixels: none) and are not comparable across methods",
        "methods": {m: {key: mean_std(runs.loc[runs["method"] == m, key].to_numpy(dtype=float))
                        for key in METRIC_KEYS} for m in methods},
    }


def relative_to_max(values: Sequence[float]) -> np.ndarray:
    """values / max(values) over the finite ones (paap normalises CH by its maximum over k)."""
    values = np.asarray(values, dtype=float)
    finite = values[np.isfinite(values)]
    if finite.size == 0 or finite.max() <= 0:
        return np.full(values.shape, np.nan)
    return values / finite.max()


def sweep_table(frame: pd.DataFrame, ks: Iterable[int], seeds: Sequence[int],
                sweep_methods: Sequence[str] = SWEEP_METHODS) -> pd.DataFrame:
    """sweep.csv: one row per (method, k) with the metrics averaged over the sweep seeds, and
    calinski_harabasz_rel = calinski_harabasz / its maximum over k for that method."""
    ks = sorted({int(x) for x in ks})
    rows = frame[frame["method"].isin(list(sweep_methods)) & frame["k"].isin(ks) & frame["seed"].isin(list(seeds))]
    grouped = rows.groupby(["method", "k"], sort=False)
    table = grouped[list(METRIC_KEYS)].mean().reset_index()
    table.insert(2, "n_seeds", grouped.size().to_numpy())
    table["calinski_harabasz_rel"] = np.nan
    for method in sweep_methods:
        mask = table["method"] == method
        table.loc[mask, "calinski_harabasz_rel"] = relative_to_max(table.loc[mask, "calinski_harabasz"])
    order = {name: i for i, name in enumerate(sweep_methods)}
    table = table.sort_values(["method", "k"], key=lambda col: col.map(order) if col.name == "method" else col)
    columns = ["method", "k", "n_seeds", "silhouette", "calinski_harabasz", "calinski_harabasz_rel", *LABEL_KEYS]
    return table[columns].reset_index(drop=True)


def write_csv(frame: pd.DataFrame, path: Path) -> None:
    """CSV with LF line endings (DVC hashes bytes), atomically."""
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False, lineterminator="\n", float_format="%.6g")


def main() -> None:
    params = load_params()
    keep_freed_memory(bool(params["model"]["keep_freed_memory"]))
    model_params, compare_params = params["model"], params["compare"]
    k, methods_order = int(model_params["k"]), list(compare_params["methods"])
    seeds, sweep_seeds = list(compare_params["seeds"]), list(compare_params["sweep_seeds"])
    sweep_ks = sorted({int(x) for x in compare_params["sweep_ks"]} | {k})

    specs = plan_runs(methods_order, seeds, k, sweep_ks, sweep_seeds)
    methods = {name: get_method(name, params, CAE_PATH) for name in {spec.method for spec in specs}}
    image_set = load_image_set(IMAGES_PATH, LABELS_PATH)
    fingerprints = {"images": file_sha1(IMAGES_PATH), "labels": file_sha1(LABELS_PATH)}
    if any(method.uses_cae for method in methods.values()):
        fingerprints["cae"] = file_sha1(CAE_PATH)

    frame = records_frame(execute_runs(specs, methods, image_set, CACHE_DIR, fingerprints))
    runs = comparison_runs(frame, methods_order, k, seeds)
    write_csv(runs, OUT_DIR / "runs.csv")
    write_json(OUT_DIR / "summary.json", summarise(runs, methods_order, k, seeds))
    write_csv(sweep_table(frame, sweep_ks, sweep_seeds), OUT_DIR / "sweep.csv")


if __name__ == "__main__":
    main()
