"""Benchmark: wall time of the paper's full DCEC-Paint configuration.

    python -m bench.paper_run            # measure a fraction of an epoch and the per-step costs, extrapolate
    python -m bench.paper_run --full     # run the whole thing (a GPU job: hours on a 2-core CPU)
    python -m bench.paper_run --profile profiles/paper.yaml [--full]   # the paper profile's settings (batch 512)

The paper configuration (Castellano & Vessio's DCEC-Paint on Guo's DCEC loop): 10,500 images of
128×128×3, 200 pretraining epochs, then clustering with the target distribution recomputed every 140
iterations until fewer than 0.1% of the labels change, at most 20,000 iterations, k = 50. The
architecture (filters, kernels, embedding, activation) comes from params.yaml `model`.

Without --full, the pretraining rate is measured with the project's own `model.pretrain.train_cae` on a
fraction of the dataset (the second of two short epochs, so the first, cold one is not counted), the
clustering step and the target-distribution pass with the workloads of bench/_workloads.py, and k-means
directly on a 10,500×E embedding; the total is an EXTRAPOLATION and an upper bound (clustering is charged
all 20,000 iterations; convergence to tol usually stops it earlier). With --full, `train_cae` and
`model.dcec.fit_dcec` run on 10,500 synthetic images and the wall time is measured; synthetic noise
converges differently from paintings, so the number of clustering iterations is reported with it.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from bench import _record
from bench._timing import measure_rate
from bench._workloads import Architecture, architecture_from_params, cluster_workload, synthetic_images, target_workload
from common import load_params
from common.profiles import apply_profile, load_profile
from model.dcec import DCECConfig, fit_dcec, kmeans_init
from model.nets import build_cae
from model.pretrain import PretrainConfig, train_cae
from model.runtime import keep_freed_memory, pick_device

SECONDS_PER_HOUR = 3600.0


@dataclass(frozen=True)
class PaperConfig:
    """The paper's run; each field can be overridden on the command line (tests use tiny values)."""

    n_images: int = 10_500
    size: int = 128
    epochs: int = 200
    batch_size: int = 256
    cluster_batch_size: int = 256
    eval_batch_size: int = 1024
    update_interval: int = 140
    maxiter: int = 20_000
    tol: float = 0.001
    n_clusters: int = 50
    kmeans_n_init: int = 20


@dataclass(frozen=True)
class Phase:
    """One line of the estimate: what is done, at what measured rate, and how long it takes."""

    name: str
    work: str
    rate: str
    seconds: float


def hours(seconds: float) -> str:
    whole = int(round(seconds))
    return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


def extrapolate(paper: PaperConfig, pretrain_img_s: float, cluster_step_s: float, target_img_s: float,
                kmeans_s: float) -> list[Phase]:
    """The paper run's phases from measured unit costs (clustering charged `maxiter` iterations)."""
    n_updates = math.ceil(paper.maxiter / paper.update_interval)
    return [
        Phase("pretraining", f"{paper.epochs} epochs × {paper.n_images:,} images", f"{pretrain_img_s:.1f} img/s",
              paper.epochs * paper.n_images / pretrain_img_s),
        Phase("initial embedding", f"{paper.n_images:,} images", f"{target_img_s:.1f} img/s",
              paper.n_images / target_img_s),
        Phase("k-means init", f"k={paper.n_clusters}, n_init={paper.kmeans_n_init}", "measured", kmeans_s),
        Phase("clustering steps", f"{paper.maxiter:,} iterations × {paper.cluster_batch_size} images",
              f"{cluster_step_s * 1000:.0f} ms/iteration", paper.maxiter * cluster_step_s),
        Phase("target-distribution passes", f"{n_updates} passes × {paper.n_images:,} images",
              f"{target_img_s:.1f} img/s", n_updates * paper.n_images / target_img_s),
    ]


def measure_pretrain_rate(arch: Architecture, paper: PaperConfig, fraction: float, device: torch.device,
                          seed: int) -> tuple[float, int]:
    """img/s of the second of two `train_cae` epochs over `fraction` of the dataset, and the images used."""
    n = max(paper.batch_size, round(fraction * paper.n_images))
    images = synthetic_images(n, paper.size, arch.channels, seed)
    cae = build_cae(paper.size, arch.channels, arch.filters, arch.kernels, arch.embedding, arch.activation)
    records: list[dict] = []
    config = PretrainConfig(epochs=2, batch_size=paper.batch_size, lr=arch.lr, seed=seed, show_progress=False,
                            mixed_precision=arch.mixed_precision)
    train_cae(cae, images, config, device, on_epoch=records.append)
    return records[-1]["img_per_s"], n


