"""The clustering interface: every registered baseline and DCEC on tiny synthetic data."""

from __future__ import annotations

import numpy as np
import pytest

from model.methods import METHODS, ClusteringMethod, get_method, pixels_matrix
from model.metrics import cluster_acc
from tests.model.test_exp_fixtures import K, small_params, synthetic_image_set, write_inputs

CORE_METHODS = ["kmeans_pixels", "pca_kmeans", "cae_kmeans", "dcec"]


@pytest.fixture(scope="module")
def cae_path(tmp_path_factory):
    root = tmp_path_factory.mktemp("methods")
    write_inputs(root)
    return root / "models/cae_seeds"


@pytest.fixture(scope="module")
def image_set():
    return synthetic_image_set()


@pytest.mark.parametrize("name", CORE_METHODS)
def test_method_returns_n_assignments_in_range_and_is_deterministic(name, cae_path, image_set):
    method = get_method(name, small_params(), cae_path)
    assert isinstance(method, ClusteringMethod) and method.name == name
    first = method.fit(image_set, K, seed=3)
    again = get_method(name, small_params(), cae_path).fit(image_set, K, seed=3)  # a fresh instance
    assert first.assignments.shape == (image_set.n,)
    assert first.assignments.min() >= 0 and first.assignments.max() < K
    np.testing.assert_array_equal(first.assignments, again.assignments)
    if first.embedding is not None:
        assert first.embedding.shape[0] == image_set.n
        np.testing.assert_allclose(first.embedding, again.embedding)


def test_embeddings_have_the_documented_shapes(cae_path, image_set):
    params = small_params()
    assert get_method("kmeans_pixels", params, cae_path).fit(image_set, K, 0).embedding is None
    assert get_method("pca_kmeans", params, cae_path).fit(image_set, K, 0).embedding.shape == (image_set.n, 5)
    assert get_method("cae_kmeans", params, cae_path).fit(image_set, K, 0).embedding.shape == (image_set.n, 4)
    dcec = get_method("dcec", params, cae_path).fit(image_set, K, 0)
    assert dcec.embedding.shape == (image_set.n, 4) and dcec.extra["n_iter"] <= params["cluster"]["maxiter"]


@pytest.mark.parametrize("name", ["kmeans_pixels", "pca_kmeans"])
def test_pixel_baselines_recover_well_separated_artists(name, cae_path, image_set):
    result = get_method(name, small_params(), cae_path).fit(image_set, K, seed=0)
    assert cluster_acc(image_set.artist_ids, result.assignments) == 1.0


def test_pca_components_are_clipped_to_the_data(cae_path, image_set):
    result = get_method("pca_kmeans", small_params(pca_components=500), cae_path).fit(image_set, K, 0)
    assert result.embedding.shape == (image_set.n, image_set.n)  # min(500, N=40, D=768)


def test_settings_carry_what_changes_the_result(cae_path):
    a = get_method("pca_kmeans", small_params(pca_components=5), cae_path)
    b = get_method("pca_kmeans", small_params(pca_components=6), cae_path)
    assert a.settings != b.settings
    assert get_method("dcec", small_params(), cae_path).settings["maxiter"] == 8


def test_pixels_are_scaled_to_unit_interval(image_set):
    pixels = pixels_matrix(image_set.images)
    assert pixels.shape == (image_set.n, 16 * 16 * 3) and pixels.dtype == np.float32
    assert pixels.min() >= 0.0 and pixels.max() <= 1.0
    assert pixels.max() > 0.5  # really divided by 255, not clipped to zero


def test_unknown_method_names_the_known_ones():
    with pytest.raises(KeyError, match="kmeans_pixels"):
        get_method("no_such_method", small_params())
    assert set(CORE_METHODS) <= set(METHODS)


def test_cae_methods_start_from_the_cae_of_the_runs_seed(cae_path, image_set):
    method = get_method("cae_kmeans", small_params(), cae_path)
    assert not np.allclose(method.embed(image_set, 0), method.embed(image_set, 1))  # two CAEs, two embeddings
    dcec = get_method("dcec", small_params(), cae_path).fit(image_set, K, 1)
    assert dcec.extra["n_iter"] >= 1 and 0 <= dcec.extra["last_delta_label"] <= 1


def test_the_no_kl_control_is_dcec_without_the_clustering_loss(cae_path):
    control = get_method("dcec_no_kl", small_params(), cae_path)
    assert control.name == "dcec_no_kl" and control.uses_cae
    assert control.settings["kl_weight"] == 0.0 and control.settings["tol"] == 0.0
    dcec = get_method("dcec", small_params(), cae_path)
    assert {k: v for k, v in control.settings.items() if k not in ("kl_weight", "tol")} == \
        {k: v for k, v in dcec.settings.items() if k not in ("kl_weight", "tol")}
