"""DeepCluster: the fixed Sobel front end, the clustering pieces (PCA-whitening, empty-cluster re-split,
uniform sampler), the head re-initialisation, augmentation, and a tiny deterministic end-to-end fit."""

from __future__ import annotations


import numpy as np
import pytest
import torch

from model.data import ImageSet
from model.deepcluster import HEAD_INIT_STD, SobelFilter, build_deepcluster_net
from model.deepcluster_train import (DeepClusterConfig, augment_batch, cluster_features, fit_deepcluster,
                                     make_sgd, pca_whiten_normalise, resplit_empty_clusters,
                                     uniform_cluster_sample)
from model.fashion_mnist import load_fashion_mnist

TINY_ARCH = {"widths": [8, 16], "first_kernel": 5, "first_stride": 1, "pool_size": 2, "hidden": 32, "dropout": 0.5}
TINY_PARAMS = {
    "k_train": 6, "epochs": 2, "reassign": 1, "batch_size": 16, "feature_batch_size": 64, "pca_dim": 16,
    "kmeans_iter": 20,
    "kmeans_n_init": 3, "lr": 0.05, "momentum": 0.9, "weight_decay": 1e-5, "sobel": True, "resplit_eps": 1e-3,
    "arch": TINY_ARCH, "augment": {"crop_scale": [0.6, 1.0], "crop_ratio": [0.75, 1.3333], "hflip": True},
}


# ------------------------------------------------------------------------------------------------ Sobel

def test_sobel_vertical_edge_gives_known_x_gradient_and_zero_y_gradient():
    image = torch.zeros(1, 3, 8, 8)
    image[..., 4:] = 1.0                                   # dark left half, bright right half (all channels)
    out = SobelFilter(in_channels=3)(image)
    assert out.shape == (1, 2, 8, 8)
    gx, gy = out[0, 0], out[0, 1]
    interior = slice(1, 7)                                 # rows away from the zero-padded border
    # Columns 3 and 4 straddle the edge: (right − left) · (1 + 2 + 1) = 4; flat columns give 0.
    assert torch.allclose(gx[interior, 3], torch.full((6,), 4.0))
    assert torch.allclose(gx[interior, 4], torch.full((6,), 4.0))
    assert torch.allclose(gx[interior][:, [1, 2, 5, 6]], torch.zeros(6, 4))
    assert torch.allclose(gy[interior, :], torch.zeros(6, 8))


def test_sobel_grayscale_averages_channels_and_is_not_trained():
    sobel = SobelFilter(in_channels=3)
    colour = torch.tensor([0.3, 0.6, 0.9]).view(1, 3, 1, 1).expand(1, 3, 5, 5)
    assert torch.allclose(sobel.grayscale(colour), torch.full((1, 1, 5, 5), 0.6))
    assert all(not p.requires_grad for p in sobel.parameters())
    net = build_deepcluster_net(3, TINY_ARCH, sobel=True)
    body = {id(p) for p in net.body_parameters()}
    assert not any(id(p) in body for p in net.sobel.parameters())


@pytest.mark.parametrize("side", [28, 32, 64])
def test_net_accepts_any_side_thanks_to_adaptive_pooling(side):
    net = build_deepcluster_net(1, TINY_ARCH, sobel=False).eval()
    assert net.features(torch.rand(3, 1, side, side)).shape == (3, 32)


# ----------------------------------------------------------------------------------------- clustering

def test_pca_whiten_normalise_clips_dimension_and_returns_unit_rows():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(20, 50)) * np.linspace(10, 0.1, 50)
    out = pca_whiten_normalise(features, pca_dim=256)
    assert out.shape == (20, 19)                           # min(N, D) − 1
    assert out.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, rtol=1e-5)


