"""The review app the way a curator uses it, in the real headless Chromium: decide with the mouse and the
keyboard, write a note, edit the same file meanwhile as a spreadsheet would, settle a conflict, then run the
curation stages and find the dropped works gone from data/final/; a spreadsheet's stale save over the app's
decisions shown and undone in one click; the token kept from other local ports, and a second tab that works."""

from __future__ import annotations

import csv
import io
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pandas as pd
import pytest

from curation import apply_review, images, manifest, review_app
from curation.review_file import ReviewFile
from tests.reliability.conftest import write_sampled_works
from tests.reliability.test_hostile_text import chrome_driver

HOSTILE = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=1</script>'
WORKS = [("www-7-1", "Ann A", "Red"), ("www-7-2", "Ann A", HOSTILE), ("www-7-3", "Ann A", "Green"),
         ("www-7-4", "Ann A", "Blue"), ("www-7-5", "Bob B", "Grey")]
CURATOR = Path("data/review/manifest.csv")


@pytest.fixture
def sampled_repo(curation_repo) -> Path:
    """Five sampled works with images, the manifest stage run: what `make review` opens."""
    works = [(key, artist.lower().replace(" ", "-"), artist, title) for key, artist, title in WORKS]
    write_sampled_works(curation_repo, works, shard="www-7", image_seed=300)
    manifest.main()
    return curation_repo


def decisions() -> dict[str, tuple[str, str]]:
    return {row["lot_key"]: (row["decision"], row["note"]) for row in ReviewFile.read(CURATOR).rows()}


def page_ready(driver) -> bool:
    """Ann A's four works shown and the page's start-up done (its last step marks the body `data-started`): the
    tests then never race the start-up's own check of lost decisions."""
    from selenium.webdriver.common.by import By  # noqa: PLC0415

    return (len(driver.find_elements(By.CSS_SELECTOR, "article.card")) == 4
            and driver.find_element(By.TAG_NAME, "body").get_attribute("data-started") == "true")


@pytest.fixture
def in_browser(sampled_repo, tmp_path_factory):
    """The app on `sampled_repo` and headless Chromium on the URL it printed, showing Ann A's four works:
    (server, driver, wait)."""
    from selenium.common.exceptions import StaleElementReferenceException  # noqa: PLC0415
    from selenium.webdriver.support.ui import WebDriverWait  # noqa: PLC0415

    server = review_app.serve(sampled_repo, "127.0.0.1", 0)
    try:
        driver = chrome_driver(tmp_path_factory.mktemp("chrome-profile"))
        try:
            wait = WebDriverWait(driver, 20, ignored_exceptions=[StaleElementReferenceException])  # re-rendered cards
            driver.get(f"{server.app_url}?token={server.session.token}")
            wait.until(page_ready)
            yield server, driver, wait
        finally:
            driver.quit()
    finally:
        server.shutdown()
        server.server_close()


def kept_in_data_final() -> list[str]:
    """Run `apply_review` and `images`; the lot_keys in data/final/."""
    apply_review.main()
    images.main()
    return sorted(pd.read_csv("data/final/labels.csv", dtype=str)["lot_key"])


