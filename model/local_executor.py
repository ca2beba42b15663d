"""The compare stage's runs on this machine (`compare.executor: local`): in this process, or in worker processes.

Each executor has `map(jobs)` over (RunSpec, cache key) pairs, yielding (RunSpec, record) as runs finish.
The params given here are the stage's pinned params (`model.runs.pin_device`), so every run computes on the
device and in the precision its key names.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

from model.data import ImageSet, load_image_set
from model.methods import CAE_SEEDS_DIR, ClusteringMethod, get_method
from model.runs import RunSpec, compute_run, limit_threads, threads_per_run
from model.runtime import keep_freed_memory

Job = tuple[RunSpec, str]  # a run and its cache key


class InProcess:
    """Computes the runs one after another in this process, with the given method objects; with `threads`, this
    process's torch and OpenMP/BLAS pools are limited to that many first (None: left as they are)."""

    def __init__(self, methods: Mapping[str, ClusteringMethod], image_set: ImageSet, threads: int | None = None):
        self.methods, self.image_set, self.threads = methods, image_set, threads

    def map(self, jobs: Sequence[Job]) -> Iterator[tuple[RunSpec, dict]]:
        if jobs and self.threads is not None:
            limit_threads(self.threads)
        for spec, key in jobs:
            yield spec, compute_run(spec, self.methods[spec.method], self.image_set, key)


_worker_state: dict[str, Any] = {}  # per worker process: params, image set, method objects


def _start_worker(params: dict, threads: int, images_path: Path, labels_path: Path) -> None:
    limit_threads(threads)
    keep_freed_memory(bool(params["model"]["keep_freed_memory"]))
    _worker_state.update(params=params, image_set=load_image_set(images_path, labels_path), methods={})


def _run_in_worker(spec: RunSpec, key: str) -> dict:
    methods = _worker_state["methods"]
    if spec.method not in methods:
        methods[spec.method] = get_method(spec.method, _worker_state["params"], CAE_SEEDS_DIR)
    return compute_run(spec, methods[spec.method], _worker_state["image_set"], key)


class WorkerPool:
    """Computes the runs in `workers` spawned processes, each with `compare.threads_per_run` torch threads.

    Why: at the embedded default's 32 px a training step is mostly per-operator overhead, so two
    single-threaded runs side by side did 1.0–1.4× the work of one run on two threads (docs/BENCHMARKS.md).
    Each worker loads the image set once and keeps its method objects (and their per-seed CAE memos).
    """

    def __init__(self, params: dict, workers: int, images_path: Path, labels_path: Path):
        self.params, self.workers = params, workers
        self.threads = threads_per_run(params)
        self.paths = (Path(images_path), Path(labels_path))

    def map(self, jobs: Sequence[Job]) -> Iterator[tuple[RunSpec, dict]]:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(self.workers, mp_context=context, initializer=_start_worker,
                                 initargs=(self.params, self.threads, *self.paths)) as pool:
            futures = {pool.submit(_run_in_worker, spec, key): spec for spec, key in jobs}
            for future in as_completed(futures):
                yield futures[future], future.result()
