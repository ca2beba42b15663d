"""Decoding odd and hostile image files, the resize policies, and the images stage end to end."""

import io
import json
import struct
import warnings
import zlib

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from curation import images, imaging
from tests.curation.conftest import jpeg_bytes, pattern_image, write_params

RED, BLUE, WHITE = (255, 0, 0), (0, 0, 255), (255, 255, 255)


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def bomb_png(width: int, height: int) -> bytes:
    """A hand-built 1-bit greyscale PNG header claiming huge dimensions (a few hundred bytes on disk)."""
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + png_chunk(b"IEND", b"")


def saved(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def write(tmp_path, name: str, data: bytes):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def colour_at(im: Image.Image, xy) -> tuple:
    return tuple(int(v) for v in im.getpixel(xy))


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")  # Pillow's own, for bomb_warning.png
@pytest.mark.parametrize(
    ("name", "data", "reason"),
    [
        ("empty.jpg", b"", "empty file"),
        ("page.jpg", b"<!DOCTYPE html><html><body>Access denied</body></html>", "not an image"),
        ("truncated.jpg", jpeg_bytes(pattern_image(200, 150))[:1500], "truncated"),
        ("bomb.png", bomb_png(20_000, 20_000), "decompression bomb"),  # above 2x MAX_IMAGE_PIXELS: an error
        ("bomb_warning.png", bomb_png(10_000, 10_000), "decompression bomb"),  # above 1x: a warning, made an error
        ("image.bmp", saved(pattern_image(8, 8), "BMP"), "not an image"),  # outside the format allowlist
    ],
)
def test_bad_files_are_rejected_with_a_reason(tmp_path, name, data, reason):
    with pytest.raises(imaging.ImageRejected) as error:
        imaging.decode_rgb(write(tmp_path, name, data))
    assert error.value.reason == reason


def test_missing_file(tmp_path):
    with pytest.raises(imaging.ImageRejected, match="missing file"):
        imaging.decode_rgb(tmp_path / "nope.jpg")


def test_cmyk_jpeg_becomes_rgb(tmp_path):
    cmyk = Image.new("CMYK", (20, 20), (0, 255, 255, 0))
    decoded = imaging.decode_rgb(write(tmp_path, "c.jpg", saved(cmyk, "JPEG", quality=95)))
    assert decoded.source_mode == "CMYK" and decoded.image.mode == "RGB"
    r, g, b = colour_at(decoded.image, (10, 10))
    assert r > 230 and g < 25 and b < 25
    with_bad_profile = imaging.decode_rgb(write(tmp_path, "c2.jpg", saved(cmyk, "JPEG", quality=95, icc_profile=b"not a profile")))
    assert any("ICC profile unusable" in note for note in with_bad_profile.notes)
    assert colour_at(with_bad_profile.image, (10, 10))[0] > 230


def test_16_bit_greyscale_is_scaled_not_clipped(tmp_path):
    values = np.array([[0, 32896, 65535]] * 3, dtype=np.uint16)
    source = Image.fromarray(values)
    assert source.mode.startswith("I;16")
    decoded = imaging.decode_rgb(write(tmp_path, "g16.png", saved(source, "PNG")))
    assert [colour_at(decoded.image, (x, 1)) for x in range(3)] == [(0, 0, 0), (128, 128, 128), (255, 255, 255)]


def test_float_and_int_modes_are_scaled():
    assert imaging.to_rgb(Image.fromarray(np.full((2, 2), 0.5, dtype=np.float32))).getpixel((0, 0)) == (128, 128, 128)
    assert imaging.to_rgb(Image.fromarray(np.full((2, 2), 65535, dtype=np.int32))).getpixel((0, 0)) == WHITE


def test_palette_with_transparency_is_composited_on_white(tmp_path):
    im = Image.new("P", (20, 10), 0)
    im.putpalette([255, 0, 0, 0, 0, 255] + [0] * (254 * 3))
    im.paste(1, (10, 0, 20, 10))
    decoded = imaging.decode_rgb(write(tmp_path, "p.png", saved(im, "PNG", transparency=0)))
    assert colour_at(decoded.image, (2, 5)) == WHITE and colour_at(decoded.image, (15, 5)) == BLUE


def test_transparent_rgba_shows_white_not_its_hidden_colour(tmp_path):
    rgba = Image.new("RGBA", (10, 10), (255, 0, 0, 0))
    decoded = imaging.decode_rgb(write(tmp_path, "a.png", saved(rgba, "PNG")))
    assert colour_at(decoded.image, (5, 5)) == WHITE
    la = imaging.decode_rgb(write(tmp_path, "la.png", saved(Image.new("LA", (4, 4), (0, 255)), "PNG")))
    assert colour_at(la.image, (1, 1)) == (0, 0, 0)


def test_animated_gif_gives_its_first_frame(tmp_path):
    frames = [Image.new("RGB", (12, 12), RED), Image.new("RGB", (12, 12), BLUE)]
    data = saved(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100)
    decoded = imaging.decode_rgb(write(tmp_path, "anim.gif", data))
    assert decoded.n_frames == 2
    r, g, b = colour_at(decoded.image, (6, 6))
    assert r > 200 and b < 50


def test_exif_orientation_is_applied(tmp_path):
    im = Image.new("RGB", (40, 20), BLUE)
    im.paste(RED, (0, 0, 20, 20))  # left half red
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    decoded = imaging.decode_rgb(write(tmp_path, "rot.jpg", saved(im, "JPEG", quality=95, exif=exif.tobytes())))
    assert decoded.image.size == (20, 40)
    assert colour_at(decoded.image, (10, 5))[0] > 200  # the left half is now on top
    assert colour_at(decoded.image, (10, 35))[2] > 200


@pytest.mark.parametrize("method", ["shortest-side-then-centre-crop", "pad"])
@pytest.mark.parametrize("size", [(1, 1), (30_000, 20), (20, 300), (64, 48)])
def test_resize_methods_give_square_rgb(method, size):
    out = imaging.resize_method(method)(Image.new("RGB", size, RED), 16)
    assert out.size == (16, 16) and out.mode == "RGB"


def test_centre_crop_and_pad_geometry():
    im = Image.new("RGB", (60, 20), BLUE)
    im.paste(RED, (20, 0, 40, 20))  # a red middle third
    cropped = imaging.resize_centre_crop(im, 10)
    assert all(colour_at(cropped, (x, 5))[0] > 200 for x in range(1, 9))  # only the centre square is kept
    padded = imaging.resize_pad(im, 12)
    assert colour_at(padded, (6, 0)) == WHITE and colour_at(padded, (6, 6))[0] > 200  # white bands above and below


def test_unknown_method_is_a_clear_error():
    with pytest.raises(ValueError, match="images.method: unknown 'stretch'"):
        imaging.resize_method("stretch")


def test_jpeg_draft_stays_close_to_the_exact_path(tmp_path):
    gradient = np.linspace(0, 255, 1200, dtype=np.float64)
    smooth = np.stack(np.broadcast_arrays(gradient[None, :], gradient[:900, None], 128.0 + 0 * gradient[None, :]), axis=-1)
    path = write(tmp_path, "big.jpg", jpeg_bytes(Image.fromarray(smooth.astype(np.uint8), "RGB")))
    exact = images.convert_file("big.jpg", tmp_path, 32, "shortest-side-then-centre-crop", draft=False)
    drafted = images.convert_file("big.jpg", tmp_path, 32, "shortest-side-then-centre-crop", draft=True)
    assert drafted.drafted and not exact.drafted and path.exists()
    assert np.abs(exact.pixels.astype(int) - drafted.pixels.astype(int)).mean() < 2.0


def test_convert_file_refuses_paths_outside_the_images_folder(tmp_path):
    assert images.convert_file("../../etc/passwd", tmp_path, 8, "pad", False).reason == "unsafe path"


def make_reviewed(repo, rows):
    (repo / "data/interim").mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows, columns=["lot_key", "artist_key", "artist", "kind", "image_path"]).to_csv(repo / "data/interim/reviewed.csv", index=False)


