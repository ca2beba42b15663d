"""Hostile edits of the curator's data/review/manifest.csv: what spreadsheets and people do to it. Each edit is
either accepted (harmless: BOM, `;`, tab, CRLF, reordered columns, decision case and spaces) with every decision
applied, or rejected by `apply_review` naming the row and column; in every case the file's bytes are left
alone by both `apply_review` and a rerun of `manifest`, and nothing that was written before is lost."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from curation import apply_review, manifest
from curation.review_csv import ReviewCsvError
from tests.reliability.conftest import write_sampled_works

CURATOR = Path("data/review/manifest.csv")
OUTPUTS = (Path("data/interim/reviewed.csv"), Path("data/review/index.html"))
KEYS = [f"www-5-{n}" for n in range(4)]
DECISIONS = {KEYS[0]: "drop", KEYS[1]: "keep", KEYS[2]: "keep", KEYS[3]: "drop"}


@pytest.fixture
def reviewed_repo(curation_repo) -> Path:
    """A sample of four lots, the manifest stage, the curator's decisions written, apply_review run once."""
    write_sampled_works(curation_repo, [(key, "a", "Artist", f"Work {n}") for n, key in enumerate(KEYS)],
                        shard="www-5", image_seed=200)
    manifest.main()
    header, *records = table()
    column = header.index("decision")
    for record in records:
        record[column] = DECISIONS[record[header.index("lot_key")]]
    write_table([header, *records])
    apply_review.main()
    return curation_repo


def table(text: str | None = None) -> list[list[str]]:
    text = CURATOR.read_bytes().decode("utf-8-sig") if text is None else text
    return list(csv.reader(io.StringIO(text, newline="")))


def write_table(rows: list[list[str]], delimiter: str = ",", newline: str = "\n", bom: bool = True) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, delimiter=delimiter, lineterminator=newline).writerows(rows)
    data = (("\ufeff" if bom else "") + buffer.getvalue()).encode("utf-8")
    CURATOR.write_bytes(data)
    return data


def put(data: bytes) -> bytes:
    CURATOR.write_bytes(data)
    return data


def with_cell(rows: list[list[str]], row: int, column: str, value: str) -> list[list[str]]:
    """A copy with one cell changed; `row` counts data rows from 0."""
    rows = [list(r) for r in rows]
    rows[row + 1][rows[0].index(column)] = value
    return rows


def reorder(rows: list[list[str]]) -> list[list[str]]:
    order = list(reversed(range(len(rows[0]))))
    return [[r[i] for i in order] for r in rows]


# name -> edit of the current table (returns the bytes written)
HARMLESS: dict[str, Callable[[list[list[str]]], bytes]] = {
    "no-bom": lambda t: write_table(t, bom=False),
    "semicolons": lambda t: write_table(t, delimiter=";"),
    "tabs": lambda t: write_table(t, delimiter="\t"),
    "crlf": lambda t: write_table(t, newline="\r\n"),
    "reordered-columns": lambda t: write_table(reorder(t)),
    "decision-case-and-spaces": lambda t: write_table(with_cell(with_cell(t, 0, "decision", " DROP "), 1,
                                                                "decision", "Keep  ")),
    "extra-column-and-blank-row": lambda t: write_table([r + ["x"] for r in t[:2]] + [[]] + [r + ["x"] for r in t[2:]]),
}

# name -> (edit, patterns the error message must contain: row number and column where there is one)
HARMFUL: dict[str, tuple[Callable[[list[list[str]]], bytes], list[str]]] = {
    "lot-key-retyped-by-excel": (lambda t: write_table(with_cell(t, 2, "lot_key", "5.00E+00")),
                                 [r"row 4, column lot_key: '5.00E\+00' is not in the current sample",
                                  r"column lot_key: sampled lot 'www-5-2' has no row"]),
    "unknown-lot-key": (lambda t: write_table(t + [with_cell(t, 0, "lot_key", "www-9-9")[1]]),
                        [r"row 6, column lot_key: 'www-9-9' is not in the current sample"]),
    "lot-key-edited": (lambda t: write_table(with_cell(t, 1, "lot_key", "www-5-1x")),
                       [r"row 3, column lot_key: 'www-5-1x'", r"sampled lot 'www-5-1' has no row"]),
    "duplicated-row": (lambda t: write_table(t + [t[1]]), [r"row 6, column lot_key: 'www-5-0' is duplicated"]),
    "unknown-decision": (lambda t: write_table(with_cell(t, 1, "decision", "mabye")),
                         [r"row 3, column decision: 'mabye' is not one of keep, drop"]),
    "empty-decision": (lambda t: write_table(with_cell(t, 3, "decision", "")), [r"row 5, column decision: ''"]),
    "second-header-row": (lambda t: write_table(t[:3] + [t[0]] + t[3:]), [r"row 4: repeats the header row"]),
    "missing-decision-column": (lambda t: write_table([r[: t[0].index("decision")] for r in t]),
                                [r"row 1: missing required column\(s\) decision"]),
    "empty-file": (lambda t: put(b""), [r"manifest\.csv: the file is empty"]),
    "header-only": (lambda t: write_table(t[:1]), [r"manifest\.csv: a header but no data rows"]),
    "binary-garbage": (lambda t: put(b"PK\x03\x04\x14\x00\x06\x00" + bytes(range(256)) * 4),
                       [r"manifest\.csv: contains NUL bytes"]),
    "not-utf8": (lambda t: put(CURATOR.read_bytes().replace(b"Work 2", "Wörk 2".encode("latin-1"))),
                 [r"manifest\.csv: line 4: not UTF-8"]),
}


def snapshot(root: Path) -> dict[Path, bytes]:
    return {path: (root / path).read_bytes() for path in OUTPUTS}


@pytest.mark.parametrize("name", list(HARMLESS))
def test_harmless_edits_are_accepted_with_every_decision_applied(reviewed_repo, name):
    edited = HARMLESS[name](table())
    apply_review.main()
    kept = pd.read_csv(reviewed_repo / OUTPUTS[0], dtype=str, keep_default_na=False)
    assert sorted(kept["lot_key"]) == sorted(k for k, d in DECISIONS.items() if d == "keep")
    manifest.main()  # nothing newly sampled: the curator's file is not touched
    assert CURATOR.read_bytes() == edited
    assert not (reviewed_repo / "data/review/history").exists()


HARMFUL_CASES = list(HARMFUL)


@pytest.mark.parametrize("name", HARMFUL_CASES)
def test_harmful_edits_are_rejected_naming_row_and_column_and_change_nothing(reviewed_repo, name):
    edit, patterns = HARMFUL[name]
    before = snapshot(reviewed_repo)
    edited = edit(table())
    with pytest.raises(ReviewCsvError) as rejected:
        apply_review.main()
    for pattern in patterns:
        assert rejected.match(pattern), f"{pattern!r} not in:\n{rejected.value}"
    assert CURATOR.read_bytes() == edited and snapshot(reviewed_repo) == before  # no decision lost, no output
    try:
        manifest.main()
    except ReviewCsvError:
        pass  # a malformed file stops the manifest stage before it writes
    assert CURATOR.read_bytes() == edited
    assert not (reviewed_repo / "data/review/history").exists()
