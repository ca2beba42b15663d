"""Crash-safe outputs: crawls stopped (SIGTERM) or killed (SIGKILL) mid-way and started again, stage runners
killed before they publish, writes interrupted half-way, and images never fetched twice.

The crawls run as `scrapy crawl` subprocesses (what the stage runners do) against an in-process demo site,
slowed by DOWNLOAD_DELAY so that "mid-way" is reached by polling the feed's line count, never by sleeping.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import yaml

from common import load_params
from scraper import fetch_stage
from scraper.crawl_check import read_jsonl, read_jsonl_unique
from scraper.demo import DemoSite
from scraper.stage import DEMO_CRAWL_SETTINGS, REPO_ROOT, scrapy_command, write_jsonl
from tests.reliability.conftest import (
    CATEGORIES, END, FAULT_TEST_SETTINGS, START, expected_lots, image_lots, line_count, lot_key, scrapy_env,
    served_image, wait_until, write_image_list,
)

SHORT_END = "2019-02"  # two months keep the killed stage runs to seconds
KILL_AFTER_LINES = 150
# The interrupted JOBDIR crawls run over the full four months, slowed so that "mid-way" lasts seconds.
SLOW_CRAWL = {"CONCURRENT_REQUESTS": 2, "DOWNLOAD_DELAY": 0.2, "RANDOMIZE_DOWNLOAD_DELAY": False}
IMAGE_WIDTH = 96


def short_expected_keys(catalogue) -> set[str]:
    return {lot_key(lot, catalogue) for lot in catalogue.expected_lots(START, SHORT_END, CATEGORIES)}


def lot_crawl_command(site: DemoSite, out: Path) -> list[str]:
    """`scrapy crawl christies ... -o feed` with a JOBDIR: the documented way to run a resumable crawl."""
    settings = {**FAULT_TEST_SETTINGS, **SLOW_CRAWL, "CHRISTIES_BASE_URL": site.base_url,
                "CHRISTIES_ONLINE_BASE_URL": site.online_base_url, "CHRISTIES_IMAGES": "none",
                "JOBDIR": out / "jobdir", "CHRISTIES_STATS_FILE": out / "stats.json"}
    return scrapy_command("christies", {"start": START, "end": END}, settings, out / "lots.jsonl", append=True)


def interrupt_then_resume(catalogue, out: Path, signal_number: int) -> tuple[list[dict], int, dict]:
    """Start the crawl, send `signal_number` once KILL_AFTER_LINES lots are in the feed, run the same command
    again. Returns the de-duplicated feed, the lines written before the interruption and the closing stats."""
    feed = out / "lots.jsonl"
    with DemoSite(catalogue) as site:
        command = lot_crawl_command(site, out)
        first = subprocess.Popen(command, cwd=REPO_ROOT, env=scrapy_env(), stderr=subprocess.DEVNULL)
        try:
            wait_until(lambda: line_count(feed) >= KILL_AFTER_LINES, f"{KILL_AFTER_LINES} lines in {feed}", first)
            first.send_signal(signal_number)
            first.wait(timeout=60)
        finally:
            if first.poll() is None:
                first.kill()
        written_before = line_count(feed)
        second = subprocess.run(command, cwd=REPO_ROOT, env=scrapy_env(), stderr=subprocess.DEVNULL, timeout=120)
    assert second.returncode == 0
    stats = json.loads((out / "stats.json").read_text())
    return read_jsonl_unique(feed, "lot_key"), written_before, stats


def test_crawl_stopped_with_sigterm_resumes_from_jobdir_with_every_lot_once(tmp_path, catalogue):
    lots, before, stats = interrupt_then_resume(catalogue, tmp_path, signal.SIGTERM)
    expected = set(expected_lots(catalogue))
    assert KILL_AFTER_LINES <= before < len(expected), "the stop must happen mid-way"
    assert {lot["lot_key"] for lot in lots} == expected and len(lots) == len(expected)
    assert stats["finish_reason"] == "finished"


def test_crawl_killed_with_sigkill_resumes_from_jobdir_with_every_lot_once(tmp_path, catalogue):
    lots, before, _ = interrupt_then_resume(catalogue, tmp_path, signal.SIGKILL)
    expected = set(expected_lots(catalogue))
    assert KILL_AFTER_LINES <= before < len(expected), "the kill must happen mid-way"
    assert {lot["lot_key"] for lot in lots} == expected


def test_feed_reader_drops_repeats_and_a_half_written_last_line(tmp_path):
    feed = tmp_path / "lots.jsonl"
    records = [{"lot_key": "www-1-1", "n": 1}, {"lot_key": "www-1-2", "n": 2}, {"lot_key": "www-1-1", "n": 3}]
    feed.write_text("".join(json.dumps(r) + "\n" for r in records) + '{"lot_key": "www-1-3", "ti', encoding="utf-8")
    assert read_jsonl_unique(feed, "lot_key") == records[:2]
    feed.write_text('{"lot_key": "www-1-3", "ti\n' + json.dumps(records[0]) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"lots\.jsonl, line 1"):  # a bad line that is not the last: an error
        read_jsonl_unique(feed, "lot_key")


def stage_params(path: Path, end: str) -> Path:
    params = load_params(path=REPO_ROOT / "params.yaml")
    params["scrape"] = {**params["scrape"], "site": "demo", "start": START, "end": end, "min_items": 1}
    path.write_text(yaml.safe_dump(params), encoding="utf-8")
    return path


def run_scrape_stage(params: Path, raw: Path, crawls: Path) -> subprocess.Popen:
    """`python -m scraper.scrape_stage` in its own process group (it starts `scrapy crawl` as a child)."""
    command = [sys.executable, "-m", "scraper.scrape_stage", "--params", str(params), "--raw-dir", str(raw),
               "--crawls-dir", str(crawls)]
    return subprocess.Popen(command, cwd=REPO_ROOT, env=scrapy_env(), start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def kill_group(process: subprocess.Popen) -> None:
    """SIGKILL the stage and the crawl it started (both in the group this test created)."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)


