"""Downloader middlewares: polite back-off on 429/503 and a log of every request that finally failed.

Order matters (process_response runs from the highest number down to the engine):
`RetryAfterMiddleware` (560) sees a 429/503 before Scrapy's RetryMiddleware (550) re-queues it, so it can wait;
`FailureLogMiddleware` (540) sits below the retry layer and so sees only final outcomes: a response still
failing after the last retry, an exception retries gave up on, or a request robots.txt forbade (the
RobotsTxtMiddleware, at 100, raises IgnoreRequest, which travels up through every process_exception).
"""

from __future__ import annotations

import logging
import time
from email.utils import parsedate_to_datetime
from typing import Any

from scrapy import Request, signals
from scrapy.crawler import Crawler
from scrapy.exceptions import IgnoreRequest
from scrapy.http import Response
from scrapy.utils.asyncio import sleep

from scraper.jobdir import resumes_job
from scraper.outputs import JsonLinesLog, side_file

logger = logging.getLogger(__name__)

KIND_META = "christies_kind"  # calendar | listing | lot | image
FALLBACK_META = "christies_has_fallback"  # the spider has another route if this request fails


def parse_retry_after(value: str | bytes | None, now: float) -> float | None:
    """Seconds to wait from a `Retry-After` header: delta-seconds (`"120"`) or an HTTP date; None if absent
    or unreadable. A date in the past means 0."""
    if value is None:
        return None
    text = value.decode("latin-1") if isinstance(value, bytes) else str(value)
    text = text.strip()
    if not text:
        return None
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - now)


def backoff_delay(retry_after: float | None, retries_so_far: int, base: float, max_delay: float) -> float:
    """The wait before retrying: the server's `Retry-After` when given, else exponential `base × 2^retries`;
    never more than `max_delay`."""
    wanted = retry_after if retry_after is not None else base * (2 ** retries_so_far)
    return min(max(wanted, 0.0), max_delay)


class RetryAfterMiddleware:
    """Waits before a 429/503 is retried, honouring `Retry-After`, and slows the whole host meanwhile.

    Scrapy's RetryMiddleware re-queues at once and ignores `Retry-After` (scrapy#3849). Here the response is
    held for the computed delay before it reaches the retry layer, and the host's download slot delay is
    raised to the same value until a good response comes back, so other requests to that host slow down too.
    Stats: `retry_after/backoffs`, `retry_after/header_seconds`, `retry_after/header_date`,
    `retry_after/no_header`, `retry_after/clamped`, `retry_after/wait_seconds`.
    """

    def __init__(self, crawler: Crawler):
        settings = crawler.settings
        self.crawler = crawler
        self.codes = {int(code) for code in settings.getlist("CHRISTIES_BACKOFF_HTTP_CODES")}
        self.max_delay = settings.getfloat("CHRISTIES_BACKOFF_MAX_DELAY")
        self.base_delay = settings.getfloat("CHRISTIES_BACKOFF_BASE_DELAY")
        self.max_retry_times = settings.getint("RETRY_TIMES")
        self.retry_enabled = settings.getbool("RETRY_ENABLED")
        self._slot_delays_before: dict[str, float] = {}

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> RetryAfterMiddleware:
        return cls(crawler)

    def _will_retry(self, request: Request) -> bool:
        if not self.retry_enabled or request.meta.get("dont_retry"):
            return False
        limit = request.meta.get("max_retry_times", self.max_retry_times)
        return request.meta.get("retry_times", 0) < limit

    def _slot(self, request: Request) -> tuple[str, Any] | None:
        downloader = getattr(self.crawler.engine, "downloader", None)
        if downloader is None:
            return None
        key = request.meta.get("download_slot") or downloader.get_slot_key(request)
        slot = downloader.slots.get(key)
        return (key, slot) if slot is not None else None

    def _count_header(self, header: bytes | None, retry_after: float | None) -> None:
        stats = self.crawler.stats
        if retry_after is None:
            stats.inc_value("retry_after/no_header")
        elif header is not None and header.strip().isdigit():
            stats.inc_value("retry_after/header_seconds")
        else:
            stats.inc_value("retry_after/header_date")

    async def process_response(self, request: Request, response: Response) -> Response:
        slot = self._slot(request)
        if response.status not in self.codes:
            if slot is not None and slot[0] in self._slot_delays_before:
                slot[1].delay = self._slot_delays_before.pop(slot[0])
            return response
        if not self._will_retry(request):
            return response
        header = response.headers.get(b"Retry-After")
        retry_after = parse_retry_after(header, now=time.time())
        delay = backoff_delay(retry_after, request.meta.get("retry_times", 0), self.base_delay, self.max_delay)
        self._count_header(header, retry_after)
        stats = self.crawler.stats
        stats.inc_value("retry_after/backoffs")
        stats.inc_value("retry_after/wait_seconds", round(delay, 3))
        if retry_after is not None and retry_after > self.max_delay:
            stats.inc_value("retry_after/clamped")
        if slot is not None:
            key, download_slot = slot
            self._slot_delays_before.setdefault(key, download_slot.delay)
            download_slot.delay = max(download_slot.delay, delay)
        logger.info("HTTP %s from %s: waiting %.1f s before retrying", response.status, request.url, delay)
        await sleep(delay)
        return response


