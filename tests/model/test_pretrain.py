"""Stage `pretrain`: resumable after an interruption, NaN guard, determinism, dvclive log."""

import copy

import numpy as np
import pytest
import torch

import model.pretrain as pretrain
from model.nets import load_cae
from model.runtime import NonFiniteLossError


class Interrupted(Exception):
    """Stands in for a kill after an epoch's checkpoint was written."""


def tiny_params(epochs=2):
    return {"base": {"seed": 3},
            "model": {"k": 2, "embedding": 4, "filters": [4, 8, 8], "kernels": [5, 5, 3], "activation": "elu",
                      "device": "cpu", "compile": False, "mixed_precision": "off", "keep_freed_memory": False,
                      "eval_batch_size": 64},
            "pretrain": {"epochs": epochs, "batch_size": 16, "lr": 0.001},
            "compare": {"seeds": [3], "sweep_seeds": [3]}}  # the base seed only: nothing trained twice


@pytest.fixture()
def workspace(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (40, 16, 16, 3), dtype=np.uint8)
    np.save(tmp_path / "images.npy", images)
    return tmp_path


def paths(root):
    """run_pretrain's path arguments under `root`."""
    return dict(images_path=root / "images.npy", output=root / "models" / "cae.pt",
                checkpoint_dir=root / "models" / "checkpoints", live_dir=root / "reports" / "pretrain",
                seeds_dir=root / "models" / "cae_seeds")


def checkpoint_of(root):
    return root / "models" / "checkpoints" / "pretrain_last.pt"


def interrupt_after_epoch(monkeypatch, last_epoch):
    """Make run_pretrain raise right after `last_epoch`'s checkpoint and log, like a kill at that point."""
    real = pretrain.train_cae

    def train_then_die(cae, images, config, device, checkpoint, resume_from, on_epoch):
        def hook(record):
            on_epoch(record)
            if record["epoch"] == last_epoch:
                raise Interrupted

        return real(cae, images, config, device, checkpoint, resume_from, hook)

    monkeypatch.setattr(pretrain, "train_cae", train_then_die)


def test_interrupted_run_resumes_and_equals_an_uninterrupted_run(tmp_path, monkeypatch):
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    for root in (straight, resumed):
        root.mkdir()
        np.save(root / "images.npy", np.random.default_rng(0).integers(0, 256, (40, 16, 16, 3), dtype=np.uint8))
    pretrain.run_pretrain(params=tiny_params(), **paths(straight))

    with monkeypatch.context() as patch:
        interrupt_after_epoch(patch, last_epoch=1)
        with pytest.raises(Interrupted):
            pretrain.run_pretrain(params=tiny_params(), **paths(resumed))
    checkpoint = torch.load(checkpoint_of(resumed), weights_only=True)
    assert checkpoint["epoch"] == 1 and not paths(resumed)["output"].exists()

    seen = []
    real = pretrain.train_cae
    monkeypatch.setattr(pretrain, "train_cae", lambda *a: seen.append(a[5]["epoch"]) or real(*a))
    pretrain.run_pretrain(params=tiny_params(), **paths(resumed))
    assert seen == [1]  # the re-run started from the epoch-1 checkpoint

    a, b = load_cae(paths(straight)["output"]), load_cae(paths(resumed)["output"])
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert not checkpoint_of(resumed).exists()  # removed once finished
    steps = (paths(resumed)["live_dir"] / "plots" / "metrics" / "loss.tsv").read_text().split("\n")[1:]
    straight_steps = (paths(straight)["live_dir"] / "plots" / "metrics" / "loss.tsv").read_text().split("\n")[1:]
    assert [s.split("\t")[0] for s in steps if s] == ["0", "1"]  # dvclive resumed, one row per epoch
    assert steps == straight_steps


def test_checkpoint_from_other_settings_is_not_resumed(workspace, monkeypatch, capsys):
    with monkeypatch.context() as patch:
        interrupt_after_epoch(patch, last_epoch=1)
        with pytest.raises(Interrupted):
            pretrain.run_pretrain(params=tiny_params(), **paths(workspace))
    changed = tiny_params()
    changed["pretrain"]["lr"] = 0.01
    seen = []
    real = pretrain.train_cae
    monkeypatch.setattr(pretrain, "train_cae", lambda *a: seen.append(a[5]) or real(*a))
    pretrain.run_pretrain(params=changed, **paths(workspace))
    assert seen == [None]
    assert "other settings" in capsys.readouterr().err


