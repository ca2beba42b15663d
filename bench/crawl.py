"""Benchmark: what the scraper costs per lot — requests and bytes on the wire, and CPU to parse.

    python -m bench.crawl [--images 100] [--no-record]

Against the embedded demo site on 127.0.0.1 (params.yaml `demo`, months from `scrape.start`):
1. the record crawl exactly as the `scrape` stage runs it (scraper.scrape_stage.crawl_lots: `christies`
   spider, CHRISTIES_IMAGES=none, lotsearch pages of 84): requests by kind and bytes per lot, from the
   site's own counters (`DemoSite.stats()`), and lots/s of wall time;
2. the images of a seeded sample of N crawled lots exactly as the `fetch_images` stage fetches them
   (scraper.fetch_stage.fetch_images: `christies_images`): requests and bytes per sampled image;
3. parsing alone: the www sales' lotsearch JSON payloads (as the server would send them, serialised
   once) turned into lot records by `json.loads` + scraper.parsing.list_page + lot_record in a loop, no
   network: lots/s of one CPU core.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from bench import _record
from bench._timing import measure_rate
from common import load_params
from scraper import parsing
from scraper.demo import DemoSite, artwork, build_catalogue
from scraper.demo import payloads as demo_payloads
from scraper.fetch_stage import fetch_images
from scraper.scrape_stage import crawl_lots
from scraper.stage import DEMO_CRAWL_SETTINGS

GOAL_REQUESTS_PER_LOT = 1.02    # issue #8: the record crawl, lotsearch pages of 84
GOAL_REQUESTS_PER_IMAGE = 1.05  # issue #8: the sample's images
LOTSEARCH_PAGE_SIZE = 84        # scraper/settings.py CHRISTIES_LOTSEARCH_PAGE_SIZE, the site's cap


@dataclass(frozen=True)
class Traffic:
    """What one crawl cost the site: requests by kind, bytes sent, items produced, wall seconds."""

    requests: dict[str, int]
    bytes_sent: int
    items: int
    seconds: float

    @property
    def total_requests(self) -> int:
        return sum(self.requests.values())


def traffic_between(before: Mapping, after: Mapping, items: int, seconds: float) -> Traffic:
    """The difference of two `DemoSite.stats()` snapshots."""
    kinds = Counter(after["requests"])
    kinds.subtract(before["requests"])
    return Traffic({kind: n for kind, n in sorted(kinds.items()) if n}, after["bytes_sent"] - before["bytes_sent"],
                   items, seconds)


def count_jsonl(path: Path) -> int:
    with open(path, encoding="utf-8") as fh:
        return sum(1 for line in fh if line.strip())


def record_crawl(site: DemoSite, scrape: Mapping, work: Path) -> Traffic:
    before, started = site.stats(), time.perf_counter()
    code = crawl_lots(scrape, site.base_url, site.online_base_url, work / "raw", work / "crawl-job", fast=True)
    seconds = time.perf_counter() - started
    if code != 0:
        raise RuntimeError(f"the record crawl failed (exit {code}); see {work / 'raw' / 'crawl_stats.json'}")
    return traffic_between(before, site.stats(), count_jsonl(work / "raw" / "lots.jsonl"), seconds)


def write_sample(lots_jsonl: Path, target: Path, n: int, seed: int) -> int:
    """A seeded sample of up to `n` crawled lots that have an image, as the `sample` stage's CSV columns
    the image spider reads (lot_key, image_url); returns its size."""
    with open(lots_jsonl, encoding="utf-8") as fh:
        lots = [lot for lot in map(json.loads, fh) if lot.get("image_url")]
    chosen = random.Random(seed).sample(lots, min(n, len(lots)))
    with open(target, "w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["lot_key", "image_url"])
        writer.writeheader()
        writer.writerows({"lot_key": lot["lot_key"], "image_url": lot["image_url"]} for lot in chosen)
    return len(chosen)


def image_fetch(site: DemoSite, scrape: Mapping, work: Path, n: int, seed: int) -> Traffic:
    sample = work / "sample.csv"
    sampled = write_sample(work / "raw" / "lots.jsonl", sample, n, seed)
    settings = {"CHRISTIES_IMAGE_WIDTH": int(scrape["image_width"]), "CHRISTIES_CONTACT": scrape["contact"],
                **DEMO_CRAWL_SETTINGS, "CHRISTIES_IMAGE_BASE_URL": site.base_url, "LOG_LEVEL": "WARNING"}
    before, started = site.stats(), time.perf_counter()
    code = fetch_images(sample, work / "raw" / "images", work / "raw", work / "fetch-job", settings,
                        max_lost_fraction=1.0)  # the benchmark counts losses; it does not gate on them
    seconds = time.perf_counter() - started
    if code != 0:
        raise RuntimeError(f"the image fetch failed (exit {code}); see {work / 'raw' / 'fetch_stats.json'}")
    return traffic_between(before, site.stats(), sampled, seconds)


def server_render_seconds(site: DemoSite, sample_csv: Path, width: int) -> float:
    """CPU seconds the demo server spends painting and encoding the sample's renditions (uncached): the
    share of the image fetch that is the test site's work, not the scraper's."""
    with open(sample_csv, encoding="utf-8", newline="") as fh:
        keys = [row["lot_key"] for row in csv.DictReader(fh)]
    object_ids = [key.rsplit("-", 1)[-1] for key in keys]
    started = time.process_time()
    for object_id in object_ids:
        artwork.encode_image(site.catalogue.lots[object_id], width, None, site.catalogue.config.max_rendition_side)
    return time.process_time() - started


def lotsearch_texts(site: DemoSite, scrape: Mapping) -> list[tuple[parsing.Sale, str]]:
    """Every lotsearch page of the crawl's www sales, serialised as the server sends them, with its sale."""
    catalogue, origins, pages = site.catalogue, site.origins, []
    for year, month in parsing.months(str(scrape["start"]), str(scrape["end"])):
        calendar = demo_payloads.calendar_payload(catalogue, year, month, origins)
        for sale in parsing.sales_from_calendar(calendar, set(scrape["categories"]), origins.www, origins.online):
            if sale.kind != "live":
                continue
            lots = catalogue.lots_of(catalogue.sale(sale.sale_id))
            for page in range(1, demo_payloads.page_count(len(lots), LOTSEARCH_PAGE_SIZE) + 1):
                payload = demo_payloads.lotsearch_payload(catalogue, catalogue.sale(sale.sale_id), lots, page,
                                                          LOTSEARCH_PAGE_SIZE, origins)
                pages.append((sale, json.dumps(payload, ensure_ascii=False)))
    return pages


