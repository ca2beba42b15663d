"""The embedded demo site: two HTTP origins on 127.0.0.1 that answer like www and onlineonly.christies.com.

    with DemoSite(build_catalogue(params["demo"], params["scrape"]["start"])) as site:
        requests.get(f"{site.base_url}/api/discoverywebsite/auctioncalendar/auctionresults?month=1&year=2019")

Both origins are `ThreadingHTTPServer`s with a 256-deep listen backlog (the default of 5 stalls Scrapy's
16 parallel connections in TCP back-off), daemon threads, HTTP/1.1 keep-alive and no request logging to
stderr. `DemoSite.stats()` reports requests served by kind, bytes sent and faults injected, and
`DemoSite.request_log()` every request in arrival order (origin, kind, path?query), thread-safely.
"""

from __future__ import annotations

import functools
import json
import re
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

from scraper.demo import artwork, payloads
from scraper.demo import faults as fault_kinds
from scraper.demo.catalogue import NO_IMAGE_PATH, Catalogue, Lot, Sale
from scraper.demo.faults import FaultConfig
from scraper.demo.payloads import Origins

HOST = "127.0.0.1"
LISTEN_BACKLOG = 256
PAGE_SIZE_CAP = 84            # lotsearch and sale pages never list more lots than this per page
ONLINE_PAGE_SIZE = 30         # searchLots without loadall=true
KEEP_ALIVE_IDLE_S = 30        # an idle keep-alive connection is closed after this long
IMAGE_CACHE_SIZE = 512        # encoded renditions kept in memory
SHUTDOWN_POLL_S = 0.05        # how often serve_forever checks for stop() (the default 0.5 s slows tests)
REQUEST_KINDS = ("calendar", "calendar_ld", "lotsearch", "sale_page", "sso", "searchLots", "lot_page", "image", "robots",
                 "not_found")


class BadRequest(ValueError):
    """A query parameter is missing or malformed; answered 400 with the message."""


@dataclass
class Answer:
    status: int
    body: bytes
    content_type: str
    headers: tuple[tuple[str, str], ...] = ()


def json_answer(obj, status: int = 200) -> Answer:
    return Answer(status, json.dumps(obj, ensure_ascii=False).encode("utf-8"), "application/json; charset=utf-8")


def html_answer(text: str, status: int = 200) -> Answer:
    return Answer(status, text.encode("utf-8"), "text/html; charset=utf-8")


def redirect(location: str) -> Answer:
    return Answer(302, b"", "text/html; charset=utf-8", (("Location", location),))


NOT_FOUND = Answer(404, b"<html><body><h1>404 Not Found</h1></body></html>", "text/html; charset=utf-8")


@dataclass(frozen=True)
class Served:
    """One request as the server saw it."""

    origin: str  # www | online
    kind: str    # one of REQUEST_KINDS
    url: str     # path?query


class SiteCounters:
    """Requests by kind (and in arrival order), bytes sent, faults by kind and attempts per URL, behind one
    lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: Counter[str] = Counter()
        self.faults: Counter[str] = Counter()
        self.bytes_sent = 0
        self.attempts: Counter[str] = Counter()
        self.log: list[Served] = []

    def record_request(self, kind: str, origin: str, url: str) -> int:
        """Count and log the request; return which attempt at this URL it is (1-based)."""
        url_key = f"{origin}|{url}"
        with self._lock:
            self.requests[kind] += 1
            self.attempts[url_key] += 1
            self.log.append(Served(origin, kind, url))
            return self.attempts[url_key]

    def served(self) -> list[Served]:
        with self._lock:
            return list(self.log)

    def record_fault(self, fault: str) -> None:
        with self._lock:
            self.faults[fault] += 1

    def record_bytes(self, count: int) -> None:
        with self._lock:
            self.bytes_sent += count

    def snapshot(self) -> dict:
        with self._lock:
            return {"requests": dict(self.requests), "faults": dict(self.faults), "bytes_sent": self.bytes_sent,
                    "requests_total": sum(self.requests.values())}


# ---------------------------------------------------------------- query helpers


def query_params(query: str) -> dict[str, str]:
    """Query parameters with lower-cased names (the real site's ASP.NET routes ignore case)."""
    return {key.lower(): value for key, value in parse_qsl(query, keep_blank_values=True)}


def int_param(params: dict[str, str], name: str, default: int | None = None, low: int = 1,
              high: int | None = None) -> int:
    raw = params.get(name)
    if raw in (None, ""):
        if default is None:
            raise BadRequest(f"query parameter {name!r} is required")
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"query parameter {name!r}: expected an integer, got {raw!r}") from None
    if value < low or (high is not None and value > high):
        raise BadRequest(f"query parameter {name!r}: {value} outside [{low}, {high if high else '...'}]")
    return value


