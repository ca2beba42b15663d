"""Stage `cluster` on tiny data: outputs and their formats, consistency checks."""

import numpy as np
import pandas as pd
import pytest
import torch

from model.cluster import dcec_config, run_cluster
from model.nets import save_cae
from model.nets import build_cae


def tiny_params():
    return {"base": {"seed": 0},
            "model": {"k": 2, "embedding": 4, "filters": [4, 8, 8], "kernels": [5, 5, 3], "activation": "elu",
                      "device": "cpu", "compile": False, "mixed_precision": "off", "keep_freed_memory": False,
                      "eval_batch_size": 64},
            "cluster": {"batch_size": 16, "lr": 0.001, "maxiter": 8, "update_interval": 4, "tol": 0.001,
                        "kl_weight": 0.9, "recon_weight": 0.1, "kmeans_n_init": 2}}


@pytest.fixture()
def stage(tmp_path):
    n = 30
    images = np.concatenate([np.full((15, 16, 16, 3), 20), np.full((15, 16, 16, 3), 230)]).astype(np.uint8)
    images += np.random.default_rng(0).integers(0, 20, images.shape, dtype=np.uint8)
    np.save(tmp_path / "images.npy", images)
    pd.DataFrame({"row": range(n), "lot_key": [f"oo-9-{i}" for i in range(n)], "artist": ["A"] * 15 + ["B"] * 15,
                  "artist_id": [0] * 15 + [1] * 15, "kind": ["print"] * n}).to_csv(tmp_path / "labels.csv", index=False)
    torch.manual_seed(0)
    save_cae(build_cae(16, 3, filters=(4, 8, 8), embedding=4), tmp_path / "cae.pt")
    return dict(images_path=tmp_path / "images.npy", labels_path=tmp_path / "labels.csv", cae_path=tmp_path / "cae.pt",
                output=tmp_path / "dcec.pt", report_dir=tmp_path / "dcec")


def test_cluster_stage_writes_its_outputs(stage):
    result = run_cluster(params=tiny_params(), **stage)
    assignments = pd.read_csv(stage["report_dir"] / "assignments.csv", dtype={"lot_key": str})
    assert list(assignments.columns) == ["row", "lot_key", "cluster", "q_max"]
    assert assignments["row"].tolist() == list(range(30)) and assignments["lot_key"].iloc[3] == "oo-9-3"
    assert set(assignments["cluster"]) <= {0, 1} and assignments["q_max"].between(0.5, 1.0).all()
    embedding = np.load(stage["report_dir"] / "embedding.npy")
    assert embedding.shape == (30, 4) and embedding.dtype == np.float32
    saved = torch.load(stage["output"], weights_only=True)
    assert saved["n_clusters"] == 2 and saved["state_dict"]["clustering.centres"].shape == (2, 4)
    assert (stage["report_dir"] / "plots" / "metrics" / "acc.tsv").is_file()  # labels exist -> logged per update
    assert np.array_equal(assignments["cluster"].to_numpy(), result.assignments)


def test_cae_for_other_image_size_is_refused(stage):
    save_cae(build_cae(32, 3, filters=(4, 8, 8), embedding=4), stage["cae_path"])
    with pytest.raises(ValueError, match="32px.*16px.*pretrain"):
        run_cluster(params=tiny_params(), **stage)


def test_missing_cae_is_a_clear_error(stage):
    stage["cae_path"].unlink()
    with pytest.raises(FileNotFoundError, match="pretrain"):
        run_cluster(params=tiny_params(), **stage)


def test_config_reads_every_setting():
    config = dcec_config(tiny_params())
    assert (config.n_clusters, config.batch_size, config.maxiter, config.update_interval) == (2, 16, 8, 4)
    assert (config.kl_weight, config.recon_weight, config.kmeans_n_init, config.seed) == (0.9, 0.1, 2, 0)
