"""Corrupt image answers are never stored, and a JOBDIR left by a killed crawl is never resumed from: unit tests
of the checks, then `scrapy crawl` subprocesses against fakesite.py."""

from __future__ import annotations

import io
import pickle

import pytest
from PIL import Image
from scrapy import Spider
from scrapy.utils.test import get_crawler

from conftest import crawl, feed_lines, site_settings
from fakesite import FakeConfig, FakeSite, image_bytes
from scraper.crawl_check import lot_crawl_errors, read_jsonl_unique
from scraper.demo.artwork import bomb_png
from scraper.extensions import JobdirGuardExtension
from scraper.jobdir import CLEAN_STOP_MARKER, begin_job, end_job, resumes_job
from scraper.pipelines import image_bytes_problem
from scraper.spiders.christies import CrawlProgress, missing_lots

MAY = {"start": "2019-05", "end": "2019-05"}

# ---------------------------------------------------------------- image bytes


def png_bytes(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (width, height)).save(buffer, "PNG")
    return buffer.getvalue()


def test_a_whole_image_has_no_problem():
    assert image_bytes_problem(image_bytes(seed=3, width=64)) is None
    assert image_bytes_problem(png_bytes(8, 8)) is None


@pytest.mark.parametrize("damage", [
    lambda body: body[: int(len(body) * 0.55)],          # truncated JPEG: its header still opens
    lambda body: body[:16] + bytes(len(body) - 16),      # zeroed after the header (the demo's corrupt answer)
    lambda body: b"<html><body>Access denied</body></html>",
    lambda body: b"",
], ids=["truncated", "zeroed", "html", "empty"])
def test_undecodable_bytes_are_named(damage):
    problem = image_bytes_problem(damage(image_bytes(seed=3, width=200)))
    assert problem and isinstance(problem, str)


def test_a_format_outside_the_allowlist_is_refused():
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4)).save(buffer, "BMP")  # decodable by Pillow, but never an image the site serves
    assert "cannot identify" in image_bytes_problem(buffer.getvalue())


def test_decompression_bombs_are_real_images_kept_undecoded(monkeypatch):
    assert image_bytes_problem(bomb_png()) is None  # the demo's bomb: DecompressionBombError at open
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    assert image_bytes_problem(png_bytes(40, 40)) is None  # 1,600 px: only the warning, turned into an error


# ---------------------------------------------------------------- JOBDIR hygiene


def killed_jobdir(tmp_path):
    jobdir = tmp_path / "job"
    (jobdir / "requests.queue").mkdir(parents=True)
    (jobdir / "requests.queue" / "active.json").write_text("[]")
    (jobdir / "requests.seen").write_bytes(b"\x00" * 24)
    (jobdir / "spider.state").write_bytes(pickle.dumps({}))
    return jobdir


def test_state_of_a_killed_job_is_discarded(tmp_path):
    jobdir = killed_jobdir(tmp_path)
    assert resumes_job(jobdir)
    assert begin_job(jobdir) == ["requests.queue", "requests.seen", "spider.state"]
    assert sorted(p.name for p in jobdir.iterdir()) == [] and not resumes_job(jobdir)


def test_state_of_a_cleanly_stopped_job_is_kept_and_the_marker_removed_at_start(tmp_path):
    jobdir = killed_jobdir(tmp_path)
    assert end_job(jobdir, "shutdown")
    assert begin_job(jobdir) == []
    assert sorted(p.name for p in jobdir.iterdir()) == ["requests.queue", "requests.seen", "spider.state"]
    assert begin_job(jobdir) == ["requests.queue", "requests.seen", "spider.state"]  # killed again: no marker


@pytest.mark.parametrize("reason", ["cancelled", "closespider_timeout", "shutdown_forced"])
def test_other_close_reasons_leave_no_marker(tmp_path, reason):
    jobdir = killed_jobdir(tmp_path)
    assert not end_job(jobdir, reason) and not (jobdir / CLEAN_STOP_MARKER).exists()


