"""The demo site's responses: JSON and HTML in the shapes of `reference/christies-samples/`.

Pure functions from catalogue records to payloads; `server.py` does the HTTP. Every URL inside a payload
is built from the two origins the server listens on. Typing traps are those of the real site: numbers on
www lots (ints or floats, per sale, sometimes "15000.0" strings), "18000.00" strings on online-only lots,
"" for missing values, `lot_withdrawn: null` on online lots that were not withdrawn.
"""

from __future__ import annotations

import calendar
import datetime as dt
import json
import zlib
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from scraper.demo.catalogue import Artist, Catalogue, Lot, Sale, money, slugify

CALENDAR_COMPONENT = "e7d92272-7bcc-4dba-ae5b-28e4f3729ae8"
SERVER_TIME = "2026-01-01T00:00:00.000Z"     # fixed: responses are byte-identical across runs
CATEGORY_LABELS = {
    "category_7": "Fine Art", "category_8": "Furniture & Decorative Art",
    "category_9": "Jewellery, Watches & Handbags", "category_11": "Photographs & Prints",
    "category_14": "Wines & Spirits",
}
# Lot-level "Item Category" facet (lotsearch filterids=CoaCategories{...}).
ITEM_CATEGORY = {
    "painting": "Paintings", "drawing": "Drawings & Watercolors", "print": "Prints & Multiples",
    "photograph": "Photographs", "sculpture": "Sculptures, Statues & Figures",
    "other": "All other categories of objects",
}
PROVENANCE = ("Private collection, Europe.", "Galerie Amsel, Basel.<br>Acquired from the above by the present owner.",
              "The artist's studio.<br>Thence by descent.")


@dataclass(frozen=True)
class Origins:
    www: str        # e.g. http://127.0.0.1:8800
    online: str     # e.g. http://127.0.0.1:8801


# ---------------------------------------------------------------- small formatters


def typed_number(value: float | None, style: str) -> Any:
    """A money value as the sale's pages type it: int, float, "15000.0", "18000.00"; "" when missing."""
    if value is None:
        return ""
    return {"int": int(value), "float": float(value), "str1": f"{value:.1f}", "str2": f"{value:.2f}"}[style]


def day_month(day: dt.date) -> str:
    return f"{day.day} {calendar.month_name[day.month]}"


def date_display(sale: Sale) -> str:
    """'16 May' for one-day sales, '2 May – 14 May' for online sales."""
    if sale.start == sale.end:
        return day_month(sale.end)
    return f"{day_month(sale.start)} \u2013 {day_month(sale.end)}"


def naive(day: dt.date) -> str:
    return f"{day.isoformat()}T00:00:00"


