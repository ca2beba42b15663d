"""Stage `images`: kept works -> data/final/images.npy (N x S x S x 3 uint8 RGB) and labels.csv.

Rows are ordered by artist then lot_key; `artist_id` numbers the artists 0..A-1 in sorted name order.
A file that cannot be decoded is skipped with its reason (logged, counted in images_summary.json); the
stage fails only when no image survives. Decoding and resizing: curation/imaging.py (LANCZOS).

Speed (issue #8, docs/BENCHMARKS.md "Image preparation"): JPEGs much larger than the target are decoded by
libjpeg at a reduced DCT scale (`images.draft`), and files are converted by `images.workers` threads. Threads,
not processes: Pillow releases the GIL while it decodes, converts and resamples, which is nearly all of the
time per image, so threads keep every core busy without a process pool's start-up, the pickling of every
result array back to the parent, or a second copy of the interpreter's memory.
"""

from __future__ import annotations

import functools
import logging
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import PIL

from common import atomic_path, load_params, progress, safe_join, write_json
from curation import imaging

log = logging.getLogger("curation.images")

# The params this stage reads (dvc.yaml declares exactly these; tests/test_dvc_params.py).
PARAMS = ("images",)
REVIEWED_CSV = Path("data/interim/reviewed.csv")
IMAGES_DIR = Path("data/raw/images")
IMAGES_NPY = Path("data/final/images.npy")
LABELS_CSV = Path("data/final/labels.csv")
SUMMARY_JSON = Path("data/final/images_summary.json")
IN_FLIGHT_PER_WORKER = 4  # queued conversions per thread: keeps every thread fed, bounds memory to a few images
DRAFT_FACTOR = 2  # JPEG draft decodes to at least 2S per side, so the final LANCZOS step still downsamples


@dataclass(frozen=True)
class Converted:
    """One file's outcome: `pixels` (S x S x 3 uint8) or a `reason` it was skipped."""

    pixels: np.ndarray | None
    source_mode: str = ""
    reason: str = ""
    detail: str = ""
    drafted: bool = False


def convert_file(image_path: str, images_dir: Path, size: int, method: str, draft: bool) -> Converted:
    """Decode, orient, convert and resize one image. Never raises for a bad file: returns the reason instead."""
    if not image_path:
        return Converted(None, reason="no image_path")
    try:
        path = safe_join(images_dir, image_path)
    except ValueError as exc:
        return Converted(None, reason="unsafe path", detail=str(exc))
    try:
        decoded = imaging.decode_rgb(path, draft_box=DRAFT_FACTOR * size if draft else None)
        resized = imaging.resize_method(method)(decoded.image, size)
    except imaging.ImageRejected as exc:
        return Converted(None, reason=exc.reason, detail=exc.detail)
    except Exception as exc:  # noqa: BLE001 - one odd file (a Pillow plugin bug) must not stop the run
        return Converted(None, reason="unreadable", detail=f"{type(exc).__name__}: {exc}")
    pixels = np.asarray(resized if resized.mode == "RGB" else resized.convert("RGB"), dtype=np.uint8)
    assert pixels.shape == (size, size, 3), pixels.shape
    return Converted(pixels, decoded.source_mode, drafted=decoded.drafted)


def _map(function: Callable[[str], Converted], items: list[str], workers: int) -> Iterator[Converted]:
    """Ordered map over `items`, across `workers` threads when `workers` > 1.

    At most `IN_FLIGHT_PER_WORKER * workers` conversions are queued or finished-but-unread at any time, so
    memory stays a few images whatever the number of files. If the consumer stops early, queued work is
    cancelled and running work finishes before this returns.
    """
    if workers <= 1:
        yield from map(function, items)
        return
    window = IN_FLIGHT_PER_WORKER * workers
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="images")
    pending: deque[Future[Converted]] = deque()
    try:
        for item in items:
            pending.append(pool.submit(function, item))
            if len(pending) >= window:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def ordered_rows(reviewed: pd.DataFrame) -> pd.DataFrame:
    """Rows by artist then lot_key (the order of images.npy)."""
    return reviewed.sort_values(["artist", "lot_key"], kind="stable").reset_index(drop=True)


