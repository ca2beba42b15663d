"""Pure parsing of Christie's responses: no Scrapy, no I/O.

Everything the spiders need to turn a calendar, lot-list or lot page into records lives here, so it can be
tested on the sample payloads in `christies-samples/` without a network. Facts about the formats:
`/work/shared/reference/christies-site.md` §2 and §7 (numbers are ints on www, `"18000.00"` strings on
onlineonly, `""` or null when missing; JSON inside HTML is assigned to a JS variable and may contain `});`).
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit, urlunsplit

from parsel import Selector  # ships with Scrapy

# Markers after which a JSON object is assigned in the HTML pages.
LOTS_MARKER = "window.chrComponents.lots ="
COMPONENTS_MARKER = "window.chrComponents ="
CALENDAR_MARKER = "window.chrComponents.calendar ="
DATA_MARKER = "data:"
LOT_HEADER_MARKER = re.compile(r"window\.chrComponents\.lotHeader_\d+\s*=")
BRI_MARKER = "window.briDataModel ="
JSON_LD_SCRIPT = re.compile(r"<script[^>]*type\s*=\s*[\"']application/ld\+json[\"'][^>]*>(.*?)</script\s*>",
                            re.IGNORECASE | re.DOTALL)

# No image: the www placeholder, and the onlineonly roundel some addresses get instead of the lot image (§12).
NO_IMAGE_PATTERN = re.compile(r"/alert/noimage/|non_noimag|christies-roundel\.svg", re.IGNORECASE)
ENCODED_PARENTHESES = (("%28", "("), ("%29", ")"))
# Where each saleroom keeps its calendar: www writes a sale's local midnight in UTC (§12), so the day is read
# in the saleroom's zone. Matched as a word in the calendar's location_txt, first match wins.
SALEROOM_ZONES = (
    ("new york", "America/New_York"), ("los angeles", "America/Los_Angeles"), ("london", "Europe/London"),
    ("paris", "Europe/Paris"), ("geneva", "Europe/Zurich"), ("zurich", "Europe/Zurich"), ("milan", "Europe/Rome"),
    ("amsterdam", "Europe/Amsterdam"), ("brussels", "Europe/Brussels"), ("madrid", "Europe/Madrid"),
    ("monaco", "Europe/Monaco"), ("dusseldorf", "Europe/Berlin"), ("düsseldorf", "Europe/Berlin"),
    ("hong kong", "Asia/Hong_Kong"), ("shanghai", "Asia/Shanghai"), ("beijing", "Asia/Shanghai"),
    ("singapore", "Asia/Singapore"), ("tokyo", "Asia/Tokyo"), ("dubai", "Asia/Dubai"), ("mumbai", "Asia/Kolkata"),
    ("tel aviv", "Asia/Jerusalem"),
)
LOT_KEY_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
MONTH_PATTERN = re.compile(r"^(\d{4})-(\d{2})$")
SALE_NUMBER_IN_TEXT = re.compile(r"\b(\d{4,6})\b")
SALE_NUMBER_IN_ANALYTICS = re.compile(r"^Sale-(\d+)$", re.IGNORECASE)
CATEGORY_ID = re.compile(r"category_\d+")
ISO_DATE = re.compile(r"^(\d{4}-\d{2}-\d{2})")
CURRENCY_CODE = re.compile(r"^\s*(?:Estimate:\s*)?([A-Z]{3})\b")
# Longest symbols first: "HK$" must win over "$".
CURRENCY_SYMBOLS = (("HK$", "HKD"), ("A$", "AUD"), ("US$", "USD"), ("€", "EUR"), ("£", "GBP"), ("$", "USD"))
BREAK_TAG = re.compile(r"<\s*br\s*/?\s*>|</\s*p\s*>|</\s*div\s*>", re.IGNORECASE)
ANY_TAG = re.compile(r"<[^>]+>")
DIMENSION_LINE = re.compile(r"\d\s*(?:in\b|in\.|cm\b|cm\.|mm\b)", re.IGNORECASE)
SIGNATURE_LINE = re.compile(
    r"^(signed|inscribed|stamped|dated|numbered|titled|with|bears|initialled|monogrammed|incised)\b",
    re.IGNORECASE,
)
EXECUTION_LINE = re.compile(r"^(painted|executed|conceived|drawn|printed|cast|made|photographed)\b", re.IGNORECASE)

# Fields of a lot record, in export order (docs/CONTRACTS.md).
LOT_FIELDS = (
    "lot_key", "object_id", "sale_id", "sale_number", "sale_title", "sale_location", "sale_date",
    "sale_start_date", "sale_kind", "category_ids", "lot_number", "maker", "title", "description", "estimate_low",
    "estimate_high", "currency", "price_realised", "sold", "withdrawn", "lot_url", "image_url",
)


class ExtractionError(ValueError):
    """A page does not contain the JSON object a parser expected."""


# ---------------------------------------------------------------- JSON inside HTML


def _balanced_end(text: str, start: int) -> int:
    """Index just past the JSON value opening at `text[start]` (`{` or `[`), skipping brackets inside strings.

    Raises:
        ExtractionError: the brackets never balance (truncated page).
    """
    depth = 0
    in_string = False
    escaped = False
    for index in range(start, len(text)):
        char = text[index]
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "{[":
            depth += 1
        elif char in "}]":
            depth -= 1
            if depth == 0:
                return index + 1
    raise ExtractionError(f"unbalanced JSON starting at offset {start} (truncated page?)")


def _marker_ends(text: str, marker: str | re.Pattern[str], start: int) -> Iterator[int]:
    if isinstance(marker, re.Pattern):
        for match in marker.finditer(text, start):
            yield match.end()
        return
    position = text.find(marker, start)
    while position != -1:
        yield position + len(marker)
        position = text.find(marker, position + 1)


def extract_json(text: str, marker: str | re.Pattern[str], start: int = 0) -> Any:
    """Parse the first JSON object that follows `marker` in `text` (whitespace allowed between them).

    Occurrences of the marker not followed by `{` are skipped: pages start with
    `window.chrComponents = window.chrComponents || {};` before the real assignment.

    Raises:
        ExtractionError: no occurrence of the marker is followed by a balanced, valid JSON object.
    """
    for end in _marker_ends(text, marker, start):
        open_at = end
        while open_at < len(text) and text[open_at].isspace():
            open_at += 1
        if open_at >= len(text) or text[open_at] != "{":
            continue
        close_at = _balanced_end(text, open_at)
        try:
            return json.loads(text[open_at:close_at])
        except json.JSONDecodeError as exc:
            raise ExtractionError(f"invalid JSON after {marker!r}: {exc}") from exc
    raise ExtractionError(f"no JSON object after {marker!r}")


def calendar_from_html(text: str) -> dict[str, Any]:
    """The calendar payload of an `/en/results` page: the strict-JSON `data:` member of a JS object literal."""
    anchor = text.find(CALENDAR_MARKER)
    if anchor == -1:
        raise ExtractionError(f"no {CALENDAR_MARKER!r} in the page")
    return extract_json(text, DATA_MARKER, start=anchor)


def json_ld_events(text: str) -> list[dict[str, Any]]:
    """Every schema.org `Event` (or subtype `…Event`) in a page's `application/ld+json` scripts, `@graph`
    and lists walked; a script that is not valid JSON is skipped (one bad block must not hide the others)."""
    events: list[dict[str, Any]] = []

    def walk(node: Any) -> None:
        if isinstance(node, list):
            for item in node:
                walk(item)
        elif isinstance(node, dict):
            kinds = node.get("@type")
            kinds = kinds if isinstance(kinds, list) else [kinds]
            if any(isinstance(kind, str) and kind.endswith("Event") for kind in kinds):
                events.append(node)
            walk(node.get("@graph"))

    for match in JSON_LD_SCRIPT.finditer(text):
        try:
            walk(json.loads(html.unescape(match.group(1)).strip() or "null"))
        except json.JSONDecodeError:
            continue
    return events


def ends_after(value: Any, now: datetime) -> bool:
    """True when `value` is an ISO instant after `now` (a naive one read as UTC); False when it is not one."""
    try:
        stamp = datetime.fromisoformat(str(value).strip())
    except ValueError:
        return False
    return (stamp if stamp.tzinfo else stamp.replace(tzinfo=timezone.utc)) > now


def sales_from_json_ld(events: list[Mapping[str, Any]], base_url: str, online_base_url: str,
                       now: datetime | None = None) -> list[Sale]:
    """Sales of a results month read from JSON-LD `Event`s (the third calendar route, christies-site.md §12).

    They carry no event id, sale number, category or status: `sale_id` and `sale_number` are `""` until the
    sale page's `briDataModel` names them (`sale_identity`), and every sale that has ended by `now` is kept
    (category_ids empty): the clean stage keeps the 2-D works by their medium. Events without a URL, or
    ending after `now` (not results yet), are skipped.
    """
    now = now or datetime.now(timezone.utc)
    sales = []
    for event in events:
        url = str(event.get("url") or "").strip()
        if not url or ends_after(event.get("endDate"), now):
            continue
        location = event.get("location")
        location = location.get("name") if isinstance(location, dict) else location
        location = str(location or "")
        landing = urljoin(base_url + "/", url)
        sales.append(Sale(
            sale_id="", sale_number="", title=str(event.get("name") or ""), location=location,
            sale_date=sale_day(event.get("endDate"), location) or sale_day(event.get("startDate"), location),
            sale_start_date=opening_day(sale_day(event.get("startDate"), location),
                                        sale_day(event.get("endDate"), location)),
            kind=sale_kind_of(landing, online_base_url), category_ids=(), landing_url=landing,
        ))
    return sales


def opening_day(start: str | None, end: str | None) -> str | None:
    """The sale's first day: its start, or its end when the start is missing or later than the end (www data
    for online-only sales can be stale, christies-site.md §12): never after the sale's day."""
    return min(start, end) if start and end else start or end