def script_json(obj: Any) -> str:
    """JSON safe inside <script>: '</' is written '<\\/' (still valid JSON)."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).replace("</", "<\\/")


def html_page(title: str, body: str) -> str:
    return (f"<!DOCTYPE html>\n<html lang=\"en\">\n<head><meta charset=\"utf-8\"><title>{title} | Christie's</title>"
            f"</head>\n<body>\n{body}\n</body>\n</html>\n")


def chr_script(assignments: list[tuple[str, Any]]) -> str:
    """<script> assigning window.chrComponents members, as the site does."""
    lines = ["<script>", "    window.chrComponents = window.chrComponents || {};"]
    for name, value in assignments:
        lines.append(f"    window.chrComponents.{name} = {script_json(value)};")
    lines.append("</script>")
    return "\n".join(lines)


# ---------------------------------------------------------------- URLs


def sale_landing_url(sale: Sale, origins: Origins) -> str:
    if sale.is_online:
        return f"{origins.online}/sso?SaleID={sale.event_id}&SaleNumber={sale.sale_number}"
    return f"{origins.www}/en/auction/{sale.slug}-{sale.event_id}/"


def online_sale_url(sale: Sale, origins: Origins) -> str:
    return f"{origins.online}/s/{sale.slug}/lots/{sale.online_sale_id}"


def lot_slug(lot: Lot) -> str:
    return slugify(f"{lot.title_primary_txt} {lot.title} {lot.lot_number}", "-")[:80]


def online_lot_url(lot: Lot, sale: Sale, origins: Origins) -> str:
    return f"{origins.online}/s/{sale.slug}/{lot_slug(lot)}/{lot.object_id}?ldp_breadcrumb=back"


def www_lot_url(lot: Lot) -> str:
    return f"/en/lot/lot-{lot.object_id}"


def list_lot_url(lot: Lot, sale: Sale, origins: Origins) -> str:
    """The lot `url` in list JSON: the lot page, or the /en/sso form that 404s (as on the real site)."""
    if sale.is_online:
        return online_lot_url(lot, sale, origins)
    if sale.template.lot_url_style == "sso":
        return f"{origins.www}/en/sso?ObjectID={sale.sale_number}.{lot.lot_number}&LotNumber={lot.lot_number}"
    return origins.www + www_lot_url(lot)


def image_url(lot: Lot, origins: Origins) -> str:
    return f"{origins.www}{lot.image_path}?mode=max" if lot.image_path else ""


def image_block(lot: Lot, origins: Origins) -> dict:
    src = image_url(lot, origins)
    keys = ("image_src", "image_mobile_src", "image_tablet_src", "image_desktop_src")
    return {**{k: src for k in keys}, "image_alt_text": lot.title, "image_url": src}


# ---------------------------------------------------------------- lots


def www_lot_json(lot: Lot, sale: Sale, origins: Origins) -> dict:
    """A lot as www's lotsearch and sale pages list it (lotsearch_response.json)."""
    style = sale.template.number_style
    day = f"{sale.end.isoformat()}T00:00Z"
    return {
        "end_date_unformatted": f"{sale.end.isoformat()}T00:00:00+00:00",
        "start_date_unformatted": f"{sale.start.isoformat()}T00:00:00+00:00",
        "object_id": lot.object_id, "lot_id_txt": lot.lot_number,
        "analytics_id": f"{sale.sale_number}.{lot.lot_number}", "event_type": "LiveSale",
        "start_date": day, "end_date": day, "registration_closing_date": "", "countdown_start_date": "",
        "url": list_lot_url(lot, sale, origins),
        "title_primary_txt": lot.title_primary_txt, "title_secondary_txt": lot.title, "title_tertiary_txt": None,
        "consigner_information": lot.consigner, "description_txt": lot.description_html,
        "image": image_block(lot, origins),
        **money_block(lot, style),
        "current_bid_txt": "", "current_bid": "", "is_saved": False, "show_save": True,
        "has_no_bids": False, "bid_count_txt": "", "extended": False, "server_time": SERVER_TIME,
        "total_seconds_remaining": 0, "is_auction_over": sale.closed, "is_in_progress": False,
        "sale": {"time_zone": "", "date_txt": "", "start_date": naive(sale.start), "end_date": naive(sale.end),
                 "is_in_progress": False},
        "lot_withdrawn": lot.truth.withdrawn,
        "bid_status": {"txt": "", "status": ""}, "seconds_until_bidding": 0, "show_timer": False,
    }


def money_block(lot: Lot, style: str) -> dict:
    return {
        "estimate_visible": lot.estimate_low is not None, "estimate_on_request": False, "price_on_request": False,
        "estimate_low": typed_number(lot.estimate_low, style),
        "estimate_high": typed_number(lot.estimate_high, style),
        "estimate_txt": lot.estimate_txt,
        "price_realised": typed_number(lot.price_realised, style),
        "price_realised_txt": lot.price_realised_txt,
    }


