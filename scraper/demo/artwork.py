"""Procedural artworks for the demo catalogue: one deterministic picture per lot, one learnable style per artist.

Each artist gets a `Style` from its seed: a palette of a few colours, a texture (stripes, rings, grid, blobs,
brush strokes, noise, waves), a composition (horizon, centred motif, diagonal split, frame, full bleed), a
brightness and a grain. Each work draws its own placement, scale, angle and palette jitter from the lot's
seed, so a clustering model can group works by artist while raw pixels are not trivially separable. A
work's quality (prices.py), which raises its price, shows as brighter mid-tones (`quality_gamma`).
Sketches are sparse line drawings on light paper; sculptures and decoy objects a single object on a plain
background; photographs are grayscale-ish.

Fields are computed on a small grid (at most `FIELD_SIDE` px on the long side) and upsampled, so a 512 px
picture costs a few milliseconds. `encode_image` turns a lot into the bytes the image server sends:
RGB / L / CMYK JPEG, an RGBA PNG, a truncated JPEG, or a decompression bomb.
"""

from __future__ import annotations

import functools
import io
import struct
import zlib
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from PIL import Image, ImageDraw

from scraper.demo.catalogue import (
    IMAGE_BOMB,
    IMAGE_CMYK,
    IMAGE_L,
    IMAGE_RGBA_PNG,
    IMAGE_TRUNCATED,
    Lot,
)
from scraper.demo.prices import work_quality

FIELD_SIDE = 160            # long side of the low-resolution field grid
TEXTURES = ("stripes", "rings", "grid", "blobs", "strokes", "noise", "waves")
COMPOSITIONS = ("horizon", "centre", "diagonal", "frame", "full")
PAPER = np.array([0.95, 0.93, 0.86], dtype=np.float32)
OBJECT_COLOURS = {
    "sculpture": ((0.42, 0.28, 0.14), (0.85, 0.84, 0.80)),   # bronze, marble
    "jewellery": ((0.80, 0.65, 0.20), (0.15, 0.25, 0.65)),
    "furniture": ((0.45, 0.25, 0.10), (0.70, 0.55, 0.25)),
    "wine": ((0.10, 0.25, 0.12), (0.35, 0.05, 0.10)),
}
JPEG_QUALITY = 90
QUALITY_GAMMA = 0.4         # the picture's gamma is exp(-QUALITY_GAMMA * quality): better works are brighter
PALETTE_JITTER = 0.08       # per-work colour noise on the artist's palette
OFF_STYLE_COMPOSITION = 0.2  # share of works that leave the artist's usual composition
TRUNCATE_AT = 0.55          # share of the JPEG bytes kept in the truncated image
HIDDEN_RGB = (255, 0, 255)  # colour under the transparent margin of the RGBA PNG: shows if alpha is dropped
PLACEHOLDER_SIDE = 200
GRAIN_TILE_SIDE = 1024      # renders larger than the tile minus the offset tile it
GRAIN_TILE_STD = 64
GRAIN_TILE_SEED = 20190101
GRAIN_OFFSETS = 256
BOMB_SIDE = 13_400          # 13,400^2 = 179.6 Mpx > 2 x Image.MAX_IMAGE_PIXELS -> DecompressionBombError


@dataclass(frozen=True)
class Style:
    palette: tuple[tuple[float, float, float], ...]
    background: tuple[float, float, float]
    texture: str
    frequency: float      # cycles across the picture
    angle: float          # radians
    composition: str
    brightness: float
    grain: float          # std of the per-pixel noise, 0..1 scale
    tint: tuple[float, float, float]   # photographs: colour of the grayscale-ish tone


@functools.lru_cache(maxsize=256)
def artist_style(style_seed: int) -> Style:
    """The visual signature of one artist."""
    rng = np.random.default_rng(style_seed)
    base_hue = rng.uniform(0, 1)
    n_colours = int(rng.integers(3, 6))
    hues = (base_hue + rng.normal(0, 0.08, n_colours) + rng.choice([0, 0.5], n_colours, p=[0.7, 0.3])) % 1.0
    sats = rng.uniform(0.35, 0.95, n_colours)
    vals = rng.uniform(0.3, 1.0, n_colours)
    palette = tuple(tuple(float(c) for c in hsv_to_rgb(h, s, v)) for h, s, v in zip(hues, sats, vals))
    background = tuple(float(c) for c in hsv_to_rgb((base_hue + 0.5) % 1, rng.uniform(0, 0.3), rng.uniform(0.1, 0.95)))
    return Style(
        palette=palette, background=background,
        texture=TEXTURES[int(rng.integers(len(TEXTURES)))],
        frequency=float(rng.uniform(2.0, 9.0)), angle=float(rng.uniform(0, np.pi)),
        composition=COMPOSITIONS[int(rng.integers(len(COMPOSITIONS)))],
        brightness=float(rng.uniform(0.7, 1.15)), grain=float(rng.uniform(0.01, 0.07)),
        tint=(1.0, float(rng.uniform(0.9, 1.0)), float(rng.uniform(0.75, 1.0))),
    )


