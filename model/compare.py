"""Stage `compare`: every clustering method × seed at k = model.k, and the k sweep (the paper's Table 2).

(a) Method comparison: each method in `compare.methods` × each seed in `compare.seeds` at k = `model.k`,
    scored against the artist labels (ACC, NMI arithmetic and geometric, ARI, purity) and in its own
    embedding (silhouette, Calinski-Harabasz) → `reports/compare/runs.csv` (with `pretrain_seed` and, for
    DCEC runs, iterations used, converged, last delta_label) and `reports/compare/summary.json`: mean ± sample
    std per method, convergence, and under `comparisons` DCEC against every other method on every label
    metric, paired by seed (`model.metrics.paired_difference`: mean difference, 95% t-interval, verdict).
(b) k sweep: CAE+k-means and DCEC for k in `compare.sweep_ks` ∪ {model.k}, seeds `compare.sweep_seeds`
    → `reports/compare/sweep.csv` (means over the sweep seeds; CH also relative to its maximum over k, per
    method, as in paap's Table 2).

A run's seed seeds everything random in it: the CAE-based methods of seed s start from the CAE pretrained
with seed s (`models/cae_seeds/seed-<s>.pt`, from the pretrain stage), so the seeds vary pretraining too.

Result cache: one JSON per run in `models/compare_cache/<key>.json` (a `persist: true` output), where the
key hashes the method, k, seed, the method's settings, the sha1 of images.npy, labels.csv and (for methods
that use it) the seed's CAE, and what computes the run: the code, the libraries, the device, the precision and
the threads (model/runs.py, `cache_key`). Changing one k or one seed computes only the new runs; a run shared
by (a) and (b) is computed once; a change to the code that computes a run recomputes it.

What computes one run is model/runs.py; the executors (model/local_executor.py, model/ray_executor.py)
import it, and this module picks one of them.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from common import atomic_path, file_sha1, load_params, progress, write_json
from model.data import ImageSet, load_image_set
from model.local_executor import InProcess, Job, WorkerPool
from model.methods import CAE_SEEDS_DIR, ClusteringMethod, get_method, seed_cae_path
from model.metrics import paired_difference
from model.runs import INTERNAL_KEYS, RunSpec, cache_key, pin_device, run_provenance, threads_per_run
from model.runtime import keep_freed_memory

# The params this stage reads (dvc.yaml declares exactly these; tests/test_dvc_params.py).
PARAMS = (
    "model.k", "model.device", "model.compile", "model.eval_batch_size", "model.mixed_precision",
    "model.keep_freed_memory", "cluster", "compare", "deepcluster", "n2d"
)
IMAGES_PATH = Path("data/final/images.npy")
LABELS_PATH = Path("data/final/labels.csv")
CACHE_DIR = Path("models/compare_cache")
OUT_DIR = Path("reports/compare")
SWEEP_METHODS = ("cae_kmeans", "dcec")  # the two columns of the paper's Table 2
LABEL_KEYS = ("acc", "nmi_arithmetic", "nmi_geometric", "ari", "purity")
METRIC_KEYS = LABEL_KEYS + INTERNAL_KEYS
REFERENCE_METHOD = "dcec"  # the method every other one is compared with, paired by seed


def plan_runs(methods: Sequence[str], seeds: Sequence[int], k: int, sweep_ks: Iterable[int],
              sweep_seeds: Sequence[int], sweep_methods: Sequence[str] = SWEEP_METHODS) -> list[RunSpec]:
    """All distinct runs of the comparison and the sweep, grouped by method (so per-method state such as
    the CAE embedding is reused), then by k and seed."""
    specs = {RunSpec(m, int(k), int(s)) for m in methods for s in seeds}
    ks = sorted({int(x) for x in sweep_ks} | {int(k)})
    specs |= {RunSpec(m, kk, int(s)) for m in sweep_methods for kk in ks for s in sweep_seeds}
    order = {name: i for i, name in enumerate(list(methods) + [m for m in sweep_methods if m not in methods])}
    return sorted(specs, key=lambda r: (order[r.method], r.k, r.seed))


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


def execute_runs(specs: Sequence[RunSpec], methods: Mapping[str, ClusteringMethod], image_set: ImageSet,
                 cache_dir: Path, fingerprints: Mapping[str, str], cae_fingerprints: Mapping[int, str],
                 origin: Mapping, runner: Any = None) -> list[dict]:
    """Each run from the cache when present, else computed by `runner` (default: in this process) and
    cached atomically as it finishes, with its provenance; one line per run. Records come back in the order of
    `specs`.

    `fingerprints` holds the "images" and "labels" sha1s; `cae_fingerprints` the sha1 of each seed's CAE,
    part of the key of methods with `uses_cae` only. `origin`: `run_provenance` of the stage's pinned params
    (code, libraries, device, precision, threads), part of every key.
    """
    if image_set.artist_ids is None:
        raise ValueError("compare needs artist labels (data/final/labels.csv)")
    records: dict[RunSpec, dict] = {}
    pending: list[Job] = []
    for spec in specs:
        method = methods[spec.method]
        inputs = dict(fingerprints) | ({"cae": cae_fingerprints[spec.seed]} if method.uses_cae else {})
        key = cache_key(spec, method.settings, inputs, origin)
        record = read_cached(cache_dir / f"{key}.json", key)
        if record is None:
            pending.append((spec, key))
        else:
            records[spec] = record
            log_run(spec, record, "cached")
    print(f"compare: {len(records)} of {len(specs)} runs cached, {len(pending)} to compute", file=sys.stderr)
    runner = runner or InProcess(methods, image_set)
    for spec, record in progress(runner.map(pending), desc="compare", total=len(pending), unit="run"):
        record["provenance"] = dict(origin)
        write_json(cache_dir / f"{record['key']}.json", record)
        records[spec] = record
        log_run(spec, record, f"computed in {record['fit_seconds']:.1f} s")
    return [records[spec] for spec in specs]


def log_run(spec: RunSpec, record: dict, status: str) -> None:
    metrics = record["metrics"]
    print(f"compare: {spec.method} k={spec.k} seed={spec.seed}: {status}; "
          f"acc={metrics['acc']:.3f} nmi_arithmetic={metrics['nmi_arithmetic']:.3f}", file=sys.stderr)


def records_frame(records: Sequence[dict]) -> pd.DataFrame:
    """One row per run: method, k, seed, pretrain_seed (the seed of the CAE it started from; empty for methods
    without one), the seven metrics (NaN where undefined), n, and for DCEC runs n_iter, converged and the
    fraction of labels changed at the last P update (last_delta_label)."""
    rows = []
    for record in records:
        row = {"method": record["method"], "k": record["k"], "seed": record["seed"],
               "pretrain_seed": record["pretrain_seed"], "n": record["n"],
               "n_nonempty_clusters": record["n_nonempty_clusters"]}
        row.update({key: np.nan if record["metrics"].get(key) is None else record["metrics"][key]
                    for key in METRIC_KEYS})
        row["n_iter"] = record["extra"].get("n_iter")
        row["converged"] = record["extra"].get("converged")
        row["last_delta_label"] = record["extra"].get("last_delta_label")
        rows.append(row)
    frame = pd.DataFrame(rows, columns=["method", "k", "seed", "pretrain_seed", *METRIC_KEYS, "n",
                                        "n_nonempty_clusters", "n_iter", "converged", "last_delta_label"])
    return frame.astype({"pretrain_seed": "Int64", "n_iter": "Int64"})


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


def per_seed(runs: pd.DataFrame, method: str, metric: str) -> dict[int, float]:
    """{seed: value} of one method's metric in the comparison runs."""
    rows = runs[runs["method"] == method]
    return dict(zip(rows["seed"].astype(int), rows[metric].astype(float)))


