"""One clustering interface for every method the `compare` stage runs, picked by name.

A method is an object with a `name`, a `settings` dict (everything besides k and the seed that changes
its result, used for the compare cache key), a `uses_cae` flag (its result depends on the CAE pretrained
with the run's seed, `models/cae_seeds/seed-<seed>.pt`) and `fit(image_set, k, seed) -> MethodResult`.
The seed of a run seeds everything random in it, pretraining included: CAE + k-means and DCEC of seed s
share the CAE of seed s, so their difference per seed is a paired comparison.

Methods (params `compare.methods`):
* `kmeans_pixels` — k-means on the raw pixels scaled to [0, 1]. Its `embedding` is None: pixel space is
  S·S·3-dimensional (49,152 at 128 px), silhouette there costs O(N²·D) and would not say anything the
  PCA baseline does not; the report shows "—" for its internal metrics.
* `pca_kmeans` — seeded PCA to `compare.pca_components` dimensions, then k-means; embedding = the projection.
* `cae_kmeans` — the seed's pretrained CAE embedding (`encode_all`) then k-means; this is DCEC's initialisation.
* `dcec` — `fit_dcec` from the seed's pretrained CAE with the `cluster` settings; embedding = its final embedding.
* `dcec_no_kl` — the control: the same joint phase with `kl_weight` 0 (reconstruction only) for all `maxiter`
  iterations (no `tol` stop), so any gain of `dcec` over it is the clustering loss's, not extra training's.
* `deepcluster` — DeepCluster trained from scratch (`deepcluster` settings) with `deepcluster.k_train`
  pseudo-classes, then k-means at k on its PCA-whitened, L2-normalised final features (the embedding).
* `n2d` — N2D (McConville et al., ICPR 2020): the seed's pretrained CAE embedding (the one `cae_kmeans` and
  `dcec` start from; no extra training) through seeded UMAP (`n2d` settings), then a seeded Gaussian mixture
  with k components on the manifold; embedding = the UMAP manifold. No joint clustering loss: it asks whether
  DCEC's joint training beats clustering the manifold of the same embedding.

Every k-means uses `cluster.kmeans_n_init` restarts, so the baselines get the same initialisation budget
as DCEC's own k-means — except k-means on pixels when `compare.pixels_kmeans_n_init` bounds it: at 128 px
(49,152 dimensions) one restart on 10,765 images took 151 s on 2 cores (51 Lloyd iterations), so 20
restarts × 5 seeds would be over 4 hours; the mission profile gives it 1 restart (a weaker baseline, said
in results.md by model/report.py `restarts_note`).

Extension point: a new method (DeepCluster) is a class with the same four members plus a factory
`(params, cae_dir) -> method` registered in `METHODS` (or with `register_method`), then listed in
`compare.methods`; `compare`, its cache and the report pick it up without other changes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA
from sklearn.mixture import GaussianMixture

from model.data import ImageSet, encode_all
from model.dcec import DCECConfig, fit_dcec
from model.deepcluster_train import DeepClusterConfig, fit_deepcluster
from model.nets import load_cae
from model.runtime import autocast_dtype, pick_device

CAE_SEEDS_DIR = Path("models/cae_seeds")
PIXEL_CHUNK = 2048  # images converted to float32 at a time (bounds the temporary copy)


@dataclass
class MethodResult:
    """assignments (N,) int64 in 0..k-1; embedding (N, D) float32 or None; extra: JSON-able facts."""

    assignments: np.ndarray
    embedding: np.ndarray | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class ClusteringMethod(Protocol):
    name: str
    settings: dict[str, Any]
    uses_cae: bool

    def fit(self, image_set: ImageSet, k: int, seed: int) -> MethodResult: ...


def pixels_matrix(images_u8: torch.Tensor) -> np.ndarray:
    """(N, H, W, C) uint8 → (N, H·W·C) float32 in [0, 1], converted in chunks to bound peak memory."""
    n = images_u8.shape[0]
    flat = images_u8.reshape(n, -1)
    out = np.empty(flat.shape, dtype=np.float32)
    for start in range(0, n, PIXEL_CHUNK):
        out[start:start + PIXEL_CHUNK] = flat[start:start + PIXEL_CHUNK].numpy().astype(np.float32) / 255.0
    return out


def seeded_kmeans(features: np.ndarray, k: int, n_init: int, seed: int) -> np.ndarray:
    """Labels (N,) int64 of sklearn k-means (k-means++ init, `n_init` restarts, random_state=seed)."""
    if features.shape[0] < k:
        raise ValueError(f"{features.shape[0]} samples for k={k} clusters")
    model = KMeans(n_clusters=k, n_init=n_init, random_state=seed).fit(features)
    return model.labels_.astype(np.int64)


class KMeansPixels:
    """k-means on raw pixels in [0, 1]; no embedding is returned (see the module docstring)."""

    name = "kmeans_pixels"
    uses_cae = False

    def __init__(self, kmeans_n_init: int):
        self.settings = {"kmeans_n_init": int(kmeans_n_init)}

    def fit(self, image_set: ImageSet, k: int, seed: int) -> MethodResult:
        labels = seeded_kmeans(pixels_matrix(image_set.images), k, self.settings["kmeans_n_init"], seed)
        return MethodResult(labels, None, {"embedding": "none (pixel space)"})


class PCAKMeans:
    """Seeded PCA (randomised SVD) to `pca_components` dimensions, then k-means on the projection."""

    name = "pca_kmeans"
    uses_cae = False

    def __init__(self, pca_components: int, kmeans_n_init: int):
        self.settings = {"pca_components": int(pca_components), "kmeans_n_init": int(kmeans_n_init)}

    def fit(self, image_set: ImageSet, k: int, seed: int) -> MethodResult:
        pixels = pixels_matrix(image_set.images)  # (N, D)
        components = min(self.settings["pca_components"], *pixels.shape)  # PCA needs ≤ min(N, D)
        pca = PCA(n_components=components, svd_solver="randomized", random_state=seed)
        projection = pca.fit_transform(pixels).astype(np.float32)  # (N, components)
        labels = seeded_kmeans(projection, k, self.settings["kmeans_n_init"], seed)
        return MethodResult(labels, projection, {"pca_components": components,
                                                 "explained_variance": float(pca.explained_variance_ratio_.sum())})


def seed_cae_path(cae_dir: Path, seed: int) -> Path:
    """The CAE pretrained with `seed` (written by the pretrain stage)."""
    return Path(cae_dir) / f"seed-{seed}.pt"


class CAEEmbeddingMethod:
    """Base of the methods that cluster the embedding of the CAE pretrained with the run's seed. The embedding
    does not depend on k, so it is computed once per (image set, seed) and reused across a sweep."""

    uses_cae = True

    def __init__(self, cae_dir: Path, batch_size: int, device: torch.device):
        self.cae_dir, self.batch_size, self.device = Path(cae_dir), int(batch_size), device
        self._memo: dict[int, tuple[torch.Tensor, np.ndarray]] = {}  # seed -> (the images tensor, its embedding)

    def embed(self, image_set: ImageSet, seed: int) -> np.ndarray:
        """(N, E) float32 embedding of `image_set` by the CAE of `seed`, memoised per seed and images tensor."""
        memo = self._memo.get(seed)
        if memo is None or memo[0] is not image_set.images:
            cae = load_cae(seed_cae_path(self.cae_dir, seed)).to(self.device)
            memo = self._memo[seed] = (image_set.images,
                                       encode_all(cae, image_set.images, self.batch_size, self.device))
        return memo[1]


class CAEKMeans(CAEEmbeddingMethod):
    """k-means on the embedding of the CAE pretrained with the run's seed (DCEC's initialisation)."""

    name = "cae_kmeans"

    def __init__(self, cae_dir: Path, kmeans_n_init: int, batch_size: int, device: torch.device):
        super().__init__(cae_dir, batch_size, device)
        self.settings = {"kmeans_n_init": int(kmeans_n_init)}

    def fit(self, image_set: ImageSet, k: int, seed: int) -> MethodResult:
        embedding = self.embed(image_set, seed)
        labels = seeded_kmeans(embedding, k, self.settings["kmeans_n_init"], seed)
        return MethodResult(labels, embedding, {})


N2D_KEYS = ("n_components", "n_neighbors", "min_dist", "metric", "covariance_type")


def check_n2d_settings(settings: dict[str, Any]) -> None:
    """ValueError naming the `n2d` setting (params.yaml) that UMAP or the mixture cannot take, whatever the data."""
    missing = [key for key in N2D_KEYS if key not in settings]
    if missing:
        raise ValueError(f"params.yaml: n2d is missing {missing}")
    n_components, n_neighbors, min_dist = (settings[key] for key in ("n_components", "n_neighbors", "min_dist"))
    if n_components is not None and (not isinstance(n_components, int) or isinstance(n_components, bool)
                                     or n_components < 1):
        raise ValueError(f"params.yaml n2d.n_components must be null (= k) or a whole number >= 1, "
                         f"got {n_components!r}")
    if not isinstance(n_neighbors, int) or isinstance(n_neighbors, bool) or n_neighbors < 2:
        raise ValueError(f"params.yaml n2d.n_neighbors must be a whole number >= 2, got {n_neighbors!r}")
    if not isinstance(min_dist, int | float) or not 0.0 <= min_dist <= 1.0:
        raise ValueError(f"params.yaml n2d.min_dist must be between 0 and UMAP's spread 1.0, got {min_dist!r}")
    if settings["covariance_type"] not in ("full", "tied", "diag", "spherical"):
        raise ValueError(f"params.yaml n2d.covariance_type must be full, tied, diag or spherical, "
                         f"got {settings['covariance_type']!r}")


def n2d_cluster(embedding: np.ndarray, k: int, seed: int, settings: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """N2D's clustering of an autoencoder embedding (N, E): (labels (N,) int64, manifold (N, n_components) float32).

    UMAP (`n_components` dimensions, null meaning k as in N2D; `n_neighbors`, `min_dist`, `metric`) with
    random_state=seed, which makes it deterministic and single-threaded (umap-learn sets n_jobs=1 when seeded;
    docs/BENCHMARKS.md measures the cost); then a Gaussian mixture with k components (`covariance_type`,
    random_state=seed, one EM run as in N2D) fitted and predicted on the manifold.

    Raises:
        ValueError naming the setting when k or n_components cannot fit N samples (k <= N; UMAP's spectral
        initialisation takes n_components + 1 eigenvectors of the N-point graph, so n_components <= N - 2) or
        n_neighbors is not below N (umap-learn would silently shrink it).
    """
    import umap  # noqa: PLC0415 - numba JIT-compiles on first use: only the runs of n2d pay for it

    check_n2d_settings(settings)
    n = embedding.shape[0]
    if not 1 <= k <= n:
        raise ValueError(f"n2d: k = {k} clusters for {n} samples; k (model.k) must be between 1 and the number "
                         "of samples")
    n_components = k if settings["n_components"] is None else settings["n_components"]
    if n_components > n - 2:
        raise ValueError(f"n2d: n_components = {n_components} (params.yaml n2d.n_components, null = k) for {n} "
                         f"samples; UMAP needs n_components <= N - 2 = {n - 2}")
    if settings["n_neighbors"] >= n:
        raise ValueError(f"params.yaml n2d.n_neighbors = {settings['n_neighbors']} must be below the {n} samples")
    reducer = umap.UMAP(n_components=n_components, n_neighbors=settings["n_neighbors"],
                        min_dist=float(settings["min_dist"]), metric=settings["metric"], random_state=seed, n_jobs=1)
    manifold = reducer.fit_transform(np.asarray(embedding, dtype=np.float32)).astype(np.float32)
    mixture = GaussianMixture(n_components=k, covariance_type=settings["covariance_type"], random_state=seed)
    return mixture.fit_predict(manifold).astype(np.int64), manifold


class N2D(CAEEmbeddingMethod):
    """N2D on the embedding of the CAE pretrained with the run's seed (`n2d_cluster`)."""

    name = "n2d"

    def __init__(self, cae_dir: Path, n2d_params: dict[str, Any], batch_size: int, device: torch.device):
        super().__init__(cae_dir, batch_size, device)
        check_n2d_settings(n2d_params)
        self.settings = {key: n2d_params[key] for key in N2D_KEYS}   # umap-learn's version: runtime.KERNEL_LIBRARIES

    def fit(self, image_set: ImageSet, k: int, seed: int) -> MethodResult:
        labels, manifold = n2d_cluster(self.embed(image_set, seed), k, seed, self.settings)
        return MethodResult(labels, manifold, {"n_components": int(manifold.shape[1])})