@pytest.mark.parametrize("workers", [1, 2])
def test_images_stage_converts_skips_and_labels(repo, params, workers):
    folder = repo / "data/raw/images/sale1"
    folder.mkdir(parents=True)
    (folder / "b1.jpg").write_bytes(jpeg_bytes(pattern_image(60, 40, seed=1)))
    (folder / "a2.png").write_bytes(saved(Image.new("RGBA", (30, 30), (0, 0, 255, 255)), "PNG"))
    (folder / "a1.jpg").write_bytes(jpeg_bytes(pattern_image(50, 80, seed=2))[:600])  # truncated
    (folder / "a3.gif").write_bytes(saved(Image.new("P", (20, 20), 3), "GIF"))
    params["images"]["workers"] = workers
    write_params(repo, params)
    make_reviewed(repo, [
        ("www-b-1", "bob", "Bob B", "print", "sale1/b1.jpg"),
        ("www-a-2", "ann", "Ann A", "painting", "sale1/a2.png"),
        ("www-a-1", "ann", "Ann A", "painting", "sale1/a1.jpg"),
        ("www-a-3", "ann", "Ann A", "drawing", "sale1/a3.gif"),
        ("www-a-4", "ann", "Ann A", "painting", "sale1/missing.jpg"),
    ])
    images.main()
    array = np.load(repo / "data/final/images.npy")
    assert array.shape == (3, 16, 16, 3) and array.dtype == np.uint8
    labels = pd.read_csv(repo / "data/final/labels.csv", dtype=str)
    assert labels.columns.tolist() == ["row", "lot_key", "artist", "artist_id", "kind"]
    assert labels["lot_key"].tolist() == ["www-a-2", "www-a-3", "www-b-1"]  # artist, then lot_key
    assert labels["artist_id"].tolist() == ["0", "0", "1"] and labels["row"].tolist() == ["0", "1", "2"]
    assert tuple(array[0, 8, 8]) == BLUE
    summary = json.loads((repo / "data/final/images_summary.json").read_text())
    assert summary["converted"] == 3 and summary["skipped"] == {"missing file": 1, "truncated": 1}
    assert summary["modes"] == {"P": 1, "RGB": 1, "RGBA": 1}


