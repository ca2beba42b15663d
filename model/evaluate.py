"""Stage `evaluate`: the DCEC clustering of the `cluster` stage against the artist labels, with figures.

    python -m model.evaluate        # reads params.yaml: base, model, evaluate

Inputs: `data/final/images.npy`, `data/final/labels.csv`, `reports/dcec/assignments.csv`
(`row, lot_key, cluster, q_max`), `reports/dcec/embedding.npy` (N×E), `reports/dcec/history.json`.
Outputs:
* `reports/metrics.json` — n, k, n_artists, n_nonempty_clusters; acc (one-to-one Hungarian), nmi_arithmetic,
  nmi_geometric, ari, purity (many-to-one) against the artists; silhouette (exact, all points: O(N²) but 3 s
  at 10,765 × 32 on 2 cores) and calinski_harabasz in the DCEC embedding;
* `reports/contingency.csv` — artist × cluster counts, artist names as row labels, every cluster 0..k-1;
* `reports/figures/`: contingency_heatmap.png, tsne_clusters.png, tsne_artists.png (on a seeded sample of at
  most `evaluate.tsne_max_points` works), collage.png, dcec_curves.png.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from common import atomic_path, load_params, write_json
from model import figures
from model.data import ImageSet, load_image_set
from model.metrics import internal_metrics, label_metrics

# The params this stage reads (dvc.yaml declares exactly these; tests/test_dvc_params.py).
PARAMS = ("base.seed", "model.k", "evaluate")
IMAGES_PATH = Path("data/final/images.npy")
LABELS_PATH = Path("data/final/labels.csv")
DCEC_DIR = Path("reports/dcec")
METRICS_PATH = Path("reports/metrics.json")
CONTINGENCY_PATH = Path("reports/contingency.csv")
FIGURES_DIR = Path("reports/figures")
FIGURE_NAMES = {
    "heatmap": "contingency_heatmap.png",
    "tsne_clusters": "tsne_clusters.png",
    "tsne_artists": "tsne_artists.png",
    "collage": "collage.png",
    "curves": "dcec_curves.png",
}


def read_assignments(path: Path, labels: pd.DataFrame, k: int) -> np.ndarray:
    """The cluster of every image from the cluster stage's assignments.csv, checked against labels.csv
    (one row per image): rows 0..N-1 in order, the same lot_key, integer clusters in 0..k-1.

    Raises:
        FileNotFoundError / ValueError naming the file, the row and the field.
    """
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found (made by the 'cluster' stage: dvc repro cluster)")
    frame = pd.read_csv(path, dtype={"lot_key": str}, keep_default_na=False)
    for column in ("row", "cluster"):
        if column not in frame.columns:
            raise ValueError(f"{path}: no column {column!r}; has {list(frame.columns)}")
    n = len(labels)
    if len(frame) != n:
        raise ValueError(f"{path}: {len(frame)} rows but images.npy has {n} images")
    for column in ("row", "cluster"):
        values = pd.to_numeric(frame[column], errors="coerce")
        bad = np.flatnonzero((values.isna() | (values != values.round())).to_numpy())
        if bad.size:
            i = int(bad[0])
            raise ValueError(f"{path}: row {i}, field {column!r}: {frame[column].iloc[i]!r} is not an integer")
        frame[column] = values.astype(np.int64)
    wrong_row = np.flatnonzero(frame["row"].to_numpy() != np.arange(n))
    if wrong_row.size:
        i = int(wrong_row[0])
        raise ValueError(f"{path}: row {i}, field 'row': {frame['row'].iloc[i]} (expected {i}: images.npy order)")
    clusters = frame["cluster"].to_numpy()
    out_of_range = np.flatnonzero((clusters < 0) | (clusters >= k))
    if out_of_range.size:
        i = int(out_of_range[0])
        raise ValueError(f"{path}: row {i}, field 'cluster': {clusters[i]} outside 0..{k - 1} (model.k = {k})")
    if "lot_key" in frame.columns:
        mismatch = np.flatnonzero(frame["lot_key"].to_numpy() != labels["lot_key"].to_numpy())
        if mismatch.size:
            i = int(mismatch[0])
            raise ValueError(f"{path}: row {i}, field 'lot_key': {frame['lot_key'].iloc[i]!r} but labels.csv has "
                             f"{labels['lot_key'].iloc[i]!r}; re-run the cluster stage")
    return clusters


def read_embedding(path: Path, n: int | None) -> np.ndarray:
    """(N, E) finite float embedding (any N when `n` is None), or a clear error naming the file."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found (made by the 'cluster' stage: dvc repro cluster)")
    embedding = np.load(path, allow_pickle=False)
    if embedding.ndim != 2 or (n is not None and embedding.shape[0] != n):
        raise ValueError(f"{path}: shape {embedding.shape}, expected ({n}, E)")
    if not np.issubdtype(embedding.dtype, np.floating) or not np.isfinite(embedding).all():
        raise ValueError(f"{path}: expected finite floats, got dtype {embedding.dtype}")
    return embedding.astype(np.float32, copy=False)