def failure_reason(exception: BaseException) -> str:
    """A short reason for the failures log: robots.txt refusals are named as such."""
    message = str(exception)
    if isinstance(exception, IgnoreRequest) and "robots.txt" in message.lower():
        return "forbidden by robots.txt"
    return f"{type(exception).__name__}: {message}" if message else type(exception).__name__


class FailureLogMiddleware:
    """Writes every request that finally failed to a JSON Lines file and counts it in stats.

    File: `CHRISTIES_FAILURES_FILE`, else `<feed>.failures.jsonl`. Each line: url, reason, kind (calendar,
    listing, lot, image), has_fallback (the spider had another route), status. Stats: `failures/count`,
    `failures/kind/<kind>`, `failures/reason/<reason>`.
    """

    def __init__(self, crawler: Crawler):
        self.crawler = crawler
        settings = crawler.settings
        self.path = side_file(settings, "CHRISTIES_FAILURES_FILE", "failures.jsonl", suffix_of_feed=True)
        self.log = JsonLinesLog(self.path, resume=resumes_job(settings.get("JOBDIR")))
        crawler.signals.connect(self.log.close, signal=signals.spider_closed)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> FailureLogMiddleware:
        return cls(crawler)

    def record(self, request: Request, reason: str, status: int | None = None) -> None:
        kind = request.meta.get(KIND_META, "other")
        self.log.write({
            "url": request.url, "reason": reason, "kind": kind,
            "has_fallback": bool(request.meta.get(FALLBACK_META)), "status": status,
        })
        stats = self.crawler.stats
        stats.inc_value("failures/count")
        stats.inc_value(f"failures/kind/{kind}")
        stats.inc_value(f"failures/reason/{reason.split(':')[0]}")

    def process_response(self, request: Request, response: Response) -> Response:
        if response.status >= 400:
            self.record(request, f"HTTP {response.status}", status=response.status)
        return response

    def process_exception(self, request: Request, exception: Exception) -> None:
        self.record(request, failure_reason(exception))
        return None


def failure_log_of(crawler: Crawler) -> FailureLogMiddleware | None:
    """The crawl's FailureLogMiddleware, for failures found after the download (an unreadable page, a corrupt
    image, an incomplete listing); None when it is not enabled or the engine is not running."""
    downloader = getattr(crawler.engine, "downloader", None)
    for middleware in getattr(getattr(downloader, "middleware", None), "middlewares", ()):
        if isinstance(middleware, FailureLogMiddleware):
            return middleware
    return None
