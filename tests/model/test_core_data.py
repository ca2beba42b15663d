"""Loading and converting the final images and labels."""

import numpy as np
import pandas as pd
import pytest
import torch

from model.data import encode_all, load_image_set, to_model_input
from model.nets import build_cae


def write_set(root, n=6, size=8, channels=3, dtype=np.uint8, labels=None):
    np.save(root / "images.npy", np.random.default_rng(0).integers(0, 256, (n, size, size, channels)).astype(dtype))
    if labels is None:
        labels = pd.DataFrame({"row": range(n), "lot_key": [f"www-1-{i:03d}" for i in range(n)],
                               "artist": ["NA"] * n, "artist_id": [i % 2 for i in range(n)], "kind": ["painting"] * n})
    labels.to_csv(root / "labels.csv", index=False)
    return root / "images.npy", root / "labels.csv"


def test_loads_images_and_labels(tmp_path):
    image_set = load_image_set(*write_set(tmp_path))
    assert (image_set.n, image_set.size, image_set.channels) == (6, 8, 3)
    assert image_set.images.dtype == torch.uint8 and image_set.images.is_contiguous()
    assert image_set.artist_ids.tolist() == [0, 1, 0, 1, 0, 1]
    assert image_set.labels["artist"].iloc[0] == "NA"  # not turned into a missing value
    assert image_set.labels["lot_key"].iloc[1] == "www-1-001"


def test_missing_files_name_the_stage(tmp_path):
    with pytest.raises(FileNotFoundError, match="images.npy.*'images' stage"):
        load_image_set(tmp_path / "images.npy", tmp_path / "labels.csv")
    images, labels = write_set(tmp_path)
    labels.unlink()
    with pytest.raises(FileNotFoundError, match="labels.csv"):
        load_image_set(images, labels)


def test_wrong_dtype_or_shape(tmp_path):
    with pytest.raises(ValueError, match="dtype float32"):
        load_image_set(*write_set(tmp_path, dtype=np.float32))
    np.save(tmp_path / "images.npy", np.zeros((4, 8, 6, 3), dtype=np.uint8))
    with pytest.raises(ValueError, match="shape"):
        load_image_set(tmp_path / "images.npy", None)


def test_labels_must_match_rows_and_order(tmp_path):
    images, labels = write_set(tmp_path)
    frame = pd.read_csv(labels)
    frame.iloc[:5].to_csv(labels, index=False)
    with pytest.raises(ValueError, match="5 rows but the images file has 6"):
        load_image_set(images, labels)
    frame.loc[[2, 3], "row"] = [3, 2]
    frame.to_csv(labels, index=False)
    with pytest.raises(ValueError, match="row 2, field 'row'"):
        load_image_set(images, labels)
    frame.loc[[2, 3], "row"] = [2, 3]
    frame["artist_id"] = frame["artist_id"].astype(object)
    frame.loc[4, "artist_id"] = "x"
    frame.to_csv(labels, index=False)
    with pytest.raises(ValueError, match="row 4, field 'artist_id'"):
        load_image_set(images, labels)


def test_to_model_input_layout_and_range():
    batch = torch.tensor([[[[0, 255, 51]]]], dtype=torch.uint8).expand(2, 4, 4, 3).contiguous()  # (2, 4, 4, 3)
    x = to_model_input(batch, "cpu")
    assert x.shape == (2, 3, 4, 4) and x.dtype == torch.float32
    assert x.is_contiguous(memory_format=torch.channels_last)
    assert torch.allclose(x[0, :, 0, 0], torch.tensor([0.0, 1.0, 0.2]))


def test_encode_all_batches_give_the_same_embedding():
    cae = build_cae(16, 3, embedding=5)
    images = torch.randint(0, 256, (10, 16, 16, 3), dtype=torch.uint8)
    a, b = encode_all(cae, images, 3, "cpu"), encode_all(cae, images, 10, "cpu")
    assert a.shape == (10, 5) and a.dtype == np.float32
    assert np.allclose(a, b, atol=1e-5) and cae.training