def parse_pages(pages: list[tuple[parsing.Sale, str]], base_url: str, online_base_url: str) -> int:
    """The spider's per-page work without Scrapy: JSON → lots → records; returns the number of lots."""
    count = 0
    for sale, text in pages:
        lots, _, _ = parsing.list_page(json.loads(text))
        for lot in lots:
            parsing.lot_record(lot, sale, base_url, online_base_url)
            count += 1
    return count


def parse_rate(site: DemoSite, scrape: Mapping, rounds: int) -> tuple[float, int, int]:
    """(lots/s, lots, pages) of `parse_pages` over the crawl's lotsearch payloads, median of `rounds`."""
    pages = lotsearch_texts(site, scrape)
    n_lots = parse_pages(pages, site.base_url, site.online_base_url)
    if not n_lots:
        raise RuntimeError("no www lots in the demo crawl window: nothing to parse")
    rate = measure_rate(lambda: parse_pages(pages, site.base_url, site.online_base_url), n_lots, warmup=1,
                        rounds=rounds, calls_per_round=1)
    return rate.median, n_lots, len(pages)


def traffic_rows(name: str, traffic: Traffic) -> list[list[object]]:
    per_item = traffic.total_requests / traffic.items if traffic.items else None
    kinds = ", ".join(f"{kind} {n}" for kind, n in traffic.requests.items())
    return [[name, traffic.items, traffic.total_requests, f"{per_item:.3f}" if per_item is not None else None,
             kinds, traffic.bytes_sent, round(traffic.bytes_sent / traffic.items) if traffic.items else None,
             traffic.seconds, traffic.items / traffic.seconds]]


