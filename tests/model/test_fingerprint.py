"""The verification fingerprint (model/fingerprint.py): HEAD reproduces the committed one within its
tolerance, and a one-line change to DCEC's clustering loss or to the CAE does not.

The `quick` recipe (1,000 images) keeps this within make test's budget; `make verify-fingerprint` checks the
full one. Without the Debian package dataset-fashion-mnist (make test installs it when run as root) the
checks that need it skip, saying so, as the browser tests do without chromium."""

from __future__ import annotations

import pytest
import torch.nn.functional as F
from torch import nn

from model import dcec, fingerprint, nets
from model.fashion_mnist import DATA_DIR, FILES

needs_fashion_mnist = pytest.mark.skipif(
    not (DATA_DIR / FILES["test"][0]).is_file(),
    reason="needs Fashion-MNIST: apt-get install dataset-fashion-mnist (make test does, as root)")


def test_the_comparison_allows_the_tolerance_and_names_what_exceeds_it():
    reference = {"training": {"loss": [1.0, 0.5], "labels": "0123456789"},
                 "joint": {"loss": [0.2, 0.1], "labels": "0123456789"}}
    tolerance = {"training": {"relative": 1e-4, "changed_assignments": 0.0},
                 "joint": {"relative": 0.05, "changed_assignments": 0.1}}
    assert fingerprint.differences(reference, reference, tolerance) == []
    drifted = {"training": {"loss": [1.00001, 0.5], "labels": "0123456789"},
               "joint": {"loss": [0.21, 0.1], "labels": "0123456780"}}
    assert fingerprint.differences(reference, drifted, tolerance) == []
    changed = {"training": {"loss": [1.01, 0.5], "labels": "1123456789"},
               "joint": {"loss": [0.3, 0.1], "labels": "0123456700"}}
    found = fingerprint.differences(reference, changed, tolerance)
    assert [line.split(":")[0] for line in found] == ["training.loss", "training.labels", "joint.loss", "joint.labels"]
    assert fingerprint.differences(reference, {"training": {}, "joint": {}}, tolerance)[0] == "training.loss: missing"


def test_the_committed_record_names_its_commit_and_recipes():
    record = fingerprint.read_json(fingerprint.RECORD)
    assert len(record["commit"]) == 40
    for name, recipe in fingerprint.RECIPES.items():
        assert record["recipes"][name]["recipe"] == fingerprint.asdict(recipe)


@needs_fashion_mnist
def test_head_reproduces_the_committed_fingerprint():
    assert fingerprint.check(fingerprint.RECORD, "quick") == [], (
        "HEAD no longer computes the fingerprint of the verified commit (reports/verify/fingerprint.json): "
        "run make verify-full, which records the new one")


@needs_fashion_mnist
def test_a_one_line_change_to_the_clustering_loss_fails_the_check(monkeypatch):
    monkeypatch.setattr(dcec, "clustering_loss",  # KL(Q‖P) for KL(P‖Q): F.kl_div's arguments swapped
                        lambda q, p: F.kl_div(p.clamp_min(dcec.LOG_EPS).log(), q, reduction="batchmean"))
    found = fingerprint.check(fingerprint.RECORD, "quick")
    assert any(line.startswith("training.joint_first_interval") for line in found), found


@needs_fashion_mnist
def test_a_change_to_the_cae_fails_the_check(monkeypatch):
    def normal_init(module: nn.Module) -> None:  # Glorot normal for Glorot uniform
        if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.xavier_normal_(module.weight)
            nn.init.zeros_(module.bias)

    monkeypatch.setattr(nets, "_glorot_init", normal_init)
    found = fingerprint.check(fingerprint.RECORD, "quick")
    assert any(line.startswith("training.pretrain_loss") for line in found), found
