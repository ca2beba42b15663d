"""Shared pieces of the reliability suite: the demo catalogue and its expected lots, crawl helpers that run
the real stage code against a fault-injecting demo site, and a temporary repository root for curation stages.

Everything runs on 127.0.0.1, bounded by fault shares, retry counts and short download timeouts; nothing
sleeps to wait for a result (loops poll a file with a deadline).
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from common import load_params
from scraper.demo import DemoSite, build_catalogue
from scraper.demo.catalogue import Catalogue, Lot
from scraper.stage import DEMO_CRAWL_SETTINGS, REPO_ROOT
from tests.curation.conftest import PARAMS as CURATION_PARAMS
from tests.curation.conftest import jpeg_bytes, pattern_image, write_params

CATEGORIES = ["category_7", "category_11"]
START, END = "2019-01", "2019-04"
POLL_DEADLINE_S = 60.0  # a crawl that has not written what we wait for by then is broken
POLL_INTERVAL_S = 0.05

# Loopback crawl settings for tests: short timeouts and back-off caps so every injected fault costs at most a
# couple of seconds, but timeouts still well above a healthy answer's latency on a loaded 2-core machine.
FAULT_TEST_SETTINGS: dict[str, Any] = {
    **DEMO_CRAWL_SETTINGS,
    "DOWNLOAD_TIMEOUT": 2,
    "CHRISTIES_BACKOFF_BASE_DELAY": 0.05,
    "CHRISTIES_BACKOFF_MAX_DELAY": 0.2,
    "LOG_LEVEL": "WARNING",
}
SLOW_ANSWER_S = 3.0  # the demo site's slow answers: past FAULT_TEST_SETTINGS' DOWNLOAD_TIMEOUT


@pytest.fixture(scope="session")
def catalogue() -> Catalogue:
    """The full demo catalogue of params.yaml (about 1,200 expected lots over 4 months)."""
    params = load_params(path=REPO_ROOT / "params.yaml")
    return build_catalogue(params["demo"], start=START)


def lot_key(lot: Lot, catalogue: Catalogue) -> str:
    """The lot_key the scraper must produce (docs/CONTRACTS.md)."""
    prefix = "oo" if catalogue.sale_of(lot).is_online else "www"
    return f"{prefix}-{lot.event_id}-{lot.object_id}"


def expected_lots(catalogue: Catalogue) -> dict[str, Lot]:
    """lot_key -> lot for every lot a correct crawl of START..END returns."""
    return {lot_key(lot, catalogue): lot for lot in catalogue.expected_lots(START, END, CATEGORIES)}


def scrape_section() -> dict[str, Any]:
    """The `scrape` params the stage runner's crawl function reads."""
    return {"start": START, "end": END, "categories": CATEGORIES, "contact": "reliability-tests", "min_items": 1}


def write_image_list(path: Path, lots: Iterable[Lot], catalogue: Catalogue) -> Path:
    """A sample.csv for the `christies_images` spider (lot_key, image_url on the real host: the stage rebases)."""
    with open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["lot_key", "image_url"])
        for lot in lots:
            writer.writerow([lot_key(lot, catalogue), f"https://www.christies.com{lot.image_path}"])
    return path


def image_lots(catalogue: Catalogue, count: int) -> list[Lot]:
    """The first `count` expected lots that have an image (every image kind the catalogue makes)."""
    with_image = [lot for lot in catalogue.expected_lots(START, END, CATEGORIES) if lot.truth.has_image]
    return with_image[:count]


def served_image(site: DemoSite, lot: Lot, width: int) -> bytes:
    """The bytes the demo site serves for a lot's rendition when no fault is injected."""
    return site.image_bytes(lot.object_id, width, None)[0]


def scrapy_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    env["SCRAPY_SETTINGS_MODULE"] = "scraper.settings"
    return env


def wait_until(condition: Callable[[], bool], what: str, process: subprocess.Popen | None = None) -> None:
    """Poll `condition` until true; fail after POLL_DEADLINE_S or when `process` exits first."""
    deadline = time.monotonic() + POLL_DEADLINE_S
    while not condition():
        if process is not None and process.poll() is not None:
            pytest.fail(f"the process exited (status {process.returncode}) before: {what}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {POLL_DEADLINE_S} s waiting for: {what}")
        time.sleep(POLL_INTERVAL_S)


def line_count(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


@pytest.fixture
def curation_repo(tmp_path, monkeypatch) -> Path:
    """A temporary repository root (the CWD) with the curation tests' tiny params.yaml."""
    monkeypatch.chdir(tmp_path)
    write_params(tmp_path, CURATION_PARAMS)
    return tmp_path


def write_sampled_works(repo: Path, works: Sequence[tuple[str, str, str, str]], shard: str, image_seed: int) -> None:
    """What the manifest stage reads for a sample of `works` ((lot_key, artist_key, artist, title) each): one
    pattern image per work under data/raw/images/<shard>/, sample.csv, images.jsonl and lots.parquet."""
    rows, fetch = [], []
    for n, (key, artist_key, artist, title) in enumerate(works):
        path = repo / "data/raw/images" / shard / f"{key}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(jpeg_bytes(pattern_image(90, 70, seed=image_seed + n)))
        rows.append({"lot_key": key, "artist_key": artist_key, "artist": artist, "title": title,
                     "sale_title": "Sale", "sale_date": "2019-05-16", "medium": "oil on canvas", "kind": "painting",
                     "dimensions": "", "price_realised": "", "currency": "", "image_url": "u",
                     "lot_url": f"https://www.christies.com/en/lot/lot-{n}"})
        fetch.append({"lot_key": key, "image_path": f"{shard}/{key}.jpg", "status": "downloaded"})
    (repo / "data/interim").mkdir(parents=True)
    pd.DataFrame(rows).to_csv(repo / "data/interim/sample.csv", index=False, lineterminator="\n")
    (repo / "data/raw/images.jsonl").write_text("".join(json.dumps(r) + "\n" for r in fetch))
    pd.DataFrame({"lot_key": [work[0] for work in works]}).to_parquet(repo / "data/interim/lots.parquet")
