"""Spider `christies`: Christie's results calendar → closed 2-D art sales → one record per lot.

    scrapy crawl christies -a start=2019-01 -a end=2019-04 -O lots.jsonl

Route (christies-site.md §0): calendar API per month (the `/en/results` HTML page as fallback, then the
JSON-LD `Event`s of `/en/results/YYYY/MM`, §12) → keep sales of CHRISTIES_CATEGORIES that are CLOSED (a
JSON-LD month has neither ids nor categories: every ended sale is listed, its ids read from its page's
`window.briDataModel`, and the clean stage keeps the 2-D works by medium) → www sales: `lotsearch` JSON pages
until `total_hits_filtered` lots are collected; online-only sales: `sso` landing (302) → `searchLots` JSON pages. When an API listing is refused
(robots.txt) or fails, the sale page's embedded `window.chrComponents` JSON is read instead (`?page=N`,
cumulative). A listing that fails with no route left is counted as lost (`christies/listing_failed`, the
failures file), never taken for an empty sale. The spider is thin: all parsing is in scraper/parsing.py.

Completeness: a sale whose listing ends with fewer distinct lots than its `total_hits_filtered` is a failure
line and counts in `lots/missing`; at a `finished` close, every month of the range and every sale the calendars
named must have been listed or recorded as lost (`CrawlProgress`), else it is a failure line too
(`christies/months_unfinished`, `christies/sales_unfinished`). The stage runners fail on any of these.

Callback state travels in `cb_kwargs` (picklable), so a JOBDIR pause/resume keeps it: the per-sale lot count
(`seen`) rides with the sale's next listing request; `CrawlProgress` lives in `spider.state`, saved with the
queue on a clean stop.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import urlsplit

from scrapy import Request, Spider
from scrapy.crawler import Crawler
from scrapy.downloadermiddlewares.retry import get_retry_request
from scrapy.http import Response
from scrapy.settings import BaseSettings
from scrapy.utils.asyncio import sleep
from twisted.python.failure import Failure

from scraper import parsing
from scraper.archive import MONTH_META, archive_of
from scraper.items import LotItem, lot_export_fields
from scraper.middlewares import FALLBACK_META, KIND_META, failure_log_of, failure_reason
from scraper.parsing import ExtractionError, Sale
from scraper.spiders import apply_contact_user_agent

UNREADABLE = (ValueError, ExtractionError)  # json.JSONDecodeError is a ValueError
PROGRESS_STATE_KEY = "christies/progress"
MONTH_SLOT_POLL_S = 0.01  # how often start() looks whether another month may begin


def progress_key(sale: Sale) -> str:
    """A sale's key in CrawlProgress: its id, or its landing URL while a JSON-LD sale has no id yet."""
    return sale.sale_id or sale.landing_url


class CrawlProgress:
    """Which months and sales of the crawl are settled (listed, or recorded as lost), kept in a plain dict so
    that it pickles into JOBDIR's `spider.state` and survives a clean stop with the queue it describes.

    A month or sale still unsettled when the crawl finishes had its requests dropped without a callback or an
    errback (e.g. filtered as duplicates by a stale `requests.seen`): its lots were lost silently.

    Per month it also keeps the work still open (sales, lot pages), whether anything of it failed or took a
    fallback route (`months_tainted`), and whether it is closed: its calendar read and no work open. A closed
    month that is not tainted is settled in the response archive.
    """

    def __init__(self, state: dict[str, Any]):
        self.months_settled: set[str] = state.setdefault("months_settled", set())
        self.sales_open: dict[str, str] = state.setdefault("sales_open", {})  # sale_id -> landing URL
        self.sales_settled: set[str] = state.setdefault("sales_settled", set())
        self.month_work: dict[str, set[str]] = state.setdefault("month_work", {})  # month -> open work keys
        self.work_month: dict[str, str] = state.setdefault("work_month", {})  # work key -> its month
        self.months_tainted: set[str] = state.setdefault("months_tainted", set())
        self.months_closed: set[str] = state.setdefault("months_closed", set())

    @staticmethod
    def month_key(year: int, month: int) -> str:
        return f"{year:04d}-{month:02d}"

    def settle_month(self, year: int, month: int) -> None:
        self.months_settled.add(self.month_key(year, month))

    def open_sale(self, sale_id: str, landing_url: str, month: str | None = None) -> None:
        """A calendar named this sale (again: a resumed run re-reads calendars; settled sales stay settled)."""
        if sale_id not in self.sales_settled:
            self.sales_open.setdefault(sale_id, landing_url)
            self.open_work(month, sale_id)

    def settle_sale(self, sale_id: str) -> str | None:
        """The sale has its outcome; returns its month."""
        self.sales_open.pop(sale_id, None)
        self.sales_settled.add(sale_id)
        return self.close_work(sale_id)

    def start_month(self, month: str) -> None:
        self.month_work.setdefault(month, set())

    def open_work(self, month: str | None, work: str) -> None:
        if month is None:
            return
        self.month_work.setdefault(month, set()).add(work)
        self.work_month.setdefault(work, month)

    def close_work(self, work: str) -> str | None:
        month = self.work_month.get(work)
        if month is not None:
            self.month_work.get(month, set()).discard(work)
        return month

    def month_done(self, month: str) -> bool:
        """Calendar read (or lost) and nothing of the month still open."""
        return month in self.months_settled and not self.month_work.get(month)

    def open_months(self) -> list[str]:
        return [month for month in self.month_work if month not in self.months_closed]

    def unfinished_months(self, months: list[tuple[int, int]]) -> list[tuple[int, int]]:
        return [(y, m) for y, m in months if self.month_key(y, m) not in self.months_settled]

    def unfinished_sales(self) -> dict[str, str]:
        return dict(self.sales_open)


