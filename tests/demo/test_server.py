"""The live demo site answers like Christie's: same endpoints, shapes, key names and typing traps."""

from __future__ import annotations

import io
import re
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pytest
import requests
from PIL import Image

from scraper.demo import DemoSite
from scraper.parsing import sale_day
from scraper.demo.catalogue import (
    IMAGE_BOMB,
    IMAGE_CMYK,
    IMAGE_L,
    IMAGE_RGBA_PNG,
    IMAGE_TRUNCATED,
    NO_IMAGE_PATH,
    TRAP_TITLE,
)
from tests.demo.conftest import extract_json_object

CALENDAR_KEYS = {"auction_results_api_endpoint", "page_next", "page_previous", "options", "banners", "filters",
                 "titles", "events"}
EVENT_KEYS = {"title_id", "event_id", "filter_ids", "is_on_view", "on_view_txt", "is_followed", "is_in_progress",
              "landing_url", "title_txt", "subtitle_txt", "date_display_txt", "date_sr_txt", "status_txt",
              "location_txt", "sale_total_txt", "sale_total_value_txt", "cta_txt", "image", "start_date",
              "end_date", "is_active", "is_live", "analytics_id"}
LOTSEARCH_KEYS = {"save_lot_api_endpoint", "lot_search_api_endpoint", "filters", "sort", "total_pages", "show_sort",
                  "show_save_switch", "show_keyword_search", "show_themes", "lots", "ui_state",
                  "online_only_checkout_txt", "online_only_bid_status", "total_hits_filtered"}
WWW_LOT_KEYS = {"end_date_unformatted", "start_date_unformatted", "object_id", "lot_id_txt", "analytics_id",
                "event_type", "start_date", "end_date", "registration_closing_date", "countdown_start_date", "url",
                "title_primary_txt", "title_secondary_txt", "title_tertiary_txt", "consigner_information",
                "description_txt", "image", "estimate_visible", "estimate_on_request", "price_on_request",
                "estimate_low", "estimate_high", "estimate_txt", "price_realised", "price_realised_txt",
                "current_bid_txt", "current_bid", "is_saved", "show_save", "has_no_bids", "bid_count_txt",
                "extended", "server_time", "total_seconds_remaining", "is_auction_over", "is_in_progress", "sale",
                "lot_withdrawn", "bid_status", "seconds_until_bidding", "show_timer"}
ONLINE_LOT_KEYS = {"StartDateUnixTime", "EndDateUnixTime", "seconds_until_bidding", "end_date_unformatted",
                   "start_date_unformatted", "object_id", "lot_id_txt", "event_type", "status", "start_date",
                   "end_date", "registration_closing_date", "countdown_start_date", "url", "title_primary_txt",
                   "title_secondary_txt", "title_tertiary_txt", "consigner_information", "description_txt", "image",
                   "estimate_visible", "estimate_on_request", "price_on_request", "estimate_low", "estimate_high",
                   "estimate_txt", "price_realised", "price_realised_txt", "current_bid", "current_bid_txt",
                   "is_saved", "show_save", "bid_details_tooltip_txt", "aria_open_bid_details_tooltip_txt",
                   "lot_assets", "has_no_bids", "bid_count_txt", "extended", "server_time",
                   "total_seconds_remaining", "sale", "lot_withdrawn", "bid_status", "item_type", "trending_type",
                   # onlineonly_lot_extra_keys.json
                   "lot_number", "is_age_check_required", "analytics_id", "online_only_dynamic_lot_data",
                   "online_only_static_lot_data", "is_open_for_bidding", "bid_button_action"}
IMAGE_KEYS = {"image_src", "image_mobile_src", "image_tablet_src", "image_desktop_src", "image_alt_text", "image_url"}


def get(url: str, **kwargs) -> requests.Response:
    response = requests.get(url, timeout=10, **kwargs)
    return response


def calendar(site, year: int, month: int) -> dict:
    url = (f"{site.base_url}/api/discoverywebsite/auctioncalendar/auctionresults?language=en&month={month}"
           f"&year={year}&component=e7d92272-7bcc-4dba-ae5b-28e4f3729ae8")
    response = get(url)
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("application/json")
    return response.json()


