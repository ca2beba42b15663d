"""The curator's `data/review/manifest.csv` edited in place, one decision at a time, as the review app does it.

The file stays the curator's: whatever a spreadsheet saved it with is kept on every write — the delimiter
(`,` `;` tab), the BOM or its absence, CRLF or LF line ends, the column order, extra columns, and every cell
the app does not change (cells are rewritten as they were read, `'` formula guards included). The app only
sets `decision`, `note` and `reviewed_at` (an ISO-8601 UTC time, a column added at the end when the file has
none), each write atomic (a temporary file renamed over the old one).

Concurrent edits: before each write the file is read again. A decision or note the app would change that is
no longer what the app showed (`expected`) was edited elsewhere meanwhile (a spreadsheet): that is a
`Conflict` for the curator to settle, never overwritten. Rows edited elsewhere that the app does not touch
are kept as the file has them.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path

from common import atomic_write
from curation.review_csv import (DECISIONS, MAX_FIELD_CHARS, ReviewCsvError, neutralise_cell, normalise_decision,
                                 restore_cell, sniff_delimiter)

REVIEWED_AT = "reviewed_at"
EDITABLE = ("decision", "note")


class Conflict(Exception):
    """The row's decision or note changed in the file since the app showed it; `current` holds the file's."""

    def __init__(self, lot_key: str, current: Mapping[str, str]):
        self.lot_key, self.current = lot_key, dict(current)
        super().__init__(f"{lot_key}: changed in the file meanwhile ({self.current})")


@dataclass(frozen=True)
class Dialect:
    delimiter: str
    bom: bool
    line_end: str


@dataclass
class ReviewFile:
    """A parsed snapshot of the curator's file: header (original names), raw records, where each lot is."""

    path: Path
    dialect: Dialect
    header: list[str]
    records: list[list[str]]  # data records as read (blank lines dropped), cells raw
    row_numbers: list[int]  # the spreadsheet row of each record (header = 1)
    signature: str  # sha1 of the bytes read
    _rows: list[dict[str, str]] | None = field(default=None, repr=False, compare=False)

    @classmethod
    def read(cls, path: str | Path) -> ReviewFile:
        """Parse the file.

        Raises:
            ReviewCsvError: not UTF-8, no `lot_key`/`decision` column, or a duplicated lot_key.
        """
        path = Path(path)
        data = path.read_bytes()
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ReviewCsvError([f"{path}: not UTF-8 text (save as 'CSV UTF-8')"]) from exc
        bom = text.startswith("\ufeff")
        text = text.removeprefix("\ufeff")
        first_line = text.split("\n", 1)[0]
        dialect = Dialect(sniff_delimiter(first_line), bom, "\r\n" if first_line.endswith("\r") else "\n")
        csv.field_size_limit(max(csv.field_size_limit(), MAX_FIELD_CHARS))
        rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=dialect.delimiter))
        if not rows:
            raise ReviewCsvError([f"{path}: the file is empty"])
        records, numbers = [], []
        for number, record in enumerate(rows[1:], start=2):
            if any(cell.strip() for cell in record):
                records.append(record)
                numbers.append(number)
        snapshot = cls(path, dialect, rows[0], records, numbers, hashlib.sha1(data).hexdigest())  # noqa: S324
        snapshot._check()
        return snapshot

    # ------------------------------------------------------------ columns and rows

    def _names(self) -> list[str]:
        """The header's column names, lower-case (a spreadsheet may have changed the case)."""
        return [restore_cell(cell.replace("\ufeff", "").strip()).lower() for cell in self.header]

    def column(self, name: str) -> int | None:
        names = self._names()
        return names.index(name) if name in names else None

    def _check(self) -> None:
        missing = [name for name in ("lot_key", "decision") if self.column(name) is None]
        if missing:
            raise ReviewCsvError([f"{self.path}: missing column(s) {', '.join(missing)}"])
        seen: dict[str, int] = {}
        for number, key in zip(self.row_numbers, self.keys()):
            if key in seen:
                raise ReviewCsvError([f"{self.path}: row {number}, column lot_key: {key!r} is duplicated "
                                      f"(first on row {seen[key]})"])
            seen[key] = number

    def cell(self, record: list[str], name: str) -> str:
        """A record's value in a column, as text (the `'` formula guard removed); '' when absent."""
        index = self.column(name)
        return restore_cell(record[index].strip()) if index is not None and index < len(record) else ""

    def keys(self) -> list[str]:
        index = self.column("lot_key")
        return [restore_cell(record[index].strip()) if index < len(record) else "" for record in self.records]

    def rows(self) -> list[dict[str, str]]:
        """Every record as {lower-case column: text} plus `_row` (its spreadsheet row); computed once."""
        if self._rows is None:
            named = [(i, name) for i, name in enumerate(self._names()) if name]
            self._rows = [{**{name: restore_cell(record[i].strip()) if i < len(record) else "" for i, name in named},
                           "_row": str(number)} for record, number in zip(self.records, self.row_numbers)]
        return self._rows

    def row(self, lot_key: str) -> dict[str, str]:
        """One lot's row as in `rows()`. Raises KeyError when the file has no such lot_key."""
        index = self.find(lot_key)
        if self._rows is not None:
            return self._rows[index]
        record = self.records[index]
        named = [(i, name) for i, name in enumerate(self._names()) if name]
        return {**{name: restore_cell(record[i].strip()) if i < len(record) else "" for i, name in named},
                "_row": str(self.row_numbers[index])}

    def find(self, lot_key: str) -> int:
        """Index of the lot's record. Raises KeyError when the file has no such lot_key."""
        try:
            return self.keys().index(lot_key)
        except ValueError:
            raise KeyError(lot_key) from None

    # ------------------------------------------------------------ editing

    def with_change(self, lot_key: str, changes: Mapping[str, str], expected: Mapping[str, str],
                    now: datetime) -> ReviewFile:
        """A copy with the lot's `decision`/`note` set and `reviewed_at` stamped.

        Raises:
            KeyError: no such lot_key. ValueError: a decision other than keep/drop, or another column.
            Conflict: a value to change is no longer the `expected` one (edited elsewhere).
        """
        unknown = set(changes) - set(EDITABLE)
        if unknown:
            raise ValueError(f"only {', '.join(EDITABLE)} can be changed, not {', '.join(sorted(unknown))}")
        if "decision" in changes and normalise_decision(changes["decision"]) not in DECISIONS:
            raise ValueError(f"decision {changes['decision']!r} is not one of {', '.join(DECISIONS)}")
        index = self.find(lot_key)
        record = self.records[index]
        current = {name: self.cell(record, name) for name in EDITABLE}
        if any(name in expected and _same(name, current[name]) != _same(name, expected[name]) for name in changes):
            raise Conflict(lot_key, current)
        header, records = list(self.header), [list(r) for r in self.records]
        names = self._names()
        for name in (*changes, REVIEWED_AT):
            if name not in names:
                header.append(name)
                names.append(name)
        stamped = {**changes, REVIEWED_AT: now.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}
        row = records[index] + [""] * (len(header) - len(records[index]))
        for name, value in stamped.items():
            row[names.index(name)] = neutralise_cell(value)
        records[index] = row
        return ReviewFile(self.path, self.dialect, header, records, self.row_numbers, self.signature)

    def text(self) -> str:
        buffer = io.StringIO(newline="")
        writer = csv.writer(buffer, delimiter=self.dialect.delimiter, lineterminator=self.dialect.line_end)
        writer.writerow(self.header)
        writer.writerows(self.records)
        return ("\ufeff" if self.dialect.bom else "") + buffer.getvalue()

    def save(self) -> ReviewFile:
        """Write atomically, unless the file changed on disk since it was read (then ChangedOnDisk); return the
        snapshot of what was written."""
        if _signature(self.path) != self.signature:
            raise ChangedOnDisk(self.path)
        data = self.text().encode("utf-8")
        with atomic_write(self.path, "wb") as fh:
            fh.write(data)
        return replace(self, signature=hashlib.sha1(data).hexdigest(), _rows=None)  # noqa: S324