def test_nan_loss_stops_and_keeps_last_good_checkpoint(workspace, monkeypatch):
    calls = {"n": 0}
    real_mse = pretrain.F.mse_loss
    batches_per_epoch = 40 // 16 + 1

    def mse_going_bad(a, b):
        calls["n"] += 1
        loss = real_mse(a, b)
        return loss * float("nan") if calls["n"] > batches_per_epoch else loss  # bad from epoch 2 on

    monkeypatch.setattr(pretrain.F, "mse_loss", mse_going_bad)
    with pytest.raises(NonFiniteLossError, match=r"epoch 2, batch 0.*checkpoint \(epoch 1\)"):
        pretrain.run_pretrain(params=tiny_params(epochs=3), **paths(workspace))
    checkpoint = torch.load(checkpoint_of(workspace), weights_only=True)
    assert checkpoint["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in checkpoint["model"].values())
    assert not paths(workspace)["output"].exists()


def test_missing_images_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="images.npy.*images"):
        pretrain.run_pretrain(params=tiny_params(), **paths(tmp_path))


def test_train_cae_reduces_the_loss_and_is_deterministic():
    images = torch.from_numpy(np.random.default_rng(1).integers(0, 256, (32, 16, 16, 1), dtype=np.uint8))
    config = pretrain.PretrainConfig(epochs=3, batch_size=8, lr=0.003, seed=0, show_progress=False)
    records = []
    torch.manual_seed(0)
    from model.nets import build_cae

    cae = build_cae(16, 1, filters=(4, 8, 8), embedding=4)
    twin = copy.deepcopy(cae)
    pretrain.train_cae(cae, images, config, torch.device("cpu"), on_epoch=records.append)
    pretrain.train_cae(twin, images, config, torch.device("cpu"))
    assert records[-1]["loss"] < records[0]["loss"]
    assert all(torch.equal(x, y) for x, y in zip(cae.state_dict().values(), twin.state_dict().values()))


def test_each_comparison_seed_gets_its_own_cae_and_a_rerun_trains_nothing(workspace, monkeypatch):
    params = tiny_params()
    params["compare"] = {"seeds": [3, 5], "sweep_seeds": [6]}
    pretrain.run_pretrain(params=params, **paths(workspace))
    seeds_dir = paths(workspace)["seeds_dir"]
    assert sorted(p.name for p in seeds_dir.iterdir()) == ["seed-3.pt", "seed-5.pt", "seed-6.pt"]
    assert (seeds_dir / "seed-3.pt").read_bytes() == paths(workspace)["output"].read_bytes()  # the base seed's
    first_layer = {s: next(iter(load_cae(seeds_dir / f"seed-{s}.pt").state_dict().values())) for s in (3, 5, 6)}
    assert not torch.equal(first_layer[5], first_layer[6])  # seeded apart

    trained = []
    real = pretrain.train_cae
    monkeypatch.setattr(pretrain, "train_cae", lambda *a: trained.append(a[2].seed) or real(*a))
    pretrain.run_pretrain(params=params, **paths(workspace))
    assert trained == []  # every file's fingerprint matched
    params["pretrain"]["lr"] = 0.002
    pretrain.run_pretrain(params=params, **paths(workspace))
    assert trained == [3, 5, 6]  # a changed setting retrains every seed (the base seed's file is a copy)


def test_a_cae_is_keyed_on_its_device_threads_and_code(monkeypatch):
    from model.nets import build_cae

    cae = build_cae(8, 3, [4, 8, 8], [3, 3, 3], 4, "elu")
    config = pretrain.PretrainConfig(epochs=1, batch_size=8, lr=1e-3)
    key = pretrain.pretrain_fingerprint(cae, "a" * 40, config, torch.device("cpu"))
    assert key == pretrain.pretrain_fingerprint(cae, "a" * 40, config, torch.device("cpu"))
    assert key != pretrain.pretrain_fingerprint(cae, "a" * 40, config, torch.device("cuda"))
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(threads + 1)
        assert key != pretrain.pretrain_fingerprint(cae, "a" * 40, config, torch.device("cpu"))
    finally:
        torch.set_num_threads(threads)
    monkeypatch.setattr(pretrain, "provenance", lambda *args, **kwargs: {"code": "other"})
    assert key != pretrain.pretrain_fingerprint(cae, "a" * 40, config, torch.device("cpu"))