def hsv_to_rgb(h: float, s: float, v: float) -> np.ndarray:
    i = int(h * 6) % 6
    f = h * 6 - int(h * 6)
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    return np.array([(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i], dtype=np.float32)


class RenderSpec(NamedTuple):
    """Everything that decides a lot's picture; hashable so renders can be cached (repeated prints share it)."""

    render_seed: int
    style_seed: int | None
    kind: str
    is_sketch: bool
    decoy_type: str | None
    source_size: tuple[int, int]


def spec_of(lot: Lot) -> RenderSpec:
    return RenderSpec(lot.render_seed, lot.style_seed, lot.truth.kind, lot.truth.is_sketch, lot.decoy_type,
                      lot.image_size)


def target_size(source: tuple[int, int], width: int | None = None, height: int | None = None,
                max_side: int | None = None) -> tuple[int, int]:
    """Size of a rendition: width W (or height H) with the source's aspect; the source size without either.

    Never larger than `max_side` on either side (the aspect is kept).
    """
    sw, sh = source
    if width:
        size = (width, max(1, round(width * sh / sw)))
    elif height:
        size = (max(1, round(height * sw / sh)), height)
    else:
        size = (sw, sh)
    if max_side and max(size) > max_side:
        scale = max_side / max(size)
        size = (max(1, round(size[0] * scale)), max(1, round(size[1] * scale)))
    return size


def render(lot: Lot, width: int) -> Image.Image:
    """The lot's picture as an RGB image `width` px wide, with the source aspect. Deterministic per lot."""
    spec = spec_of(lot)
    return render_spec(spec, target_size(spec.source_size, width=width)).copy()


@functools.lru_cache(maxsize=16)   # a 2048 px render is ~12 MB: keep few
def render_spec(spec: RenderSpec, size: tuple[int, int]) -> Image.Image:
    rng = np.random.default_rng(spec.render_seed)
    if spec.decoy_type or spec.kind == "sculpture":
        return render_object(rng, size, spec.decoy_type or "sculpture")
    style = artist_style(spec.style_seed)
    gamma = quality_gamma(spec.render_seed)
    if spec.is_sketch:
        return render_sketch(style, rng, size, gamma)
    picture = render_painting(style, rng, size, flat=spec.kind == "print", gamma=gamma)
    if spec.kind == "photograph":
        picture = photographic(picture, style)
    return picture


# ---------------------------------------------------------------- fields on a small grid


def field_grid(size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates of the low-res grid: x in [0, 1] across, y in [0, h/w] down. Shapes (gh, gw)."""
    w, h = size
    scale = FIELD_SIDE / max(w, h)
    gw, gh = max(4, round(w * scale)), max(4, round(h * scale))
    y, x = np.mgrid[0:gh, 0:gw].astype(np.float32)
    return x / (gw - 1), y / (gw - 1)


def texture_field(style: Style, rng: np.random.Generator, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """A scalar field in [0, 1] with the artist's texture; per-work frequency, angle, phase and centres."""
    freq = style.frequency * rng.uniform(0.7, 1.4)
    angle = style.angle + rng.normal(0, 0.25)
    phase = rng.uniform(0, 2 * np.pi)
    u = x * np.cos(angle) + y * np.sin(angle)
    v = -x * np.sin(angle) + y * np.cos(angle)
    if style.texture == "stripes":
        f = np.sin(2 * np.pi * freq * u + phase)
    elif style.texture == "rings":
        cx, cy = rng.uniform(0.2, 0.8), rng.uniform(0.2, 0.8) * y.max()
        f = np.sin(2 * np.pi * freq * np.hypot(x - cx, y - cy) + phase)
    elif style.texture == "grid":
        f = np.sin(2 * np.pi * freq * u + phase) * np.sin(2 * np.pi * freq * v + rng.uniform(0, 6))
    elif style.texture == "waves":
        f = np.sin(2 * np.pi * freq * u + 1.5 * np.sin(2 * np.pi * freq / 3 * v) + phase)
    elif style.texture == "blobs":
        f = blob_sum(rng, x, y, count=int(rng.integers(4, 9)), radius=0.6 / freq ** 0.5)
    else:   # noise, and the base under strokes
        f = smooth_noise(rng, x.shape, cells=max(2, int(freq)))
    f = f + rng.normal(0, 0.15, f.shape).astype(np.float32) * 0.5
    return normalise(f)


def blob_sum(rng: np.random.Generator, x: np.ndarray, y: np.ndarray, count: int, radius: float) -> np.ndarray:
    f = np.zeros_like(x)
    for _ in range(count):
        cx, cy, r = rng.uniform(0, 1), rng.uniform(0, y.max() + 1e-6), radius * rng.uniform(0.5, 1.5)
        f += rng.choice([-1.0, 1.0]) * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * r * r))
    return f


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int], cells: int) -> np.ndarray:
    coarse = rng.uniform(0, 1, (cells + 1, cells + 1)).astype(np.float32)
    image = Image.fromarray(coarse, mode="F").resize((shape[1], shape[0]), Image.Resampling.BICUBIC)
    return np.asarray(image, dtype=np.float32)


