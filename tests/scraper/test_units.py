"""Unit tests of the scraper's pure helpers and pipelines, in-process (no crawl, no network)."""

from __future__ import annotations

import asyncio
import json
from email.utils import format_datetime
from datetime import datetime, timezone
from pathlib import Path

import pytest
from scrapy import signals
from scrapy.exceptions import DropItem
from scrapy.utils.test import get_crawler

from scraper import parsing
from scraper.crawl_check import image_crawl_errors, lot_crawl_errors, read_jsonl_unique
from scraper.items import LotItem
from scraper.middlewares import backoff_delay, parse_retry_after
from scraper.pipelines import DedupeLotPipeline, ValidateLotPipeline, image_relpath, safe_name, validation_reasons
from scraper.spiders.christies import ChristiesSpider, should_fetch_next_page
from scraper.spiders.christies_images import ChristiesImagesSpider, read_image_list
from scraper.stage import scrapy_command, setting_value
from common import safe_join


def valid_record(**changes) -> dict:
    record = {
        "lot_key": "www-27901-6201234", "object_id": "6201234", "sale_id": "27901", "sale_number": "17123",
        "sale_title": "Day Sale", "sale_location": "New York", "sale_date": "2019-05-16",
        "sale_start_date": "2019-05-16", "sale_kind": "live",
        "category_ids": ["category_7"], "lot_number": "101", "maker": "JANE EXAMPLE (B. 1950)", "title": "Blue",
        "description": "oil on canvas", "estimate_low": 60000.0, "estimate_high": 80000.0, "currency": "USD",
        "price_realised": 93750.0, "sold": True, "withdrawn": False,
        "lot_url": "https://www.christies.com/en/lot/lot-6201234", "image_url": "https://www.christies.com/i.jpg",
    }
    record.update(changes)
    return record


# ---------------------------------------------------------------- validation


def test_valid_record_has_no_reasons():
    assert validation_reasons(valid_record()) == []


@pytest.mark.parametrize(("changes", "reason"), [
    ({"object_id": ""}, "missing:object_id"),
    ({"estimate_low": "60000"}, "type:estimate_low"),
    ({"estimate_low": 90000.0}, "bad:estimate_range"),
    ({"price_realised": None}, "bad:sold_without_price"),
    ({"sold": "yes"}, "type:sold"),
    ({"currency": "usd"}, "bad:currency"),
    ({"sale_date": "16 May 2019"}, "bad:sale_date"),
    ({"sale_start_date": None}, "missing:sale_start_date"),
    ({"sale_start_date": "2019-05-17"}, "bad:sale_start_after_end"),
    ({"sale_kind": "private"}, "bad:sale_kind"),
    ({"lot_key": "www/../x"}, "bad:lot_key"),
    ({"image_url": "/img/a.jpg"}, "bad:image_url"),
    ({"category_ids": [""]}, "bad:category_ids"),
])
def test_each_contract_break_has_its_reason(changes, reason):
    assert reason in validation_reasons(valid_record(**changes))


def test_rejects_are_written_with_reasons_and_counted(tmp_path):
    rejects = tmp_path / "rejects.jsonl"
    crawler = get_crawler(ChristiesSpider, {"CHRISTIES_REJECTS_FILE": str(rejects)})
    pipeline = ValidateLotPipeline.from_crawler(crawler)
    pipeline.open_spider()
    good = LotItem.from_record(valid_record(), source_url="http://127.0.0.1/p1")
    bad = LotItem.from_record(valid_record(lot_key="www-1-2", estimate_low="n/a"), source_url="http://127.0.0.1/p2")
    assert pipeline.process_item(good) is good
    with pytest.raises(DropItem):
        pipeline.process_item(bad)
    pipeline.close_spider()
    lines = [json.loads(line) for line in rejects.read_text().splitlines()]
    assert lines == [{"reasons": ["type:estimate_low"], "item": {**valid_record(lot_key="www-1-2", estimate_low="n/a"),
                      "image_path": None, "image_sha1": None, "medium": None, "dimensions": None},
                      "url": "http://127.0.0.1/p2"}]
    assert crawler.stats.get_value("rejects/count") == 1
    assert crawler.stats.get_value("rejects/type:estimate_low") == 1


