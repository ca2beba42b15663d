"""Crawl extensions: progress lines for a person watching a long crawl, the closing stats as JSON (`scrapy crawl` exits 0 even when the crawl failed, so the stage
runners read this file to decide their own exit status, scraper/crawl_check.py), and the JOBDIR guard that
never resumes from the state of a killed crawl (scraper/jobdir.py)."""

from __future__ import annotations

import datetime as dt
import logging
import time
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


def eta_text(elapsed: float, done: float, total: float) -> str:
    """'~12 min left' from the share of the work done so far ('time left unknown' before any is done)."""
    if done <= 0 or total <= 0:
        return "time left unknown"
    left = max(0.0, elapsed * (total - done) / done)
    if left >= 7200:
        return f"~{left / 3600:.1f} h left"
    return f"~{left / 60:.0f} min left" if left >= 90 else f"~{left:.0f} s left"


def progress_line(spider: Spider, stats: dict[str, Any], elapsed: float) -> str:
    """What a person watching a long crawl wants to read: what is settled out of the total, the items so far,
    the rate and the time left. The lot crawl counts months and sales settled (listed, or recorded as lost);
    the image fetch counts lots done of those requested."""
    items = int(stats.get("item_scraped_count", 0))
    rate = f"{items / elapsed * 60:.0f}/min" if elapsed > 0 else "-"
    progress = getattr(spider, "progress", None)
    if progress is not None and hasattr(spider, "months"):
        months_total, months_done = len(spider.months), len(progress.months_settled)
        sales_done = len(progress.sales_settled)
        sales_known = sales_done + len(progress.sales_open)
        # Unknown sales of unread months are counted at the average per month read so far.
        sales_expected = sales_known if months_done == months_total else \
            sales_known / max(months_done, 1) * months_total
        return (f"crawl progress: months {months_done}/{months_total} settled, sales {sales_done}/{sales_known} "
                f"settled, {items:,} lots ({rate}), "
                f"{eta_text(elapsed, months_done + sales_done, months_total + sales_expected)}")
    requested = int(stats.get("images/requested", 0))
    return f"fetch progress: images {items:,}/{requested:,} done ({rate}), {eta_text(elapsed, items, requested)}"


class ProgressExtension:
    """Logs `progress_line` every `CHRISTIES_PROGRESS_INTERVAL` seconds (0: off) and once at the end."""

    def __init__(self, crawler: Crawler, interval: float):
        self.crawler, self.interval = crawler, interval
        self.started = 0.0
        self.task = None

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> ProgressExtension:
        interval = crawler.settings.getfloat("CHRISTIES_PROGRESS_INTERVAL")
        if interval <= 0:
            raise NotConfigured("CHRISTIES_PROGRESS_INTERVAL is 0")
        extension = cls(crawler, interval)
        crawler.signals.connect(extension.spider_opened, signal=signals.spider_opened)
        crawler.signals.connect(extension.spider_closed, signal=signals.spider_closed)
        return extension

    def spider_opened(self, spider: Spider) -> None:
        from twisted.internet import task  # noqa: PLC0415 (the reactor is Scrapy's)

        self.started = time.monotonic()
        self.task = task.LoopingCall(self.log, spider)
        self.task.start(self.interval, now=False)

    def log(self, spider: Spider) -> None:
        assert self.crawler.stats is not None
        logger.info(progress_line(spider, self.crawler.stats.get_stats(), time.monotonic() - self.started))

    def spider_closed(self, spider: Spider, reason: str) -> None:
        if self.task is not None and self.task.running:
            self.task.stop()
        self.log(spider)
