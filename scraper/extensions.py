"""Crawl extensions: the closing stats as JSON (`scrapy crawl` exits 0 even when the crawl failed, so the stage
runners read this file to decide their own exit status, scraper/crawl_check.py), and the JOBDIR guard that
never resumes from the state of a killed crawl (scraper/jobdir.py)."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from typing import Any

from scrapy import Spider, signals
from scrapy.crawler import Crawler
from scrapy.exceptions import NotConfigured

from common import write_json
from scraper.jobdir import begin_job, end_job

logger = logging.getLogger(__name__)


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


class JobdirGuardExtension:
    """Discards the JOBDIR scheduler state of a crawl that did not stop cleanly, and marks a clean stop.

    Runs in `from_crawler`: Scrapy builds extensions before the engine, and the engine builds the scheduler
    (whose dupefilter opens `requests.seen`) and opens it (reading `requests.queue/`) only in
    `ExecutionEngine.open_spider_async`, so the cleanup happens before anything reads the state. Its
    `spider_closed` handler is connected after SpiderState's (EXTENSIONS order), so the marker is written after
    `spider.state`. Stats: `jobdir/discarded_unclean_state` (1 when the state was discarded).
    """

    def __init__(self, crawler: Crawler, jobdir: Path, discarded: list[str]):
        self.crawler = crawler
        self.jobdir = jobdir
        self.discarded = discarded

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> JobdirGuardExtension:
        setting = crawler.settings.get("JOBDIR")
        if not setting:
            raise NotConfigured("JOBDIR is not set")
        jobdir = Path(setting)
        discarded = begin_job(jobdir)
        if discarded:
            logger.warning("JOBDIR %s was not stopped cleanly (killed?): its %s cannot be trusted and were "
                           "discarded; crawling again from the start and appending to the feed (read it "
                           "de-duplicated by lot_key)", jobdir, ", ".join(discarded))
        extension = cls(crawler, jobdir, discarded)
        crawler.signals.connect(extension.spider_opened, signal=signals.spider_opened)
        crawler.signals.connect(extension.spider_closed, signal=signals.spider_closed)
        return extension

    def spider_opened(self, spider: Spider) -> None:
        if self.discarded:
            assert self.crawler.stats is not None
            self.crawler.stats.set_value("jobdir/discarded_unclean_state", 1)

    def spider_closed(self, spider: Spider, reason: str) -> None:
        if not end_job(self.jobdir, reason):
            logger.warning("closed with reason %r: JOBDIR %s is not marked as cleanly stopped, so the next run "
                           "starts again from the calendar", reason, self.jobdir)