def report(crawl: Traffic, images: Traffic, parsed: tuple[float, int, int], render_s: float, demo: Mapping,
           scrape: Mapping) -> str:
    table = _record.markdown_table(
        ["crawl", "items", "requests", "requests per item", "requests by kind", "bytes", "bytes per item",
         "wall s", "items/s"],
        traffic_rows("record crawl (scrape stage, CHRISTIES_IMAGES=none)", crawl)
        + traffic_rows(f"sample images (fetch_images stage, w={scrape['image_width']})", images))
    rate, n_lots, n_pages = parsed
    req_lot = crawl.total_requests / crawl.items
    req_img = images.total_requests / images.items
    return (f"Demo site (params `demo`: {demo['months']} months from {scrape['start']}, {demo['n_artists']} artists, "
            f"{demo['sales_per_month']} art + {demo['decoy_sales_per_month']} decoy sales a month), loopback, "
            f"demo crawl settings (scraper/stage.py). Wall times include Scrapy's start-up (~2 s).\n\n{table}\n"
            f"Parsing alone (json.loads + parsing.list_page + parsing.lot_record, no network, one core): "
            f"**{rate:,.0f} lots/s** over {n_lots:,} lots in {n_pages} lotsearch pages of {LOTSEARCH_PAGE_SIZE} "
            f"({1e6 / rate:.0f} µs per lot).\n\n"
            f"Of the image fetch's {images.seconds:.1f} s, the demo server itself spends {render_s:.1f} s of CPU "
            f"painting and JPEG-encoding the {images.items} renditions (measured apart, uncached), on the same cores "
            f"as the crawler: the scraper's own share is the rest.\n\nGoals:\n\n"
            + _record.goal_line(f"record crawl ≤ {GOAL_REQUESTS_PER_LOT} requests per lot",
                                req_lot <= GOAL_REQUESTS_PER_LOT, f"{req_lot:.3f}")
            + _record.goal_line(f"sample images ≤ {GOAL_REQUESTS_PER_IMAGE} requests per image",
                                req_img <= GOAL_REQUESTS_PER_IMAGE, f"{req_img:.3f}"))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--images", type=int,
                        help="lots in the image sample (default: params select.n_artists × select.per_artist)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of the parsing loop")
    _record.add_record_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> str:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    params = load_params(path=args.params)
    scrape, demo, seed = params["scrape"], params["demo"], int(params["base"]["seed"])
    n_images = args.images or int(params["select"]["n_artists"]) * int(params["select"]["per_artist"])
    catalogue = build_catalogue(demo, start=str(scrape["start"]))
    with tempfile.TemporaryDirectory(prefix="bench-crawl-") as tmp, DemoSite(catalogue, faults=None) as site:
        work = Path(tmp)
        print("record crawl ...", file=sys.stderr)
        crawl = record_crawl(site, scrape, work)
        print(f"images of {n_images} sampled lots ...", file=sys.stderr)
        images = image_fetch(site, scrape, work, n_images, seed)
        print("parsing loop ...", file=sys.stderr)
        parsed = parse_rate(site, scrape, args.rounds)
        render_s = server_render_seconds(site, work / "sample.csv", int(scrape["image_width"]))
    body = report(crawl, images, parsed, render_s, demo, scrape)
    return _record.publish(args, "bench.crawl", argv, "Crawl cost per lot (bench/crawl.py)", body)


if __name__ == "__main__":
    main()
