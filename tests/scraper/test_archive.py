"""The response archive on the demo site (real HTTP on loopback), requests counted from the server's log.

One 24-month crawl (2017-01..2018-12, two art sales a month, few lots) is the reference; each test replays
it from a copy of its archive. The catalogue runs to 2019-06, whose calendar holds a sale that has not closed.
"""

from __future__ import annotations

import gzip
import json
import re
import shutil
import subprocess
import threading
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml

from common import load_params
from scraper import plan, scrape_stage
from scraper.archive import MANIFEST, ResponseArchive, settled_months
from scraper.demo import DemoSite, build_catalogue
from scraper.parsing import months
from scraper.stage import REPO_ROOT, scrapy_env

CATEGORIES = ["category_7", "category_11"]
START, END, LATER = "2017-01", "2018-12", "2019-06"
DEMO = {"months": 30, "n_artists": 4, "works_min": 5, "works_max": 12, "sales_per_month": 2,
        "decoy_sales_per_month": 1, "lots_per_decoy_sale": 3, "n_prolific": 2, "prolific_min_works": 8,
        "image_min_side": 100, "image_max_side": 200}
PUBLISHED = ("http://127.0.0.1:8800", "http://127.0.0.1:8801")


def month_range(start: str, end: str) -> list[str]:
    return [f"{y:04d}-{m:02d}" for y, m in months(start, end)]


@pytest.fixture(scope="module")
def demo_params() -> dict:
    return {**load_params("demo", path=REPO_ROOT / "params.yaml"), **DEMO}


@pytest.fixture(scope="module")
def catalogue(demo_params):
    return build_catalogue(demo_params, start=START)


def month_of(catalogue, served) -> str | None:
    """The calendar month a logged request belongs to (None: robots.txt)."""
    parts = urlsplit(served.url)
    query = {key.lower(): values[0] for key, values in parse_qs(parts.query).items()}
    if served.kind == "robots":
        return None
    if served.kind == "calendar":
        return f"{int(query['year']):04d}-{int(query['month']):02d}"
    if served.kind in ("searchLots",) or (served.kind == "sale_page" and served.origin == "online"):
        online_id = query.get("saleid") or parts.path.rstrip("/").rsplit("/", 1)[-1]
        return catalogue.sale_by_online_id(online_id).month
    if served.kind == "sale_page":
        return catalogue.sale(re.search(r"-(\d+)/?$", parts.path).group(1)).month
    return catalogue.sale(query["saleid"]).month  # lotsearch, sso


def crawl(catalogue, out: Path, archive: Path, end: str = END, start: str = START) -> tuple[int, list, bytes]:
    """One stage crawl on a fresh demo site (new random ports): exit status, the server's log, lots.jsonl."""
    scrape = {"start": start, "end": end, "categories": CATEGORIES, "contact": "test", "min_items": 1}
    with DemoSite(catalogue) as site:
        origins = dict(zip((site.base_url, site.online_base_url), PUBLISHED))
        code = scrape_stage.crawl_lots(scrape, site.base_url, site.online_base_url, out / "raw", out / "job",
                                       fast=True, origins=origins, archive=archive)
        log = site.request_log()
    lots = out / "raw" / "lots.jsonl"
    return code, log, lots.read_bytes() if code == 0 else b""


@pytest.fixture(scope="module")
def reference(tmp_path_factory, catalogue):
    """The uninterrupted 24-month crawl: its archive, the server's log and lots.jsonl."""
    out = tmp_path_factory.mktemp("reference")
    code, log, lots = crawl(catalogue, out, out / "archive")
    assert code == 0
    return out / "archive", log, lots


def copy_of(archive: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(archive, tmp_path / "archive"))


def test_every_month_of_a_clean_crawl_is_settled_and_a_rerun_asks_nothing(tmp_path, catalogue, reference):
    archive, log, lots = reference
    assert sorted(settled_months(archive)) == month_range(START, END)
    assert {month_of(catalogue, served) for served in log} - {None} == set(month_range(START, END))
    # what a parsing, items or pipeline change does: the stage runs again, on a demo site with other ports
    code, rerun_log, rerun_lots = crawl(catalogue, tmp_path, copy_of(archive, tmp_path))
    assert code == 0 and rerun_log == [] and rerun_lots == lots
    expected = {f"{lot.object_id}" for lot in catalogue.expected_lots(START, END, CATEGORIES)}
    assert {json.loads(line)["object_id"] for line in lots.splitlines()} == expected


def test_a_longer_range_asks_only_for_the_new_months_and_an_open_sale_again(tmp_path, catalogue, reference):
    archive = copy_of(reference[0], tmp_path)
    new_months = month_range("2019-01", LATER)
    code, log, lots = crawl(catalogue, tmp_path / "later", archive, end=LATER)
    assert code == 0
    asked = [month_of(catalogue, served) for served in log]
    assert set(asked) - {None} == set(new_months) and asked.count(None) == 2  # + robots.txt of both origins
    assert sorted(settled_months(archive)) == month_range(START, "2019-05")  # 2019-06 holds an upcoming sale
    assert any(not sale.closed for sale in catalogue.sales_in_month(2019, 6))

    code, log, again = crawl(catalogue, tmp_path / "again", archive, end=LATER)
    assert code == 0 and again == lots
    assert {month_of(catalogue, served) for served in log} - {None} == {LATER}

    code, log, shorter = crawl(catalogue, tmp_path / "shorter", archive, start="2017-06", end="2018-03")
    assert code == 0 and log == []
    assert len(shorter.splitlines()) == len(catalogue.expected_lots("2017-06", "2018-03", CATEGORIES))