@pytest.mark.browser
def test_a_curators_session_reaches_data_final_and_keeps_a_spreadsheet_edit(in_browser):
    from selenium.webdriver.common.by import By  # noqa: PLC0415
    from selenium.webdriver.support.ui import Select  # noqa: PLC0415

    _, driver, wait = in_browser

    def card(key: str):
        return driver.find_element(By.CSS_SELECTOR, f'article[data-lot-key="{key}"]')

    def saved(key: str, expected: tuple[str, str]) -> None:
        wait.until(lambda _: decisions()[key] == expected)

    assert "token" not in driver.current_url  # taken off the address bar
    assert "k keep" in driver.find_element(By.CSS_SELECTOR, ".keys").text
    assert driver.execute_script("return window.__pwned") is None
    assert HOSTILE in card("www-7-2").text  # the hostile title shown as text

    # the mouse: Drop on the first work
    card("www-7-1").find_element(By.XPATH, ".//button[normalize-space()='Drop']").click()
    saved("www-7-1", ("drop", ""))
    # the keyboard: two steps right from the first work, d, then n and a note
    card("www-7-1").find_element(By.CSS_SELECTOR, ".row").click()  # a click on the card focuses it
    driver.switch_to.active_element.send_keys("\ue014\ue014")  # ArrowRight twice
    assert driver.switch_to.active_element.get_attribute("data-lot-key") == "www-7-3"
    driver.switch_to.active_element.send_keys("d")
    saved("www-7-3", ("drop", ""))
    driver.switch_to.active_element.send_keys("n")
    driver.switch_to.active_element.send_keys("a study, not a painting\ue007")  # Enter saves
    saved("www-7-3", ("drop", "a study, not a painting"))

    # meanwhile a spreadsheet saves the file its own way (BOM, CRLF, `;`, fewer columns): a note on www-7-4,
    # and www-7-2 dropped while the page still shows it kept
    rows = ReviewFile.read(CURATOR).rows()
    header = ["lot_key", "decision", "note", "artist", "title", "in_sample", "crawl"]
    edited = {"www-7-2": {"decision": "drop"}, "www-7-4": {"note": "framed"}}
    buffer = io.StringIO()
    csv.writer(buffer, delimiter=";", lineterminator="\r\n").writerows(
        [header, *[[{**r, **edited.get(r["lot_key"], {})}[name] for name in header] for r in rows]])
    CURATOR.write_bytes(("\ufeff" + buffer.getvalue()).encode("utf-8"))

    card("www-7-4").find_element(By.XPATH, ".//button[normalize-space()='Drop']").click()
    saved("www-7-4", ("drop", "framed"))  # the spreadsheet's note survives the app's write
    keep = card("www-7-2").find_element(By.XPATH, ".//button[normalize-space()='Keep']")
    assert keep.get_attribute("aria-pressed") == "true"  # the page still shows keep
    keep.click()  # the curator means keep; the file says drop: a conflict, nothing written
    conflict = card("www-7-2").find_element(By.CSS_SELECTOR, ".conflict")
    wait.until(lambda _: conflict.is_displayed())
    assert "decision drop" in conflict.text and decisions()["www-7-2"] == ("drop", "")
    conflict.find_element(By.XPATH, ".//button[normalize-space()='Use mine']").click()
    saved("www-7-2", ("keep", ""))
    text = CURATOR.read_bytes().decode("utf-8")
    assert text.startswith("\ufefflot_key;decision;note;") and "\r\n" in text and "reviewed_at" in text

    # back from the spreadsheet (the tab visible again), the page shows the file as it is now
    CURATOR.write_bytes(text.replace("a study, not a painting", "edited again").encode("utf-8"))
    driver.execute_script("document.dispatchEvent(new Event('visibilitychange'))")
    wait.until(lambda _: card("www-7-3").find_element(By.CSS_SELECTOR, ".note").get_attribute("value")
               == "edited again")
    # that spreadsheet's save dropped reviewed_at, so nothing tells its edit from a stale copy's: the page shows
    # the note the app recorded against the file's, and the curator keeps the file's
    lost = driver.find_element(By.ID, "lost")
    wait.until(lambda _: lost.is_displayed())
    item = lost.find_element(By.CSS_SELECTOR, 'li[data-lot-key="www-7-3"]')
    assert "note: recorded a study, not a painting, the file has edited again" in item.text
    item.find_element(By.XPATH, ".//button[normalize-space()=\"Keep the file's\"]").click()
    wait.until(lambda _: not lost.is_displayed())
    saved("www-7-3", ("drop", "edited again"))

    # the larger view, then the other artist's page
    card("www-7-1").find_element(By.CSS_SELECTOR, ".row").click()
    driver.switch_to.active_element.send_keys("\ue007")  # Enter
    wait.until(lambda d: d.find_element(By.ID, "viewer").is_displayed())
    facts = driver.find_element(By.ID, "viewer-facts").text  # what the file has now (the spreadsheet kept
    assert "Ann A" in facts and "www-7-1" in facts and "Row in the CSV\n2" in facts  # fewer columns)
    driver.switch_to.active_element.send_keys("\ue00c")  # Escape closes it
    wait.until(lambda d: not d.find_element(By.ID, "viewer").is_displayed())
    if os.environ.get("REVIEW_APP_SCREENSHOT"):  # docs/img/review_app.png is made this way
        driver.set_window_size(1100, 700)
        driver.save_screenshot(os.environ["REVIEW_APP_SCREENSHOT"])
    Select(driver.find_element(By.ID, "artist")).select_by_value("Bob B")
    wait.until(lambda d: d.execute_script(
        "return [...document.querySelectorAll('article.card')].map(c => c.dataset.lotKey)") == ["www-7-5"])
    assert "3 dropped" in driver.find_element(By.ID, "artist").text
    assert kept_in_data_final() == ["www-7-2", "www-7-5"]  # the three dropped in the app are gone


