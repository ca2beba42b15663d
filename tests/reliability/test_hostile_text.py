"""Hostile scraped text: script tags, quotes, newlines, tabs, NUL, bidi controls, 100 kB strings and spreadsheet
formulas go through the real `manifest` and `apply_review` stages; the curator's CSV must neutralise formulas,
the contact sheet must show the text as text in a real browser (headless Chromium) and run nothing, and
every file path built from scraped values must stay inside its folder."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from common import safe_join
from curation import apply_review, images, manifest
from curation.review_csv import FORMULA_TRIGGERS, read_review_csv
from scraper.pipelines import image_relpath
from scraper.spiders.christies_images import read_image_list
from tests.curation.conftest import jpeg_bytes, pattern_image

SCRIPT_TITLE = "<script>window.__pwned = 1; document.title = 'PWNED'; alert('xss')</script>"
ATTRIBUTE_BREAKOUT = '"><img src=x onerror="window.__pwned=2;document.body.appendChild(document.createElement(\'pwned\'))">'
HOSTILE_TITLES = [
    SCRIPT_TITLE,
    ATTRIBUTE_BREAKOUT,
    "It's a \"quoted\" title\nwith a newline\tand a tab",
    "NUL\x00inside and a right-to-left \u202eoverride\u200f mark",
    "=HYPERLINK(\"http://127.0.0.1/x\",\"click\")",
    "+1+1",
    "-2+3",
    "@SUM(A1:A2)",
    "\t=1+1",
    "long " + "x" * 100_000,
]
HOSTILE_ARTIST = "<b id=\"pwned-artist\">Bold</b> & Co"
SAMPLE_COLUMNS = ["lot_key", "artist_key", "artist", "title", "sale_title", "sale_date", "medium", "kind",
                  "dimensions", "price_realised", "currency", "image_url", "lot_url"]


def hostile_sample(root: Path) -> pd.DataFrame:
    """sample.csv, images.jsonl and images for one lot per hostile title (the sample stage's output shape)."""
    rows, fetch = [], []
    for n, title in enumerate(HOSTILE_TITLES):
        key = f"www-9-{n}"
        path = root / "data/raw/images/www-9" / f"{key}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(jpeg_bytes(pattern_image(90, 70, seed=100 + n)))
        rows.append({"lot_key": key, "artist_key": "bold-co", "artist": HOSTILE_ARTIST, "title": title,
                     "sale_title": "=cmd|' /C calc'!A0", "sale_date": "2019-05-16", "medium": "oil on canvas",
                     "kind": "painting", "dimensions": "-", "price_realised": "1000.0", "currency": "USD",
                     "image_url": f"https://www.christies.com/img/{key}.jpg",
                     "lot_url": "javascript:alert(1)" if n == 0 else f"https://www.christies.com/en/lot/lot-{n}"})
        fetch.append({"lot_key": key, "image_url": "u", "image_path": f"www-9/{key}.jpg", "image_sha1": "",
                      "status": "downloaded", "reason": None})
    sample = pd.DataFrame(rows, columns=SAMPLE_COLUMNS)
    (root / "data/interim").mkdir(parents=True, exist_ok=True)
    sample.to_csv(root / "data/interim/sample.csv", index=False, lineterminator="\n")
    (root / "data/raw/images.jsonl").write_text("".join(json.dumps(r) + "\n" for r in fetch), encoding="utf-8")
    sample[["lot_key"]].to_parquet(root / "data/interim/lots.parquet")
    return sample


@pytest.fixture
def hostile_review(curation_repo) -> Path:
    """The manifest and apply_review stages run on the hostile sample; returns the repository root."""
    hostile_sample(curation_repo)
    manifest.main()
    apply_review.main()
    return curation_repo


def raw_cells(path: Path) -> list[list[str]]:
    with open(path, encoding="utf-8-sig", newline="") as fh:
        return list(csv.reader(fh))


def test_review_csvs_neutralise_every_formula_and_read_back_losslessly(hostile_review):
    for name in ("data/review/manifest.csv", "data/interim/manifest_auto.csv"):
        cells = raw_cells(hostile_review / name)
        formulas = [c for row in cells for c in row if c.startswith(FORMULA_TRIGGERS)]
        assert not formulas, f"{name}: cells a spreadsheet would run: {formulas[:3]}"
        titles = [row[cells[0].index("title")] for row in cells[1:]]
        assert titles[4] == "'" + HOSTILE_TITLES[4] and titles[7] == "'@SUM(A1:A2)"
    back = read_review_csv(hostile_review / "data/review/manifest.csv", required_columns=("lot_key", "title"))
    expected = [t.replace("\x00", "\ufffd") for t in HOSTILE_TITLES]  # NUL cannot live in a CSV cell
    assert back["title"].tolist() == expected


def chrome_driver(profile: Path, extra_flags: tuple[str, ...] = ()):
    webdriver = pytest.importorskip("selenium.webdriver")
    if not (Path("/usr/bin/chromedriver").exists() and shutil.which("chromium")):
        pytest.skip("needs Debian's chromium and chromium-driver (apt-get install -y chromium chromium-driver)")
    from selenium.webdriver.chrome.service import Service  # noqa: PLC0415

    options = webdriver.ChromeOptions()
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-first-run", f"--user-data-dir={profile}", *extra_flags):
        options.add_argument(flag)
    options.binary_location = shutil.which("chromium")
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)