def read_history(path: Path) -> list[dict]:
    """The per-P-update records of the cluster stage (`history.json`: {n_iter, converged, history})."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found (made by the 'cluster' stage: dvc repro cluster)")
    history = json.loads(path.read_text(encoding="utf-8")).get("history")
    if not isinstance(history, list) or not history:
        raise ValueError(f"{path}: field 'history': expected a non-empty list of records")
    return history


def artist_names(image_set: ImageSet) -> list[str]:
    """Artist display names indexed by artist_id (0..A-1, as the contract numbers them)."""
    labels = image_set.labels
    names = labels.drop_duplicates("artist_id").set_index("artist_id")["artist"].sort_index()
    if not names.index.equals(pd.RangeIndex(len(names))):
        raise ValueError(f"labels.csv: artist_id values {list(names.index)} are not 0..A-1")
    conflicting = labels.groupby("artist_id")["artist"].nunique()
    if (conflicting > 1).any():
        raise ValueError(f"labels.csv: artist_id {int(conflicting.idxmax())} has more than one artist name")
    return names.tolist()


def contingency_frame(artist_ids: np.ndarray, clusters: np.ndarray, names: list[str], k: int) -> pd.DataFrame:
    """Artists (rows, by artist_id) × clusters 0..k-1 (columns, empty clusters kept) counts."""
    table = np.zeros((len(names), k), dtype=np.int64)
    np.add.at(table, (artist_ids, clusters), 1)
    return pd.DataFrame(table, index=pd.Index(names, name="artist"), columns=[str(c) for c in range(k)])


def finite_or_none(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


def evaluation_metrics(artist_ids: np.ndarray, clusters: np.ndarray, embedding: np.ndarray, k: int,
                       n_artists: int, seed: int) -> dict:
    """metrics.json content: sizes, artist-label metrics and internal metrics (null when undefined)."""
    scores = {**label_metrics(artist_ids, clusters), **internal_metrics(embedding, clusters, seed=seed)}
    return {"n": int(clusters.size), "k": int(k), "n_artists": int(n_artists),
            "n_nonempty_clusters": int(np.unique(clusters).size),
            **{name: finite_or_none(value) for name, value in scores.items()}}


def tsne_subset(n: int, max_points: int | None, seed: int) -> np.ndarray:
    """Row indices for the t-SNE figures: all N, or a seeded sample of `max_points` in row order. Barnes-Hut
    t-SNE costs O(N log N) with a large constant: minutes at 10,000 points on 2 cores, for a picture that
    5,000 points show as well."""
    if max_points is None or n <= max_points:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=max_points, replace=False))


def run_evaluate(image_set: ImageSet, clusters: np.ndarray, embedding: np.ndarray, history: list[dict], k: int,
                 seed: int, perplexity: float, per_cluster: int, metrics_path: Path, contingency_path: Path,
                 figures_dir: Path, tsne_max_points: int | None = None) -> dict:
    """Write metrics, contingency table and every figure; return the metrics."""
    names = artist_names(image_set)
    artist_ids = image_set.artist_ids
    metrics = evaluation_metrics(artist_ids, clusters, embedding, k, len(names), seed)
    write_json(metrics_path, metrics)
    table = contingency_frame(artist_ids, clusters, names, k)
    with atomic_path(contingency_path) as tmp:
        table.to_csv(tmp, lineterminator="\n")
    figures.contingency_heatmap(table.to_numpy(), names, list(range(k)), figures_dir / FIGURE_NAMES["heatmap"])
    shown = tsne_subset(embedding.shape[0], tsne_max_points, seed)  # (M,) row indices, M ≤ tsne_max_points
    of_all = "" if shown.size == embedding.shape[0] else f" ({shown.size:,} of {embedding.shape[0]:,} works, seeded sample)"
    print(f"evaluate: t-SNE of {shown.size}×{embedding.shape[1]} embedding{of_all}", file=sys.stderr)
    coords = figures.tsne_2d(embedding[shown], perplexity, seed)  # (M, 2)
    figures.scatter_2d(coords, clusters[shown], [f"cluster {c}" for c in range(k)],
                       f"t-SNE of the DCEC embedding, by cluster{of_all}", figures_dir / FIGURE_NAMES["tsne_clusters"])
    figures.scatter_2d(coords, artist_ids[shown], names, f"t-SNE of the DCEC embedding, by artist{of_all}",
                       figures_dir / FIGURE_NAMES["tsne_artists"])
    figures.cluster_collage(image_set.images.numpy(), clusters, k, per_cluster, seed,
                            figures_dir / FIGURE_NAMES["collage"])
    figures.training_curves(history, figures_dir / FIGURE_NAMES["curves"])
    return metrics


def main() -> None:
    params = load_params(keys=PARAMS)
    k, seed = int(params["model"]["k"]), int(params["base"]["seed"])
    evaluate_params = params["evaluate"]
    image_set = load_image_set(IMAGES_PATH, LABELS_PATH)
    clusters = read_assignments(DCEC_DIR / "assignments.csv", image_set.labels, k)
    embedding = read_embedding(DCEC_DIR / "embedding.npy", image_set.n)
    history = read_history(DCEC_DIR / "history.json")
    metrics = run_evaluate(image_set, clusters, embedding, history, k, seed,
                           float(evaluate_params["tsne_perplexity"]), int(evaluate_params["collage_per_cluster"]),
                           METRICS_PATH, CONTINGENCY_PATH, FIGURES_DIR, evaluate_params["tsne_max_points"])
    print("evaluate: " + ", ".join(f"{key} {metrics[key]:.4f}" for key in ("acc", "nmi_arithmetic", "ari")
                                   if metrics[key] is not None), file=sys.stderr)


if __name__ == "__main__":
    main()
