"""N2D (the seed's CAE embedding -> UMAP -> Gaussian mixture): determinism, the manifold step, bad settings.

umap-learn JIT-compiles with numba on its first fit in a process (about 10 s on the shared 2 cores, measured
for issue #28); every later fit in the same pytest process is fast.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import make_circles

from model.methods import get_method, n2d_cluster, seeded_kmeans
from model.metrics import cluster_acc, label_metrics
from tests.model.test_exp_fixtures import K, small_params, synthetic_image_set, write_inputs

N2D_SETTINGS = {"n_components": None, "n_neighbors": 20, "min_dist": 0.0, "metric": "euclidean",
                "covariance_type": "full"}


def rings_in_8d(n: int = 300) -> tuple[np.ndarray, np.ndarray]:
    """Two concentric rings (radii 1 and 0.3) rotated into 8-D with a little noise in the 6 extra directions:
    the classes are separated only along the manifold, and no straight cut separates them."""
    flat, labels = make_circles(n, factor=0.3, noise=0.03, random_state=0)
    rng = np.random.default_rng(0)
    rotation, _ = np.linalg.qr(rng.normal(size=(8, 8)))
    return (np.hstack([flat, 0.02 * rng.normal(size=(n, 6))]) @ rotation).astype(np.float32), labels


def test_the_same_seed_gives_identical_assignments_and_the_manifold_has_k_dimensions(tmp_path):
    write_inputs(tmp_path)
    image_set = synthetic_image_set()
    first = get_method("n2d", small_params(), tmp_path / "models/cae_seeds").fit(image_set, K, seed=2)
    again = get_method("n2d", small_params(), tmp_path / "models/cae_seeds").fit(image_set, K, seed=2)  # fresh
    np.testing.assert_array_equal(first.assignments, again.assignments)
    np.testing.assert_array_equal(first.embedding, again.embedding)
    assert first.embedding.shape == (image_set.n, K) and first.extra["n_components"] == K  # null: n_components = k
    assert first.assignments.min() >= 0 and first.assignments.max() < K


def test_n2d_separates_rings_that_k_means_cannot():
    embedding, labels = rings_in_8d()
    assignments, manifold = n2d_cluster(embedding, 2, seed=0, settings=N2D_SETTINGS)
    kmeans = seeded_kmeans(embedding, 2, n_init=10, seed=0)
    assert manifold.shape == (len(labels), 2)
    assert cluster_acc(labels, assignments) >= 0.95 and label_metrics(labels, assignments)["nmi_arithmetic"] >= 0.8
    assert cluster_acc(labels, kmeans) <= 0.7 and label_metrics(labels, kmeans)["nmi_arithmetic"] <= 0.2


@pytest.mark.parametrize(("k", "override", "named"), [
    (41, {}, r"k \(model\.k\)"),
    (K, {"n_components": 39}, r"n2d\.n_components"),
    (K, {"n_neighbors": 40}, r"n2d\.n_neighbors"),
    (K, {"n_neighbors": 1}, r"n2d\.n_neighbors"),
    (K, {"n_components": 0}, r"n2d\.n_components"),
    (K, {"min_dist": -0.1}, r"n2d\.min_dist"),
    (K, {"covariance_type": "round"}, r"n2d\.covariance_type"),
])
def test_bad_settings_fail_naming_the_parameter(k, override, named):
    embedding = np.random.default_rng(0).normal(size=(40, 4)).astype(np.float32)  # N = 40
    with pytest.raises(ValueError, match=named):
        n2d_cluster(embedding, k, seed=0, settings=N2D_SETTINGS | override)


def test_settings_known_bad_before_any_data_fail_when_the_method_is_built(tmp_path):
    params = small_params()
    params["n2d"] = params["n2d"] | {"n_neighbors": 1}
    with pytest.raises(ValueError, match=r"n2d\.n_neighbors"):
        get_method("n2d", params, tmp_path)
    del params["n2d"]["metric"]
    with pytest.raises(ValueError, match="n2d is missing"):
        get_method("n2d", params, tmp_path)
