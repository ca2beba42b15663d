"""Check the DCEC implementation against published numbers on Fashion-MNIST (real labels, offline).

    python -m model.verify [--quick] [--seeds N] [--out reports/verify]

Data: the Debian package `dataset-fashion-mnist` (idx gz files under /usr/share/datasets/fashion-mnist/;
`make verify` installs it). Settings are Guo et al.'s DCEC protocol (28×28×1, ReLU, embedding 10, batch
256, Adam lr 1e-3, update_interval 140, tol 0.001, loss 0.1·KL + 1.0·MSE, k-means n_init 20, k = 10).
Full mode: all 70,000 images, 200 pretraining epochs, maxiter 20,000 (a GPU job). Quick mode: the 10,000
test images with fewer epochs and iterations, sized for 2 seeds in under 20 minutes on 2 CPU cores.

Methods, per seed: k-means on pixels; CAE + k-means (the k-means initialisation of DCEC, on the pretrained
embedding); N2D (McConville et al. 2020) on that same pretrained embedding: UMAP to 10 dimensions with
N2D's Fashion-MNIST settings, then a Gaussian mixture (`model.methods.n2d_cluster`); DCEC. Writes
`<out>/fashion-mnist.json` (quick) or `<out>/fashion-mnist-full.json` (full): mean and std over seeds,
per-seed values, times, DCEC against the others paired by seed (`paired_difference`), n_images,
pretrain_epochs, maxiter, seeds and the git_sha; and the `.md` table beside the published figures.

Resumable (a full seed is about an hour on 2 CPU cores): each finished seed is kept beside the report in
`<out>/<report name>/seed-<s>.json` (committed, so another session resumes too) and pretraining checkpoints
every epoch to `<work>/<mode>/pretrain-seed-<s>.pt`, both checked against the protocol and what computes it
(`seed_key`: the code, the libraries, the device, the precision and the threads); a re-run after an
interruption skips finished seeds and continues the pretraining from its last epoch. `--only S ...` runs a
subset of the seeds (one process per seed, side by side); the report is written when all have finished.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from sklearn.cluster import KMeans

from common import atomic_write, load_params, read_json, write_json
from common.provenance import provenance
from model.data import encode_all
from model.dcec import DCECConfig, fit_dcec
from model.fashion_mnist import DATA_DIR, load_fashion_mnist
from model.methods import n2d_cluster
from model.metrics import label_metrics, paired_difference
from model.nets import build_cae
from model.pretrain import PretrainConfig, fingerprint, read_checkpoint, train_cae
from model.runtime import (KERNEL_LIBRARIES, git_sha, keep_freed_memory, pick_device, precision_name,
                           seed_everything)

N_CLASSES = 10
N2D_EMBED_BATCH = 1024  # images per batch of the embedding pass before N2D's UMAP


@dataclass(frozen=True)
class Protocol:
    """One verification mode: data split and training lengths on top of Guo's fixed settings."""

    splits: tuple[str, ...]
    pretrain_epochs: int
    maxiter: int
    embedding: int = 10
    activation: str = "relu"
    batch_size: int = 256
    lr: float = 1e-3
    update_interval: int = 140
    tol: float = 1e-3
    kl_weight: float = 0.1
    recon_weight: float = 1.0
    kmeans_n_init: int = 20
    n2d_n_neighbors: int = 20  # N2D (rymc/n2d run.sh) on Fashion-MNIST: n_components = the 10 classes, min_dist 0,
    n2d_min_dist: float = 0.0  # euclidean, full-covariance mixture (shared reference models.md §4b)
    n2d_metric: str = "euclidean"
    n2d_covariance_type: str = "full"

    def n2d_settings(self) -> dict:
        """The settings `n2d_cluster` takes (n_components None: the number of clusters, as N2D)."""
        return {"n_components": None, "n_neighbors": self.n2d_n_neighbors, "min_dist": self.n2d_min_dist,
                "metric": self.n2d_metric, "covariance_type": self.n2d_covariance_type}


