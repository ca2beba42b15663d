"""DCEC maths and the joint training loop, on tiny images."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from model.data import encode_all
from model.dcec import (DCECConfig, batch_indices, clustering_loss, fit_dcec, kmeans_init, load_dcec, save_dcec,
                        soft_assign, target_distribution)
from model.nets import DCECNet, build_cae, load_cae, save_cae
from model.runtime import NonFiniteLossError

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def tiny_images():
    """Two visibly different groups (dark / bright) of 16x16 RGB images, 60 each."""
    gen = torch.Generator().manual_seed(0)
    dark = torch.randint(0, 90, (60, 16, 16, 3), generator=gen)
    bright = torch.randint(160, 256, (60, 16, 16, 3), generator=gen)
    return torch.cat([dark, bright]).to(torch.uint8).contiguous()


def tiny_config(**overrides):
    settings = dict(n_clusters=2, batch_size=16, lr=1e-3, maxiter=12, update_interval=4, tol=0.0, kl_weight=0.9,
                    recon_weight=0.1, kmeans_n_init=2, seed=0, show_progress=False)
    return DCECConfig(**{**settings, **overrides})


def test_target_distribution_matches_dec_formula_by_hand():
    q = torch.tensor([[0.6, 0.4], [0.2, 0.8], [0.5, 0.5]], dtype=torch.float64)
    # f = column sums = (1.3, 1.7); p_ij ∝ q_ij^2 / f_j, i.e. ∝ q_ij^2 * f_other
    expected = torch.tensor([[0.612 / 0.82, 0.208 / 0.82],
                             [0.068 / 0.90, 0.832 / 0.90],
                             [0.425 / 0.75, 0.325 / 0.75]], dtype=torch.float64)
    assert torch.allclose(target_distribution(q), expected)


def test_clustering_loss_is_kl_p_q_with_batchmean():
    q = torch.tensor([[0.6, 0.4], [0.2, 0.8]], dtype=torch.float64)
    p = torch.tensor([[0.8, 0.2], [0.1, 0.9]], dtype=torch.float64)
    row1 = 0.8 * math.log(0.8 / 0.6) + 0.2 * math.log(0.2 / 0.4)
    row2 = 0.1 * math.log(0.1 / 0.2) + 0.9 * math.log(0.9 / 0.8)
    loss = clustering_loss(q, p).item()
    assert loss == pytest.approx((row1 + row2) / 2)
    with pytest.warns(UserWarning):  # torch warns that "mean" divides by K as well
        mean_reduced = F.kl_div(q.log(), p, reduction="mean").item()
    assert loss != pytest.approx(mean_reduced) and mean_reduced == pytest.approx(loss / 2)
    reversed_kl = (q * (q / p).log()).sum(1).mean().item()
    assert loss != pytest.approx(reversed_kl)


def test_batches_walk_one_order_sequentially_and_wrap_after_a_partial_batch():
    order = torch.tensor([9, 8, 7, 6, 5, 4, 3, 2, 1, 0])
    position, seen = 0, []
    for _ in range(4):
        idx, position = batch_indices(order, position, 4)
        seen.append(idx.tolist())
    assert seen == [[9, 8, 7, 6], [5, 4, 3, 2], [1, 0], [9, 8, 7, 6]]


def test_batches_never_empty_when_n_is_a_multiple_of_the_batch_size():
    order = torch.arange(8)
    position, seen = 0, []
    for _ in range(3):
        idx, position = batch_indices(order, position, 4)
        seen.append(idx.tolist())
    assert seen == [[0, 1, 2, 3], [4, 5, 6, 7], [0, 1, 2, 3]]


def test_centres_are_optimised_and_pretrained_cae_untouched(tiny_images):
    torch.manual_seed(0)
    cae = build_cae(16, 3, embedding=4)
    before = {k: v.clone() for k, v in cae.state_dict().items()}
    config = tiny_config(maxiter=1, update_interval=10)
    initial = kmeans_init(encode_all(cae, tiny_images, 64, CPU), 2, config.kmeans_n_init, config.seed)
    result = fit_dcec(cae, tiny_images, config, CPU)
    centres = result.net.clustering.centres.detach().numpy()
    assert np.array_equal(result.kmeans_assignments, initial.labels_)
    assert not np.allclose(centres, initial.cluster_centers_, atol=1e-7)  # one Adam step moved them
    assert np.abs(centres - initial.cluster_centers_).max() < 0.01  # ...from the k-means centres
    assert all(torch.equal(v, cae.state_dict()[k]) for k, v in before.items())


def test_centres_are_in_the_optimiser_after_loading_kmeans_centres():
    net = DCECNet(build_cae(16, 3, embedding=4), n_clusters=3)
    net.clustering.set_centres(torch.randn(3, 4))
    optimizer = torch.optim.Adam(net.parameters())
    assert any(p is net.clustering.centres for group in optimizer.param_groups for p in group["params"])


def test_same_seed_gives_identical_results(tiny_images):
    torch.manual_seed(1)
    cae = build_cae(16, 3, embedding=4)
    a = fit_dcec(cae, tiny_images, tiny_config(), CPU)
    b = fit_dcec(cae, tiny_images, tiny_config(), CPU)
    assert np.array_equal(a.assignments, b.assignments)
    assert np.array_equal(a.embedding, b.embedding)
    assert [h["loss"] for h in a.history[1:]] == [h["loss"] for h in b.history[1:]]


def test_stops_at_maxiter_with_history_per_update(tiny_images):
    labels = np.repeat([0, 1], 60)
    result = fit_dcec(build_cae(16, 3, embedding=4), tiny_images, tiny_config(maxiter=10, tol=0.0), CPU, labels=labels)
    assert not result.converged and result.n_iter == 10
    assert [h["ite"] for h in result.history] == [0, 4, 8]
    assert math.isnan(result.history[0]["loss"]) and result.history[1]["loss"] > 0
    assert {"acc", "nmi", "ari", "delta_label", "kl", "mse"} <= set(result.history[-1])
    assert result.assignments.shape == (120,) and result.q_max.shape == (120,)
    assert result.embedding.shape == (120, 4) and result.embedding.dtype == np.float32
    assert result.history[0]["acc"] == 1.0  # k-means on the embedding separates dark from bright images


def test_converges_when_few_labels_change(tiny_images):
    updates = []
    result = fit_dcec(build_cae(16, 3, embedding=4), tiny_images, tiny_config(maxiter=100, tol=1.0), CPU,
                      on_update=updates.append)
    # tol = 1: any change below 100 % stops at the first check after ite 0
    assert result.converged and result.n_iter == 4
    assert [u["ite"] for u in updates] == [0, 4]


def test_non_finite_loss_raises(tiny_images, monkeypatch):
    import model.dcec as dcec

    monkeypatch.setattr(dcec.F, "mse_loss", lambda a, b: (a - b).pow(2).mean() * float("nan"))
    with pytest.raises(NonFiniteLossError, match="NaN"):
        fit_dcec(build_cae(16, 3, embedding=4), tiny_images, tiny_config(), CPU)


def test_save_and_load_round_trip_with_weights_only(tmp_path):
    cae = build_cae(16, 3, embedding=4, activation="relu")
    save_cae(cae, tmp_path / "cae.pt")
    saved = torch.load(tmp_path / "cae.pt", weights_only=True)
    assert set(saved) == {"config", "state_dict"}
    loaded = load_cae(tmp_path / "cae.pt")
    assert loaded.config == cae.config
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), cae.state_dict().values()))
    net = DCECNet(cae, 3)
    save_dcec(net, tmp_path / "dcec.pt", extra={"n_iter": 5})
    assert torch.equal(load_dcec(tmp_path / "dcec.pt").clustering.centres, net.clustering.centres)
    with pytest.raises(FileNotFoundError, match="pretrain"):
        load_cae(tmp_path / "missing.pt")


def test_saving_the_same_weights_twice_gives_identical_bytes(tmp_path):
    """DVC and the compare cache key on the file's bytes: a re-run with the same weights must not differ."""
    cae = build_cae(16, 3, embedding=4)
    save_cae(cae, tmp_path / "a.pt")
    save_cae(cae, tmp_path / "b.pt")
    assert (tmp_path / "a.pt").read_bytes() == (tmp_path / "b.pt").read_bytes()


def test_soft_assign_is_reexported_for_the_api():
    q = soft_assign(torch.zeros(1, 2), torch.tensor([[1.0, 0.0], [0.0, 2.0]]))
    assert torch.allclose(q.sum(1), torch.ones(1))
