"""Fashion-MNIST from the Debian package `dataset-fashion-mnist` (gzipped idx files), offline.

Read by the verification (model/verify.py), its fingerprint (model/fingerprint.py) and DeepCluster's check.
`make verify` installs the package.
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np

DATA_DIR = Path("/usr/share/datasets/fashion-mnist")
FILES = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
         "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}
IDX_UBYTE = 0x08


def read_idx(path: Path) -> np.ndarray:
    """Read a gzipped idx file of unsigned bytes (the MNIST format): magic 0,0,0x08,ndim; big-endian dims."""
    with gzip.open(path, "rb") as fh:
        data = fh.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != IDX_UBYTE:
        raise ValueError(f"{path}: not an unsigned-byte idx file (magic {data[:4].hex()})")
    ndim = data[3]
    dims = struct.unpack(f">{ndim}I", data[4:4 + 4 * ndim])
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(dims)):
        raise ValueError(f"{path}: header says {dims} = {int(np.prod(dims))} values, file has {body.size}")
    return body.reshape(dims)


def load_fashion_mnist(data_dir: Path, splits: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 28, 28, 1) uint8 and labels (N,) int64 of the given splits, concatenated in order.

    Raises FileNotFoundError telling the user to run `make verify` when the Debian files are absent.
    """
    images, labels = [], []
    for split in splits:
        image_file, label_file = (data_dir / name for name in FILES[split])
        for path in (image_file, label_file):
            if not path.is_file():
                raise FileNotFoundError(f"{path}: Fashion-MNIST not found; run `make verify` (it installs the "
                                        "Debian package dataset-fashion-mnist) or pass --data-dir")
        x, y = read_idx(image_file), read_idx(label_file)
        if x.ndim != 3 or y.ndim != 1 or x.shape[0] != y.shape[0]:
            raise ValueError(f"{image_file}: {x.shape} images vs {label_file}: {y.shape} labels")
        images.append(x[..., None])
        labels.append(y.astype(np.int64))
    return np.ascontiguousarray(np.concatenate(images)), np.concatenate(labels)
