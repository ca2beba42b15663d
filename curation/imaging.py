"""Decoding scraped images defensively into RGB, and the two resize policies.

Guards (docs/CURATION.md, reference pitfalls §2): a format allowlist on every open; Pillow's pixel limit
enforced (an image over MAX_IMAGE_PIXELS is rejected, where Pillow only warns up to twice that); truncated
files are errors (LOAD_TRUNCATED_IMAGES is never set); EXIF orientation applied once, in place; CMYK through
its ICC profile when it has one; 16-bit and float greyscale scaled, not clipped; transparency composited on
white; animated images give their first frame. Safe to call from several threads at once (no process-wide
state such as warnings filters is touched).
Resampling is LANCZOS throughout (the best Pillow filter for downscaling; BICUBIC is resize()'s default).
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

log = logging.getLogger("curation.imaging")

ALLOWED_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "TIFF")
RESAMPLE = Image.Resampling.LANCZOS
RESAMPLE_NAME = "LANCZOS"
WHITE = (255, 255, 255)
HIGH_DEPTH_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")
ALPHA_MODES = ("RGBA", "LA", "PA", "La", "RGBa")
UINT16_TO_UINT8 = 257.0  # 65535 / 255: maps 16-bit full scale exactly onto 8-bit full scale
# libjpeg's 1/8 scale keeps only each 8x8 block's DC term, a box filter that aliases fine texture: on the demo
# paintings, 1500 px -> 64 px, mean abs error 1.4/255 (worst 4.4) from the exact path at 1/8, 0.2 at 1/4.
MAX_DRAFT_REDUCTION = 4


class ImageRejected(Exception):
    """An image file that cannot be used; `reason` is a short category for counting, `detail` the specifics."""

    def __init__(self, reason: str, detail: str = ""):
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}" if detail else reason)


@dataclass
class Decoded:
    image: Image.Image  # RGB, orientation applied
    source_mode: str
    source_format: str
    source_size: tuple[int, int]  # (width, height) as stored, before any draft reduction
    n_frames: int = 1
    drafted: bool = False
    notes: list[str] = field(default_factory=list)


def _open_checked(path: Path) -> Image.Image:
    """Image.open with the allowlist and the bomb check as an error, mapping failures to ImageRejected."""
    try:
        if path.stat().st_size == 0:
            raise ImageRejected("empty file", str(path))
    except FileNotFoundError as exc:
        raise ImageRejected("missing file", str(path)) from exc
    try:
        im = Image.open(path, formats=list(ALLOWED_FORMATS))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageRejected("decompression bomb", str(exc)) from exc
    except UnidentifiedImageError as exc:
        raise ImageRejected("not an image", f"{path.name} is not a {'/'.join(ALLOWED_FORMATS)} image") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise _decode_failure(exc) from exc
    try:
        check_pixel_budget(im.size)
    except ImageRejected:
        im.close()
        raise
    return im


def check_pixel_budget(size: tuple[int, int]) -> None:
    """Reject an image of more than Pillow's MAX_IMAGE_PIXELS, where Pillow itself only warns (up to 2x).

    An explicit check, not `warnings.simplefilter("error", DecompressionBombWarning)` around the decode: the
    warnings filter list is process-wide, and `catch_warnings` blocks entered and left by several decoding
    threads restore each other's filters, so a bomb could slip through as a mere warning.
    """
    limit = Image.MAX_IMAGE_PIXELS
    pixels = max(1, size[0]) * max(1, size[1])
    if limit is not None and pixels > limit:
        raise ImageRejected("decompression bomb", f"{size[0]}x{size[1]} = {pixels} pixels, over the limit of {limit}")


def _decode_failure(exc: BaseException) -> ImageRejected:
    """'truncated' when the data ends early (Pillow says so in the message), else 'unreadable'."""
    reason = "truncated" if "truncated" in str(exc).lower() else "unreadable"
    return ImageRejected(reason, f"{type(exc).__name__}: {exc}")


def decode_rgb(path: str | Path, draft_box: int | None = None) -> Decoded:
    """Fully decode `path` into an RGB image.

    `draft_box`: for JPEGs whose shorter side is at least twice this, let libjpeg decode at a reduced DCT
    scale (1/2 or 1/4, see `draft_request`) that still keeps both sides >= draft_box. None disables drafting.

    Raises:
        ImageRejected: missing/empty file, not an allowed image format, decompression bomb, truncated or
            otherwise undecodable data, or a mode that cannot be turned into RGB.
    """
    path = Path(path)
    with _open_checked(path) as im:
        decoded = Decoded(im, im.mode, im.format or "", im.size, int(getattr(im, "n_frames", 1)))
        if decoded.n_frames > 1:
            im.seek(0)
            decoded.notes.append(f"animated ({decoded.n_frames} frames), first frame used")
        if draft_box and im.format == "JPEG" and min(im.size) >= 2 * draft_box:
            decoded.drafted = im.draft("RGB", draft_request(im.size, draft_box)) is not None
        try:
            im.load()
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise ImageRejected("decompression bomb", str(exc)) from exc
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            raise _decode_failure(exc) from exc
        check_pixel_budget(im.size)  # the loaded frame (a GIF frame can be larger than the header said)
        icc = im.info.get("icc_profile")
        _apply_orientation(im, decoded.notes)
        # The context only closes the file: the loaded pixels stay usable (Pillow's "Image lifecycle" docs).
        decoded.image = to_rgb(im, icc, decoded.notes)
    return decoded


def draft_request(size: tuple[int, int], draft_box: int) -> tuple[int, int]:
    """The size to ask `Image.draft` for: both sides >= `draft_box`, reduction at most MAX_DRAFT_REDUCTION.

    Pillow reduces by the largest s in (8, 4, 2, 1) with s <= min(width // w, height // h); asking for more
    than 1/(2 * MAX_DRAFT_REDUCTION) of each side keeps both quotients, hence s, below the next step.
    """
    width, height = size
    next_step = 2 * MAX_DRAFT_REDUCTION
    return max(draft_box, width // next_step + 1), max(draft_box, height // next_step + 1)


def _apply_orientation(im: Image.Image, notes: list[str]) -> None:
    """Apply the EXIF orientation to the loaded `im` in place (no copy of an image that needs no turn)."""
    try:
        ImageOps.exif_transpose(im, in_place=True)
    except Exception as exc:  # noqa: BLE001 - a corrupt EXIF block must not lose an otherwise good image
        notes.append(f"EXIF orientation ignored ({type(exc).__name__})")


def to_rgb(im: Image.Image, icc_profile: bytes | None = None, notes: list[str] | None = None) -> Image.Image:
    """Convert any supported mode to RGB without clipping, colour-managing or dropping transparency badly."""
    notes = notes if notes is not None else []
    mode = im.mode
    if mode == "RGB":
        return im
    if mode == "CMYK":
        return _cmyk_to_rgb(im, icc_profile, notes)
    if mode in HIGH_DEPTH_MODES:
        return Image.fromarray(scale_to_uint8(np.asarray(im), mode), "L").convert("RGB")
    if mode in ALPHA_MODES or (mode == "P" and ("transparency" in im.info or im.palette.mode == "RGBA")):
        return composite_on_white(im)
    try:
        return im.convert("RGB")
    except ValueError as exc:
        raise ImageRejected("unsupported mode", mode) from exc


def scale_to_uint8(values: np.ndarray, mode: str) -> np.ndarray:
    """Greyscale of more than 8 bits -> uint8.

    16-bit (`I;16*`, and `I` whose values fit 0..65535): divide by 257, so full scale maps to full scale.
    Float (`F`) in 0..1: times 255. Anything else: stretched from its minimum to its maximum.
    """
    values = values.astype(np.float64)
    low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
    if mode.startswith("I;16") or (mode == "I" and low >= 0 and high <= 65535):
        scaled = values / UINT16_TO_UINT8
    elif mode == "F" and low >= 0 and high <= 1:
        scaled = values * 255.0
    else:
        scaled = (values - low) * (255.0 / (high - low)) if high > low else np.zeros_like(values)
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def composite_on_white(im: Image.Image) -> Image.Image:
    """Paint transparent pixels white (what a catalogue page shows), then drop alpha."""
    rgba = im.convert("RGBA")
    background = Image.new("RGBA", rgba.size, (*WHITE, 255))
    return Image.alpha_composite(background, rgba).convert("RGB")


def _cmyk_to_rgb(im: Image.Image, icc_profile: bytes | None, notes: list[str]) -> Image.Image:
    if icc_profile:
        try:
            source = ImageCms.ImageCmsProfile(io.BytesIO(icc_profile))
            converted = ImageCms.profileToProfile(im, source, ImageCms.createProfile("sRGB"), outputMode="RGB")
            notes.append("CMYK converted with its ICC profile")
            return converted
        except (ImageCms.PyCMSError, OSError, ValueError) as exc:
            notes.append(f"CMYK ICC profile unusable ({exc}); plain conversion")
    return im.convert("RGB")


def resize_centre_crop(im: Image.Image, size: int) -> Image.Image:
    """The paper's policy: shortest side to `size`, then the centre `size` x `size` square.

    Done in one resampling step from the central square of the source (resize's `box`), which is the same
    geometry and avoids first enlarging an extreme panorama to tens of thousands of pixels.
    """
    width, height = im.size
    side = min(width, height)
    left, top = (width - side) / 2, (height - side) / 2
    return im.resize((size, size), RESAMPLE, box=(left, top, left + side, top + side))


def resize_pad(im: Image.Image, size: int) -> Image.Image:
    """Fit the whole image inside `size` x `size`, centred on white."""
    width, height = im.size
    scale = size / max(width, height)
    fitted = im.resize((max(1, round(width * scale)), max(1, round(height * scale))), RESAMPLE)
    canvas = Image.new("RGB", (size, size), WHITE)
    canvas.paste(fitted, ((size - fitted.width) // 2, (size - fitted.height) // 2))
    return canvas


RESIZE_METHODS: dict[str, Callable[[Image.Image, int], Image.Image]] = {
    "shortest-side-then-centre-crop": resize_centre_crop,
    "pad": resize_pad,
}


def resize_method(name: str) -> Callable[[Image.Image, int], Image.Image]:
    """The resize function for params `images.method`.

    Raises:
        ValueError: an unknown method name (the message lists the known ones).
    """
    if name not in RESIZE_METHODS:
        raise ValueError(f"params.yaml images.method: unknown {name!r} (one of: {', '.join(RESIZE_METHODS)})")
    return RESIZE_METHODS[name]


def make_thumbnail(im: Image.Image, size: int) -> Image.Image:
    """An RGB copy that fits in `size` x `size`, aspect kept."""
    thumb = im.copy()
    thumb.thumbnail((size, size), RESAMPLE)
    return thumb