def sale_identity(text: str, sale: Sale) -> Sale:
    """`sale` with its id and number from the sale page: `window.briDataModel.saleData` (`saleId`,
    `saleNumber`, `saleTitle`, `location`), else the lots component's `sale` block / lot-search parameters.

    Raises:
        ExtractionError: the page names no sale id in either place.
    """
    sale_data: Mapping[str, Any] = {}
    if BRI_MARKER in text:
        model = extract_json(text, BRI_MARKER)
        sale_data = model.get("saleData") if isinstance(model.get("saleData"), dict) else {}
    sale_id, number = str(sale_data.get("saleId") or ""), str(sale_data.get("saleNumber") or "")
    if not sale_id:
        data = lots_data_from_html(text)
        block = data.get("sale") if isinstance(data.get("sale"), dict) else {}
        endpoint = data.get("lot_search_api_endpoint") or {}
        query = endpoint.get("parameters") if isinstance(endpoint, dict) else None
        query = query if isinstance(query, dict) else {}
        sale_id = str(block.get("event_id") or query.get("saleid") or "")
        number = number or str(block.get("sale_number") or query.get("salenumber") or "")
    if not sale_id.strip():
        raise ExtractionError("the sale page names no sale id (no briDataModel.saleData.saleId, no lots data)")
    return replace(sale, sale_id=sale_id.strip(), sale_number=number.strip(),
                   title=sale.title or str(sale_data.get("saleTitle") or ""),
                   location=sale.location or str(sale_data.get("location") or ""))