class DCEC:
    """DCEC joint training (`fit_dcec`) from the CAE pretrained with the run's seed, which it never modifies.

    `name` and the cluster settings are parameters so that the `dcec_no_kl` control is this class too.
    """

    uses_cae = True
    SETTING_KEYS = ("batch_size", "lr", "maxiter", "update_interval", "tol", "kl_weight", "recon_weight",
                    "kmeans_n_init")

    def __init__(self, cae_dir: Path, cluster_params: dict[str, Any], model_params: dict[str, Any],
                 device: torch.device, name: str = "dcec"):
        self.name, self.cae_dir, self.device = name, Path(cae_dir), device
        missing = [key for key in self.SETTING_KEYS if key not in cluster_params]
        if missing:
            raise KeyError(f"params.yaml: cluster is missing {missing}")
        # `settings` is part of the compare cache key: the precision is stored as the one in effect on this
        # device, so a CPU (fp32) result is not reused for a CUDA (bf16) run.
        self.settings = {key: cluster_params[key] for key in self.SETTING_KEYS} | {
            "eval_batch_size": int(model_params["eval_batch_size"]), "compile": bool(model_params["compile"]),
            "mixed_precision": "bf16" if autocast_dtype(model_params["mixed_precision"], device) else "off"}
        self._caes: dict[int, Any] = {}

    def config(self, k: int, seed: int) -> DCECConfig:
        return DCECConfig(n_clusters=k, seed=seed, **self.settings)

    def fit(self, image_set: ImageSet, k: int, seed: int) -> MethodResult:
        if seed not in self._caes:
            self._caes[seed] = load_cae(seed_cae_path(self.cae_dir, seed))
        result = fit_dcec(self._caes[seed], image_set.images, self.config(k, seed), self.device)
        return MethodResult(result.assignments, result.embedding,
                            {"n_iter": int(result.n_iter), "converged": bool(result.converged),
                             "last_delta_label": float(result.history[-1]["delta_label"])})


