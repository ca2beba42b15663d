"""Tiny synthetic inputs shared by the experiment tests (methods, compare, evaluate, report).

Four "artists", each painting flat images of one colour with a little seeded noise: k-means on pixels
separates them perfectly, so a method that ignores its input is caught by the label metrics.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml

from model.data import ImageSet
from model.nets import save_cae
from model.nets import build_cae

ARTIST_COLOURS = {"Anna Albers": (220, 30, 30), "Bruno Berg": (30, 200, 40), "Carla Cruz": (40, 40, 210),
                  "Dario Dorn": (230, 220, 60)}
PER_ARTIST, SIDE, K = 10, 16, 4


def synthetic_arrays(seed: int = 0) -> tuple[np.ndarray, pd.DataFrame]:
    """(N, 16, 16, 3) uint8 images and the matching labels frame, artists interleaved row by row."""
    rng = np.random.default_rng(seed)
    names = sorted(ARTIST_COLOURS)
    artist_ids = np.tile(np.arange(len(names)), PER_ARTIST)  # 0,1,2,3,0,1,...
    colours = np.array([ARTIST_COLOURS[n] for n in names], dtype=np.int16)[artist_ids]  # (N, 3)
    noise = rng.integers(-20, 21, size=(artist_ids.size, SIDE, SIDE, 3))
    images = np.clip(colours[:, None, None, :] + noise, 0, 255).astype(np.uint8)
    labels = pd.DataFrame({"row": np.arange(artist_ids.size), "lot_key": [f"www-1-{i}" for i in range(artist_ids.size)],
                           "artist": [names[a] for a in artist_ids], "artist_id": artist_ids, "kind": "painting"})
    return images, labels


def synthetic_image_set(seed: int = 0) -> ImageSet:
    images, labels = synthetic_arrays(seed)
    return ImageSet(images=torch.from_numpy(images), labels=labels)


CAE_SEEDS = range(5)


def write_inputs(root: Path, seed: int = 0) -> None:
    """data/final/images.npy, data/final/labels.csv, models/cae.pt and models/cae_seeds/seed-<s>.pt for s in
    CAE_SEEDS (small untrained CAEs, each initialised with its own seed) under `root`."""
    images, labels = synthetic_arrays(seed)
    (root / "data/final").mkdir(parents=True, exist_ok=True)
    np.save(root / "data/final/images.npy", images)
    labels.to_csv(root / "data/final/labels.csv", index=False)
    torch.manual_seed(seed)
    save_cae(build_cae(SIDE, 3, filters=(4, 8, 8), kernels=(3, 3, 3), embedding=4), root / "models/cae.pt")
    for cae_seed in CAE_SEEDS:
        torch.manual_seed(cae_seed)
        save_cae(build_cae(SIDE, 3, filters=(4, 8, 8), kernels=(3, 3, 3), embedding=4),
                 root / f"models/cae_seeds/seed-{cae_seed}.pt")


def small_params(**compare_overrides) -> dict:
    """A params dict shaped like params.yaml, sized to run in about a second. (batch 7 does not divide N = 40:
    model/dcec.py batch_indices yields an empty batch, hence a NaN loss, when N % batch_size == 0.)"""
    compare = {"methods": ["kmeans_pixels", "pca_kmeans", "cae_kmeans", "dcec"], "seeds": [0, 1],
               "pca_components": 5, "sweep_ks": [2, 3], "sweep_seeds": [0], "workers": 1, "threads_per_run": 1,
               "pixels_kmeans_n_init": None}
    compare.update(compare_overrides)
    return {"base": {"seed": 0},
            "model": {"k": K, "embedding": 4, "filters": [4, 8, 8], "kernels": [3, 3, 3], "activation": "elu",
                      "device": "cpu", "compile": False, "mixed_precision": "off", "keep_freed_memory": False,
                      "eval_batch_size": 64},
            "cluster": {"batch_size": 7, "lr": 0.001, "maxiter": 8, "update_interval": 4, "tol": 0.001,
                        "kl_weight": 0.9, "recon_weight": 0.1, "kmeans_n_init": 2},
            "compare": compare,
            "evaluate": {"tsne_perplexity": 30, "collage_per_cluster": 3, "tsne_max_points": 5000},
            "report": {"paper_values": True},
            "scrape": {"site": "demo", "base_url": "https://www.christies.com"}, "demo": {"seed": 7},
            "pretrain": {"epochs": 2, "batch_size": 16, "lr": 0.001},
            "deepcluster": {"sobel": True, "epochs": 2},
            "n2d": {"n_components": None, "n_neighbors": 10, "min_dist": 0.0, "metric": "euclidean",
                    "covariance_type": "full"}}


def write_params(root: Path, params: dict) -> None:
    (root / "params.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")


def test_synthetic_data_is_consistent():
    images, labels = synthetic_arrays()
    assert images.shape == (K * PER_ARTIST, SIDE, SIDE, 3) and images.dtype == np.uint8
    assert labels["row"].tolist() == list(range(len(images)))
    assert labels.groupby("artist")["artist_id"].nunique().eq(1).all()