def test_resplit_fills_an_empty_cluster_from_a_non_empty_one():
    rng = np.random.default_rng(0)
    points = np.concatenate([rng.normal(0, 1, (30, 4)), rng.normal(20, 1, (30, 4))])
    centroids = np.array([[0.0] * 4, [20.0] * 4, [-500.0] * 4])   # cluster 2 is far from every point
    assignments = np.repeat([0, 1], 30)
    new, new_centroids, n_resplit = resplit_empty_clusters(points, centroids, assignments,
                                                           np.random.default_rng(1), eps=1e-3)
    assert n_resplit == 1
    assert np.bincount(new, minlength=3).min() >= 1
    donor = 0 if (new[:30] == 2).any() else 1
    other = 1 - donor
    members = slice(30 * other, 30 * other + 30)
    assert (new[members] == other).all()                    # the non-donor cluster is untouched
    assert np.abs(new_centroids[2] - centroids[donor]).max() < 1e-2  # the new centroid sits by the donor's
    assert (assignments == np.repeat([0, 1], 30)).all()     # the input is not modified


def test_resplit_handles_duplicate_points_and_several_empty_clusters():
    points = np.ones((6, 3))
    new, _, n_resplit = resplit_empty_clusters(points, np.zeros((4, 3)), np.zeros(6, dtype=np.int64),
                                               np.random.default_rng(0), eps=1e-3)
    assert n_resplit == 3
    assert sorted(np.unique(new)) == [0, 1, 2, 3]


def test_resplit_refuses_more_clusters_than_points():
    with pytest.raises(ValueError, match="k=5"):
        resplit_empty_clusters(np.zeros((3, 2)), np.zeros((5, 2)), np.zeros(3, dtype=np.int64),
                               np.random.default_rng(0), eps=1e-3)


def test_kmeans_with_fewer_distinct_points_than_clusters_ends_with_every_cluster_used():
    points = np.repeat(np.eye(3, dtype=np.float64), 4, axis=0)     # 12 points, only 3 distinct
    with pytest.warns(Warning):                                     # sklearn: fewer distinct clusters than k
        assignments, n_resplit = cluster_features(points, 5, seed=0, max_iter=20, n_init=1,
                                                  resplit_rng=np.random.default_rng(0), resplit_eps=1e-3)
    assert n_resplit >= 2
    assert sorted(np.unique(assignments)) == [0, 1, 2, 3, 4]


# -------------------------------------------------------------------------------------------- sampler

def test_uniform_sampler_gives_every_non_empty_cluster_the_same_quota():
    assignments = np.array([0] * 50 + [2] * 5 + [7] * 1)  # clusters 1, 3..6 are empty
    indices = uniform_cluster_sample(assignments, n_samples=56, generator=torch.Generator().manual_seed(0))
    picked = assignments[indices.numpy()]
    counts = {c: int((picked == c).sum()) for c in (0, 2, 7)}
    assert counts == {0: 19, 2: 19, 7: 19}                 # ⌈56 / 3⌉ each, empty clusters get nothing
    assert set(np.unique(picked)) == {0, 2, 7}
    big = indices.numpy()[picked == 0]
    assert len(set(big.tolist())) == 19                     # a large cluster gives distinct members
    assert set(indices.numpy()[picked == 2].tolist()) == set(range(50, 55))  # a small one gives all its members
    assert (indices.numpy()[picked == 7] == 55).all()


# ----------------------------------------------------------------------------------------------- head

def test_reset_head_replaces_trained_weights_with_fresh_small_gaussian_ones():
    torch.manual_seed(0)
    net = build_deepcluster_net(3, TINY_ARCH, sobel=False)
    generator = torch.Generator().manual_seed(0)
    head = net.reset_head(4, generator)
    optimiser = make_sgd(head.parameters(), DeepClusterConfig.from_params(TINY_PARAMS))
    torch.nn.functional.cross_entropy(net(torch.rand(8, 3, 16, 16)), torch.arange(8) % 4).backward()
    optimiser.step()
    trained = head.weight.detach().clone()
    assert head.bias.abs().sum() > 0                         # training moved the bias

    new_head = net.reset_head(4, generator)
    assert new_head is not head and net.head is new_head
    assert not torch.allclose(new_head.weight, trained)
    assert torch.count_nonzero(new_head.bias) == 0
    assert abs(new_head.weight.std().item() - HEAD_INIT_STD) < 0.3 * HEAD_INIT_STD
    assert net.reset_head(9, generator).weight.shape == (9, 32)


def test_forward_without_a_head_fails_clearly():
    net = build_deepcluster_net(3, TINY_ARCH, sobel=False)
    with pytest.raises(RuntimeError, match="reset_head"):
        net(torch.rand(2, 3, 16, 16))


