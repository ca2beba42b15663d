"""The review CSV files (manifest_auto.csv and the curator's manifest.csv): writing, tolerant reading, validation.

Written for spreadsheets: UTF-8 with a BOM (Excel then reads accents correctly), `,` delimiter, LF line
endings, every cell text, formulas neutralised (a cell starting with `=`, `+`, `-`, `@`, tab or CR gets a
leading `'`). Read back tolerantly: BOM or not, `,`/`;`/tab delimiter, CRLF, reordered or extra columns,
header case, spaces around cells; the leading `'` added on writing is removed, so the round trip is lossless.
Anything that cannot be trusted is reported with the file, the row as a spreadsheet numbers it
(header = row 1) and the column, all problems at once.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Collection, Sequence
from pathlib import Path

import pandas as pd

from common import atomic_write

DECISIONS = ("keep", "drop")
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
QUOTE_PREFIX = "'"
DELIMITERS = (",", ";", "\t")
ROW = "_sheet_row"  # column added by the reader: the row number a spreadsheet shows (header = 1)
HISTORY_COLUMN = "in_sample"  # "no" marks a row kept from an earlier sample
MAX_FIELD_CHARS = 16 * 1024 * 1024  # csv's default 128 KiB field limit is below what scraped titles can reach


class ReviewCsvError(ValueError):
    """A review CSV that cannot be used; `issues` lists every problem found (file, row, column, what)."""

    def __init__(self, issues: Sequence[str]):
        self.issues = list(issues)
        super().__init__(f"{len(self.issues)} problem(s):\n" + "\n".join(f"  - {issue}" for issue in self.issues))


def neutralise_cell(value: str) -> str:
    """Prefix `'` to a cell a spreadsheet would run as a formula (and to a cell that already starts with
    `'` followed by such a character, so `restore_cell` can undo exactly one prefix)."""
    if value.startswith(FORMULA_TRIGGERS) or (value.startswith(QUOTE_PREFIX) and value[1:2] in (*FORMULA_TRIGGERS, QUOTE_PREFIX)):
        return QUOTE_PREFIX + value
    return value


def restore_cell(value: str) -> str:
    """Undo `neutralise_cell`."""
    if value.startswith(QUOTE_PREFIX) and len(value) > 1 and value[1] in (*FORMULA_TRIGGERS, QUOTE_PREFIX):
        return value[1:]
    return value


def _cell_text(value: object) -> str:
    """Cell text; a NUL (seen in scraped titles) becomes U+FFFD, since spreadsheets and csv cannot carry it."""
    if value is None or (isinstance(value, float) and pd.isna(value)) or value is pd.NA:
        return ""
    return str(value).replace("\x00", "\ufffd")


def write_review_csv(path: str | Path, frame: pd.DataFrame) -> None:
    """Write `frame` (all columns) as a spreadsheet-safe CSV, atomically."""
    with atomic_write(path, newline="") as fh:
        fh.write("\ufeff")
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow([neutralise_cell(str(c)) for c in frame.columns])
        for row in frame.itertuples(index=False, name=None):
            writer.writerow([neutralise_cell(_cell_text(v)) for v in row])


def _decode(path: Path, data: bytes) -> str:
    if b"\x00" in data:
        raise ReviewCsvError([f"{path}: contains NUL bytes: not a text CSV (saved as .xlsx/.ods? save as 'CSV UTF-8')"])
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ReviewCsvError([f"{path}: line {line}: not UTF-8 text (save as 'CSV UTF-8 (comma delimited)')"]) from exc


def sniff_delimiter(header_line: str) -> str:
    """The delimiter that splits the header line most often; `,` on a tie."""
    counts = {d: header_line.count(d) for d in DELIMITERS}
    return max(DELIMITERS, key=lambda d: (counts[d], d == ","))


def _parse_records(path: Path, text: str) -> list[list[str]]:
    delimiter = sniff_delimiter(text.split("\n", 1)[0])
    csv.field_size_limit(max(csv.field_size_limit(), MAX_FIELD_CHARS))
    try:
        return list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))
    except csv.Error as exc:
        raise ReviewCsvError([f"{path}: not a readable CSV ({exc})"]) from exc


def read_review_csv(path: str | Path, required_columns: Sequence[str]) -> pd.DataFrame:
    """Read a review CSV as text into a frame with lower-case column names plus `_sheet_row`.

    Cells are stripped of surrounding whitespace and of the formula-neutralising `'`. Blank rows are skipped
    (they keep their number). Columns with an empty header are ignored.

    Raises:
        ReviewCsvError: empty file, binary content, missing required columns, duplicated header names,
            a header without rows, or rows with more non-empty cells than the header.
    """
    path = Path(path)
    text = _decode(path, path.read_bytes())
    if not text.strip():
        raise ReviewCsvError([f"{path}: the file is empty"])
    records = _parse_records(path, text)
    header = [restore_cell(cell.replace("\ufeff", "").strip()).lower() for cell in records[0]]
    issues = _header_issues(path, header, required_columns)
    if issues:
        raise ReviewCsvError(issues)
    named = [i for i, name in enumerate(header) if name]
    rows, row_numbers = [], []
    for number, record in enumerate(records[1:], start=2):
        cells = [restore_cell(cell.strip()) for cell in record]
        if not any(cells):
            continue
        if any(cells[len(header) :]):
            issues.append(f"{path}: row {number}: {len(cells)} cells but the header has {len(header)} columns")
            continue
        cells += [""] * (len(header) - len(cells))
        rows.append([cells[i] for i in named])
        row_numbers.append(number)
    if issues:
        raise ReviewCsvError(issues)
    if not rows:
        raise ReviewCsvError([f"{path}: a header but no data rows"])
    frame = pd.DataFrame(rows, columns=[header[i] for i in named], dtype=str)
    frame[ROW] = row_numbers
    return frame


def _header_issues(path: Path, header: list[str], required_columns: Sequence[str]) -> list[str]:
    issues = []
    missing = [c for c in required_columns if c not in header]
    if missing:
        found = ", ".join(repr(h) for h in header if h) or "none"
        issues.append(f"{path}: row 1: missing required column(s) {', '.join(missing)} (found: {found})")
    seen: set[str] = set()
    for name in header:
        if name and name in seen:
            issues.append(f"{path}: row 1, column {name}: the column appears twice")
        seen.add(name)
    return issues


def normalise_decision(value: str) -> str:
    """`' KEEP '` -> `'keep'`; anything that is not keep/drop comes back unchanged (and fails validation)."""
    lowered = value.strip().lower()
    return lowered if lowered in DECISIONS else value


def validate_review(frame: pd.DataFrame, path: str | Path, sampled_keys: Collection[str] | None = None,
                    known_keys: Collection[str] | None = None) -> list[str]:
    """Row-level problems of a curator manifest, all of them: header repeated mid-file, empty or duplicated
    lot_key, unknown decision; when `known_keys` (every crawled lot) is given, lot_keys that are no lot at all
    (edited, or re-typed by a spreadsheet); and, when `sampled_keys` (the keys of manifest_auto.csv) is given,
    lot_keys that are not sampled (unless the pipeline marked the row `in_sample` = no) and sampled lot_keys
    with no row.
    """
    issues: list[str] = []
    first_row: dict[str, int] = {}
    for key, decision, row, in_sample in zip(
        frame["lot_key"], frame["decision"], frame[ROW],
        frame[HISTORY_COLUMN] if HISTORY_COLUMN in frame else [""] * len(frame),
    ):
        where = f"{path}: row {row}"
        if key.lower() == "lot_key" and decision.lower() == "decision":
            issues.append(f"{where}: repeats the header row (two files pasted together?)")
            continue
        if not key:
            issues.append(f"{where}, column lot_key: empty")
        elif key in first_row:
            issues.append(f"{where}, column lot_key: {key!r} is duplicated (first on row {first_row[key]})")
        else:
            first_row[key] = row
        if normalise_decision(decision) not in DECISIONS:
            issues.append(f"{where}, column decision: {decision!r} is not one of {', '.join(DECISIONS)}")
        if known_keys is not None and key and key not in known_keys:
            issues.append(f"{where}, column lot_key: {key!r} is not a crawled lot (edited, or re-typed by a spreadsheet? "
                          "restore it)")
        elif sampled_keys is not None and key and key not in sampled_keys and in_sample.strip().lower() != "no":
            issues.append(
                f"{where}, column lot_key: {key!r} is not in the current sample (edited, or re-typed by a spreadsheet? "
                f"restore it; if the sample shrank on purpose, set {HISTORY_COLUMN} to 'no' or delete the row)"
            )
    if sampled_keys is not None:
        for key in sorted(set(sampled_keys) - set(first_row)):
            issues.append(f"{path}: column lot_key: sampled lot {key!r} has no row (deleted or key edited? run `dvc repro` to restore it)")
    return issues


def read_curator_manifest(path: str | Path, sampled_keys: Collection[str] | None = None,
                          known_keys: Collection[str] | None = None) -> pd.DataFrame:
    """Read and validate the curator's manifest; decisions normalised to keep/drop in `decision_normalised`.

    Raises:
        ReviewCsvError: every problem found, so the curator can fix the sheet in one pass.
    """
    frame = read_review_csv(path, required_columns=("lot_key", "decision"))
    issues = validate_review(frame, path, sampled_keys, known_keys)
    if issues:
        raise ReviewCsvError(issues)
    return frame.assign(decision_normalised=frame["decision"].map(normalise_decision))
