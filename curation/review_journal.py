"""The decision journal: every decision and note the review app accepts, kept apart from the CSV a spreadsheet
can overwrite.

`data/review/journal.jsonl`, beside the curator's manifest and committed with it: one JSON object a line,
appended (flushed and fsynced) before the CSV is rewritten, never edited:

    {"time": "2026-12-06T17:02:23.123456Z", "lot_key": "www-1-1", "decision": "drop", "note": null, "source": "app"}

`decision`/`note` hold what was set (null: left as it was); `source` is `app` (a Keep, Drop or note in the app),
`restore` (a lost decision written back) or `file` (the curator kept the file's value instead); `time` is also
the row's `reviewed_at` in the CSV written with it.

A decision is **lost** when the CSV's value differs from the journal's latest one for that lot and field *and*
the row's `reviewed_at` is older than that journal entry (or empty or unreadable): the CSV's row was written
before the journal's decision, so the CSV is an older copy (a spreadsheet that opened the file earlier saved it,
a backup was restored, a write failed on a locked file). A differing value in a row whose `reviewed_at` is the
entry's time or later was edited after the app wrote it (a spreadsheet keeps the app's stamp on the rows it
does not know about): that is the curator's later word and is not reported. A lost decision is shown, never
resolved silently: `settle` writes back the journal's value (`restore`) or stamps the file's (`file`).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

from curation.review_csv import ReviewCsvError
from curation.review_file import (EDITABLE, REVIEWED_AT, Conflict, Edit, ReviewFile, apply_changes, comparable,
                                  stamp)

log = logging.getLogger("curation.review_journal")

JOURNAL = Path("data/review/journal.jsonl")
SOURCES = ("app", "restore", "file")


@dataclass(frozen=True)
class Entry:
    """One journal line."""

    time: str
    lot_key: str
    decision: str | None
    note: str | None
    source: str

    def line(self) -> bytes:
        return (json.dumps(asdict(self), ensure_ascii=False) + "\n").encode("utf-8")


@dataclass(frozen=True)
class Lost:
    """A lot whose CSV row no longer holds what the journal recorded for it later."""

    row: dict[str, str]  # the CSV's row (with `_row`, its spreadsheet row)
    journal: dict[str, str]  # field -> the journal's value, for the lost fields only
    time: str  # the latest journal time among them
    source: str

    @property
    def lot_key(self) -> str:
        return self.row["lot_key"]


def entries(edits: Mapping[str, Edit], now: datetime, source: str) -> list[Entry]:
    """The journal lines for edits written at `now`."""
    return [Entry(stamp(now), key, changes.get("decision"), changes.get("note"), source)
            for key, (changes, _) in edits.items()]


def append(path: Path, new: Iterable[Entry]) -> None:
    """Append entries and fsync. A last line without its newline is an append cut short (its CSV write never
    happened, so nothing was acknowledged): it is dropped first rather than glued to the next line."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "ab+") as fh:
        size = fh.seek(0, os.SEEK_END)
        if size:
            fh.seek(size - 1)
            if fh.read(1) != b"\n":
                fh.seek(0)
                keep = fh.read().rfind(b"\n") + 1
                log.warning("%s: an interrupted last line (%d bytes) dropped", path, size - keep)
                fh.truncate(keep)
        fh.write(b"".join(entry.line() for entry in new))
        fh.flush()
        os.fsync(fh.fileno())


class NotWritten(Exception):
    """The edits are in the journal but the CSV could not be written (a spreadsheet locks it, on Windows)."""

    def __init__(self, manifest: Path, journal: Path, error: PermissionError):
        self.error = error
        super().__init__(f"{manifest} cannot be written ({error.strerror or error}): is it open in a program that "
                         f"locks it (Excel)? Nothing is lost: the change is kept in {journal}; close the file there, "
                         "then retry (the review app lists it to restore)")


def taken_back(manifest: Path, edits: Mapping[str, Edit]) -> list[Entry]:
    """Entries that take back journalled edits the CSV then refused (a `Conflict` on a retry): the file's values
    for the edited fields, as the curator's (`file`), so they are never offered back as lost."""
    rows = {row["lot_key"]: row for row in ReviewFile.read(manifest).rows()}
    now = stamp(datetime.now(timezone.utc))
    back = {key: {name: rows[key].get(name, "") for name in changes} for key, (changes, _) in edits.items()
            if key in rows}
    return [Entry(now, key, values.get("decision"), values.get("note"), "file") for key, values in back.items()]


def journal_and_write(manifest: Path, journal: Path, edits: Mapping[str, Edit], now: datetime, source: str,
                      known: ReviewFile | None = None) -> ReviewFile:
    """Write the edits into the CSV (`apply_changes`), journalled once they are checked and before the CSV is
    written.

    Raises:
        NotWritten: journalled, but the CSV could not be written because it is locked (it then shows as lost
            until written).
        Conflict: see `apply_changes`; when it comes on a retry after journalling, the journal takes the edits
            back (`taken_back`). KeyError, ValueError, OSError: see `apply_changes`; an OSError after journalling
            (a full disk) leaves the edits shown as lost. ChangedOnDisk (journalled, so shown as lost).
    """
    journalled = []

    def record() -> None:
        append(journal, entries(edits, now, source))
        journalled.append(True)

    try:
        return apply_changes(manifest, edits, now, known=known, before_save=record)
    except PermissionError as error:
        if journalled:
            raise NotWritten(manifest, journal, error) from error
        raise
    except Conflict:
        if journalled:  # a retry read a file changed meanwhile, and it refused the journalled edits after all
            append(journal, taken_back(manifest, edits))
        raise