def lots_data_from_html(text: str) -> dict[str, Any]:
    """The `lots.data` object of a sale page: www assigns `window.chrComponents.lots = {"data": ...}`,
    onlineonly assigns the whole `window.chrComponents = {"lots": {"data": ...}, ...}` at once.

    Raises:
        ExtractionError: neither form is present, or it has no `data` object.
    """
    if LOTS_MARKER in text:
        component = extract_json(text, LOTS_MARKER)
    else:
        component = extract_json(text, COMPONENTS_MARKER).get("lots")
    data = component.get("data") if isinstance(component, dict) else None
    if not isinstance(data, dict):
        raise ExtractionError("the lots component has no 'data' object")
    return data


# ---------------------------------------------------------------- small typed conversions


def parse_amount(value: Any) -> float | None:
    """An estimate or price as a float: `60000`, `60000.0`, `"18000.00"`, `"1,500"` → float; `""`, null → None.

    Raises:
        ValueError: a non-empty value that is not a number (a bool counts as not a number).
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(f"not an amount: {value!r}")
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        cleaned = value.strip().replace(",", "")
        if not cleaned:
            return None
        return float(cleaned)
    raise ValueError(f"not an amount: {value!r}")


def currency_of(*texts: Any) -> str | None:
    """The ISO currency of the first text that names one: `"USD 60,000 - 80,000"` → USD, `"HK$12,000"` → HKD."""
    for text in texts:
        if not isinstance(text, str) or not text.strip():
            continue
        match = CURRENCY_CODE.match(text)
        if match:
            return match.group(1)
        stripped = text.strip().removeprefix("Estimate:").strip()
        for symbol, code in CURRENCY_SYMBOLS:
            if stripped.startswith(symbol):
                return code
    return None


def html_to_text(fragment: Any) -> str:
    """Catalogue HTML to plain text: `<br>` and block ends become line breaks, tags go, entities decode."""
    if not isinstance(fragment, str):
        return ""
    text = ANY_TAG.sub("", BREAK_TAG.sub("\n", fragment))
    lines = (" ".join(html.unescape(line).split()) for line in text.split("\n"))
    return "\n".join(line for line in lines if line)


def iso_date(value: Any) -> str | None:
    """`"2019-05-16T00:00:00"` → `"2019-05-16"` (no timezone is supplied, the date is kept as given)."""
    if not isinstance(value, str):
        return None
    match = ISO_DATE.match(value.strip())
    return match.group(1) if match else None


def saleroom_zone(location: Any) -> ZoneInfo | None:
    """The time zone of the saleroom named in a calendar `location_txt`, or None when it is not known."""
    text = f" {str(location or '').lower()} "
    for name, zone in SALEROOM_ZONES:
        if re.search(rf"\b{re.escape(name)}\b", text):
            return ZoneInfo(zone)
    return None


def sale_day(value: Any, location: Any) -> str | None:
    """The sale's day in its saleroom, `YYYY-MM-DD`, from any form www writes (§12): naive
    `2019-05-16T00:00:00` is already local and kept as given; an instant (`Z`, `.000Z`, `+00:00`) is read in the
    saleroom's zone, so a London sale written `2019-05-15T23:00:00Z` is the 16th. For a saleroom not in
    SALEROOM_ZONES, an instant on a whole hour (or :30, :45) is taken as a local midnight written in UTC, which
    lies within 12 hours of the UTC midnight of its day (every saleroom is between UTC-12 and UTC+12); any
    other instant keeps its UTC date."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        stamp = datetime.fromisoformat(value.strip())
    except ValueError:
        return iso_date(value)
    if stamp.tzinfo is None:
        return stamp.date().isoformat()
    zone = saleroom_zone(location)
    if zone is not None:
        return stamp.astimezone(zone).date().isoformat()
    utc = stamp.astimezone(timezone.utc)
    if utc.second == 0 and utc.microsecond == 0 and utc.minute in (0, 30, 45):  # a zone's midnight, in UTC
        return (utc + timedelta(hours=12)).date().isoformat()
    return utc.date().isoformat()  # a true instant (an online lot's close): no better guess without the zone