def lotsearch(site, sale, page: int, pagesize: int = 84, **extra) -> dict:
    params = {"action": "paging", "language": "en", "page": page, "pagesize": pagesize, "saleid": sale.event_id,
              "salenumber": sale.sale_number, "saletype": "Sale", "sortby": "lotnumber", **extra}
    response = get(f"{site.base_url}/api/discoverywebsite/auctionpages/lotsearch", params=params)
    assert response.status_code == 200
    return response.json()


def months_of(catalogue):
    return [tuple(int(p) for p in m.split("-")) for m in catalogue.months]


def test_calendar_json_lists_each_month_in_the_sample_shape(site, catalogue):
    seen_subtitles = []
    for year, month in months_of(catalogue):
        payload = calendar(site, year, month)
        assert CALENDAR_KEYS <= set(payload)
        expected = catalogue.sales_in_month(year, month)
        assert [e["event_id"] for e in payload["events"]] == [s.event_id for s in expected]
        for event, sale in zip(payload["events"], expected):
            assert EVENT_KEYS <= set(event)
            if sale.template.location in ("London", "Hong Kong"):  # local midnight written in UTC (site §12)
                assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:00:00(\.000)?Z", event["end_date"]), event["end_date"]
                assert sale_day(event["end_date"], event["location_txt"]) == sale.end.isoformat()
            else:
                assert re.fullmatch(r"\d{4}-\d\d-\d\dT00:00:00", event["end_date"]), "naive local midnight"
            assert event["analytics_id"] == f"Sale-{sale.sale_number}"
            assert event["filter_ids"] == sale.filter_ids
            seen_subtitles.append(event["subtitle_txt"])
            if sale.is_online:
                assert event["landing_url"] == (f"{site.online_base_url}/sso?SaleID={sale.event_id}"
                                                f"&SaleNumber={sale.sale_number}")
            else:
                assert event["landing_url"] == f"{site.base_url}/en/auction/{sale.slug}-{sale.event_id}/"
    assert any(re.fullmatch(r"Live Auction \d{5} \| CLOSED", s) for s in seen_subtitles)
    assert any(re.fullmatch(r"Online Auction \d{5} \| CLOSED", s) for s in seen_subtitles)
    assert any("CLOSED" not in s for s in seen_subtitles), "an upcoming sale is listed too"
    assert any("category_9" in e for e in (s.filter_ids for s in catalogue.sales)), "decoys are listed"
    assert calendar(site, 1990, 5)["events"] == []


def test_results_page_embeds_the_calendar_payload(site, catalogue):
    year, month = months_of(catalogue)[0]
    html = get(f"{site.base_url}/en/results?month={month}&year={year}").text
    assert "window.chrComponents.calendar = {" in html
    assert extract_json_object(html, "data: ") == calendar(site, year, month)
    filtered = extract_json_object(get(f"{site.base_url}/en/results?month={month}&year={year}"
                                       "&filters=|category_7|").text, "data: ")
    assert filtered["events"] and all("|category_7|" in e["filter_ids"] for e in filtered["events"])


def test_lotsearch_paging_covers_every_sale_exactly_once(site, catalogue):
    multi_page = 0
    for sale in catalogue.sales:
        first = lotsearch(site, sale, 1)
        assert LOTSEARCH_KEYS <= set(first)
        assert first["total_hits_filtered"] == len(sale.lot_ids)
        collected = list(first["lots"])
        for page in range(2, first["total_pages"] + 1):
            collected += lotsearch(site, sale, page)["lots"]
        ids = [lot["object_id"] for lot in collected]
        assert ids == sale.lot_ids, sale.event_id           # each lot once, in lot order
        multi_page += first["total_pages"] > 2
        assert lotsearch(site, sale, first["total_pages"] + 1)["lots"] == []
    assert multi_page >= 1
    big = max(catalogue.sales, key=lambda s: len(s.lot_ids))
    assert len(lotsearch(site, big, 1, pagesize=500)["lots"]) == 84, "page size caps at 84"