def convert_all(rows: pd.DataFrame, images_dir: Path, size: int, method: str, draft: bool, workers: int) -> tuple[np.ndarray, pd.DataFrame, dict]:
    """(images array, the surviving rows, summary counts).

    Raises:
        RuntimeError: no image could be converted.
    """
    imaging.resize_method(method)  # fail on a bad method name before starting the threads
    convert = functools.partial(convert_file, images_dir=images_dir, size=size, method=method, draft=draft)
    images = np.empty((len(rows), size, size, 3), dtype=np.uint8)
    kept: list[int] = []
    skipped: Counter[str] = Counter()
    modes: Counter[str] = Counter()
    skipped_lots, drafted = [], 0
    results: Iterable[Converted] = _map(convert, rows["image_path"].tolist(), workers)
    for index, result in enumerate(progress(results, desc="images: convert", total=len(rows), unit="img")):
        lot_key = rows.at[index, "lot_key"]
        if result.pixels is None:
            log.warning("skipped %s (%s): %s %s", lot_key, rows.at[index, "image_path"], result.reason, result.detail)
            skipped[result.reason] += 1
            skipped_lots.append({"lot_key": lot_key, "reason": result.reason, "detail": result.detail})
            continue
        images[len(kept)] = result.pixels
        kept.append(index)
        modes[result.source_mode] += 1
        drafted += result.drafted
    if not kept:
        raise RuntimeError(f"{REVIEWED_CSV}: none of the {len(rows)} kept rows gave a usable image (skipped: {dict(skipped)})")
    summary = {
        "converted": len(kept), "skipped": dict(sorted(skipped.items())), "skipped_total": sum(skipped.values()),
        "modes": dict(sorted(modes.items())), "jpeg_draft_used": drafted, "size": size, "method": method,
        "resample": imaging.RESAMPLE_NAME, "pillow": PIL.__version__, "skipped_lots": skipped_lots,
    }
    return images[: len(kept)], rows.iloc[kept].reset_index(drop=True), summary


def label_table(rows: pd.DataFrame) -> pd.DataFrame:
    """row, lot_key, artist, artist_id, kind; artist_id 0..A-1 in sorted artist-name order."""
    artist_ids = {artist: i for i, artist in enumerate(sorted(rows["artist"].unique()))}
    return pd.DataFrame(
        {
            "row": range(len(rows)),
            "lot_key": rows["lot_key"],
            "artist": rows["artist"],
            "artist_id": rows["artist"].map(artist_ids),
            "kind": rows["kind"],
        }
    )


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    params = load_params(keys=PARAMS)["images"]
    size, method, draft, workers = int(params["size"]), str(params["method"]), bool(params["draft"]), int(params["workers"])
    rows = ordered_rows(pd.read_csv(REVIEWED_CSV, dtype=str, keep_default_na=False))
    if rows.empty:
        raise RuntimeError(f"{REVIEWED_CSV}: no kept rows (every decision in data/review/manifest.csv is drop?)")
    images, survivors, summary = convert_all(rows, IMAGES_DIR, size, method, draft, workers)
    with atomic_path(IMAGES_NPY) as tmp, tmp.open("wb") as fh:
        np.save(fh, images)  # a file object: np.save would append ".npy" to the temporary name
    with atomic_path(LABELS_CSV) as tmp:
        label_table(survivors).to_csv(tmp, index=False, lineterminator="\n")
    write_json(SUMMARY_JSON, summary)
    log.info("%d images %s -> %s (skipped %s)", len(images), images.shape[1:], IMAGES_NPY, summary["skipped"] or "none")


if __name__ == "__main__":
    main()