def strip_query(url: str) -> str:
    """The URL without its query string and fragment."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def image_url_of(lot: Mapping[str, Any], base_url: str) -> str | None:
    """The lot's primary image without the rendition query; None when absent or the no-image placeholder."""
    image = lot.get("image") or {}
    if not isinstance(image, dict):
        return None
    for key in ("image_src", "image_url", "image_desktop_src"):
        src = image.get(key)
        if isinstance(src, str) and src.strip():
            url = strip_query(urljoin(base_url + "/", src.strip()))
            for encoded, plain in ENCODED_PARENTHESES:  # one URL per image, however the site quotes it
                url = re.sub(encoded, plain, url, flags=re.IGNORECASE)
            return None if NO_IMAGE_PATTERN.search(url) else url
    return None


def rendition_url(image_url: str, width: int) -> str:
    """The image URL asking the image server for a rendition at most `width` pixels wide (`?mode=max&w=512`)."""
    return f"{strip_query(image_url)}?{urlencode({'mode': 'max', 'w': int(width)})}"


def rebase_url(url: str, base_url: str | None) -> str:
    """`url` with its scheme and host replaced by those of `base_url` (unchanged when `base_url` is empty)."""
    if not base_url:
        return url
    base = urlsplit(base_url)
    parts = urlsplit(url)
    return urlunsplit((base.scheme, base.netloc, parts.path, parts.query, parts.fragment))