def online_lot_json(lot: Lot, sale: Sale, origins: Origins, item_id: int) -> dict:
    """A lot as onlineonly lists it: the 2021 capture's keys plus the 2024 extra keys (strings for numbers)."""
    style = sale.template.number_style
    start, end = f"{sale.start.isoformat()}T11:00:00.000Z", f"{sale.end.isoformat()}T11:00:00.000Z"
    unique_id = f"{sale.sale_number}.{lot.lot_number}"
    currency = sale.template.currency
    header_price = (f"Estimate: {currency} {money(lot.estimate_low)} - {money(lot.estimate_high)}"
                    if lot.estimate_low is not None else "")
    return {
        "StartDateUnixTime": None, "EndDateUnixTime": None, "seconds_until_bidding": -1000000.0,
        "end_date_unformatted": "0001-01-01T00:00:00+00:00", "start_date_unformatted": "0001-01-01T00:00:00+00:00",
        "object_id": lot.object_id, "lot_id_txt": lot.lot_number, "event_type": "OnlineSale",
        "status": "post" if sale.closed else "pre",
        "start_date": start, "end_date": end, "registration_closing_date": end, "countdown_start_date": start,
        "url": list_lot_url(lot, sale, origins),
        "title_primary_txt": lot.title_primary_txt, "title_secondary_txt": lot.title, "title_tertiary_txt": None,
        "consigner_information": lot.consigner, "description_txt": lot.description_html,
        "image": image_block(lot, origins),
        **money_block(lot, style),
        "current_bid": "", "current_bid_txt": "", "is_saved": False, "show_save": True,
        "bid_details_tooltip_txt": None, "aria_open_bid_details_tooltip_txt": None, "lot_assets": None,
        "has_no_bids": lot.price_realised is None, "bid_count_txt": None, "extended": False,
        "server_time": SERVER_TIME, "total_seconds_remaining": -9000000,
        "sale": {"time_zone": "TIMEZONE", "date_txt": "DATETEXT", "start_date": start, "end_date": end,
                 "registration_close_date": None, "is_auction_over": None, "is_in_progress": False},
        "lot_withdrawn": True if lot.truth.withdrawn else None,
        "bid_status": {"txt": "", "status": ""}, "item_type": None, "trending_type": None,
        "lot_number": lot.lot_number, "is_age_check_required": False, "analytics_id": unique_id,
        "online_only_dynamic_lot_data": {
            "item_id": item_id, "next_bid": 0.0, "current_user_max_bid_amount": 0.0, "next_bid_text": "",
            "next_bid_disabled": True, "item_status": "Closed" if sale.closed else "Open"},
        "online_only_static_lot_data": {
            "item_id": item_id, "lot_id": item_id - 211, "is_live_auction_lot": False,
            "header_price": header_price, "christies_unique_identifier": unique_id},
        "is_open_for_bidding": not sale.closed,
        "bid_button_action": {"aria_button_txt": "Bid", "show": False, "is_enabled": False, "button_txt": "Bid",
                              "action_event_name": "auction-signin", "action_display": "online-modal",
                              "action_type": "id", "action_value": "online-login"},
    }


def lot_json(lot: Lot, sale: Sale, origins: Origins) -> dict:
    if sale.is_online:
        return online_lot_json(lot, sale, origins, item_id=int(lot.object_id) + 80_000)
    return www_lot_json(lot, sale, origins)


# ---------------------------------------------------------------- facets


def artist_label(artist: Artist) -> str:
    """Facet label 'Surname, First (b. 1950)'."""
    parts = artist.name.split()
    return f"{parts[-1]}, {' '.join(parts[:-1])} {artist.dates_txt('mixed')}"


def facet_groups(catalogue: Catalogue, lots: list[Lot]) -> list[dict]:
    """'Artist / Maker' and 'Item Category' facets of a sale's lots."""
    artist_counts: dict[str, int] = {}
    kind_counts: dict[str, int] = {}
    for lot in lots:
        if lot.truth.artist_key:
            artist_counts[lot.truth.artist_key] = artist_counts.get(lot.truth.artist_key, 0) + 1
        kind_counts[lot.truth.kind] = kind_counts.get(lot.truth.kind, 0) + 1
    artists = [
        {"index": 90000 + i, "type": "Artist / Maker", "label_txt": artist_label(catalogue.artist(key)),
         "id": str(90000 + i), "total": n, "hide": False}
        for i, (key, n) in enumerate(sorted(artist_counts.items()))
    ]
    kinds = [
        {"index": i + 1, "type": "Item Category", "label_txt": ITEM_CATEGORY[kind],
         "id": coa_category_id(ITEM_CATEGORY[kind]), "total": n, "hide": False}
        for i, (kind, n) in enumerate(sorted(kind_counts.items()))
    ]
    return [
        {"title_txt": "Item Category", "display": "checkbox", "id": "CoaCategories", "total": len(kinds),
         "filters": kinds},
        {"title_txt": "Artist / Maker", "low": 0, "high": 0, "display": "checkbox", "id": None,
         "total": len(artists), "filters": artists},
    ]


def coa_category_id(label: str) -> str:
    """'Drawings & Watercolors' -> 'CoaCategories{Drawings+%26+Watercolors}' (the site's filterids form)."""
    return "CoaCategories{" + label.replace("&", "%26").replace(",", "%2c").replace(" ", "+") + "}"


def filter_by_categories(lots: list[Lot], filterids: str) -> list[Lot]:
    """Apply `filterids=CoaCategories{A}|CoaCategories{B}` (OR); other groups are ignored."""
    wanted = {part for part in filterids.split("|") if part.startswith("CoaCategories{")}
    if not wanted:
        return lots
    return [lot for lot in lots if coa_category_id(ITEM_CATEGORY[lot.truth.kind]) in wanted]


