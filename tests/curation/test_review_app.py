"""curation/review_app.py over real HTTP on 127.0.0.1: what it serves, what it writes, what it refuses; then a
curator's session in the real headless browser."""

from __future__ import annotations

import http.client
import io
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pandas as pd
import pytest
import requests
from PIL import Image

from curation import review_app
from curation.review_csv import read_curator_manifest, write_review_csv
from curation.review_file import ReviewFile

HOSTILE = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=1</script>'
KEYS = ["www-1-1", "www-1-2", "www-1-3", "www-2-1"]


def jpeg(colour: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (60, 40), colour).save(buffer, "JPEG")
    return buffer.getvalue()


@pytest.fixture
def project(tmp_path) -> Path:
    """A project folder as the manifest stage leaves it: the curator's file, thumbnails, images."""
    frame = pd.DataFrame({
        "lot_key": KEYS, "artist": ["Ann A", "Ann A", "Ann A", "Bob B"],
        "title": ["Red", HOSTILE, "Green", "Blue"], "medium": "oil on canvas", "dimensions": "10 x 20 cm",
        "kind": "painting", "sale_title": "Sale", "sale_date": "2019-05-16",
        "lot_url": ["https://www.christies.com/en/lot/lot-1", "javascript:alert(1)", "", "https://x/2"],
        "image_path": [f"www-{k.split('-')[1]}/{k}.jpg" for k in KEYS], "thumb_path": [f"thumbs/{k}.jpg" for k in KEYS],
        "flags": ["", "likely_sketch", "", ""], "flag_reasons": ["", "title: study", "", ""],
        "suggested_decision": ["keep", "drop", "keep", "keep"], "in_sample": "yes",
        "decision": ["keep", "drop", "keep", "keep"], "note": "", "crawl": "demo",
    })
    write_review_csv(tmp_path / "data/review/manifest.csv", frame)
    for index, key in enumerate(KEYS):
        for path in (tmp_path / "data/review/thumbs" / f"{key}.jpg",
                     tmp_path / "data/raw/images" / f"www-{key.split('-')[1]}" / f"{key}.jpg"):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(jpeg((60 * index, 100, 50)))
    return tmp_path


@pytest.fixture
def app(project):
    server = review_app.serve(project, "127.0.0.1", 0, token="t0ken")
    yield server
    server.shutdown()
    server.server_close()


def get(server, path: str, token: str | None = "t0ken", **kwargs) -> requests.Response:
    headers = {"X-Review-Token": token} if token else {}
    return requests.get(server.app_url + path.removeprefix("/"), headers=headers | kwargs.pop("headers", {}), timeout=10, **kwargs)


def post(server, body, token: str | None = "t0ken", **headers) -> requests.Response:
    base = {"Content-Type": "application/json"} | ({"X-Review-Token": token} if token else {})
    return requests.post(f"{server.app_url}api/decide", json=body, headers=base | headers, timeout=10)


def test_serves_counts_works_and_media_of_the_manifest(app):
    artists = get(app, "/api/artists").json()["artists"]
    assert artists == [{"artist": "Ann A", "works": 3, "kept": 2, "dropped": 1, "unreviewed": 3},
                       {"artist": "Bob B", "works": 1, "kept": 1, "dropped": 0, "unreviewed": 1}]
    works = get(app, "/api/works?artist=Ann%20A").json()["works"]
    assert [(w["lot_key"], w["_row"]) for w in works] == [("www-1-1", "2"), ("www-1-2", "3"), ("www-1-3", "4")]
    assert works[1]["title"] == HOSTILE  # as data: the page shows it with textContent
    thumb = get(app, "/thumb?key=www-1-2")
    assert thumb.status_code == 200 and thumb.headers["Content-Type"] == "image/jpeg"
    assert get(app, "/image?key=www-2-1").content[:2] == b"\xff\xd8"
    page = requests.get(f"{app.app_url}?token=t0ken", timeout=10)
    assert page.status_code == 200 and "script-src 'self'" in page.headers["Content-Security-Policy"]
    assert "HttpOnly" in page.headers["Set-Cookie"] and "SameSite=Strict" in page.headers["Set-Cookie"]
    # the cookie the page set is enough for reads (the images the page shows)
    assert requests.get(f"{app.app_url}thumb?key=www-1-1", cookies={"review_token": "t0ken"}, timeout=10).ok


