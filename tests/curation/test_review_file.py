"""curation/review_file.py: one decision written into the curator's file, keeping the user's format and edits."""

from __future__ import annotations

import os
from datetime import datetime, timezone

import pytest

from curation.review_csv import ReviewCsvError, read_curator_manifest
from curation.review_file import Conflict, ReviewFile, apply_change

NOW = datetime(2026, 12, 1, 12, 30, tzinfo=timezone.utc)
SPREADSHEET = (  # what a spreadsheet saves: BOM, `;`, CRLF, its own column order, an extra column, a formula guard
    "\ufeffdecision;lot_key;My column;note;title\r\n"
    "keep;www-1-1;mine;;'=SUM(A1)\r\n"
    "drop;www-1-2;;sketch?;Blue\r\n"
    "\r\n"
    "keep;www-1-3;x;;Green\r\n"
)


@pytest.fixture
def sheet(tmp_path):
    path = tmp_path / "manifest.csv"
    path.write_bytes(SPREADSHEET.encode("utf-8"))
    return path


def test_a_change_keeps_the_users_format_and_every_other_cell(sheet):
    apply_change(sheet, "www-1-3", {"decision": "drop", "note": "=HYPERLINK(x)"}, {"decision": "keep", "note": ""}, NOW)
    text = sheet.read_bytes().decode("utf-8")
    lines = text.split("\r\n")
    assert text.startswith("\ufeff") and "\n" not in text.replace("\r\n", "")
    assert lines[0] == "\ufeffdecision;lot_key;My column;note;title;reviewed_at"
    assert lines[1] == "keep;www-1-1;mine;;'=SUM(A1)" and lines[2] == "drop;www-1-2;;sketch?;Blue"
    assert lines[4] == "drop;www-1-3;x;'=HYPERLINK(x);Green;2026-12-01T12:30:00.000000Z"  # the note is guarded
    read = read_curator_manifest(sheet)  # and the pipeline reads it as before
    assert read.set_index("lot_key").loc["www-1-3", "note"] == "=HYPERLINK(x)"
    assert read.set_index("lot_key").loc["www-1-1", "title"] == "=SUM(A1)"


def test_rows_report_the_spreadsheet_row_numbers_and_text(sheet):
    rows = ReviewFile.read(sheet).rows()
    assert [(r["lot_key"], r["_row"]) for r in rows] == [("www-1-1", "2"), ("www-1-2", "3"), ("www-1-3", "5")]
    assert rows[0]["title"] == "=SUM(A1)" and rows[0]["my column"] == "mine"


def test_a_row_changed_in_the_file_since_it_was_shown_is_a_conflict_not_overwritten(sheet):
    # the page showed www-1-2 as drop / "sketch?"; a spreadsheet has since set it to keep
    sheet.write_bytes(SPREADSHEET.replace("drop;www-1-2", "keep;www-1-2").encode("utf-8"))
    before = sheet.read_bytes()
    with pytest.raises(Conflict) as caught:
        apply_change(sheet, "www-1-2", {"decision": "drop"}, {"decision": "drop", "note": "sketch?"}, NOW)
    assert caught.value.current == {"decision": "keep", "note": "sketch?"}
    assert sheet.read_bytes() == before
    # a change to the note alone does not conflict with the decision's edit, and keeps it
    apply_change(sheet, "www-1-2", {"note": "a study"}, {"decision": "drop", "note": "sketch?"}, NOW)
    assert ReviewFile.read(sheet).rows()[1]["decision"] == "keep"


def test_edits_elsewhere_to_other_rows_survive_a_write(sheet):
    sheet.write_bytes(SPREADSHEET.replace("keep;www-1-1;mine", "drop;www-1-1;theirs").encode("utf-8"))
    apply_change(sheet, "www-1-3", {"decision": "drop"}, {"decision": " KEEP "}, NOW)  # same meaning as keep
    rows = {r["lot_key"]: r for r in ReviewFile.read(sheet).rows()}
    assert (rows["www-1-1"]["decision"], rows["www-1-1"]["my column"]) == ("drop", "theirs")
    assert rows["www-1-3"]["decision"] == "drop"