def test_dedupe_drops_the_second_copy_of_a_lot():
    crawler = get_crawler(ChristiesSpider)
    pipeline = DedupeLotPipeline.from_crawler(crawler)
    item = LotItem.from_record(valid_record())
    assert pipeline.process_item(item) is item
    with pytest.raises(DropItem):
        pipeline.process_item(LotItem.from_record(valid_record()))
    assert crawler.stats.get_value("dedupe/duplicates") == 1


# ---------------------------------------------------------------- image paths stay inside the store


@pytest.mark.parametrize("lot_key", ["../../x", "/etc/passwd", "www-1-" + "a" * 500, "..", "www-../..-x", "a\\b"])
def test_image_paths_of_hostile_keys_stay_inside_the_store(tmp_path, lot_key):
    relpath = image_relpath(lot_key, "http://h/a.jpg")
    target = safe_join(tmp_path, relpath)  # raises if it escapes
    assert tmp_path.resolve() in target.parents
    assert all(len(part) <= 120 for part in Path(relpath).parts)


def test_image_path_is_sharded_by_sale_and_named_by_lot():
    assert image_relpath("www-27901-6201234", "http://h/x/a(b).JPG?mode=max") == "www-27901/www-27901-6201234.jpg"
    assert image_relpath("oo-5-9", "http://h/x/a.png") == "oo-5/oo-5-9.png"
    assert image_relpath("oo-5-9", "http://h/x/noext") == "oo-5/oo-5-9.jpg"


def test_long_names_stay_unique():
    assert safe_name("x" * 300 + "1") != safe_name("x" * 300 + "2")


# ---------------------------------------------------------------- back-off


def test_retry_after_seconds_and_http_date():
    now = 1_700_000_000.0
    assert parse_retry_after(b"120", now) == 120.0
    when = format_datetime(datetime.fromtimestamp(now + 30, tz=timezone.utc), usegmt=True)
    assert parse_retry_after(when.encode(), now) == pytest.approx(30.0, abs=1.0)
    past = format_datetime(datetime.fromtimestamp(now - 30, tz=timezone.utc), usegmt=True)
    assert parse_retry_after(past, now) == 0.0
    assert parse_retry_after(b"soon", now) is None
    assert parse_retry_after(None, now) is None


def test_backoff_is_bounded_and_exponential_without_header():
    assert backoff_delay(1000.0, 0, base=5.0, max_delay=300.0) == 300.0
    assert backoff_delay(7.0, 3, base=5.0, max_delay=300.0) == 7.0
    assert [backoff_delay(None, n, base=5.0, max_delay=300.0) for n in range(4)] == [5.0, 10.0, 20.0, 40.0]


# ---------------------------------------------------------------- paging decisions


def test_paging_stops_at_total_hits_and_on_no_progress():
    assert should_fetch_next_page(1, total=200, total_pages=3, collected=84, new_on_page=84, page_size=84)
    assert not should_fetch_next_page(3, total=200, total_pages=3, collected=200, new_on_page=32, page_size=84)
    assert not should_fetch_next_page(2, total=200, total_pages=3, collected=84, new_on_page=0, page_size=84)
    assert should_fetch_next_page(1, total=None, total_pages=4, collected=30, new_on_page=30, page_size=None)
    assert not should_fetch_next_page(4, total=None, total_pages=4, collected=120, new_on_page=30, page_size=None)
    assert not should_fetch_next_page(1, total=None, total_pages=None, collected=12, new_on_page=12, page_size=84)


# ---------------------------------------------------------------- crawl verdicts and feeds


def test_lot_crawl_errors():
    ok = {"finish_reason": "finished", "item_scraped_count": 10}
    assert lot_crawl_errors(ok, lots=10, min_items=1) == []
    assert lot_crawl_errors({**ok, "finish_reason": "shutdown"}, 10, 1)
    assert lot_crawl_errors({**ok, "spider_exceptions/KeyError": 2}, 10, 1)
    assert lot_crawl_errors({**ok, "christies/listing_failed": 1}, 10, 1)
    assert lot_crawl_errors(ok, lots=0, min_items=1)


