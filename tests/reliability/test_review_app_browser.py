"""The review app the way a curator uses it, in the real headless Chromium: decide with the mouse and the
keyboard, write a note, edit the same file meanwhile as a spreadsheet would, settle a conflict, then run the
curation stages and find the dropped works gone from data/final/."""

from __future__ import annotations

import csv
import io
import os
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


@pytest.mark.browser
def test_a_curators_session_reaches_data_final_and_keeps_a_spreadsheet_edit(sampled_repo, tmp_path_factory):
    from selenium.webdriver.common.by import By  # noqa: PLC0415
    from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: PLC0415

    server = review_app.serve(sampled_repo, "127.0.0.1", 0)
    driver = chrome_driver(tmp_path_factory.mktemp("chrome-profile"))
    wait = WebDriverWait(driver, 20)

    def card(key: str):
        return driver.find_element(By.CSS_SELECTOR, f'article[data-lot-key="{key}"]')

    def saved(key: str, expected: tuple[str, str]) -> None:
        wait.until(lambda _: decisions()[key] == expected)

    try:
        driver.get(f"{server.app_url}?token={server.session.token}")
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "article.card")) == 4)  # Ann A's page
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
    finally:
        driver.quit()
        server.shutdown()
        server.server_close()

    apply_review.main()
    images.main()
    final = pd.read_csv("data/final/labels.csv", dtype=str)
    assert sorted(final["lot_key"]) == ["www-7-2", "www-7-5"]  # the three dropped in the app are gone