# ---------------------------------------------------------------- calendar


# Salerooms whose calendar dates the demo writes as local midnight in UTC, in the forms www uses (site §12);
# the others get the naive local form. A crawler that takes the UTC date reads these sales a day early.
UTC_MIDNIGHT_FORMS = {"London": "%Y-%m-%dT%H:%M:%SZ", "Hong Kong": "%Y-%m-%dT%H:%M:%S.000Z"}
SALEROOM_ZONES = {"London": "Europe/London", "Hong Kong": "Asia/Hong_Kong"}


def calendar_date(sale: Sale, day: dt.date) -> str:
    """A calendar `start_date`/`end_date`: the saleroom's local midnight, naive or written in UTC."""
    form = UTC_MIDNIGHT_FORMS.get(sale.template.location)
    if form is None:
        return naive(day)
    local_midnight = dt.datetime.combine(day, dt.time(), ZoneInfo(SALEROOM_ZONES[sale.template.location]))
    return local_midnight.astimezone(dt.timezone.utc).strftime(form)


def calendar_event(sale: Sale, origins: Origins, total: float) -> dict:
    month_id = f"month{sale.end.month}"
    room_image = f"{origins.www}/img/SaleImages/{sale.template.room}-{sale.sale_number}-{sale.end:%m%d%Y}-1.jpg"
    return {
        "title_id": month_id, "event_id": sale.event_id, "filter_ids": sale.filter_ids,
        "is_on_view": False, "on_view_txt": "On View", "is_followed": False, "is_in_progress": False,
        "landing_url": sale_landing_url(sale, origins),
        "title_txt": sale.title, "subtitle_txt": sale.subtitle_txt,
        "date_display_txt": date_display(sale), "date_sr_txt": date_display(sale), "status_txt": None,
        "location_txt": sale.template.location, "sale_total_txt": "Sale Total" if sale.closed else "",
        "sale_total_value_txt": f"{sale.template.currency} {money(total)}" if sale.closed else "",
        "cta_txt": "View Results" if sale.closed else "View Lots",
        "image": {"alt_text": sale.title,
                  "placeholder": {"name": "px", "srcset": [{"width": 1, "src": f"{room_image}?w=1"}]},
                  "breakpoints": [{"name": "md", "srcset": [{"width": 1200, "src": f"{room_image}?w=1200"}]}]},
        "start_date": calendar_date(sale, sale.start), "end_date": calendar_date(sale, sale.end),
        "is_active": True, "is_live": not sale.is_online, "analytics_id": f"Sale-{sale.sale_number}",
    }


def month_link(year: int, month: int) -> dict:
    return {"title_txt": f"{calendar.month_name[month]} {year}",
            "url": f"api/discoverywebsite/auctioncalendar/auctionresults?language=en&month={month}&year={year}"
                   f"&component={CALENDAR_COMPONENT}"}


def shift_month(year: int, month: int, step: int) -> tuple[int, int]:
    index = year * 12 + (month - 1) + step
    return index // 12, index % 12 + 1


def calendar_payload(catalogue: Catalogue, year: int, month: int, origins: Origins) -> dict:
    """auctionresults JSON for one month (auctionresults_api.json)."""
    sales = catalogue.sales_in_month(year, month)
    events = [calendar_event(s, origins, sum(lot.price_realised or 0 for lot in catalogue.lots_of(s)))
              for s in sales]
    last_year, last_month = (int(p) for p in catalogue.months[-1].split("-"))
    next_month = shift_month(year, month, 1)
    return {
        "auction_results_api_endpoint": {
            "url": origins.www, "path": "api/discoverywebsite/auctioncalendar/auctionresults",
            "parameters": {"language": "en", "month": str(month), "year": str(year), "component": CALENDAR_COMPONENT}},
        "page_next": month_link(*next_month) if (year, month) < (last_year, last_month) else None,
        "page_previous": month_link(*shift_month(year, month, -1)),
        "options": calendar_options(year, month, last_year),
        "banners": [],
        "filters": calendar_filters(sales),
        "titles": [{"id": f"month{month}", "title_txt": calendar.month_name[month], "subtitle_txt": str(year),
                    "type": "month", "analytics_id": f"month{month}"}],
        "events": events,
    }