def test_images_stage_fails_clearly_when_nothing_survives(repo):
    make_reviewed(repo, [("www-a-1", "ann", "Ann A", "painting", "nope.jpg")])
    with pytest.raises(RuntimeError, match="none of the 1 kept rows gave a usable image"):
        images.main()
    assert not (repo / "data/final/images.npy").exists()


def test_pixel_limit_is_enforced_without_relying_on_warning_filters(tmp_path, monkeypatch):
    """Between 1x and 2x MAX_IMAGE_PIXELS Pillow only warns; the file must be rejected even where warnings
    are ignored (the filter list is process-wide, so decoding threads cannot safely rely on it)."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    path = write(tmp_path, "big.png", saved(Image.new("RGB", (12, 12), RED), "PNG"))  # 144 px: a warning only
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(imaging.ImageRejected) as error:
            imaging.decode_rgb(path)
    assert error.value.reason == "decompression bomb" and "144 pixels" in error.value.detail
    imaging.decode_rgb(write(tmp_path, "small.png", saved(Image.new("RGB", (10, 10), RED), "PNG")))  # 100 px: fine


def distinct_jpegs(folder, count: int) -> list[str]:
    """`count` JPEGs, each a different flat colour (so a reordering shows), of assorted sizes."""
    names = []
    for index in range(count):
        colour = ((index * 37) % 256, (index * 91) % 256, (index * 53) % 256)
        (folder / f"{index:03d}.jpg").write_bytes(jpeg_bytes(Image.new("RGB", (40 + index, 30 + 2 * index), colour)))
        names.append(f"{index:03d}.jpg")
    return names


@pytest.mark.parametrize("workers", [2, 3])
def test_thread_pool_gives_the_serial_result_in_order(tmp_path, workers):
    names = distinct_jpegs(tmp_path, 3 * images.IN_FLIGHT_PER_WORKER * workers)  # more files than the queue holds
    names[5] = "missing.jpg"
    rows = pd.DataFrame({"lot_key": [f"lot-{i}" for i in range(len(names))], "image_path": names})
    serial, serial_rows, serial_summary = images.convert_all(rows, tmp_path, 8, "pad", True, workers=1)
    threaded, threaded_rows, threaded_summary = images.convert_all(rows, tmp_path, 8, "pad", True, workers=workers)
    assert threaded.shape == (len(names) - 1, 8, 8, 3)
    assert np.array_equal(serial, threaded)
    assert threaded_rows["lot_key"].tolist() == serial_rows["lot_key"].tolist() == [
        f"lot-{i}" for i in range(len(names)) if i != 5]
    assert threaded_summary == serial_summary


def test_thread_pool_rejects_every_oversized_file_among_good_ones(tmp_path, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 40 * 40)
    names = []
    for index in range(24):
        side = 50 if index % 3 == 0 else 30  # 2,500 px: over the limit, under twice it (Pillow only warns)
        (tmp_path / f"{index}.png").write_bytes(saved(Image.new("RGB", (side, side), BLUE), "PNG"))
        names.append(f"{index}.png")
    rows = pd.DataFrame({"lot_key": names, "image_path": names})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        _, kept, summary = images.convert_all(rows, tmp_path, 8, "pad", False, workers=2)
    assert summary["skipped"] == {"decompression bomb": 8}
    assert kept["lot_key"].tolist() == [n for i, n in enumerate(names) if i % 3]


def test_map_stops_submitting_when_the_consumer_stops():
    started = []

    def convert(item: str) -> images.Converted:
        started.append(item)
        return images.Converted(None, reason=item)

    results = images._map(convert, [str(i) for i in range(500)], workers=2)
    first = [next(results).reason for _ in range(3)]
    results.close()  # the consumer gives up (e.g. an exception while storing): queued work is dropped
    assert first == ["0", "1", "2"]
    assert len(started) <= 3 + images.IN_FLIGHT_PER_WORKER * 2


def textured(width: int, height: int) -> Image.Image:
    """Fine oriented texture plus noise: what a box filter aliases and LANCZOS smooths (a painting's brushwork)."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    channels = [127 + 60 * np.sin(x / (7 + 5 * c)) * np.cos(y / (11 + 3 * c)) + 40 * np.sin((x + y) / (23 + c))
                for c in range(3)]
    noise = np.random.default_rng(0).normal(0, 12, (height, width, 3))
    return Image.fromarray(np.clip(np.stack(channels, axis=-1) + noise, 0, 255).astype(np.uint8), "RGB")


