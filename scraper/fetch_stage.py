"""DVC stage `fetch_images`: download the images of exactly the sampled works.

    python -m scraper.fetch_stage [--params params.yaml] [--sample data/interim/sample.csv]
                                  [--raw-dir data/raw] [--crawls-dir crawls]

Runs the `christies_images` spider on `sample.csv` → files under `data/raw/images/` (kept between runs:
files already there are not fetched again), `data/raw/images.jsonl` (one line per sampled lot, written
atomically on success) and `data/raw/fetch_stats.json` (always). With `scrape.site: demo` a demo site is
started and the image URLs recorded by the scrape stage (another port) are rebased onto it with
`CHRISTIES_IMAGE_BASE_URL`. Exits 1 when the crawl errored (scraper/crawl_check.py).

Images are kept only while they come from the same site: `data/raw/images/BUILD` says "live", or names the
demo params and demo code that drew them. Pictures of another demo build are removed first, so a changed
catalogue or renderer never mixes with stale pictures; images of the live site (or unrecorded ones) are
never removed, only moved aside (`prepare_image_store`).
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import time
from collections import Counter
from contextlib import nullcontext
from pathlib import Path

from common import load_params, write_json
from scraper.crawl_check import image_crawl_errors, read_jsonl_unique
from scraper.spiders.christies_images import read_image_list
from scraper.stage import (
    DEMO_CRAWL_SETTINGS,
    check_contact,
    check_section,
    demo_build_id,
    demo_site,
    read_stats,
    run_scrapy,
    scrapy_command,
    write_jsonl,
)

logger = logging.getLogger("scraper.fetch_stage")

# The params this stage reads (dvc.yaml declares exactly these; tests/test_dvc_params.py).
PARAMS = ("scrape.site", "scrape.start", "scrape.image_width", "scrape.contact", "demo", "fetch.max_lost_fraction")
FETCH_KEYS = ("site", "start", "image_width", "contact")
IMAGES_BUILD_FILE = "BUILD"          # in data/raw/images: "live", or the demo build that drew the pictures
LIVE_BUILD = "live"


def prepare_image_store(images_dir: Path, build: str) -> None:
    """Make `images_dir` hold only images of `build` ("live", or a `demo_build_id`), then record it.

    Images of another demo build are deleted (the demo draws them again). Images of the live site, or of an
    unknown origin (no BUILD file), are never deleted: they move aside to `<images_dir>.set-aside-<time>`.
    """
    marker = images_dir / IMAGES_BUILD_FILE
    previous = marker.read_text().strip() if marker.is_file() else None
    if previous == build:
        return
    entries = [path for path in images_dir.iterdir() if path.name != IMAGES_BUILD_FILE]
    if entries and previous not in (None, LIVE_BUILD):
        logger.info("%d entries in %s are pictures of another demo build: removed", len(entries), images_dir)
        for path in entries:
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    elif entries:
        aside = images_dir.with_name(f"{images_dir.name}.set-aside-{time.strftime('%Y%m%dT%H%M%S')}")
        aside.mkdir()
        for path in entries:
            path.rename(aside / path.name)
        logger.warning("%d entries in %s came from %s, not from this %s crawl: moved to %s", len(entries),
                       images_dir, previous or "an unrecorded crawl", "live" if build == LIVE_BUILD else "demo", aside)
    marker.write_text(build + "\n")


def fetch_images(sample: Path, images_dir: Path, raw_dir: Path, job: Path, settings: dict,
                 max_lost_fraction: float) -> int:
    """Run `christies_images` on `sample` into `job/`, publish `images.jsonl`; return the exit status."""
    shutil.rmtree(job, ignore_errors=True)
    job.mkdir(parents=True)
    order = {item.lot_key: index for index, item in enumerate(read_image_list(sample))}
    requested = len(order)
    feed = job / "images.jsonl.part"
    settings = {
        **settings,
        "FILES_STORE": images_dir,
        "CHRISTIES_FAILURES_FILE": job / "failures.jsonl",
        "CHRISTIES_STATS_FILE": job / "fetch_stats.json",
    }
    return_code = run_scrapy(scrapy_command("christies_images", {"list": str(sample)}, settings, feed, append=False))
    stats = read_stats(job / "fetch_stats.json")
    lines = read_jsonl_unique(feed, "lot_key")
    outcomes = Counter(str(line.get("status")) for line in lines)
    lost = [str(line["lot_key"]) for line in lines if line.get("status") not in ("downloaded", "uptodate")]
    errors = image_crawl_errors(stats, requested, len(lines), lost, max_lost_fraction)
    if return_code != 0:
        errors.insert(0, f"scrapy exited with status {return_code}")
    summary = {**stats, "requested": requested, **{f"status/{k}": v for k, v in sorted(outcomes.items())},
               "ok": not errors, "errors": errors}
    write_json(raw_dir / "fetch_stats.json", summary)
    if errors:
        for error in errors:
            logger.error("image fetch failed: %s", error)
        return 1
    write_jsonl(raw_dir / "images.jsonl", sorted(lines, key=lambda line: order.get(line["lot_key"], len(order))))
    shutil.rmtree(job, ignore_errors=True)
    logger.info("%d lots: %s", requested, dict(outcomes))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--sample", type=Path, default=Path("data/interim/sample.csv"))
    parser.add_argument("--raw-dir", type=Path, default=Path("data/raw"))
    parser.add_argument("--crawls-dir", type=Path, default=Path("crawls"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")

    params = load_params(path=args.params, keys=PARAMS)
    scrape, demo = params["scrape"], params["demo"]
    check_section(scrape, FETCH_KEYS, "scrape", args.params)
    check_contact(scrape, args.params)
    raw_dir = args.raw_dir.resolve()
    images_dir = raw_dir / "images"
    images_dir.mkdir(parents=True, exist_ok=True)
    settings = {"CHRISTIES_IMAGE_WIDTH": int(scrape["image_width"]), "CHRISTIES_CONTACT": scrape["contact"]}
    if scrape["site"] == "demo":
        prepare_image_store(images_dir, demo_build_id(demo, str(scrape["start"])))
        context = demo_site(demo, str(scrape["start"]))
    elif scrape["site"] == "live":
        prepare_image_store(images_dir, LIVE_BUILD)
        context = nullcontext()
    else:
        raise ValueError(f"{args.params}: scrape.site is {scrape['site']!r}; expected 'demo' or 'live'")
    with context as site:
        if site is not None:
            settings.update(DEMO_CRAWL_SETTINGS, CHRISTIES_IMAGE_BASE_URL=site.base_url)
        job = args.crawls_dir.resolve() / "fetch_images"
        return fetch_images(args.sample.resolve(), images_dir, raw_dir, job, settings,
                            float(params["fetch"]["max_lost_fraction"]))


if __name__ == "__main__":
    sys.exit(main())