MODES = {
    "full": Protocol(splits=("train", "test"), pretrain_epochs=200, maxiter=20000),
    # 15 epochs × 10k images and ≤ 840 joint iterations (6 P updates, ≈ 21 passes); time measured in
    # docs/VERIFICATION.md on the shared 2-core CPU.
    "quick": Protocol(splits=("test",), pretrain_epochs=15, maxiter=840),
}

# Published reference figures (ACC / NMI; NMI there is sklearn's 2017 default, i.e. the geometric mean).
PUBLISHED = [
    ("k-means (pixels)", "0.47", "0.51", "DEC-keras README, mean of 10 trials (models.md §1.5, §7)"),
    ("AE + k-means", "0.61", "0.64", "DEC-keras README, mean of 10 trials"),
    ("DEC", "0.62", "0.65", "DEC-keras README, mean of 10 trials"),
    ("DCEC", "≈ 0.58", "–", "public SemiSupervised-DCEC model card, unsupervised run (models.md §7, secondary)"),
    ("ConvDEC-DA", "0.586", "0.636", "XifengGuo/DEC-DA README (with augmentation)"),
    ("N2D", "0.672", "0.684", "McConville et al. 2020 (arXiv 1908.05968; models.md §4b, secondary aggregation): "
                              "a dense 784-500-500-2000-10 autoencoder trained 1,000 epochs, then UMAP + GMM; ours "
                              "runs UMAP + GMM on the conv CAE (200 epochs in full mode); their NMI averaging is "
                              "not recorded"),
]
METHOD_TITLES = {"kmeans_pixels": "k-means (pixels)", "cae_kmeans": "CAE + k-means",
                 "n2d": "N2D (CAE → UMAP → GMM)", "dcec": "DCEC"}
OUTPUT_STEMS = {"quick": "fashion-mnist", "full": "fashion-mnist-full"}
VERIFY_MODULES = ("model.verify",)  # the code of a seed: this module's import closure in model/, by syntax tree


def run_seed(images: torch.Tensor, labels: np.ndarray, protocol: Protocol, seed: int, device: torch.device,
             mixed_precision: str = "off", checkpoint: Path | None = None) -> dict[str, dict]:
    """The four methods for one seed: {method: {acc, nmi, nmi_arithmetic, ari, seconds, ...}}.

    `mixed_precision` is params model.mixed_precision, so the check trains as the pipeline does. Pretraining
    checkpoints to `checkpoint` every epoch and resumes from it when it matches."""
    results = {}
    started = time.perf_counter()
    pixels = images.reshape(images.shape[0], -1).float().div(255).numpy()
    km = KMeans(n_clusters=N_CLASSES, n_init=protocol.kmeans_n_init, random_state=seed).fit(pixels)
    results["kmeans_pixels"] = _scores(labels, km.labels_, time.perf_counter() - started)

    started = time.perf_counter()
    seed_everything(seed)  # seeds the initial weights too
    cae = build_cae(images.shape[1], images.shape[3], embedding=protocol.embedding, activation=protocol.activation)
    pre = PretrainConfig(epochs=protocol.pretrain_epochs, batch_size=protocol.batch_size, lr=protocol.lr, seed=seed,
                         mixed_precision=mixed_precision)
    resume_from = read_checkpoint(checkpoint, fingerprint(cae, images, pre, device))
    if resume_from is not None:
        print(f"verify: seed {seed}: pretraining resumes after epoch {resume_from['epoch']}", file=sys.stderr)
    cae = train_cae(cae, images, pre, device, checkpoint, resume_from)
    pretrain_seconds = time.perf_counter() - started

    started = time.perf_counter()
    n2d_labels, _ = n2d_cluster(encode_all(cae, images, N2D_EMBED_BATCH, device), N_CLASSES, seed,
                                protocol.n2d_settings())
    n2d_seconds = time.perf_counter() - started

    started = time.perf_counter()
    config = DCECConfig(n_clusters=N_CLASSES, batch_size=protocol.batch_size, lr=protocol.lr,
                        maxiter=protocol.maxiter, update_interval=protocol.update_interval, tol=protocol.tol,
                        kl_weight=protocol.kl_weight, recon_weight=protocol.recon_weight,
                        kmeans_n_init=protocol.kmeans_n_init, seed=seed, mixed_precision=mixed_precision)
    result = fit_dcec(cae, images, config, device)
    dcec_seconds = time.perf_counter() - started
    results["cae_kmeans"] = _scores(labels, result.kmeans_assignments, pretrain_seconds)
    results["n2d"] = {**_scores(labels, n2d_labels, pretrain_seconds + n2d_seconds), "umap_gmm_seconds": n2d_seconds}
    results["dcec"] = {**_scores(labels, result.assignments, pretrain_seconds + dcec_seconds),
                       "n_iter": result.n_iter, "converged": result.converged,
                       "last_delta_label": result.history[-1]["delta_label"]}
    return results


