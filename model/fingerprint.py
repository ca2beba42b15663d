"""The verification fingerprint: does HEAD still compute what the verified commit computed?

    python -m model.fingerprint            # make verify-fingerprint: recompute, compare, exit 1 if HEAD differs
    python -m model.fingerprint --record   # make verify-full does this: HEAD's values become the reference

A short deterministic fp32 run of Guo's DCEC on the first images of the Fashion-MNIST test split, on one
thread, on CPU: pretraining epochs, the embedding, the k-means initialisation and a few hundred joint
iterations (`tol` 0, so every iteration runs). Its outputs — the loss sequences, per-dimension summaries of
the embedding before and after the joint phase, the assignments of k-means and of DCEC, ACC and NMI — go to
`reports/verify/fingerprint.json` beside the full-protocol results (docs/VERIFICATION.md), with the commit
that computed them. Recomputing it takes about a minute on 2 cores, against 4–5 hours for the full protocol.

Floating-point results differ between CPU kinds (AVX2 against AVX-512 kernels, thread counts), so the check
compares within `TOLERANCE`, set from the spread measured on this project's machines (docs/VERIFICATION.md,
"Verification fingerprint"); a change to the DCEC loss or the CAE moves the values far beyond it. The `quick`
recipe is the same on fewer images and iterations, checked by `make test`.
"""

from __future__ import annotations

import argparse
import contextlib
import platform
import sys
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from common import read_json, write_json
from model.data import encode_all
from model.dcec import DCECConfig, fit_dcec
from model.fashion_mnist import DATA_DIR, load_fashion_mnist
from model.metrics import cluster_acc, nmi
from model.nets import build_cae
from model.pretrain import PretrainConfig, train_cae
from model.runtime import git_sha, seed_everything

RECORD = Path("reports/verify/fingerprint.json")
FULL_RESULTS = Path("reports/verify/fashion-mnist-full.json")
N_CLUSTERS = 10
SEED = 0


@dataclass(frozen=True)
class Recipe:
    """Guo's settings (batch 256, Adam 1e-3, 0.1·KL + 1.0·MSE, k-means n_init 20, embedding 10, ReLU) on
    `n_images` test images, with `pretrain_epochs`, `maxiter` joint iterations and a P update every
    `update_interval`."""

    n_images: int
    pretrain_epochs: int
    maxiter: int
    update_interval: int


RECIPES = {"full": Recipe(n_images=4000, pretrain_epochs=2, maxiter=300, update_interval=50),
           "quick": Recipe(n_images=1000, pretrain_epochs=2, maxiter=30, update_interval=10)}

# How far HEAD's values may lie from the reference's, per group (docs/VERIFICATION.md, "Verification
# fingerprint": the largest spread measured across CPU instruction sets and thread counts, with a margin).
TOLERANCE = {"training": {"relative": 1e-3, "changed_assignments": 0.005},
             "joint": {"relative": 0.1, "changed_assignments": 0.25}}


