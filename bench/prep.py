"""Benchmark: image preparation (decode + resize to S×S) — the project's path against plain Pillow.

    python -m bench.prep [--sides 512,1500] [--count N] [--size 128] [--workers W] [--no-record]

JPEGs of the demo site's procedural paintings (scraper.demo.artwork, 5:4 landscape, the demo server's JPEG
quality) are written once to a temporary folder, with the long side 512 px (the rendition the scraper asks
for) and 1,500 px (a large source); by default as many per side as the sample has works (params.yaml
`select.n_artists × select.per_artist`, 400), so the stage is timed on the number of files it really gets.
Each file is then turned into S×S×3 uint8 pixels by
* `plain Pillow` (the "before"): `Image.open → convert("RGB") → resize((S, S), LANCZOS, box=centre square)`,
  the same geometry as the project's centre crop, one thread;
* `project, no draft`: curation.images.convert_file with `draft=False`, one thread;
* `project, draft`: convert_file with JPEG draft decoding (libjpeg's DCT scaling), one thread;
* `project, draft, process pool`: convert_file in a `multiprocessing.Pool` of W processes, as the stage
  did before issue #8 (kept to show what the thread pool replaced and why);
* `project stage`: curation.images.convert_all, the `images` stage's own function, with params.yaml
  `images` (draft, `workers` threads) — what `dvc repro` runs.
Rates are images/s, median of several interleaved rounds over all files. `CPU ms/img` is the processor time
(this process and its finished children, all threads) of one untimed pass: on a shared machine, where other
jobs take the cores, it shows how much work each method does even when the threads get no core of their own.
The last column is the mean absolute difference (0–255) of the output pixels from plain Pillow's, so a
speed-up that changed the images shows.

A second table times the `manifest` stage's per-image work (decode, perceptual hash, thumbnail at params
`review.thumb_size`) through curation.manifest.FactsCache: cold (an empty cache: every file decoded) against
warm (a re-run: every file served from the cache by its content hash).
"""

from __future__ import annotations

import argparse
import functools
import multiprocessing
import os
import resource
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from bench import _record
from bench._timing import measure_interleaved
from common import load_params
from curation import imaging
from curation.images import convert_all, convert_file
from curation.manifest import FactsCache
from scraper.demo import artwork, build_catalogue

ASPECT = 0.8  # height / width of the generated pictures (5:4 landscape)
PLAIN_IMAGE_KIND = "jpeg_rgb"
GOAL_SIDE = 1500
GOAL_SPEEDUP = 3.5  # issue #8: the project's preparation >= 3.5x plain Pillow on 1,500-px JPEGs
PROCESS_POOL_CHUNKSIZE = 8  # what the stage's process pool used before issue #8


@dataclass(frozen=True)
class Method:
    name: str
    convert: object  # Callable[[list[Path]], np.ndarray]: files → (N, S, S, 3) uint8


@dataclass(frozen=True)
class Row:
    side: int
    method: str
    rate: float
    best: float
    speedup: float
    cpu_ms: float
    pixel_difference: float


def write_jpegs(folder: Path, demo_params: dict, start: str, side: int, count: int, workers: int = 1) -> list[Path]:
    """`count` JPEGs `side` px wide (5:4) of the demo catalogue's plain RGB paintings, rendered and encoded
    by `workers` threads (numpy and Pillow's encoder release the GIL); their paths, in catalogue order."""
    catalogue = build_catalogue(demo_params, start=start)
    lots = [lot for lot in catalogue.lots.values() if lot.truth.image_kind == PLAIN_IMAGE_KIND][:count]
    if len(lots) < count:
        raise ValueError(f"the demo catalogue has only {len(lots)} plain JPEG lots; ask for --count {len(lots)}")

    def write_one(index: int) -> Path:
        picture = artwork.render_spec(artwork.spec_of(lots[index]), (side, round(side * ASPECT)))
        path = folder / f"{side}px-{index:04d}.jpg"
        path.write_bytes(artwork.jpeg_bytes(picture))
        return path

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        return list(pool.map(write_one, range(count)))


