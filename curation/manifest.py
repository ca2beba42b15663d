"""Stage `manifest`: automatic flags per sampled work, thumbnails, and the curator's file.

Outputs: `data/interim/manifest_auto.csv` (sample + image_path, thumb_path, flags, flag_reasons,
suggested_decision) and `data/review/thumbs/<lot_key>.jpg`. Then `data/review/manifest.csv` (the curator's,
never a DVC output) is created when absent, extended (after a backup to `data/review/history/`) when the
sample holds lots it lacks, and otherwise left byte-for-byte alone. A malformed curator file stops the
stage before anything is written.

The curator's file knows its crawl: every row carries `crawl` (`crawl_id`: site, catalogue and date range).
When the crawl changes (demo → live, another date range or demo catalogue), the old file is archived to
`data/review/history/` with a one-line message, and a new one is started that carries over the decision and
note of every lot_key present in both. A file without the column (made before it existed) belongs to the
crawl that holds most of its lot_keys. Within the current crawl, a mangled lot_key stays an error.

Image facts (size, colour spread, perceptual hash) and thumbnails are cached by file content in
`data/interim/image_facts/` (a persistent output: DVC keeps it between runs), so an image is decoded once:
byte-identical files share one entry, and a re-run after the sample grows decodes only the new images.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from collections.abc import Collection, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import imagehash
import numpy as np
import pandas as pd

from common import atomic_path, atomic_write, file_sha1, load_params, progress, safe_join
from common.provenance import provenance
from curation import imaging, text
from curation.review_csv import HISTORY_COLUMN, ROW, read_curator_manifest, read_review_csv, write_review_csv

log = logging.getLogger("curation.manifest")

# The params this stage reads (dvc.yaml declares exactly these; tests/test_dvc_params.py).
PARAMS = ("review", "scrape.site", "scrape.base_url", "scrape.categories", "scrape.start", "scrape.end", "demo")
SAMPLE_CSV = Path("data/interim/sample.csv")
LOTS = Path("data/interim/lots.parquet")
IMAGES_JSONL = Path("data/raw/images.jsonl")
IMAGES_DIR = Path("data/raw/images")
REVIEW_DIR = Path("data/review")
THUMBS_DIR = REVIEW_DIR / "thumbs"
HISTORY_DIR = REVIEW_DIR / "history"
MANIFEST_AUTO = Path("data/interim/manifest_auto.csv")
FACTS_CACHE_DIR = Path("data/interim/image_facts")
FACTS_VERSION = 1  # bump when an entry's format changes; what computed it is in the key (FactsCache)
FACTS_LIBRARIES = ("Pillow", "ImageHash", "numpy", "scipy", "PyWavelets")  # decoding, resizing, hashing
CURATOR_MANIFEST = REVIEW_DIR / "manifest.csv"

THUMB_JPEG_QUALITY = 85
AUTO_COLUMNS = ("image_path", "thumb_path", "flags", "flag_reasons", "suggested_decision")
CRAWL_COLUMN = "crawl"
CURATOR_COLUMNS = (HISTORY_COLUMN, "decision", "note", CRAWL_COLUMN)
FIRST_COLUMNS = ("lot_key", "artist", "title", "decision", "note")  # a new curator file starts with these
FLAG_SEPARATOR = ";"
REASON_SEPARATOR = "; "


@dataclass(frozen=True)
class ImageFacts:
    """What the flags need from one image file; `error` set when it could not be decoded."""

    width: int = 0
    height: int = 0
    channel_spread: int = 0  # max over thumbnail pixels of (max channel - min channel)
    phash: int | None = None  # 64-bit perceptual hash
    error: str = ""


def read_fetch_log(path: Path) -> dict[str, dict[str, Any]]:
    """lot_key -> its images.jsonl record (the last line wins when a lot was fetched twice).

    Raises:
        ValueError: a line that is not a JSON object with a lot_key (file and line named).
    """
    records: dict[str, dict[str, Any]] = {}
    with path.open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}: line {number}: not valid JSON ({exc})") from exc
            if not isinstance(record, dict) or not isinstance(record.get("lot_key"), str):
                raise ValueError(f"{path}: line {number}, field lot_key: missing or not a string")
            records[record["lot_key"]] = record
    return records


def inspect_image(path: Path, thumb_target: Path, thumb_size: int) -> ImageFacts:
    """Decode `path`, write its JPEG thumbnail to `thumb_target`, and measure what the flags need."""
    try:
        decoded = imaging.decode_rgb(path, draft_box=2 * thumb_size)
    except imaging.ImageRejected as exc:
        return ImageFacts(error=str(exc))
    thumb = imaging.make_thumbnail(decoded.image, thumb_size)
    pixels = np.asarray(thumb, dtype=np.int16)
    spread = int((pixels.max(axis=2) - pixels.min(axis=2)).max())
    with atomic_path(thumb_target) as tmp:
        thumb.save(tmp, format="JPEG", quality=THUMB_JPEG_QUALITY)
    width, height = decoded.source_size
    return ImageFacts(width, height, spread, int(str(imagehash.phash(decoded.image)), 16))


def text_flags(title: str, medium: str, review: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(flag, reason) for sculpture and sketch keywords in the title or the medium."""
    flags = []
    for flag, keywords in (("likely_sculpture", review["sculpture_keywords"]), ("likely_sketch", review["sketch_keywords"])):
        for field_name, value in (("medium", medium), ("title", title)):
            keyword = text.find_keyword(value, keywords)
            if keyword:
                flags.append((flag, f"{field_name} mentions {keyword!r}"))
                break
    return flags