def test_extension_cleans_up_before_the_scheduler_and_marks_a_clean_close(tmp_path):
    jobdir = killed_jobdir(tmp_path)
    crawler = get_crawler(Spider, {"JOBDIR": str(jobdir)})
    extension = JobdirGuardExtension.from_crawler(crawler)
    assert extension.discarded == ["requests.queue", "requests.seen", "spider.state"]
    assert not (jobdir / "requests.seen").exists()
    extension.spider_closed(Spider("x"), "finished")
    assert (jobdir / CLEAN_STOP_MARKER).is_file()


# ---------------------------------------------------------------- completeness


def test_progress_settles_months_and_sales_once():
    state: dict = {}
    progress = CrawlProgress(state)
    progress.settle_month(2019, 5)
    progress.open_sale("27901", "https://x/a")
    progress.open_sale("27955", "https://x/b")
    progress.settle_sale("27901")
    progress.open_sale("27901", "https://x/a")  # a resumed run re-reads the calendar: stays settled
    assert progress.unfinished_months([(2019, 5), (2019, 6)]) == [(2019, 6)]
    assert progress.unfinished_sales() == {"27955": "https://x/b"}
    again = CrawlProgress(pickle.loads(pickle.dumps(state)))  # what spider.state keeps across a clean stop
    assert again.unfinished_sales() == {"27955": "https://x/b"} and again.months_settled == {"2019-05"}


def test_a_month_is_done_once_its_calendar_was_read_and_its_sales_ended():
    progress = CrawlProgress({})
    progress.start_month("2019-05")
    progress.open_sale("1", "https://x/a", "2019-05")
    assert progress.open_months() == ["2019-05"] and not progress.month_done("2019-05")
    progress.settle_month(2019, 5)
    assert not progress.month_done("2019-05")
    assert progress.settle_sale("1") == "2019-05" and progress.month_done("2019-05")


def test_missing_lots_and_unfinished_work_fail_the_crawl():
    ok = {"finish_reason": "finished"}
    assert missing_lots(10, 7) == 3 and missing_lots(10, 12) == 0
    assert lot_crawl_errors({**ok, "lots/missing": 3}, 10, 1)
    assert lot_crawl_errors({**ok, "christies/sales_unfinished": 1}, 10, 1)
    assert lot_crawl_errors({**ok, "christies/months_unfinished": 1}, 10, 1)


# ---------------------------------------------------------------- crawls


def test_corrupt_answers_are_retried_and_a_permanently_corrupt_one_fails_unstored(out):
    corrupt = {"_0001_": 1, "_0002_": 1000}  # lot 1: first answer corrupt; lot 2: always corrupt
    with FakeSite(FakeConfig(corrupt_image_answers=corrupt)) as site:
        urls = {i: site.lot("live", i)["image"]["image_src"].split("?")[0] for i in (1, 2, 3)}
        sample = out / "sample.csv"
        sample.write_text("lot_key,image_url\n" + "".join(f"www-1-{i},{url}\n" for i, url in urls.items()))
        settings = {**site_settings(site, out), "CHRISTIES_IMAGE_WIDTH": 120, "CHRISTIES_IMAGE_CORRUPT_RETRIES": 2}
        code, stats = crawl("christies_images", {"list": str(sample)}, settings, out / "images.jsonl")
        requests = list(site.config.requests)
    lines = {line["lot_key"]: line for line in feed_lines(out / "images.jsonl")}
    assert code == 0 and stats["finish_reason"] == "finished"
    assert lines["www-1-1"]["status"] == "downloaded"
    assert Image.open(out / "images" / lines["www-1-1"]["image_path"]).width == 120  # the good second answer
    assert lines["www-1-3"]["status"] == "downloaded"
    failed = lines["www-1-2"]
    assert failed["status"] == "failed" and failed["reason"].startswith("corrupt image: ")
    assert failed["image_path"] is None and not (out / "images" / "www-1" / "www-1-2.jpg").exists()
    assert sum("_0002_" in r for r in requests) == 3  # one try + CHRISTIES_IMAGE_CORRUPT_RETRIES
    assert sum("_0001_" in r for r in requests) == 2
    assert stats["images/corrupt"] == 1 and stats["images/corrupt_retries"] == 3
    failures = feed_lines(out / "images.jsonl.failures.jsonl")
    assert [(f["kind"], f["status"]) for f in failures] == [("image", 200)] and "_0002_" in failures[0]["url"]