def lot_key(sale_kind: str, sale_id: str, object_id: str) -> str:
    """`www-<sale_id>-<object_id>` or `oo-<sale_id>-<object_id>`, safe as a file name (docs/CONTRACTS.md)."""
    prefix = "oo" if sale_kind == "online" else "www"
    return LOT_KEY_UNSAFE.sub("_", f"{prefix}-{sale_id}-{object_id}")


def months(start: str, end: str) -> list[tuple[int, int]]:
    """Every (year, month) from `start` to `end` inclusive, both `YYYY-MM`.

    Raises:
        ValueError: a bound is not `YYYY-MM` with a month 1..12, or `end` is before `start`.
    """
    bounds = []
    for name, value in (("start", start), ("end", end)):
        match = MONTH_PATTERN.match(str(value).strip())
        if not match or not 1 <= int(match.group(2)) <= 12:
            raise ValueError(f"{name}={value!r}: expected YYYY-MM")
        bounds.append((int(match.group(1)), int(match.group(2))))
    (year, month), last = bounds
    if (year, month) > last:
        raise ValueError(f"end={end!r} is before start={start!r}")
    result = []
    while (year, month) <= last:
        result.append((year, month))
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return result


# ---------------------------------------------------------------- URLs


def calendar_api_url(base_url: str, year: int, month: int, component: str) -> str:
    query = urlencode({"language": "en", "month": month, "year": year, "component": component})
    return f"{base_url}/api/discoverywebsite/auctioncalendar/auctionresults?{query}"


def calendar_page_url(base_url: str, year: int, month: int) -> str:
    return f"{base_url}/en/results?{urlencode({'month': month, 'year': year})}"


def calendar_json_ld_url(base_url: str, year: int, month: int) -> str:
    """The results month as a path (`/en/results/2019/05`): its page carries JSON-LD `Event`s (§12)."""
    return f"{base_url}/en/results/{year:04d}/{month:02d}"


def lotsearch_url(base_url: str, sale_id: str, sale_number: str, page: int, page_size: int) -> str:
    query = urlencode({
        "action": "paging", "language": "en", "page": page, "pagesize": page_size, "saleid": sale_id,
        "salenumber": sale_number, "saletype": "Sale", "sortby": "lotnumber",
    })
    return f"{base_url}/api/discoverywebsite/auctionpages/lotsearch?{query}"


def search_lots_url(online_base_url: str, online_sale_id: str, page: int) -> str:
    query = urlencode({
        "action": "paging", "language": "en", "page": page, "saleid": online_sale_id, "sid": "",
        "sortby": "LotNumber", "loadall": "true",
    })
    return f"{online_base_url}/sale/searchLots?{query}"


def sale_page_url(sale_url: str, page: int) -> str:
    """The sale page showing lots 1..page×84 (`?page=N` is cumulative on Christie's sale pages)."""
    parts = urlsplit(sale_url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode({"page": page}), ""))


def www_lot_url(base_url: str, object_id: str) -> str:
    return f"{base_url}/en/lot/lot-{object_id}"


# ---------------------------------------------------------------- calendar → sales


@dataclass(frozen=True)
class Sale:
    """A closed sale of a kept category, as read from a calendar event."""

    sale_id: str
    sale_number: str
    title: str
    location: str
    sale_date: str | None
    kind: str  # "live" (www lot search) or "online" (onlineonly searchLots)
    category_ids: tuple[str, ...]
    landing_url: str
    sale_start_date: str | None = None  # the day a timed online sale opened; None: sale_date (a one-day sale)


def sale_number_of(event: Mapping[str, Any]) -> str:
    """The sale number from `subtitle_txt` ("Live Auction 17123 | CLOSED"), `analytics_id` ("Sale-17123")
    or `SaleNumber=` in an onlineonly landing URL; `""` when none has one."""
    match = SALE_NUMBER_IN_TEXT.search(str(event.get("subtitle_txt") or ""))
    if match:
        return match.group(1)
    match = SALE_NUMBER_IN_ANALYTICS.match(str(event.get("analytics_id") or "").strip())
    if match:
        return match.group(1)
    query = parse_qs(urlsplit(str(event.get("landing_url") or "")).query)
    values = {key.lower(): value for key, value in query.items()}.get("salenumber")
    return values[0] if values else ""