@pytest.mark.parametrize("previous", [True, False], ids=["previous-version", "no-previous-version"])
def test_killed_scrape_stage_never_leaves_a_half_written_lots_file(tmp_path, catalogue, previous):
    params, raw, crawls = stage_params(tmp_path / "params.yaml", SHORT_END), tmp_path / "raw", tmp_path / "crawls"
    raw.mkdir()
    old = b'{"lot_key": "www-0-0"}\n'
    if previous:
        (raw / "lots.jsonl").write_bytes(old)
    job_feed = crawls / f"scrape-demo-{START}-{SHORT_END}" / "lots.jsonl.part"
    stage = run_scrape_stage(params, raw, crawls)
    try:
        wait_until(lambda: line_count(job_feed) >= KILL_AFTER_LINES, f"lines in {job_feed}", stage)
    finally:
        kill_group(stage)
    assert (raw / "lots.jsonl").read_bytes() == old if previous else not (raw / "lots.jsonl").exists()
    assert not [p.name for p in raw.iterdir() if p.name.endswith(".part")]

    rerun = run_scrape_stage(params, raw, crawls)
    assert rerun.wait(timeout=180) == 0
    keys = Counter(record["lot_key"] for record in read_jsonl(raw / "lots.jsonl"))
    assert set(keys) == short_expected_keys(catalogue) and max(keys.values()) == 1


def test_a_write_that_fails_half_way_leaves_the_previous_file_and_no_temporary(tmp_path):
    target = tmp_path / "lots.jsonl"
    target.write_text('{"lot_key": "old"}\n', encoding="utf-8")

    def records_then_crash():
        yield {"lot_key": "new-1"}
        yield {"lot_key": "new-2"}
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_jsonl(target, records_then_crash())
    assert target.read_text(encoding="utf-8") == '{"lot_key": "old"}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["lots.jsonl"]


def image_crawl_command(site: DemoSite, sample: Path, out: Path, images: Path) -> list[str]:
    settings = {**FAULT_TEST_SETTINGS, "CONCURRENT_REQUESTS": 1, "DOWNLOAD_DELAY": 0.1,
                "RANDOMIZE_DOWNLOAD_DELAY": False, "CHRISTIES_IMAGE_WIDTH": IMAGE_WIDTH,
                "CHRISTIES_IMAGE_BASE_URL": site.base_url, "FILES_STORE": images,
                "CHRISTIES_STATS_FILE": out / "stats.json"}
    return scrapy_command("christies_images", {"list": str(sample)}, settings, out / "images.jsonl", append=False)


def stored_files(images: Path) -> list[Path]:
    """Stored images; not the `.<name>.part` temporary file a kill can leave behind mid-write (never renamed,
    so never taken for an image: the next run fetches that lot)."""
    return sorted(p for p in images.rglob("*") if p.is_file() and not p.name.endswith(".part"))


def test_images_stored_before_a_kill_are_never_fetched_again(tmp_path, catalogue):
    lots = image_lots(catalogue, 20)
    sample = write_image_list(tmp_path / "sample.csv", lots, catalogue)
    images = tmp_path / "raw" / "images"
    with DemoSite(catalogue) as site:
        crawl = subprocess.Popen(image_crawl_command(site, sample, tmp_path, images), cwd=REPO_ROOT,
                                 env=scrapy_env(), stderr=subprocess.DEVNULL)
        try:
            wait_until(lambda: len(stored_files(images)) >= 6, "6 stored images", crawl)
        finally:
            crawl.kill()
            crawl.wait(timeout=30)
    kept_after_kill = {p.relative_to(images).as_posix() for p in stored_files(images)}
    assert 6 <= len(kept_after_kill) < len(lots)

    settings = {**DEMO_CRAWL_SETTINGS, "LOG_LEVEL": "WARNING", "CHRISTIES_IMAGE_WIDTH": IMAGE_WIDTH}
    for run, expect_requests in ((1, len(lots) - len(kept_after_kill)), (2, 0)):
        with DemoSite(catalogue) as site:
            code = fetch_stage.fetch_images(sample, images, tmp_path / "raw", tmp_path / f"job{run}",
                                            {**settings, "CHRISTIES_IMAGE_BASE_URL": site.base_url},
                                            max_lost_fraction=0.01)
            # Distinct image URLs: a download that timed out on a loaded machine and was retried counts once.
            requested = {key for key in site.counters.attempts if "/img/lotimages/" in key.lower()}
            assert len(requested) == expect_requests, f"run {run}"
            by_key = {lot_key(lot, catalogue): lot for lot in lots}
            lines = read_jsonl(tmp_path / "raw" / "images.jsonl")
            for line in lines:  # every stored file is the whole image: no truncated file survived the kill
                stored = (images / line["image_path"]).read_bytes()
                assert stored == served_image(site, by_key[line["lot_key"]], IMAGE_WIDTH), line["lot_key"]
        assert code == 0 and len(lines) == len(lots)
        statuses = Counter(line["status"] for line in lines)
        assert statuses["uptodate"] == (len(kept_after_kill) if run == 1 else len(lots))