def test_a_listing_short_of_its_announced_total_is_a_failure(out):
    with FakeSite(FakeConfig(live_lots=6, online_lots=2, announce_extra_live_lots=3)) as site:
        settings = {**site_settings(site, out), "CHRISTIES_IMAGES": "none", "CHRISTIES_LOTSEARCH_PAGE_SIZE": 4}
        code, stats = crawl("christies", MAY, settings, out / "lots.jsonl")
    assert len(feed_lines(out / "lots.jsonl")) == 8  # everything listed is kept
    assert stats["lots/missing"] == 3 and stats["christies/sales_incomplete"] == 1
    failures = feed_lines(out / "lots.jsonl.failures.jsonl")
    assert [f["reason"] for f in failures] == ["incomplete listing: 6 of 9 lots"] and "lotsearch" in failures[0]["url"]
    assert lot_crawl_errors(stats, 8, 1)


def test_requests_a_stale_jobdir_drops_are_reported_not_lost_silently(out):
    """A JOBDIR whose fingerprints outlive its progress (here: spider.state deleted behind a clean-stop marker)
    makes the rerun filter the calendar as already seen: the month is reported, the crawl counts as failed."""
    with FakeSite(FakeConfig(live_lots=3, online_lots=2)) as site:
        settings = {**site_settings(site, out), "CHRISTIES_IMAGES": "none", "JOBDIR": out / "job"}
        code, stats = crawl("christies", MAY, settings, out / "lots.jsonl", append=True)
        assert code == 0 and not lot_crawl_errors(stats, 5, 1) and (out / "job" / CLEAN_STOP_MARKER).is_file()
        code, stats = crawl("christies", MAY, settings, out / "lots.jsonl", append=True)
        assert not lot_crawl_errors(stats, 5, 1)  # a finished job run again: nothing to do, nothing missing
        (out / "job" / "spider.state").unlink()
        code, stats = crawl("christies", MAY, settings, out / "lots.jsonl", append=True)
    assert stats["christies/months_unfinished"] == 1 and lot_crawl_errors(stats, 5, 1)
    assert feed_lines(out / "lots.jsonl.failures.jsonl")[-1]["reason"] == "calendar never read"
    assert len(read_jsonl_unique(out / "lots.jsonl", "lot_key")) == 5


def test_a_killed_jobdir_is_started_again_and_every_lot_comes_back(out):
    with FakeSite(FakeConfig(live_lots=5, online_lots=2)) as site:
        settings = {**site_settings(site, out), "CHRISTIES_IMAGES": "none", "JOBDIR": out / "job"}
        code, stats = crawl("christies", MAY, settings, out / "lots.jsonl", append=True)
        assert code == 0 and "jobdir/discarded_unclean_state" not in stats
        (out / "job" / CLEAN_STOP_MARKER).unlink()  # as if this run had been killed: its state is not trusted
        code, stats = crawl("christies", MAY, settings, out / "lots.jsonl", append=True)
    assert code == 0 and stats["jobdir/discarded_unclean_state"] == 1 and not lot_crawl_errors(stats, 7, 1)
    assert stats["item_scraped_count"] == 7  # crawled again from the calendar, not "all seen, nothing to do"
    assert len(feed_lines(out / "lots.jsonl")) == 14  # appended, not truncated; read back de-duplicated
    assert len(read_jsonl_unique(out / "lots.jsonl", "lot_key")) == 7
