"""curation/review_journal.py: the app's decisions journalled before the CSV is written, a stale spreadsheet copy's
lost decisions found (and a later spreadsheet edit left alone), settled only on request; apply_review stops on them."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from curation import apply_review
from curation.review_csv import ReviewCsvError, write_review_csv
from curation.review_file import ChangedOnDisk, Conflict, ReviewFile
from curation.review_journal import (JOURNAL, Entry, NotWritten, append, entries, journal_and_write,
                                     lost_decisions, read_journal, settle)
from tests.curation.test_review_csv import auto_frame, kept_keys

T0 = datetime(2026, 12, 6, 17, 0, tzinfo=timezone.utc)
MANIFEST = Path("data/review/manifest.csv")


@pytest.fixture
def reviewed(repo) -> Path:
    """The pipeline's files for three works, all suggested keep, none reviewed yet."""
    auto = auto_frame().assign(suggested_decision="keep")
    write_review_csv(repo / "data/interim/manifest_auto.csv", auto)
    write_review_csv(repo / MANIFEST, auto.assign(in_sample="yes", decision="keep", note=""))
    return repo


def decide(key: str, changes: dict[str, str], minutes: int) -> None:
    """What the app does for one click, `minutes` after T0."""
    journal_and_write(MANIFEST, JOURNAL, {key: (changes, {})}, T0 + timedelta(minutes=minutes), "app")


def file_values() -> dict[str, tuple[str, str]]:
    return {row["lot_key"]: (row["decision"], row["note"]) for row in ReviewFile.read(MANIFEST).rows()}


def lost_now() -> dict[str, dict[str, str]]:
    return {item.lot_key: item.journal for item in lost_decisions(read_journal(JOURNAL), ReviewFile.read(MANIFEST).rows())}


def test_each_decision_is_journalled_as_a_line_with_the_rows_stamp(reviewed):
    decide("www-1-1", {"decision": "drop"}, 1)
    decide("www-1-1", {"note": "a study"}, 2)
    lines = [json.loads(line) for line in JOURNAL.read_text(encoding="utf-8").splitlines()]
    assert lines == [
        {"time": "2026-12-06T17:01:00.000000Z", "lot_key": "www-1-1", "decision": "drop", "note": None, "source": "app"},
        {"time": "2026-12-06T17:02:00.000000Z", "lot_key": "www-1-1", "decision": None, "note": "a study", "source": "app"},
    ]
    assert ReviewFile.read(MANIFEST).row("www-1-1")["reviewed_at"] == lines[1]["time"]
    assert lost_now() == {}


def test_a_stale_spreadsheet_copy_loses_decisions_that_are_found_and_restored(reviewed):
    stale = MANIFEST.read_bytes()  # a spreadsheet opens the file now
    decide("www-1-1", {"decision": "drop"}, 1)
    decide("www-1-2", {"decision": "drop", "note": "tiny"}, 2)
    decide("www-1-3", {"decision": "drop"}, 3)
    decide("www-1-3", {"decision": "keep"}, 4)  # back to what the stale copy has: nothing to lose there
    MANIFEST.write_bytes(stale)  # ... and saves its old copy
    assert lost_now() == {"www-1-1": {"decision": "drop"}, "www-1-2": {"decision": "drop", "note": "tiny"}}
    written, settled = settle(MANIFEST, JOURNAL, {"www-1-1": None, "www-1-2": None, "www-1-3": None}, "journal",
                              T0 + timedelta(minutes=5))
    assert settled == ["www-1-1", "www-1-2"] and written is not None
    assert file_values() == {"www-1-1": ("drop", ""), "www-1-2": ("drop", "tiny"), "www-1-3": ("keep", "")}
    assert lost_now() == {} and read_journal(JOURNAL)[-1].source == "restore"


def test_a_spreadsheet_edit_after_the_apps_write_is_the_curators_word(reviewed):
    decide("www-1-1", {"decision": "drop"}, 1)
    # the spreadsheet opens the file after the app's write: the row has the app's reviewed_at, which it keeps
    MANIFEST.write_bytes(MANIFEST.read_bytes().replace(b",drop,,", b",keep,changed my mind,"))
    assert file_values()["www-1-1"] == ("keep", "changed my mind")
    assert lost_now() == {}


def test_keeping_the_files_value_is_journalled_and_stamps_the_row(reviewed):
    stale = MANIFEST.read_bytes()
    decide("www-1-1", {"decision": "drop"}, 1)
    MANIFEST.write_bytes(stale)
    shown = {"decision": "keep", "note": ""}
    settle(MANIFEST, JOURNAL, {"www-1-1": shown}, "file", T0 + timedelta(minutes=2))
    assert file_values()["www-1-1"] == ("keep", "") and lost_now() == {}
    assert (read_journal(JOURNAL)[-1].decision, read_journal(JOURNAL)[-1].source) == ("keep", "file")
    # from then on a spreadsheet that re-opened the file may change it: its word
    MANIFEST.write_bytes(MANIFEST.read_bytes().replace(b",keep,,", b",drop,,", 1))
    assert lost_now() == {}


def test_settling_what_the_curator_no_longer_sees_is_a_conflict(reviewed):
    stale = MANIFEST.read_bytes()
    decide("www-1-1", {"note": "framed"}, 1)
    MANIFEST.write_bytes(stale.replace(b"yes,keep,\n", b"yes,keep,edited since\n", 1))  # not what the page showed
    with pytest.raises(Conflict):
        settle(MANIFEST, JOURNAL, {"www-1-1": {"decision": "keep", "note": ""}}, "journal", T0 + timedelta(minutes=2))
    assert file_values()["www-1-1"] == ("keep", "edited since") and lost_now() == {"www-1-1": {"note": "framed"}}


