"""Fault injection: deterministic per URL, at the configured shares, only on the first attempts."""

from __future__ import annotations

import io
from collections import Counter

import pytest
import requests
from PIL import Image, UnidentifiedImageError

from scraper.demo import DemoSite, FaultConfig
from scraper.demo import faults as fault_kinds

CALENDAR = "/api/discoverywebsite/auctioncalendar/auctionresults"


def calendar_paths(count: int) -> list[str]:
    """Distinct valid calendar URLs (path?query), enough to measure shares."""
    return [f"{CALENDAR}?language=en&month={1 + i % 12}&year={1998 + i // 12}" for i in range(count)]


def test_planned_faults_follow_the_rates_and_the_seed():
    config = FaultConfig(rate_429=0.1, rate_503=0.1, rate_slow=0.05, rate_reset=0.05, rate_truncated=0.1,
                         rate_corrupt_image=0.2, seed=3)
    urls = [f"/x?i={i}" for i in range(5000)]
    json_faults = Counter(config.planned_fault(u, "lotsearch") for u in urls)
    for fault, rate in ((fault_kinds.TOO_MANY, 0.1), (fault_kinds.UNAVAILABLE, 0.1), (fault_kinds.SLOW, 0.05),
                        (fault_kinds.RESET, 0.05), (fault_kinds.TRUNCATED_JSON, 0.1)):
        assert abs(json_faults[fault] / len(urls) - rate) < 0.02, fault
    assert fault_kinds.CORRUPT_IMAGE not in json_faults
    image_faults = Counter(config.planned_fault(u, "image") for u in urls)
    assert abs(image_faults[fault_kinds.CORRUPT_IMAGE] / len(urls) - 0.2) < 0.02
    assert fault_kinds.TRUNCATED_JSON not in image_faults
    assert [config.planned_fault(u, "lotsearch") for u in urls] == [
        FaultConfig(**{**config.__dict__}).planned_fault(u, "lotsearch") for u in urls]
    reseeded = FaultConfig(**{**config.__dict__, "seed": 4})
    assert [config.planned_fault(u, "lotsearch") for u in urls[:200]] != [
        reseeded.planned_fault(u, "lotsearch") for u in urls[:200]]
    assert all(config.planned_fault(u, "robots") is None for u in urls[:200])


def test_a_faulty_url_fails_only_on_its_first_attempts():
    once = FaultConfig(rate_503=1.0, first_attempts=1)
    assert [once.fault_for("/a", "calendar", n) for n in (1, 2, 3)] == [fault_kinds.UNAVAILABLE, None, None]
    twice = FaultConfig(rate_503=1.0, first_attempts=2)
    assert [twice.fault_for("/a", "calendar", n) for n in (1, 2, 3)] == [fault_kinds.UNAVAILABLE] * 2 + [None]
    only_images = FaultConfig(rate_503=1.0, kinds=frozenset({"image"}))
    assert only_images.fault_for("/a", "calendar", 1) is None and only_images.fault_for("/a", "image", 1)
    assert not FaultConfig().active and FaultConfig(all_errors=True).active


@pytest.mark.parametrize("bad", [{"rate_429": 1.5}, {"rate_429": 0.6, "rate_503": 0.6}, {"first_attempts": -1}])
def test_bad_fault_configs_are_refused(bad):
    with pytest.raises(ValueError, match="FaultConfig"):
        FaultConfig(**bad)


def fetch_with_retries(url: str, attempts: int = 3, decode=None) -> tuple[object, int]:
    """A minimal retrying client: (decoded body, attempts used)."""
    for attempt in range(1, attempts + 1):
        try:
            response = requests.get(url, timeout=5)
            if response.status_code in (429, 503):
                continue
            return (decode or (lambda r: r.json()))(response), attempt
        except (requests.RequestException, ValueError, OSError):
            continue
    raise AssertionError(f"{url} still failing after {attempts} attempts")


def test_a_retrying_client_recovers_and_the_counts_match_the_plan(catalogue):
    config = FaultConfig(rate_429=0.1, rate_503=0.1, rate_reset=0.05, rate_truncated=0.1, rate_corrupt_image=0.15,
                         retry_after_s=0, seed=11)
    json_paths = calendar_paths(120)
    image_paths = [lot.image_path + "?mode=max&w=64" for lot in list(catalogue.lots.values())[:80]
                   if lot.truth.image_kind == "jpeg_rgb"]

    def decode_image(response):
        image = Image.open(io.BytesIO(response.content))
        image.load()
        return image.size

    with DemoSite(catalogue, faults=config) as site:
        used = [fetch_with_retries(site.base_url + p)[1] for p in json_paths]
        used += [fetch_with_retries(site.base_url + p, decode=decode_image)[1] for p in image_paths]
        stats = site.stats()
    planned = Counter(config.planned_fault(p, "calendar") for p in json_paths)
    planned += Counter(config.planned_fault(p, "image") for p in image_paths)
    del planned[None]
    assert stats["faults"] == dict(planned)
    assert sum(n == 2 for n in used) == sum(planned.values()) and max(used) == 2
    faulted_share = sum(planned.values()) / len(used)
    assert 0.2 < faulted_share < 0.5


