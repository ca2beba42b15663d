"""The stage runners end to end on the embedded demo site (scraper/demo/), with a tiny catalogue."""

from __future__ import annotations

import csv
import hashlib
import json
import re
import shutil
import urllib.request
from pathlib import Path

import pytest
import yaml
from PIL import Image

from common import load_params
from scraper import fetch_stage, scrape_stage, stage
from scraper.demo import DemoSite, build_catalogue
from scraper.demo.faults import FaultConfig
from scraper.demo.payloads import CALENDAR_COMPONENT
from scraper.parsing import rebase_url, rendition_url

CATEGORIES = ["category_7", "category_11"]
TINY_DEMO = {"months": 2, "n_artists": 4, "works_min": 5, "works_max": 12, "sales_per_month": 2,
             "decoy_sales_per_month": 1, "lots_per_decoy_sale": 5, "n_prolific": 2, "prolific_min_works": 8,
             "image_min_side": 200, "image_max_side": 400}
START, END = "2019-01", "2019-02"


@pytest.fixture(scope="module")
def demo_params() -> dict:
    return {**load_params("demo", path=Path(__file__).parents[2] / "params.yaml"), **TINY_DEMO}


@pytest.fixture(scope="module")
def catalogue(demo_params):
    return build_catalogue(demo_params, start=START)


def expected_keys(catalogue) -> list[str]:
    online = {sale.event_id for sale in catalogue.sales if sale.is_online}
    return sorted(f"{'oo' if lot.event_id in online else 'www'}-{lot.event_id}-{lot.object_id}"
                  for lot in catalogue.expected_lots(START, END, CATEGORIES))


def write_params(path: Path, demo_params: dict, image_width: int = 160) -> Path:
    params = load_params(path=Path(__file__).parents[2] / "params.yaml")
    params["demo"] = demo_params
    params["scrape"] = {**params["scrape"], "site": "demo", "start": START, "end": END, "image_width": image_width,
                        "categories": CATEGORIES, "min_items": 1, "archive": str(path.parent / "archive")}
    path.write_text(yaml.safe_dump(params), encoding="utf-8")
    return path