def test_image_crawl_errors():
    ok = {"finish_reason": "finished"}
    assert image_crawl_errors(ok, requested=3, lines=3, lost=["a"], max_lost_fraction=0.5) == []
    assert image_crawl_errors(ok, requested=3, lines=2, lost=[], max_lost_fraction=0.5)
    [error] = image_crawl_errors(ok, requested=200, lines=200, lost=["x", "y", "z"], max_lost_fraction=0.01)
    assert "3 of 200 sampled images lost (1.5%" in error and error.endswith("x, y, z")
    assert image_crawl_errors(ok, requested=200, lines=200, lost=["x", "y"], max_lost_fraction=0.01) == []
    many = image_crawl_errors(ok, requested=100, lines=100, lost=[f"k{i}" for i in range(30)], max_lost_fraction=0)
    assert many[0].endswith("k19 and 10 more")


def test_read_jsonl_unique_tolerates_a_partial_last_line_and_repeats(tmp_path):
    feed = tmp_path / "lots.jsonl"
    feed.write_text('{"lot_key": "a", "n": 1}\n{"lot_key": "b"}\n{"lot_key": "a", "n": 2}\n{"lot_key": "c", "ti')
    assert read_jsonl_unique(feed, "lot_key") == [{"lot_key": "a", "n": 1}, {"lot_key": "b"}]


def test_read_jsonl_unique_rejects_a_bad_middle_line(tmp_path):
    feed = tmp_path / "lots.jsonl"
    feed.write_text('{"lot_key": "a"}\n{oops\n{"lot_key": "b"}\n')
    with pytest.raises(ValueError, match="line 2"):
        read_jsonl_unique(feed, "lot_key")


# ---------------------------------------------------------------- image list input


def test_image_list_from_csv_and_jsonl(tmp_path):
    csv_path = tmp_path / "sample.csv"
    csv_path.write_text("lot_key,artist,image_url\nwww-1-2,A,http://h/a.jpg\nwww-1-3,B,\nwww-1-2,A,http://h/dup.jpg\n",
                        encoding="utf-8-sig")
    items = read_image_list(csv_path)
    assert [(i.lot_key, i.image_url) for i in items] == [("www-1-2", "http://h/a.jpg"), ("www-1-3", None)]
    jsonl = tmp_path / "list.jsonl"
    jsonl.write_text('{"lot_key": "oo-1-2", "image_url": "http://h/b.jpg"}\n')
    assert read_image_list(jsonl)[0].image_url == "http://h/b.jpg"


def test_image_list_errors_name_file_line_and_field(tmp_path):
    bad = tmp_path / "sample.csv"
    bad.write_text("lot_key,image_url\nwww-1-2,http://h/a.jpg\n../x,http://h/b.jpg\n")
    with pytest.raises(ValueError, match=r"sample\.csv, line 3, field lot_key"):
        read_image_list(bad)
    missing = tmp_path / "nocol.csv"
    missing.write_text("lot_key\nwww-1-2\n")
    with pytest.raises(ValueError, match="image_url"):
        read_image_list(missing)


def test_scrapy_command_formats_settings():
    command = scrapy_command("christies", {"start": "2019-01"}, {"X": ["a", "b"], "Y": False}, Path("f.jsonl"),
                             append=True)
    assert command[3:] == ["crawl", "christies", "-a", "start=2019-01", "-o", "f.jsonl:jsonlines",
                           "-s", "X=a,b", "-s", "Y=0"]
    assert setting_value(2.5) == "2.5"


