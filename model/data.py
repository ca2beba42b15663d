"""The model stages' input: `data/final/images.npy` (uint8 N×S×S×C) and `data/final/labels.csv`.

Images stay uint8 on the CPU (a 10.5k×128×128×3 set is ~0.5 GB; float32 would be 2 GB) and are converted
to float in [0, 1] one batch at a time by `to_model_input`, which is a single vectorised op per batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

LABEL_COLUMNS = ["row", "lot_key", "artist", "artist_id", "kind"]


@dataclass
class ImageSet:
    """Images (uint8, N×H×W×C, CPU, contiguous) and, when available, their labels row by row."""

    images: torch.Tensor
    labels: pd.DataFrame | None = None

    @property
    def n(self) -> int:
        return int(self.images.shape[0])

    @property
    def size(self) -> int:
        return int(self.images.shape[1])

    @property
    def channels(self) -> int:
        return int(self.images.shape[3])

    @property
    def artist_ids(self) -> np.ndarray | None:
        return None if self.labels is None else self.labels["artist_id"].to_numpy(dtype=np.int64)


def validate_images(array: np.ndarray, source: str) -> None:
    """Raise ValueError naming `source` unless `array` is uint8 N×S×S×C with C in (1, 3) and N ≥ 1."""
    if array.dtype != np.uint8:
        raise ValueError(f"{source}: dtype {array.dtype}, expected uint8")
    if array.ndim != 4 or array.shape[1] != array.shape[2] or array.shape[3] not in (1, 3):
        raise ValueError(f"{source}: shape {array.shape}, expected N×S×S×C with C in (1, 3)")
    if array.shape[0] == 0:
        raise ValueError(f"{source}: no images")


def read_labels(labels_path: Path, n_images: int) -> pd.DataFrame:
    """Read and check labels.csv against the contract: the columns, N rows, `row` = 0..N-1 in order,
    integer `artist_id`. Errors name the file, the row and the field."""
    labels = pd.read_csv(labels_path, dtype={"lot_key": str, "artist": str, "kind": str},
                         keep_default_na=False, encoding="utf-8-sig")
    missing = [c for c in LABEL_COLUMNS if c not in labels.columns]
    if missing:
        raise ValueError(f"{labels_path}: missing column(s) {missing}; has {list(labels.columns)}")
    if len(labels) != n_images:
        raise ValueError(f"{labels_path}: {len(labels)} rows but the images file has {n_images} images")
    for field in ("row", "artist_id"):
        values = pd.to_numeric(labels[field], errors="coerce")
        bad = values.isna() | (values != values.round())
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise ValueError(f"{labels_path}: row {i}, field {field!r}: {labels[field].iloc[i]!r} is not an integer")
        labels[field] = values.astype(np.int64)
    out_of_order = np.flatnonzero(labels["row"].to_numpy() != np.arange(n_images))
    if out_of_order.size:
        i = int(out_of_order[0])
        raise ValueError(f"{labels_path}: row {i}, field 'row': {labels['row'].iloc[i]} "
                         f"(rows must be 0..{n_images - 1} in order, matching images.npy)")
    if (labels["artist_id"] < 0).any():
        i = int(np.flatnonzero(labels["artist_id"].to_numpy() < 0)[0])
        raise ValueError(f"{labels_path}: row {i}, field 'artist_id': negative value")
    return labels[LABEL_COLUMNS]


def load_image_set(images_path: str | Path = "data/final/images.npy",
                   labels_path: str | Path | None = "data/final/labels.csv") -> ImageSet:
    """Load and validate the final images and labels (labels_path=None: images only).

    Raises:
        FileNotFoundError: a file is missing (the message says which stage makes it).
        ValueError: wrong dtype or shape, or labels inconsistent with the images.
    """
    images_path = Path(images_path)
    if not images_path.is_file():
        raise FileNotFoundError(f"{images_path}: not found (made by the 'images' stage: dvc repro images)")
    array = np.load(images_path, allow_pickle=False)
    validate_images(array, str(images_path))
    labels = None
    if labels_path is not None:
        labels_path = Path(labels_path)
        if not labels_path.is_file():
            raise FileNotFoundError(f"{labels_path}: not found (made by the 'images' stage: dvc repro images)")
        labels = read_labels(labels_path, array.shape[0])
    return ImageSet(images=torch.from_numpy(np.ascontiguousarray(array)), labels=labels)


def to_model_input(batch_u8: torch.Tensor, device: torch.device | str) -> torch.Tensor:
    """(B, H, W, C) uint8 → (B, C, H, W) float32 in [0, 1], channels_last, on `device`.

    A contiguous NHWC tensor permuted to NCHW already has channels_last strides, so this is one copy to
    the device and one fused convert-and-scale, with no per-sample work.
    """
    x = batch_u8.to(device, non_blocking=True).permute(0, 3, 1, 2)  # (B, C, H, W), channels_last strides
    return x.float().div_(255.0).contiguous(memory_format=torch.channels_last)


@torch.inference_mode()
def encode_all(cae: torch.nn.Module, images_u8: torch.Tensor, batch_size: int,
               device: torch.device | str) -> np.ndarray:
    """Embed every image with `cae.encode` in inference mode: (N, H, W, C) uint8 → (N, E) float32 numpy.

    The CAE's train/eval mode is restored afterwards (it has no dropout/BN today, but a variant might).
    """
    was_training = cae.training
    cae.eval()
    try:
        chunks = [cae.encode(to_model_input(images_u8[i:i + batch_size], device)).float().cpu()
                  for i in range(0, images_u8.shape[0], batch_size)]  # each (b, E)
    finally:
        cae.train(was_training)
    return torch.cat(chunks).numpy()
