"""Both spiders crawling the small sample-shaped site of fakesite.py, in a `scrapy crawl` subprocess."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

from PIL import Image

from conftest import crawl, feed_lines, site_settings
from fakesite import FakeConfig, FakeSite
from scraper.crawl_check import read_jsonl_unique
from scraper.stage import REPO_ROOT, scrapy_command

MAY = {"start": "2019-05", "end": "2019-05"}


def expected_keys(site: FakeSite) -> set[str]:
    live = {f"www-27901-{lot['object_id']}" for lot in site.lots("live")}
    return live | {f"oo-27955-{lot['object_id']}" for lot in site.lots("online")}


def test_crawl_pages_filters_and_downloads_renditions(out):
    with FakeSite(FakeConfig(live_lots=10, online_lots=7)) as site:
        settings = {**site_settings(site, out), "CHRISTIES_LOTSEARCH_PAGE_SIZE": 4, "CHRISTIES_IMAGE_WIDTH": 200}
        code, stats = crawl("christies", MAY, settings, out / "lots.jsonl")
        lots = feed_lines(out / "lots.jsonl")
        first = lots[0]
        requests = list(site.config.requests)
        with urllib.request.urlopen(f"{first['image_url']}?mode=max&w=200") as response:
            server_bytes = response.read()
    assert code == 0 and stats["finish_reason"] == "finished"
    keys = [lot["lot_key"] for lot in lots]
    assert sorted(keys) == sorted(expected_keys(site)) and len(keys) == len(set(keys))
    assert not any(lot["sale_id"] in ("27999", "28000") for lot in lots)  # decoy and not-closed sales
    lotsearch_pages = sorted(int(r.split("page=")[1].split("&")[0]) for r in requests if "lotsearch" in r)
    assert lotsearch_pages == [1, 2, 3]  # 10 lots at 4 per page: the last page is fetched, nothing beyond
    image_requests = [r for r in requests if r.startswith("/img/")]
    assert len(image_requests) == 17 and all(r.endswith("?mode=max&w=200") for r in image_requests)
    stored = out / "images" / first["image_path"]
    assert stored.read_bytes() == server_bytes
    assert hashlib.sha1(server_bytes).hexdigest() == first["image_sha1"]
    assert Image.open(stored).width == 200
    assert first["image_path"].startswith(first["lot_key"].rsplit("-", 1)[0] + "/")


def test_robots_forbidding_search_falls_back_to_the_sale_page(out):
    robots = "User-agent: *\nDisallow: */search\nDisallow: */lotimages\n"
    with FakeSite(FakeConfig(live_lots=3, online_lots=12, robots=robots)) as site:
        settings = {**site_settings(site, out), "CHRISTIES_IMAGES": "none"}
        code, stats = crawl("christies", MAY, settings, out / "lots.jsonl")
        requests = list(site.config.requests)
    online = [lot for lot in feed_lines(out / "lots.jsonl") if lot["sale_kind"] == "online"]
    assert len(online) == 12 and len({lot["lot_key"] for lot in online}) == 12
    assert not any("searchLots" in r for r in requests)  # never sent: robots.txt forbids it
    assert [r for r in requests if "/s/online-sale/lots/2101?page=" in r] == [
        f"/s/online-sale/lots/2101?page={n}" for n in (1, 2, 3)]  # 5 per page, cumulative: 3 pages for 12
    assert not any(r.startswith("/img/") for r in requests)  # CHRISTIES_IMAGES=none
    failures = feed_lines(out / "lots.jsonl.failures.jsonl")
    assert failures[0]["reason"] == "forbidden by robots.txt" and failures[0]["has_fallback"] is True
    assert stats.get("christies/listing_failed", 0) == 0 and stats["christies/fallback_sale_page"] == 1
    assert online[0]["lot_url"].endswith("/s/online-sale/lot-1/150001")
    assert online[0]["estimate_low"] == 1000.0 and online[0]["withdrawn"] is False


def test_retry_after_is_honoured_and_counted(out):
    with FakeSite(FakeConfig(live_lots=2, online_lots=1, retry_after_first=True)) as site:
        code, stats = crawl("christies", MAY, {**site_settings(site, out), "CHRISTIES_IMAGES": "none"},
                            out / "lots.jsonl")
    assert code == 0 and len(feed_lines(out / "lots.jsonl")) == 3
    assert stats["retry_after/backoffs"] == 1 and stats["retry_after/header_seconds"] == 1
    assert stats["retry_after/wait_seconds"] == 1.0  # Retry-After: 1, under the 1 s cap


def test_images_spider_downloads_then_skips_and_reports_failures(out):
    with FakeSite() as site:
        good = site.lot("live", 1)["image"]["image_src"].split("?")[0]
        dead_port_url = good.replace(site.base_url, "http://127.0.0.1:9")  # recorded against another port
        sample = out / "sample.csv"
        sample.write_text("lot_key,artist,image_url\n"
                          f"www-1-1,A,{dead_port_url}\nwww-1-2,B,\nwww-1-3,C,{site.base_url}/missing.jpg\n")
        settings = {**site_settings(site, out), "CHRISTIES_IMAGE_BASE_URL": site.base_url,
                    "CHRISTIES_IMAGE_WIDTH": 120}
        code, _ = crawl("christies_images", {"list": str(sample)}, settings, out / "images.jsonl")
        first = {line["lot_key"]: line for line in feed_lines(out / "images.jsonl")}
        images_before = sum(r.startswith("/img/") for r in site.config.requests)
        code_again, _ = crawl("christies_images", {"list": str(sample)}, settings, out / "images2.jsonl")
        again = {line["lot_key"]: line for line in feed_lines(out / "images2.jsonl")}
        images_after = sum(r.startswith("/img/") for r in site.config.requests)
        with urllib.request.urlopen(f"{good}?mode=max&w=120") as response:
            server_bytes = response.read()
    assert code == 0 and code_again == 0
    assert first["www-1-1"]["status"] == "downloaded" and first["www-1-1"]["image_path"] == "www-1/www-1-1.jpg"
    assert (out / "images" / "www-1" / "www-1-1.jpg").read_bytes() == server_bytes
    assert Image.open(out / "images" / "www-1" / "www-1-1.jpg").width == 120
    assert (first["www-1-2"]["status"], first["www-1-2"]["reason"]) == ("failed", "no image_url")
    assert (first["www-1-3"]["status"], first["www-1-3"]["reason"]) == ("failed", "HTTP 404")
    assert again["www-1-1"]["status"] == "uptodate" and images_after == images_before  # no second download
    assert again["www-1-1"]["image_sha1"] == hashlib.sha1(server_bytes).hexdigest()


def test_killed_crawl_resumes_with_jobdir_and_every_lot_appears_once(out):
    with FakeSite(FakeConfig(live_lots=240, online_lots=3)) as site:
        settings = {**site_settings(site, out), "CHRISTIES_IMAGES": "none", "CHRISTIES_LOTSEARCH_PAGE_SIZE": 4,
                    "DOWNLOAD_DELAY": 0.03, "JOBDIR": out / "job", "LOG_LEVEL": "INFO"}
        feed = out / "lots.jsonl"
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "SCRAPY_SETTINGS_MODULE": "scraper.settings"}
        process = subprocess.Popen(scrapy_command("christies", MAY, settings, feed, append=True), cwd=REPO_ROOT,
                                   env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (not feed.exists() or feed.stat().st_size < 4000):
            if process.poll() is not None:
                break
            time.sleep(0.05)  # polling for progress, not timing an assertion
        assert process.poll() is None, "the crawl ended before it could be interrupted"
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
        first_run = len(read_jsonl_unique(feed, "lot_key"))
        code, stats = crawl("christies", MAY, settings, feed, append=True)
    lots = read_jsonl_unique(feed, "lot_key")
    assert 0 < first_run < 243
    assert code == 0 and stats["finish_reason"] == "finished"
    assert sorted(lot["lot_key"] for lot in lots) == sorted(expected_keys(site))
    assert Path(out / "job").is_dir()