def test_scrape_then_fetch_stages_on_the_demo_site(tmp_path, demo_params, catalogue, monkeypatch):
    params = write_params(tmp_path / "params.yaml", demo_params)
    raw, crawls = tmp_path / "data" / "raw", tmp_path / "crawls"
    code = scrape_stage.main(["--params", str(params), "--raw-dir", str(raw), "--crawls-dir", str(crawls)])
    assert code == 0
    lots = [json.loads(line) for line in (raw / "lots.jsonl").read_text(encoding="utf-8").splitlines()]
    assert sorted(lot["lot_key"] for lot in lots) == expected_keys(catalogue)  # each expected lot exactly once
    stats = json.loads((raw / "crawl_stats.json").read_text())
    assert stats["ok"] is True and stats["lots"] == len(lots) and stats["finish_reason"] == "finished"
    assert (raw / "rejects.jsonl").exists() and stats["rejects"] == 0
    assert not any("image_path" in lot for lot in lots)  # the scrape stage fetches no images
    assert not (crawls / f"scrape-demo-{START}-{END}").exists()  # job folder removed after success

    plain_jpeg = {oid for oid, lot in catalogue.lots.items() if lot.truth.image_kind == "jpeg_rgb"}
    with_images = [lot for lot in lots if lot["image_url"] and lot["object_id"] in plain_jpeg][:4]
    sample = tmp_path / "sample.csv"
    with open(sample, "w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["lot_key", "artist", "image_url"])
        writer.writeheader()
        writer.writerows({"lot_key": lot["lot_key"], "artist": lot["maker"], "image_url": lot["image_url"]}
                         for lot in with_images)
    code = fetch_stage.main(["--params", str(params), "--sample", str(sample), "--raw-dir", str(raw),
                             "--crawls-dir", str(crawls)])
    assert code == 0
    lines = [json.loads(line) for line in (raw / "images.jsonl").read_text().splitlines()]
    assert [line["lot_key"] for line in lines] == [lot["lot_key"] for lot in with_images]
    assert {line["status"] for line in lines} == {"downloaded"}
    first = lines[0]
    stored = raw / "images" / first["image_path"]
    with DemoSite(catalogue, faults=None) as site:  # same catalogue, new port: the same image bytes
        url = rendition_url(rebase_url(first["image_url"], site.base_url), 160)
        with urllib.request.urlopen(url) as response:
            assert stored.read_bytes() == response.read()
    assert hashlib.sha1(stored.read_bytes()).hexdigest() == first["image_sha1"]
    assert Image.open(stored).width <= 160
    assert json.loads((raw / "fetch_stats.json").read_text())["status/downloaded"] == 4

    # What a code change under scraper/ does (DVC reruns the stage): no stored, verified image is asked again.
    site = DemoSite(catalogue, faults=None)
    monkeypatch.setattr(fetch_stage, "demo_site", lambda *args: site)
    assert fetch_stage.main(["--params", str(params), "--sample", str(sample), "--raw-dir", str(raw),
                             "--crawls-dir", str(crawls)]) == 0
    assert [served for served in site.request_log() if served.kind == "image"] == []
    again = [json.loads(line) for line in (raw / "images.jsonl").read_text().splitlines()]
    assert {line["status"] for line in again} == {"uptodate"}
    assert [line["image_sha1"] for line in again] == [line["image_sha1"] for line in lines]


def test_demo_crawl_falls_back_when_robots_forbids_online_search(tmp_path, catalogue):
    scrape = {"start": START, "end": END, "categories": CATEGORIES, "contact": "test", "min_items": 1}
    with DemoSite(catalogue, faults=None, online_disallows_search=True) as site:
        code = scrape_stage.crawl_lots(scrape, site.base_url, site.online_base_url, tmp_path / "raw",
                                       tmp_path / "job", fast=True)
        served = site.stats()["requests"]
    assert code == 0 and "searchLots" not in served
    lots = [json.loads(line) for line in (tmp_path / "raw" / "lots.jsonl").read_text().splitlines()]
    assert sorted(lot["lot_key"] for lot in lots) == expected_keys(catalogue)
    stats = json.loads((tmp_path / "raw" / "crawl_stats.json").read_text())
    assert stats["christies/fallback_sale_page"] >= 1 and stats["failures"] >= 1


def test_demo_crawl_exits_non_zero_when_every_answer_is_an_error(tmp_path, catalogue):
    scrape = {"start": START, "end": START, "categories": CATEGORIES, "contact": "test", "min_items": 1}
    with DemoSite(catalogue, faults=FaultConfig(all_errors=True)) as site:
        code = scrape_stage.crawl_lots(scrape, site.base_url, site.online_base_url, tmp_path / "raw",
                                       tmp_path / "job", fast=True)
    assert code == 1 and not (tmp_path / "raw" / "lots.jsonl").exists()
    summary = json.loads((tmp_path / "raw" / "crawl_stats.json").read_text())
    assert summary["ok"] is False and summary["lots"] == 0
    assert summary["christies/listing_failed"] == 1  # the calendar API, its HTML page, then JSON-LD failed
    failures = [json.loads(line) for line in (tmp_path / "job" / "failures.jsonl").read_text().splitlines()]
    assert [(f["kind"], f["reason"], f["has_fallback"]) for f in failures] == [
        ("calendar", "HTTP 503", True), ("calendar", "HTTP 503", True), ("calendar", "HTTP 503", False)]


@pytest.mark.parametrize("stage", ["scrape", "fetch"])
def test_live_crawl_refuses_the_placeholder_contact_before_any_request(tmp_path, stage):
    params = yaml.safe_load(open("params.yaml", encoding="utf-8"))
    params["scrape"]["site"] = "live"
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params), encoding="utf-8")
    main = scrape_stage.main if stage == "scrape" else fetch_stage.main
    with pytest.raises(SystemExit, match=r"scrape.contact is still the placeholder.*your e-mail address"):
        main(["--params", str(path), "--raw-dir", str(tmp_path / "raw"), "--crawls-dir", str(tmp_path / "crawls")])
    assert not (tmp_path / "crawls").exists()


