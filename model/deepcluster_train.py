"""DeepCluster's training loop (Caron et al., ECCV 2018), separate from the networks in `model/deepcluster.py`.

Each epoch (models.md §4):
  1. features of the whole dataset, inference mode, no augmentation (the paper's centre crop is the full image);
  2. PCA to `pca_dim` with whitening, then L2-normalised rows (`pca_whiten_normalise`);
  3. k-means with `k_train` clusters, a fresh seed per epoch, empty clusters re-split (`resplit_empty_clusters`);
  4. the cluster ids become pseudo-labels; a uniform sampler draws an equal quota per non-empty cluster;
  5. the top layer is re-initialised (N(0, 0.01), bias 0) with its own SGD optimiser (no momentum, as in the
     reference `train()`) and the net is trained
     for one pass with cross-entropy and light augmentation (random resized crop + horizontal flip).
After the last epoch the final features are clustered once more at `k_eval` (= the number of artists).

What differs from the paper and why:
* Small images and few of them: a small VGG-style net with adaptive pooling (see `model/deepcluster.py`)
  instead of AlexNet at 224 px; `k_train` over-clusters by 3–5× the number of artists instead of 10,000
  (issues #22/#85: with k = #classes on small data NMI stays near chance); `pca_dim` is clipped to
  min(N, feature dim) − 1 because PCA cannot have more components than that.
* sklearn k-means (Lloyd, `kmeans_iter` iterations, one init per epoch) instead of faiss; faiss re-splits empty
  clusters internally, so the re-split is written out here to be testable.
* The sampler gives every non-empty cluster exactly the same quota (the reference sampler truncates its
  shuffled list to N, so quotas differ by one); a cluster smaller than its quota contributes every member
  the same number of times, then a random remainder, rather than i.i.d. draws.
* Inputs are in [0, 1] with no ImageNet mean/std: the first BatchNorm absorbs the scale, and art images are
  not ImageNet. Random-resized-crop clips the sampled box to the image instead of re-drawing it.
* The embedded default trains for a dozen epochs on CPU (about a minute for ~350 images of 32 px); the paper
  trains 500 epochs on GPU. With ~350 images one pass is ~10 SGD steps, too few for a head re-initialised
  every epoch to learn anything (the loss stays at log k), so each epoch trains on `reassign` × N samples
  (the reference code's `--reassign`, default 1) before re-clustering. The NMI between consecutive epochs
  (the paper's Fig. 2b) says whether the assignments have stabilised.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.cluster import KMeans

from common import load_params, progress, write_json
from model.data import ImageSet, to_model_input
from model.deepcluster import DeepClusterNet, build_deepcluster_net
from model.fashion_mnist import DATA_DIR, load_fashion_mnist
from model.metrics import label_metrics, nmi
from model.runtime import git_sha, keep_freed_memory, pick_device, seed_everything

WHITEN_EPS = 1e-5        # added to each PCA component's variance before whitening (guards zero-variance axes)
NORMALISE_EPS = 1e-12    # guards the L2 normalisation of an all-zero row
AUGMENT_KEYS = ("crop_scale", "crop_ratio", "hflip")
FINAL_KMEANS_MAX_ITER = 300  # the final k_eval clustering runs Lloyd to convergence (sklearn's default cap)
FASHION_CLASSES = 10
# Verification recipes (on top of the params' net and optimiser settings). Quick: the 10,000 test images, as
# model.verify's quick mode, on CPU in minutes. Full: all 70,000 images, a GPU job. k_train over-clusters 5×/10×.
FASHION_QUICK = {"splits": ("test",), "epochs": 10, "reassign": 1, "k_train": 50}
FASHION_FULL = {"splits": ("train", "test"), "epochs": 100, "reassign": 1, "k_train": 100}


@dataclass(frozen=True)
class DeepClusterConfig:
    """The `deepcluster:` section of params.yaml (k_train travels separately, as an argument of the fit)."""

    epochs: int
    reassign: float
    batch_size: int
    feature_batch_size: int
    pca_dim: int
    kmeans_iter: int
    kmeans_n_init: int
    lr: float
    momentum: float
    weight_decay: float
    sobel: bool
    resplit_eps: float
    arch: dict = field(default_factory=dict)
    augment: dict = field(default_factory=dict)

    @classmethod
    def from_params(cls, section: Mapping) -> DeepClusterConfig:
        """Build from the params section; `k_train` there is ignored here. Raises KeyError naming missing or
        unknown keys, ValueError for a value out of range."""
        known = set(cls.__dataclass_fields__)
        allowed = known | {"k_train"}
        unknown = sorted(set(section) - allowed)
        missing = sorted(known - set(section))
        if unknown or missing:
            raise KeyError(f"params.yaml deepcluster: missing {missing}, unknown {unknown}")
        config = cls(**{key: section[key] for key in known})
        config.validate()
        return config

    def validate(self) -> None:
        for name in ("epochs", "batch_size", "feature_batch_size", "pca_dim", "kmeans_iter", "kmeans_n_init"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"params.yaml deepcluster.{name}: must be ≥ 1, not {getattr(self, name)}")
        if self.reassign <= 0:
            raise ValueError(f"params.yaml deepcluster.reassign: must be > 0, not {self.reassign}")
        if self.lr <= 0:
            raise ValueError(f"params.yaml deepcluster.lr: must be > 0, not {self.lr}")
        missing = [key for key in AUGMENT_KEYS if key not in self.augment]
        if missing:
            raise KeyError(f"params.yaml deepcluster.augment: missing {missing} (needs {list(AUGMENT_KEYS)})")
        low, high = self.augment["crop_scale"]
        if not 0 < low <= high <= 1:
            raise ValueError(f"params.yaml deepcluster.augment.crop_scale: need 0 < low ≤ high ≤ 1, "
                             f"not {[low, high]}")


@dataclass
class DeepClusterResult:
    """What a fit returns. `features` are the raw classifier features, `embedding` their PCA-whitened,
    L2-normalised version (the space the assignments were clustered in)."""

    features: np.ndarray      # (N, D) float32
    embedding: np.ndarray     # (N, d) float32, rows of unit norm
    assignments: np.ndarray   # (N,) int64 in [0, k_eval)
    history: list[dict]       # one record per epoch
    net: DeepClusterNet
    final_metrics: dict | None = None  # label metrics of `assignments`, when labels were given


# ------------------------------------------------------------------------------------------- clustering


def pca_whiten_normalise(features: np.ndarray, pca_dim: int) -> np.ndarray:
    """(N, D) → (N, d): centre, project on the top d principal axes, divide each by its standard deviation,
    L2-normalise rows. d = min(pca_dim, min(N, D) − 1): a centred N×D matrix has at most min(N, D) − 1
    non-trivial components.

    Computed with a deterministic SVD in float64 (faiss' PCAMatrix with eigen_power −0.5 does the same).
    """
    x = np.asarray(features, dtype=np.float64)
    n, dim = x.shape
    d = min(int(pca_dim), min(n, dim) - 1)
    if d < 1:
        raise ValueError(f"PCA needs at least 2 samples and 2 feature dims; got features of shape {x.shape}")
    centred = x - x.mean(axis=0)
    _, singular, vt = np.linalg.svd(centred, full_matrices=False)
    variance = singular[:d] ** 2 / max(n - 1, 1)
    projected = centred @ vt[:d].T / np.sqrt(variance + WHITEN_EPS)  # (N, d), unit variance per axis
    norms = np.linalg.norm(projected, axis=1, keepdims=True)
    return (projected / np.maximum(norms, NORMALISE_EPS)).astype(np.float32)


def resplit_empty_clusters(points: np.ndarray, centroids: np.ndarray, assignments: np.ndarray,
                           rng: np.random.Generator, eps: float) -> tuple[np.ndarray, np.ndarray, int]:
    """Give every empty cluster points by splitting a non-empty one (the paper's rule, §3.3).

    For each empty cluster: pick a donor cluster with at least 2 members, at random with probability
    ∝ (size − 1) (as faiss does: a singleton cannot be split); put the empty cluster's centroid at the
    donor's centroid + eps·u and the donor's at − eps·u for a random unit vector u, and reassign the
    donor's points to the nearer of the two, i.e. split them by the hyperplane through the old centroid
    orthogonal to u. If all donor points fall on one side (e.g. duplicates), the point farthest along u
    moves over, so both clusters end non-empty.

    Returns new (assignments, centroids, number of clusters re-split); the inputs are not modified.

    Raises:
        ValueError: more clusters than points, so some would have to stay empty.
    """
    k = centroids.shape[0]
    if k > len(points):
        raise ValueError(f"k-means with k={k} clusters on only {len(points)} points: some would stay empty")
    assignments = assignments.copy()
    centroids = centroids.copy()
    sizes = np.bincount(assignments, minlength=k)
    empty = np.flatnonzero(sizes == 0)
    for cluster in empty:
        weights = np.maximum(sizes - 1, 0).astype(np.float64)
        donor = int(rng.choice(k, p=weights / weights.sum()))
        direction = rng.standard_normal(centroids.shape[1])
        direction /= max(np.linalg.norm(direction), NORMALISE_EPS)
        centre = centroids[donor].copy()
        centroids[cluster] = centre + eps * direction
        centroids[donor] = centre - eps * direction
        members = np.flatnonzero(assignments == donor)
        side = (points[members] - centre) @ direction  # > 0: nearer the new centroid
        moving = members[side > 0]
        if moving.size == 0 or moving.size == members.size:
            moving = members[[int(np.argmax(side))]]
        assignments[moving] = cluster
        sizes[cluster], sizes[donor] = moving.size, members.size - moving.size
    return assignments, centroids, int(empty.size)


def epoch_seed(seed: int, epoch: int, stream: int) -> int:
    """A 32-bit seed for (run seed, epoch, purpose): a new k-means seed every epoch, reproducible per run."""
    return int(np.random.SeedSequence([seed, epoch, stream]).generate_state(1)[0])


def cluster_features(embedding: np.ndarray, k: int, seed: int, max_iter: int, n_init: int,
                     resplit_rng: np.random.Generator, resplit_eps: float) -> tuple[np.ndarray, int]:
    """k-means on the (already whitened, normalised) embedding → (assignments (N,) int64, clusters re-split)."""
    if k > embedding.shape[0]:
        raise ValueError(f"k-means with k={k} clusters on only {embedding.shape[0]} images")
    kmeans = KMeans(n_clusters=k, n_init=n_init, max_iter=max_iter, random_state=seed).fit(embedding)
    assignments, _, n_resplit = resplit_empty_clusters(embedding, kmeans.cluster_centers_,
                                                       kmeans.labels_.astype(np.int64), resplit_rng, resplit_eps)
    return assignments, n_resplit


# --------------------------------------------------------------------------------------------- sampling


def uniform_cluster_sample(assignments: np.ndarray, n_samples: int, generator: torch.Generator) -> torch.Tensor:
    """Indices for one epoch with the same quota q = ⌈n_samples / #non-empty clusters⌉ for every non-empty
    cluster, shuffled. This is DeepCluster's guard against the trivial solution (one huge cluster):
    equivalent to weighting the loss by 1 / cluster size.

    A cluster with at least q members gives q distinct ones; a smaller one gives all its members ⌊q/size⌋
    times plus a random remainder (sampling with replacement, stratified). Returns (q · #clusters,) int64.
    """
    labels = torch.as_tensor(np.asarray(assignments), dtype=torch.int64)
    clusters = torch.unique(labels)
    if clusters.numel() == 0:
        raise ValueError("uniform_cluster_sample: no assignments")
    quota = math.ceil(n_samples / clusters.numel())
    picks = []
    for cluster in clusters:
        members = torch.nonzero(labels == cluster).flatten()
        repeats, remainder = divmod(quota, members.numel())
        extra = members[torch.randperm(members.numel(), generator=generator)[:remainder]]
        picks.append(torch.cat([members.repeat(repeats), extra]))
    indices = torch.cat(picks)
    return indices[torch.randperm(indices.numel(), generator=generator)]


# ----------------------------------------------------------------------------------------- augmentation


def augment_batch(x: torch.Tensor, crop_scale: tuple[float, float], crop_ratio: tuple[float, float],
                  hflip: bool, generator: torch.Generator) -> torch.Tensor:
    """Random resized crop + horizontal flip of a whole batch in one `grid_sample` call.

    x: (B, C, H, W) float → (B, C, H, W). Each sample gets a box of area fraction ~ U(crop_scale) and aspect
    ratio log-uniform in crop_ratio (sides clipped to the image), at a uniform position, resized back to
    H×W bilinearly, and mirrored with probability 1/2 when `hflip`. Random numbers come from `generator`
    (CPU) so the result depends only on its seed.
    """
    b = x.shape[0]
    area = torch.empty(b).uniform_(crop_scale[0], crop_scale[1], generator=generator)
    log_ratio = torch.empty(b).uniform_(math.log(crop_ratio[0]), math.log(crop_ratio[1]), generator=generator)
    width = torch.sqrt(area * torch.exp(log_ratio)).clamp(max=1.0)    # (B,) fraction of the image width
    height = torch.sqrt(area / torch.exp(log_ratio)).clamp(max=1.0)   # (B,)
    centre_x = (torch.rand(b, generator=generator) * 2 - 1) * (1 - width)   # normalised coords in [-1, 1]
    centre_y = (torch.rand(b, generator=generator) * 2 - 1) * (1 - height)
    flip = torch.where(torch.rand(b, generator=generator) < 0.5, -1.0, 1.0) if hflip else torch.ones(b)
    theta = torch.zeros(b, 2, 3)                                      # (B, 2, 3): output → input coords
    theta[:, 0, 0], theta[:, 0, 2] = width * flip, centre_x
    theta[:, 1, 1], theta[:, 1, 2] = height, centre_y
    grid = F.affine_grid(theta.to(x.device, x.dtype), list(x.shape), align_corners=False)  # (B, H, W, 2)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


# ------------------------------------------------------------------------------------------ net passes


@torch.inference_mode()
def extract_features(net: DeepClusterNet, images_u8: torch.Tensor, batch_size: int,
                     device: torch.device) -> np.ndarray:
    """(N, H, W, C) uint8 → (N, D) float32 features in eval mode (dropout off, BatchNorm running stats)."""
    net.eval()
    chunks = [net.features(to_model_input(images_u8[i:i + batch_size], device)).float().cpu()
              for i in range(0, images_u8.shape[0], batch_size)]  # each (b, D)
    return torch.cat(chunks).numpy()


def make_sgd(parameters, config: DeepClusterConfig) -> torch.optim.SGD:
    """The body's optimiser: SGD with momentum and weight decay (reference `main.py`)."""
    return torch.optim.SGD(parameters, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)


def make_head_sgd(parameters, config: DeepClusterConfig) -> torch.optim.SGD:
    """The re-initialised top layer's optimiser, as the reference `train()` builds it: SGD with the same lr and
    weight decay but no momentum (a fresh optimiser every epoch would start its momentum at zero anyway)."""
    return torch.optim.SGD(parameters, lr=config.lr, weight_decay=config.weight_decay)


def train_one_epoch(net: DeepClusterNet, body_optimiser: torch.optim.Optimizer, head_optimiser: torch.optim.Optimizer,
                    images_u8: torch.Tensor, pseudo_labels: np.ndarray, config: DeepClusterConfig,
                    generator: torch.Generator, device: torch.device) -> float:
    """Train on a uniform-per-cluster sample of `reassign` × N images (the reference code's `--reassign`:
    epochs between re-clusterings) with cross-entropy on the pseudo-labels; returns the mean loss.

    Raises:
        FloatingPointError: a non-finite loss (the batch is named), so a diverging run fails loudly.
    """
    net.train()
    order = uniform_cluster_sample(pseudo_labels, math.ceil(config.reassign * images_u8.shape[0]), generator)
    targets_all = torch.as_tensor(pseudo_labels, dtype=torch.int64)
    augment = config.augment
    total, count = 0.0, 0
    for start in range(0, order.numel(), config.batch_size):
        index = order[start:start + config.batch_size]
        if index.numel() < 2:  # BatchNorm in training mode cannot normalise a single sample's features
            continue
        x = to_model_input(images_u8[index], device)  # (B, C, H, W)
        x = augment_batch(x, tuple(augment["crop_scale"]), tuple(augment["crop_ratio"]),
                          bool(augment["hflip"]), generator)
        loss = F.cross_entropy(net(x), targets_all[index].to(device))
        if not torch.isfinite(loss):
            raise FloatingPointError(f"deepcluster: non-finite loss {loss.item()} at sample offset {start}")
        body_optimiser.zero_grad(set_to_none=True)
        head_optimiser.zero_grad(set_to_none=True)
        loss.backward()
        body_optimiser.step()
        head_optimiser.step()
        total += loss.item() * index.numel()
        count += index.numel()
    return total / max(count, 1)


# ---------------------------------------------------------------------------------------------- the fit


def fit_deepcluster(image_set: ImageSet, k_train: int, k_eval: int, config: DeepClusterConfig | Mapping,
                    seed: int, device: torch.device | str, labels: np.ndarray | None = None,
                    on_epoch: Callable[[dict], None] | None = None) -> DeepClusterResult:
    """Train DeepCluster on `image_set` and cluster its final features into `k_eval` groups.

    `labels` (N,) are used only for logging (NMI/ACC/ARI of each epoch's k_train clusters, and of the final
    assignments); `on_epoch(record)` is called after each epoch with that epoch's history record.
    """
    config = config if isinstance(config, DeepClusterConfig) else DeepClusterConfig.from_params(config)
    device = torch.device(device)
    images = image_set.images
    n = int(images.shape[0])
    if not 2 <= k_eval <= n or not 2 <= k_train <= n:
        raise ValueError(f"deepcluster: need 2 ≤ k ≤ N = {n}; got k_train={k_train}, k_eval={k_eval}")
    if labels is not None and len(labels) != n:
        raise ValueError(f"deepcluster: {len(labels)} labels for {n} images")
    generator = seed_everything(seed)
    net = build_deepcluster_net(image_set.channels, config.arch, config.sobel).to(device)
    net = net.to(memory_format=torch.channels_last)
    body_optimiser = make_sgd(net.body_parameters(), config)
    history: list[dict] = []
    previous: np.ndarray | None = None
    for epoch in progress(range(config.epochs), desc="deepcluster epochs", total=config.epochs, unit="epoch"):
        started = time.perf_counter()
        embedding = pca_whiten_normalise(extract_features(net, images, config.feature_batch_size, device),
                                         config.pca_dim)
        pseudo_labels, n_resplit = cluster_features(
            embedding, k_train, epoch_seed(seed, epoch, 0), config.kmeans_iter, 1,
            np.random.default_rng(epoch_seed(seed, epoch, 1)), config.resplit_eps)
        head = net.reset_head(k_train, generator)
        loss = train_one_epoch(net, body_optimiser, make_head_sgd(head.parameters(), config), images, pseudo_labels,
                               config, generator, device)
        record = epoch_record(epoch, loss, pseudo_labels, previous, labels, n_resplit,
                              time.perf_counter() - started)
        history.append(record)
        previous = pseudo_labels
        print(f"deepcluster epoch {epoch}: " + json.dumps(record), file=sys.stderr)
        if on_epoch is not None:
            on_epoch(record)
    features = extract_features(net, images, config.feature_batch_size, device)
    embedding = pca_whiten_normalise(features, config.pca_dim)
    assignments, _ = cluster_features(embedding, k_eval, epoch_seed(seed, config.epochs, 0), FINAL_KMEANS_MAX_ITER,
                                      config.kmeans_n_init, np.random.default_rng(epoch_seed(seed, config.epochs, 1)),
                                      config.resplit_eps)
    final_metrics = None if labels is None else label_metrics(np.asarray(labels), assignments)
    return DeepClusterResult(features=features.astype(np.float32), embedding=embedding, assignments=assignments,
                             history=history, net=net, final_metrics=final_metrics)


def epoch_record(epoch: int, loss: float, assignments: np.ndarray, previous: np.ndarray | None,
                 labels: np.ndarray | None, n_resplit: int, seconds: float) -> dict:
    """One history line: loss, NMI(t−1, t) (geometric, as the paper), re-split count, label metrics."""
    record = {
        "epoch": epoch,
        "loss": round(float(loss), 6),
        "nmi_prev_epoch": None if previous is None else round(nmi(previous, assignments, "geometric"), 6),
        "clusters_nonempty": int(np.unique(assignments).size),
        "clusters_resplit": n_resplit,
        "seconds": round(seconds, 3),
    }
    if labels is not None:
        record.update({f"labels_{name}": round(value, 6)
                       for name, value in label_metrics(np.asarray(labels), assignments).items()})
    return record


# ----------------------------------------------------------------------------- Fashion-MNIST verification


def verify_fashion_mnist(quick: bool = True, params_path: str | Path = "params.yaml",
                         data_dir: Path = DATA_DIR, out: Path | None = None) -> dict:
    """DeepCluster on the Fashion-MNIST test set (Debian `dataset-fashion-mnist`), with the network and
    optimiser settings of params.yaml's `deepcluster` section and the splits / epochs / reassign / k_train of
    FASHION_QUICK or FASHION_FULL. Returns (and prints, and writes to `out` as JSON) the final metrics at
    k = 10, the per-epoch history, the timing and the commit."""
    section = dict(load_params("deepcluster", params_path))
    model_params = load_params("model", params_path)
    keep_freed_memory(model_params["keep_freed_memory"])
    device = pick_device(model_params["device"])
    seed = int(load_params("base", params_path)["seed"])
    recipe = FASHION_QUICK if quick else FASHION_FULL
    section.update(epochs=recipe["epochs"], reassign=recipe["reassign"])
    config = DeepClusterConfig.from_params(section)
    images, labels = load_fashion_mnist(data_dir, recipe["splits"])    # (N, 28, 28, 1), (N,)
    image_set = ImageSet(images=torch.from_numpy(np.ascontiguousarray(images)))
    started = time.perf_counter()
    result = fit_deepcluster(image_set, recipe["k_train"], FASHION_CLASSES, config, seed, device, labels=labels)
    report = {"dataset": "fashion-mnist " + "+".join(recipe["splits"]), "quick": quick,
              "n_images": int(labels.size), "epochs": config.epochs, "reassign": config.reassign,
              "k_train": recipe["k_train"], "k_eval": FASHION_CLASSES, "sobel": config.sobel, "seed": seed,
              "device": str(device), "threads": torch.get_num_threads(), "machine": platform.processor() or
              platform.machine(), "seconds": round(time.perf_counter() - started, 1),
              "final": {k: round(v, 4) for k, v in result.final_metrics.items()},
              "history": result.history, "git_sha": git_sha()}
    print(json.dumps(report, indent=2))
    if out is not None:
        write_json(out, report)
    return report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--verify-fashion-mnist", action="store_true",
                        help="run DeepCluster on Fashion-MNIST and print its metrics")
    parser.add_argument("--quick", action="store_true", help=f"quick mode: {FASHION_QUICK}")
    parser.add_argument("--params", default="params.yaml", help="params file (sections base, model, deepcluster)")
    parser.add_argument("--out", type=Path, default=Path("reports/verify/deepcluster-fashion-mnist.json"),
                        help="where the JSON report goes")
    args = parser.parse_args(argv)
    if not args.verify_fashion_mnist:
        parser.error("nothing to do: DeepCluster runs in the comparison as method 'deepcluster'; "
                     "use --verify-fashion-mnist [--quick] for the check")
    verify_fashion_mnist(quick=args.quick, params_path=args.params, out=args.out)


if __name__ == "__main__":
    main()