def test_lot_json_keys_and_typing_traps(site, catalogue):
    styles_seen = set()
    for sale in catalogue.sales:
        lots = lotsearch(site, sale, 1)["lots"]
        for lot in lots:
            assert IMAGE_KEYS <= set(lot["image"])
            truth = catalogue.lots[lot["object_id"]].truth
            assert set(lot) >= (ONLINE_LOT_KEYS if sale.is_online else WWW_LOT_KEYS)
            if truth.withdrawn:
                assert lot["lot_withdrawn"] is True and lot["estimate_low"] == "" and lot["estimate_txt"] == ""
            elif sale.is_online:
                assert lot["lot_withdrawn"] is None
            if not truth.sold:
                assert lot["price_realised"] == "" and lot["price_realised_txt"] == ""
            value = lot["estimate_low"]
            if value != "":
                if sale.is_online:
                    assert re.fullmatch(r"\d+\.\d\d", value)
                    assert lot["online_only_static_lot_data"]["header_price"].startswith("Estimate: ")
                styles_seen.add(type(value).__name__ if not isinstance(value, str) else
                                ("str2" if re.fullmatch(r"\d+\.\d\d", value) else "str1"))
    assert styles_seen == {"int", "float", "str1", "str2"}


def test_lotsearch_edge_cases(site, catalogue):
    sale = next(s for s in catalogue.sales if s.closed and not s.is_decoy and not s.is_online)
    assert lotsearch(site, sale, 1, salenumber="99999")["total_hits_filtered"] == 0
    by_number = get(f"{site.base_url}/api/discoverywebsite/auctionpages/lotsearch",
                    params={"page": 1, "salenumber": sale.sale_number, "saleroomcode": sale.template.room}).json()
    assert by_number["total_hits_filtered"] == len(sale.lot_ids)
    paintings = lotsearch(site, sale, 1, filterids="CoaCategories{Paintings}")
    expected = [i for i in sale.lot_ids if catalogue.lots[i].truth.kind == "painting"]
    assert paintings["total_hits_filtered"] == len(expected)
    assert [lot["object_id"] for lot in paintings["lots"]] == expected[:84]
    missing = get(f"{site.base_url}/api/discoverywebsite/auctionpages/lotsearch?page=1")
    assert missing.status_code == 400 and "saleid" in missing.json()["error"]
    bad_month = get(f"{site.base_url}/api/discoverywebsite/auctioncalendar/auctionresults?month=13&year=2019")
    assert bad_month.status_code == 400 and "'month'" in bad_month.json()["error"]


def test_sale_page_embeds_the_first_page_and_cumulative_pages(site, catalogue):
    big = max((s for s in catalogue.sales if not s.is_online), key=lambda s: len(s.lot_ids))
    assert len(big.lot_ids) > 168
    url = f"{site.base_url}/en/auction/{big.slug}-{big.event_id}/"
    for page, count in ((1, 84), (2, 168), (3, len(big.lot_ids))):
        html = get(url, params={"page": page} if page > 1 else None).text
        data = extract_json_object(html, "window.chrComponents.lots =")["data"]
        assert [lot["object_id"] for lot in data["lots"]] == big.lot_ids[:count]
        assert data["total_hits_filtered"] == len(big.lot_ids)
    parameters = data["lot_search_api_endpoint"]["parameters"]
    assert (parameters["saleid"], parameters["salenumber"], parameters["saleroomcode"]) == (
        big.event_id, big.sale_number, big.template.room)


def test_a_string_with_a_js_terminator_survives_extraction(site, catalogue):
    lot = next(lot for lot in catalogue.lots.values() if lot.title == TRAP_TITLE)
    sale = catalogue.sale_of(lot)
    page = 1 + sale.lot_ids.index(lot.object_id) // 84
    html = get(f"{site.base_url}/en/auction/{sale.slug}-{sale.event_id}/", params={"page": page}).text
    lots = extract_json_object(html, "window.chrComponents.lots =")["data"]["lots"]
    assert TRAP_TITLE in [item["title_secondary_txt"] for item in lots]


def test_online_sale_sso_redirect_page_and_search_lots(site, catalogue):
    for sale in (s for s in catalogue.sales if s.is_online):
        landing = f"{site.online_base_url}/sso?SaleID={sale.event_id}&SaleNumber={sale.sale_number}"
        hop = get(landing, allow_redirects=False)
        assert hop.status_code == 302
        assert hop.headers["Location"] == f"{site.online_base_url}/s/{sale.slug}/lots/{sale.online_sale_id}"
        blob = extract_json_object(get(landing).text, "window.chrComponents =")
        assert blob["auction"]["data"]["sale_id"] == sale.event_id
        assert blob["auction"]["data"]["sale_number"] == sale.sale_number
        assert [lot["object_id"] for lot in blob["lots"]["data"]["lots"]] == sale.lot_ids[:84]
        search = get(f"{site.online_base_url}/sale/searchLots", params={
            "action": "paging", "language": "en", "page": 1, "saleid": sale.online_sale_id, "sid": "",
            "sortby": "LotNumber", "loadall": "true"}).json()
        assert [lot["object_id"] for lot in search["lots"]] == sale.lot_ids
        assert all(ONLINE_LOT_KEYS <= set(lot) for lot in search["lots"])
    sale = next(s for s in catalogue.sales if s.is_online)
    posted = requests.post(f"{site.online_base_url}/sale/searchLots", timeout=10,
                           json={"language": "en", "saleid": sale.online_sale_id, "page": 2}).json()
    assert [lot["object_id"] for lot in posted["lots"]] == sale.lot_ids[30:60]
    assert get(f"{site.online_base_url}/sso?SaleID=1&SaleNumber=1", allow_redirects=False).status_code == 404


