"""The shared evaluation module."""

import math

import numpy as np
import pytest
from sklearn.metrics import calinski_harabasz_score, normalized_mutual_info_score, silhouette_score

from model.metrics import cluster_acc, contingency, internal_metrics, label_metrics, nmi, purity


def test_acc_is_one_for_a_permuted_labelling():
    y_true = np.array([0, 0, 1, 1, 2, 2, 2])
    y_pred = np.array([2, 2, 0, 0, 1, 1, 1])
    assert cluster_acc(y_true, y_pred) == 1.0


def test_acc_pads_when_k_differs_from_classes():
    # four singleton clusters for two classes: only two clusters can be matched one-to-one
    assert cluster_acc(np.array([0, 0, 1, 1]), np.array([0, 1, 2, 3])) == 0.5
    # one cluster for two classes
    assert cluster_acc(np.array([0, 0, 0, 1]), np.array([5, 5, 5, 5])) == 0.75


def test_contingency_rows_are_classes_and_columns_clusters():
    table = contingency(np.array(["a", "a", "b"]), np.array([7, 3, 3]))
    assert table.tolist() == [[1, 1], [1, 0]]  # classes a, b x clusters 3, 7


def test_nmi_averages_differ_when_k_differs_from_classes():
    y_true = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    y_pred = np.array([0, 0, 1, 1, 2, 2, 3, 3])
    arithmetic, geometric = nmi(y_true, y_pred, "arithmetic"), nmi(y_true, y_pred, "geometric")
    # H(Y) = ln 2, H(C) = ln 4 = I(Y;C) * 2 -> arithmetic 2/3, geometric 1/sqrt(2)
    assert arithmetic == pytest.approx(2 / 3)
    assert geometric == pytest.approx(1 / math.sqrt(2))
    assert arithmetic == pytest.approx(normalized_mutual_info_score(y_true, y_pred))
    with pytest.raises(ValueError):
        nmi(y_true, y_pred, "max")


def test_purity_is_many_to_one():
    y_true = np.array([0, 0, 1, 1, 1, 2])
    y_pred = np.array([0, 0, 0, 1, 1, 1])
    assert purity(y_true, y_pred) == pytest.approx(4 / 6)  # cluster 0 -> class 0 (2), cluster 1 -> class 1 (2)
    assert purity(y_true, np.arange(6)) == 1.0


def test_label_metrics_keys():
    scores = label_metrics(np.array([0, 1, 0, 1]), np.array([1, 0, 1, 0]))
    assert set(scores) == {"acc", "nmi_arithmetic", "nmi_geometric", "ari", "purity"}
    assert all(v == pytest.approx(1.0) for v in scores.values())


def test_internal_metrics_match_sklearn_and_subsample_is_seeded():
    rng = np.random.default_rng(0)
    emb = np.concatenate([rng.normal(0, 1, (50, 3)), rng.normal(6, 1, (50, 3))])
    y = np.repeat([0, 1], 50)
    full = internal_metrics(emb, y)
    assert full["silhouette"] == pytest.approx(silhouette_score(emb, y))
    assert full["calinski_harabasz"] == pytest.approx(calinski_harabasz_score(emb, y))
    sub_a, sub_b = internal_metrics(emb, y, sample_size=30, seed=1), internal_metrics(emb, y, sample_size=30, seed=1)
    assert sub_a == sub_b and sub_a["silhouette"] != full["silhouette"]


def test_internal_metrics_nan_for_one_cluster():
    scores = internal_metrics(np.random.default_rng(0).normal(size=(10, 2)), np.zeros(10, dtype=int))
    assert math.isnan(scores["silhouette"]) and math.isnan(scores["calinski_harabasz"])


def test_paired_difference_matches_a_hand_computed_t_interval():
    from model.metrics import paired_difference

    ours = {0: 0.70, 1: 0.72, 2: 0.69, 3: 0.71, 4: 0.73}
    theirs = {0: 0.65, 1: 0.66, 2: 0.66, 3: 0.64, 4: 0.67}  # differences 0.05 0.06 0.03 0.07 0.06
    result = paired_difference(ours, theirs)
    diffs = np.array([0.05, 0.06, 0.03, 0.07, 0.06])
    half = 2.7764451051977987 * diffs.std(ddof=1) / np.sqrt(5)  # t(0.975, 4)
    assert result["n"] == 5 and result["diff_mean"] == pytest.approx(diffs.mean())
    assert result["ci_low"] == pytest.approx(diffs.mean() - half) and result["ci_high"] == pytest.approx(diffs.mean() + half)
    assert result["verdict"] == "better"
    assert paired_difference(theirs, ours)["verdict"] == "worse"


def test_paired_difference_says_no_detectable_difference_when_the_interval_holds_zero():
    from model.metrics import paired_difference

    mixed = paired_difference({0: 0.7, 1: 0.6, 2: 0.72}, {0: 0.65, 1: 0.66, 2: 0.69})
    assert mixed["ci_low"] < 0 < mixed["ci_high"] and mixed["verdict"] == "no detectable difference"
    one = paired_difference({0: 0.9, 1: float("nan")}, {0: 0.1, 1: 0.2, 2: 0.3})  # only seed 0 is paired
    assert one["n"] == 1 and one["ci_low"] is None and one["verdict"] == "no detectable difference"
    assert paired_difference({}, {})["n"] == 0
