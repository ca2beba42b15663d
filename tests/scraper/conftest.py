"""Helpers for crawl tests: run `scrapy crawl` in a subprocess against a loopback site."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # fakesite

from scraper.stage import DEMO_CRAWL_SETTINGS, run_scrapy, scrapy_command  # noqa: E402

# Tests must not wait for politeness back-off: a short cap keeps 429/503 tests to seconds.
TEST_SETTINGS: dict[str, Any] = {**DEMO_CRAWL_SETTINGS, "CHRISTIES_BACKOFF_MAX_DELAY": 1.0, "RETRY_TIMES": 2,
                                 "LOG_LEVEL": "WARNING"}


def site_settings(site: Any, out: Path) -> dict[str, Any]:
    return {**TEST_SETTINGS, "CHRISTIES_BASE_URL": site.base_url, "CHRISTIES_ONLINE_BASE_URL": site.online_base_url,
            "CHRISTIES_STATS_FILE": out / "stats.json", "FILES_STORE": out / "images"}


def crawl(spider: str, arguments: dict[str, str], settings: dict[str, Any], feed: Path,
          append: bool = False) -> tuple[int, dict[str, Any]]:
    """Run a crawl; return its exit status and closing stats."""
    return_code = run_scrapy(scrapy_command(spider, arguments, settings, feed, append))
    stats_file = Path(settings["CHRISTIES_STATS_FILE"])
    return return_code, json.loads(stats_file.read_text()) if stats_file.exists() else {}


def feed_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.fixture
def out(tmp_path: Path) -> Path:
    return tmp_path