class ChangedOnDisk(Exception):
    """The file is no longer the one this snapshot was read from: read it again and redo the change."""


def _signature(path: Path) -> str:
    return hashlib.sha1(path.read_bytes()).hexdigest()  # noqa: S324 (change detection, not security)


def _same(name: str, value: str) -> str:
    """Values compared for conflicts: decisions by meaning (' Keep ' = keep), notes as text."""
    return normalise_decision(value) if name == "decision" else value.strip()


def apply_change(path: str | Path, lot_key: str, changes: Mapping[str, str], expected: Mapping[str, str],
                 now: datetime | None = None, attempts: int = 3, known: ReviewFile | None = None) -> ReviewFile:
    """Read the file, apply one change, write it back; re-read and retry when it changed in between.
    `known`, a snapshot read earlier, is used instead of parsing again while the file's bytes still match it.

    Raises:
        Conflict, KeyError, ValueError: see `ReviewFile.with_change`; ChangedOnDisk after `attempts` tries.
    """
    now = now or datetime.now(timezone.utc)
    for _ in range(attempts):
        current = known if known is not None and known.signature == _signature(Path(path)) else ReviewFile.read(path)
        known = None
        updated = current.with_change(lot_key, changes, expected, now)
        try:
            return updated.save()
        except ChangedOnDisk:
            continue
    raise ChangedOnDisk(Path(path))