def plain_pillow(path: Path, size: int) -> np.ndarray:
    """What a script without the project's care does: full decode, convert, one LANCZOS resize."""
    with Image.open(path) as im:
        rgb = im.convert("RGB")
    width, height = rgb.size
    side = min(width, height)
    left, top = (width - side) / 2, (height - side) / 2
    return np.asarray(rgb.resize((size, size), imaging.RESAMPLE, box=(left, top, left + side, top + side)))


def project_file(path: Path, size: int, method: str, draft: bool) -> np.ndarray:
    result = convert_file(path.name, path.parent, size, method, draft)
    if result.pixels is None:
        raise RuntimeError(f"{path}: the project's conversion rejected it ({result.reason}: {result.detail})")
    return result.pixels


def _project_pixels(name: str, folder: Path, size: int, method: str, draft: bool) -> np.ndarray:
    """project_file for a process pool (a module-level function, so it pickles)."""
    return project_file(folder / name, size, method, draft)


def process_pool(paths: list[Path], size: int, method: str, draft: bool, workers: int) -> np.ndarray:
    """The stage's parallelism before issue #8: a fresh `multiprocessing.Pool` per call, results pickled back."""
    convert = functools.partial(_project_pixels, folder=paths[0].parent, size=size, method=method, draft=draft)
    with multiprocessing.Pool(workers) as pool:
        return np.stack(pool.map(convert, [p.name for p in paths], chunksize=PROCESS_POOL_CHUNKSIZE))


def project_stage(paths: list[Path], size: int, method: str, draft: bool, workers: int) -> np.ndarray:
    rows = pd.DataFrame({"lot_key": [p.stem for p in paths], "image_path": [p.name for p in paths]})
    images, _, summary = convert_all(rows, paths[0].parent, size, method, draft, workers)
    if summary["skipped_total"]:
        raise RuntimeError(f"the images stage skipped {summary['skipped']}")
    return images


def methods(size: int, method: str, draft: bool, workers: int) -> list[Method]:
    def serial(one) -> object:
        return lambda paths: np.stack([one(path) for path in paths])

    return [
        Method("plain Pillow (before)", serial(lambda p: plain_pillow(p, size))),
        Method("project, no draft, 1 thread", serial(lambda p: project_file(p, size, method, False))),
        Method("project, draft, 1 thread", serial(lambda p: project_file(p, size, method, True))),
        Method(f"project, process pool (draft={draft}, {workers} processes: the stage before #8)",
               lambda paths: process_pool(paths, size, method, draft, workers)),
        Method(f"project stage (draft={draft}, {workers} threads)",
               lambda paths: project_stage(paths, size, method, draft, workers)),
    ]


