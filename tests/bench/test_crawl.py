"""bench/crawl.py against a tiny demo catalogue: the per-lot table, the parse rate and the goal lines."""

from __future__ import annotations

import yaml

from bench import crawl
from common import load_params
from tests.bench.conftest import table_rows

TINY_DEMO = {"months": 2, "n_artists": 4, "works_min": 5, "works_max": 12, "sales_per_month": 2,
             "decoy_sales_per_month": 1, "lots_per_decoy_sale": 5, "n_prolific": 2, "prolific_min_works": 8,
             "image_min_side": 200, "image_max_side": 400}


def tiny_params(tmp_path):
    params = load_params()
    params["demo"] = {**params["demo"], **TINY_DEMO}
    params["scrape"] = {**params["scrape"], "site": "demo", "start": "2019-01", "end": "2019-02", "image_width": 160}
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params), encoding="utf-8")
    return path


def test_traffic_between_subtracts_snapshots():
    before = {"requests": {"calendar": 2, "image": 1}, "bytes_sent": 100}
    after = {"requests": {"calendar": 2, "image": 6, "robots": 1}, "bytes_sent": 600}
    traffic = crawl.traffic_between(before, after, items=5, seconds=1.0)
    assert traffic.requests == {"image": 5, "robots": 1} and traffic.total_requests == 6
    assert traffic.bytes_sent == 500


def test_crawl_benchmark_on_a_tiny_demo_site(tmp_path, record_file):
    text = crawl.main(["--params", str(tiny_params(tmp_path)), "--images", "4", "--rounds", "1",
                       "--record-to", str(record_file)])
    record_row = table_rows(text, "record crawl (scrape stage, CHRISTIES_IMAGES=none)")[0]
    lots, requests = int(record_row[1].replace(",", "")), int(record_row[2].replace(",", ""))
    assert lots > 0 and 0 < requests < lots  # lists of lots, not a request per lot
    assert "lotsearch" in record_row[4] and "calendar 2" in record_row[4]  # one calendar call per month
    image_row = table_rows(text, "sample images (fetch_images stage, w=160)")[0]
    assert image_row[1] == "4" and "image 4" in image_row[4]
    assert "lots/s** over" in text
    assert "record crawl ≤ 1.02 requests per lot: **met**" in text
    assert "## Crawl cost per lot" in record_file.read_text(encoding="utf-8")
