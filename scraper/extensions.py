"""Writes the closing stats of a crawl to JSON, because `scrapy crawl` exits 0 even when the crawl failed:
the stage runners read this file to decide their own exit status (scraper/crawl_check.py)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from scrapy import Spider, signals
from scrapy.crawler import Crawler
from scrapy.exceptions import NotConfigured

from common import write_json


def json_safe_stats(stats: dict[str, Any]) -> dict[str, Any]:
    """Stats with datetimes as ISO strings and keys sorted, ready for `json.dump`."""
    def convert(value: Any) -> Any:
        if isinstance(value, (dt.datetime, dt.date)):
            return value.isoformat()
        if isinstance(value, dt.timedelta):
            return value.total_seconds()
        return value

    return {key: convert(stats[key]) for key in sorted(stats)}


class StatsFileExtension:
    """On close, writes the crawl stats (plus `finish_reason`) atomically to `CHRISTIES_STATS_FILE`."""

    def __init__(self, crawler: Crawler, path: str):
        self.crawler = crawler
        self.path = path

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> StatsFileExtension:
        path = crawler.settings.get("CHRISTIES_STATS_FILE")
        if not path:
            raise NotConfigured("CHRISTIES_STATS_FILE is not set")
        extension = cls(crawler, path)
        crawler.signals.connect(extension.spider_closed, signal=signals.spider_closed)
        return extension

    def spider_closed(self, spider: Spider, reason: str) -> None:
        assert self.crawler.stats is not None
        stats = dict(self.crawler.stats.get_stats())
        stats["finish_reason"] = reason
        write_json(self.path, json_safe_stats(stats))
