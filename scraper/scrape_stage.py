"""DVC stage `scrape`: crawl lot records (no images) into data/raw/.

    python -m scraper.scrape_stage [--params params.yaml] [--raw-dir data/raw] [--crawls-dir crawls]

Reads params sections `scrape` and `demo` once. `scrape.site: demo` starts the embedded demo site on
127.0.0.1 and crawls it with loopback-speed settings; `live` crawls `scrape.base_url` politely, with a JOBDIR
under `crawls/` so that a stopped or failed run resumes where it stopped when the stage is rerun.

Every answer goes through the response archive under `scrape.archive` (scraper/archive.py): months settled
there are replayed without a request, so a parsing change, a longer range or a rerun after a kill asks the
site only for months not settled yet. The crawl plan (scraper/plan.py) is printed first.

Writes `lots.jsonl` (unique by lot_key) and `rejects.jsonl` atomically, only when the crawl succeeded, and
`crawl_stats.json` (Scrapy stats + lots, rejects, failures, ok, errors) always. Exits 1 when the crawl errored
(scraper/crawl_check.py), so DVC does not record a broken crawl as done.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
from collections.abc import Mapping
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from common import load_params, write_json
from scraper.crawl_check import lot_crawl_errors, read_jsonl, read_jsonl_unique
from scraper.plan import crawl_plan
from scraper.stage import (
    DEMO_CRAWL_SETTINGS,
    check_contact,
    check_section,
    count_lines,
    demo_site,
    read_stats,
    run_scrapy,
    scrapy_command,
    write_jsonl,
)

logger = logging.getLogger("scraper.scrape_stage")

# The params this stage reads (dvc.yaml declares exactly these; tests/test_dvc_params.py).
PARAMS = (
    "scrape.site", "scrape.base_url", "scrape.online_base_url", "scrape.start", "scrape.end", "scrape.categories",
    "scrape.contact", "scrape.min_items", "scrape.archive", "demo"
)
SCRAPE_KEYS = ("site", "base_url", "online_base_url", "start", "end", "categories", "contact", "min_items", "archive")
# The demo's origins as written into the crawl's outputs: those `python -m scraper.demo` serves by default.
DEMO_PUBLIC_ORIGINS = {"www": "http://127.0.0.1:8800", "online": "http://127.0.0.1:8801"}


def crawl_settings(scrape: Mapping[str, Any], base_url: str, online_base_url: str, job: Path, fast: bool,
                   archive: Path | None = None, origins: Mapping[str, str] | None = None) -> dict[str, Any]:
    settings: dict[str, Any] = {
        "CHRISTIES_BASE_URL": base_url,
        "CHRISTIES_ONLINE_BASE_URL": online_base_url,
        "CHRISTIES_CATEGORIES": list(scrape["categories"]),
        "CHRISTIES_CONTACT": scrape["contact"],
        "CHRISTIES_IMAGES": "none",
        "CHRISTIES_REJECTS_FILE": job / "rejects.jsonl",
        "CHRISTIES_FAILURES_FILE": job / "failures.jsonl",
        "CHRISTIES_STATS_FILE": job / "crawl_stats.json",
        "LOG_FILE_APPEND": False,
    }
    if archive is not None:
        settings.update(CHRISTIES_ARCHIVE_DIR=archive, CHRISTIES_ARCHIVE_ORIGINS=dict(origins or {}))
    if fast:
        settings.update(DEMO_CRAWL_SETTINGS)
    else:
        settings["JOBDIR"] = job / "jobdir"
    return settings


def published(value: Any, origins: Mapping[str, str]) -> Any:
    """`value` with every URL on a key of `origins` (a served origin) moved to its value (the published one),
    through nested lists and dicts."""
    if isinstance(value, str):
        for served, public in origins.items():
            if value.startswith(served) and value[len(served):len(served) + 1] in ("", "/", "?", "#"):
                return public + value[len(served):]
        return value
    if isinstance(value, list):
        return [published(item, origins) for item in value]
    if isinstance(value, dict):
        return {key: published(item, origins) for key, item in value.items()}
    return value


def lot_order(lot: Mapping[str, Any]) -> tuple[str, str, str]:
    """A stable order for lots.jsonl (crawl order varies with concurrency; DVC hashes the bytes)."""
    return str(lot.get("sale_date") or ""), str(lot.get("sale_id")), str(lot.get("lot_key"))


def crawl_lots(scrape: Mapping[str, Any], base_url: str, online_base_url: str, raw_dir: Path, job: Path,
               fast: bool, origins: Mapping[str, str] | None = None, archive: Path | None = None) -> int:
    """Run the `christies` spider into `job/`, then publish its outputs to `raw_dir`; return the exit status.

    `origins` maps served origins to the ones written into the outputs (the demo: its random ports to the
    fixed ones `python -m scraper.demo` serves, so a re-scrape is byte-identical and the links stay usable)
    and into the response archive `archive` (None: no archive).
    """
    origins = origins or {}
    resume = (job / "jobdir").exists() and not fast
    if not resume:
        shutil.rmtree(job, ignore_errors=True)
    job.mkdir(parents=True, exist_ok=True)
    feed = job / "lots.jsonl.part"
    if resume:
        logger.info("resuming the crawl in %s", job)
    command = scrapy_command(
        "christies", {"start": str(scrape["start"]), "end": str(scrape["end"])},
        crawl_settings(scrape, base_url, online_base_url, job, fast, archive, origins), feed, append=resume,
    )
    return_code = run_scrapy(command)
    stats = read_stats(job / "crawl_stats.json")
    lots = read_jsonl_unique(feed, "lot_key")
    errors = lot_crawl_errors(stats, len(lots), int(scrape["min_items"]))
    if return_code != 0:
        errors.insert(0, f"scrapy exited with status {return_code}")
    summary = {
        **stats,
        "lots": len(lots),
        "rejects": count_lines(job / "rejects.jsonl"),
        "failures": count_lines(job / "failures.jsonl"),
        "ok": not errors,
        "errors": errors,
    }
    write_json(raw_dir / "crawl_stats.json", summary)
    logger.info("archive: %d answers replayed, %d recorded, %d months settled in this run",
                stats.get("archive/replayed", 0), stats.get("archive/recorded", 0),
                stats.get("christies/months_archived", 0))
    if errors:
        for error in errors:
            logger.error("crawl failed: %s", error)
        logger.error("outputs not written; the crawl state is kept in %s", job)
        return 1
    write_jsonl(raw_dir / "lots.jsonl", published(sorted(lots, key=lot_order), origins))
    write_jsonl(raw_dir / "rejects.jsonl", published(read_jsonl(job / "rejects.jsonl"), origins))
    write_jsonl(raw_dir / "crawl_failures.jsonl", published(read_jsonl(job / "failures.jsonl"), origins))
    shutil.rmtree(job, ignore_errors=True)
    logger.info("%d lots, %d rejects, %d failures", summary["lots"], summary["rejects"], summary["failures"])
    return 0


def remove_stale_demo_archives(archive: Path) -> None:
    """Answers of another demo build (other demo params or code) can never be replayed: removed."""
    for folder in archive.parent.glob("demo-*"):
        if folder != archive and folder.is_dir():
            logger.info("removing %s: answers of another demo build", folder)
            shutil.rmtree(folder)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--raw-dir", type=Path, default=Path("data/raw"))
    parser.add_argument("--crawls-dir", type=Path, default=Path("crawls"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")

    params = load_params(path=args.params, keys=PARAMS)
    scrape, demo = params["scrape"], params["demo"]
    check_section(scrape, SCRAPE_KEYS, "scrape", args.params)
    check_contact(scrape, args.params)
    site_kind = scrape["site"]
    if site_kind not in ("demo", "live"):
        raise ValueError(f"{args.params}: scrape.site is {site_kind!r}; expected 'demo' or 'live'")
    plan = crawl_plan(scrape, demo, args.params.parent)
    print("\n".join(plan.lines()), flush=True)
    raw_dir, crawls_dir = args.raw_dir.resolve(), args.crawls_dir.resolve()
    raw_dir.mkdir(parents=True, exist_ok=True)
    if site_kind == "demo":
        remove_stale_demo_archives(plan.archive)
        context = demo_site(demo, str(scrape["start"]))
    else:
        context = nullcontext()
    with context as site:
        base_url = site.base_url if site is not None else scrape["base_url"]
        online_base_url = site.online_base_url if site is not None else scrape["online_base_url"]
        job = crawls_dir / f"scrape-{site_kind}-{scrape['start']}-{scrape['end']}"
        origins = {} if site is None else {site.base_url: DEMO_PUBLIC_ORIGINS["www"],
                                           site.online_base_url: DEMO_PUBLIC_ORIGINS["online"]}
        return crawl_lots(scrape, base_url, online_base_url, raw_dir, job, fast=site is not None, origins=origins,
                          archive=plan.archive)


if __name__ == "__main__":
    sys.exit(main())