def rendition_param(params: dict[str, str], names: tuple[str, ...]) -> int | None:
    """The first of `names` present (w / width, h / height), as a positive integer; None if absent."""
    for name in names:
        if params.get(name):
            return int_param(params, name)
    return None


# ---------------------------------------------------------------- the site


class DemoSite:
    """Serves a catalogue on two loopback origins until stopped (use as a context manager)."""

    def __init__(self, catalogue: Catalogue, faults: FaultConfig | None = None,
                 online_disallows_search: bool = False, host: str = HOST, port: int = 0, online_port: int = 0):
        self.catalogue = catalogue
        self.faults = faults or FaultConfig()
        self.online_disallows_search = online_disallows_search
        self.counters = SiteCounters()
        self._addresses = {"www": (host, port), "online": (host, online_port)}
        self._servers: dict[str, _OriginServer] = {}
        self._threads: list[threading.Thread] = []
        self.origins: Origins | None = None
        self.image_bytes = functools.lru_cache(maxsize=IMAGE_CACHE_SIZE)(self._encode_image)

    # lifecycle
    def start(self) -> DemoSite:
        for origin, address in self._addresses.items():
            self._servers[origin] = _OriginServer(address, self, origin)
        host = {name: f"http://{server.server_address[0]}:{server.server_address[1]}"
                for name, server in self._servers.items()}
        self.origins = Origins(www=host["www"], online=host["online"])
        for name, server in self._servers.items():
            thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": SHUTDOWN_POLL_S},
                                      name=f"demo-site-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        for server in self._servers.values():
            server.shutdown()
            server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)
        self._servers.clear()
        self._threads.clear()

    def __enter__(self) -> DemoSite:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        return self._require_started().www

    @property
    def online_base_url(self) -> str:
        return self._require_started().online

    def _require_started(self) -> Origins:
        if self.origins is None:
            raise RuntimeError("DemoSite is not started: use `with DemoSite(...) as site:` or call start()")
        return self.origins

    def stats(self) -> dict:
        return self.counters.snapshot()

    def request_log(self) -> list[Served]:
        return self.counters.served()

    # routing
    def route(self, origin: str, method: str, path: str) -> tuple[str, Callable[[dict, bytes], Answer]]:
        """(request kind, handler) for a path on an origin; handlers take (params, request body)."""
        routes = WWW_ROUTES if origin == "www" else ONLINE_ROUTES
        for pattern, kind, handler_name, methods in routes:
            match = pattern.fullmatch(path)
            if match and method in methods:
                handler = getattr(self, handler_name)
                return kind, functools.partial(handler, **match.groupdict())
        return "not_found", lambda params, body: NOT_FOUND

    # www handlers
    def robots_www(self, params: dict, body: bytes) -> Answer:
        text = payloads.robots_txt(self.origins, online=False, online_disallows_search=False)
        return Answer(200, text.encode(), "text/plain; charset=utf-8")

    def robots_online(self, params: dict, body: bytes) -> Answer:
        text = payloads.robots_txt(self.origins, online=True, online_disallows_search=self.online_disallows_search)
        return Answer(200, text.encode(), "text/plain; charset=utf-8")

    def calendar_json(self, params: dict, body: bytes) -> Answer:
        year, month = int_param(params, "year", low=1900, high=2100), int_param(params, "month", high=12)
        return json_answer(payloads.calendar_payload(self.catalogue, year, month, self.origins))

    def calendar_html(self, params: dict, body: bytes) -> Answer:
        year, month = int_param(params, "year", low=1900, high=2100), int_param(params, "month", high=12)
        payload = payloads.calendar_payload(self.catalogue, year, month, self.origins)
        return html_answer(payloads.results_page_html(payload, params.get("filters", "")))

    def calendar_json_ld(self, params: dict, body: bytes, year: str, month: str) -> Answer:
        if not 1 <= int(month) <= 12:
            return NOT_FOUND
        return html_answer(payloads.results_json_ld_html(self.catalogue, int(year), int(month), self.origins))

    def lotsearch(self, params: dict, body: bytes) -> Answer:
        sale = self.find_sale(params)
        page = int_param(params, "page", default=1)
        page_size = min(PAGE_SIZE_CAP, int_param(params, "pagesize", default=PAGE_SIZE_CAP))
        if sale is None:
            return json_answer(payloads.empty_lotsearch(self.origins, params.get("saleid", ""), page))
        lots = payloads.filter_by_categories(self.catalogue.lots_of(sale), params.get("filterids", ""))
        return json_answer(payloads.lotsearch_payload(self.catalogue, sale, lots, page, page_size, self.origins))

    def find_sale(self, params: dict) -> Sale | None:
        """The sale of saleid (and salenumber, which must agree), or of salenumber (+ saleroomcode) alone."""
        saleid, number, room = params.get("saleid", ""), params.get("salenumber", ""), params.get("saleroomcode", "")
        if not saleid and not number:
            raise BadRequest("query parameter 'saleid' (or 'salenumber') is required")
        if saleid:
            sale = self.catalogue.sale(saleid)
            return sale if sale and (not number or number == sale.sale_number) else None
        return next((s for s in self.catalogue.sales if s.sale_number == number
                     and (not room or room.upper() == s.template.room)), None)

    def sale_page(self, params: dict, body: bytes, event_id: str) -> Answer:
        sale = self.catalogue.sale(event_id)
        if sale is None or sale.is_online:
            return NOT_FOUND
        page = int_param(params, "page", default=1)
        return html_answer(payloads.sale_page_html(self.catalogue, sale, page, PAGE_SIZE_CAP, self.origins))

    def lot_page(self, params: dict, body: bytes, object_id: str) -> Answer:
        lot = self.catalogue.lots.get(object_id)
        if lot is None:
            return NOT_FOUND
        return html_answer(payloads.lot_page_html(self.catalogue, lot, self.origins))

    def image(self, params: dict, body: bytes, path: str) -> Answer:
        if path.lower() == NO_IMAGE_PATH.lower():
            return Answer(200, artwork.placeholder_jpeg(), "image/jpeg")
        lot = self.catalogue.lot_by_image_path(path)
        if lot is None:
            return NOT_FOUND
        width, height = rendition_param(params, ("w", "width")), rendition_param(params, ("h", "height"))
        data, content_type = self.image_bytes(lot.object_id, width, height)
        return Answer(200, data, content_type)

    def _encode_image(self, object_id: str, width: int | None, height: int | None) -> tuple[bytes, str]:
        lot = self.catalogue.lots[object_id]
        return artwork.encode_image(lot, width, height, self.catalogue.config.max_rendition_side)

    # online handlers
    def sso(self, params: dict, body: bytes) -> Answer:
        """SaleID -> the online sale page; ObjectID (sale.lot) -> the online lot page; 302 either way."""
        if "saleid" in params:
            sale = self.catalogue.sale(params["saleid"])
            if sale is None or not sale.is_online:
                return NOT_FOUND
            return redirect(payloads.online_sale_url(sale, self.origins))
        if "objectid" in params:
            lot = self.lot_by_unique_id(params["objectid"])
            if lot is None:
                return NOT_FOUND
            return redirect(payloads.online_lot_url(lot, self.catalogue.sale_of(lot), self.origins))
        raise BadRequest("query parameter 'SaleID' or 'ObjectID' is required")

    def lot_by_unique_id(self, unique_id: str) -> Lot | None:
        number, _, lot_number = unique_id.partition(".")
        sale = next((s for s in self.catalogue.sales if s.sale_number == number and s.is_online), None)
        if sale is None:
            return None
        return next((lot for lot in self.catalogue.lots_of(sale) if lot.lot_number == lot_number), None)

    def online_sale_page(self, params: dict, body: bytes, online_id: str, slug: str) -> Answer:
        sale = self.catalogue.sale_by_online_id(online_id)
        if sale is None:
            return NOT_FOUND
        page = int_param(params, "page", default=1)
        return html_answer(payloads.online_sale_page_html(self.catalogue, sale, page, PAGE_SIZE_CAP, self.origins))

    def online_lot_page(self, params: dict, body: bytes, object_id: str, slug: str, lot_slug: str) -> Answer:
        lot = self.catalogue.lots.get(object_id)
        if lot is None or not self.catalogue.sale_of(lot).is_online:
            return NOT_FOUND
        return html_answer(payloads.online_lot_page_html(self.catalogue, lot, self.origins))

    def search_lots(self, params: dict, body: bytes) -> Answer:
        """GET ?saleid=<online id>&page=P[&loadall=true], or POST with a JSON body of the same fields."""
        if body:
            try:
                posted = json.loads(body)
            except json.JSONDecodeError as error:
                raise BadRequest(f"request body: invalid JSON ({error})") from None
            params = {**params, **{k.lower(): str(v) for k, v in posted.items() if v is not None}}
        online_id = params.get("saleid", "")
        if not online_id:
            raise BadRequest("query parameter 'saleid' is required")
        sale = self.catalogue.sale_by_online_id(online_id)
        if sale is None:
            return json_answer({"lots": [], "total_pages": 0, "total_hits_filtered": 0, "filters": {"groups": []}})
        page = int_param(params, "page", default=1)
        all_lots = self.catalogue.lots_of(sale)
        if params.get("loadall", "").lower() == "true":
            page_size, lots = max(1, len(all_lots)), all_lots if page == 1 else []
        else:
            page_size = min(PAGE_SIZE_CAP, int_param(params, "pagesize", default=ONLINE_PAGE_SIZE))
            lots = all_lots[(page - 1) * page_size: page * page_size]
        return json_answer(payloads.online_lots_data(self.catalogue, sale, lots, page_size, self.origins, page))