@pytest.mark.parametrize("size", [64, 128])
def test_jpeg_draft_of_fine_texture_stays_close_to_the_exact_path(tmp_path, size):
    """1500 -> 64 px could use libjpeg's 1/8 scale (DC terms only, a box filter: mean error 4.6 here); the
    reduction is capped at 1/4, which stays well within 1/255."""
    write(tmp_path, "texture.jpg", jpeg_bytes(textured(1500, 1200)))
    exact = images.convert_file("texture.jpg", tmp_path, size, "shortest-side-then-centre-crop", draft=False)
    drafted = images.convert_file("texture.jpg", tmp_path, size, "shortest-side-then-centre-crop", draft=True)
    assert drafted.drafted
    assert np.abs(exact.pixels.astype(int) - drafted.pixels.astype(int)).mean() < 1.0


@pytest.mark.parametrize("source", [(1500, 1200), (6000, 4000), (1200, 1500), (512, 410), (300, 300)])
@pytest.mark.parametrize("box", [32, 128, 256])
def test_draft_request_keeps_the_target_and_caps_the_reduction(source, box):
    width, height = source
    request = imaging.draft_request(source, box)
    quotient = min(width // request[0], height // request[1])
    reduction = max(s for s in (8, 4, 2, 1) if s <= max(quotient, 1))  # Pillow's choice in JpegImageFile.draft
    assert reduction <= imaging.MAX_DRAFT_REDUCTION
    assert request[0] >= box and request[1] >= box
    if min(source) >= 2 * box:
        assert -(-width // reduction) >= box and -(-height // reduction) >= box and reduction >= 2