def test_a_hard_kill_costs_only_the_unsettled_months(tmp_path, catalogue, reference, monkeypatch):
    _, reference_log, reference_lots = reference
    half = len(reference_log) // 2
    crawls: list[subprocess.Popen] = []

    def run_scrapy_keeping_the_process(command: list[str]) -> int:
        crawls.append(subprocess.Popen(command, cwd=REPO_ROOT, env=scrapy_env()))
        return crawls[-1].wait()

    monkeypatch.setattr(scrape_stage, "run_scrapy", run_scrapy_keeping_the_process)
    archive = tmp_path / "archive"
    scrape = {"start": START, "end": END, "categories": CATEGORIES, "contact": "test", "min_items": 1}
    halfway = threading.Event()
    with DemoSite(catalogue) as site:
        record = site.counters.record_request

        def record_and_watch(*args):
            attempt = record(*args)
            if len(site.counters.log) >= half:
                halfway.set()
            return attempt

        site.counters.record_request = record_and_watch
        origins = dict(zip((site.base_url, site.online_base_url), PUBLISHED))
        codes = []
        worker = threading.Thread(target=lambda: codes.append(scrape_stage.crawl_lots(
            scrape, site.base_url, site.online_base_url, tmp_path / "raw", tmp_path / "job", fast=True,
            origins=origins, archive=archive)))
        worker.start()
        assert halfway.wait(timeout=120)
        crawls[0].kill()  # SIGKILL: no clean-up, nothing flushed
        worker.join(timeout=60)
        first = len(site.request_log())
    assert codes == [1] and crawls[0].returncode == -9
    assert 0 < len(settled_months(archive)) < 24

    code, log, lots = crawl(catalogue, tmp_path / "rerun", archive)
    assert code == 0 and lots == reference_lots
    print(f"kill: {first} requests before, {len(log)} after; uninterrupted {len(reference_log)}")
    assert first + len(log) <= 1.1 * len(reference_log), (first, len(log), len(reference_log))


def _entries(archive: Path, month: str) -> dict:
    return json.loads((archive / month / MANIFEST).read_text())["entries"]


def test_a_corrupted_or_truncated_entry_is_asked_again_never_parsed(tmp_path, catalogue, reference):
    archive = copy_of(reference[0], tmp_path)
    pages = {(month, key): (entry, json.loads(gzip.decompress((archive / month / f"{key}.gz").read_bytes())))
             for month in settled_months(archive) for key, entry in _entries(archive, month).items()
             if re.search(r"lotsearch|searchLots", entry["url"])}
    (month, forged_key), (forged, page) = next((key, value) for key, value in sorted(pages.items())
                                               if value[1]["lots"])
    cut_key, cut = next((key, entry) for (other, key), (entry, _) in pages.items()
                        if other == month and key != forged_key)
    page["lots"][0]["title_secondary_txt"] = "FORGED"  # still gzip, still JSON: only the checksum tells
    (archive / month / f"{forged_key}.gz").write_bytes(gzip.compress(json.dumps(page).encode()))
    truncated = archive / month / f"{cut_key}.gz"
    truncated.write_bytes(truncated.read_bytes()[: truncated.stat().st_size // 2])

    code, log, lots = crawl(catalogue, tmp_path, archive)
    assert code == 0 and lots == reference[2] and b"FORGED" not in lots
    asked = sorted(served.url for served in log if served.kind != "robots")  # robots.txt: before any request
    assert asked == sorted(urlsplit(entry["url"])._replace(scheme="", netloc="").geturl()
                           for entry in (forged, cut))
    repaired = ResponseArchive(archive)
    assert repaired.load(month, forged_key) is not None and repaired.load(month, cut_key) is not None


def test_the_plan_and_the_stage_print_settled_months_and_the_estimate_first(tmp_path, demo_params, reference,
                                                                              capsys):
    params = load_params(path=REPO_ROOT / "params.yaml")
    params["demo"] = demo_params
    params["scrape"] = {**params["scrape"], "start": START, "end": LATER, "categories": CATEGORIES,
                        "min_items": 1}  # the shipped relative scrape.archive: beside this params.yaml
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params), encoding="utf-8")
    target = plan.crawl_plan(params["scrape"], params["demo"], tmp_path).archive
    shutil.copytree(reference[0], target)
    per_month = sum(settled_months(target).values()) / 24

    assert plan.main(["--params", str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].endswith(f"24 months: {START}..{END}")
    assert lines[2].endswith("6 months: 2019-01..2019-06")
    assert f"~{round(6 * per_month) + 2:,} " in lines[3] and "seconds" in lines[4]

    assert scrape_stage.main(["--params", str(path), "--raw-dir", str(tmp_path / "raw"),
                              "--crawls-dir", str(tmp_path / "crawls")]) == 0
    assert capsys.readouterr().out.splitlines()[:5] == lines
    assert target.is_relative_to(tmp_path) and len(settled_months(target)) == 29