def seed_key(protocol: Protocol, n_images: int, mixed_precision: str, device: torch.device) -> dict:
    """What a finished seed must match to be reused or reported: protocol, data size, the precision setting,
    and what computes it (common/provenance.py): the code (this module's import closure, by syntax tree), the
    kernel libraries' versions, the device type, the precision in effect there and torch's thread count."""
    return {"protocol": protocol.__dict__ | {"splits": list(protocol.splits)}, "n_images": n_images,
            "mixed_precision": mixed_precision,
            "provenance": provenance(VERIFY_MODULES, KERNEL_LIBRARIES, device=device.type,
                                     precision=precision_name(mixed_precision, device),
                                     threads=torch.get_num_threads())}


def seed_results(images: torch.Tensor, labels: np.ndarray, protocol: Protocol, seeds: list[int], device: torch.device,
                 mixed_precision: str, results_dir: Path, work_dir: Path, key: dict) -> dict[int, dict[str, dict]]:
    """{seed: run_seed(...)} for every seed; a finished seed is kept in `results_dir/seed-<s>.json` (committed
    with the report, so a later session resumes too) and reused when its `key` matches; pretraining
    checkpoints go to `work_dir`."""
    results_dir.mkdir(parents=True, exist_ok=True)
    work_dir.mkdir(parents=True, exist_ok=True)
    per_seed = {}
    for number, seed in enumerate(seeds, start=1):
        done = results_dir / f"seed-{seed}.json"
        saved = read_json(done) if done.is_file() else None
        if saved is not None and saved.get("key") == key:
            print(f"verify: seed {seed} ({number}/{len(seeds)}) already done: {done}", file=sys.stderr)
            per_seed[seed] = saved["results"]
            continue
        print(f"verify: seed {seed} ({number}/{len(seeds)}), {images.shape[0]} images", file=sys.stderr)
        checkpoint = work_dir / f"pretrain-seed-{seed}.pt"
        started = time.perf_counter()
        results = run_seed(images, labels, protocol, seed, device, mixed_precision, checkpoint)
        write_json(done, {"key": key, "results": results, "git_sha": git_sha(),
                          "seconds": round(time.perf_counter() - started), "threads": torch.get_num_threads()})
        checkpoint.unlink(missing_ok=True)
        per_seed[seed] = results
    return per_seed


def finished_seeds(results_dir: Path, seeds: list[int], key: dict) -> dict[int, dict[str, dict]]:
    """The results of those `seeds` already written to `results_dir` (by this or another process) under `key`
    (the same protocol, data and code); a file made under another key does not count."""
    found = {}
    for seed in seeds:
        path = results_dir / f"seed-{seed}.json"
        saved = read_json(path) if path.is_file() else None
        if saved is not None and saved.get("key") == key:
            found[seed] = saved["results"]
    return found


