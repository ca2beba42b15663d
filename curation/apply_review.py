"""Stage `apply_review`: the curator's decisions applied; the static contact sheet.

Reads the curator's `data/review/manifest.csv` (only its `decision` and `note` columns count; every other
column is taken from the pipeline's `data/interim/manifest_auto.csv`) and writes
`data/interim/reviewed.csv` (the kept rows) and `data/review/index.html`. A malformed curator file stops the
stage with every problem listed and nothing written. This stage never modifies the curator's file.
"""

from __future__ import annotations

import html
import logging
import re
from pathlib import Path
from urllib.parse import urlparse

import pandas as pd

from common import atomic_path, atomic_write
from curation.review_csv import ROW, read_curator_manifest, read_review_csv

log = logging.getLogger("curation.apply_review")

# The params this stage reads: none (dvc.yaml declares none; tests/test_dvc_params.py).
PARAMS: tuple[str, ...] = ()
MANIFEST_AUTO = Path("data/interim/manifest_auto.csv")
CURATOR_MANIFEST = Path("data/review/manifest.csv")
REVIEWED_CSV = Path("data/interim/reviewed.csv")
CONTACT_SHEET = Path("data/review/index.html")

AUTO_REQUIRED = ("lot_key", "artist_key", "artist", "title", "kind", "image_path", "thumb_path", "flags")
REVIEWED_COLUMNS = (
    "lot_key", "artist_key", "artist", "kind", "image_path", "title", "medium", "dimensions", "sale_title",
    "sale_date", "lot_url", "flags", "note",
)
CAPTION_MAX_CHARS = 300  # scraped titles can be 100 kB; the sheet shows the start
SAFE_THUMB = re.compile(r"^thumbs/[A-Za-z0-9._-]+\.jpg$")
CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
PAGE_STYLE = """
body{font:14px/1.35 system-ui,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}
td:first-child,th:first-child{text-align:left}
.grid{display:flex;flex-wrap:wrap;gap:10px}
figure{margin:0;width:170px;padding:4px;border:3px solid #3a3}figure.drop{border-color:#c33;opacity:.75}
figure img{max-width:160px;max-height:160px;display:block;margin:auto}
figcaption{font-size:12px;overflow-wrap:anywhere}.flags{color:#a50}.decision{font-weight:bold}
"""


def sanitize(value: object, limit: int = CAPTION_MAX_CHARS) -> str:
    """Untrusted text -> safe HTML text: control characters (NUL...) replaced, long text cut, then escaped."""
    text = CONTROL_CHARS.sub("\ufffd", "" if value is None else str(value))
    if len(text) > limit:
        text = text[:limit] + "…"
    return html.escape(text, quote=True)


def join_decisions(auto: pd.DataFrame, curator: pd.DataFrame) -> pd.DataFrame:
    """Automatic rows with the curator's normalised decision and note (rows kept only as history dropped)."""
    decisions = curator.set_index("lot_key")
    notes = decisions["note"] if "note" in decisions else pd.Series("", index=decisions.index)
    return auto.assign(
        decision=auto["lot_key"].map(decisions["decision_normalised"]),
        note=auto["lot_key"].map(notes).fillna(""),
    )


def reviewed_rows(joined: pd.DataFrame) -> pd.DataFrame:
    """The kept rows, in the columns later stages read (missing optional columns filled with "")."""
    kept = joined[joined["decision"] == "keep"]
    return kept.reindex(columns=list(REVIEWED_COLUMNS), fill_value="").reset_index(drop=True)


def _figure(row: pd.Series) -> str:
    thumb = row.get("thumb_path", "")
    image = (
        f'<img src="{html.escape(thumb, quote=True)}" alt="" loading="lazy">' if SAFE_THUMB.match(thumb) else "<p>(no image)</p>"
    )
    lot_url = str(row.get("lot_url", ""))
    key = sanitize(row["lot_key"])
    if urlparse(lot_url).scheme in ("http", "https"):
        key = f'<a href="{sanitize(lot_url, limit=len(lot_url))}" rel="noopener noreferrer">{key}</a>'
    flags = f'<br><span class="flags"><bdi>{sanitize(row["flags"])}</bdi></span>' if row["flags"] else ""
    note = f"<br><i><bdi>{sanitize(row['note'])}</bdi></i>" if row["note"] else ""
    decision = "keep" if row["decision"] == "keep" else "drop"
    return (
        f'<figure class="{decision}">{image}<figcaption>{key}<br><bdi>{sanitize(row["title"])}</bdi>{flags}{note}'
        f'<br><span class="decision">{decision}</span></figcaption></figure>'
    )


def render_contact_sheet(joined: pd.DataFrame) -> str:
    """The whole HTML page: kept/dropped counts per artist, then each artist's thumbnails. No scripts."""
    ordered = joined.assign(_sort=joined["artist"].str.casefold()).sort_values(["_sort", "artist", "lot_key"], kind="stable")
    counts = ordered.groupby(["_sort", "artist"], sort=True)["decision"].agg(
        kept=lambda d: int((d == "keep").sum()), dropped=lambda d: int((d != "keep").sum())
    )
    count_rows = "".join(
        f'<tr><td><a href="#artist-{i}"><bdi>{sanitize(artist)}</bdi></a></td><td>{r.kept}</td><td>{r.dropped}</td>'
        f"<td>{r.kept + r.dropped}</td></tr>"
        for i, ((_, artist), r) in enumerate(counts.iterrows())
    )
    total = f"<tr><th>Total</th><th>{counts['kept'].sum()}</th><th>{counts['dropped'].sum()}</th><th>{len(joined)}</th></tr>"
    sections = []
    for i, ((_, artist), group) in enumerate(ordered.groupby(["_sort", "artist"], sort=True)):
        figures = "".join(_figure(row) for _, row in group.iterrows())
        sections.append(f'<h2 id="artist-{i}"><bdi>{sanitize(artist)}</bdi></h2><div class="grid">{figures}</div>')
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        "<meta http-equiv=\"Content-Security-Policy\" content=\"script-src 'none'; object-src 'none'; base-uri 'none'; form-action 'none'\">"
        f"<title>Review contact sheet</title><style>{PAGE_STYLE}</style></head><body>"
        "<h1>Review contact sheet</h1><p>Decisions from data/review/manifest.csv; edit them there and rerun "
        "<code>dvc repro</code>.</p>"
        f"<table><tr><th>Artist</th><th>kept</th><th>dropped</th><th>total</th></tr>{count_rows}{total}</table>"
        f"{''.join(sections)}</body></html>\n"
    )


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    auto = read_review_csv(MANIFEST_AUTO, required_columns=AUTO_REQUIRED).drop(columns=ROW)
    curator = read_curator_manifest(CURATOR_MANIFEST, sampled_keys=set(auto["lot_key"]))
    joined = join_decisions(auto, curator)
    reviewed = reviewed_rows(joined)
    if reviewed.empty:
        log.warning("%s: every row is dropped; the images stage will have nothing to convert", CURATOR_MANIFEST)
    page = render_contact_sheet(joined)
    with atomic_path(REVIEWED_CSV) as tmp:
        reviewed.to_csv(tmp, index=False, lineterminator="\n")
    with atomic_write(CONTACT_SHEET) as fh:
        fh.write(page)
    log.info("%d of %d rows kept -> %s; contact sheet %s", len(reviewed), len(joined), REVIEWED_CSV, CONTACT_SHEET)


if __name__ == "__main__":
    main()
