"""Hostile images, end to end: one corpus of broken, huge, odd-mode and tricky files through the `images` stage
(curation.images.main). Each file is converted correctly (pixel values checked) or skipped with its reason;
the run goes on and the counts land in data/final/images_summary.json."""

from __future__ import annotations

import io
import json
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from curation import images
from curation.apply_review import REVIEWED_COLUMNS
from tests.curation.conftest import jpeg_bytes

RED, GREEN, BLUE, WHITE = (255, 0, 0), (0, 200, 0), (0, 0, 255), (255, 255, 255)
EXIF_ORIENTATION = 0x0112
ROTATE_90_CW_TO_DISPLAY = 6


def encoded(image: Image.Image, fmt: str, **save_args) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **save_args)
    return buffer.getvalue()


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def bomb_png(side: int = 20_000) -> bytes:
    """A valid 1-bit greyscale PNG of side x side pixels (400 Mpx, over twice Pillow's bomb limit) in ~50 kB."""
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    rows = zlib.compress(bytes((1 + side // 8) * side), 9)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", rows) + png_chunk(b"IEND", b"")


def panorama() -> bytes:
    """30,000 x 20: red left, blue right, a green band in the middle 200 columns (what the centre crop keeps)."""
    pixels = np.zeros((20, 30_000, 3), np.uint8)
    pixels[:, :15_000] = RED
    pixels[:, 15_000:] = BLUE
    pixels[:, 14_900:15_100] = GREEN
    return encoded(Image.fromarray(pixels), "PNG")


def sixteen_bit() -> bytes:
    return encoded(Image.fromarray(np.full((30, 30), 128 * 257, np.uint16)), "PNG")


def palette_transparent() -> bytes:
    image = Image.new("P", (30, 30), 0)
    image.putpalette([0, 0, 0] + [255, 0, 0] * 255)  # index 0 is black, and fully transparent
    return encoded(image, "PNG", transparency=0)


def animated_gif() -> bytes:
    frames = [Image.new("RGB", (30, 30), RED), Image.new("RGB", (30, 30), BLUE)]
    return encoded(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)


def exif_rotated() -> bytes:
    """Stored 40 x 20, left half red, right half blue; EXIF says rotate 90 degrees clockwise to display, so the
    displayed image is 20 x 40 with red on top and blue below."""
    pixels = np.zeros((20, 40, 3), np.uint8)
    pixels[:, :20], pixels[:, 20:] = RED, BLUE
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = ROTATE_90_CW_TO_DISPLAY
    return jpeg_bytes(Image.fromarray(pixels), exif=exif.tobytes())


def close(pixel: np.ndarray, colour: tuple[int, int, int], tolerance: int = 40) -> bool:
    return bool(np.abs(pixel.astype(int) - np.array(colour)).max() <= tolerance)


def uniform(colour, tolerance=40) -> Callable[[np.ndarray], bool]:
    return lambda out: all(close(p, colour, tolerance) for p in out.reshape(-1, 3))


# name -> (file bytes, extension, check of the 16 x 16 output) or (file bytes, extension, skip reason)
CORPUS: dict[str, tuple[bytes, str, Callable[[np.ndarray], bool] | str]] = {
    "truncated-jpeg": (jpeg_bytes(Image.new("RGB", (200, 150), RED))[:700], "jpg", "truncated"),
    "zero-bytes": (b"", "jpg", "empty file"),
    "html-as-jpg": (b"<!DOCTYPE html><html><body>Access denied</body></html>", "jpg", "not an image"),
    "bomb-1bit-png": (bomb_png(), "png", "decompression bomb"),
    "one-pixel": (encoded(Image.new("RGB", (1, 1), GREEN), "PNG"), "png", uniform(GREEN, 0)),
    "panorama-30000x20": (panorama(), "png", uniform(GREEN, 2)),
    "cmyk-jpeg": (jpeg_bytes(Image.new("CMYK", (40, 40), (0, 255, 255, 0))), "jpg", uniform(RED)),
    "sixteen-bit-png": (sixteen_bit(), "png", uniform((128, 128, 128), 1)),
    "palette-transparent": (palette_transparent(), "png", uniform(WHITE, 0)),
    "animated-gif": (animated_gif(), "gif", uniform(RED, 0)),
    "exif-rotated": (exif_rotated(), "jpg",
                     lambda out: close(out[2, 2], RED) and close(out[2, 13], RED) and close(out[13, 2], BLUE)),
}


@pytest.fixture
def corpus_run(curation_repo) -> Path:
    """The corpus as kept rows of reviewed.csv, then the images stage; returns the repository root."""
    folder = curation_repo / "data/raw/images/corpus"
    folder.mkdir(parents=True)
    rows = []
    for name, (data, extension, _) in CORPUS.items():
        (folder / f"{name}.{extension}").write_bytes(data)
        rows.append({"lot_key": name, "artist_key": "a", "artist": "Artist", "kind": "painting",
                     "image_path": f"corpus/{name}.{extension}"})
    (curation_repo / "data/interim").mkdir(parents=True)
    pd.DataFrame(rows).reindex(columns=list(REVIEWED_COLUMNS), fill_value="").to_csv(
        curation_repo / "data/interim/reviewed.csv", index=False, lineterminator="\n")
    images.main()
    return curation_repo


def test_every_hostile_image_is_converted_correctly_or_skipped_with_its_reason(corpus_run):
    pixels = np.load(corpus_run / "data/final/images.npy")
    labels = pd.read_csv(corpus_run / "data/final/labels.csv", dtype=str)
    summary = json.loads((corpus_run / "data/final/images_summary.json").read_text())
    good = {name for name, (_, _, expect) in CORPUS.items() if callable(expect)}
    assert pixels.shape == (len(good), 16, 16, 3) and pixels.dtype == np.uint8
    assert set(labels["lot_key"]) == good
    for row, name in zip(labels["row"].astype(int), labels["lot_key"]):
        assert CORPUS[name][2](pixels[row]), f"{name}: wrong pixels, e.g. {pixels[row][0, 0]}"
    skipped = {entry["lot_key"]: entry["reason"] for entry in summary["skipped_lots"]}
    assert skipped == {name: expect for name, (_, _, expect) in CORPUS.items() if isinstance(expect, str)}
    assert summary["converted"] == len(good) and summary["skipped_total"] == len(skipped)
    assert sum(summary["skipped"].values()) == len(skipped) and summary["pillow"]
