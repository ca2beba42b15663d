"""Benchmark: the paper profile's whole experiment matrix, costed run by run on this device, and its wall time
against the number of devices a Ray cluster gives the compare stage (issue #18).

    python -m bench.paper_matrix [--profile profiles/paper.yaml] [--devices 1 2 4 8 16] [--no-record]

`make repro-paper` is the pretrain stage (one CAE of 200 epochs per comparison seed), the cluster stage (one
DCEC run) and the compare stage (every method × seed at k, plus the k sweep: model.compare.plan_runs). Only
compare's runs spread over a cluster (`compare.executor: ray`); pretrain and cluster run on one device, so
they stay a serial floor however many devices there are.

Every run's cost is built from unit costs measured here, in this run, on synthetic images of the paper's
shape (10,500 × 128 × 128 × 3, random noise: speed does not depend on content, convergence does):

- pretraining: img/s of `model.pretrain.train_cae` at the profile's batch (second of two short epochs);
- DCEC: ms per joint step at the profile's batch, img/s of the target-distribution pass, k-means of the
  embedding at each k with the profile's restarts. Every DCEC run is charged all `maxiter` iterations (an
  upper bound: on paintings it stops when fewer than `tol` of the labels change; the no-KL control never does);
- CAE + k-means: one embedding pass and k-means;
- k-means on raw pixels: the k-means++ initialisation and one Lloyd iteration timed at full size (an upper
  bound per iteration), charged PIXEL_LLOYD_ITERATIONS iterations per restart (an assumption, from the
  mission-size demo, since noise converges in two);
- PCA + k-means: the randomised PCA at full size, then k-means of the projection;
- DeepCluster: one real epoch of `fit_deepcluster` on a subset, scaled linearly to the full set;
- N2D: one embedding pass and UMAP + the Gaussian mixture (`n2d_cluster`, the profile's `n2d` settings) of the
  (N, E) embedding at k = model.k, timed after a warm-up on 100 rows (numba compiles UMAP on first use).

The wall time for G devices is the serial floor plus the compare runs placed longest-first on G devices (list
scheduling: within 4/3 of the best schedule; Ray's own order may do worse), printed beside the lower bound no
schedule can beat. An estimate from measured unit costs, not a measured paper run: `make bench-paper` on a
GPU measures the real thing.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA

from bench import _record
from bench._workloads import architecture_from_params, synthetic_images
from bench.paper_run import hours, kmeans_seconds, measure_pretrain_rate, measure_step_and_target, paper_config
from common import load_params
from common.profiles import apply_profile, load_profile
from model.compare import plan_runs
from model.data import ImageSet
from model.deepcluster_train import DeepClusterConfig, fit_deepcluster
from model.methods import n2d_cluster, pixels_matrix
from model.pretrain import comparison_seeds
from model.runtime import keep_freed_memory, pick_device

PAPER_N_IMAGES = 10_500
PIXEL_LLOYD_ITERATIONS = 51  # one restart at 10,765 × 49,152, k = 50, on the mission-size demo (docs/BENCHMARKS.md)
DEFAULT_DEVICES = (1, 2, 4, 8, 16)
CLUSTER_STEPS_PER_ROUND = 2  # joint steps per timed round (3 rounds, median)


@dataclass(frozen=True)
class UnitCosts:
    """What one run is made of, measured on this device (seconds, or images per second)."""

    pretrain_img_s: float
    cluster_step_s: float
    target_img_s: float
    kmeans_embedding_s: dict[int, float]  # k → one k-means of the (N, E) embedding with the profile's restarts
    pixel_init_s: float  # one k-means++ initialisation in pixel space at k = model.k
    pixel_iteration_s: float  # one Lloyd iteration in pixel space at k = model.k
    pca_s: float
    kmeans_projection_s: float  # k-means of the PCA projection at k = model.k
    deepcluster_epoch_s: float
    n2d_s: float  # UMAP + Gaussian mixture of the (N, E) embedding at k = model.k (n2d runs at model.k only)


@dataclass(frozen=True)
class Task:
    stage: str  # the DVC stage that runs it
    method: str
    seconds: float


def timed(call: Callable[[], object]) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def pixel_kmeans_costs(pixels: np.ndarray, k: int, seed: int) -> tuple[float, float]:
    """(k-means++ initialisation, one Lloyd iteration) seconds of sklearn k-means in pixel space.

    On noise Lloyd's labels stop changing after two iterations, so iterations cannot be counted off a longer
    fit: one iteration is charged what a whole fit of one iteration from given centres costs (that iteration,
    the closing assignment and the input checks: an upper bound). The initialisation is a k-means++ fit of
    one iteration less that.
    """
    def fit(init: np.ndarray | str) -> float:
        return timed(lambda: KMeans(n_clusters=k, init=init, n_init=1, max_iter=1, random_state=seed).fit(pixels))
    centres = pixels[np.random.default_rng(seed).choice(len(pixels), k, replace=False)]  # (k, D)
    fit(centres)  # warm-up: first touch of the matrix and of the thread pool
    iteration = fit(centres)
    return max(fit("k-means++") - iteration, 0.0), iteration


def deepcluster_epoch_seconds(params: dict, n_images: int, subset: int, device: torch.device, seed: int) -> float:
    """One real DeepCluster epoch on `subset` synthetic images, scaled to `n_images` (linear in N)."""
    size, n = int(params["images"]["size"]), min(subset, n_images)
    section = params["deepcluster"]
    config = replace(DeepClusterConfig.from_params(section), epochs=1)
    image_set = ImageSet(synthetic_images(n, size, 3, seed))
    k_train = min(int(section["k_train"]), n)
    result = fit_deepcluster(image_set, k_train, min(int(params["model"]["k"]), n), config, seed, device)
    return result.history[0]["seconds"] * n_images / n


def measure_units(params: dict, n_images: int, ks: Sequence[int], fraction: float, deepcluster_subset: int,
                  device: torch.device, seed: int) -> UnitCosts:
    arch = architecture_from_params(params)
    paper = paper_config(params, n_images)
    say("pretraining rate")
    pretrain_img_s, _ = measure_pretrain_rate(arch, paper, fraction, device, seed)
    cluster_step_s, target_img_s = measure_step_and_target(arch, paper, CLUSTER_STEPS_PER_ROUND, device, seed)
    n_init = int(params["cluster"]["kmeans_n_init"])
    rng = np.random.default_rng(seed)
    say(f"k-means of the embedding at k = {list(ks)}")
    embedding = rng.standard_normal((n_images, arch.embedding)).astype(np.float32)  # (N, E)
    kmeans_embedding = {k: kmeans_seconds(embedding, k, n_init, seed) for k in ks}
    say("k-means and PCA in pixel space")
    pixels = pixels_matrix(synthetic_images(n_images, paper.size, arch.channels, seed))  # (N, S·S·C)
    pixel_init_s, pixel_iteration_s = pixel_kmeans_costs(pixels, paper.n_clusters, seed)
    components = min(int(params["compare"]["pca_components"]), *pixels.shape)
    pca = PCA(n_components=components, svd_solver="randomized", random_state=seed)
    pca_s = timed(lambda: pca.fit_transform(pixels))
    del pixels
    projection = rng.standard_normal((n_images, components)).astype(np.float32)  # (N, components)
    kmeans_projection_s = kmeans_seconds(projection, paper.n_clusters, n_init, seed)
    say("one DeepCluster epoch")
    deepcluster_epoch_s = deepcluster_epoch_seconds(params, n_images, deepcluster_subset, device, seed)
    say("N2D's UMAP + Gaussian mixture of the embedding")
    n2d_cluster(embedding[:100], paper.n_clusters, seed, params["n2d"])  # warm-up: numba compiles UMAP
    n2d_s = timed(lambda: n2d_cluster(embedding, paper.n_clusters, seed, params["n2d"]))
    return UnitCosts(pretrain_img_s, cluster_step_s, target_img_s, kmeans_embedding, pixel_init_s,
                     pixel_iteration_s, pca_s, kmeans_projection_s, deepcluster_epoch_s, n2d_s)


def say(what: str) -> None:
    print(f"paper_matrix: {what} ...", file=sys.stderr)


def run_seconds(method: str, k: int, params: dict, units: UnitCosts, n_images: int) -> float:
    """The cost model of one compare run (see the module docstring)."""
    cluster = params["cluster"]
    embedding_pass = n_images / units.target_img_s
    if method in ("dcec", "dcec_no_kl"):
        passes = math.ceil(int(cluster["maxiter"]) / int(cluster["update_interval"]))
        return (embedding_pass + units.kmeans_embedding_s[k] + int(cluster["maxiter"]) * units.cluster_step_s
                + passes * embedding_pass)
    if method == "cae_kmeans":
        return embedding_pass + units.kmeans_embedding_s[k]
    if method == "kmeans_pixels":
        restarts = params["compare"]["pixels_kmeans_n_init"] or int(cluster["kmeans_n_init"])
        scale = k / int(params["model"]["k"])  # both phases are O(N·k·D)
        return restarts * scale * (units.pixel_init_s + PIXEL_LLOYD_ITERATIONS * units.pixel_iteration_s)
    if method == "pca_kmeans":
        return units.pca_s + units.kmeans_projection_s * k / int(params["model"]["k"])
    if method == "deepcluster":
        return int(params["deepcluster"]["epochs"]) * units.deepcluster_epoch_s
    if method == "n2d":
        return embedding_pass + units.n2d_s
    raise ValueError(f"bench.paper_matrix: no cost model for method {method!r}")


def matrix_tasks(params: dict, units: UnitCosts, n_images: int) -> list[Task]:
    """Every run of `make repro-paper`'s model stages with its cost."""
    base_seed = int(params["base"]["seed"])
    pretrain_seeds = sorted(set(comparison_seeds(params)) | {base_seed})
    epoch_s = n_images / units.pretrain_img_s
    k = int(params["model"]["k"])
    tasks = [Task("pretrain", "cae", int(params["pretrain"]["epochs"]) * epoch_s) for _ in pretrain_seeds]
    tasks.append(Task("cluster", "dcec", run_seconds("dcec", k, params, units, n_images)))
    compare = params["compare"]
    for spec in plan_runs(compare["methods"], compare["seeds"], k, compare["sweep_ks"], compare["sweep_seeds"]):
        tasks.append(Task("compare", spec.method,
                          run_seconds(spec.method, spec.k, params, units, n_images)))
    return tasks