def normalise(f: np.ndarray) -> np.ndarray:
    lo, hi = float(f.min()), float(f.max())
    return (f - lo) / (hi - lo + 1e-6)


def composition_mask(style: Style, rng: np.random.Generator, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """1 where the texture shows, 0 where the background shows (soft edges)."""
    ymax = float(y.max()) + 1e-6
    composition = style.composition
    if rng.random() < OFF_STYLE_COMPOSITION:
        composition = COMPOSITIONS[int(rng.integers(len(COMPOSITIONS)))]
    if composition == "horizon":
        mask = y > rng.uniform(0.3, 0.7) * ymax
    elif composition == "centre":
        cx, cy, r = rng.uniform(0.35, 0.65), rng.uniform(0.35, 0.65) * ymax, rng.uniform(0.2, 0.4)
        mask = np.hypot(x - cx, y - cy) < r
    elif composition == "diagonal":
        mask = (x - rng.uniform(0.3, 0.7)) * rng.choice([-1, 1]) + (y / ymax - 0.5) > 0
    elif composition == "frame":
        m = rng.uniform(0.06, 0.15)
        mask = (x > m) & (x < 1 - m) & (y > m * ymax) & (y < ymax * (1 - m))
    else:
        return np.ones_like(x)
    return mask.astype(np.float32)


def colourise(style: Style, rng: np.random.Generator, f: np.ndarray, flat: bool) -> np.ndarray:
    """Map the field onto the artist's palette (jittered per work). Shape (gh, gw) -> (gh, gw, 3)."""
    palette = np.array(style.palette, dtype=np.float32) + rng.normal(0, PALETTE_JITTER, (len(style.palette), 3))
    palette = np.clip(palette[rng.permutation(len(palette))] if rng.random() < 0.25 else palette, 0, 1)
    levels = f * (len(palette) - 1)
    low = np.floor(levels).astype(int)
    high = np.minimum(low + 1, len(palette) - 1)
    mix = np.zeros_like(levels)[..., None] if flat else (levels - low)[..., None]
    return palette[low] * (1 - mix) + palette[high] * mix


def brush_strokes(style: Style, rng: np.random.Generator, grid_size: tuple[int, int], base: np.ndarray) -> np.ndarray:
    """Short thick strokes in palette colours along the artist's angle, over `base` (values 0..1)."""
    canvas = Image.fromarray((base * 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(canvas)
    gw, gh = grid_size
    length = gw * rng.uniform(0.05, 0.12)
    for _ in range(int(rng.integers(60, 140))):
        x0, y0 = rng.uniform(0, gw), rng.uniform(0, gh)
        a = style.angle + rng.normal(0, 0.3)
        colour = np.array(style.palette[int(rng.integers(len(style.palette)))]) + rng.normal(0, 0.05, 3)
        draw.line((x0, y0, x0 + length * np.cos(a), y0 + length * np.sin(a)),
                  fill=tuple(int(c) for c in np.clip(colour, 0, 1) * 255), width=max(1, int(gw / 40)))
    return np.asarray(canvas, dtype=np.float32) / 255


def quality_gamma(render_seed: int) -> float:
    """How the work's price-relevant quality (prices.py) shows: a gamma below 1 for better works, which
    brightens the mid-tones without clipping (values stay in [0, 1])."""
    return float(np.exp(-QUALITY_GAMMA * work_quality(render_seed)))


def render_painting(style: Style, rng: np.random.Generator, size: tuple[int, int], flat: bool,
                    gamma: float) -> Image.Image:
    x, y = field_grid(size)
    colours = colourise(style, rng, texture_field(style, rng, x, y), flat)
    if style.texture == "strokes":
        colours = brush_strokes(style, rng, (x.shape[1], x.shape[0]), colours)
    mask = composition_mask(style, rng, x, y)[..., None]
    background = np.array(style.background, dtype=np.float32) + rng.normal(0, 0.04, 3)
    picture = (colours * mask + background * (1 - mask)) * style.brightness * rng.uniform(0.85, 1.15)
    picture = np.clip(picture, 0, 1) ** gamma
    return upsample(picture, size, grain=0.0 if flat else style.grain, rng=rng)


def render_sketch(style: Style, rng: np.random.Generator, size: tuple[int, int], gamma: float) -> Image.Image:
    """Sparse dark lines (the contours of the artist's field) on light paper."""
    x, y = field_grid(size)
    levels = np.floor(texture_field(style, rng, x, y) * 4)
    edges = (np.diff(levels, axis=0, prepend=levels[:1]) != 0) | (np.diff(levels, axis=1, prepend=levels[:, :1]) != 0)
    lines = edges & (rng.uniform(0, 1, edges.shape) < 0.6)
    ink = np.array([0.25, 0.22, 0.2], dtype=np.float32)
    strength = lines.astype(np.float32)[..., None] * rng.uniform(0.5, 0.9)
    picture = (PAPER * (1 - strength) + ink * strength) ** gamma
    return upsample(picture, size, grain=0.015, rng=rng)


def render_object(rng: np.random.Generator, size: tuple[int, int], object_type: str) -> Image.Image:
    """One rounded object, lit from the upper left, on a plain background (light, or dark behind marble)."""
    x, y = field_grid(size)
    ymax = float(y.max())
    silhouette = np.zeros_like(x)
    for _ in range(3):
        cx, cy = 0.5 + rng.normal(0, 0.06), ymax * (0.5 + rng.normal(0, 0.1))
        rx, ry = rng.uniform(0.12, 0.25), ymax * rng.uniform(0.12, 0.3)
        silhouette += np.exp(-(((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2))
    inside = (silhouette > 0.5).astype(np.float32)[..., None]
    colours = OBJECT_COLOURS[object_type]
    colour = np.array(colours[int(rng.integers(len(colours)))], dtype=np.float32)
    light = (1.3 - 0.6 * x - 0.4 * y / (ymax + 1e-6))[..., None]
    backdrop = rng.uniform(0.8, 0.95) if colour.mean() < 0.5 else rng.uniform(0.1, 0.25)   # contrast with it
    background = np.float32(backdrop) - 0.1 * (y / (ymax + 1e-6))[..., None]
    picture = inside * colour * light + (1 - inside) * background
    return upsample(picture, size, grain=0.01, rng=rng)


def photographic(picture: Image.Image, style: Style) -> Image.Image:
    """Grayscale-ish: the luminance, tinted by the photographer's paper tone."""
    gray = np.asarray(picture.convert("L"), dtype=np.float32)[..., None] / 255
    toned = gray * np.array(style.tint, dtype=np.float32)
    return Image.fromarray((np.clip(toned, 0, 1) * 255).astype(np.uint8), "RGB")


def upsample(picture: np.ndarray, size: tuple[int, int], grain: float, rng: np.random.Generator) -> Image.Image:
    """Low-res float picture (gh, gw, 3) -> RGB image of `size`, with optional full-resolution grain.

    The grain is a window of a fixed noise tile at a per-work offset: drawing fresh normals for every
    pixel would cost more than all the rest of the render.
    """
    small = Image.fromarray((np.clip(picture, 0, 1) * 255).astype(np.uint8), "RGB")
    image = small.resize(size, Image.Resampling.BILINEAR)
    if grain <= 0:
        return image
    width, height = size
    offset_y, offset_x = (int(v) for v in rng.integers(0, GRAIN_OFFSETS, 2))
    noise = grain_window(offset_y, offset_x, height, width)
    strength = round(grain * 255 / GRAIN_TILE_STD * 256)          # fixed point, 8 fractional bits
    pixels = np.asarray(image, dtype=np.int32) + ((noise * strength) >> 8)[..., None]
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")


@functools.lru_cache(maxsize=1)
def grain_tile() -> np.ndarray:
    """A fixed square of Gaussian noise (std GRAIN_TILE_STD), int32, shared by every render."""
    rng = np.random.default_rng(GRAIN_TILE_SEED)
    return rng.normal(0, GRAIN_TILE_STD, (GRAIN_TILE_SIDE, GRAIN_TILE_SIDE)).astype(np.int32)


def grain_window(offset_y: int, offset_x: int, height: int, width: int) -> np.ndarray:
    tile = grain_tile()
    if offset_y + height > tile.shape[0] or offset_x + width > tile.shape[1]:
        reps = (-(-(offset_y + height) // tile.shape[0]), -(-(offset_x + width) // tile.shape[1]))
        tile = np.tile(tile, reps)
    return tile[offset_y:offset_y + height, offset_x:offset_x + width]


# ---------------------------------------------------------------- bytes for the image server


def encode_image(lot: Lot, width: int | None = None, height: int | None = None,
                 max_side: int | None = None) -> tuple[bytes, str]:
    """The bytes and content type the image server sends for this lot and rendition.

    Special images ignore the rendition: the bomb is a fixed PNG, the truncated JPEG is cut from the source size.
    """
    kind = lot.truth.image_kind
    if kind == IMAGE_BOMB:
        return bomb_png(), "image/png"
    spec = spec_of(lot)
    if kind == IMAGE_TRUNCATED:
        full = jpeg_bytes(render_spec(spec, spec.source_size))
        return full[: int(len(full) * TRUNCATE_AT)], "image/jpeg"
    picture = render_spec(spec, target_size(spec.source_size, width, height, max_side))
    if kind == IMAGE_RGBA_PNG:
        return rgba_png_bytes(picture), "image/png"
    mode = {IMAGE_L: "L", IMAGE_CMYK: "CMYK"}.get(kind, "RGB")
    return jpeg_bytes(picture.convert(mode)), "image/jpeg"


def jpeg_bytes(picture: Image.Image) -> bytes:
    out = io.BytesIO()
    picture.save(out, "JPEG", quality=JPEG_QUALITY)
    return out.getvalue()


def rgba_png_bytes(picture: Image.Image) -> bytes:
    """RGBA PNG: opaque picture inside a fully transparent margin whose hidden RGB is magenta."""
    rgba = picture.convert("RGBA")
    w, h = rgba.size
    margin = max(1, min(w, h) // 10)
    pixels = np.array(rgba)
    border = np.ones((h, w), dtype=bool)
    border[margin:h - margin, margin:w - margin] = False
    pixels[border] = (*HIDDEN_RGB, 0)
    out = io.BytesIO()
    Image.fromarray(pixels, "RGBA").save(out, "PNG")
    return out.getvalue()


@functools.lru_cache(maxsize=1)
def placeholder_jpeg() -> bytes:
    """The small grey picture the no-image placeholder URL answers."""
    return jpeg_bytes(Image.new("RGB", (PLACEHOLDER_SIDE, PLACEHOLDER_SIDE), (204, 204, 204)))


@functools.lru_cache(maxsize=1)
def bomb_png(side: int = BOMB_SIDE) -> bytes:
    """A 1-bit grayscale PNG of side x side pixels, written by hand: ~20 KB, no big buffer in memory.

    Pillow refuses it at open with DecompressionBombError (more than 2 x MAX_IMAGE_PIXELS).
    """
    row = b"\x00" * (1 + (side + 7) // 8)            # filter byte + packed bits, all black
    compressor = zlib.compressobj(9)
    rows_per_chunk = 512
    chunks = []
    for start in range(0, side, rows_per_chunk):
        chunks.append(compressor.compress(row * min(rows_per_chunk, side - start)))
    chunks.append(compressor.flush())
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", b"".join(chunks)) + png_chunk(b"IEND", b"")


def png_chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)
