"""DCEC (Guo et al. 2017) joint training: k-means-initialised clustering layer + reconstruction.

The training loop follows Guo's `DCEC.fit` (models.md §1.2–1.3), with the known port bugs avoided (§3):
* P (DEC eq. 3) is recomputed on the WHOLE dataset every `update_interval` iterations, in inference mode
  with large batches, and held fixed in between;
* batches are read sequentially from ONE fixed seeded permutation, so P row i always belongs to the same
  sample; the last batch of a pass is partial and the position wraps, as in Guo's code;
* loss = kl_weight·KL(P‖Q) + recon_weight·MSE with `F.kl_div(log q, p, reduction="batchmean")`;
* the centres are a Parameter registered before the optimiser is built, k-means centres copied in place;
* stop when fewer than `tol` of the assignments changed between two P updates (checked at update steps
  with ite > 0), or after `maxiter` iterations.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score

from common import progress
from model.data import encode_all, to_model_input
from model.metrics import cluster_acc, nmi
from model.nets import CAE, DCECNet, build_cae, soft_assign
from model.runtime import (NonFiniteLossError, adam, autocast, autocast_dtype, maybe_compile, save_atomic,
                           seed_everything)

__all__ = ["DCECConfig", "DCECResult", "clustering_loss", "fit_dcec", "soft_assign", "target_distribution",
           "save_dcec"]

LOG_EPS = 1e-12  # q is clamped to this before log(q): an underflowed q of 0 would give an infinite KL


def target_distribution(q: torch.Tensor) -> torch.Tensor:
    """DEC eq. 3: p_ij = (q_ij² / f_j) / Σ_j' (q_ij'² / f_j'), with f_j = Σ_i q_ij. q, p: (N, K)."""
    weight = q.pow(2) / q.sum(dim=0, keepdim=True)  # (N, K)
    return weight / weight.sum(dim=1, keepdim=True)