def makespan(durations: Sequence[float], devices: int) -> float:
    """Longest-first list scheduling of independent runs on `devices` identical devices."""
    if devices < 1:
        raise ValueError(f"devices must be at least 1, got {devices}")
    loads = [0.0] * devices
    for seconds in sorted(durations, reverse=True):
        loads[loads.index(min(loads))] += seconds
    return max(loads)


@dataclass(frozen=True)
class Wall:
    devices: int | None  # None: as many devices as compare has runs
    seconds: float  # serial part + longest-first schedule of compare's runs
    lower_bound: float  # serial part + max(compare's total / devices, its longest run): no schedule beats it


def wall_times(tasks: Sequence[Task], device_counts: Sequence[int]) -> list[Wall]:
    """Pretrain and cluster on one device, then compare's runs on each device count, and on unlimited devices."""
    serial = sum(t.seconds for t in tasks if t.stage != "compare")
    compare = [t.seconds for t in tasks if t.stage == "compare"]
    walls = [Wall(g, serial + makespan(compare, g), serial + max(sum(compare) / g, max(compare)))
             for g in device_counts]
    return walls + [Wall(None, serial + max(compare), serial + max(compare))]


def stage_table(tasks: Sequence[Task]) -> str:
    rows = []
    for stage in ("pretrain", "cluster", "compare"):
        chosen = [t for t in tasks if t.stage == stage]
        rows.append([stage, len(chosen), sum(t.seconds for t in chosen), hours(sum(t.seconds for t in chosen))])
    return _record.markdown_table(["stage", "runs", "seconds", "h:mm:ss"], rows)