@pytest.mark.browser
def test_a_stale_spreadsheet_save_is_shown_and_restored_in_one_click_then_reaches_data_final(in_browser):
    from selenium.webdriver.common.by import By  # noqa: PLC0415

    _, driver, wait = in_browser

    def card(key: str):
        return driver.find_element(By.CSS_SELECTOR, f'article[data-lot-key="{key}"]')

    assert not driver.find_element(By.ID, "lost").is_displayed()
    stale = CURATOR.read_bytes()  # a spreadsheet opens the file before the curator starts in the app
    card("www-7-1").find_element(By.XPATH, ".//button[normalize-space()='Drop']").click()
    wait.until(lambda _: decisions()["www-7-1"][0] == "drop")
    card("www-7-3").find_element(By.XPATH, ".//button[normalize-space()='Drop']").click()
    wait.until(lambda _: decisions()["www-7-3"][0] == "drop")
    card("www-7-4").find_element(By.CSS_SELECTOR, ".note").send_keys("framed\ue007")
    wait.until(lambda _: decisions()["www-7-4"] == ("keep", "framed"))

    # ... and the spreadsheet saves its copy, the way it writes CSV, over the three decisions
    CURATOR.write_bytes(("\ufeff" + stale.decode("utf-8-sig").replace("\n", "\r\n")).encode("utf-8"))
    assert decisions()["www-7-1"] == ("keep", "") and decisions()["www-7-4"] == ("keep", "")

    driver.execute_script("document.dispatchEvent(new Event('visibilitychange'))")  # back to the app's tab
    lost = driver.find_element(By.ID, "lost")
    wait.until(lambda _: lost.is_displayed())
    items = {li.get_attribute("data-lot-key"): li.text for li in lost.find_elements(By.TAG_NAME, "li")}
    assert sorted(items) == ["www-7-1", "www-7-3", "www-7-4"]
    assert "row 2 · www-7-1 · Ann A: Red — decision: recorded drop, the file has keep" in items["www-7-1"]
    assert "note: recorded framed, the file has (empty)" in items["www-7-4"]
    restore = driver.find_element(By.ID, "restore-all")
    assert restore.text == "Restore all 3"
    restore.click()
    wait.until(lambda _: not lost.is_displayed())
    assert decisions() == {"www-7-1": ("drop", ""), "www-7-2": ("keep", ""), "www-7-3": ("drop", ""),
                           "www-7-4": ("keep", "framed"), "www-7-5": ("keep", "")}
    wait.until(lambda _: "drop" in card("www-7-3").get_attribute("class"))
    assert CURATOR.read_bytes().startswith(b"\xef\xbb\xbf") and b"\r\n" in CURATOR.read_bytes()
    assert kept_in_data_final() == ["www-7-2", "www-7-4", "www-7-5"]


class _HeaderRecorder(BaseHTTPRequestHandler):
    """Another local service (the demo site, say): records the Cookie header of every request."""

    seen: list[str] = []

    def do_GET(self) -> None:  # noqa: N802
        self.seen.append(self.headers.get("Cookie", ""))
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *_) -> None:
        pass


@pytest.mark.browser
def test_the_token_stays_with_the_app_and_a_second_tab_can_decide(in_browser):
    from selenium.webdriver.common.by import By  # noqa: PLC0415

    server, driver, wait = in_browser
    other = ThreadingHTTPServer(("127.0.0.1", 0), _HeaderRecorder)
    threading.Thread(target=other.serve_forever, daemon=True).start()
    try:
        for path in ("/", "/api/artists", "/thumb?key=www-7-1"):  # another port of the same host (+ favicons)
            driver.get(f"http://127.0.0.1:{other.server_address[1]}{path}")
    finally:
        other.shutdown()
        other.server_close()
    assert len(_HeaderRecorder.seen) >= 3 and not any(server.session.token in c for c in _HeaderRecorder.seen)

    driver.get(f"{server.origin}/")  # the bare address says how to open the app
    assert "Open the address it printed" in driver.find_element(By.TAG_NAME, "body").text
    driver.get(server.app_url)  # the app's address without the token, as a second tab or a bookmark
    wait.until(page_ready)
    driver.find_element(By.CSS_SELECTOR, 'article[data-lot-key="www-7-2"]').find_element(
        By.XPATH, ".//button[normalize-space()='Drop']").click()
    wait.until(lambda _: decisions()["www-7-2"][0] == "drop")
    wait.until(lambda d: "Saved: www-7-2" in d.find_element(By.ID, "status").text)  # the answer reached the page


@pytest.mark.browser
def test_a_decision_made_while_the_page_starts_keeps_its_saved_message(sampled_repo, tmp_path_factory):
    """The start-up's last request (the lost decisions) is held until the curator has clicked Drop and the page
    says Saved; the start-up then ends without replacing that message with Ready."""
    from selenium.webdriver.common.by import By  # noqa: PLC0415
    from selenium.webdriver.support.ui import WebDriverWait  # noqa: PLC0415

    server = review_app.serve(sampled_repo, "127.0.0.1", 0)
    release = threading.Event()
    real_lost = server.session.lost
    server.session.lost = lambda: (release.wait(30), real_lost())[1]  # the first answer waits for the click
    try:
        driver = chrome_driver(tmp_path_factory.mktemp("chrome-profile"))
        try:
            wait = WebDriverWait(driver, 20)
            driver.get(f"{server.app_url}?token={server.session.token}")
            wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "article.card")) == 4)
            driver.find_element(By.CSS_SELECTOR, 'article[data-lot-key="www-7-1"]').find_element(
                By.XPATH, ".//button[normalize-space()='Drop']").click()
            wait.until(lambda d: "Saved: www-7-1" in d.find_element(By.ID, "status").text)
            release.set()
            wait.until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-started") == "true")
            assert "Saved: www-7-1" in driver.find_element(By.ID, "status").text
        finally:
            release.set()
            driver.quit()
    finally:
        server.shutdown()
        server.server_close()
