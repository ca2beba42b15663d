"""The curator's `data/review/manifest.csv` edited in place, one decision at a time, as the review app does it.

The file stays the curator's: whatever a spreadsheet saved it with is kept on every write — the delimiter
(`,` `;` tab), the BOM or its absence, CRLF or LF line ends, the column order, extra columns, blank rows (so
row numbers never shift), cells beyond the header, and every cell the app does not change (cells are rewritten
as they were read, `'` formula guards included). The app only sets `decision`, `note` and `reviewed_at` (an
ISO-8601 UTC time to the microsecond, a column added past every row's last cell when the file has none), each
write atomic (a temporary file renamed over the old one).

Concurrent edits: before each write the file is read again. A decision or note the app would change that is
no longer what the app showed (`expected`) was edited elsewhere meanwhile (a spreadsheet): that is a
`Conflict` for the curator to settle, never overwritten. Rows edited elsewhere that the app does not touch
are kept as the file has them.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path

from common import atomic_path
from curation.review_csv import (DECISIONS, MAX_FIELD_CHARS, ReviewCsvError, neutralise_cell, normalise_decision,
                                 restore_cell, sniff_delimiter)

REVIEWED_AT = "reviewed_at"
EDITABLE = ("decision", "note")
LOCKED_RETRY_S = 0.2  # pause before writing again a file another program locks
Edit = tuple[Mapping[str, str], Mapping[str, str]]  # (changes, expected): values to set, values the curator saw


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
    records: list[list[str]]  # every record after the header as read, blank ones included (written back as read)
    data: list[int]  # indices into `records` of the non-blank ones: the lots; record i is spreadsheet row i + 2
    signature: str  # sha1 of the bytes read
    _rows: list[dict[str, str]] | None = field(default=None, repr=False, compare=False)
    # (mtime_ns, size, inode) of the bytes read or written, taken from the open file itself: a stat of the path
    # afterwards could already be a spreadsheet's save, and pairing that with these rows would hide it
    disk_key: DiskKey | None = field(default=None, compare=False)

    @classmethod
    def read(cls, path: str | Path) -> ReviewFile:
        """Parse the file.

        Raises:
            ReviewCsvError: not UTF-8, no `lot_key`/`decision` column, or a duplicated lot_key.
        """
        path = Path(path)
        with open(path, "rb") as fh:
            # before reading, so a later save shows as another key, unless it writes the same size in place
            # within one tick of the file system's clock (then a write is still refused by the signature check)
            key = disk_key(os.fstat(fh.fileno()))
            data = fh.read()
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
        records = rows[1:]
        lots = [i for i, record in enumerate(records) if any(cell.strip() for cell in record)]
        signature = hashlib.sha1(data).hexdigest()  # noqa: S324
        snapshot = cls(path, dialect, rows[0], records, lots, signature, disk_key=key)
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
        for index, key in zip(self.data, self.keys()):
            if key in seen:
                raise ReviewCsvError([f"{self.path}: row {index + 2}, column lot_key: {key!r} is duplicated "
                                      f"(first on row {seen[key]})"])
            seen[key] = index + 2

    def cell(self, record: list[str], name: str) -> str:
        """A record's value in a column, as text (the `'` formula guard removed); '' when absent."""
        index = self.column(name)
        return restore_cell(record[index].strip()) if index is not None and index < len(record) else ""

    def keys(self) -> list[str]:
        index = self.column("lot_key")
        return [restore_cell(self.records[i][index].strip()) if index < len(self.records[i]) else "" for i in self.data]

    def _as_row(self, index: int, named: list[tuple[int, str]]) -> dict[str, str]:
        record = self.records[index]
        return {**{name: restore_cell(record[i].strip()) if i < len(record) else "" for i, name in named},
                "_row": str(index + 2)}

    def rows(self) -> list[dict[str, str]]:
        """Every lot's record as {lower-case column: text} plus `_row` (its spreadsheet row); computed once."""
        if self._rows is None:
            named = [(i, name) for i, name in enumerate(self._names()) if name]
            self._rows = [self._as_row(index, named) for index in self.data]
        return self._rows

    def row(self, lot_key: str) -> dict[str, str]:
        """One lot's row as in `rows()`. Raises KeyError when the file has no such lot_key."""
        position = self.find(lot_key)
        if self._rows is not None:
            return self._rows[position]
        return self._as_row(self.data[position], [(i, name) for i, name in enumerate(self._names()) if name])

    def find(self, lot_key: str) -> int:
        """Position of the lot among the lots. Raises KeyError when the file has no such lot_key."""
        try:
            return self.keys().index(lot_key)
        except ValueError:
            raise KeyError(lot_key) from None

    # ------------------------------------------------------------ editing

    def with_changes(self, edits: Mapping[str, Edit], now: datetime) -> ReviewFile:
        """A copy with each lot's `decision`/`note` set and `reviewed_at` stamped (`stamp(now)`).

        Args:
            edits: lot_key -> (changes, expected): the values to set, and the values the curator was shown.

        Raises:
            KeyError: no such lot_key. ValueError: a decision other than keep/drop, another column, or text a
            CSV cannot hold (the message starts with the field). Conflict: a value to change is no longer the
            `expected` one (edited elsewhere).
        """
        for changes, _ in edits.values():
            check_changes(changes)
        header, records, names = list(self.header), list(self.records), self._names()
        for name in (*(n for n in EDITABLE if any(n in changes for changes, _ in edits.values())), REVIEWED_AT):
            if name not in names:  # past every record's last cell: cells beyond the header stay unnamed
                width = max([len(header), *(len(records[i]) for i in self.data)])
                header += [""] * (width - len(header)) + [name]
                names += [""] * (width - len(names)) + [name]
        positions = {key: position for position, key in enumerate(self.keys())}
        for lot_key, (changes, expected) in edits.items():
            if lot_key not in positions:
                raise KeyError(lot_key)
            index = self.data[positions[lot_key]]
            current = {name: self.cell(records[index], name) for name in EDITABLE}
            if any(name in expected and comparable(name, current[name]) != comparable(name, expected[name])
                   for name in changes):
                raise Conflict(lot_key, current)
            row = records[index] + [""] * (len(header) - len(records[index]))
            for name, value in {**changes, REVIEWED_AT: stamp(now)}.items():
                row[names.index(name)] = neutralise_cell(value)
            records[index] = row
        return ReviewFile(self.path, self.dialect, header, records, self.data, self.signature)

    def text(self) -> str:
        buffer = io.StringIO(newline="")
        writer = csv.writer(buffer, delimiter=self.dialect.delimiter, lineterminator=self.dialect.line_end)
        writer.writerow(self.header)
        writer.writerows(self.records)
        return ("\ufeff" if self.dialect.bom else "") + buffer.getvalue()

    def save(self) -> ReviewFile:
        """Write atomically, unless the file changed on disk since it was read (then ChangedOnDisk); return the
        snapshot of what was written."""
        data = self.text().encode("utf-8")
        with atomic_path(self.path) as tmp:
            with open(tmp, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
                key = disk_key(os.fstat(fh.fileno()))  # the rename onto the path keeps mtime, size and inode
            # checked last, the new file on disk: only a save by another program in the instant between this
            # check and the rename can still be overwritten (ChangedOnDisk leaves the block: nothing renamed)
            if _signature(self.path) != self.signature:
                raise ChangedOnDisk(self.path)
        return replace(self, signature=hashlib.sha1(data).hexdigest(), _rows=None, disk_key=key)  # noqa: S324


class ChangedOnDisk(Exception):
    """The file is no longer the one this snapshot was read from: read it again and redo the change."""


DiskKey = tuple[int, int, int]


def disk_key(stat: os.stat_result) -> DiskKey:
    """What tells one version of the file from another without reading it: (mtime_ns, size, inode)."""
    return stat.st_mtime_ns, stat.st_size, stat.st_ino


def _signature(path: Path) -> str:
    return hashlib.sha1(path.read_bytes()).hexdigest()  # noqa: S324 (change detection, not security)


def stamp(now: datetime) -> str:
    """`reviewed_at` and the journal's time: ISO-8601 UTC to the microsecond, so that two writes of one row never
    share a stamp (the journal tells a spreadsheet's later edit from a stale copy by it: review_journal.py)."""
    return now.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def check_changes(changes: Mapping[str, str]) -> None:
    """Raises ValueError, starting with the field, for a change the app cannot write."""
    unknown = set(changes) - set(EDITABLE)
    if unknown:
        raise ValueError(f"only {', '.join(EDITABLE)} can be changed, not {', '.join(sorted(unknown))}")
    for name, value in changes.items():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as error:
            raise ValueError(f"{name}: not valid text (a lone surrogate at character {error.start + 1})") from None
        if "\x00" in value:
            raise ValueError(f"{name}: holds a NUL character, which a CSV cannot")
    if "decision" in changes and normalise_decision(changes["decision"]) not in DECISIONS:
        raise ValueError(f"decision: {changes['decision']!r} is not one of {', '.join(DECISIONS)}")


def comparable(name: str, value: str) -> str:
    """Values compared for conflicts: decisions by meaning (' Keep ' = keep), notes as text."""
    return normalise_decision(value) if name == "decision" else value.strip()


def apply_changes(path: str | Path, edits: Mapping[str, Edit], now: datetime | None = None, attempts: int = 3,
                  known: ReviewFile | None = None, before_save: Callable[[], None] | None = None) -> ReviewFile:
    """Read the file, apply the edits, write it back; re-read and retry when it changed in between.

    Args:
        known: a snapshot read earlier, used instead of parsing again while the file's bytes still match it.
        before_save: called once, after the edits are checked and before the file is first written (the review
            app records them in its journal there).

    Raises:
        Conflict, KeyError, ValueError: see `ReviewFile.with_changes`; ChangedOnDisk after `attempts` tries;
        OSError: from reading or writing; PermissionError (a spreadsheet locks the file, on Windows) after
        `attempts` tries.
    """
    now = now or datetime.now(timezone.utc)
    for attempt in range(attempts):
        current = known if known is not None and known.signature == _signature(Path(path)) else ReviewFile.read(path)
        known = None
        updated = current.with_changes(edits, now)
        if before_save is not None:
            before_save()
            before_save = None
        try:
            return updated.save()
        except ChangedOnDisk:
            continue
        except PermissionError:  # on Windows a file open elsewhere refuses the rename, often only for a moment
            if attempt + 1 == attempts:
                raise
            time.sleep(LOCKED_RETRY_S)
    raise ChangedOnDisk(Path(path))


def apply_change(path: str | Path, lot_key: str, changes: Mapping[str, str], expected: Mapping[str, str],
                 now: datetime | None = None) -> ReviewFile:
    """`apply_changes` for one lot."""
    return apply_changes(path, {lot_key: (changes, expected)}, now)