def dcec_comparisons(per_seed: dict[int, dict[str, dict]]) -> dict:
    """DCEC minus each other method, paired by seed, on ACC, NMI (geometric) and ARI."""
    def values(method: str, key: str) -> dict[int, float]:
        return {seed: float(results[method][key]) for seed, results in per_seed.items()}

    first = next(iter(per_seed.values()))
    return {other: {key: paired_difference(values("dcec", key), values(other, key)) for key in ("acc", "nmi", "ari")}
            for other in first if other != "dcec"}


def _scores(y_true: np.ndarray, y_pred: np.ndarray, seconds: float) -> dict:
    m = label_metrics(y_true, y_pred)
    return {"acc": m["acc"], "nmi": m["nmi_geometric"], "nmi_arithmetic": m["nmi_arithmetic"], "ari": m["ari"],
            "seconds": seconds}


def summarise(per_seed: list[dict[str, dict]]) -> dict[str, dict]:
    """Mean and (population) std over seeds of every numeric score, per method, plus the per-seed rows."""
    out = {}
    for method in per_seed[0]:
        rows = [seed_result[method] for seed_result in per_seed]
        stats = {}
        for key in ("acc", "nmi", "nmi_arithmetic", "ari", "seconds"):
            values = np.array([row[key] for row in rows], dtype=float)
            stats[key] = {"mean": float(values.mean()), "std": float(values.std())}
        out[method] = {**stats, "per_seed": rows}
    return out


def markdown_report(summary: dict, meta: dict, comparisons: dict) -> str:
    """The verification table (ours, mean ± std) beside the published figures."""
    def pm(stat: dict) -> str:
        return f"{stat['mean']:.3f} ± {stat['std']:.3f}"

    lines = [
        "# Fashion-MNIST verification",
        "",
        f"Mode **{meta['mode']}**: {meta['n_images']:,} images ({' + '.join(meta['splits'])}), "
        f"{meta['pretrain_epochs']} pretraining epochs, DCEC maxiter {meta['maxiter']}, seeds {meta['seeds']}, "
        f"device {meta['device']}, total {meta['seconds']:.0f} s. Mean ± std over seeds. NMI = geometric mean "
        "normalisation (the 2017 sklearn default the published numbers used); arithmetic NMI is in the JSON.",
        "",
        "| method | ACC | NMI | ARI | seconds per seed |",
        "|---|---|---|---|---|",
    ]
    for method, title in METHOD_TITLES.items():
        s = summary[method]
        lines.append(f"| {title} (ours) | {pm(s['acc'])} | {pm(s['nmi'])} | {pm(s['ari'])} | {s['seconds']['mean']:.0f} |")
    lines += ["", "Published (Fashion-MNIST, 70,000 images):", "", "| method | ACC | NMI | source |", "|---|---|---|---|"]
    lines += [f"| {name} | {acc} | {nmi_value} | {source} |" for name, acc, nmi_value, source in PUBLISHED]
    lines += ["", "CAE + k-means time is the pretraining time; N2D and DCEC times include pretraining (N2D's "
              "own UMAP + GMM step: `umap_gmm_seconds` in the JSON).", "",
              "DCEC minus each method, paired by seed (mean [95% t-interval] verdict):", "",
              "| DCEC vs | ACC | NMI | ARI |", "|---|---|---|---|"]
    for other, cells in comparisons.items():
        row = [METHOD_TITLES[other]] + [
            f"{c['diff_mean']:+.3f} " + (f"[{c['ci_low']:+.3f}, {c['ci_high']:+.3f}] " if c["ci_low"] is not None else "")
            + c["verdict"] for c in (cells["acc"], cells["nmi"], cells["ari"])]
        lines.append("| " + " | ".join(row) + " |")
    lines += ["", f"Commit: {meta['git_sha']}.", ""]
    return "\n".join(lines)