def test_a_spreadsheet_save_while_the_new_file_is_being_written_survives_it(sheet, monkeypatch):
    """The file is checked for changes after the new one is written, just before it replaces the file: a save
    by a spreadsheet meanwhile (here, while the new file is flushed to disk) is read and kept, not overwritten."""
    real_fsync, saved = os.fsync, []

    def spreadsheet_saves_meanwhile(fd):
        real_fsync(fd)
        if not saved:
            saved.append(True)
            sheet.write_bytes(SPREADSHEET.replace("keep;www-1-1;mine", "drop;www-1-1;theirs").encode("utf-8"))

    monkeypatch.setattr(os, "fsync", spreadsheet_saves_meanwhile)
    apply_change(sheet, "www-1-3", {"decision": "drop"}, {"decision": "keep"}, NOW)
    rows = {r["lot_key"]: r for r in ReviewFile.read(sheet).rows()}
    assert saved and (rows["www-1-1"]["decision"], rows["www-1-1"]["my column"]) == ("drop", "theirs")
    assert rows["www-1-3"]["decision"] == "drop"


@pytest.mark.parametrize("changes, error", [
    ({"decision": "maybe"}, ValueError), ({"title": "x"}, ValueError), ({"decision": "keep"}, KeyError)])
def test_bad_changes_are_refused_and_change_nothing(sheet, changes, error):
    before = sheet.read_bytes()
    key = "www-9-9" if error is KeyError else "www-1-1"
    with pytest.raises(error):
        apply_change(sheet, key, changes, {}, NOW)
    assert sheet.read_bytes() == before


def test_a_file_without_the_columns_or_with_a_duplicate_is_refused(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("lot_key,verdict\nwww-1-1,keep\n", encoding="utf-8")
    with pytest.raises(ReviewCsvError, match="missing column"):
        ReviewFile.read(bad)
    bad.write_text("lot_key,decision\nwww-1-1,keep\nwww-1-1,drop\n", encoding="utf-8")
    with pytest.raises(ReviewCsvError, match="row 3, column lot_key"):
        ReviewFile.read(bad)


def test_a_write_keeps_blank_rows_and_the_row_numbers_it_reports_match_the_file(sheet):
    written = apply_change(sheet, "www-1-1", {"decision": "drop"}, {"decision": "keep"}, NOW)
    assert sheet.read_bytes().decode("utf-8").split("\r\n")[3] == ""  # the blank row 4 is still there
    on_disk = [(r["lot_key"], r["_row"]) for r in ReviewFile.read(sheet).rows()]
    assert on_disk == [("www-1-1", "2"), ("www-1-2", "3"), ("www-1-3", "5")]
    assert [(r["lot_key"], r["_row"]) for r in written.rows()] == on_disk  # what the app shows next


def test_cells_beyond_the_header_are_kept_and_never_read_as_reviewed_at(tmp_path):
    path = tmp_path / "manifest.csv"
    path.write_text("lot_key,decision\nwww-1-1,keep,surprise\nwww-1-2,keep\nwww-1-3,keep,other\n", encoding="utf-8")
    apply_change(path, "www-1-2", {"decision": "drop"}, {"decision": "keep"}, NOW)
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[1] == "www-1-1,keep,surprise" and lines[3] == "www-1-3,keep,other"
    rows = {r["lot_key"]: r for r in ReviewFile.read(path).rows()}
    assert rows["www-1-1"]["reviewed_at"] == "" and rows["www-1-3"]["reviewed_at"] == ""
    assert rows["www-1-2"]["reviewed_at"] == "2026-12-01T12:30:00.000000Z"
    apply_change(path, "www-1-1", {"note": "x"}, {"note": ""}, NOW)  # a longer row written: its cell stays
    assert path.read_text(encoding="utf-8").splitlines()[1].startswith("www-1-1,keep,surprise,")


@pytest.mark.parametrize("note", ["\ud800 lone surrogate", "a NUL \x00 inside"])
def test_text_a_csv_cannot_hold_is_refused_naming_the_field(sheet, note):
    before = sheet.read_bytes()
    with pytest.raises(ValueError, match="^note: "):
        apply_change(sheet, "www-1-1", {"note": note}, {"note": ""}, NOW)
    assert sheet.read_bytes() == before