def comparisons(runs: pd.DataFrame, methods: Sequence[str], reference: str = REFERENCE_METHOD) -> dict:
    """{other method: {label metric: paired_difference(reference, other)}}; empty without the reference.

    Internal metrics are left out: each is computed in its method's own embedding (not comparable)."""
    if reference not in methods:
        return {}
    return {other: {metric: paired_difference(per_seed(runs, reference, metric), per_seed(runs, other, metric))
                    for metric in LABEL_KEYS}
            for other in methods if other != reference}


def convergence(runs: pd.DataFrame, methods: Sequence[str]) -> dict:
    """Per method with a joint phase: runs that converged by tol, iterations used, the last delta_label,
    and what tol means at this N (below 1/N it means "no label changed at all")."""
    out = {}
    for method in methods:
        rows = runs[(runs["method"] == method) & runs["n_iter"].notna()]
        if rows.empty:
            continue
        out[method] = {"runs": int(len(rows)), "converged": int(rows["converged"].astype(bool).sum()),
                       "n_iter": [int(v) for v in rows["n_iter"]],
                       "last_delta_label": [float(v) for v in rows["last_delta_label"]]}
    return out


def tol_note(tol: float, n: int) -> str:
    """How to read `cluster.tol` at N images: below 1/N, the stop needs every label unchanged."""
    if tol * n < 1:
        return (f"cluster.tol {tol:g} < 1/N = {1 / n:.4g}: a run converges only when no label at all changed "
                f"between two P updates")
    return f"cluster.tol {tol:g}: a run converges when fewer than {tol * n:.1f} of {n} labels changed between P updates"