def run_verify(mode: str, seeds: int, out_dir: Path, data_dir: Path = DATA_DIR, device_name: str = "auto",
               pretrain_epochs: int | None = None, maxiter: int | None = None, mixed_precision: str = "off",
               work_dir: Path = Path("models/verify"), only: list[int] | None = None) -> dict | None:
    """Run the verification and write the JSON and Markdown reports; returns the JSON document.

    `only`: run just these of the seeds 0..seeds-1 (e.g. two processes side by side, one seed each); the
    reports are written once every seed has finished, by whichever run finishes last, else None."""
    protocol = MODES[mode]
    if pretrain_epochs is not None:
        protocol = replace(protocol, pretrain_epochs=pretrain_epochs)
    if maxiter is not None:
        protocol = replace(protocol, maxiter=maxiter)
    images_np, labels = load_fashion_mnist(data_dir, protocol.splits)
    images = torch.from_numpy(images_np)
    device = pick_device(device_name)
    started = time.perf_counter()
    stem = OUTPUT_STEMS[mode]
    all_seeds = list(range(seeds))
    key = seed_key(protocol, int(images.shape[0]), mixed_precision, device)
    seed_results(images, labels, protocol, all_seeds if only is None else only, device, mixed_precision,
                 out_dir / stem, work_dir / mode, key)
    per_seed = finished_seeds(out_dir / stem, all_seeds, key)
    if len(per_seed) < seeds:
        print(f"verify: {len(per_seed)} of {seeds} seeds finished ({sorted(per_seed)}); the report is written when "
              f"all are", file=sys.stderr)
        return None
    summary = summarise(list(per_seed.values()))
    meta = {"dataset": "fashion-mnist", "mode": mode, "splits": list(protocol.splits), "n_images": int(images.shape[0]),
            "seeds": list(range(seeds)), "pretrain_epochs": protocol.pretrain_epochs, "maxiter": protocol.maxiter,
            "epochs": protocol.pretrain_epochs, "device": str(device), "mixed_precision": mixed_precision,
            "seconds": time.perf_counter() - started,
            "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads",
            "torch": torch.__version__, "protocol": protocol.__dict__ | {"splits": list(protocol.splits)},
            "git_sha": git_sha()}
    document = {**meta, "methods": summary, "comparisons": dcec_comparisons(per_seed),
                "comparisons_method": "dcec minus the other method per seed; 95% Student t-interval; verdict "
                                      "'better'/'worse' only when the interval excludes 0",
                "published": [{"method": m, "acc": a, "nmi": n, "source": s} for m, a, n, s in PUBLISHED]}
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(out_dir / f"{stem}.json", document)
    with atomic_write(out_dir / f"{stem}.md") as fh:
        fh.write(markdown_report(summary, meta, document["comparisons"]))
    return document


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="DCEC verification on Fashion-MNIST (Guo's settings).")
    parser.add_argument("--quick", action="store_true", help="10k test split, fewer epochs (CPU, < 20 min for 2 seeds)")
    parser.add_argument("--seeds", type=int, default=2, help="number of seeds (0..N-1)")
    parser.add_argument("--out", type=Path, default=Path("reports/verify"))
    parser.add_argument("--data-dir", type=Path, default=DATA_DIR)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--pretrain-epochs", type=int, default=None, help="override the mode's epochs")
    parser.add_argument("--maxiter", type=int, default=None, help="override the mode's DCEC maxiter")
    parser.add_argument("--work-dir", type=Path, default=Path("models/verify"),
                        help="pretraining checkpoints, for resuming (finished seeds go beside the report)")
    parser.add_argument("--only", type=int, nargs="+", default=None,
                        help="run only these seeds (of 0..N-1), e.g. one per process; the report waits for all")
    args = parser.parse_args(argv)
    if args.seeds < 1:
        parser.error("--seeds must be at least 1")
    model_params = load_params("model")
    keep_freed_memory(model_params["keep_freed_memory"])
    document = run_verify("quick" if args.quick else "full", args.seeds, args.out, args.data_dir, args.device,
                          args.pretrain_epochs, args.maxiter, model_params["mixed_precision"], args.work_dir, args.only)
    if document is None:
        return
    print((args.out / f"{OUTPUT_STEMS[document['mode']]}.md").read_text(encoding="utf-8"))
    print(f"verify: done in {document['seconds']:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