def test_a_decision_is_written_at_once_with_a_backup_first(app, project):
    manifest = project / "data/review/manifest.csv"
    original = manifest.read_bytes()
    answer = post(app, {"lot_key": "www-1-1", "changes": {"decision": "drop"}, "expected": {"decision": "keep"}})
    assert answer.status_code == 200 and answer.json()["work"]["decision"] == "drop"
    assert answer.json()["work"]["reviewed_at"].endswith("Z")
    assert read_curator_manifest(manifest).set_index("lot_key").loc["www-1-1", "decision"] == "drop"
    backups = list((project / "data/review/history").iterdir())
    assert len(backups) == 1 and backups[0].read_bytes() == original
    post(app, {"lot_key": "www-1-3", "changes": {"note": "a study?"}, "expected": {"note": ""}})
    assert len(list((project / "data/review/history").iterdir())) == 1  # one backup per launch
    assert get(app, "/api/artists").json()["artists"][0]["unreviewed"] == 1


def test_a_spreadsheet_edit_meanwhile_is_kept_and_a_double_edit_is_a_conflict(app, project):
    manifest = project / "data/review/manifest.csv"
    text = manifest.read_bytes().decode("utf-8-sig")
    spreadsheet = "\ufeff" + text.replace(",", ";").replace("\n", "\r\n")  # naive, but no cell holds , here
    spreadsheet = spreadsheet.replace("keep;;demo\r\n", "drop;edited in Excel;demo\r\n", 1)  # www-1-1
    manifest.write_bytes(spreadsheet.encode("utf-8"))
    conflict = post(app, {"lot_key": "www-1-1", "changes": {"decision": "keep"}, "expected": {"decision": "keep"}})
    assert conflict.status_code == 409 and conflict.json()["conflict"] == {"decision": "drop", "note": "edited in Excel"}
    assert post(app, {"lot_key": "www-2-1", "changes": {"decision": "drop"}, "expected": {"decision": "keep"}}).ok
    after = manifest.read_bytes().decode("utf-8")
    assert after.startswith("\ufeff") and ";" in after.splitlines()[0] and "\r\n" in after
    rows = {r["lot_key"]: r for r in ReviewFile.read(manifest).rows()}
    assert (rows["www-1-1"]["decision"], rows["www-1-1"]["note"]) == ("drop", "edited in Excel")
    assert rows["www-2-1"]["decision"] == "drop"


@pytest.mark.parametrize("case", ["no token", "wrong token", "foreign origin", "form post", "not json",
                                  "bad decision", "unknown key", "other column", "foreign host"])
def test_refused_writes_get_a_4xx_and_change_nothing(app, project, case):
    manifest = project / "data/review/manifest.csv"
    before = manifest.read_bytes()
    good = {"lot_key": "www-1-1", "changes": {"decision": "drop"}, "expected": {"decision": "keep"}}
    if case == "no token":
        answer = post(app, good, token=None)
    elif case == "wrong token":
        answer = post(app, good, token="guess")
    elif case == "foreign origin":
        answer = post(app, good, Origin="http://evil.example")
    elif case == "form post":
        answer = requests.post(f"{app.app_url}api/decide", data={"lot_key": "www-1-1"}, timeout=10,
                               headers={"X-Review-Token": "t0ken"})
    elif case == "not json":
        answer = requests.post(f"{app.app_url}api/decide", data=b"{nope", timeout=10,
                               headers={"X-Review-Token": "t0ken", "Content-Type": "application/json"})
    elif case == "bad decision":
        answer = post(app, {**good, "changes": {"decision": "maybe"}})
    elif case == "unknown key":
        answer = post(app, {**good, "lot_key": "www-9-9"})
    elif case == "other column":
        answer = post(app, {**good, "changes": {"lot_key": "x"}})
    else:
        answer = post(app, good, Host="evil.example")
    assert 400 <= answer.status_code < 500, answer.text
    assert "error" in answer.json() and "Traceback" not in answer.text
    assert manifest.read_bytes() == before