def summarise(runs: pd.DataFrame, methods: Sequence[str], k: int, seeds: Sequence[int], tol: float) -> dict:
    """summary.json: per method, mean ± std over seeds of every metric; convergence; DCEC's paired
    comparisons with every other method; the conventions stated."""
    n = int(runs["n"].iloc[0])
    return {
        "k": int(k), "seeds": [int(s) for s in seeds], "n_seeds": len(seeds), "n": n,
        "aggregate": "mean and sample standard deviation (ddof=1) over seeds; not best-of",
        "seeding": "seed s seeds every random step of a run, pretraining included: the CAE-based methods of "
                   "seed s share the CAE pretrained with seed s",
        "nmi": "nmi_arithmetic: I/((H(Y)+H(C))/2) (sklearn >= 0.22 default, V-measure); "
               "nmi_geometric: I/sqrt(H(Y)H(C)) (DCEC, DEC-keras 2017, DeepCluster)",
        "internal": "silhouette and calinski_harabasz are computed in each method's own embedding "
                    "(kmeans_pixels: none; n2d: its UMAP manifold) and are not comparable across methods",
        "methods": {m: {key: mean_std(runs.loc[runs["method"] == m, key].to_numpy(dtype=float))
                        for key in METRIC_KEYS} for m in methods},
        "convergence": convergence(runs, methods),
        "tol_note": tol_note(tol, n),
        "comparisons_method": f"{REFERENCE_METHOD} minus the other method, per seed (paired); mean and two-sided "
                              "95% Student t-interval over the seeds; verdict 'better' if the interval is above "
                              "0, 'worse' if below, else 'no detectable difference'",
        "comparisons": comparisons(runs, methods),
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


def run_executor(pinned: dict, methods: Mapping[str, ClusteringMethod], image_set: ImageSet) -> Any:
    """`compare.executor: ray`: tasks on a Ray cluster (model/ray_executor.py). `local`: `compare.workers`
    processes on CPU; always in-process on CUDA (one GPU, one process). Every run has compare.threads_per_run
    threads and the device and precision of the `pinned` params (`pin_device`)."""
    executor = pinned["compare"].get("executor", "local")
    if executor == "ray":
        from model.ray_executor import RayRunner  # noqa: PLC0415 - Ray is an optional extra

        return RayRunner(pinned, image_set)
    if executor != "local":
        raise ValueError(f"params.yaml compare.executor is {executor!r}; expected 'local' or 'ray'")
    workers = int(pinned["compare"]["workers"])
    if workers < 1:
        raise ValueError(f"params.yaml compare.workers must be at least 1, got {workers}")
    if workers == 1 or pinned["model"]["device"].startswith("cuda"):
        return InProcess(methods, image_set, threads_per_run(pinned))
    return WorkerPool(pinned, workers, IMAGES_PATH, LABELS_PATH)


def cae_shas(seeds: Iterable[int], cae_dir: Path) -> dict[int, str]:
    """sha1 of the CAE of each seed; FileNotFoundError naming the missing ones and the stage that makes them."""
    paths = {seed: seed_cae_path(cae_dir, seed) for seed in sorted(seeds)}
    missing = [str(path) for path in paths.values() if not path.is_file()]
    if missing:
        raise FileNotFoundError(f"no pretrained CAE for {', '.join(missing)}: the pretrain stage trains one per "
                                f"seed of compare.seeds and compare.sweep_seeds (dvc repro pretrain)")
    return {seed: file_sha1(path) for seed, path in paths.items()}


def write_csv(frame: pd.DataFrame, path: Path) -> None:
    """CSV with LF line endings (DVC hashes bytes), atomically."""
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False, lineterminator="\n", float_format="%.6g")


def main() -> None:
    params = pin_device(load_params(keys=PARAMS))  # the one device and precision decision of every run
    keep_freed_memory(bool(params["model"]["keep_freed_memory"]))
    model_params, compare_params = params["model"], params["compare"]
    k, methods_order = int(model_params["k"]), list(compare_params["methods"])
    seeds, sweep_seeds = list(compare_params["seeds"]), list(compare_params["sweep_seeds"])
    sweep_ks = sorted({int(x) for x in compare_params["sweep_ks"]} | {k})

    specs = plan_runs(methods_order, seeds, k, sweep_ks, sweep_seeds)
    methods = {name: get_method(name, params, CAE_SEEDS_DIR) for name in {spec.method for spec in specs}}
    image_set = load_image_set(IMAGES_PATH, LABELS_PATH)
    fingerprints = {"images": file_sha1(IMAGES_PATH), "labels": file_sha1(LABELS_PATH)}
    cae_fingerprints = cae_shas({spec.seed for spec in specs if methods[spec.method].uses_cae}, CAE_SEEDS_DIR)

    runner = run_executor(params, methods, image_set)
    frame = records_frame(execute_runs(specs, methods, image_set, CACHE_DIR, fingerprints, cae_fingerprints,
                                       run_provenance(params), runner))
    runs = comparison_runs(frame, methods_order, k, seeds)
    write_csv(runs, OUT_DIR / "runs.csv")
    write_json(OUT_DIR / "summary.json", summarise(runs, methods_order, k, seeds, float(params["cluster"]["tol"])))
    write_csv(sweep_table(frame, sweep_ks, sweep_seeds), OUT_DIR / "sweep.csv")


if __name__ == "__main__":
    main()