def calendar_options(year: int, month: int, last_year: int) -> dict:
    def group(title: str, kind: str, items: list[tuple[str, str]]) -> dict:
        return {"title_txt": title, "is_open": False, "total": len(items), "display": "select",
                "filters": [{"label_txt": label, "id": ident, "total": 0, "analytics_id": f"{title}-{ident}",
                             "type": kind, "show": True} for label, ident in items],
                "filter_groups": None, "type": None}

    months = [(calendar.month_name[m], str(m)) for m in range(1, 13)]
    years = [(str(y), str(y)) for y in range(last_year, 1997, -1)]
    return {"min_date": "1998-01-01T00:00:00", "max_date": f"{last_year}-12-31T00:00:00",
            "groups": {"month": group("Month", "month", months), "year": group("Year", "year", years)}}


def calendar_filters(sales: list[Sale]) -> dict:
    def counts(pick) -> dict[str, tuple[str, int]]:
        out: dict[str, tuple[str, int]] = {}
        for sale in sales:
            ident, label = pick(sale)
            out[ident] = (label, out.get(ident, (label, 0))[1] + 1)
        return out

    def group(title: str, kind: str, items: dict[str, tuple[str, int]]) -> dict:
        return {"title_txt": title, "is_open": False, "total": len(items), "display": "checkbox", "type": kind,
                "filters": [{"label_txt": label, "id": ident, "total": n, "analytics_id": ident, "type": kind,
                             "show": True} for ident, (label, n) in sorted(items.items())],
                "filter_groups": None}

    categories = counts(lambda s: (s.template.category, CATEGORY_LABELS[s.template.category]))
    locations = counts(lambda s: (s.template.location_id, s.template.location))
    groups = [group("Categories", "category", categories), group("Locations", "location", locations)]
    return {"total": len(sales), "groups": groups}


def results_page_html(payload: dict, filters: str) -> str:
    """/en/results: the calendar payload as `window.chrComponents.calendar = { data: {...}, labels: {} }`.

    `filters=|category_7|category_11|` keeps events carrying any of those ids (as the HTML page does).
    """
    wanted = [part for part in filters.split("|") if part]
    if wanted:
        events = [e for e in payload["events"] if any(f"|{w}|" in e["filter_ids"] for w in wanted)]
        payload = {**payload, "events": events}
    body = "\n".join([
        '<div id="calendar-root" class="chr-calendar"></div>',
        "<script>",
        "    window.chrComponents = window.chrComponents || {};",
        "    window.chrComponents.calendar = {",
        f"        data: {script_json(payload)},",
        "        labels: {}",
        "    };",
        "</script>",
    ])
    return html_page("Auction Results", body)


def results_json_ld_html(catalogue: Catalogue, year: int, month: int, origins: Origins) -> str:
    """/en/results/{YYYY}/{MM}: the month's sales as JSON-LD `Event`s (name, url, startDate, endDate,
    location.name) and nothing else the spider could use: no event id, no sale number, no category
    (christies-site.md §12, the calendar's third route). Every sale of the month is listed, decoys included."""
    events = [{
        "@type": "Event", "name": sale.title,
        "url": online_sale_url(sale, origins) if sale.is_online else sale_landing_url(sale, origins),
        "startDate": calendar_date(sale, sale.start), "endDate": calendar_date(sale, sale.end),
        "location": {"@type": "Place", "name": sale.template.location},
        "eventAttendanceMode": "https://schema.org/OnlineEventAttendanceMode" if sale.is_online
        else "https://schema.org/MixedEventAttendanceMode",
    } for sale in catalogue.sales_in_month(year, month)]
    graph = {"@context": "https://schema.org", "@graph": [{"@type": "WebPage", "name": "Auction Results"}, *events]}
    body = f'<div id="calendar-root"></div>\n<script type="application/ld+json">{script_json(graph)}</script>'
    return html_page("Auction Results", body)


def bri_data_script(sale: Sale) -> str:
    """`window.briDataModel` as sale pages carry it: the sale's ids without the lots (§12)."""
    model = {"saleData": {"saleId": sale.event_id, "saleNumber": sale.sale_number, "saleTitle": sale.title,
                          "location": sale.template.location}}
    return f"<script>\n    window.briDataModel = {script_json(model)};\n</script>"


# ---------------------------------------------------------------- sale listings