def test_a_failed_csv_write_leaves_the_decision_in_the_journal_and_lost(reviewed, monkeypatch):
    def locked(*_):
        raise PermissionError(13, "used by another process")

    with monkeypatch.context() as patched, pytest.raises(NotWritten, match="kept in data/review/journal.jsonl"):
        patched.setattr(ReviewFile, "save", locked)
        decide("www-1-2", {"decision": "drop"}, 1)
    assert lost_now() == {"www-1-2": {"decision": "drop"}}


def test_an_interrupted_last_line_is_ignored_then_dropped_and_bad_lines_are_named(tmp_path):
    journal = tmp_path / "journal.jsonl"
    good = entries({"www-1-1": ({"decision": "drop"}, {})}, T0, "app")
    append(journal, good)
    journal.write_bytes(journal.read_bytes() + b'{"time": "2026-')  # the process died mid-append
    assert read_journal(journal) == good
    append(journal, good)
    assert read_journal(journal) == good * 2
    journal.write_bytes(journal.read_bytes() + b"<<<<<<< HEAD\n" + good[0].line())
    with pytest.raises(ReviewCsvError, match=r"journal.jsonl: line 3: not a journal entry"):
        read_journal(journal)


def test_apply_review_stops_naming_each_lost_decision_and_runs_once_settled(reviewed):
    stale = MANIFEST.read_bytes()
    decide("www-1-2", {"decision": "drop"}, 1)
    MANIFEST.write_bytes(stale)
    with pytest.raises(ReviewCsvError) as error:
        apply_review.main()
    message = str(error.value)
    assert "data/review/manifest.csv: row 3 (www-1-2, Ann A: Blue): decision is 'keep' in the file but 'drop'" in message
    assert "--restore" in message and not Path("data/interim/reviewed.csv").exists()
    settle(MANIFEST, JOURNAL, {"www-1-2": None}, "journal", T0 + timedelta(minutes=2))
    apply_review.main()
    assert kept_keys(reviewed) == ["www-1-1", "www-1-3"]


def test_apply_review_run_while_the_app_saves_a_decision_does_not_call_it_lost(reviewed, monkeypatch):
    """The app journals, then writes the file. apply_review reads the journal first, so the app's whole save
    falling between its two reads leaves the decision in the file it reads, not only in the journal."""
    saves = []

    def then_the_app_saves(read):
        def reading(*args, **kwargs):
            found = read(*args, **kwargs)
            if not saves:  # after apply_review's first read, whichever it is
                saves.append(True)
                decide("www-1-2", {"decision": "drop"}, 1)
            return found
        return reading

    for name in ("read_journal", "read_curator_manifest"):
        monkeypatch.setattr(apply_review, name, then_the_app_saves(getattr(apply_review, name)))
    apply_review.main()
    assert saves and kept_keys(reviewed) == ["www-1-1", "www-1-3"]


def test_a_reviewed_at_without_a_zone_is_read_as_utc_not_a_crash():
    """A curator's hand-typed or a spreadsheet's reformatted `reviewed_at` ("2026-12-06 17:02") carries no zone;
    the journal's times do. Comparing them must not raise."""
    entry = Entry("2026-12-06T17:03:00.000000Z", "www-1-1", "drop", None, "app")
    row = {"lot_key": "www-1-1", "decision": "keep", "note": "", "reviewed_at": "2026-12-06 17:02", "_row": "2"}
    assert [lost.lot_key for lost in lost_decisions([entry], [row])] == ["www-1-1"]
    later = {**row, "reviewed_at": "2026-12-06 17:04"}
    assert lost_decisions([entry], [later]) == []
    assert lost_decisions([entry], [{**row, "reviewed_at": "2026-12-07"}]) == []


def test_edits_a_retry_refuses_are_taken_back_never_offered_as_lost(reviewed, monkeypatch):
    """The first save finds the file changed on disk (a spreadsheet saved meanwhile, deciding the same work); the
    retry reads that file and refuses the app's edit as a Conflict. It was journalled before the first save: the
    journal takes it back, so it is not listed as lost later."""
    real_save, calls = ReviewFile.save, []

    def spreadsheet_saves_first(self):
        if not calls:
            calls.append(1)
            rows = ReviewFile.read(MANIFEST)
            with monkeypatch.context() as inner:
                inner.setattr(ReviewFile, "save", real_save)
                rows.with_changes({"www-1-1": ({"decision": "drop"}, {})}, T0).save()
            raise ChangedOnDisk(MANIFEST)
        return real_save(self)

    monkeypatch.setattr(ReviewFile, "save", spreadsheet_saves_first)
    with pytest.raises(Conflict):
        journal_and_write(MANIFEST, JOURNAL, {"www-1-1": ({"decision": "keep"}, {"decision": "keep"})},
                          T0 + timedelta(minutes=1), "app")
    sources = [entry.source for entry in read_journal(JOURNAL)]
    assert sources == ["app", "file"] and lost_now() == {}


def test_a_write_failing_for_another_reason_than_a_lock_is_not_blamed_on_a_spreadsheet(reviewed, monkeypatch):
    def disk_full(*_):
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as patched, pytest.raises(OSError, match="No space left") as error:
        patched.setattr(ReviewFile, "save", disk_full)
        decide("www-1-2", {"decision": "drop"}, 1)
    assert not isinstance(error.value, NotWritten)
    assert lost_now() == {"www-1-2": {"decision": "drop"}}       # journalled: shown to restore once written