def test_a_forced_demo_rescrape_is_byte_identical_with_the_fixed_origin(tmp_path, demo_params):
    params = write_params(tmp_path / "params.yaml", demo_params)
    outputs = []
    for run in ("first", "second"):  # each run serves the demo on new random ports
        raw = tmp_path / run / "raw"
        shutil.rmtree(tmp_path / "archive", ignore_errors=True)  # a crawl, not a replay
        assert scrape_stage.main(["--params", str(params), "--raw-dir", str(raw),
                                  "--crawls-dir", str(tmp_path / run / "crawls")]) == 0
        outputs.append({name: (raw / name).read_bytes() for name in ("lots.jsonl", "rejects.jsonl",
                                                                      "crawl_failures.jsonl")})
    assert outputs[0] == outputs[1]
    text = outputs[0]["lots.jsonl"].decode("utf-8")
    ports = set(re.findall(r"http://127\.0\.0\.1:(\d+)", text))
    assert ports <= {"8800", "8801"} and "8800" in ports  # the origins `python -m scraper.demo` serves


def test_published_rewrites_served_origins_through_nested_records():
    origins = {"http://127.0.0.1:40001": "http://127.0.0.1:8800"}
    record = {"lot_url": "http://127.0.0.1:40001/en/lot/1", "n": 3, "images": ["http://127.0.0.1:40001/a.jpg"],
              "other": "http://127.0.0.1:400012/x"}
    assert scrape_stage.published(record, origins) == {
        "lot_url": "http://127.0.0.1:8800/en/lot/1", "n": 3, "images": ["http://127.0.0.1:8800/a.jpg"],
        "other": "http://127.0.0.1:400012/x"}  # another port that merely starts alike


def test_sale_dates_are_the_salerooms_days_and_placeholders_are_no_image(tmp_path, catalogue):
    scrape = {"start": START, "end": END, "categories": CATEGORIES, "contact": "test", "min_items": 1}
    with DemoSite(catalogue, faults=None) as site:
        calendar = json.loads(urllib.request.urlopen(
            f"{site.base_url}/api/discoverywebsite/auctioncalendar/auctionresults?language=en&month=1&year=2019"
            f"&component={CALENDAR_COMPONENT}").read())
        assert scrape_stage.crawl_lots(scrape, site.base_url, site.online_base_url, tmp_path / "raw",
                                       tmp_path / "job", fast=True) == 0
    in_utc = [event for event in calendar["events"] if str(event["end_date"]).endswith("Z")]
    assert any(event["location_txt"] == "Hong Kong" for event in in_utc)  # the trap is in the demo
    lots = [json.loads(line) for line in (tmp_path / "raw" / "lots.jsonl").read_text().splitlines()]
    by_event = {sale.event_id: sale for sale in catalogue.sales}
    for lot in lots:
        assert lot["sale_date"] == by_event[lot["sale_id"]].end.isoformat(), lot["lot_key"]
        assert lot["sale_start_date"] == by_event[lot["sale_id"]].start.isoformat(), lot["lot_key"]
        truth = catalogue.lots[lot["object_id"]].truth
        assert (lot["image_url"] is not None) == truth.has_image, lot["lot_key"]


def test_the_demo_serves_the_onlineonly_roundel_as_a_placeholder():
    from scraper.demo.payloads import Origins, image_block
    from scraper.parsing import image_url_of

    catalogue = build_catalogue(load_params("demo", path=Path(__file__).parents[2] / "params.yaml"), start=START)
    roundels = [lot for lot in catalogue.lots.values() if lot.image_path and "roundel" in lot.image_path]
    assert roundels and all(not lot.truth.has_image for lot in roundels)
    origins = Origins(www="http://127.0.0.1:8800", online="http://127.0.0.1:8801")
    assert all(image_url_of({"image": image_block(lot, origins)}, origins.www) is None for lot in roundels)