def read_journal(path: Path) -> list[Entry]:
    """Every entry, in the order written; [] when there is no journal yet.

    Raises:
        ReviewCsvError: lines that are not journal entries (a merge conflict's markers, a hand edit), each named.
    """
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        return []
    except UnicodeDecodeError as error:
        raise ReviewCsvError([f"{path}: not UTF-8 text ({error})"]) from None
    lines = text.split("\n")
    if lines[-1]:
        log.warning("%s: an interrupted last line is ignored", path)
    found, issues = [], []
    for number, line in enumerate(lines[:-1], start=1):
        if not line.strip():
            continue
        try:
            found.append(_entry(json.loads(line)))
        except (json.JSONDecodeError, TypeError, ValueError) as error:
            issues.append(f"{path}: line {number}: not a journal entry ({error})")
    if issues:
        raise ReviewCsvError(issues)
    return found


def _entry(value: object) -> Entry:
    if not isinstance(value, dict):
        raise TypeError("not a JSON object")
    entry = Entry(**value)
    if not isinstance(entry.lot_key, str) or not entry.lot_key or entry.source not in SOURCES:
        raise ValueError("lot_key or source missing")
    if not all(v is None or isinstance(v, str) for v in (entry.decision, entry.note)):
        raise ValueError("decision and note are text or null")
    if _time(entry.time) is None:
        raise ValueError(f"time {entry.time!r} is not an ISO-8601 time")
    return entry


def _time(value: object) -> datetime | None:
    """An ISO-8601 time; one without a zone (a hand-typed or reformatted `reviewed_at`: "2026-12-06",
    "2026-12-06 17:02") is read as UTC, the zone the app writes; None when it is no time at all."""
    try:
        parsed = datetime.fromisoformat(value) if isinstance(value, str) and value.strip() else None
    except ValueError:
        return None
    return parsed.replace(tzinfo=timezone.utc) if parsed is not None and parsed.tzinfo is None else parsed


def lost_decisions(journal: Iterable[Entry], rows: Iterable[Mapping[str, str]]) -> list[Lost]:
    """The lots, in file order, whose row lost a decision or note the journal has (see the module's rule)."""
    latest: dict[str, dict[str, Entry]] = {}
    for entry in journal:
        for name in EDITABLE:
            if getattr(entry, name) is not None:
                latest.setdefault(entry.lot_key, {})[name] = entry
    found = []
    for row in rows:
        recorded = latest.get(row["lot_key"], {})
        written = _time(row.get(REVIEWED_AT, ""))
        lost = {name: entry for name, entry in recorded.items()
                if comparable(name, getattr(entry, name)) != comparable(name, row.get(name, ""))
                and (written is None or written < _time(entry.time))}
        if lost:
            last = max(lost.values(), key=lambda e: _time(e.time))
            found.append(Lost(dict(row), {name: getattr(e, name) for name, e in lost.items()}, last.time, last.source))
    return found


def describe(lost: Lost, manifest: Path, journal: Path) -> str:
    """One line for the curator: where, what the file says, what the journal says and when."""
    row = lost.row
    fields = "; ".join(f"{name} is {row.get(name, '')!r} in the file but {value!r} in {journal}"
                       for name, value in lost.journal.items())
    written = row.get(REVIEWED_AT) or "never"
    return (f"{manifest}: row {row['_row']} ({lost.lot_key}, {row.get('artist', '')}: {row.get('title', '')}): "
            f"{fields} (recorded by {lost.source} at {lost.time}; the row was last written by the app: {written})")


def settle(manifest: Path, journal: Path, shown: Mapping[str, Mapping[str, str] | None], keep: str,
           now: datetime, known: ReviewFile | None = None) -> tuple[ReviewFile | None, list[str]]:
    """Settle the lost decisions of the `shown` lots: write the journal's values back (`keep` = "journal") or
    keep the file's (`keep` = "file", the row re-stamped so a later spreadsheet edit counts as later); both are
    journalled first. Lots no longer lost are left alone.

    Args:
        shown: lot_key -> the file's values the curator saw (a conflict when the file changed since), or None.

    Returns:
        The file as written (None when nothing was lost) and the lot_keys settled.

    Raises:
        Conflict, ChangedOnDisk, OSError: see `apply_changes`.
    """
    current = known if known is not None else ReviewFile.read(manifest)
    lost = {item.lot_key: item for item in lost_decisions(read_journal(journal), current.rows())}
    edits: dict[str, Edit] = {}
    for key in (key for key in shown if key in lost):
        in_file = {name: lost[key].row.get(name, "") for name in lost[key].journal}
        edits[key] = (lost[key].journal if keep == "journal" else in_file, shown[key] or in_file)
    if not edits:
        return None, []
    written = journal_and_write(manifest, journal, edits, now, "restore" if keep == "journal" else "file", current)
    return written, list(edits)