def image_flags(facts: ImageFacts, review: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(flag, reason) from the decoded image: unreadable, tiny, grayscale."""
    if facts.error:
        return [("unreadable", facts.error)]
    flags = []
    if min(facts.width, facts.height) < int(review["min_side"]):
        flags.append(("tiny", f"{facts.width}x{facts.height} px, short side < {review['min_side']}"))
    if facts.channel_spread <= int(review["grayscale_tolerance"]):
        flags.append(("grayscale", f"channel spread {facts.channel_spread} <= {review['grayscale_tolerance']}"))
    return flags


def suggest_decision(flags: Sequence[tuple[str, str]], drop_flags: Sequence[str]) -> str:
    """Drop when any flag is one of `drop_flags`; the others (e.g. grayscale photographs) only inform."""
    return "drop" if any(flag in drop_flags for flag, _ in flags) else "keep"


def near_duplicates(hashes: Sequence[int | None], lot_keys: Sequence[str], max_distance: int) -> dict[int, str]:
    """Row index -> reason, for every row whose phash is within `max_distance` of an earlier row's.

    The first row of a group stays unflagged; each later one names the earliest row it matches.
    """
    known = np.array([h if h is not None else 0 for h in hashes], dtype=np.uint64)
    present = np.array([h is not None for h in hashes])
    found: dict[int, str] = {}
    for i in range(1, len(hashes)):
        if not present[i]:
            continue
        distances = np.bitwise_count(known[:i] ^ known[i])
        matches = np.flatnonzero(present[:i] & (distances <= max_distance))
        if matches.size:
            j = int(matches[0])
            found[i] = f"phash distance {int(distances[j])} to {lot_keys[j]}"
    return found


def _image_location(lot_key: str, fetch: Mapping[str, dict[str, Any]], images_dir: Path) -> tuple[str, Path | None, str]:
    """(image_path as recorded, resolved file or None, why there is none)."""
    record = fetch.get(lot_key)
    if record is None:
        return "", None, "not in images.jsonl (not fetched)"
    image_path = record.get("image_path") or ""
    if not image_path:
        return "", None, f"fetch {record.get('status') or 'failed'}: {record.get('reason') or 'no file'}"
    try:
        return image_path, safe_join(images_dir, image_path), ""
    except ValueError:
        return image_path, None, f"unsafe image_path {image_path!r}"


class FactsCache:
    """`inspect_image` once per file content: entries `<sha1>-t<thumb size>-v<version>-<code>.json` (the facts)
    and `.jpg` (the thumbnail, absent when the image could not be decoded) in `directory`, where <code> hashes
    what computes them (common/provenance.py): this module's import closure in curation/ by syntax tree, and the
    versions of the imaging libraries. A change to either is a miss, not a stale fact.

    The JSON is written last, so an entry is complete or absent; an unreadable entry is recomputed.
    """

    def __init__(self, directory: Path, thumb_size: int):
        self.directory, self.thumb_size = directory, thumb_size
        origin = json.dumps(provenance(("curation.manifest",), FACTS_LIBRARIES), sort_keys=True)
        self.code = hashlib.sha256(origin.encode()).hexdigest()[:12]
        self.hits = self.misses = 0

    def facts(self, file_path: Path, thumb_target: Path) -> ImageFacts:
        """The image's facts, its thumbnail written to `thumb_target` (unless it is unreadable)."""
        entry = self.directory / f"{file_sha1(file_path)}-t{self.thumb_size}-v{FACTS_VERSION}-{self.code}"
        facts = self._read(entry)
        if facts is not None:
            self.hits += 1
            if not facts.error:
                with atomic_path(thumb_target) as tmp:
                    shutil.copyfile(entry.with_suffix(".jpg"), tmp)
            return facts
        self.misses += 1
        facts = inspect_image(file_path, thumb_target, self.thumb_size)
        if not facts.error:
            with atomic_path(entry.with_suffix(".jpg")) as tmp:
                shutil.copyfile(thumb_target, tmp)
        with atomic_write(entry.with_suffix(".json")) as fh:
            json.dump(asdict(facts), fh)
        return facts

    def _read(self, entry: Path) -> ImageFacts | None:
        path = entry.with_suffix(".json")
        if not path.is_file():
            return None
        try:
            facts = ImageFacts(**json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError) as exc:
            log.warning("ignoring unreadable cache entry %s (%s)", path, exc)
            return None
        if not facts.error and not entry.with_suffix(".jpg").is_file():
            return None
        return facts


def build_auto_manifest(sample: pd.DataFrame, fetch: Mapping[str, dict[str, Any]], images_dir: Path, thumbs_dir: Path,
                        review: Mapping[str, Any], cache: FactsCache) -> pd.DataFrame:
    """The sample plus image_path, thumb_path, flags, flag_reasons, suggested_decision; thumbnails written."""
    image_paths, thumb_paths, row_flags, hashes = [], [], [], []
    for row in progress(sample.itertuples(index=False), desc="manifest: images", total=len(sample), unit="img"):
        image_path, file_path, missing_reason = _image_location(row.lot_key, fetch, images_dir)
        flags = text_flags(row.title, row.medium, review)
        facts = None
        if file_path is None and not image_path:
            flags.insert(0, ("no_image", missing_reason))
        elif file_path is None or not file_path.is_file():
            flags.insert(0, ("unreadable", missing_reason or f"missing file {image_path}"))
        else:
            thumb_target = safe_join(thumbs_dir, f"{row.lot_key}.jpg")
            facts = cache.facts(file_path, thumb_target)
            flags = image_flags(facts, review) + flags
        image_paths.append(image_path)
        thumb_paths.append(f"thumbs/{row.lot_key}.jpg" if facts is not None and not facts.error else "")
        hashes.append(facts.phash if facts is not None else None)
        row_flags.append(flags)
    for index, reason in near_duplicates(hashes, sample["lot_key"].tolist(), int(review["phash_max_distance"])).items():
        row_flags[index].append(("near_duplicate", reason))
    return sample.assign(
        image_path=image_paths,
        thumb_path=thumb_paths,
        flags=[FLAG_SEPARATOR.join(flag for flag, _ in flags) for flags in row_flags],
        flag_reasons=[REASON_SEPARATOR.join(f"{flag}: {reason}" for flag, reason in flags) for flags in row_flags],
        suggested_decision=[suggest_decision(flags, review["drop_flags"]) for flags in row_flags],
    )


def crawl_id(scrape: Mapping[str, Any], demo: Mapping[str, Any]) -> str:
    """Which crawl a curator file belongs to: the site (the demo catalogue by a digest of its settings, or the
    live site's host), the categories and the months crawled."""
    months = f"{scrape['start']}..{scrape['end']}"
    categories = "+".join(map(str, scrape["categories"]))
    if scrape["site"] == "demo":
        digest = hashlib.sha1(json.dumps(dict(demo), sort_keys=True).encode()).hexdigest()[:8]
        return f"demo seed {demo['seed']} ({digest}) {categories} {months}"
    return f"live {urlsplit(str(scrape['base_url'])).netloc} {categories} {months}"


def file_crawl(frame: pd.DataFrame, known_keys: Collection[str]) -> str | None:
    """The crawl a curator file says it belongs to; None for the current one when it has no `crawl` column
    (older files) and most of its lot_keys are crawled lots, "an earlier crawl" when they are not."""
    if CRAWL_COLUMN in frame and (frame[CRAWL_COLUMN] != "").any():
        values = frame.loc[frame[CRAWL_COLUMN] != "", CRAWL_COLUMN]
        return str(values.mode().iloc[0])
    known = frame["lot_key"].isin(list(known_keys)).mean() if len(frame) else 1.0
    return None if known > 0.5 else "an earlier crawl"


def curator_first(columns: Sequence[str]) -> list[str]:
    """A new curator file's column order: what a curator reads and edits first, then the rest as they come."""
    return [*FIRST_COLUMNS, *(c for c in columns if c not in FIRST_COLUMNS)]


def new_curator_manifest(auto: pd.DataFrame, crawl: str) -> pd.DataFrame:
    """The curator's file for a first review: every row in the sample, decisions as suggested."""
    frame = auto.assign(**{HISTORY_COLUMN: "yes", "decision": auto["suggested_decision"], "note": "",
                           CRAWL_COLUMN: crawl})
    return frame[curator_first(frame.columns)]


def merge_curator_manifest(existing: pd.DataFrame, auto: pd.DataFrame, crawl: str) -> pd.DataFrame:
    """Extend the curator's file to a new sample, keeping every decision and note.

    The file keeps the curator's column order (new columns go at the end). Rows in the sample come first, in
    sample order, with fresh automatic columns; a lot already reviewed keeps its `decision`, `note` and any
    extra columns the curator added. Rows no longer sampled follow, unchanged
    except `in_sample` = no. New lots get the suggested decision and an empty note.
    """
    internal = {ROW, "decision_normalised"}
    extra_columns = [c for c in existing.columns if c not in set(auto.columns) | set(CURATOR_COLUMNS) | internal]
    kept_order = [c for c in existing.columns if c not in internal]  # the curator's own column order
    columns = [*kept_order, *(c for c in [*auto.columns, *CURATOR_COLUMNS] if c not in kept_order)]
    previous = existing.set_index("lot_key", drop=False)
    rows = []
    for record in auto.to_dict("records"):
        key = record["lot_key"]
        if key in previous.index:
            old = previous.loc[key]
            rows.append({**record, HISTORY_COLUMN: "yes", "decision": old["decision"], "note": old.get("note", ""),
                         CRAWL_COLUMN: crawl, **{c: old[c] for c in extra_columns}})
        else:
            rows.append({**record, HISTORY_COLUMN: "yes", "decision": record["suggested_decision"], "note": "",
                         CRAWL_COLUMN: crawl})
    sampled = set(auto["lot_key"])
    for record in existing.to_dict("records"):
        if record["lot_key"] not in sampled:
            rows.append({**{c: record.get(c, "") for c in columns}, HISTORY_COLUMN: "no", CRAWL_COLUMN: crawl})
    return pd.DataFrame(rows, columns=columns).fillna("")


def backup_name(history_dir: Path, now: datetime) -> Path:
    """history/manifest.<UTC timestamp>.csv, never overwriting an earlier backup."""
    stamp = now.astimezone(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    candidate = history_dir / f"manifest.{stamp}.csv"
    counter = 1
    while candidate.exists():
        candidate = history_dir / f"manifest.{stamp}.{counter}.csv"
        counter += 1
    return candidate


def save_backup(path: Path, history_dir: Path, now: datetime) -> Path:
    backup = backup_name(history_dir, now)
    with atomic_write(backup, "wb") as fh:
        fh.write(path.read_bytes())
    return backup


def update_curator_manifest(path: Path, existing: pd.DataFrame | None, auto: pd.DataFrame, history_dir: Path,
                            now: datetime, crawl: str) -> str:
    """Create, extend (after a backup) or leave alone the curator's file; returns what was done."""
    if existing is None:
        write_review_csv(path, new_curator_manifest(auto, crawl))
        return f"created {path} ({len(auto)} rows)"
    new_keys = set(auto["lot_key"]) - set(existing["lot_key"])
    if not new_keys:
        return f"{path} unchanged (no newly sampled lots)"
    backup = save_backup(path, history_dir, now)
    write_review_csv(path, merge_curator_manifest(existing, auto, crawl))
    return f"extended {path} with {len(new_keys)} new lots (previous version saved as {backup})"


def start_for_new_crawl(path: Path, old: pd.DataFrame, old_crawl: str, auto: pd.DataFrame, known_keys: Collection[str],
                        history_dir: Path, now: datetime, crawl: str) -> str:
    """Archive a curator file of another crawl and start the current crawl's, carrying over the decision and
    note of every lot_key that is also a lot of this crawl; returns the one-line message."""
    backup = save_backup(path, history_dir, now)
    carried = old[old["lot_key"].isin(list(known_keys))].drop_duplicates("lot_key")
    merged = merge_curator_manifest(carried, auto, crawl) if len(carried) else new_curator_manifest(auto, crawl)
    write_review_csv(path, merged)
    return (f"{path} belonged to {old_crawl}, not to the current crawl ({crawl}): archived as {backup}; a new file "
            f"was started with {len(auto)} rows, decisions and notes carried over for {len(carried)} lots in both")


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    params = load_params(keys=PARAMS)
    review = params["review"]
    sample = pd.read_csv(SAMPLE_CSV, dtype=str, keep_default_na=False)
    # Keys of every crawled lot: rows sampled earlier stay valid, an edited or Excel-mangled key does not
    # (it would otherwise look like a newly sampled lot and the file would be rewritten around it).
    known_keys = set(pd.read_parquet(LOTS, columns=["lot_key"])["lot_key"])
    crawl = crawl_id(params["scrape"], params["demo"])
    existing, other_crawl = None, None
    if CURATOR_MANIFEST.exists():
        unchecked = read_review_csv(CURATOR_MANIFEST, required_columns=("lot_key", "decision"))
        other_crawl = file_crawl(unchecked, known_keys)
        if other_crawl == crawl:
            other_crawl = None
        existing = unchecked if other_crawl else read_curator_manifest(CURATOR_MANIFEST, known_keys=known_keys)
    fetch = read_fetch_log(IMAGES_JSONL)
    THUMBS_DIR.mkdir(parents=True, exist_ok=True)
    FACTS_CACHE_DIR.mkdir(parents=True, exist_ok=True)
    cache = FactsCache(FACTS_CACHE_DIR, int(review["thumb_size"]))
    auto = build_auto_manifest(sample, fetch, IMAGES_DIR, THUMBS_DIR, review, cache)
    log.info("image facts: %d decoded, %d from %s", cache.misses, cache.hits, FACTS_CACHE_DIR)
    write_review_csv(MANIFEST_AUTO, auto)
    flagged = int((auto["suggested_decision"] == "drop").sum())
    log.info("%d rows -> %s (%d flagged)", len(auto), MANIFEST_AUTO, flagged)
    now = datetime.now(timezone.utc)
    if other_crawl:
        log.warning(start_for_new_crawl(CURATOR_MANIFEST, existing, other_crawl, auto, known_keys, HISTORY_DIR, now,
                                        crawl))
    else:
        log.info(update_curator_manifest(CURATOR_MANIFEST, existing, auto, HISTORY_DIR, now, crawl))


if __name__ == "__main__":
    main()