@pytest.mark.parametrize("path", ["/api/works?artist=Ann%20A", "/thumb?key=www-1-1"])
def test_reads_need_the_token(app, path):
    assert get(app, path, token=None).status_code == 403
    assert get(app, path, token="guess").status_code == 403


@pytest.mark.parametrize("thumb", ["thumbs/../../manifest.csv", "thumbs/%2e%2e/%2e%2e/manifest.csv",
                                   "thumbs/../../../../etc/passwd", "thumbs/link.jpg"])
def test_files_outside_the_media_folders_are_refused(app, project, thumb):
    (project / "data/review/thumbs/link.jpg").symlink_to(project / "data/review/manifest.csv")
    manifest = project / "data/review/manifest.csv"
    manifest.write_bytes(manifest.read_bytes().replace(b"thumbs/www-1-1.jpg", thumb.encode()))
    answer = get(app, "/thumb?key=www-1-1")
    assert answer.status_code in (403, 404) and b"lot_key" not in answer.content
    assert get(app, "/thumb?key=..%2F..%2Fmanifest.csv").status_code == 404  # keys are looked up, not joined
    assert get(app, "/static/..%2F..%2Freview_app.py").status_code == 404


def test_the_command_prints_the_url_with_its_token_first(project):
    process = subprocess.Popen([sys.executable, "-m", "curation.review_app", "--port", "0", "--root", str(project)],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:") and "/?token=" in url
        assert requests.get(url, timeout=10).status_code == 200
    finally:
        process.terminate()
        process.wait(timeout=10)


GOOD = {"lot_key": "www-1-1", "changes": {"decision": "drop"}, "expected": {"decision": "keep"}}


@pytest.mark.parametrize("refusal", [{"X-Review-Token": "guess"}, {"Content-Type": "text/plain"},
                                     {"Origin": "http://evil.example"}, {"body": b"x" * (review_app.MAX_BODY_BYTES + 1)}])
def test_a_refused_write_leaves_nothing_in_the_connection_for_the_next_request(app, refusal):
    headers = {"Content-Type": "application/json", "X-Review-Token": "t0ken", "Host": app.origin[7:]}
    body = refusal.pop("body", json.dumps(GOOD).encode())
    connection = http.client.HTTPConnection(*app.server_address[:2], timeout=10)
    try:
        connection.request("POST", f"{app.base}api/decide", body=body, headers=headers | refusal)
        refused = connection.getresponse()
        assert 400 <= refused.status < 500 and "error" in json.loads(refused.read())
        connection.request("GET", f"{app.base}api/artists", headers=headers)  # the same (kept-alive) connection
        after = connection.getresponse()
        assert after.status == 200 and json.loads(after.read())["artists"][0]["artist"] == "Ann A"
    finally:
        connection.close()


def test_works_without_an_artist_can_be_reviewed(app, project):
    manifest = project / "data/review/manifest.csv"
    manifest.write_bytes(manifest.read_bytes().replace(b",Bob B,", b",,"))
    assert {"artist": "", "works": 1, "kept": 1, "dropped": 0, "unreviewed": 1} in get(app, "/api/artists").json()["artists"]
    works = get(app, "/api/works?artist=")
    assert works.status_code == 200 and [w["lot_key"] for w in works.json()["works"]] == ["www-2-1"]


def test_a_work_stamped_but_without_a_decision_counts_as_not_yet_reviewed(app, project):
    """Keeping the file's value of a decision a stale save blanked re-stamps the row with no decision: the work is
    still to review, and the count must say so."""
    assert post(app, {"lot_key": "www-1-1", "changes": {"note": "seen"}, "expected": {"note": ""}}).ok
    before = {a["artist"]: a["unreviewed"] for a in get(app, "/api/artists").json()["artists"]}
    manifest = project / "data/review/manifest.csv"
    frame = pd.read_csv(manifest, dtype=str, keep_default_na=False)
    assert frame.loc[frame["lot_key"] == "www-1-1", "reviewed_at"].item()
    frame.loc[frame["lot_key"] == "www-1-1", "decision"] = ""
    frame.to_csv(manifest, index=False)
    after = {a["artist"]: a["unreviewed"] for a in get(app, "/api/artists").json()["artists"]}
    assert sum(after.values()) == sum(before.values()) + 1


def test_a_note_a_csv_cannot_hold_is_a_400_naming_the_field(app, project):
    manifest, journal = project / "data/review/manifest.csv", project / "data/review/journal.jsonl"
    before = manifest.read_bytes()
    answer = requests.post(f"{app.app_url}api/decide", timeout=10, data=b'{"lot_key": "www-1-1", "changes": '
                           b'{"note": "a \\ud800 b"}, "expected": {"note": ""}}',
                           headers={"X-Review-Token": "t0ken", "Content-Type": "application/json"})
    assert answer.status_code == 400 and answer.json()["error"].startswith("note: not valid text")
    assert manifest.read_bytes() == before and not journal.exists()


def test_each_decision_is_journalled_before_the_file_is_written(app, project):
    assert post(app, GOOD).ok
    [line] = (project / "data/review/journal.jsonl").read_text(encoding="utf-8").splitlines()
    entry = json.loads(line)
    assert (entry["lot_key"], entry["decision"], entry["note"], entry["source"]) == ("www-1-1", "drop", None, "app")
    assert ReviewFile.read(project / "data/review/manifest.csv").row("www-1-1")["reviewed_at"] == entry["time"]


def test_decisions_a_stale_copy_lost_are_listed_and_restored_in_one_request(app, project):
    manifest = project / "data/review/manifest.csv"
    stale = manifest.read_bytes()
    assert post(app, GOOD).ok
    assert post(app, {"lot_key": "www-2-1", "changes": {"note": "framed"}, "expected": {"note": ""}}).ok
    assert get(app, "/api/lost").json()["lost"] == []
    manifest.write_bytes(stale)  # a spreadsheet that opened the file before saves its copy
    lost = get(app, "/api/lost").json()["lost"]
    assert [(w["lot_key"], w["_row"], w["decision"], w["journal"]) for w in lost] == [
        ("www-1-1", "2", "keep", {"decision": "drop"}), ("www-2-1", "5", "keep", {"note": "framed"})]
    works = {w["lot_key"]: {"decision": w["decision"], "note": w["note"]} for w in lost}
    answer = requests.post(f"{app.app_url}api/settle", json={"keep": "journal", "works": works}, timeout=10,
                           headers={"X-Review-Token": "t0ken"})
    assert answer.status_code == 200 and answer.json()["settled"] == ["www-1-1", "www-2-1"]
    rows = {r["lot_key"]: r for r in ReviewFile.read(manifest).rows()}
    assert (rows["www-1-1"]["decision"], rows["www-2-1"]["note"]) == ("drop", "framed")
    assert get(app, "/api/lost").json()["lost"] == []


def test_a_locked_file_is_a_clear_423_the_decision_kept_in_the_journal_to_restore(app, project, monkeypatch):
    manifest = project / "data/review/manifest.csv"
    real_replace = os.replace

    def locked(source, target):  # what Windows answers while Excel has the file open
        if Path(target) == manifest:
            raise PermissionError(13, "The process cannot access the file because it is being used by another process")
        real_replace(source, target)

    with monkeypatch.context() as patched:
        patched.setattr(os, "replace", locked)
        answer = post(app, GOOD)
    assert answer.status_code == 423
    assert "data/review/manifest.csv cannot be written" in answer.json()["error"]
    assert "kept in data/review/journal.jsonl" in answer.json()["error"]
    assert read_curator_manifest(manifest).set_index("lot_key").loc["www-1-1", "decision"] == "keep"
    [lost] = get(app, "/api/lost").json()["lost"]
    assert (lost["lot_key"], lost["journal"]) == ("www-1-1", {"decision": "drop"})
    answer = requests.post(f"{app.app_url}api/settle", timeout=10, headers={"X-Review-Token": "t0ken"},
                           json={"keep": "journal", "works": {"www-1-1": {"decision": "keep", "note": ""}}})
    assert answer.ok and read_curator_manifest(manifest).set_index("lot_key").loc["www-1-1", "decision"] == "drop"


def test_a_spreadsheet_save_right_after_the_apps_write_is_what_the_page_shows(app, project, monkeypatch):
    """The app's write lands, then a spreadsheet saves in place before the app looks at the file again: the
    app must not take the spreadsheet's file for its own (a CI run once showed the page the app's stale copy)."""
    manifest = project / "data/review/manifest.csv"
    real_replace = os.replace

    def spreadsheet_saves_at_once(source, target):
        real_replace(source, target)
        if Path(target) == manifest:
            text = manifest.read_bytes().decode("utf-8")
            manifest.write_bytes(text.replace("Green", "Green edited in a spreadsheet").encode("utf-8"))

    with monkeypatch.context() as patched:
        patched.setattr(os, "replace", spreadsheet_saves_at_once)
        assert post(app, GOOD).ok
    titles = {w["lot_key"]: w["title"] for w in get(app, "/api/works?artist=Ann%20A").json()["works"]}
    assert titles["www-1-3"] == "Green edited in a spreadsheet"
    assert post(app, {"lot_key": "www-1-3", "changes": {"note": "seen"}, "expected": {"note": ""}}).ok
    rows = {r["lot_key"]: r for r in ReviewFile.read(manifest).rows()}  # the next write kept the edit
    assert (rows["www-1-3"]["title"], rows["www-1-3"]["note"]) == ("Green edited in a spreadsheet", "seen")


def test_a_decision_being_written_is_never_listed_as_lost(app, project, monkeypatch):
    """The journal is written before the file: a look at lost decisions in between must wait for the file."""
    manifest = project / "data/review/manifest.csv"
    real_replace = os.replace
    seen: list = []
    asking = threading.Thread(target=lambda: seen.append(get(app, "/api/lost").json()["lost"]))

    def meanwhile_the_page_asks(source, target):  # journalled, the file not yet renamed into place
        if Path(target) == manifest:
            asking.start()
            asking.join(timeout=1.0)  # it waits for the write (a slow machine only makes this test weaker)
        real_replace(source, target)

    with monkeypatch.context() as patched:
        patched.setattr(os, "replace", meanwhile_the_page_asks)
        assert post(app, GOOD).ok
    asking.join()
    assert seen == [[]]


def test_the_cookie_is_scoped_to_this_launchs_path_and_a_second_tab_gets_the_token(app):
    page = requests.get(f"{app.app_url}?token=t0ken", timeout=10)
    cookie = page.headers["Set-Cookie"]
    assert f"Path={app.base};" in cookie and len(app.base) > 10  # browsers send it to no other path, on any port
    second_tab = requests.get(app.app_url, cookies={"review_token": "t0ken"}, timeout=10)
    assert second_tab.ok and '<meta name="review-token" content="t0ken">' in second_tab.text
    for elsewhere in (f"{app.origin}/", f"{app.origin}/api/artists", app.app_url):
        answer = requests.get(elsewhere, timeout=10)
        assert answer.status_code in (403, 404) and "Open the address it printed" in answer.text
        assert "t0ken" not in answer.text


def test_the_command_lists_and_restores_lost_decisions(app, project):
    manifest = project / "data/review/manifest.csv"
    stale = manifest.read_bytes()
    assert post(app, GOOD).ok
    manifest.write_bytes(stale)
    command = [sys.executable, "-m", "curation.review_app", "--root", str(project)]
    listed = subprocess.run([*command, "--lost"], capture_output=True, text=True, timeout=60)
    assert listed.returncode == 1 and "row 2 (www-1-1, Ann A: Red): decision is 'keep' in the file but 'drop'" in listed.stdout
    restored = subprocess.run([*command, "--restore"], capture_output=True, text=True, timeout=60)
    assert restored.returncode == 0 and "restored 1 work(s)" in restored.stdout
    assert subprocess.run([*command, "--lost"], capture_output=True, timeout=60).returncode == 0
    assert read_curator_manifest(manifest).set_index("lot_key").loc["www-1-1", "decision"] == "drop"
