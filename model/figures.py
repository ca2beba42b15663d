"""Evaluation figures as PNG files (matplotlib Agg): DVC's HTML plots need a CDN, PNGs work offline.

* `contingency_heatmap` — artists × clusters counts, clusters ordered by the Hungarian match so that the
  matched cluster of each artist sits on the diagonal;
* `tsne_2d` + `scatter_2d` — t-SNE of an embedding, coloured by cluster or by artist;
* `cluster_collage` — sample images per cluster, one labelled row per cluster;
* `training_curves` — DCEC loss, delta_label and label metrics over the P updates;
* `price_scatter`, `price_artist_error` — the price stage's predictions against the realised prices.

Every figure is written atomically (temporary file + rename).
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after selecting the headless backend)
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from PIL import Image  # noqa: E402
from scipy.optimize import linear_sum_assignment  # noqa: E402
from sklearn.manifold import TSNE  # noqa: E402

from common import atomic_path  # noqa: E402

DPI = 100
COLLAGE_THUMB = 64  # collage cell side in px: 50 rows × 12 images at 128 px would be a ~20 MB PNG
COLLAGE_GAP = 2  # px between collage cells
ANNOTATE_MAX_CELLS = 400  # write the counts into the heat-map cells only when they stay legible
LEGEND_MAX_ENTRIES = 60  # beyond this a legend hides the plot; colours alone remain
SCATTER_POINT_SIZE = 4
# PNG metadata without the matplotlib version, so a matplotlib upgrade does not change every figure's hash.
PNG_METADATA = {"Software": None}


def save_figure(fig: plt.Figure, path: Path) -> None:
    """Write `fig` as PNG atomically and close it."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI, bbox_inches="tight", metadata=PNG_METADATA)
    plt.close(fig)


def notice(text: str, path: Path) -> None:
    """A figure that only says why it has nothing to show (a stage that reported instead of fitting)."""
    fig, ax = plt.subplots(figsize=(6, 1.2))
    ax.axis("off")
    ax.text(0.5, 0.5, "\n".join(textwrap.wrap(text, 80)), ha="center", va="center", fontsize=9)
    save_figure(fig, path)


def hungarian_column_order(table: np.ndarray) -> list[int]:
    """Column (cluster) order for a rows=classes × cols=clusters table: the cluster matched one-to-one to
    row 0 first, then row 1's, …; unmatched clusters follow by decreasing size."""
    n_rows, n_cols = table.shape
    d = max(n_rows, n_cols)
    square = np.zeros((d, d), dtype=np.int64)
    square[:n_rows, :n_cols] = table
    rows, cols = linear_sum_assignment(square, maximize=True)
    matched = [int(c) for r, c in sorted(zip(rows, cols)) if r < n_rows and c < n_cols]
    rest = sorted(set(range(n_cols)) - set(matched), key=lambda c: (-table[:, c].sum(), c))
    return matched + rest


def contingency_heatmap(table: np.ndarray, artists: Sequence[str], clusters: Sequence[int], path: Path) -> None:
    """Heat-map of artist × cluster counts (table: (A, K), rows in the order of `artists`)."""
    order = hungarian_column_order(table)
    ordered = table[:, order]  # (A, K)
    n_rows, n_cols = ordered.shape
    fig, ax = plt.subplots(figsize=(max(4.0, 0.45 * n_cols + 3.0), max(3.0, 0.3 * n_rows + 1.5)))
    image = ax.imshow(ordered, cmap="viridis", aspect="auto", interpolation="nearest")
    ax.set_xticks(range(n_cols), [str(clusters[c]) for c in order])
    ax.set_yticks(range(n_rows), list(artists), fontsize=8)
    ax.set_xlabel("cluster (ordered by Hungarian match to the artists)")
    ax.set_ylabel("artist")
    if ordered.size <= ANNOTATE_MAX_CELLS:
        threshold = ordered.max() / 2 if ordered.size else 0
        for (i, j), count in np.ndenumerate(ordered):
            ax.text(j, i, str(count), ha="center", va="center", fontsize=7,
                    color="black" if count > threshold else "white")
    fig.colorbar(image, ax=ax, label="images")
    ax.set_title("Artists × clusters")
    save_figure(fig, path)


