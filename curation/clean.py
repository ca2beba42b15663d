"""Stage `clean`: data/raw/lots.jsonl -> data/interim/lots.parquet, one typed row per unique lot.

Every parsing decision is its own column so a curator can audit it: `artist_as_written`, `dates_raw`,
`qualifier`, `medium`, `dimensions`, `kind_keyword`.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from common import atomic_path, load_params, progress
from curation import text

log = logging.getLogger("curation.clean")

# The params this stage reads (dvc.yaml declares exactly these; tests/test_dvc_params.py).
PARAMS = ("clean.qualifiers", "clean.kind_keywords")
LOTS_JSONL = Path("data/raw/lots.jsonl")
LOTS_PARQUET = Path("data/interim/lots.parquet")

# The scraper's fields (docs/CONTRACTS.md), in contract order. Missing ones become null.
RAW_FIELDS = (
    "lot_key", "object_id", "sale_id", "sale_number", "sale_title", "sale_location", "sale_date",
    "sale_start_date", "sale_kind", "category_ids", "lot_number", "maker", "title", "description", "estimate_low",
    "estimate_high", "currency", "price_realised", "sold", "withdrawn", "lot_url", "image_url", "image_path",
    "image_sha1",
)
TEXT_FIELDS = ("maker", "title", "description")
NUMBER_FIELDS = ("estimate_low", "estimate_high", "price_realised")
FLAG_FIELDS = ("sold", "withdrawn")
PARSED_COLUMNS = (
    "artist", "artist_key", "artist_as_written", "dates_raw", "birth", "death", "qualifier", "medium",
    "dimensions", "height_cm", "width_cm", "kind", "kind_keyword", "has_image",
)


class LotsFormatError(ValueError):
    """lots.jsonl has a line that is not a valid lot record."""


def _record_problems(record: Any) -> list[str]:
    """Field-level problems of one decoded line ('field: message'), empty when valid."""
    if not isinstance(record, dict):
        return [f"(line): expected a JSON object, got {type(record).__name__}"]
    problems = []
    lot_key = record.get("lot_key")
    if not isinstance(lot_key, str) or not lot_key.strip():
        problems.append(f"lot_key: must be a non-empty string, got {lot_key!r}")
    for field in TEXT_FIELDS:
        if record.get(field) is not None and not isinstance(record[field], str):
            problems.append(f"{field}: must be a string or null, got {type(record[field]).__name__}")
    for field in NUMBER_FIELDS:
        value = record.get(field)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            problems.append(f"{field}: must be a number or null, got {value!r}")
    for field in FLAG_FIELDS:
        if record.get(field) is not None and not isinstance(record[field], bool):
            problems.append(f"{field}: must be true/false, got {record[field]!r}")
    return problems


def iter_jsonl_records(path: Path) -> Iterator[dict[str, Any]]:
    """Yield the records of a JSON Lines file, validating each.

    A last line that does not parse and has no trailing newline is a crawl killed mid-write: it is skipped
    with a warning. Any other bad line stops the stage with the file, line number and field.
    """
    with path.open("rb") as fh:
        lines = fh.read().split(b"\n")
    ends_with_newline = lines[-1] == b""
    if ends_with_newline:
        lines.pop()
    errors: list[str] = []
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            if number == len(lines) and not ends_with_newline:
                log.warning("%s: line %d is an incomplete last line (crawl interrupted?); skipped", path, number)
                continue
            errors.append(f"{path}: line {number}: not valid JSON ({exc})")
            continue
        problems = _record_problems(record)
        if problems:
            errors.extend(f"{path}: line {number}: field {p}" for p in problems)
            continue
        yield record
    if errors:
        raise LotsFormatError("\n".join(errors))


def parse_lot(record: Mapping[str, Any], qualifiers: Sequence[str], kind_keywords: Mapping[str, Sequence[str]]) -> dict[str, Any]:
    """The parsing columns of one lot (artist display name is settled later, across lots)."""
    maker = record.get("maker") or ""
    title = record.get("title") or ""
    description = record.get("description") or ""
    parsed_maker = text.parse_maker(maker, qualifiers)
    all_keywords = [kw for keywords in kind_keywords.values() for kw in keywords]
    medium = text.find_medium(description, maker, title, all_keywords)
    kind, kind_keyword = text.classify_kind(medium, kind_keywords)
    dims = text.parse_dimensions(description)
    return {
        "artist_as_written": parsed_maker.name,
        "artist_key": text.fold_key(parsed_maker.name),
        "dates_raw": parsed_maker.dates_raw,
        "birth": parsed_maker.birth,
        "death": parsed_maker.death,
        "qualifier": parsed_maker.qualifier,
        "medium": medium,
        "dimensions": dims.line,
        "height_cm": dims.height_cm,
        "width_cm": dims.width_cm,
        "kind": kind,
        "kind_keyword": kind_keyword,
        "has_image": bool(record.get("image_url")),
    }


def choose_display_names(names: pd.Series, keys: pd.Series) -> dict[str, str]:
    """One display name per artist_key.

    Among the spellings of a key, prefer one with accents (information the unaccented spelling lost),
    then the most frequent, then the alphabetically first: deterministic, and "Joan Miró" beats "JOAN MIRO".
    """
    chosen: dict[str, str] = {}
    counts = Counter(zip(keys, (text.display_name(n) for n in names)))
    for (key, name), count in sorted(counts.items(), key=lambda kv: (kv[0][0], -(not kv[0][1].isascii()), -kv[1], kv[0][1])):
        chosen.setdefault(key, name)
    return chosen


def build_lot_table(records: list[dict[str, Any]], clean_params: Mapping[str, Any]) -> pd.DataFrame:
    """Typed table of unique lots: the last line of a repeated lot_key wins (a resumed crawl's newer copy)."""
    unique = {record["lot_key"]: record for record in records}
    if len(unique) < len(records):
        log.info("%d duplicate lot_key lines collapsed", len(records) - len(unique))
    rows = []
    for lot_key in progress(sorted(unique), desc="clean: parse lots", unit="lot"):
        record = unique[lot_key]
        raw = {field: record.get(field) for field in RAW_FIELDS}
        extra = {k: v for k, v in record.items() if k not in RAW_FIELDS}
        rows.append({**raw, **extra, **parse_lot(record, clean_params["qualifiers"], clean_params["kind_keywords"])})
    frame = pd.DataFrame(rows, columns=_column_order(rows))
    names = choose_display_names(frame["artist_as_written"], frame["artist_key"])
    frame["artist"] = frame["artist_key"].map(names).fillna("")
    return _typed(frame)


def _column_order(rows: list[dict[str, Any]]) -> list[str]:
    extras = sorted({k for row in rows for k in row} - set(RAW_FIELDS) - set(PARSED_COLUMNS))
    return [*RAW_FIELDS, *extras, *PARSED_COLUMNS]


def _typed(frame: pd.DataFrame) -> pd.DataFrame:
    for field in ("birth", "death"):
        frame[field] = pd.array(frame[field], dtype="Int64")
    for field in (*NUMBER_FIELDS, "height_cm", "width_cm"):
        frame[field] = pd.array(frame[field], dtype="Float64")
    for field in (*FLAG_FIELDS, "has_image"):
        frame[field] = frame[field].fillna(False).astype(bool)
    for field in (*TEXT_FIELDS, "artist", "artist_key", "qualifier", "medium", "dimensions", "kind", "kind_keyword"):
        frame[field] = frame[field].fillna("").astype(str)
    return frame


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    clean_params = load_params(keys=PARAMS)["clean"]
    records = list(iter_jsonl_records(LOTS_JSONL))
    if not records:
        raise LotsFormatError(f"{LOTS_JSONL}: no lot records")
    table = build_lot_table(records, clean_params)
    with atomic_path(LOTS_PARQUET) as tmp:
        table.to_parquet(tmp, index=False)
    log.info("%d lots -> %s (%d with an artist, %d with an image)", len(table), LOTS_PARQUET,
             int((table["artist_key"] != "").sum()), int(table["has_image"].sum()))


if __name__ == "__main__":
    main()