def month_is_over(month: str, today: dt.date) -> bool:
    """A month still running may get more sales: it never settles."""
    return month < f"{today.year:04d}-{today.month:02d}"


def missing_lots(announced: int, listed: int) -> int:
    """Lots a sale announced (`total_hits_filtered`) but its listing never gave."""
    return max(0, announced - listed)


def should_fetch_next_page(
    page: int, total: int | None, total_pages: int | None, collected: int, new_on_page: int, page_size: int | None
) -> bool:
    """Whether another listing page can add lots.

    A page that adds nothing ends the sale (guards against servers that repeat the last page). Otherwise the
    true lot count decides when known, then the page count, then a full page (`page_size` lots) hints at more.
    """
    if new_on_page == 0:
        return False
    if total is not None:
        return collected < total
    if total_pages is not None:
        return page < total_pages
    return page_size is not None and new_on_page >= page_size


class ChristiesSpider(Spider):
    name = "christies"

    def __init__(self, start: str | None = None, end: str | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        if not start or not end:
            raise ValueError("christies spider: pass -a start=YYYY-MM -a end=YYYY-MM")
        self.months = parsing.months(start, end)

    @classmethod
    def update_settings(cls, settings: BaseSettings) -> None:
        super().update_settings(settings)
        fields = lot_export_fields(
            with_images=settings.get("CHRISTIES_IMAGES", "all") == "all",
            with_details=settings.getbool("CHRISTIES_LOT_DETAILS"),
        )
        settings.set("FEED_EXPORT_FIELDS", fields, priority="spider")
        apply_contact_user_agent(settings)

    @classmethod
    def from_crawler(cls, crawler: Crawler, *args: Any, **kwargs: Any) -> ChristiesSpider:
        spider = super().from_crawler(crawler, *args, **kwargs)
        settings = crawler.settings
        spider.base_url = settings.get("CHRISTIES_BASE_URL").rstrip("/")
        spider.online_base_url = settings.get("CHRISTIES_ONLINE_BASE_URL").rstrip("/")
        spider.categories = frozenset(settings.getlist("CHRISTIES_CATEGORIES"))
        spider.component = settings.get("CHRISTIES_COMPONENT")
        spider.page_size = settings.getint("CHRISTIES_LOTSEARCH_PAGE_SIZE")
        spider.lot_details = settings.getbool("CHRISTIES_LOT_DETAILS")
        spider.months_in_flight = max(1, settings.getint("CHRISTIES_MONTHS_IN_FLIGHT"))
        spider.archive = archive_of(crawler)
        return spider

    # ------------------------------------------------------------ bookkeeping

    def _stat(self, key: str, count: int = 1) -> None:
        self.crawler.stats.inc_value(f"christies/{key}", count)

    @property
    def progress(self) -> CrawlProgress:
        """The crawl's progress, inside `self.state` (JOBDIR's SpiderState sets and saves it; without a JOBDIR
        it is a plain attribute)."""
        if not hasattr(self, "state"):
            self.state: dict[str, Any] = {}
        return CrawlProgress(self.state.setdefault(PROGRESS_STATE_KEY, {}))

    def _record_failure(self, request: Request, reason: str, status: int | None = None) -> None:
        if (failure_log := failure_log_of(self.crawler)) is not None:
            failure_log.record(request, reason, status=status)

    def _settle(self, request: Request) -> None:
        """The month or sale this calendar/listing request belongs to has its outcome (listed or lost)."""
        kwargs = request.cb_kwargs
        if kwargs.get("sale") is not None:
            self._close_month_if_done(self.progress.settle_sale(progress_key(kwargs["sale"])))
        elif "year" in kwargs and "month" in kwargs:
            self.progress.settle_month(kwargs["year"], kwargs["month"])
            self._close_month_if_done(request.meta.get(MONTH_META))

    def _taint(self, request: Request) -> None:
        """Something of this request's month failed or took a fallback route: the month is not settled (its
        archived answers would not replay the crawl: the failed first route is not among them)."""
        if (month := request.meta.get(MONTH_META)) is not None:
            self.progress.months_tainted.add(month)

    def _close_month_if_done(self, month: str | None) -> None:
        """Once a month's calendar was read and all its work ended: settle it in the archive when nothing of
        it failed, it is over, and no sale in it is open or upcoming (those taint the month)."""
        progress = self.progress
        if month is None or month in progress.months_closed or not progress.month_done(month):
            return
        progress.months_closed.add(month)
        if month in progress.months_tainted or not month_is_over(month, dt.datetime.now(dt.timezone.utc).date()):
            self._stat("months_not_settled")
            self.logger.info("%s: not settled (a failure, a fallback, an open sale, or the month is not over): "
                             "asked again next time", month)
        elif self.archive is not None:
            self.archive.settle(month)
            self._stat("months_archived")

    def _month_meta(self, kind: str, month: str | None, fallback: bool = False) -> dict[str, Any]:
        meta: dict[str, Any] = {KIND_META: kind, MONTH_META: month}
        if fallback:
            meta[FALLBACK_META] = True
        return meta

    def _sale_month(self, sale: Sale) -> str | None:
        return self.progress.work_month.get(progress_key(sale))

    def _lost(self, request: Request, reason: str, lots: int | None = None, logged: bool = True) -> None:
        """A listing with no route left: count it, and log it to the failures file unless the downloader
        already did (an HTTP error or exception is logged there; an unreadable 200 page is not)."""
        self._stat("listing_failed")
        self._taint(request)
        self._settle(request)
        if lots:
            self._stat("lots_lost", lots)
        if not logged:
            self._record_failure(request, reason, status=200)
        self.logger.error("listing lost (%s): %s%s", reason, request.url, f", {lots} lots" if lots else "")

    def _retry_unreadable(self, response: Response, reason: str) -> Request | None:
        """A 200 page that does not parse (truncated JSON) is retried like a 5xx before giving up (and then
        the month is tainted: the caller takes another route)."""
        retry = get_retry_request(response.request, spider=self, reason=reason)
        if retry is None:
            self._taint(response.request)
        return retry

    async def _month_slot(self) -> None:
        """Wait until fewer than CHRISTIES_MONTHS_IN_FLIGHT months are open, so that months finish (and settle)
        one after another. Gives up waiting when the engine has nothing left to do (no month can close)."""
        while len(self.progress.open_months()) >= self.months_in_flight and self._engine_busy():
            await sleep(MONTH_SLOT_POLL_S)

    def _engine_busy(self) -> bool:
        engine = self.crawler.engine
        if engine is None or engine.scheduler is None:
            return False
        return bool(engine.downloader.active) or engine.scheduler.has_pending_requests() \
            or not engine.scraper.slot.is_idle()

    # ------------------------------------------------------------ calendar

    async def start(self) -> AsyncIterator[Request]:
        for year, month in self.months:
            await self._month_slot()
            key = CrawlProgress.month_key(year, month)
            self.progress.start_month(key)
            yield Request(
                parsing.calendar_api_url(self.base_url, year, month, self.component),
                callback=self.parse_calendar, errback=self.calendar_api_failed,
                cb_kwargs={"year": year, "month": month}, meta=self._month_meta("calendar", key, fallback=True),
            )

    def _calendar_page_request(self, year: int, month: int) -> Request:
        return Request(
            parsing.calendar_page_url(self.base_url, year, month),
            callback=self.parse_calendar_page, errback=self.calendar_page_failed,
            cb_kwargs={"year": year, "month": month},
            meta=self._month_meta("calendar", CrawlProgress.month_key(year, month), fallback=True),
        )

    def parse_calendar(self, response: Response, year: int, month: int) -> Iterator[Request]:
        try:
            calendar = response.json()
            sales = parsing.sales_from_calendar(calendar, self.categories, self.base_url, self.online_base_url)
        except UNREADABLE as exc:
            retry = self._retry_unreadable(response, f"unreadable calendar: {exc}")
            yield retry or self._calendar_page_request(year, month)
            return
        if open_sales := parsing.open_sales_in_calendar(calendar, self.categories):
            self.logger.info("%04d-%02d: %d sales not closed yet: the month is asked again next time", year, month,
                             open_sales)
            self._taint(response.request)
        yield from self._sale_requests(sales, year, month)

    def calendar_api_failed(self, failure: Failure) -> Iterator[Request]:
        kwargs = failure.request.cb_kwargs
        self.logger.warning("calendar API failed (%s), reading the results page", failure_reason(failure.value))
        self._taint(failure.request)
        yield self._calendar_page_request(kwargs["year"], kwargs["month"])

    def calendar_page_failed(self, failure: Failure) -> Iterator[Request]:
        kwargs = failure.request.cb_kwargs
        self.logger.warning("results page failed (%s), reading its JSON-LD events", failure_reason(failure.value))
        yield self._calendar_json_ld_request(kwargs["year"], kwargs["month"])

    def parse_calendar_page(self, response: Response, year: int, month: int) -> Iterator[Request]:
        try:
            calendar = parsing.calendar_from_html(response.text)
            sales = parsing.sales_from_calendar(calendar, self.categories, self.base_url, self.online_base_url)
        except UNREADABLE as exc:
            retry = self._retry_unreadable(response, f"unreadable results page: {exc}")
            if retry is not None:
                yield retry
            else:
                self.logger.warning("%04d-%02d: results page unreadable (%s), reading its JSON-LD events", year,
                                    month, exc)
                yield self._calendar_json_ld_request(year, month)
            return
        yield from self._sale_requests(sales, year, month)

    def _calendar_json_ld_request(self, year: int, month: int) -> Request:
        return Request(
            parsing.calendar_json_ld_url(self.base_url, year, month),
            callback=self.parse_calendar_json_ld, errback=self.listing_failed,
            cb_kwargs={"year": year, "month": month},
            meta=self._month_meta("calendar", CrawlProgress.month_key(year, month)),
        )

    def parse_calendar_json_ld(self, response: Response, year: int, month: int) -> Iterator[Request]:
        """The third calendar route: JSON-LD `Event`s, without ids or categories (parsing.sales_from_json_ld).
        Every sale of the month is listed; the sale page names its ids (`parse_sale_identity`)."""
        sales = parsing.sales_from_json_ld(parsing.json_ld_events(response.text), self.base_url, self.online_base_url)
        if not sales:
            retry = self._retry_unreadable(response, "no JSON-LD events on the results page")
            if retry is not None:
                yield retry
            else:
                self._lost(response.request, "no calendar route answered (API, results page, JSON-LD)", logged=False)
            return
        self._stat("calendar_json_ld_months")
        self.logger.warning("%04d-%02d: %d sales from JSON-LD, without categories: all are listed, and the clean "
                            "stage keeps the 2-D works by medium", year, month, len(sales))
        yield from self._sale_requests(sales, year, month)

    def _sale_requests(self, sales: list[Sale], year: int, month: int) -> Iterator[Request]:
        self._stat("calendar_months")
        self.logger.info("%04d-%02d: %d sales kept", year, month, len(sales))
        progress = self.progress
        progress.settle_month(year, month)
        key = CrawlProgress.month_key(year, month)
        for sale in sales:
            progress.open_sale(progress_key(sale), sale.landing_url, key)
            self._stat("sales")
            self._stat(f"sales_{sale.kind}")
            if sale.kind == "live" and not sale.sale_id:
                yield Request(
                    sale.landing_url, callback=self.parse_sale_identity, errback=self.listing_failed,
                    cb_kwargs={"sale": sale}, meta=self._month_meta("listing", key),
                )
            elif sale.kind == "online":
                yield Request(
                    sale.landing_url, callback=self.parse_online_landing, errback=self.listing_failed,
                    cb_kwargs={"sale": sale}, meta=self._month_meta("listing", key),
                )
            else:
                yield self._api_request(sale, "lotsearch", sale.sale_id, 1, [], sale.landing_url)
        self._close_month_if_done(key)

    # ------------------------------------------------------------ listing APIs

    def _api_request(self, sale: Sale, api: str, api_sale_id: str, page: int, seen: list[str],
                     sale_url: str) -> Request:
        if api == "lotsearch":
            url = parsing.lotsearch_url(self.base_url, api_sale_id, sale.sale_number, page, self.page_size)
        else:
            url = parsing.search_lots_url(self.online_base_url, api_sale_id, page)
        return Request(
            url, callback=self.parse_api_page, errback=self.api_failed,
            cb_kwargs={"sale": sale, "api": api, "api_sale_id": api_sale_id, "page": page, "seen": seen,
                       "sale_url": sale_url},
            meta=self._month_meta("listing", self._sale_month(sale), fallback=True),
        )

    def _identified(self, response: Response, sale: Sale) -> Sale | None:
        """`sale` with the ids its page names (a JSON-LD sale has none yet), moved to its id in the progress;
        None (the sale recorded as lost) when the page names none."""
        if sale.sale_id:
            return sale
        try:
            identified = parsing.sale_identity(response.text, sale)
        except UNREADABLE as exc:
            self._lost(response.request, f"sale page without a sale id: {exc}", logged=False)
            return None
        month = self.progress.settle_sale(progress_key(sale))
        self.progress.open_sale(progress_key(identified), sale.landing_url, month)
        return identified

    def parse_sale_identity(self, response: Response, sale: Sale) -> Iterator[Request]:
        """A JSON-LD www sale: its page's `briDataModel` gives the ids lotsearch needs."""
        identified = self._identified(response, sale)
        if identified is not None:
            yield self._api_request(identified, "lotsearch", identified.sale_id, 1, [], response.url)

    def parse_online_landing(self, response: Response, sale: Sale) -> Iterator[Request]:
        """The `sso` link has redirected to `/s/<slug>/lots/<onlineSaleId>`; searchLots wants that id."""
        sale = self._identified(response, sale)
        if sale is None:
            return
        try:
            online_id = parsing.online_sale_id(parsing.lots_data_from_html(response.text))
        except ExtractionError:
            online_id = None
        online_id = online_id or urlsplit(response.url).path.rstrip("/").rsplit("/", 1)[-1]
        if not online_id.isdigit():
            self._lost(response.request, "no online sale id on the sale page", logged=False)
            return
        yield self._api_request(sale, "searchLots", online_id, 1, [], response.url)

    def parse_api_page(self, response: Response, sale: Sale, api: str, api_sale_id: str, page: int,
                       seen: list[str], sale_url: str) -> Iterator[Any]:
        try:
            lots, total, total_pages = parsing.list_page(response.json())
        except UNREADABLE as exc:
            retry = self._retry_unreadable(response, f"unreadable {api} page: {exc}")
            yield retry or self._sale_page_request(sale, 1, seen, sale_url)
            return
        seen, new = yield from self._lot_outputs(lots, sale, response.url, seen)
        page_size = self.page_size if api == "lotsearch" else None
        if should_fetch_next_page(page, total, total_pages, len(seen), new, page_size):
            yield self._api_request(sale, api, api_sale_id, page + 1, seen, sale_url)
        else:
            self._sale_done(response.request, sale, total, seen)

    def api_failed(self, failure: Failure) -> Iterator[Request]:
        kwargs = failure.request.cb_kwargs
        self.logger.warning("%s failed for sale %s (%s): reading the sale page instead",
                            kwargs["api"], kwargs["sale"].sale_id, failure_reason(failure.value))
        self._stat("fallback_sale_page")
        self._taint(failure.request)
        yield self._sale_page_request(kwargs["sale"], 1, kwargs["seen"], kwargs["sale_url"])

    # ------------------------------------------------------------ sale-page fallback

    def _sale_page_request(self, sale: Sale, page: int, seen: list[str], sale_url: str) -> Request:
        return Request(
            parsing.sale_page_url(sale_url, page), callback=self.parse_sale_page, errback=self.listing_failed,
            cb_kwargs={"sale": sale, "page": page, "seen": seen, "sale_url": sale_url},
            meta=self._month_meta("listing", self._sale_month(sale)),
        )

    def parse_sale_page(self, response: Response, sale: Sale, page: int, seen: list[str],
                        sale_url: str) -> Iterator[Any]:
        try:
            lots, total, total_pages = parsing.list_page(parsing.lots_data_from_html(response.text))
        except UNREADABLE as exc:
            retry = self._retry_unreadable(response, f"unreadable sale page: {exc}")
            if retry is not None:
                yield retry
            else:
                self._lost(response.request, f"unreadable sale page: {exc}", logged=False)
            return
        seen, new = yield from self._lot_outputs(lots, sale, response.url, seen)
        if should_fetch_next_page(page, total, total_pages, len(seen), new, None):
            yield self._sale_page_request(sale, page + 1, seen, sale_url)
        else:
            self._sale_done(response.request, sale, total, seen)

    def listing_failed(self, failure: Failure) -> None:
        """A listing request with no other route (downloader already logged it to the failures file)."""
        request = failure.request
        sale = request.cb_kwargs.get("sale")
        self._lost(request, failure_reason(failure.value))
        if sale is not None:
            self._stat("sales_lost")

    def _sale_done(self, request: Request, sale: Sale, total: int | None, seen: list[str]) -> None:
        """The sale's listing ended normally. `seen` (the distinct object ids listed, carried from page to page
        in cb_kwargs, so across a JOBDIR resume too) must reach the announced total, else the shortfall is a
        failure line and counts in `lots/missing`: lots are never lost silently."""
        month = self.progress.settle_sale(progress_key(sale))
        missing = missing_lots(total, len(seen)) if total is not None else 0
        if missing:
            self._taint(request)
        self._close_month_if_done(month)
        if total is None:
            return
        self._stat("lots_expected", total)
        if missing:
            self._stat("sales_incomplete")
            self.crawler.stats.inc_value("lots/missing", missing)
            self._record_failure(request, f"incomplete listing: {len(seen)} of {total} lots", status=200)
            self.logger.error("sale %s: listing ended with %d of %d lots", sale.sale_id, len(seen), total)

    def closed(self, reason: str) -> None:
        """At a `finished` close, months and sales that never got an outcome are failures (see CrawlProgress).
        Runs before the failures log and the stats file close (the spider's handler is connected first)."""
        if reason != "finished":
            return
        progress = self.progress
        for year, month in progress.unfinished_months(self.months):
            self._stat("months_unfinished")
            url = parsing.calendar_api_url(self.base_url, year, month, self.component)
            self._record_failure(Request(url, meta={KIND_META: "calendar"}), "calendar never read")
            self.logger.error("%04d-%02d: the calendar was never read nor recorded as failed", year, month)
        for sale_id, landing_url in sorted(progress.unfinished_sales().items()):
            self._stat("sales_unfinished")
            self._record_failure(Request(landing_url, meta={KIND_META: "listing"}), "listing never finished")
            self.logger.error("sale %s: the listing never finished nor was recorded as failed", sale_id)

    # ------------------------------------------------------------ lots

    def _lot_outputs(self, lots: list[dict[str, Any]], sale: Sale, source_url: str,
                     seen: list[str]) -> Iterator[Any]:
        """Yield an item (or a lot-page request) per lot not seen before in this sale; return the new
        `seen` list and how many lots were new (pages may overlap: `?page=N` is cumulative)."""
        seen = list(seen)
        known = set(seen)
        new = 0
        for lot in lots:
            object_id = str(lot.get("object_id") or "").strip()
            if object_id and object_id in known:
                continue
            if object_id:
                known.add(object_id)
                seen.append(object_id)
            new += 1
            record = parsing.lot_record(lot, sale, self.base_url, self.online_base_url)
            item = LotItem.from_record(record, source_url=source_url)
            if self.lot_details and sale.kind == "live" and object_id:
                month = self._sale_month(sale)
                self.progress.open_work(month, f"lot:{item.lot_key}")
                yield Request(item.lot_url, callback=self.parse_lot_details, errback=self.lot_details_failed,
                              cb_kwargs={"item": item}, meta=self._month_meta("lot", month))
            else:
                yield item
        return seen, new

    def parse_lot_details(self, response: Response, item: LotItem) -> Iterator[LotItem]:
        details = parsing.split_details(parsing.details_lines_from_html(response.text))
        item.medium, item.dimensions = details.medium, details.dimensions
        self._stat("lot_details")
        self._close_month_if_done(self.progress.close_work(f"lot:{item.lot_key}"))
        yield item

    def lot_details_failed(self, failure: Failure) -> Iterator[LotItem]:
        self._stat("lot_details_failed")
        item = failure.request.cb_kwargs["item"]
        self._taint(failure.request)
        self._close_month_if_done(self.progress.close_work(f"lot:{item.lot_key}"))
        yield item