# --------------------------------------------------------------------------------------- augmentation

def test_augment_without_crop_or_flip_is_the_identity():
    x = torch.rand(4, 3, 12, 12)
    out = augment_batch(x, (1.0, 1.0), (1.0, 1.0), hflip=False, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(out, x, atol=1e-5)


def test_augment_full_crop_with_flip_mirrors_some_samples():
    x = torch.rand(32, 3, 10, 10)
    out = augment_batch(x, (1.0, 1.0), (1.0, 1.0), hflip=True, generator=torch.Generator().manual_seed(0))
    same = [torch.allclose(o, s, atol=1e-5) for o, s in zip(out, x)]
    mirrored = [torch.allclose(o, s.flip(-1), atol=1e-5) for o, s in zip(out, x)]
    assert all(a or b for a, b in zip(same, mirrored))
    assert any(same) and any(mirrored)


def test_augment_crop_changes_images_but_keeps_shape():
    x = torch.rand(4, 3, 16, 16)
    out = augment_batch(x, (0.3, 0.5), (0.75, 1.33), hflip=False, generator=torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    assert not torch.allclose(out, x, atol=1e-3)


# --------------------------------------------------------------------------------------------- config

def test_config_names_missing_and_unknown_keys():
    broken = {key: value for key, value in TINY_PARAMS.items() if key != "pca_dim"} | {"pca_dims": 8}
    with pytest.raises(KeyError, match=r"missing \['pca_dim'\], unknown \['pca_dims'\]"):
        DeepClusterConfig.from_params(broken)


# ----------------------------------------------------------------------------------------- end to end

def synthetic_image_set(n: int = 60, side: int = 32) -> tuple[ImageSet, np.ndarray]:
    """Three visual classes: horizontal stripes, vertical stripes, a bright square; noisy, seeded."""
    rng = np.random.default_rng(0)
    labels = np.arange(n) % 3
    grid = np.arange(side)
    patterns = [np.tile(((grid // 4) % 2)[:, None], (1, side)), np.tile(((grid // 4) % 2)[None, :], (side, 1)),
                np.pad(np.ones((side // 2, side // 2)), side // 4)]
    images = np.stack([patterns[c] * 200 + rng.integers(0, 55, (side, side)) for c in labels])
    images = np.repeat(images[..., None], 3, axis=3).astype(np.uint8)    # (n, side, side, 3)
    return ImageSet(images=torch.from_numpy(images)), labels


def test_tiny_fit_returns_in_range_assignments_deterministically():
    image_set, labels = synthetic_image_set()
    epochs_seen = []
    first = fit_deepcluster(image_set, k_train=6, k_eval=3, config=TINY_PARAMS, seed=3, device="cpu",
                            labels=labels, on_epoch=epochs_seen.append)
    second = fit_deepcluster(image_set, k_train=6, k_eval=3, config=TINY_PARAMS, seed=3, device="cpu")
    assert first.assignments.shape == (60,) and first.assignments.dtype == np.int64
    assert set(np.unique(first.assignments)) <= {0, 1, 2}
    np.testing.assert_array_equal(first.assignments, second.assignments)
    np.testing.assert_array_equal(first.features, second.features)
    assert first.features.shape == (60, 32) and first.features.dtype == np.float32
    assert [r["epoch"] for r in epochs_seen] == [0, 1] and first.history == epochs_seen
    assert first.history[0]["nmi_prev_epoch"] is None and 0 <= first.history[1]["nmi_prev_epoch"] <= 1
    assert all(np.isfinite(r["loss"]) and r["clusters_nonempty"] == 6 for r in first.history)
    assert "labels_nmi_geometric" in first.history[0] and set(first.final_metrics) >= {"acc", "ari"}


def test_fit_rejects_k_larger_than_the_data():
    image_set, _ = synthetic_image_set(n=9)
    with pytest.raises(ValueError, match="k_train=12"):
        fit_deepcluster(image_set, k_train=12, k_eval=3, config=TINY_PARAMS, seed=0, device="cpu")


def test_fashion_mnist_loader_says_how_to_install_the_data(tmp_path):
    with pytest.raises(FileNotFoundError, match="run `make verify`.*dataset-fashion-mnist"):
        load_fashion_mnist(tmp_path, ("test",))