def test_lot_pages(site, catalogue):
    live = next(s for s in catalogue.sales if not s.is_online and s.template.lot_url_style == "lot")
    lot = catalogue.lots_of(live)[1]
    html = get(f"{site.base_url}/en/lot/lot-{lot.object_id}").text
    marker = re.search(r"window\.chrComponents\.(lotHeader_\d+) =", html)
    assert marker and marker.group(1) != f"lotHeader_{lot.object_id}"
    data = extract_json_object(html, marker.group(0))["data"]
    assert data["lots"][0]["object_id"] == lot.object_id and data["sale"]["location_txt"] == live.template.location
    assert data["lots"][0]["next_lot_url"].endswith(f"/en/lot/lot-{live.lot_ids[2]}")
    assert 'AnalyticsDataLayer.sale = {"number":"%s"}' % live.sale_number in html
    details = re.search(r'<div slot="header">Details</div>\s*<div slot="content">\s*'
                        r'<span class="chr-lot-section__accordion--text">(.*?)</span>', html, re.S)
    assert details and details.group(1) == lot.description_html
    assert get(f"{site.base_url}/en/lot/lot-1").status_code == 404

    sso_sale = next(s for s in catalogue.sales if s.template.lot_url_style == "sso")
    listed = lotsearch(site, sso_sale, 1)["lots"][0]["url"]
    assert "/en/sso?ObjectID=" in listed and get(listed).status_code == 404, "as on the real site"

    online = next(s for s in catalogue.sales if s.is_online)
    online_lot = lotsearch(site, online, 1)["lots"][0]
    assert online_lot["url"].startswith(f"{site.online_base_url}/s/{online.slug}/")
    page = extract_json_object(get(online_lot["url"]).text, "window.chrComponents =")
    assert page["lots"]["data"]["lots"][0]["object_id"] == online_lot["object_id"]
    hop = get(f"{site.online_base_url}/sso?ObjectID={online.sale_number}.{online_lot['lot_id_txt']}"
              f"&LotNumber={online_lot['lot_id_txt']}", allow_redirects=False)
    assert hop.status_code == 302 and hop.headers["Location"] == online_lot["url"]


def image_of(site, catalogue, image_kind):
    lot = next(lot for lot in catalogue.lots.values() if lot.truth.image_kind == image_kind and lot.image_path)
    return lot, f"{site.base_url}{lot.image_path}"


def test_image_renditions(site, catalogue):
    lot, url = image_of(site, catalogue, "jpeg_rgb")
    width, height = lot.image_size
    for query, check in (("?mode=max&w=128", lambda im: im.width == 128),
                         ("?mode=max&width=200", lambda im: im.width == 200),
                         ("?mode=max&h=100", lambda im: im.height == 100),
                         ("?mode=max&height=90", lambda im: im.height == 90),
                         ("?mode=max", lambda im: im.size == (width, height))):
        response = get(url + query)
        assert response.status_code == 200 and response.headers["Content-Type"] == "image/jpeg"
        image = Image.open(io.BytesIO(response.content))
        assert image.format == "JPEG" and image.mode == "RGB" and check(image), query
    assert get(url + "?mode=max&w=128").content == get(url + "?mode=max&w=128").content
    lower = url.replace("/img/LotImages/", "/img/lotimages/")
    assert get(lower + "?mode=max&w=64").content == get(url + "?mode=max&w=64").content
    assert get(url + "?w=abc").status_code == 400
    assert get(f"{site.base_url}/img/LotImages/2019/NYR/nothing.jpg").status_code == 404