ANY_GET = ("GET", "HEAD")
WWW_ROUTES = (
    (re.compile(r"/robots\.txt"), "robots", "robots_www", ANY_GET),
    (re.compile(r"/api/discoverywebsite/auctioncalendar/auctionresults/?", re.I), "calendar", "calendar_json",
     ANY_GET),
    (re.compile(r"/en/results/?", re.I), "calendar", "calendar_html", ANY_GET),
    (re.compile(r"/en/results/(?P<year>\d{4})/(?P<month>\d{1,2})/?", re.I), "calendar_ld", "calendar_json_ld",
     ANY_GET),
    (re.compile(r"/api/discoverywebsite/auctionpages/lotsearch/?", re.I), "lotsearch", "lotsearch", ANY_GET),
    (re.compile(r"/en/auction/[a-z0-9-]*?-(?P<event_id>\d+)(?:/(?:browse-lots)?)?", re.I), "sale_page",
     "sale_page", ANY_GET),
    (re.compile(r"/en/lot/lot-(?P<object_id>\d+)/?", re.I), "lot_page", "lot_page", ANY_GET),
    (re.compile(r"(?P<path>/img/lotimages/.+\.jpg)", re.I), "image", "image", ANY_GET),
)
ONLINE_ROUTES = (
    (re.compile(r"/robots\.txt"), "robots", "robots_online", ANY_GET),
    (re.compile(r"/sso/?", re.I), "sso", "sso", ANY_GET),
    (re.compile(r"/s/(?P<slug>[^/]+)/lots/(?P<online_id>\d+)/?", re.I), "sale_page", "online_sale_page", ANY_GET),
    (re.compile(r"/s/(?P<slug>[^/]+)/(?P<lot_slug>[^/]+)/(?P<object_id>\d+)/?", re.I), "lot_page",
     "online_lot_page", ANY_GET),
    (re.compile(r"/sale/searchLots/?", re.I), "searchLots", "search_lots", ANY_GET + ("POST",)),
)


