"""Benchmark: image preparation (decode + resize to S×S) — the project's path against plain Pillow.

    python -m bench.prep [--sides 512,1500] [--count 48] [--size 128] [--no-record]

JPEGs of the demo site's procedural paintings (scraper.demo.artwork, 5:4 landscape, the demo server's JPEG
quality) are written to a temporary folder, with the long side 512 px (the rendition the scraper asks
for) and 1,500 px (a large source). Each is then turned into S×S×3 uint8 pixels by
* `plain Pillow` (the "before"): `Image.open → convert("RGB") → resize((S, S), LANCZOS, box=centre square)`,
  the same geometry as the project's centre crop, one process;
* `project, no draft`: curation.images.convert_file with `draft=False`, one process;
* `project, draft`: convert_file with JPEG draft decoding (libjpeg's DCT scaling), one process;
* `project stage`: curation.images.convert_all, the `images` stage's own function, with params.yaml
  `images` (draft, worker pool) — what `dvc repro` runs.
Rates are images/s, median of several rounds over all files; the last column is the mean absolute
difference (0–255) of the output pixels from plain Pillow's, so a speed-up that changed the images shows.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
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
from scraper.demo import artwork, build_catalogue

ASPECT = 0.8  # height / width of the generated pictures (5:4 landscape)
PLAIN_IMAGE_KIND = "jpeg_rgb"
GOAL_SIDE = 1500
GOAL_SPEEDUP = 3.5  # issue #8: the project's preparation >= 3.5x plain Pillow on 1,500-px JPEGs


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
    pixel_difference: float


def write_jpegs(folder: Path, demo_params: dict, start: str, side: int, count: int) -> list[Path]:
    """`count` JPEGs `side` px wide (5:4) of the demo catalogue's plain RGB paintings; their paths."""
    catalogue = build_catalogue(demo_params, start=start)
    lots = [lot for lot in catalogue.lots.values() if lot.truth.image_kind == PLAIN_IMAGE_KIND][:count]
    if len(lots) < count:
        raise ValueError(f"the demo catalogue has only {len(lots)} plain JPEG lots; ask for --count {len(lots)}")
    paths = []
    for index, lot in enumerate(lots):
        picture = artwork.render_spec(artwork.spec_of(lot), (side, round(side * ASPECT)))
        path = folder / f"{side}px-{index:04d}.jpg"
        path.write_bytes(artwork.jpeg_bytes(picture))
        paths.append(path)
    return paths


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
        Method("project, no draft, 1 process", serial(lambda p: project_file(p, size, method, False))),
        Method("project, draft, 1 process", serial(lambda p: project_file(p, size, method, True))),
        Method(f"project stage (draft={draft}, workers={workers})",
               lambda paths: project_stage(paths, size, method, draft, workers)),
    ]


def measure_side(paths: list[Path], side: int, candidates: list[Method], rounds: int) -> list[Row]:
    """Rates of every method on `paths`, in interleaved rounds (load from other processes hits all alike)."""
    reference = candidates[0].convert(paths)
    differences = {}
    for candidate in candidates:  # also the warm-up: page cache, imports, the pool's first start
        output = candidate.convert(paths)
        differences[candidate.name] = float(np.abs(output.astype(np.int16) - reference.astype(np.int16)).mean())
    plan = {c.name: (lambda c=c: c.convert(paths), len(paths), 0, 1) for c in candidates}
    rates = measure_interleaved(plan, rounds)
    base = rates[candidates[0].name].median
    rows = []
    for candidate in candidates:
        rate = rates[candidate.name]
        rows.append(Row(side, candidate.name, rate.median, rate.best, rate.median / base,
                        differences[candidate.name]))
        print(f"{side}px {candidate.name:45s} {rate.median:7.1f} img/s ×{rate.median / base:.2f}", file=sys.stderr)
    return rows


def report(rows: list[Row], size: int, count: int, rounds: int) -> str:
    table = _record.markdown_table(
        ["source (long side)", "method", "img/s (median)", "img/s (best)", "× plain Pillow",
         "mean abs Δpixel vs plain"],
        [[f"{r.side} px JPEG", r.method, r.rate, r.best, f"{r.speedup:.2f}", f"{r.pixel_difference:.2f}"]
         for r in rows])
    body = (f"{count} JPEGs per source size, 5:4, demo-site paintings; output {size}×{size}×3 "
            f"(centre crop, LANCZOS); median of {rounds} interleaved rounds (methods take turns) over all files.\n\n{table}\n")
    stage_rows = [r for r in rows if r.side == GOAL_SIDE and r.method.startswith("project stage")]
    if stage_rows:
        r = stage_rows[0]
        body += "Goals:\n\n" + _record.goal_line(
            f"prep ≥ {GOAL_SPEEDUP}× plain Pillow on {GOAL_SIDE}-px JPEGs", r.speedup >= GOAL_SPEEDUP,
            f"{r.method}: {r.speedup:.2f}×, {r.rate:.1f} img/s")
    return body


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--sides", default=f"512,{GOAL_SIDE}", help="long sides of the generated JPEGs")
    parser.add_argument("--count", type=int, default=48, help="JPEGs per side")
    parser.add_argument("--size", type=int, default=128, help="output side S (paper 128; params images.size)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, help="worker processes of the stage (default: params images.workers)")
    _record.add_record_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> str:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    params = load_params(path=args.params)
    images_p = params["images"]
    workers = args.workers or int(images_p["workers"])
    candidates = methods(args.size, str(images_p["method"]), bool(images_p["draft"]), workers)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="bench-prep-") as tmp:
        for side in (int(s) for s in args.sides.split(",")):
            folder = Path(tmp) / f"{side}px"
            folder.mkdir()
            print(f"writing {args.count} JPEGs of {side} px ...", file=sys.stderr)
            paths = write_jpegs(folder, params["demo"], str(params["scrape"]["start"]), side, args.count)
            rows += measure_side(paths, side, candidates, args.rounds)
    body = report(rows, args.size, args.count, args.rounds)
    return _record.publish(args, "bench.prep", argv, "Image preparation (bench/prep.py)", body)


if __name__ == "__main__":
    main()