def sale_kind_of(landing_url: str, online_base_url: str) -> str:
    """`online` when the landing URL is on the onlineonly host (or is its `sso` link), else `live`."""
    landing = urlsplit(landing_url)
    online_host = urlsplit(online_base_url).netloc
    if landing.netloc and landing.netloc == online_host:
        return "online"
    if landing.netloc.startswith("onlineonly.") or landing.path.rstrip("/").endswith("/sso"):
        return "online"
    return "live"


def event_categories(event: Mapping[str, Any]) -> tuple[str, ...]:
    """The `category_N` ids of a pipe-delimited `filter_ids` string, in order, without repeats."""
    found = CATEGORY_ID.findall(str(event.get("filter_ids") or ""))
    return tuple(dict.fromkeys(found))


def sales_from_calendar(
    calendar: Mapping[str, Any], categories: set[str] | frozenset[str], base_url: str, online_base_url: str
) -> list[Sale]:
    """The calendar's CLOSED sales whose `filter_ids` name one of `categories` (results exist only for those).

    Raises:
        ExtractionError: the payload has no `events` list.
    """
    events = calendar.get("events")
    if not isinstance(events, list):
        raise ExtractionError("calendar payload has no 'events' list")
    sales = []
    for event in events:
        if not isinstance(event, dict) or "CLOSED" not in str(event.get("subtitle_txt") or "").upper():
            continue
        kept = tuple(category for category in event_categories(event) if category in categories)
        if not kept or not event.get("event_id"):
            continue
        landing = urljoin(base_url + "/", str(event.get("landing_url") or ""))
        sales.append(Sale(
            sale_id=str(event["event_id"]),
            sale_number=sale_number_of(event),
            title=str(event.get("title_txt") or ""),
            location=str(event.get("location_txt") or ""),
            sale_date=(sale_day(event.get("end_date"), event.get("location_txt"))
                       or sale_day(event.get("start_date"), event.get("location_txt"))),
            sale_start_date=opening_day(sale_day(event.get("start_date"), event.get("location_txt")),
                                        sale_day(event.get("end_date"), event.get("location_txt"))),
            kind=sale_kind_of(landing, online_base_url),
            category_ids=kept,
            landing_url=landing,
        ))
    return sales


def open_sales_in_calendar(calendar: Mapping[str, Any], categories: set[str] | frozenset[str]) -> int:
    """How many events of `categories` the calendar lists that are not CLOSED (open or upcoming sales: their
    results are not final, so the month is asked again next time)."""
    return sum(1 for event in calendar.get("events") or [] if isinstance(event, dict)
               and "CLOSED" not in str(event.get("subtitle_txt") or "").upper()
               and any(category in categories for category in event_categories(event)))


# ---------------------------------------------------------------- lot object → record


def _amount_or_raw(value: Any) -> Any:
    """A parsed amount, or the raw value when it is not one, so that validation rejects it with a reason."""
    try:
        return parse_amount(value)
    except ValueError:
        return value


def _online_header_price(lot: Mapping[str, Any]) -> Any:
    static = lot.get("online_only_static_lot_data")
    return static.get("header_price") if isinstance(static, dict) else None


def lot_url_of(lot: Mapping[str, Any], sale: Sale, base_url: str, online_base_url: str) -> str:
    """`<base>/en/lot/lot-<object_id>` for www (list `url`s may be 404ing sso links); the lot's own URL
    without its query for onlineonly."""
    object_id = str(lot.get("object_id") or "")
    if sale.kind == "online" and isinstance(lot.get("url"), str) and lot["url"].strip():
        return strip_query(urljoin(online_base_url + "/", lot["url"].strip()))
    return www_lot_url(base_url, object_id)