def page_count(total: int, page_size: int) -> int:
    return max(1, -(-total // page_size))


def lotsearch_payload(catalogue: Catalogue, sale: Sale, lots: list[Lot], page: int, page_size: int,
                      origins: Origins) -> dict:
    """lotsearch JSON: one page of `lots` (already filtered) (lotsearch_response.json)."""
    chunk = lots[(page - 1) * page_size: page * page_size]
    return {
        "save_lot_api_endpoint": {"url": origins.www, "path": "api/discoverywebsite/lot/savelot", "method": "POST",
                                  "parameters": {"apikey": "", "is_static": False}, "timeout_ms": 5000},
        "lot_search_api_endpoint": {"url": origins.www, "path": "api/discoverywebsite/auctionpages/lotsearch",
                                    "method": "GET",
                                    "parameters": {"language": "en", "saleid": sale.event_id, "page": str(page)}},
        "filters": {"groups": facet_groups(catalogue, catalogue.lots_of(sale))},
        "sort": [{"sort_id": "lotnumber", "label_txt": "Lot #", "initial": True}],
        "total_pages": page_count(len(lots), page_size),
        "show_sort": True, "show_save_switch": True, "show_keyword_search": True, "show_themes": False,
        "lots": [lot_json(lot, sale, origins) for lot in chunk],
        "ui_state": {"hide_timer": True, "hide_cta": True, "hide_bid_information": True,
                     "show_restriction_link": False},
        "online_only_checkout_txt": None,
        "online_only_bid_status": {"status": "", "txt": "", "error_txt": ""},
        "total_hits_filtered": len(lots),
    }


def empty_lotsearch(origins: Origins, saleid: str, page: int) -> dict:
    """What lotsearch answers for an unknown sale: a valid shape with no lots (as for legacy sale_id=-1)."""
    return {"lot_search_api_endpoint": {"url": origins.www, "path": "api/discoverywebsite/auctionpages/lotsearch",
                                        "method": "GET", "parameters": {"language": "en", "saleid": saleid,
                                                                        "page": str(page)}},
            "filters": {"groups": []}, "sort": [], "total_pages": 0, "lots": [], "total_hits_filtered": 0}


def sale_block(sale: Sale, origins: Origins) -> dict:
    return {"title_txt": sale.title, "start_date": naive(sale.start), "end_date": naive(sale.end),
            "url": sale_landing_url(sale, origins), "is_auction_over": sale.closed}


def sale_page_html(catalogue: Catalogue, sale: Sale, page: int, page_size: int, origins: Origins) -> str:
    """www sale page: `window.chrComponents.lots = {"data": {...}}` with lots 1..page*page_size (cumulative)."""
    lots = catalogue.lots_of(sale)
    data = {
        "lot_search_api_endpoint": {
            "url": origins.www, "path": "api/discoverywebsite/auctionpages/lotsearch", "method": "GET",
            "parameters": {"language": "en", "saleid": sale.event_id, "salenumber": sale.sale_number,
                           "saleroomcode": sale.template.room, "page": "1", "pagesize": str(page_size),
                           "geocountrycode": "US", "sid": None}},
        "save_lot_api_endpoint": {"url": origins.www, "path": "api/discoverywebsite/lot/savelot", "method": "POST",
                                  "parameters": {"apikey": "", "is_static": False}, "timeout_ms": 5000},
        "filters": {"groups": facet_groups(catalogue, lots)},
        "sort": [{"sort_id": "LotNumber", "label_txt": "Lot #", "initial": True}],
        "total_pages": page_count(len(lots), page_size),
        "show_sort": True,
        "lots": [lot_json(lot, sale, origins) for lot in lots[: page * page_size]],
        "total_hits_filtered": len(lots),
        "sale": sale_block(sale, origins),
    }
    header = {"data": {"title_txt": sale.title, "subtitle_txt": sale.subtitle_txt}}
    body = "\n".join([f'<h1 class="chr-auction-header__auction-title">{sale.title}</h1>',
                      chr_script([("auctionHeader", header), ("lots", {"data": data})]), bri_data_script(sale)])
    return html_page(sale.title, body)


def online_lots_data(catalogue: Catalogue, sale: Sale, lots: list[Lot], page_size: int, origins: Origins,
                     page: int) -> dict:
    """onlineonly `lots.data` (also the searchLots JSON): the given lots plus paging and facets."""
    all_lots = catalogue.lots_of(sale)
    groups = [{"title_txt": "Price", "low": 0, "high": 0, "display": "range", "id": "Bid"},
              {"title_txt": "Favourite", "total": 0, "display": "switch",
               "filters": [{"index": 1, "type": "favourite", "label_txt": "Favourite", "id": "Favourite",
                            "total": 0, "hide": False}]}] + facet_groups(catalogue, all_lots)[::-1]
    return {
        "lot_primary_action": None,
        "save_lot_api_endpoint": {"url": "/lot", "path": "addOrRemoveFromFavorites", "method": "POST",
                                  "parameters": {"object_id": None, "save": None, "apikey": ""}},
        "lot_search_api_endpoint": {"url": "/sale", "path": "searchLots", "method": "POST", "parameters": {
            "themes": None, "language": "en", "pagesize": None, "geocountrycode": None,
            "saleid": sale.online_sale_id, "salenumber": None, "sid": None, "page": str(page), "filterids": None,
            "searchphrase": None, "action": None, "sortby": None, "savedlotsonly": None, "estimatelow": None,
            "estimatehigh": None}},
        "filters": {"total": len(all_lots), "groups": groups},
        "sort": [{"sort_id": "LotNumber", "label_txt": "Lot #", "initial": True},
                 {"sort_id": "HighEstimateHighToLow", "label_txt": "Estimate High to Low", "initial": False}],
        "total_pages": page_count(len(all_lots), page_size),
        "lots": [lot_json(lot, sale, origins) for lot in lots],
        "ui_state": None, "online_only_checkout_txt": None, "online_only_bid_status": None,
        "online_only_connection_error": None, "sale": None, "cost_calculator_event_name": None,
        "total_hits_filtered": len(all_lots),
    }


LOT_LABELS = {"lot_txt": "Lot", "estimate_txt": "Estimate", "price_realised_txt": "Price Realised",
              "estimate_on_request_txt": "Estimate on request", "lot_ended_txt": "Lot has ended",
              "closed_txt": "Closed", "withdrawn_lot_txt": None}


def auction_data(catalogue: Catalogue, sale: Sale, origins: Origins) -> dict:
    total = sum(lot.price_realised or 0 for lot in catalogue.lots_of(sale))
    total_txt = f"{sale.template.currency} {money(total)}"
    start, end = f"{sale.start.isoformat()}T11:00:00.000Z", f"{sale.end.isoformat()}T11:00:00.000Z"
    return {
        "follow_auction_api_endpoint": {"url": "/sale", "path": "addOrRemoveFromFavorites", "method": "POST",
                                        "parameters": {"sale_id": None, "sale_number": None, "follow": None,
                                                       "apikey": ""}},
        "sale_id": sale.event_id, "sale_number": sale.sale_number, "sale_room_code": sale.template.room,
        "auction_status": {"time_zone": "TIMEZONE",
                           "date_txt": f"{sale.start.day} {sale.start:%b}  - {sale.end.day} {sale.end:%b %Y}",
                           "start_date": start, "end_date": end, "is_auction_over": sale.closed,
                           "is_in_progress": False, "sessions": None},
        "auction_total": {"total": total_txt, "total_txt": total_txt, "show": sale.closed},
        "icon_labels": [{"id": "viewresults", "icon_label": {"type": "link", "label_txt": "View Results", "items": [
            {"url": f"{origins.www}/results/printauctionresults.aspx?saleid={sale.event_id}&lid=1",
             "type": "viewresults"}]}}],
        "event_type": "OnlineSale", "event_type_txt": "Online", "title": sale.title,
    }


def online_sale_page_html(catalogue: Catalogue, sale: Sale, page: int, page_size: int, origins: Origins) -> str:
    """onlineonly sale page: the whole `window.chrComponents = {...}` blob, lots 1..page*page_size."""
    lots = catalogue.lots_of(sale)[: page * page_size]
    blob = {
        "header": {"data": {"logo_url": f"{origins.www}/"}},
        "lots": {"data": online_lots_data(catalogue, sale, lots, page_size, origins, page), "labels": LOT_LABELS},
        "auction": {"data": auction_data(catalogue, sale, origins)},
        "footer": {"data": {"copyright_txt": "Demo site. Not affiliated with Christie's."}},
    }
    body = f"<script>\n    window.chrComponents = {script_json(blob)};\n</script>\n{bri_data_script(sale)}"
    return html_page(sale.title, body)


# ---------------------------------------------------------------- lot pages


def lot_header_id(lot: Lot) -> int:
    """The component id in `lotHeader_<digits>`: not the object id (as on the real site)."""
    return zlib.crc32(f"lotHeader:{lot.object_id}".encode()) % 9_000_000_000 + 1_000_000_000


def lot_page_html(catalogue: Catalogue, lot: Lot, origins: Origins) -> str:
    """www lot page (lot_page_fragment.html): lotHeader JSON, analytics, accordion Details / Provenance, essay."""
    sale = catalogue.sale_of(lot)
    siblings = sale.lot_ids
    index = siblings.index(lot.object_id)
    header_lot = {
        "object_id": lot.object_id, "lot_id_txt": lot.lot_number,
        "analytics_id": f"{sale.sale_number}.{lot.lot_number}",
        "title_primary_txt": lot.title_primary_txt, "title_secondary_txt": lot.title,
        **money_block(lot, "float" if not sale.is_online else sale.template.number_style),
        "lot_withdrawn": lot.truth.withdrawn,
        "lot_assets": ([{"image_url": image_url(lot, origins), "image_src": image_url(lot, origins),
                         "measurements_txt": lot.measurements_txt}] if lot.image_path else []),
        "next_lot_url": (f"{origins.www}/en/lot/lot-{siblings[index + 1]}" if index + 1 < len(siblings) else ""),
        "previous_lot_url": (f"{origins.www}/en/lot/lot-{siblings[index - 1]}" if index > 0 else ""),
    }
    data = {"lots": [header_lot], "sale": {**sale_block(sale, origins), "location_txt": sale.template.location}}
    maker = lot.title_primary_txt.strip()
    provenance = PROVENANCE[int(lot.object_id) % len(PROVENANCE)]
    body = "\n".join([
        chr_script([(f"lotHeader_{lot_header_id(lot)}", {"data": data})]),
        "<script>",
        f"    AnalyticsDataLayer.sale = {script_json({'number': sale.sale_number})};",
        "</script>",
        '<h1 class="chr-lot-header__title">',
        f'  <span class="chr-lot-header__artist-name">{maker}</span> {lot.title}',
        "</h1>",
        '<div class="chr-lot-details">',
        accordion(0, "Details", lot.description_html, opened=True),
        accordion(1, "Provenance", provenance),
        "</div>",
        "<h2>Lot Essay</h2>",
        '<div class="chr-lot-article">An invented paragraph standing in for the catalogue essay.</div>',
    ])
    return html_page(f"{maker} {lot.title}", body)


def accordion(index: int, header: str, text: str, opened: bool = False) -> str:
    return "\n".join([
        f'  <chr-accordion-item{" open" if opened else ""} accordion-id="{index}">',
        f'    <div slot="header">{header}</div>',
        '    <div slot="content">',
        f'      <span class="chr-lot-section__accordion--text">{text}</span>',
        "    </div>",
        "  </chr-accordion-item>",
    ])


def online_lot_page_html(catalogue: Catalogue, lot: Lot, origins: Origins) -> str:
    """onlineonly lot page: the whole blob, `lots.data.lots[0]` = this lot, `moreFrom` = its neighbours."""
    sale = catalogue.sale_of(lot)
    neighbours = [catalogue.lots[i] for i in sale.lot_ids if i != lot.object_id][:4]
    details = {"id": None, "title": "Details", "content": lot.description_html}
    blob = {
        "lots": {"data": {"lots": [lot_json(lot, sale, origins)], "details": [details]}, "labels": LOT_LABELS},
        "moreFrom": {"data": {"lots": [lot_json(other, sale, origins) for other in neighbours]}},
        "auction": {"data": auction_data(catalogue, sale, origins)},
    }
    body = f"<script>\n    window.chrComponents = {script_json(blob)};\n</script>"
    return html_page(lot.title, body)


# ---------------------------------------------------------------- robots.txt

WWW_DISALLOW = ("*/search", "*/searchresults.aspx", "*/AjaxPages", "*/lotimages", "*/mychristies",
                "*/livebidding", "*/client-registrations")
ONLINE_DISALLOW = ("*/mychristies", "*/livebidding")


def robots_txt(origins: Origins, online: bool, online_disallows_search: bool) -> str:
    """www: the rules of reference §5.1 (no Crawl-delay). online: a constructor option adds `*/search`,
    which also blocks /sale/searchLots (prefix match after the wildcard)."""
    rules = ONLINE_DISALLOW + (("*/search",) if online_disallows_search else ()) if online else WWW_DISALLOW
    lines = ["User-agent: *"] + [f"Disallow: {rule}" for rule in rules]
    if not online:
        lines += ["", f"Sitemap: {origins.www}/sitemap/sitemap_index.xml"]
    return "\n".join(lines) + "\n"
