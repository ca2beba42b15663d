"""The compare stage's runs on a Ray cluster (`compare.executor: ray`, `compare.ray_address`).

    pip install '.[cluster]'            # Ray is an optional extra, never needed for the default pipeline
    ray start --head                    # on one machine; `ray start --address=<head>:6379` on the others
    dvc exp run -S compare.executor=ray

Every (method, seed, k) run is one Ray task: `num_gpus=1` when the model runs on CUDA, else `num_cpus` =
`compare.threads_per_run` (torch uses that many threads in the task). The device and precision are the
driver's decision (`model.runs.pin_device`), the ones in the run's cache key: the task carries them, and a
worker that cannot honour them (asked for CUDA, has none) fails the run with a message instead of computing
something else under that key. The driver ships the inputs through
Ray's object store — the images, the labels and the bytes of every seed's pretrained CAE — so worker machines
need no copy of `data/` or `models/`. A task whose worker or node dies is run again by Ray (`max_retries`).
Results come back to the driver, which writes them to the same content-addressed cache as a local run
(model/compare.py): a finished run is never computed twice, and the stage's outputs are those of a local run.
"""

from __future__ import annotations

import hashlib
import socket
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from model.data import ImageSet
from model.methods import CAE_SEEDS_DIR, get_method, seed_cae_path
from model.runs import compute_run, limit_threads, threads_per_run

TASK_RETRIES = 3  # a run whose worker or node is lost is started again this many times


def import_ray() -> Any:
    try:
        import ray  # noqa: PLC0415 - optional extra
    except ImportError:
        raise SystemExit("compare.executor is 'ray' but Ray is not installed: pip install '.[cluster]'") from None
    return ray


_task_state: dict[str, Any] = {}  # per Ray worker process: the CAE folder written from the shipped bytes


def _cae_dir(cae_blobs: dict[int, bytes]) -> Path:
    """A folder of `seed-<s>.pt` files made from the shipped CAE bytes, once per worker process and content."""
    digest = hashlib.sha1(b"".join(cae_blobs[s] for s in sorted(cae_blobs))).hexdigest()  # noqa: S324
    if _task_state.get("digest") != digest:
        folder = Path(tempfile.mkdtemp(prefix="compare-caes-"))
        for seed, blob in cae_blobs.items():
            seed_cae_path(folder, seed).write_bytes(blob)
        _task_state.update(digest=digest, folder=folder)
    return _task_state["folder"]


def check_device(device: str) -> None:
    """RuntimeError unless this worker has the device the driver decided on (and keyed the run with)."""
    if torch.device(device).type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"this run is keyed and planned for {device!r} (the driver's model.device), but the Ray "
                           f"worker on {socket.gethostname()} has no CUDA device; give the cluster's GPU nodes the "
                           f"tasks (ray start --num-gpus) or set model.device: cpu")


def run_task(params: dict, images: np.ndarray, labels: pd.DataFrame, cae_blobs: dict[int, bytes], spec: Any,
             key: str, threads: int) -> dict:
    """One run inside a Ray worker: the same `compute_run` as a local run, from the shipped inputs and the
    driver's pinned params (device and precision decided there)."""
    check_device(params["model"]["device"])
    limit_threads(threads)
    image_set = ImageSet(images=torch.from_numpy(np.ascontiguousarray(images)), labels=labels)
    method = get_method(spec.method, params, _cae_dir(cae_blobs))
    return compute_run(spec, method, image_set, key)


def check_fits_a_node(ray: Any, cpus: int) -> None:
    """ValueError unless some live node offers `cpus` CPUs: Ray would otherwise keep such a task pending forever."""
    largest = max((node["Resources"].get("CPU", 0) for node in ray.nodes() if node["Alive"]), default=0)
    if largest < cpus:
        raise ValueError(f"params.yaml compare.threads_per_run is {cpus}, but the largest node of the Ray cluster "
                         f"offers {largest:g} CPUs: no node can run a task; lower threads_per_run or start the nodes "
                         f"with more CPUs (ray start --num-cpus)")


class RayRunner:
    """Computes the runs as Ray tasks on the cluster at `compare.ray_address`; yields each as it finishes."""

    def __init__(self, pinned: dict, image_set: ImageSet, cae_dir: Path = CAE_SEEDS_DIR):
        device_type = torch.device(pinned["model"]["device"]).type  # workers see their GPU as cuda:0
        self.params = pinned | {"model": pinned["model"] | {"device": device_type}}
        self.image_set, self.cae_dir = image_set, Path(cae_dir)
        self.address = str(pinned["compare"].get("ray_address") or "auto")
        self.cpus = threads_per_run(pinned)
        self.on_gpu = device_type == "cuda"

    def map(self, jobs: Sequence[tuple[Any, str]]) -> Iterator[tuple[Any, dict]]:
        if not jobs:
            return
        ray = import_ray()
        ray.init(address=self.address, ignore_reinit_error=True, logging_level="WARNING", log_to_driver=False)
        seeds = sorted({spec.seed for spec, _ in jobs})
        caes = {seed: seed_cae_path(self.cae_dir, seed) for seed in seeds}
        blobs = ray.put({seed: path.read_bytes() for seed, path in caes.items() if path.is_file()})
        images = ray.put(self.image_set.images.numpy())
        labels = ray.put(self.image_set.labels)
        if not self.on_gpu:
            check_fits_a_node(ray, self.cpus)
        resources = {"num_gpus": 1} if self.on_gpu else {"num_cpus": self.cpus}
        task = ray.remote(max_retries=TASK_RETRIES, **resources)(run_task)
        pending = {task.remote(self.params, images, labels, blobs, spec, key, self.cpus): spec for spec, key in jobs}
        print(f"compare: {len(pending)} runs submitted to the Ray cluster at {self.address} "
              f"({ray.cluster_resources().get('CPU', 0):g} CPUs, {ray.cluster_resources().get('GPU', 0):g} GPUs)",
              file=sys.stderr)
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                yield pending.pop(ref), ray.get(ref)