def clipped_perplexity(perplexity: float, n: int) -> float:
    """t-SNE needs perplexity < n; keep it below (n − 1)/3, the usual bound for small sets, and ≥ 1."""
    if n < 2:
        raise ValueError(f"t-SNE needs at least 2 points, got {n}")
    return float(max(1.0, min(perplexity, (n - 1) / 3.0)))


def tsne_2d(embedding: np.ndarray, perplexity: float, seed: int) -> np.ndarray:
    """(N, E) → (N, 2) seeded t-SNE (PCA initialisation, perplexity clipped for small N)."""
    embedding = np.asarray(embedding, dtype=np.float32)
    tsne = TSNE(n_components=2, perplexity=clipped_perplexity(perplexity, embedding.shape[0]), init="pca",
                random_state=seed)
    return tsne.fit_transform(embedding)


def category_colours(n: int) -> np.ndarray:
    """n distinct RGBA colours: tab10/tab20 when they suffice, else evenly spaced on a cyclic map."""
    if n <= 10:
        return plt.get_cmap("tab10")(np.arange(n))
    if n <= 20:
        return plt.get_cmap("tab20")(np.arange(n))
    return plt.get_cmap("hsv")(np.linspace(0, 1, n, endpoint=False))


def scatter_2d(coords: np.ndarray, categories: np.ndarray, names: Sequence[str], title: str, path: Path) -> None:
    """Scatter of (N, 2) points coloured by integer category (0..len(names)-1), with a legend."""
    colours = category_colours(len(names))
    fig, ax = plt.subplots(figsize=(8, 7))
    for index, name in enumerate(names):
        mask = categories == index
        if mask.any():
            ax.scatter(coords[mask, 0], coords[mask, 1], s=SCATTER_POINT_SIZE, color=colours[index],
                       label=f"{name} ({int(mask.sum())})", linewidths=0)
    if len(names) <= LEGEND_MAX_ENTRIES:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7, markerscale=3,
                  ncol=1 if len(names) <= 25 else 2, frameon=False)
    ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])
    save_figure(fig, path)


def thumbnail(image_u8: np.ndarray, side: int) -> np.ndarray:
    """(S, S, C) uint8 → (side, side, 3) uint8 (grayscale expanded to RGB)."""
    picture = Image.fromarray(image_u8[..., 0] if image_u8.shape[2] == 1 else image_u8)
    picture = picture.convert("RGB")
    if picture.size != (side, side):
        picture = picture.resize((side, side), Image.Resampling.LANCZOS)
    return np.asarray(picture)


def collage_picks(assignments: np.ndarray, k: int, per_cluster: int, seed: int) -> list[np.ndarray]:
    """For each cluster 0..k-1, up to `per_cluster` image indices drawn without replacement (seeded),
    in ascending order."""
    rng = np.random.default_rng(seed)
    picks = []
    for cluster in range(k):
        members = np.flatnonzero(assignments == cluster)
        chosen = rng.choice(members, size=min(per_cluster, members.size), replace=False) if members.size else members
        picks.append(np.sort(chosen))
    return picks


def cluster_collage(images_u8: np.ndarray, assignments: np.ndarray, k: int, per_cluster: int, seed: int,
                    path: Path) -> None:
    """One row per cluster of up to `per_cluster` sample images, labelled with the cluster id and size."""
    side = min(COLLAGE_THUMB, images_u8.shape[1])
    cell = side + COLLAGE_GAP
    canvas = np.full((k * cell, per_cluster * cell, 3), 255, dtype=np.uint8)  # white background
    picks = collage_picks(assignments, k, per_cluster, seed)
    for row, indices in enumerate(picks):
        for col, index in enumerate(indices):
            canvas[row * cell:row * cell + side, col * cell:col * cell + side] = thumbnail(images_u8[index], side)
    height, width = canvas.shape[:2]
    fig, ax = plt.subplots(figsize=(width / DPI + 1.6, height / DPI + 0.6))
    ax.imshow(canvas, interpolation="nearest")
    sizes = np.bincount(assignments, minlength=k)
    ax.set_yticks([row * cell + side / 2 for row in range(k)],
                  [f"cluster {c} (n={sizes[c]})" for c in range(k)], fontsize=8)
    ax.set_xticks([])
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.set_title(f"{per_cluster} random images per cluster (seeded)")
    save_figure(fig, path)