def kmeans_seconds(features: np.ndarray, k: int, n_init: int, seed: int) -> float:
    """Wall seconds of the seeded k-means the DCEC initialisation runs, on (N, D) `features`."""
    started = time.perf_counter()
    kmeans_init(features, k, n_init, seed)
    return time.perf_counter() - started


def measure_kmeans_seconds(arch: Architecture, paper: PaperConfig, seed: int) -> float:
    embedding = np.random.default_rng(seed).standard_normal((paper.n_images, arch.embedding)).astype(np.float32)
    return kmeans_seconds(embedding, paper.n_clusters, paper.kmeans_n_init, seed)


def measure_step_and_target(arch: Architecture, paper: PaperConfig, cluster_steps: int, device: torch.device,
                            seed: int) -> tuple[float, float]:
    """(seconds per joint step, img/s of the target-distribution pass): medians of 3 rounds at the paper's
    batches, with the step and pass model/ trains with (bench/_workloads.py, variant `tuned`)."""
    arch = replace(arch, n_clusters=paper.n_clusters)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    pool = synthetic_images(max(paper.cluster_batch_size, paper.eval_batch_size), paper.size, arch.channels,
                            seed).to(device)
    print("clustering steps ...", file=sys.stderr)
    step = cluster_workload(arch, pool, paper.cluster_batch_size, "tuned", device, seed)
    step_rate = measure_rate(step.call, 1, warmup=2, rounds=3, calls_per_round=cluster_steps, synchronize=sync)
    print("target-distribution pass ...", file=sys.stderr)
    target = target_workload(arch, pool[:paper.eval_batch_size], paper.eval_batch_size, "tuned", device, seed)
    target_rate = measure_rate(target.call, target.images_per_call, warmup=1, rounds=3, calls_per_round=1,
                               synchronize=sync)
    return 1.0 / step_rate.median, target_rate.median


def estimate(arch: Architecture, paper: PaperConfig, fraction: float, cluster_steps: int, device: torch.device,
             seed: int) -> tuple[list[Phase], str]:
    """Measured unit costs → extrapolated phases, and a line saying what was measured."""
    print("pretraining on a fraction of the dataset ...", file=sys.stderr)
    pretrain_img_s, n_used = measure_pretrain_rate(arch, paper, fraction, device, seed)
    step_s, target_img_s = measure_step_and_target(arch, paper, cluster_steps, device, seed)
    print("k-means ...", file=sys.stderr)
    kmeans_s = measure_kmeans_seconds(arch, paper, seed)
    phases = extrapolate(paper, pretrain_img_s, step_s, target_img_s, kmeans_s)
    measured = (f"Measured on {device}: `train_cae` 2 epochs over {n_used:,} images ({n_used / paper.n_images:.0%} "
                f"of an epoch; the second, warm epoch counted), {3 * cluster_steps} clustering steps (median of "
                f"3 rounds), 3 target passes of {paper.eval_batch_size} images, one k-means fit on "
                f"{paper.n_images:,}×{arch.embedding}.")
    return phases, measured


def full_run(arch: Architecture, paper: PaperConfig, device: torch.device, seed: int) -> tuple[list[Phase], str]:
    """The whole paper run on synthetic images, timed phase by phase."""
    images = synthetic_images(paper.n_images, paper.size, arch.channels, seed)
    cae = build_cae(paper.size, arch.channels, arch.filters, arch.kernels, arch.embedding, arch.activation)
    started = time.perf_counter()
    config = PretrainConfig(epochs=paper.epochs, batch_size=paper.batch_size, lr=arch.lr, seed=seed,
                            mixed_precision=arch.mixed_precision)
    cae = train_cae(cae, images, config, device)
    pretrain_s = time.perf_counter() - started
    dcec = DCECConfig(n_clusters=paper.n_clusters, batch_size=paper.cluster_batch_size, lr=arch.lr,
                      maxiter=paper.maxiter, update_interval=paper.update_interval, tol=paper.tol,
                      kl_weight=arch.kl_weight, recon_weight=arch.recon_weight, kmeans_n_init=paper.kmeans_n_init,
                      seed=seed, eval_batch_size=paper.eval_batch_size, mixed_precision=arch.mixed_precision)
    started = time.perf_counter()
    result = fit_dcec(cae, images, dcec, device)
    cluster_s = time.perf_counter() - started
    phases = [
        Phase("pretraining", f"{paper.epochs} epochs × {paper.n_images:,} images",
              f"{paper.epochs * paper.n_images / pretrain_s:.1f} img/s", pretrain_s),
        Phase("clustering (embedding, k-means, steps, target passes)",
              f"{result.n_iter:,} iterations ({'converged' if result.converged else 'maxiter'})",
              f"{result.n_iter / cluster_s:.1f} it/s", cluster_s),
    ]
    return phases, (f"Measured end to end on {device} (synthetic noise images: the iteration count differs "
                    "from paintings).")


