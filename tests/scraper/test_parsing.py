"""scraper.parsing on every sample shape in christies-samples/ and on the string formats of strings_and_urls.txt."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest

from scraper import parsing
from scraper.parsing import ExtractionError, Sale

SAMPLES = Path("/work/shared/reference/christies-samples")
BASE = "https://www.christies.com"
ONLINE = "https://onlineonly.christies.com"
FINE_ART = frozenset({"category_7", "category_11"})

pytestmark = pytest.mark.skipif(not SAMPLES.exists(), reason="reference samples not on this machine")


def sample_text(name: str) -> str:
    return (SAMPLES / name).read_text(encoding="utf-8")


def sample_json(name: str) -> dict:
    return json.loads(sample_text(name))


LIVE_SALE = Sale("27901", "17123", "Post-War and Contemporary Art Day Sale", "New York", "2019-05-16", "live",
                 ("category_7",), f"{BASE}/en/auction/post-war-and-contemporary-art-day-sale-27901/")
ONLINE_SALE = Sale("29301", "20101", "Prints & Multiples Online", "London", "2021-03-15", "online",
                   ("category_11",), f"{ONLINE}/sso?SaleID=29301&SaleNumber=20101")


# ---------------------------------------------------------------- JSON extraction


def test_calendar_html_fragment_gives_the_api_shape():
    calendar = parsing.calendar_from_html(sample_text("results_page_calendar_fragment.html"))
    assert calendar["events"][0]["event_id"] == "27901"
    assert set(calendar) >= {"auction_results_api_endpoint", "options", "filters", "events"}


def test_www_sale_page_lots_component():
    data = parsing.lots_data_from_html(sample_text("sale_page_lots_fragment.html"))
    lots, total, pages = parsing.list_page(data)
    assert (len(lots), total, pages) == (1, 233, 1)
    assert data["lot_search_api_endpoint"]["parameters"]["salenumber"] == "17123"


def test_onlineonly_whole_blob_assigned_at_once():
    blob = sample_text("onlineonly_sale_chrComponents.json")
    page = f"<script>window.chrComponents = window.chrComponents || {{}};\nwindow.chrComponents = {blob};</script>"
    data = parsing.lots_data_from_html(page)
    assert parsing.online_sale_id(data) == "2101"
    lots, total, pages = parsing.list_page(data)
    assert (lots[0]["object_id"], total, pages) == ("150021", None, 4)


def test_lot_header_component_of_a_lot_page():
    header = parsing.extract_json(sample_text("lot_page_fragment.html"), parsing.LOT_HEADER_MARKER)
    assert header["data"]["lots"][0]["lot_assets"][0]["measurements_txt"].startswith("H 40 x W 30")


def test_legacy_lot_list_view_model_extracts_as_a_variable():
    legacy = sample_json("legacy_2019_lotListViewModel.json")
    page = f"var saleName = 'x';\nvar lotListViewModel = {json.dumps(legacy)});"
    assert parsing.extract_json(page, "var lotListViewModel =")["items"][0]["lotNumber"] == "1"


def test_extractor_is_string_aware():
    page = 'window.chrComponents.lots = {"data": {"lots": [{"title": "a }); b { [", "q": "say \\"}\\""}]}};'
    assert parsing.lots_data_from_html(page)["lots"][0]["title"] == "a }); b { ["


def test_truncated_json_is_an_extraction_error():
    page = 'window.chrComponents.lots = {"data": {"lots": [{"title": "cut'
    with pytest.raises(ExtractionError, match="unbalanced"):
        parsing.lots_data_from_html(page)


def test_missing_marker_is_an_extraction_error():
    with pytest.raises(ExtractionError):
        parsing.lots_data_from_html(sample_text("legacy_2019_results_and_print_list.html"))


# ---------------------------------------------------------------- calendar → sales


def test_calendar_api_events_to_sales():
    sales = parsing.sales_from_calendar(sample_json("auctionresults_api.json"), FINE_ART, BASE, ONLINE)
    assert [s.sale_id for s in sales] == ["27901", "27955"]
    live, online = sales
    assert (live.sale_number, live.kind, live.sale_date, live.category_ids) == ("17123", "live", "2019-05-16",
                                                                                 ("category_7",))
    assert (online.sale_number, online.kind, online.sale_date, online.location) == ("17301", "online",
                                                                                     "2019-05-14", "London")


def test_category_filter_and_closed_filter_exclude_decoys():
    calendar = sample_json("auctionresults_api.json")
    decoy = dict(calendar["events"][0], event_id="1", filter_ids="|category_9|location_43|")
    open_sale = dict(calendar["events"][0], event_id="2", subtitle_txt="Live Auction 17999")
    calendar["events"] += [decoy, open_sale]
    kept = parsing.sales_from_calendar(calendar, FINE_ART, BASE, ONLINE)
    assert [s.sale_id for s in kept] == ["27901", "27955"]
    assert parsing.sales_from_calendar(calendar, frozenset({"category_9"}), BASE, ONLINE)[0].sale_id == "1"


@pytest.mark.parametrize(("event", "expected"), [
    ({"subtitle_txt": "Live Auction 17123 | CLOSED"}, "17123"),
    ({"subtitle_txt": "Online Auction 24371 | CLOSED"}, "24371"),
    ({"subtitle_txt": "CLOSED", "analytics_id": "Sale-17123"}, "17123"),
    ({"subtitle_txt": "", "landing_url": f"{ONLINE}/sso?SaleID=31073&SaleNumber=24371"}, "24371"),
    ({}, ""),
])
def test_sale_number_sources(event, expected):
    assert parsing.sale_number_of(event) == expected


def test_calendar_without_events_is_an_error():
    with pytest.raises(ExtractionError):
        parsing.sales_from_calendar({"filters": {}}, FINE_ART, BASE, ONLINE)


# ---------------------------------------------------------------- lot → record


def test_www_lot_with_float_numbers_sold():
    lot = parsing.lots_data_from_html(sample_text("sale_page_lots_fragment.html"))["lots"][0]
    record = parsing.lot_record(lot, LIVE_SALE, BASE, ONLINE)
    assert record["lot_key"] == "www-27901-6201234"
    assert (record["estimate_low"], record["estimate_high"], record["price_realised"]) == (60000.0, 80000.0, 93750.0)
    assert (record["currency"], record["sold"], record["withdrawn"]) == ("USD", True, False)
    assert record["lot_url"] == f"{BASE}/en/lot/lot-6201234"
    assert record["image_url"] == (f"{BASE}/img/LotImages/2019/NYR/"
                                   "2019_NYR_17123_0101_000(jane_example_untitled_blue).jpg")
    assert record["description"].split("\n") == [
        "JANE EXAMPLE (B. 1950)", "Untitled (Blue)", "signed and dated 'J. Example 88' (on the reverse)",
        "oil on canvas", "40 x 30 in. (101.6 x 76.2 cm.)", "Painted in 1988."]
    assert (record["maker"], record["title"], record["lot_number"]) == ("JANE EXAMPLE (B. 1950)", "Untitled (Blue)",
                                                                         "101")
    assert set(record) == set(parsing.LOT_FIELDS)


def test_lotsearch_lot_with_string_numbers_unsold():
    lot = sample_json("lotsearch_response.json")["lots"][0]
    record = parsing.lot_record(lot, LIVE_SALE, BASE, ONLINE)
    assert (record["estimate_low"], record["estimate_high"]) == (15000.0, 20000.0)
    assert (record["price_realised"], record["sold"], record["currency"]) == (None, False, "USD")
    assert record["lot_number"] == "185"


def test_onlineonly_lot_two_decimal_strings_null_withdrawn_and_online_url():
    lot = sample_json("onlineonly_sale_chrComponents.json")["lots"]["data"]["lots"][0]
    record = parsing.lot_record(lot, ONLINE_SALE, BASE, ONLINE)
    assert record["lot_key"] == "oo-29301-150021"
    assert (record["estimate_low"], record["estimate_high"], record["price_realised"]) == (1500.0, 2500.0, 2000.0)
    assert (record["currency"], record["sold"], record["withdrawn"]) == ("GBP", True, False)
    assert record["lot_url"] == f"{ONLINE}/s/prints-multiples-online-example/jane-example-b-1950-untitled-1/150021"
    assert record["image_url"].endswith("2021_CKS_20101_0001_000(jane_example_untitled).jpg")


def test_withdrawn_lot_has_no_price_and_is_not_sold():
    lot = dict(sample_json("lotsearch_response.json")["lots"][0], lot_withdrawn=True, price_realised=5000)
    record = parsing.lot_record(lot, LIVE_SALE, BASE, ONLINE)
    assert (record["withdrawn"], record["sold"], record["price_realised"]) == (True, False, None)


def test_placeholder_image_and_missing_image_are_none():
    lot = sample_json("lotsearch_response.json")["lots"][0]
    placeholder = dict(lot, image={"image_src": "https://www.christies.com/img/lotimages//Alert/NoImage/non_NoImag.jpg"})
    assert parsing.lot_record(placeholder, LIVE_SALE, BASE, ONLINE)["image_url"] is None
    assert parsing.lot_record(dict(lot, image=None), LIVE_SALE, BASE, ONLINE)["image_url"] is None


def test_untypable_amount_is_kept_raw_for_validation():
    lot = dict(sample_json("lotsearch_response.json")["lots"][0], estimate_low="n/a")
    assert parsing.lot_record(lot, LIVE_SALE, BASE, ONLINE)["estimate_low"] == "n/a"


def test_online_extra_keys_header_price_gives_currency():
    extra = sample_json("onlineonly_lot_extra_keys.json")
    lot = {"object_id": "230112", "lot_number": "12", **extra}
    record = parsing.lot_record(lot, ONLINE_SALE, BASE, ONLINE)
    assert (record["currency"], record["lot_number"]) == ("USD", "12")


@pytest.mark.parametrize(("value", "expected"), [
    (60000, 60000.0), (60000.0, 60000.0), ("60000.0", 60000.0), ("18000.00", 18000.0), ("1,500", 1500.0),
    ("", None), ("  ", None), (None, None),
])
def test_parse_amount(value, expected):
    assert parsing.parse_amount(value) == expected


@pytest.mark.parametrize("value", ["n/a", True, [1]])
def test_parse_amount_rejects_non_numbers(value):
    with pytest.raises(ValueError):
        parsing.parse_amount(value)


@pytest.mark.parametrize(("texts", "expected"), [
    (("USD 60,000 - 80,000",), "USD"), (("GBP 1,500 - GBP 2,500",), "GBP"), (("HKD 30,000 - 45,000",), "HKD"),
    (("CHF 11,000 – CHF 17,000",), "CHF"), (("$8,000 – $12,000",), "USD"), (("HK$12,000 - HK$18,000",), "HKD"),
    (("€720",), "EUR"), (("Estimate: HKD 30,000 - 45,000",), "HKD"), (("", "USD 93,750"), "USD"),
    (("", None), None),
])
def test_currency_of(texts, expected):
    assert parsing.currency_of(*texts) == expected


def test_html_to_text_keeps_breaks_and_decodes_entities():
    assert parsing.html_to_text("A &amp; B<BR/><i>T</i><br>  x   y ") == "A & B\nT\nx y"
    assert parsing.html_to_text(None) == ""


# ---------------------------------------------------------------- URLs, keys, months


def test_rendition_url_strips_the_old_query():
    src = f"{BASE}/img/LotImages/2021/CKS/2021_CKS_20101_0001_000(x).jpg?mode=max&width=600"
    assert parsing.rendition_url(src, 512) == f"{BASE}/img/LotImages/2021/CKS/2021_CKS_20101_0001_000(x).jpg?mode=max&w=512"


def test_rebase_url_replaces_scheme_and_host_only():
    assert parsing.rebase_url("http://127.0.0.1:1111/img/a.jpg?w=1", "http://127.0.0.1:2222") == \
        "http://127.0.0.1:2222/img/a.jpg?w=1"
    assert parsing.rebase_url("http://h/a.jpg", None) == "http://h/a.jpg"


def test_lot_key_replaces_unsafe_characters():
    assert parsing.lot_key("live", "27901", "6201234") == "www-27901-6201234"
    assert parsing.lot_key("online", "1", "../x y") == "oo-1-.._x_y"


def test_lotsearch_url_matches_the_documented_query():
    assert parsing.lotsearch_url(BASE, "27901", "17123", 1, 84) == (
        f"{BASE}/api/discoverywebsite/auctionpages/lotsearch?action=paging&language=en&page=1&pagesize=84"
        "&saleid=27901&salenumber=17123&saletype=Sale&sortby=lotnumber")


def test_months_across_a_year_end():
    assert parsing.months("2018-11", "2019-02") == [(2018, 11), (2018, 12), (2019, 1), (2019, 2)]
    assert parsing.months("2019-05", "2019-05") == [(2019, 5)]


@pytest.mark.parametrize(("start", "end"), [("2019-13", "2019-12"), ("2019-1", "2019-02"), ("2019-05", "2019-04")])
def test_months_rejects_bad_bounds(start, end):
    with pytest.raises(ValueError):
        parsing.months(start, end)


# ---------------------------------------------------------------- lot page details


def test_details_accordion_medium_and_dimensions():
    lines = parsing.details_lines_from_html(sample_text("lot_page_fragment.html"))
    assert lines[0] == "JANE EXAMPLE (B. 1950)"
    details = parsing.split_details(lines)
    assert (details.medium, details.dimensions) == ("oil on canvas", "40 x 30 in. (101.6 x 76.2 cm.)")


@pytest.mark.parametrize("dimension", ["18 1/2 in (47 cm.) high", "6 3⁄4 in. (17.2 cm.) high"])
def test_split_details_dimension_formats(dimension):
    details = parsing.split_details(["A (1901-1977)", "T", "signed 'A'", "bronze with brown patina", dimension])
    assert (details.medium, details.dimensions) == ("bronze with brown patina", dimension)


# ---------------------------------------------------------------- JSON-LD calendar and briDataModel (§12)

JSON_LD_PAGE = """<html><head>
<script type="application/ld+json">{not json</script>
<script type='application/ld+json'>
{"@context": "https://schema.org", "@graph": [{"@type": "WebPage"},
 {"@type": "Event", "name": "Old Masters Evening Sale", "url": "/en/auction/old-masters-28001/",
  "startDate": "2019-05-15T23:00:00Z", "endDate": "2019-05-15T23:00:00.000Z",
  "location": {"@type": "Place", "name": "London"}},
 {"@type": ["Event", "SaleEvent"], "name": "No link"},
 {"@type": "SaleEvent", "name": "Prints Online", "url": "https://onlineonly.christies.com/s/prints/lots/2100",
  "endDate": "2099-01-01T00:00:00Z", "location": "Online"}]}
</script></head><body></body></html>"""


def test_json_ld_events_walk_graphs_and_skip_broken_blocks():
    events = parsing.json_ld_events(JSON_LD_PAGE)
    assert [e["name"] for e in events] == ["Old Masters Evening Sale", "No link", "Prints Online"]


def test_sales_from_json_ld_keep_ended_events_with_a_url_and_their_local_day():
    now = datetime(2026, 12, 1, tzinfo=timezone.utc)
    sales = parsing.sales_from_json_ld(parsing.json_ld_events(JSON_LD_PAGE), "https://www.christies.com",
                                       "https://onlineonly.christies.com", now=now)
    assert len(sales) == 1  # no URL: skipped; ends in 2099: not a result yet
    sale = sales[0]
    assert (sale.sale_id, sale.sale_number, sale.category_ids, sale.kind) == ("", "", (), "live")
    assert sale.landing_url == "https://www.christies.com/en/auction/old-masters-28001/"
    assert (sale.location, sale.sale_date) == ("London", "2019-05-16")  # local midnight written in UTC


def test_sale_identity_from_bri_data_model_else_the_lots_data():
    sale = parsing.Sale("", "", "", "", "2019-05-16", "live", (), "https://www.christies.com/en/auction/x-1/")
    bri = ('<script>window.briDataModel = {"saleData": {"saleId": 28001, "saleNumber": "17001", '
           '"saleTitle": "Old Masters", "location": "London"}};</script>')
    named = parsing.sale_identity(bri, sale)
    assert (named.sale_id, named.sale_number, named.title, named.location) == ("28001", "17001", "Old Masters", "London")
    lots = ('<script>window.chrComponents.lots = {"data": {"lots": [], "lot_search_api_endpoint": '
            '{"parameters": {"saleid": "28002", "salenumber": "17002"}}}};</script>')
    assert (parsing.sale_identity(lots, sale).sale_id, parsing.sale_identity(lots, sale).sale_number) == ("28002", "17002")
    with pytest.raises(parsing.ExtractionError, match="no sale id"):
        parsing.sale_identity('<script>window.briDataModel = {"saleData": {}};</script>'
                              '<script>window.chrComponents.lots = {"data": {"lots": []}};</script>', sale)


@pytest.mark.parametrize(("start", "end", "day"), [
    ("2019-05-02", "2019-05-14", "2019-05-02"), ("2019-05-16", "2019-05-14", "2019-05-14"),
    (None, "2019-05-14", "2019-05-14"), ("2019-05-02", None, "2019-05-02")])
def test_a_sales_opening_day_is_never_after_its_day(start, end, day):
    assert parsing.opening_day(start, end) == day