class _OriginServer(ThreadingHTTPServer):
    request_queue_size = LISTEN_BACKLOG
    daemon_threads = True
    allow_reuse_address = True
    block_on_close = False

    def __init__(self, address: tuple[str, int], site: DemoSite, origin: str):
        self.site = site
        self.origin = origin
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "ChristiesDemo/1.0"
    timeout = KEEP_ALIVE_IDLE_S
    server: _OriginServer

    def log_message(self, format: str, *args) -> None:   # noqa: A002 - quiet: no line per request
        pass

    def do_GET(self) -> None:   # noqa: N802 - http.server's naming
        self.answer("GET")

    def do_HEAD(self) -> None:   # noqa: N802
        self.answer("HEAD")

    def do_POST(self) -> None:   # noqa: N802
        self.answer("POST")

    def answer(self, method: str) -> None:
        site = self.server.site
        parts = urlsplit(self.path)
        request_body = self.read_body()
        kind, handler = site.route(self.server.origin, "GET" if method == "HEAD" else method, parts.path)
        url = f"{parts.path}?{parts.query}"
        attempt = site.counters.record_request(kind, self.server.origin, url)
        fault = site.faults.fault_for(url, kind, attempt)
        if fault:
            site.counters.record_fault(fault)
            if self.answered_by_fault(fault, method):
                return
        try:
            result = handler(query_params(parts.query), request_body)
        except BadRequest as error:
            result = json_answer({"error": str(error), "path": parts.path}, status=400)
        if fault == fault_kinds.CORRUPT_IMAGE and result.status == 200:
            result = Answer(result.status, fault_kinds.corrupt(result.body), result.content_type, result.headers)
        if fault == fault_kinds.TRUNCATED_JSON and result.status == 200:
            return self.send_truncated(result, site.faults.truncation_keeps_length(url))
        self.send(result, method)

    def answered_by_fault(self, fault: str, method: str) -> bool:
        """Faults that replace the answer (503, 429, reset) are sent here; a slow fault waits, then lets the
        normal answer through; body faults (truncated, corrupt) are applied to the normal answer later."""
        config = self.server.site.faults
        if fault in (fault_kinds.ALL_ERRORS, fault_kinds.UNAVAILABLE):
            self.send(Answer(503, b"Service Unavailable", "text/plain"), method)
        elif fault == fault_kinds.TOO_MANY:
            self.send(Answer(429, b"Too Many Requests", "text/plain", (("Retry-After", str(config.retry_after_s)),)),
                      method)
        elif fault == fault_kinds.RESET:
            self.reset_connection()
        else:
            if fault == fault_kinds.SLOW:
                time.sleep(config.slow_s)
            return False
        return True

    def read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def send(self, answer: Answer, method: str = "GET") -> None:
        self.send_response(answer.status)
        self.send_header("Content-Type", answer.content_type)
        self.send_header("Content-Length", str(len(answer.body)))
        for name, value in answer.headers:
            self.send_header(name, value)
        self.end_headers()
        if method != "HEAD" and answer.body:
            self.server.site.counters.record_bytes(len(answer.body))   # before: the client may read stats next
            self.wfile.write(answer.body)

    def send_truncated(self, answer: Answer, keep_length: bool) -> None:
        """Half the body: under the full Content-Length (then close), or under its own short length."""
        cut = fault_kinds.truncate(answer.body)
        self.send_response(200)
        self.send_header("Content-Type", answer.content_type)
        self.send_header("Content-Length", str(len(answer.body) if keep_length else len(cut)))
        self.end_headers()
        self.server.site.counters.record_bytes(len(cut))
        self.wfile.write(cut)
        if keep_length:
            self.close_connection = True

    def reset_connection(self) -> None:
        """Close the socket without answering; SO_LINGER 0 makes the close a TCP reset."""
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
        except OSError:
            pass

    def handle_one_request(self) -> None:
        try:
            super().handle_one_request()
        except (ConnectionError, BrokenPipeError, socket.timeout):
            self.close_connection = True