def lot_record(lot: Mapping[str, Any], sale: Sale, base_url: str, online_base_url: str) -> dict[str, Any]:
    """One lot of a list payload as a record with the fields of docs/CONTRACTS.md.

    Values that cannot be typed (an estimate of `"n/a"`) are kept raw so that validation rejects the lot with
    a reason instead of this function guessing.
    """
    object_id = str(lot.get("object_id") or "").strip()
    withdrawn = lot.get("lot_withdrawn") is True
    price = _amount_or_raw(lot.get("price_realised"))
    if withdrawn or lot.get("is_unsold") is True or price == 0.0:
        price = None
    sold = isinstance(price, float) and price > 0
    return {
        "lot_key": lot_key(sale.kind, sale.sale_id, object_id),
        "object_id": object_id,
        "sale_id": sale.sale_id,
        "sale_number": sale.sale_number,
        "sale_title": sale.title,
        "sale_location": sale.location,
        "sale_date": sale.sale_date,
        "sale_start_date": sale.sale_start_date or sale.sale_date,
        "sale_kind": sale.kind,
        "category_ids": list(sale.category_ids),
        "lot_number": str(lot.get("lot_id_txt") or lot.get("lot_number") or "").strip(),
        "maker": str(lot.get("title_primary_txt") or "").strip(),
        "title": str(lot.get("title_secondary_txt") or "").strip(),
        "description": html_to_text(lot.get("description_txt")),
        "estimate_low": _amount_or_raw(lot.get("estimate_low")),
        "estimate_high": _amount_or_raw(lot.get("estimate_high")),
        "currency": currency_of(lot.get("price_realised_txt"), lot.get("estimate_txt"), _online_header_price(lot)),
        "price_realised": price,
        "sold": sold,
        "withdrawn": withdrawn,
        "lot_url": lot_url_of(lot, sale, base_url, online_base_url),
        "image_url": image_url_of(lot, base_url),
    }


def list_page(data: Mapping[str, Any]) -> tuple[list[dict[str, Any]], int | None, int | None]:
    """`(lots, total_hits_filtered, total_pages)` of a lotsearch / searchLots / embedded `lots.data` payload.

    Raises:
        ExtractionError: the payload has no `lots` list.
    """
    lots = data.get("lots")
    if not isinstance(lots, list):
        raise ExtractionError("list payload has no 'lots' list")
    return [lot for lot in lots if isinstance(lot, dict)], _int_or_none(data.get("total_hits_filtered")), \
        _int_or_none(data.get("total_pages"))


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value) if value not in (None, "") and not isinstance(value, bool) else None
    except (TypeError, ValueError):
        return None


def online_sale_id(data: Mapping[str, Any]) -> str | None:
    """The onlineonly sale id that `searchLots` wants (it differs from the calendar's `event_id`)."""
    endpoint = data.get("lot_search_api_endpoint") or {}
    parameters = endpoint.get("parameters") if isinstance(endpoint, dict) else None
    saleid = parameters.get("saleid") if isinstance(parameters, dict) else None
    return str(saleid) if saleid not in (None, "") else None


# ---------------------------------------------------------------- lot page details


@dataclass(frozen=True)
class LotDetails:
    medium: str | None
    dimensions: str | None


def split_details(lines: list[str]) -> LotDetails:
    """Medium and dimension lines of a lot's Details text.

    The order on Christie's pages is: artist, title, signature/inscription lines, medium, dimensions,
    "Painted in …". The medium is the last plain line before the first dimension line.
    """
    body = lines[2:] if len(lines) > 2 else []
    medium = None
    for line in body:
        if DIMENSION_LINE.search(line):
            return LotDetails(medium=medium, dimensions=line)
        if not SIGNATURE_LINE.match(line) and not EXECUTION_LINE.match(line):
            medium = line
    return LotDetails(medium=medium, dimensions=None)


def details_lines_from_html(page: str) -> list[str]:
    """The lines of the "Details" accordion of a www lot page (`<br>`-separated in the page), or []."""
    selector = Selector(text=page)
    for item in selector.css("chr-accordion-item"):
        header = " ".join(item.css('div[slot="header"] ::text').getall()).strip()
        if header.lower() == "details":
            fragment = item.css("span.chr-lot-section__accordion--text").get() or ""
            return html_to_text(fragment).split("\n") if fragment else []
    return []