def test_special_images(site, catalogue):
    _, url = image_of(site, catalogue, IMAGE_TRUNCATED)
    truncated = Image.open(io.BytesIO(get(url + "?mode=max&w=512").content))
    with pytest.raises(OSError, match="truncated"):
        truncated.load()
    _, url = image_of(site, catalogue, IMAGE_BOMB)
    with pytest.raises(Image.DecompressionBombError):
        Image.open(io.BytesIO(get(url + "?mode=max&w=512").content))
    _, url = image_of(site, catalogue, IMAGE_CMYK)
    assert Image.open(io.BytesIO(get(url + "?mode=max&w=128").content)).mode == "CMYK"
    _, url = image_of(site, catalogue, IMAGE_L)
    assert Image.open(io.BytesIO(get(url + "?mode=max&w=128").content)).mode == "L"
    _, url = image_of(site, catalogue, IMAGE_RGBA_PNG)
    assert url.endswith(".jpg")
    png = Image.open(io.BytesIO(get(url + "?mode=max&w=128").content))
    assert (png.format, png.mode, png.width) == ("PNG", "RGBA", 128)
    assert png.getpixel((0, 0)) == (255, 0, 255, 0), "transparent margin hides magenta"
    placeholder = Image.open(io.BytesIO(get(f"{site.base_url}{NO_IMAGE_PATH}?mode=max").content))
    placeholder.load()
    assert placeholder.format == "JPEG" and np.ptp(np.asarray(placeholder.convert("L"))) <= 3


def test_robots_txt_rules(site, catalogue):
    protego = pytest.importorskip("protego")
    www = protego.Protego.parse(get(f"{site.base_url}/robots.txt").text)
    base = site.base_url
    assert www.can_fetch(f"{base}/api/discoverywebsite/auctionpages/lotsearch?page=1", "bot")
    assert www.can_fetch(f"{base}/api/discoverywebsite/auctioncalendar/auctionresults?month=1&year=2019", "bot")
    assert www.can_fetch(f"{base}/img/LotImages/2019/NYR/x.jpg", "bot")
    assert not www.can_fetch(f"{base}/img/lotimages/2019/NYR/x.jpg", "bot")
    assert not www.can_fetch(f"{base}/en/search?entry=x", "bot")
    search_lots = f"{site.online_base_url}/sale/searchLots?saleid=1"
    assert protego.Protego.parse(get(f"{site.online_base_url}/robots.txt").text).can_fetch(search_lots, "bot")
    with DemoSite(catalogue, online_disallows_search=True) as strict:
        rules = protego.Protego.parse(get(f"{strict.online_base_url}/robots.txt").text)
        assert not rules.can_fetch(f"{strict.online_base_url}/sale/searchLots?saleid=1", "bot")
        assert rules.can_fetch(f"{strict.online_base_url}/s/x/lots/1", "bot")


def test_counters_count_requests_by_kind_and_bytes(catalogue):
    sale = next(s for s in catalogue.sales if s.is_online)
    with DemoSite(catalogue) as fresh:
        sent = 0
        for url in (f"{fresh.base_url}/robots.txt",
                    f"{fresh.base_url}/api/discoverywebsite/auctioncalendar/auctionresults?month=1&year=2019",
                    f"{fresh.base_url}/api/discoverywebsite/auctionpages/lotsearch?saleid={sale.event_id}",
                    f"{fresh.online_base_url}/sale/searchLots?saleid={sale.online_sale_id}&loadall=true",
                    f"{fresh.base_url}/nowhere"):
            sent += len(get(url).content)
        hop = get(f"{fresh.online_base_url}/sso?SaleID={sale.event_id}&SaleNumber={sale.sale_number}")
        sent += len(hop.content)
        stats = fresh.stats()
    assert stats["requests"] == {"robots": 1, "calendar": 1, "lotsearch": 1, "searchLots": 1, "not_found": 1,
                                 "sso": 1, "sale_page": 1}
    assert stats["bytes_sent"] == sent and stats["faults"] == {}


def test_site_urls_need_a_started_site(catalogue):
    with pytest.raises(RuntimeError, match="not started"):
        DemoSite(catalogue).base_url
    started = DemoSite(catalogue).start()
    try:
        parsed = urlsplit(started.base_url)
        assert parsed.hostname == "127.0.0.1" and parse_qs(parsed.query) == {}
        assert started.base_url != started.online_base_url
    finally:
        started.stop()