def phases_table(phases: list[Phase]) -> str:
    rows = [[p.name, p.work, p.rate, p.seconds, hours(p.seconds)] for p in phases]
    total = sum(p.seconds for p in phases)
    rows.append(["**total**", "", "", total, f"**{hours(total)}**"])
    return _record.markdown_table(["phase", "work", "rate", "seconds", "h:mm:ss"], rows)


CLI_FIELDS = ("n_images", "size", "epochs", "batch_size", "cluster_batch_size", "eval_batch_size", "update_interval",
              "maxiter", "n_clusters", "kmeans_n_init")


def paper_config(params: dict, n_images: int) -> PaperConfig:
    """The loop settings of `params` (with a profile applied) as a PaperConfig."""
    pretrain, cluster = params["pretrain"], params["cluster"]
    return PaperConfig(n_images=n_images, size=int(params["images"]["size"]), epochs=int(pretrain["epochs"]),
                       batch_size=int(pretrain["batch_size"]), cluster_batch_size=int(cluster["batch_size"]),
                       eval_batch_size=int(params["model"]["eval_batch_size"]),
                       update_interval=int(cluster["update_interval"]), maxiter=int(cluster["maxiter"]),
                       tol=float(cluster["tol"]), n_clusters=int(params["model"]["k"]),
                       kmeans_n_init=int(cluster["kmeans_n_init"]))


def build_parser(defaults: PaperConfig = PaperConfig()) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--profile", type=Path, default=None,
                        help="take the settings from this profile applied to --params (make bench-paper: "
                             "profiles/paper.yaml); the flags below still override them")
    parser.add_argument("--full", action="store_true", help="run the whole configuration (GPU) instead of estimating")
    parser.add_argument("--device", default="auto", help="auto: CUDA when available, else CPU")
    parser.add_argument("--fraction", type=float, default=0.1, help="share of the dataset per measured epoch")
    parser.add_argument("--cluster-steps", type=int, default=2, help="clustering steps per timed round")
    for name in CLI_FIELDS:
        parser.add_argument(f"--{name.replace('_', '-')}", type=int, default=getattr(defaults, name),
                            help=f"default: {getattr(defaults, name)}")
    _record.add_record_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> str:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    params = load_params(path=args.params)
    base = PaperConfig()
    if args.profile is not None:
        params = apply_profile(params, load_profile(args.profile))
        base = paper_config(params, base.n_images)
        args = build_parser(base).parse_args(argv)  # the profile's values as defaults: explicit flags win
    paper = replace(base, **{name: getattr(args, name) for name in CLI_FIELDS})
    arch = architecture_from_params(params)
    seed = int(params["base"]["seed"])
    keep_freed_memory(params["model"]["keep_freed_memory"])
    device = pick_device(args.device)
    if args.full:
        phases, how = full_run(arch, paper, device, seed)
        label = "measured"
    else:
        phases, how = estimate(arch, paper, args.fraction, args.cluster_steps, device, seed)
        label = "EXTRAPOLATION (upper bound: clustering charged all maxiter iterations)"
    total = sum(p.seconds for p in phases)
    source = f"`{args.profile}` applied to `{args.params}`" if args.profile else "Guo's loop at the paper's size"
    body = (f"Configuration ({source}): {paper.n_images:,} images {paper.size}×{paper.size}×3, {paper.epochs} pretraining "
            f"epochs (batch {paper.batch_size}), clustering batch {paper.cluster_batch_size}, update interval "
            f"{paper.update_interval}, maxiter {paper.maxiter:,}, tol {paper.tol}, k {paper.n_clusters}.\n\n"
            f"**{label}.** {how}\n\n{phases_table(phases)}\n"
            f"Paper run on {device}: **{hours(total)}** ({total / SECONDS_PER_HOUR:.1f} h, "
            f"{label.split(' ')[0].lower()}).\n")
    return _record.publish(args, "bench.paper_run", argv, f"Paper run on {device} (bench/paper_run.py)", body)


if __name__ == "__main__":
    main()
