"""One run of the compare stage — a method at one k and seed — its cache key, and how it is computed.

Both executors import this module (the local one, model/local_executor.py, and Ray's, model/ray_executor.py);
neither imports the other, nor the stage (model/compare.py).

The key of a run is everything its result depends on (`cache_key`): method, k, seed, the method's settings,
the sha1 of its inputs, and `run_provenance`: the code (the import closure of this module within `model/`, by
content: `common.provenance`), the versions of the libraries whose kernels it runs, the device type, the
precision and the thread count. Which model modules: all that this module imports, directly or not — it
imports model/methods.py, which imports every method's module, so a method added there is in every run's key
without being listed. Per method it is coarser than need be (an edit to DeepCluster recomputes DCEC's runs
too), but never stale: a hand-kept list per method would be finer until someone forgot a module in it.

The device and precision are decided once, by the stage, in `pin_device`: every method of every run, in any
executor or worker, is built from the pinned params, so a run computes on the device and in the precision its
key names, or (on a Ray worker without that device) fails.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from common.provenance import REPO_ROOT, provenance
from model.data import ImageSet
from model.methods import ClusteringMethod, MethodResult
from model.metrics import internal_metrics, label_metrics
from model.runtime import KERNEL_LIBRARIES, autocast_dtype, pick_device, precision_name

CACHE_VERSION = 4  # the record's format only (4: it names its provenance); what computed it is in the key
INTERNAL_KEYS = ("silhouette", "calinski_harabasz")
RUN_MODULES = ("model.runs",)  # the code of a run: this module's import closure in model/


@dataclass(frozen=True, order=True)
class RunSpec:
    method: str
    k: int
    seed: int


def threads_per_run(params: dict) -> int:
    """compare.threads_per_run: the torch and OpenMP/BLAS threads of one run in either executor. Fixed by the
    settings, not by the machine's cores, so the same settings give the same bytes on any machine."""
    threads = params["compare"]["threads_per_run"]
    if not isinstance(threads, int) or isinstance(threads, bool) or threads < 1:
        raise ValueError(f"params.yaml compare.threads_per_run must be a whole number of at least 1, got {threads!r}")
    return threads


def limit_threads(threads: int) -> None:
    """`threads` for torch and for the OpenMP/BLAS pools (scikit-learn's k-means): a run then sums in the same
    order whichever executor runs it, so local and Ray runs give identical results."""
    torch.set_num_threads(threads)
    threadpool_limits(limits=threads)


def pin_device(params: dict) -> dict:
    """`params` with model.device and model.mixed_precision decided here, once for the stage: the device
    (`model.device`, "auto" resolved on this machine) and "bf16" or "off" as in effect on it. Methods built
    from the result compute exactly what `run_provenance(result)` says, on any worker."""
    model = params["model"]
    device = pick_device(model["device"])
    precision = "bf16" if autocast_dtype(model["mixed_precision"], device) else "off"
    return params | {"model": model | {"device": str(device), "mixed_precision": precision}}


def run_provenance(pinned: dict, root: Path = REPO_ROOT) -> dict:
    """The code, libraries, device type, precision and threads of every run under `pinned` params
    (`pin_device`); part of each run's cache key. `root`: where `model/` is (tests use a scratch copy)."""
    model = pinned["model"]
    return provenance(RUN_MODULES, KERNEL_LIBRARIES, root, device=torch.device(model["device"]).type,
                      precision=precision_name(model["mixed_precision"], torch.device(model["device"])),
                      threads=threads_per_run(pinned))


def cache_key(spec: RunSpec, settings: Mapping[str, Any], fingerprints: Mapping[str, str], origin: Mapping) -> str:
    """A stable hash of everything that determines one run's result: the run, the method's settings, its
    inputs' sha1s and `origin` (`run_provenance`: code, libraries, device, precision, threads — k-means and
    DeepCluster's training sum in an order that depends on the thread count)."""
    payload = {"version": CACHE_VERSION, "method": spec.method, "k": spec.k, "seed": spec.seed,
               "settings": dict(settings), "inputs": dict(fingerprints), "provenance": dict(origin)}
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


def compute_run(spec: RunSpec, method: ClusteringMethod, image_set: ImageSet, key: str) -> dict:
    """Fit one run and build its cache record (metrics with NaN as null, assignments, extra, timing)."""
    y_true = image_set.artist_ids
    started = time.perf_counter()
    result = method.fit(image_set, spec.k, spec.seed)
    seconds = time.perf_counter() - started
    scores = score_run(result, spec, y_true)
    return {"key": key, "version": CACHE_VERSION, "method": spec.method, "k": spec.k, "seed": spec.seed,
            "pretrain_seed": spec.seed if method.uses_cae else None,
            "settings": method.settings, "n": int(y_true.size),
            "metrics": {name: finite_or_none(value) for name, value in scores.items()},
            "n_nonempty_clusters": int(np.unique(result.assignments).size),
            "fit_seconds": round(seconds, 3), "extra": result.extra,
            "assignments": np.asarray(result.assignments, dtype=np.int64).tolist()}