def cpu_seconds() -> float:
    """Processor time so far of this process and of its reaped children (a process pool's workers)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime  # both finer than os.times()' 10 ms ticks


def converted_with_cpu(candidate: Method, paths: list[Path]) -> tuple[np.ndarray, float]:
    """One pass of `candidate` over `paths`: its output and the CPU milliseconds it used per image."""
    started = cpu_seconds()
    output = candidate.convert(paths)
    return output, (cpu_seconds() - started) * 1000 / len(paths)


def measure_side(paths: list[Path], side: int, candidates: list[Method], rounds: int) -> list[Row]:
    """Rates of every method on `paths`, in interleaved rounds (load from other processes hits all alike)."""
    differences, cpu_ms, reference = {}, {}, None
    for candidate in candidates:  # also the warm-up: page cache, imports, the first thread or process start
        output, cpu_ms[candidate.name] = converted_with_cpu(candidate, paths)
        reference = output.astype(np.int16) if reference is None else reference
        differences[candidate.name] = float(np.abs(output.astype(np.int16) - reference).mean())
    plan = {c.name: (lambda c=c: c.convert(paths), len(paths), 0, 1) for c in candidates}
    rates = measure_interleaved(plan, rounds)
    base = rates[candidates[0].name].median
    rows = []
    for candidate in candidates:
        rate = rates[candidate.name]
        rows.append(Row(side, candidate.name, rate.median, rate.best, rate.median / base, cpu_ms[candidate.name],
                        differences[candidate.name]))
        print(f"{side}px {candidate.name:70s} {rate.median:7.1f} img/s ×{rate.median / base:.2f}", file=sys.stderr)
    return rows


def facts_rates(paths: list[Path], thumb_size: int, folder: Path) -> tuple[float, float, int]:
    """img/s of FactsCache.facts over `paths` with an empty cache, then again with the filled one, and the
    number of decodes in the second pass (0 when every entry was served from the cache)."""
    cache = FactsCache(folder / "facts", thumb_size)
    cache.directory.mkdir()
    rates = []
    for _ in range(2):
        started = time.perf_counter()
        for path in paths:
            cache.facts(path, folder / "thumb.jpg")
        rates.append(len(paths) / (time.perf_counter() - started))
    return rates[0], rates[1], cache.misses - len(paths)


def report(rows: list[Row], size: int, count: int, rounds: int, load_at_start: str) -> str:
    table = _record.markdown_table(
        ["source (long side)", "method", "img/s (median)", "img/s (best)", "× plain Pillow", "CPU ms/img",
         "mean abs Δpixel vs plain"],
        [[f"{r.side} px JPEG", r.method, r.rate, r.best, f"{r.speedup:.2f}", r.cpu_ms, f"{r.pixel_difference:.2f}"]
         for r in rows])
    body = (f"{count} JPEGs per source size, 5:4, demo-site paintings; output {size}×{size}×3 "
            f"(centre crop, LANCZOS); median of {rounds} interleaved rounds (methods take turns) over all files. "
            f"1-min load average when the run started: {load_at_start}.\n\n{table}\n")
    stage_rows = [r for r in rows if r.side == GOAL_SIDE and r.method.startswith("project stage")]
    if stage_rows:
        r = stage_rows[0]
        body += "Goals:\n\n" + _record.goal_line(
            f"prep ≥ {GOAL_SPEEDUP}× plain Pillow on {GOAL_SIDE}-px JPEGs", r.speedup >= GOAL_SPEEDUP,
            f"{r.method}: {r.speedup:.2f}×, {r.rate:.1f} img/s")
    return body


def load_average() -> str:
    """The 1-minute load average, or 'unknown' where the OS has none: a busy shared machine shows here."""
    try:
        return f"{os.getloadavg()[0]:.2f}"
    except OSError:
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--sides", default=f"512,{GOAL_SIDE}", help="long sides of the generated JPEGs")
    parser.add_argument("--count", type=int, help="JPEGs per side (default: the sample's size, params "
                        "select.n_artists x select.per_artist)")
    parser.add_argument("--size", type=int, default=128, help="output side S (paper 128; params images.size)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, help="threads of the stage (default: params images.workers)")
    _record.add_record_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> str:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    params = load_params(path=args.params)
    images_p = params["images"]
    workers = args.workers or int(images_p["workers"])
    count = args.count or int(params["select"]["n_artists"]) * int(params["select"]["per_artist"])
    candidates = methods(args.size, str(images_p["method"]), bool(images_p["draft"]), workers)
    rows: list[Row] = []
    facts_rows: list[list] = []
    thumb_size = int(params["review"]["thumb_size"])
    load_at_start = load_average()
    with tempfile.TemporaryDirectory(prefix="bench-prep-") as tmp:
        for side in (int(s) for s in args.sides.split(",")):
            folder = Path(tmp) / f"{side}px"
            folder.mkdir()
            print(f"writing {count} JPEGs of {side} px ...", file=sys.stderr)
            paths = write_jpegs(folder, params["demo"], str(params["scrape"]["start"]), side, count, workers)
            rows += measure_side(paths, side, candidates, args.rounds)
            cold, warm, decodes = facts_rates(paths, thumb_size, folder)
            facts_rows.append([f"{side} px JPEG, facts", cold, warm, f"{warm / cold:.1f}", decodes])
    body = report(rows, args.size, count, args.rounds, load_at_start)
    body += (f"\nThe manifest stage's image facts (decode, perceptual hash, {thumb_size}-px thumbnail), one pass "
             "each, one thread:\n\n" + _record.markdown_table(
                 ["source (long side)", "cold img/s", "cached img/s", "× cold", "decodes in the cached pass"],
                 facts_rows))
    return _record.publish(args, "bench.prep", argv, "Image preparation (bench/prep.py)", body)


if __name__ == "__main__":
    main()