def _store_with(images_dir: Path, build: str | None) -> Path:
    (images_dir / "oo-1").mkdir(parents=True)
    (images_dir / "oo-1" / "oo-1-2.jpg").write_bytes(b"old picture")
    if build is not None:
        (images_dir / fetch_stage.IMAGES_BUILD_FILE).write_text(build + "\n")
    return images_dir


def test_pictures_of_another_demo_build_are_removed_before_a_fetch(tmp_path):
    images = _store_with(tmp_path / "images", "demo-build-a")
    fetch_stage.prepare_image_store(images, "demo-build-b")
    assert sorted(p.name for p in images.iterdir()) == [fetch_stage.IMAGES_BUILD_FILE]
    assert (images / fetch_stage.IMAGES_BUILD_FILE).read_text().strip() == "demo-build-b"
    assert [p.name for p in tmp_path.iterdir()] == ["images"]


def test_the_same_demo_build_keeps_its_pictures(tmp_path):
    images = _store_with(tmp_path / "images", "demo-build-a")
    fetch_stage.prepare_image_store(images, "demo-build-a")
    assert (images / "oo-1" / "oo-1-2.jpg").read_bytes() == b"old picture"


@pytest.mark.parametrize("previous", [fetch_stage.LIVE_BUILD, None])
def test_live_or_unrecorded_images_are_moved_aside_never_deleted(tmp_path, previous):
    images = _store_with(tmp_path / "images", previous)
    fetch_stage.prepare_image_store(images, "demo-build-b")
    aside = [p for p in tmp_path.iterdir() if p.name.startswith("images.set-aside-")]
    assert len(aside) == 1 and (aside[0] / "oo-1" / "oo-1-2.jpg").read_bytes() == b"old picture"
    assert sorted(p.name for p in images.iterdir()) == [fetch_stage.IMAGES_BUILD_FILE]


def test_the_demo_build_id_follows_the_params_and_the_demo_code(tmp_path, demo_params):
    package = tmp_path / "demo"
    package.mkdir()
    (package / "artwork.py").write_text("BRIGHTNESS = 1\n")
    first = fetch_stage.demo_build_id(demo_params, "2019-01", package)
    assert fetch_stage.demo_build_id(demo_params, "2019-01", package) == first
    assert fetch_stage.demo_build_id({**demo_params, "seed": 8}, "2019-01", package) != first
    (package / "faults.py").write_text("RATE = 1\n")  # serves nothing by itself: pictures and answers kept
    assert fetch_stage.demo_build_id(demo_params, "2019-01", package) == first
    (package / "artwork.py").write_text("BRIGHTNESS = 2\n")
    assert fetch_stage.demo_build_id(demo_params, "2019-01", package) != first


def test_a_new_premium_schedule_changes_the_demos_answers_not_its_pictures(tmp_path, demo_params, monkeypatch):
    """The demo's prices include the shipped premium: a new schedule re-keys its archived answers (they would
    replay old prices) but keeps its pictures, which no premium changes (issue #30: no image fetched twice)."""
    schedule = tmp_path / "buyers_premium.csv"
    schedule.write_text("a schedule\n", encoding="utf-8")
    monkeypatch.setattr(stage, "DEMO_PRICE_SOURCES", (schedule,))
    pictures, answers = stage.demo_build_id(demo_params, "2019-01"), stage.demo_answers_id(demo_params, "2019-01")
    schedule.write_text("another schedule\n", encoding="utf-8")
    assert stage.demo_build_id(demo_params, "2019-01") == pictures
    assert stage.demo_answers_id(demo_params, "2019-01") != answers