class DeepCluster:
    """DeepCluster over-clusters while training (k_train ≥ k); labels only feed its per-epoch log."""

    name = "deepcluster"
    uses_cae = False

    def __init__(self, deepcluster_params: dict[str, Any], device: torch.device):
        self.config = DeepClusterConfig.from_params(deepcluster_params)
        self.k_train, self.device = int(deepcluster_params["k_train"]), device
        self.settings = dict(deepcluster_params)

    def fit(self, image_set: ImageSet, k: int, seed: int) -> MethodResult:
        k_train = min(max(self.k_train, k), image_set.n)
        result = fit_deepcluster(image_set, k_train, k, self.config, seed, self.device, labels=image_set.artist_ids)
        return MethodResult(result.assignments, result.embedding, {"k_train": k_train, "history": result.history})


MethodFactory = Callable[[dict[str, Any], Path], ClusteringMethod]  # (params, CAE seeds directory)


def _kmeans_pixels(params: dict[str, Any], cae_dir: Path) -> ClusteringMethod:
    n_init = params["compare"].get("pixels_kmeans_n_init")
    return KMeansPixels(params["cluster"]["kmeans_n_init"] if n_init is None else n_init)


def _pca_kmeans(params: dict[str, Any], cae_dir: Path) -> ClusteringMethod:
    return PCAKMeans(params["compare"]["pca_components"], params["cluster"]["kmeans_n_init"])


