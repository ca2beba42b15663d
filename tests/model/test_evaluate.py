"""Stage `evaluate`: metrics, contingency table and figures from the cluster stage's outputs."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from common import write_json
from model import evaluate, figures
from model.data import load_image_set
from tests.model.test_exp_fixtures import K, small_params, synthetic_arrays, write_inputs, write_params


def write_cluster_outputs(root, clusters: np.ndarray) -> None:
    """What the cluster stage writes: assignments.csv, embedding.npy, history.json."""
    _, labels = synthetic_arrays()
    out = root / "reports/dcec"
    out.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"row": labels["row"], "lot_key": labels["lot_key"], "cluster": clusters,
                  "q_max": 0.9}).to_csv(out / "assignments.csv", index=False)
    rng = np.random.default_rng(0)
    np.save(out / "embedding.npy", (rng.normal(size=(len(clusters), 4)) + 3 * clusters[:, None]).astype(np.float32))
    history = [{"ite": 0, "delta_label": 0.0, "loss": float("nan"), "kl": float("nan"), "mse": float("nan"),
                "acc": 0.5, "nmi": 0.4, "nmi_geometric": 0.41, "ari": 0.3},
               {"ite": 4, "delta_label": 0.1, "loss": 0.2, "kl": 0.1, "mse": 0.3, "acc": 0.6, "nmi": 0.5,
                "nmi_geometric": 0.52, "ari": 0.35}]
    write_json(out / "history.json", {"n_iter": 4, "converged": True, "history": history})


@pytest.fixture
def stage_dir(tmp_path, monkeypatch):
    write_inputs(tmp_path)
    write_params(tmp_path, small_params())
    _, labels = synthetic_arrays()
    clusters = (labels["artist_id"].to_numpy() + (labels["row"].to_numpy() % 5 == 0)) % K  # mostly right
    write_cluster_outputs(tmp_path, clusters)
    monkeypatch.chdir(tmp_path)
    return tmp_path, labels, clusters


def test_stage_writes_every_declared_file_consistently(stage_dir):
    root, labels, clusters = stage_dir
    evaluate.main()
    metrics = json.loads((root / "reports/metrics.json").read_text())
    assert (metrics["n"], metrics["k"], metrics["n_artists"]) == (len(labels), K, labels["artist"].nunique())
    for key in ("acc", "nmi_arithmetic", "nmi_geometric", "purity"):
        assert 0.0 <= metrics[key] <= 1.0
    assert -1.0 <= metrics["ari"] <= 1.0 and -1.0 <= metrics["silhouette"] <= 1.0
    assert metrics["calinski_harabasz"] > 0
    assert metrics["acc"] == pytest.approx(np.mean(clusters == labels["artist_id"]))  # identity is the best match

    table = pd.read_csv(root / "reports/contingency.csv", index_col="artist")
    assert list(table.index) == sorted(labels["artist"].unique())
    assert list(table.columns) == [str(c) for c in range(K)] and table.to_numpy().sum() == len(labels)
    np.testing.assert_array_equal(table.sum(axis=1).to_numpy(), labels["artist"].value_counts().sort_index())
    for name in evaluate.FIGURE_NAMES.values():
        with Image.open(root / "reports/figures" / name) as picture:
            assert picture.format == "PNG" and min(picture.size) > 50


def test_assignments_row_and_field_errors_are_named(stage_dir):
    root, labels, clusters = stage_dir
    image_set = load_image_set("data/final/images.npy", "data/final/labels.csv")
    path = root / "reports/dcec/assignments.csv"
    frame = pd.read_csv(path, dtype={"lot_key": str})
    frame.loc[7, "cluster"] = K
    frame.to_csv(path, index=False)
    with pytest.raises(ValueError, match=r"row 7, field 'cluster'"):
        evaluate.read_assignments(path, image_set.labels, K)
    frame.loc[7, "cluster"] = 0
    frame.loc[3, "lot_key"] = "www-9-9"
    frame.to_csv(path, index=False)
    with pytest.raises(ValueError, match=r"row 3, field 'lot_key'"):
        evaluate.read_assignments(path, image_set.labels, K)
    frame.iloc[:-1].to_csv(path, index=False)
    with pytest.raises(ValueError, match="39 rows"):
        evaluate.read_assignments(path, image_set.labels, K)


def test_heatmap_columns_follow_the_hungarian_match():
    permutation = [2, 0, 3, 1]
    table = np.diag([9, 8, 7, 6])[:, np.argsort(permutation)]  # artist i sits in cluster permutation[i]
    assert figures.hungarian_column_order(table) == permutation
    wide = np.array([[5, 0, 1], [0, 4, 0]])  # more clusters than artists: the spare one goes last
    assert figures.hungarian_column_order(wide) == [0, 1, 2]


def test_perplexity_is_clipped_for_small_sets():
    assert figures.clipped_perplexity(30, 10_000) == 30
    assert figures.clipped_perplexity(30, 40) == 13
    assert figures.clipped_perplexity(30, 2) == 1.0


def test_collage_picks_are_seeded_members_of_their_cluster():
    assignments = np.array([0, 1, 0, 0, 1, 2, 0])
    picks = figures.collage_picks(assignments, k=4, per_cluster=2, seed=1)
    assert [len(p) for p in picks] == [2, 2, 1, 0]
    assert all((assignments[p] == c).all() for c, p in enumerate(picks))
    assert [p.tolist() for p in picks] == [p.tolist() for p in figures.collage_picks(assignments, 4, 2, seed=1)]


def test_tsne_figures_use_all_points_or_a_seeded_sorted_sample():
    assert evaluate.tsne_subset(10, None, 0).tolist() == list(range(10))
    assert evaluate.tsne_subset(10, 10, 0).tolist() == list(range(10))
    sample = evaluate.tsne_subset(12_500, 5000, 3)
    assert sample.size == 5000 and np.unique(sample).size == 5000 and np.all(np.diff(sample) > 0)
    assert np.array_equal(sample, evaluate.tsne_subset(12_500, 5000, 3))
    assert not np.array_equal(sample, evaluate.tsne_subset(12_500, 5000, 4))