@pytest.mark.parametrize("value, location, day", [
    ("2019-05-16T00:00:00", "New York", "2019-05-16"),         # naive: already the saleroom's day
    ("2019-05-15T23:00:00Z", "London", "2019-05-16"),          # London midnight in summer, written in UTC
    ("2019-05-15T16:00:00.000Z", "Hong Kong", "2019-05-16"),   # Hong Kong midnight, with milliseconds
    ("2019-05-16T04:00Z", "New York", "2019-05-16"),           # New York midnight in UTC, no seconds
    ("2019-05-16T00:00:00+00:00", "London, King Street", "2019-05-16"),
    ("2019-05-15T16:00:00.000Z", "Somewhere new", "2019-05-16"),  # unknown saleroom: nearest UTC midnight
    ("2019-05-16T04:00:00Z", "Somewhere new", "2019-05-16"),
    ("2019-05-16T15:07:12.345Z", "Somewhere new", "2019-05-16"),  # a true instant keeps its UTC date
    ("16 May 2019", "London", None), ("", "London", None), (None, "London", None),
])
def test_sale_day_is_the_salerooms_local_day_in_every_form(value, location, day):
    assert parsing.sale_day(value, location) == day


def test_placeholders_and_encoded_parentheses_in_image_urls():
    base = "https://www.christies.com"
    roundel = {"image": {"image_src": "https://onlineonly.christies.com/Content/img/christies-roundel.svg"}}
    assert parsing.image_url_of(roundel, base) is None
    quoted = {"image": {"image_src": "/img/LotImages/2019/NYR/2019_NYR_1_0001_000%28a_b%29.jpg?mode=max"}}
    plain = {"image": {"image_src": "/img/LotImages/2019/NYR/2019_NYR_1_0001_000(a_b).jpg"}}
    assert parsing.image_url_of(quoted, base) == parsing.image_url_of(plain, base) == \
        "https://www.christies.com/img/LotImages/2019/NYR/2019_NYR_1_0001_000(a_b).jpg"


def test_progress_lines_count_what_is_settled_and_estimate_the_time_left():
    from types import SimpleNamespace

    from scraper.extensions import eta_text, progress_line
    from scraper.spiders.christies import CrawlProgress

    progress = CrawlProgress({})
    for month in (1, 2):
        progress.settle_month(2019, month)
    for sale in ("a", "b", "c", "d"):
        progress.open_sale(sale, "u")
    progress.settle_sale("a")
    lots = SimpleNamespace(months=[(2019, m) for m in range(1, 5)], progress=progress)
    line = progress_line(lots, {"item_scraped_count": 1200}, elapsed=120.0)
    # 2 of 4 months read, 4 sales so far -> 8 expected; done 2 + 1 of 4 + 8 units
    assert line.startswith("crawl progress: months 2/4 settled, sales 1/4 settled, 1,200 lots (600/min)")
    assert line.endswith(eta_text(120.0, 3, 12)) and eta_text(120.0, 3, 12) == "~6 min left"
    images = progress_line(SimpleNamespace(), {"item_scraped_count": 50, "images/requested": 400}, elapsed=10.0)
    assert images == "fetch progress: images 50/400 done (300/min), ~70 s left"
    assert eta_text(5.0, 0, 10) == "time left unknown" and eta_text(3600.0, 1, 4) == "~3.0 h left"


def test_image_spider_keeps_at_most_concurrent_items_lots_in_the_pipeline(tmp_path):
    """Scrapy reads start() items without back-pressure; the spider holds the next lot back until one leaves
    the pipeline (12,500 lots at once made 3.5 requests per image on the demo, most of them timeouts)."""
    sample = tmp_path / "sample.csv"
    sample.write_text("lot_key,image_url\n" + "".join(f"k{i},http://h/{i}.jpg\n" for i in range(6)), encoding="utf-8")
    crawler = get_crawler(ChristiesImagesSpider, {"CONCURRENT_ITEMS": 2})
    spider = ChristiesImagesSpider.from_crawler(crawler, list=str(sample))

    async def drive() -> list[str]:
        start = spider.start()
        first = [await anext(start), await anext(start)]
        third = asyncio.ensure_future(anext(start))
        for _ in range(20):
            await asyncio.sleep(0)
        assert not third.done(), "a third lot entered a pipeline limited to 2"
        crawler.signals.send_catch_log(signals.item_scraped, item=first[0], response=None, spider=spider)
        item = await asyncio.wait_for(third, timeout=5)
        return [lot.lot_key for lot in [*first, item]]

    assert asyncio.run(drive()) == ["k0", "k1", "k2"]