def clustering_loss(q: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """KL(P‖Q) = Σ_j p_ij log(p_ij / q_ij) per sample, averaged over the batch (Keras `kld`).

    Argument order matters: `F.kl_div` takes log Q as input and P as target. reduction="mean" would also
    divide by K and shrink the term K-fold.
    """
    return F.kl_div(q.clamp_min(LOG_EPS).log(), p, reduction="batchmean")


@dataclass
class DCECConfig:
    """Joint-phase settings (params.yaml `cluster` + `model.k` + `base.seed`)."""

    n_clusters: int
    batch_size: int = 256
    lr: float = 1e-3
    maxiter: int = 20000
    update_interval: int = 140
    tol: float = 1e-3
    kl_weight: float = 0.9
    recon_weight: float = 0.1
    kmeans_n_init: int = 20
    seed: int = 0
    alpha: float = 1.0
    eval_batch_size: int = 1024
    compile: bool = False
    mixed_precision: str = "off"
    show_progress: bool = True


@dataclass
class DCECResult:
    """What `fit_dcec` returns. assignments, q_max and embedding are from the last P update step (Guo)."""

    assignments: np.ndarray  # (N,) int64
    q_max: np.ndarray  # (N,) float32
    embedding: np.ndarray  # (N, E) float32
    net: DCECNet
    n_iter: int
    converged: bool
    history: list[dict] = field(default_factory=list)
    kmeans_assignments: np.ndarray | None = None  # (N,) the k-means initialisation (= CAE + k-means)


@torch.inference_mode()
def predict_all(net: DCECNet, images_u8: torch.Tensor, batch_size: int, device: torch.device,
                amp_dtype: torch.dtype | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Soft assignments q (N, K) and fp32 embeddings z (N, E) of every image, on `device`, in inference mode.

    The encoder runs in the training steps' precision (`amp_dtype`, None = fp32), as Keras predicts under its
    mixed policy: this pass recurs every `update_interval` steps and is part of training. q is fp32 either way.
    The net's train/eval mode is restored afterwards (torch_DCEC bug (f)).
    """
    was_training = net.training
    net.eval()
    try:
        qs, zs = [], []
        for start in range(0, images_u8.shape[0], batch_size):
            with autocast(device, amp_dtype):
                z = net.cae.encode(to_model_input(images_u8[start:start + batch_size], device))  # (b, E)
            qs.append(net.clustering(z))  # (b, K) fp32
            zs.append(z.float())
    finally:
        net.train(was_training)
    return torch.cat(qs), torch.cat(zs)


def kmeans_init(embedding: np.ndarray, n_clusters: int, n_init: int, seed: int) -> KMeans:
    """Seeded sklearn k-means on the pretrained embedding (N, E)."""
    return KMeans(n_clusters=n_clusters, n_init=n_init, random_state=seed).fit(embedding)


def batch_indices(order: torch.Tensor, position: int, batch_size: int) -> tuple[torch.Tensor, int]:
    """Guo's sequential batching over a fixed order: the batch at `position` and the next position.

    The last batch of a pass is partial (order[position·B:]); the position then wraps to 0.
    """
    n = order.shape[0]
    start = position * batch_size
    idx = order[start:min(start + batch_size, n)]
    next_position = position + 1 if (position + 1) * batch_size < n else 0
    return idx, next_position


def _label_scores(y_true: np.ndarray | None, y_pred: np.ndarray) -> dict[str, float]:
    if y_true is None:
        return {}
    return {"acc": cluster_acc(y_true, y_pred), "nmi": nmi(y_true, y_pred, "arithmetic"),
            "nmi_geometric": nmi(y_true, y_pred, "geometric"), "ari": float(adjusted_rand_score(y_true, y_pred))}


def _check_finite(bad_flag: torch.Tensor, ite: int) -> None:
    if bool(bad_flag):
        raise NonFiniteLossError(f"DCEC: the loss became NaN or infinite at or before iteration {ite}; "
                                 "lower cluster.lr or check the input images")


def validate_config(config: DCECConfig) -> None:
    """Raise ValueError for settings the loop cannot run with."""
    for name in ("n_clusters", "batch_size", "maxiter", "update_interval", "kmeans_n_init", "eval_batch_size"):
        if int(getattr(config, name)) < 1:
            raise ValueError(f"DCEC setting {name} must be at least 1, got {getattr(config, name)!r}")
    if config.lr <= 0 or config.tol < 0 or config.kl_weight < 0 or config.recon_weight < 0 or config.alpha <= 0:
        raise ValueError(f"DCEC settings out of range: {config}")


def fit_dcec(cae: CAE, images_u8: torch.Tensor, config: DCECConfig, device: torch.device,
             labels: np.ndarray | None = None, on_update: Callable[[dict], None] | None = None) -> DCECResult:
    """Train DCEC on uint8 images (N, H, W, C) starting from a pretrained CAE; the CAE is deep-copied.

    Final assignments, q_max and embedding are those of the LAST P update step, as Guo reports them (the
    up to `update_interval`-1 gradient steps after it are not reflected; on convergence there are none).
    `history` has one record per P update: ite, delta_label, loss/kl/mse (means over the steps since the
    previous update; NaN at ite 0) and, when `labels` are given, acc/nmi/nmi_geometric/ari.
    `on_update(record)` is called with each record as it is made.

    NaN guard: a device-side flag accumulates ~isfinite(loss); it is read every step on CPU (cheap) and at
    each P update on CUDA (avoids a host sync per step). Raises NonFiniteLossError.
    """
    validate_config(config)
    generator = seed_everything(config.seed)
    images = images_u8.to(device)  # one copy; on CPU a no-op
    n = images.shape[0]
    if n < config.n_clusters:
        raise ValueError(f"{n} images for {config.n_clusters} clusters")
    cae = copy.deepcopy(cae).to(device).to(memory_format=torch.channels_last)
    embedding0 = encode_all(cae, images, config.eval_batch_size, device)
    kmeans = kmeans_init(embedding0, config.n_clusters, config.kmeans_n_init, config.seed)

    net = DCECNet(cae, config.n_clusters, config.alpha).to(device)
    net.clustering.set_centres(torch.from_numpy(kmeans.cluster_centers_))
    optimizer = adam(net.parameters(), config.lr)  # built after the centres exist
    step = maybe_compile(net, config.compile)
    amp_dtype = autocast_dtype(config.mixed_precision, device)
    order = torch.randperm(n, generator=generator).to(device)  # ONE fixed order for the whole run

    y_last = kmeans.labels_.astype(np.int64)
    history: list[dict] = []
    sums = torch.zeros(3, device=device)  # running (loss, kl, mse) since the last update
    bad = torch.zeros((), dtype=torch.bool, device=device)
    steps_since, position, converged, ite = 0, 0, False, 0
    check_every_step = device.type == "cpu"
    q_all = z_all = p = None
    y_pred = y_last
    started = time.perf_counter()
    iterations = progress(range(config.maxiter), desc="dcec", unit="it") if config.show_progress \
        else range(config.maxiter)
    for ite in iterations:
        if ite % config.update_interval == 0:
            _check_finite(bad, ite)
            q_all, z_all = predict_all(net, images, config.eval_batch_size, device, amp_dtype)
            p = target_distribution(q_all)  # (N, K), fixed until the next update
            y_pred = q_all.argmax(dim=1).cpu().numpy()
            delta = float((y_pred != y_last).mean())
            means = (sums / steps_since).tolist() if steps_since else [math.nan] * 3
            record = {"ite": ite, "delta_label": delta, "loss": means[0], "kl": means[1], "mse": means[2],
                      **_label_scores(labels, y_pred), "seconds": time.perf_counter() - started}
            history.append(record)
            if on_update is not None:
                on_update(record)
            sums.zero_()
            steps_since = 0
            y_last = y_pred
            if ite > 0 and delta < config.tol:
                converged = True
                break
        idx, position = batch_indices(order, position, config.batch_size)
        x = to_model_input(images[idx], device)  # (b, C, H, W)
        with autocast(device, amp_dtype):
            q, x_hat, _ = step(x)  # q is fp32 even under autocast (soft_assign)
            kl = clustering_loss(q, p[idx])
            mse = F.mse_loss(x_hat.float(), x)
            loss = config.kl_weight * kl + config.recon_weight * mse
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            bad |= ~torch.isfinite(loss)
            sums += torch.stack([loss.detach(), kl.detach(), mse.detach()])
        steps_since += 1
        if check_every_step:
            _check_finite(bad, ite)
    _check_finite(bad, ite)
    return DCECResult(
        assignments=np.asarray(y_pred, dtype=np.int64),
        q_max=q_all.max(dim=1).values.float().cpu().numpy(),
        embedding=z_all.cpu().numpy(),
        net=net, n_iter=ite if converged else config.maxiter, converged=converged, history=history,
        kmeans_assignments=kmeans.labels_.astype(np.int64),
    )


def save_dcec(net: DCECNet, path: str | Path, extra: dict | None = None) -> None:
    """Write the DCEC net as {cae_config, n_clusters, alpha, state_dict, **extra} atomically (weights_only-safe)."""
    state = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    payload = {"cae_config": dict(net.cae.config), "n_clusters": int(net.clustering.centres.shape[0]),
               "alpha": net.clustering.alpha, "state_dict": state, **(extra or {})}
    save_atomic(payload, path)


def load_dcec(path: str | Path) -> DCECNet:
    """Rebuild the DCEC net saved by `save_dcec`."""
    saved = torch.load(Path(path), map_location="cpu", weights_only=True)
    net = DCECNet(build_cae(**saved["cae_config"]), saved["n_clusters"], saved["alpha"])
    net.load_state_dict(saved["state_dict"])
    return net
