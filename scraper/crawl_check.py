"""Deciding whether a crawl succeeded, and reading its JSON Lines feed back.

`scrapy crawl` exits 0 even when the crawl failed (pitfalls.md §1.8), so the stage runners judge the closing
stats themselves. A feed written by a killed or resumed crawl may repeat lots and end in a half-written line:
`read_jsonl_unique` tolerates both.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

LOST_SHOWN = 20  # lost lot_keys named in the error (all are `failed` lines of the job's images.jsonl.part)


def spider_exception_count(stats: Mapping[str, Any]) -> int:
    return sum(int(value) for key, value in stats.items() if key.startswith("spider_exceptions/"))


def common_errors(stats: Mapping[str, Any]) -> list[str]:
    """Errors any crawl can have: it did not finish normally, or callbacks raised."""
    errors = []
    reason = stats.get("finish_reason")
    if reason != "finished":
        errors.append(f"finish_reason is {reason!r}, not 'finished'")
    exceptions = spider_exception_count(stats)
    if exceptions:
        errors.append(f"{exceptions} spider exception(s)")
    return errors


def lot_crawl_errors(stats: Mapping[str, Any], lots: int, min_items: int) -> list[str]:
    """Why a `christies` crawl counts as failed; empty when it succeeded.

    Failed: abnormal finish, spider exceptions, any calendar or listing request lost after retries and
    fallbacks (including robots.txt refusals), a listing that ended short of the lots its sale announced, a
    month or sale that never got an outcome, or fewer unique lots than `min_items`.
    """
    errors = common_errors(stats)
    lost = int(stats.get("christies/listing_failed", 0))
    if lost:
        errors.append(f"{lost} calendar/listing request(s) failed with no fallback left (see the failures file)")
    missing = int(stats.get("lots/missing", 0))
    if missing:
        errors.append(f"{missing} lot(s) announced by their sales but never listed (see the failures file)")
    unfinished = int(stats.get("christies/months_unfinished", 0)) + int(stats.get("christies/sales_unfinished", 0))
    if unfinished:
        errors.append(f"{unfinished} month(s)/sale(s) never listed nor recorded as failed (see the failures file)")
    if lots < min_items:
        errors.append(f"{lots} lots, fewer than the minimum {min_items}")
    return errors


def image_crawl_errors(stats: Mapping[str, Any], requested: int, lines: int, lost: Sequence[str],
                       max_lost_fraction: float) -> list[str]:
    """Why a `christies_images` crawl counts as failed: abnormal finish, spider exceptions, a requested lot
    without an output line, or more of the sample lost (`lost`: lot_keys with no stored image) than
    `max_lost_fraction` allows (params `fetch.max_lost_fraction`), the lost lots named. A few failed images
    are normal: each is reported per lot (`status: failed`) and a re-run retries only those."""
    errors = common_errors(stats)
    if lines != requested:
        errors.append(f"{lines} output lines for {requested} requested lots")
    if requested and len(lost) > max_lost_fraction * requested:
        shown = ", ".join(lost[:LOST_SHOWN]) + (f" and {len(lost) - LOST_SHOWN} more" if len(lost) > LOST_SHOWN else "")
        errors.append(f"{len(lost)} of {requested} sampled images lost ({len(lost) / requested:.1%}; "
                      f"fetch.max_lost_fraction is {max_lost_fraction:.1%}): {shown}")
    return errors


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """Every record of a JSON Lines file, in order; [] when the file does not exist.

    A half-written LAST line (a crawl killed mid-write) is skipped; a bad line anywhere else is an error.

    Raises:
        ValueError: an unreadable line before the last, or a line that is not an object (file and line named).
    """
    path = Path(path)
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8").split("\n")
    last_content = max((i for i, line in enumerate(lines) if line.strip()), default=-1)
    records = []
    for index, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            if index == last_content:
                continue
            raise ValueError(f"{path}, line {index + 1}: not JSON ({exc.msg})") from exc
        if not isinstance(record, dict):
            raise ValueError(f"{path}, line {index + 1}: not a JSON object")
        records.append(record)
    return records


def read_jsonl_unique(path: str | Path, key: str) -> list[dict[str, Any]]:
    """Records of a JSON Lines feed, first occurrence of each `key` kept, in file order (a resumed crawl may
    repeat lots; see `read_jsonl` for the half-written last line).

    Raises:
        ValueError: as `read_jsonl`, or a record without `key`.
    """
    unique: dict[Any, dict[str, Any]] = {}
    for number, record in enumerate(read_jsonl(path), start=1):
        if key not in record:
            raise ValueError(f"{path}, record {number}: no field {key!r}")
        unique.setdefault(record[key], record)
    return list(unique.values())
