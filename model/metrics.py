"""The one evaluation module: external (label) metrics and internal (embedding) metrics.

Conventions (models.md §5):
* ACC: one-to-one Hungarian matching of clusters to classes on the contingency matrix, padded to a square
  D×D with D = max(#clusters, #classes), so surplus clusters (or classes) count as errors.
* NMI: I(Y;C) normalised by the **arithmetic** mean (H(Y)+H(C))/2 — sklearn's default since 0.22, equal to
  V-measure — or by the **geometric** mean √(H(Y)·H(C)) — sklearn's default before 0.20, used by DCEC,
  DEC-keras (2017) and DeepCluster. They differ when k ≠ #classes; both are reported.
* ARI: sklearn's chance-corrected adjusted Rand index.
* Purity: many-to-one (each cluster votes for its majority class); it grows with k.
* Silhouette and Calinski-Harabasz are computed in a model's own embedding: not comparable across models.

Comparing two methods (`paired_difference`): over the seeds both ran, the per-seed difference of a metric
(seed s of each method shares everything random that can be shared, the pretrained CAE included), its mean
and a two-sided Student t confidence interval. The verdict is read off the interval only: `better` when it
lies above 0, `worse` when below, `no detectable difference` when it contains 0 or cannot be computed.
A t-interval rather than a bootstrap: with 5–10 seeds a percentile bootstrap is too narrow (it can take
only a few distinct values and under-covers), while the t-interval is exact for normal differences.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import (adjusted_rand_score, calinski_harabasz_score, normalized_mutual_info_score,
                             silhouette_score)


def _as_labels(y: np.ndarray, name: str) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D label vector, got shape {y.shape}")
    return y


def contingency(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """Counts (#classes × #clusters), as sklearn's `contingency_matrix`: entry [t, c] = samples of class t
    in cluster c.

    Labels of either side are mapped to 0..m-1 in sorted order first, so any integer or string labels work.
    """
    y_true, y_pred = _as_labels(y_true, "y_true"), _as_labels(y_pred, "y_pred")
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true has {y_true.size} labels, y_pred {y_pred.size}")
    _, true_idx = np.unique(y_true, return_inverse=True)
    _, pred_idx = np.unique(y_pred, return_inverse=True)
    table = np.zeros((true_idx.max(initial=-1) + 1, pred_idx.max(initial=-1) + 1), dtype=np.int64)
    np.add.at(table, (true_idx, pred_idx), 1)
    return table


def cluster_acc(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Unsupervised accuracy: the best one-to-one map of clusters to classes (Hungarian), as a fraction."""
    table = contingency(y_true, y_pred)
    if table.size == 0:
        return float("nan")
    d = max(table.shape)
    square = np.zeros((d, d), dtype=np.int64)
    square[: table.shape[0], : table.shape[1]] = table
    rows, cols = linear_sum_assignment(square.max() - square)
    return float(square[rows, cols].sum() / table.sum())


def nmi(y_true: np.ndarray, y_pred: np.ndarray, average: str = "arithmetic") -> float:
    """Normalised mutual information; `average` "arithmetic" (sklearn ≥0.22, V-measure) or "geometric" (DCEC/DEC 2017)."""
    if average not in ("arithmetic", "geometric"):
        raise ValueError(f"average must be 'arithmetic' or 'geometric', not {average!r}")
    return float(normalized_mutual_info_score(y_true, y_pred, average_method=average))


def purity(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Σ over clusters of the majority class count, divided by N."""
    table = contingency(y_true, y_pred)
    return float(table.max(axis=0).sum() / table.sum()) if table.size else float("nan")


def label_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """ACC, NMI (both averages), ARI and purity of a clustering against reference labels."""
    return {
        "acc": cluster_acc(y_true, y_pred),
        "nmi_arithmetic": nmi(y_true, y_pred, "arithmetic"),
        "nmi_geometric": nmi(y_true, y_pred, "geometric"),
        "ari": float(adjusted_rand_score(y_true, y_pred)),
        "purity": purity(y_true, y_pred),
    }


def internal_metrics(embedding: np.ndarray, y_pred: np.ndarray, sample_size: int | None = None,
                     seed: int = 0) -> dict[str, float]:
    """Silhouette (Euclidean; on a seeded subsample of `sample_size` points when given and smaller than N —
    it is O(N²)) and Calinski-Harabasz (all points). NaN for both when there are fewer than 2 clusters or
    as many clusters as points (both scores are undefined there)."""
    embedding = np.asarray(embedding, dtype=np.float64)
    y_pred = _as_labels(y_pred, "y_pred")
    if embedding.ndim != 2 or embedding.shape[0] != y_pred.size:
        raise ValueError(f"embedding of shape {embedding.shape} does not match {y_pred.size} labels")
    n_clusters = np.unique(y_pred).size
    if n_clusters < 2 or n_clusters >= y_pred.size:
        return {"silhouette": math.nan, "calinski_harabasz": math.nan}
    use_sample = sample_size is not None and sample_size < y_pred.size
    silhouette = silhouette_score(embedding, y_pred, metric="euclidean",
                                  sample_size=sample_size if use_sample else None,
                                  random_state=seed if use_sample else None)
    return {"silhouette": float(silhouette), "calinski_harabasz": float(calinski_harabasz_score(embedding, y_pred))}


VERDICTS = ("better", "worse", "no detectable difference")


def paired_difference(ours: dict[int, float], theirs: dict[int, float], level: float = 0.95) -> dict:
    """Paired comparison of one metric of two methods, each given as {seed: value}.

    Uses the seeds where both values are finite. Returns {diff_mean, ci_low, ci_high, n, verdict}: the mean
    of ours − theirs per seed, the `level` t-interval of that mean (None with fewer than 2 pairs) and the
    verdict it implies (higher is better for every label metric).
    """
    seeds = sorted(seed for seed in ours.keys() & theirs.keys()
                   if math.isfinite(ours[seed]) and math.isfinite(theirs[seed]))
    diffs = np.array([ours[seed] - theirs[seed] for seed in seeds], dtype=np.float64)
    n = int(diffs.size)
    if n == 0:
        return {"diff_mean": None, "ci_low": None, "ci_high": None, "n": 0, "verdict": VERDICTS[2]}
    mean = float(diffs.mean())
    if n < 2:
        return {"diff_mean": mean, "ci_low": None, "ci_high": None, "n": n, "verdict": VERDICTS[2]}
    half_width = float(stats.t.ppf(0.5 + level / 2, n - 1) * diffs.std(ddof=1) / math.sqrt(n))
    low, high = mean - half_width, mean + half_width
    verdict = VERDICTS[0] if low > 0 else VERDICTS[1] if high < 0 else VERDICTS[2]
    return {"diff_mean": mean, "ci_low": low, "ci_high": high, "n": n, "verdict": verdict}