def test_each_fault_looks_like_it_should(catalogue):
    lot = next(lot for lot in catalogue.lots.values() if lot.truth.image_kind == "jpeg_rgb")
    with DemoSite(catalogue, faults=FaultConfig(rate_429=1.0, retry_after_s=7)) as site:
        first = requests.get(site.base_url + calendar_paths(1)[0], timeout=5)
        assert first.status_code == 429 and first.headers["Retry-After"] == "7"
        assert requests.get(site.base_url + calendar_paths(1)[0], timeout=5).status_code == 200
        assert requests.get(site.base_url + "/robots.txt", timeout=5).status_code == 200
    with DemoSite(catalogue, faults=FaultConfig(rate_reset=1.0)) as site:
        with pytest.raises(requests.ConnectionError):
            requests.get(site.base_url + calendar_paths(1)[0], timeout=5)
        assert requests.get(site.base_url + calendar_paths(1)[0], timeout=5).status_code == 200
    with DemoSite(catalogue, faults=FaultConfig(rate_slow=1.0, slow_s=1.0)) as site:
        with pytest.raises(requests.Timeout):
            requests.get(site.base_url + calendar_paths(1)[0], timeout=0.2)
        assert requests.get(site.base_url + calendar_paths(1)[0], timeout=5).status_code == 200
    corrupt = FaultConfig(rate_corrupt_image=1.0, kinds=frozenset({"image"}))
    with DemoSite(catalogue, faults=corrupt) as site:
        url = f"{site.base_url}{lot.image_path}?mode=max&w=64"
        bad = requests.get(url, timeout=5)
        assert bad.status_code == 200 and bad.headers["Content-Type"] == "image/jpeg"
        with pytest.raises(UnidentifiedImageError):
            Image.open(io.BytesIO(bad.content))
        assert Image.open(io.BytesIO(requests.get(url, timeout=5).content)).size[0] == 64
        assert requests.get(site.base_url + calendar_paths(1)[0], timeout=5).json()["events"] == []


def test_truncated_json_comes_in_both_forms(catalogue):
    config = FaultConfig(rate_truncated=1.0)
    paths = calendar_paths(40)
    long_form = next(p for p in paths if config.truncation_keeps_length(p))
    short_form = next(p for p in paths if not config.truncation_keeps_length(p))
    with DemoSite(catalogue, faults=config) as site:
        with pytest.raises(requests.RequestException):
            requests.get(site.base_url + long_form, timeout=5).json()       # body shorter than Content-Length
        short = requests.get(site.base_url + short_form, timeout=5)
        assert short.status_code == 200 and len(short.content) == int(short.headers["Content-Length"])
        with pytest.raises(ValueError):
            short.json()
        for path in (long_form, short_form):
            assert "events" in requests.get(site.base_url + path, timeout=5).json()
        assert site.stats()["faults"] == {fault_kinds.TRUNCATED_JSON: 2}


def test_all_errors_mode_answers_only_503_except_robots(catalogue):
    sale = next(s for s in catalogue.sales if s.is_online)
    lot = next(lot for lot in catalogue.lots.values() if lot.image_path)
    with DemoSite(catalogue, faults=FaultConfig(all_errors=True)) as site:
        urls = [site.base_url + calendar_paths(1)[0],
                f"{site.base_url}/api/discoverywebsite/auctionpages/lotsearch?saleid={sale.event_id}&page=1",
                f"{site.base_url}/en/results?month=1&year=2019",
                f"{site.base_url}{lot.image_path}?mode=max&w=64",
                f"{site.online_base_url}/sso?SaleID={sale.event_id}&SaleNumber={sale.sale_number}",
                f"{site.online_base_url}/sale/searchLots?saleid={sale.online_sale_id}&loadall=true"]
        for _ in range(3):
            assert [requests.get(u, timeout=5, allow_redirects=False).status_code for u in urls] == [503] * len(urls)
        assert requests.get(f"{site.base_url}/robots.txt", timeout=5).status_code == 200
        assert requests.get(f"{site.online_base_url}/robots.txt", timeout=5).status_code == 200
        assert site.stats()["faults"] == {fault_kinds.ALL_ERRORS: 3 * len(urls)}