def method_table(tasks: Sequence[Task]) -> str:
    by_method: dict[str, list[float]] = {}
    for task in (t for t in tasks if t.stage == "compare"):
        by_method.setdefault(task.method, []).append(task.seconds)
    rows = [[method, len(costs), max(costs), sum(costs), hours(sum(costs))] for method, costs in by_method.items()]
    return _record.markdown_table(["compare method", "runs", "longest run (s)", "seconds", "h:mm:ss"], rows)


def units_table(units: UnitCosts, params: dict) -> str:
    k = int(params["model"]["k"])
    rows = [
        ["pretraining", f"{units.pretrain_img_s:.1f} img/s at batch {params['pretrain']['batch_size']}"],
        ["DCEC joint step", f"{units.cluster_step_s * 1000:.0f} ms at batch {params['cluster']['batch_size']}"],
        ["target-distribution pass", f"{units.target_img_s:.1f} img/s"],
        [f"k-means of the embedding, k = {k}", f"{units.kmeans_embedding_s[k]:.2f} s"],
        [f"k-means++ init in pixel space, k = {k}", f"{units.pixel_init_s:.2f} s"],
        [f"Lloyd iteration in pixel space, k = {k}", f"{units.pixel_iteration_s:.2f} s"],
        ["randomised PCA in pixel space", f"{units.pca_s:.2f} s"],
        ["DeepCluster epoch (scaled to N)", f"{units.deepcluster_epoch_s:.1f} s"],
    ]
    return _record.markdown_table(["unit", "measured"], rows)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--profile", type=Path, default=Path("profiles/paper.yaml"))
    parser.add_argument("--n-images", type=int, default=PAPER_N_IMAGES)
    parser.add_argument("--devices", type=int, nargs="+", default=list(DEFAULT_DEVICES))
    parser.add_argument("--device", default="auto", help="auto: CUDA when available, else CPU")
    parser.add_argument("--fraction", type=float, default=0.1, help="share of the dataset per measured epoch")
    parser.add_argument("--deepcluster-subset", type=int, default=1024, help="images of the measured epoch")
    _record.add_record_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> str:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    params = apply_profile(load_params(path=args.params), load_profile(args.profile))
    keep_freed_memory(params["model"]["keep_freed_memory"])
    device = pick_device(args.device)
    k = int(params["model"]["k"])
    ks = sorted({int(x) for x in params["compare"]["sweep_ks"]} | {k})
    units = measure_units(params, args.n_images, ks, args.fraction, args.deepcluster_subset, device,
                          int(params["base"]["seed"]))
    tasks = matrix_tasks(params, units, args.n_images)
    walls = wall_times(tasks, args.devices)
    one_device = wall_times(tasks, [1])[0].seconds
    wall_rows = [[w.devices or "unlimited", w.seconds, hours(w.seconds), f"{one_device / w.seconds:.2f}×",
                  hours(w.lower_bound)] for w in walls]
    body = (f"`{args.profile}` applied to `{args.params}`, {args.n_images:,} synthetic images of "
            f"{params['images']['size']}×{params['images']['size']}×3, k = {k}, every run charged as the module "
            f"docstring says (DCEC all {int(params['cluster']['maxiter']):,} iterations: an upper bound). "
            f"**ESTIMATE from unit costs measured on {device} in this run**, not a measured paper run.\n\n"
            f"{units_table(units, params)}\n{stage_table(tasks)}\n{method_table(tasks)}\n"
            f"Wall time of the model stages against the number of {device.type.upper()} devices (pretrain and "
            f"cluster on one device, compare's runs spread by `compare.executor: ray`):\n\n"
            + _record.markdown_table(["devices", "seconds", "h:mm:ss", "speed-up", "lower bound"], wall_rows))
    return _record.publish(args, "bench.paper_matrix", argv,
                           f"Paper profile's experiment matrix on {device} (bench/paper_matrix.py)", body)


if __name__ == "__main__":
    main()