def _cae_kmeans(params: dict[str, Any], cae_dir: Path) -> ClusteringMethod:
    return CAEKMeans(cae_dir, params["cluster"]["kmeans_n_init"], params["model"]["eval_batch_size"],
                     pick_device(params["model"]["device"]))


def _n2d(params: dict[str, Any], cae_dir: Path) -> ClusteringMethod:
    return N2D(cae_dir, params["n2d"], params["model"]["eval_batch_size"], pick_device(params["model"]["device"]))


def _dcec(params: dict[str, Any], cae_dir: Path) -> ClusteringMethod:
    return DCEC(cae_dir, params["cluster"], params["model"], pick_device(params["model"]["device"]))


def _dcec_no_kl(params: dict[str, Any], cae_dir: Path) -> ClusteringMethod:
    control = params["cluster"] | {"kl_weight": 0.0, "tol": 0.0}  # reconstruction only, all maxiter iterations
    return DCEC(cae_dir, control, params["model"], pick_device(params["model"]["device"]), name="dcec_no_kl")


def _deepcluster(params: dict[str, Any], cae_dir: Path) -> ClusteringMethod:
    return DeepCluster(params["deepcluster"], pick_device(params["model"]["device"]))


METHODS: dict[str, MethodFactory] = {
    "kmeans_pixels": _kmeans_pixels,
    "pca_kmeans": _pca_kmeans,
    "cae_kmeans": _cae_kmeans,
    "dcec": _dcec,
    "dcec_no_kl": _dcec_no_kl,
    "deepcluster": _deepcluster,
    "n2d": _n2d,
}


def register_method(name: str, factory: MethodFactory) -> None:
    """Add a method to the registry (the extension point for DeepCluster and later methods)."""
    if name in METHODS:
        raise ValueError(f"clustering method {name!r} is already registered")
    METHODS[name] = factory


def get_method(name: str, params: dict[str, Any], cae_dir: str | Path = CAE_SEEDS_DIR) -> ClusteringMethod:
    """Build the method `name` from the whole params dict (sections model, cluster, compare, deepcluster, n2d).

    Raises:
        KeyError: unknown method name (the message lists the known ones).
    """
    if name not in METHODS:
        raise KeyError(f"unknown clustering method {name!r} (params compare.methods); known: {sorted(METHODS)}")
    return METHODS[name](params, Path(cae_dir))