def without_csp(page: Path, target: Path) -> Path:
    """The contact sheet minus its Content-Security-Policy: escaping alone must keep scripts from running."""
    text = page.read_text(encoding="utf-8")
    start = text.index('<meta http-equiv="Content-Security-Policy"')
    target.write_text(text[:start] + text[text.index(">", start) + 1:], encoding="utf-8")
    return target


@pytest.mark.browser
def test_contact_sheet_shows_hostile_text_and_runs_nothing_in_a_real_browser(hostile_review, tmp_path_factory):
    from selenium.common.exceptions import NoAlertPresentException  # noqa: PLC0415

    index = hostile_review / "data/review/index.html"
    artist_pages = sorted((hostile_review / "data/review/sheet").glob("artist-*.html"))
    pages = [index, *artist_pages]
    pages += [without_csp(page, page.with_name(f"no-csp-{page.name}")) for page in list(pages)]
    driver = chrome_driver(tmp_path_factory.mktemp("chrome-profile"))
    texts = {}
    try:
        for current in pages:
            driver.get(current.as_uri())
            with pytest.raises(NoAlertPresentException):
                driver.switch_to.alert.text  # noqa: B018 - reading it is the check
            assert driver.execute_script("return window.__pwned") is None, current.name
            assert driver.title.startswith("Review contact sheet"), current.name
            injected = driver.execute_script(
                "return document.querySelectorAll('script, pwned, #pwned-artist, img[src=\"x\"], [onerror]').length")
            assert injected == 0, current.name
            texts[current] = driver.execute_script("return document.body.innerText")
            links = driver.execute_script("return [...document.links].map(a => a.protocol)")
            assert set(links) <= {"https:", "file:"}  # javascript: lot URLs are not linked
    finally:
        driver.quit()
    assert HOSTILE_ARTIST in texts[index]
    shown = "".join(texts[page] for page in artist_pages)
    assert "<script>window.__pwned = 1;" in shown and HOSTILE_ARTIST in shown and '"><img src=x' in shown


HOSTILE_KEYS = ["../../x", "/etc/passwd", "..", "a/../../b", "www-1-" + "9" * 5000, "www-1-..\\..\\win",
                "www-..-x", "", "\x00nul", "C:\\temp\\x"]


@pytest.mark.parametrize("key", HOSTILE_KEYS, ids=range(len(HOSTILE_KEYS)))
def test_image_paths_from_scraped_ids_stay_inside_the_image_folder(tmp_path, key):
    relpath = image_relpath(key, "https://x/img/a.jpg")
    target = safe_join(tmp_path, relpath)  # raises if it escapes
    assert tmp_path.resolve() in target.parents and all(len(part) <= 255 for part in Path(relpath).parts)


def test_long_scraped_ids_keep_distinct_file_names():
    a, b = image_relpath("www-1-" + "9" * 300 + "a", None), image_relpath("www-1-" + "9" * 300 + "b", None)
    assert a != b


@pytest.mark.parametrize("part", ["../../x", "/abs/x", "a/../../x", "..", "sub/../../x"])
def test_safe_join_refuses_escapes(tmp_path, part):
    with pytest.raises(ValueError, match="escapes"):
        safe_join(tmp_path / "root", part)


def test_safe_join_refuses_a_symlink_out_of_the_folder(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    (root / "link").symlink_to(tmp_path)
    with pytest.raises(ValueError, match="escapes"):
        safe_join(root, "link", "outside.jpg")


def test_curation_never_reads_outside_the_image_folder(curation_repo):
    secret = curation_repo / "secret.jpg"
    secret.write_bytes(jpeg_bytes(pattern_image(60, 60)))
    converted = images.convert_file("../../secret.jpg", curation_repo / "data/raw/images", 16,
                                    "shortest-side-then-centre-crop", draft=False)
    assert converted.pixels is None and converted.reason == "unsafe path"
    location = manifest._image_location("k", {"k": {"image_path": "../../secret.jpg"}},
                                        curation_repo / "data/raw/images")
    assert location[1] is None and "unsafe" in location[2]


def test_image_list_refuses_unsafe_lot_keys_naming_file_line_and_field(tmp_path):
    listing = tmp_path / "sample.csv"
    listing.write_text("lot_key,image_url\nwww-1-1,https://x/a.jpg\n../../etc,https://x/b.jpg\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"sample\.csv, line 3, field lot_key"):
        read_image_list(listing)