CURVE_PANELS = (
    ("loss", ("loss", "kl", "mse"), "training loss (mean over the steps since the previous update)"),
    ("delta_label", ("delta_label",), "fraction of assignments changed"),
    ("label metrics", ("acc", "nmi", "nmi_geometric", "ari"), "against the artist labels"),
)


def training_curves(history: Sequence[dict], path: Path) -> None:
    """Panels of DCEC history records (one per P update, x = iteration `ite`); metrics absent from the
    history (e.g. acc without labels) are left out, and a panel with nothing to show is dropped."""
    panels = [(title, [m for m in names if any(m in record for record in history)], note)
              for title, names, note in CURVE_PANELS]
    panels = [panel for panel in panels if panel[1]]
    if not history or not panels:
        raise ValueError("DCEC history has no records to plot")
    fig, axes = plt.subplots(len(panels), 1, figsize=(7, 2.6 * len(panels)), sharex=True, squeeze=False)
    for ax, (title, names, note) in zip(axes[:, 0], panels):
        for name in names:
            points = [(r["ite"], r[name]) for r in history if name in r and r[name] is not None]
            xs, ys = zip(*points) if points else ((), ())
            label = "nmi_arithmetic" if name == "nmi" else name
            ax.plot(xs, ys, marker="o", markersize=3, label=label)
        ax.set_title(f"{title}: {note}", fontsize=9)
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    axes[-1, 0].set_xlabel("iteration (P update steps)")
    save_figure(fig, path)


def price_scatter(actual: np.ndarray, predictions: Mapping[str, np.ndarray], path: Path) -> None:
    """One panel per model: predicted against actual (hammer) log US-dollar price of the test works, with y = x."""
    fig, axes = plt.subplots(1, len(predictions), figsize=(3.4 * len(predictions), 3.6), sharex=True, sharey=True,
                             squeeze=False)
    values = np.concatenate([actual, *predictions.values()])
    limits = (float(values.min()) - 0.3, float(values.max()) + 0.3)
    for ax, (name, predicted) in zip(axes[0], predictions.items()):
        ax.plot(limits, limits, color="0.6", linewidth=1)
        ax.scatter(actual, predicted, s=SCATTER_POINT_SIZE * 2, alpha=0.7)
        mae = float(np.mean(np.abs(predicted - actual)))
        ax.set(title=f"{name} (MAE {mae:.2f})", xlabel="hammer, ln USD", xlim=limits, ylim=limits)
    axes[0][0].set_ylabel("predicted, ln USD")
    fig.suptitle(f"Test works (n = {actual.size}): predicted against hammer price", y=1.04)
    save_figure(fig, path)


def price_artist_error(mean_errors: pd.DataFrame, counts: pd.Series, path: Path) -> None:
    """Mean absolute log error per artist (rows) and model (columns) on the test works, as grouped bars."""
    mean_errors = mean_errors.sort_index()
    n_artists, n_models = mean_errors.shape
    fig, ax = plt.subplots(figsize=(7, 1.0 + 0.28 * n_artists * max(1, n_models / 3)))
    height = 0.8 / n_models
    positions = np.arange(n_artists)
    for i, name in enumerate(mean_errors.columns):
        ax.barh(positions + i * height, mean_errors[name].to_numpy(), height=height, label=name)
    ax.set_yticks(positions + 0.4 - height / 2,
                  [f"{artist} (n = {int(counts.get(artist, 0))})" for artist in mean_errors.index], fontsize=8)
    ax.margins(y=0.01)
    ax.invert_yaxis()
    ax.set(xlabel="mean absolute error, ln USD", title="Price error per artist (test works)")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    save_figure(fig, path)