@contextlib.contextmanager
def limited_threads(threads: int) -> Iterator[None]:
    """torch and the OpenMP/BLAS pools limited to `threads` for the block; torch's count is restored after."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with threadpool_limits(limits=threads):
            yield
    finally:
        torch.set_num_threads(before)


def summary(embedding: np.ndarray) -> dict[str, list[float]]:
    """Per-dimension mean and standard deviation of an (N, E) embedding."""
    return {"mean": embedding.mean(axis=0).tolist(), "std": embedding.std(axis=0).tolist()}


def digits(labels: np.ndarray) -> str:
    """Cluster labels 0..9 as one string of digits (compact in JSON, compared position by position)."""
    return "".join(str(int(label)) for label in labels)


def compute(images: np.ndarray, labels: np.ndarray, recipe: Recipe, threads: int = 1) -> dict:
    """The fingerprint values of `recipe` on the first `recipe.n_images` of `images` (N, 28, 28, 1) uint8."""
    x = torch.from_numpy(np.ascontiguousarray(images[:recipe.n_images]))
    y = labels[:recipe.n_images]
    device = torch.device("cpu")
    pretrain_losses: list[float] = []
    print(f"fingerprint: {recipe}, on {threads} thread(s); about a minute for the full recipe on 2 cores",
          file=sys.stderr)
    with limited_threads(threads):
        seed_everything(SEED)
        cae = build_cae(28, 1, embedding=10, activation="relu")
        config = PretrainConfig(epochs=recipe.pretrain_epochs, batch_size=256, lr=1e-3, seed=SEED, show_progress=False)
        train_cae(cae, x, config, device, on_epoch=lambda record: pretrain_losses.append(record["loss"]))
        pretrained = encode_all(cae, x, 1024, device)
        joint = DCECConfig(n_clusters=N_CLUSTERS, batch_size=256, lr=1e-3, maxiter=recipe.maxiter,
                           update_interval=recipe.update_interval, tol=0.0, kl_weight=0.1, recon_weight=1.0,
                           kmeans_n_init=20, seed=SEED, show_progress=False)
        result = fit_dcec(cae, x, joint, device)
    first, later = result.history[1], result.history[2:]  # history[0], at iteration 0, has no losses yet
    return {
        "training": {  # pretraining, the k-means start and the first P-update interval of the joint phase
            "pretrain_loss": pretrain_losses,
            "embedding_pretrained": summary(pretrained),
            "kmeans_assignments": digits(result.kmeans_assignments),
            "joint_first_interval": [first["loss"], first["kl"], first["mse"]],
        },
        "joint": {  # the rest of the joint phase, where differences in summation order have grown
            "joint_loss": [record["loss"] for record in later],
            "joint_kl": [record["kl"] for record in later],
            "joint_mse": [record["mse"] for record in later],
            "embedding_final": summary(result.embedding),
            "q_max_mean": float(result.q_max.mean()),
            "acc": [cluster_acc(y, result.kmeans_assignments), cluster_acc(y, result.assignments)],
            "nmi": [nmi(y, result.kmeans_assignments, "geometric"), nmi(y, result.assignments, "geometric")],
            "assignments": digits(result.assignments),
        },
    }


def floats(value: object) -> np.ndarray:
    """Every number in a value of nested lists and dicts, flattened in key order."""
    if isinstance(value, dict):
        return np.concatenate([floats(value[key]) for key in sorted(value)])
    return np.atleast_1d(np.asarray(value, dtype=float)).ravel()


def differences(reference: dict, observed: dict, tolerance: dict = TOLERANCE) -> list[str]:
    """What lies outside `tolerance`, one line per value; empty when `observed` reproduces `reference`.

    Per group of values ("training", "joint") and per value: numbers within `relative` as
    ‖observed − reference‖ / ‖reference‖ over the value's numbers; assignments with at most
    `changed_assignments` of the images in another cluster."""
    found = []
    for group, values in reference.items():
        limits = tolerance[group]
        for name, ref in values.items():
            got = observed.get(group, {}).get(name)
            if got is None:
                found.append(f"{group}.{name}: missing")
            elif isinstance(ref, str):
                changed = sum(a != b for a, b in zip(ref, got)) / len(ref) if len(got) == len(ref) else 1.0
                if changed > limits["changed_assignments"]:
                    found.append(f"{group}.{name}: {changed:.2%} of the images in another cluster "
                                 f"(tolerance {limits['changed_assignments']:.2%})")
            else:
                ref_values, got_values = floats(ref), floats(got)
                relative = (np.linalg.norm(got_values - ref_values) / np.linalg.norm(ref_values)
                            if got_values.shape == ref_values.shape else np.inf)
                if not relative <= limits["relative"]:
                    found.append(f"{group}.{name}: relative difference {relative:.3g} (tolerance {limits['relative']:g})")
    return found


def machine() -> str:
    """The CPU model and its widest vector instructions (floating-point results differ between them), and torch."""
    cpuinfo = Path("/proc/cpuinfo")
    text = cpuinfo.read_text(encoding="utf-8", errors="replace") if cpuinfo.is_file() else ""
    names = [line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name")]
    isa = "AVX-512" if " avx512f" in text else "AVX2" if " avx2" in text else "no AVX2"
    return f"{names[0] if names else platform.machine()}, {isa}, torch {torch.__version__}"


def record(path: Path, data_dir: Path = DATA_DIR) -> dict:
    """Compute both recipes at HEAD and write them to `path` as the reference, with the commit, the machine
    and the commit of the full-protocol results they go with."""
    images, labels = load_fashion_mnist(data_dir, ("test",))
    full = read_json(FULL_RESULTS) if FULL_RESULTS.is_file() else {}
    document = {"commit": git_sha(), "machine": machine(), "threads": 1, "full_results_commit": full.get("git_sha"),
                "recipes": {name: {"recipe": asdict(recipe), "values": compute(images, labels, recipe)}
                            for name, recipe in RECIPES.items()}}
    write_json(path, document)
    return document


def check(path: Path, recipe_name: str = "full", data_dir: Path = DATA_DIR, threads: int = 1) -> list[str]:
    """Recompute `recipe_name` and compare it with the reference at `path`; the differences (empty: same)."""
    reference = read_json(path)["recipes"][recipe_name]
    if reference["recipe"] != asdict(RECIPES[recipe_name]):
        return [f"{path}: recorded with recipe {reference['recipe']}, the code has {asdict(RECIPES[recipe_name])}"]
    images, labels = load_fashion_mnist(data_dir, ("test",))
    return differences(reference["values"], compute(images, labels, RECIPES[recipe_name], threads))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--record", action="store_true", help="write HEAD's values as the reference")
    parser.add_argument("--recipe", choices=sorted(RECIPES), default="full")
    parser.add_argument("--path", type=Path, default=RECORD)
    parser.add_argument("--data-dir", type=Path, default=DATA_DIR)
    parser.add_argument("--threads", type=int, default=1, help="measure the spread across thread counts")
    parser.add_argument("--values-to", type=Path, help="write the computed values here instead of checking them "
                                                       "(measuring the spread)")
    args = parser.parse_args(argv)
    if args.record:
        document = record(args.path, args.data_dir)
        print(f"fingerprint: recorded at {document['commit']} in {args.path}")
        return
    if args.values_to is not None:
        images, labels = load_fashion_mnist(args.data_dir, ("test",))
        write_json(args.values_to, compute(images, labels, RECIPES[args.recipe], args.threads))
        return
    reference = read_json(args.path)
    found = check(args.path, args.recipe, args.data_dir, args.threads)
    if found:
        print(f"fingerprint: HEAD ({git_sha()}) differs from the fingerprint of commit {reference['commit']}, with "
              f"which the full-protocol results go:\n  " + "\n  ".join(found) + "\nrun make verify-full", file=sys.stderr)
        raise SystemExit(1)
    print(f"fingerprint: HEAD ({git_sha()}) reproduces the fingerprint of commit {reference['commit']} "
          f"(full-protocol results of commit {reference['full_results_commit']}) within {TOLERANCE}")


if __name__ == "__main__":
    main()
