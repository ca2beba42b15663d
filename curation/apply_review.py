"""Stage `apply_review`: the curator's decisions applied; the static contact sheet.

Reads the curator's `data/review/manifest.csv` (only its `decision` and `note` columns count; every other
column is taken from the pipeline's `data/interim/manifest_auto.csv`) and writes
`data/interim/reviewed.csv` (the kept rows) and the contact sheet: `data/review/index.html` (kept / dropped /
total per artist, each artist linked) and one page per artist, `data/review/sheet/artist-NNN.html`, with the
thumbnails and, on each, the row of `data/review/manifest.csv` that holds its decision (at 12,500 works a
single page would hold 12,500 images). A malformed curator file stops the stage with every problem listed and
nothing written; so does a file that lost decisions the review app's journal (`data/review/journal.jsonl`,
curation/review_journal.py) recorded later than the row was written (a spreadsheet saved an older copy): the
stage names each and how to restore or dismiss it, and never picks one silently. This stage never modifies the
curator's file.
"""

from __future__ import annotations

import html
import logging
import re
import shutil
import tempfile
from pathlib import Path
from urllib.parse import urlparse

import pandas as pd

from common import atomic_path, atomic_write
from curation.review_csv import ROW, ReviewCsvError, read_curator_manifest, read_review_csv
from curation.review_journal import JOURNAL, Entry, describe, lost_decisions, read_journal

log = logging.getLogger("curation.apply_review")

# The params this stage reads: none (dvc.yaml declares none; tests/test_dvc_params.py).
PARAMS: tuple[str, ...] = ()
MANIFEST_AUTO = Path("data/interim/manifest_auto.csv")
CURATOR_MANIFEST = Path("data/review/manifest.csv")
REVIEWED_CSV = Path("data/interim/reviewed.csv")
CONTACT_SHEET = Path("data/review/index.html")
ARTIST_PAGES = Path("data/review/sheet")  # one page per artist; thumbnails are ../thumbs/...

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
figcaption{font-size:12px;overflow-wrap:anywhere}.flags{color:#a50}.decision{font-weight:bold}.row{color:#555}
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
        csv_row=auto["lot_key"].map(decisions[ROW]),
    )


def check_journal(curator: pd.DataFrame, journal: list[Entry]) -> None:
    """Raises ReviewCsvError naming every decision of the journal that the curator's file lost."""
    rows = curator.assign(_row=curator[ROW].astype(str)).to_dict("records")
    lost = lost_decisions(journal, rows)
    if lost:
        raise ReviewCsvError([describe(item, CURATOR_MANIFEST, JOURNAL) for item in lost] + [
            "restore them: `make review` shows them (one click restores), or `python -m curation.review_app "
            "--restore`; to keep the file's values instead: `python -m curation.review_app --keep-file`"])


def reviewed_rows(joined: pd.DataFrame) -> pd.DataFrame:
    """The kept rows, in the columns later stages read (missing optional columns filled with "")."""
    kept = joined[joined["decision"] == "keep"]
    return kept.reindex(columns=list(REVIEWED_COLUMNS), fill_value="").reset_index(drop=True)


def _row_label(csv_row: object) -> str:
    return "" if pd.isna(csv_row) else f'<span class="row">row {int(csv_row)}</span> '


def _figure(row: pd.Series) -> str:
    thumb = row.get("thumb_path", "")
    image = (
        f'<img src="../{html.escape(thumb, quote=True)}" alt="" loading="lazy">' if SAFE_THUMB.match(thumb)
        else "<p>(no image)</p>"
    )
    lot_url = str(row.get("lot_url", ""))
    key = sanitize(row["lot_key"])
    if urlparse(lot_url).scheme in ("http", "https"):
        key = f'<a href="{sanitize(lot_url, limit=len(lot_url))}" rel="noopener noreferrer">{key}</a>'
    flags = f'<br><span class="flags"><bdi>{sanitize(row["flags"])}</bdi></span>' if row["flags"] else ""
    note = f"<br><i><bdi>{sanitize(row['note'])}</bdi></i>" if row["note"] else ""
    decision = "keep" if row["decision"] == "keep" else "drop"
    return (
        f'<figure class="{decision}">{image}<figcaption>{_row_label(row["csv_row"])}{key}'
        f'<br><bdi>{sanitize(row["title"])}</bdi>{flags}{note}<br><span class="decision">{decision}</span>'
        "</figcaption></figure>"
    )


PAGE_HEAD = (
    '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
    "<meta http-equiv=\"Content-Security-Policy\" content=\"script-src 'none'; object-src 'none'; base-uri 'none'; "
    "form-action 'none'\">"
)


def _page(title: str, body: str) -> str:
    return f"{PAGE_HEAD}<title>{title}</title><style>{PAGE_STYLE}</style></head><body>{body}</body></html>\n"


def artist_page_name(index: int) -> str:
    return f"artist-{index:03d}.html"


def render_contact_sheet(joined: pd.DataFrame) -> dict[str, str]:
    """The contact sheet as {relative path: HTML}: `index.html` (counts per artist, each linked) and one page
    per artist under `sheet/` with its thumbnails, kept first then dropped. No scripts."""
    ordered = joined.assign(_sort=joined["artist"].str.casefold()).sort_values(["_sort", "artist", "lot_key"], kind="stable")
    groups = list(ordered.groupby(["_sort", "artist"], sort=True))
    pages, count_rows, kept_total = {}, [], 0
    for i, ((_, artist), group) in enumerate(groups):
        kept = int((group["decision"] == "keep").sum())
        kept_total += kept
        name = sanitize(artist)
        link = f"sheet/{artist_page_name(i)}"
        count_rows.append(f'<tr><td><a href="{link}"><bdi>{name}</bdi></a></td><td>{kept}</td>'
                          f"<td>{len(group) - kept}</td><td>{len(group)}</td></tr>")
        neighbours = " · ".join(
            [f'<a href="{artist_page_name(i - 1)}">previous artist</a>'] * (i > 0) + ['<a href="../index.html">all artists</a>']
            + [f'<a href="{artist_page_name(i + 1)}">next artist</a>'] * (i + 1 < len(groups)))
        by_decision = group.assign(_dropped=group["decision"] != "keep").sort_values("_dropped", kind="stable")
        figures = "".join(_figure(row) for _, row in by_decision.iterrows())
        pages[link] = _page(f"Review contact sheet: {name}", (
            f"<p>{neighbours}</p><h1><bdi>{name}</bdi></h1><p>{kept} kept, {len(group) - kept} dropped, {len(group)} "
            "in all. <i>row N</i> is the row of data/review/manifest.csv to edit.</p>"
            f'<div class="grid">{figures}</div>'))
    total = f"<tr><th>Total</th><th>{kept_total}</th><th>{len(joined) - kept_total}</th><th>{len(joined)}</th></tr>"
    pages["index.html"] = _page("Review contact sheet", (
        "<h1>Review contact sheet</h1><p>Decisions from data/review/manifest.csv; edit them there and rerun "
        "<code>dvc repro</code>. Each artist's works are on the artist's page.</p>"
        f"<table><tr><th>Artist</th><th>kept</th><th>dropped</th><th>total</th></tr>{''.join(count_rows)}{total}</table>"))
    return pages


def write_contact_sheet(pages: dict[str, str], index_path: Path = CONTACT_SHEET,
                        sheet_dir: Path = ARTIST_PAGES) -> None:
    """Replace the artist pages as a whole (built in a temporary folder, then renamed), then the index."""
    sheet_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".sheet-", dir=sheet_dir.parent))
    staging.chmod(0o755)  # mkdtemp makes 0700; the pages are ordinary readable files
    for relative, text in pages.items():
        if relative.startswith(f"{sheet_dir.name}/"):
            (staging / Path(relative).name).write_text(text, encoding="utf-8")
    old = sheet_dir.with_name(f".{sheet_dir.name}-old")
    shutil.rmtree(old, ignore_errors=True)
    if sheet_dir.exists():
        sheet_dir.rename(old)
    staging.rename(sheet_dir)
    shutil.rmtree(old, ignore_errors=True)
    with atomic_write(index_path) as fh:
        fh.write(pages["index.html"])


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    auto = read_review_csv(MANIFEST_AUTO, required_columns=AUTO_REQUIRED).drop(columns=ROW)
    # the journal before the file: the review app journals a decision, then writes the file, so a decision it
    # saves meanwhile is listed as lost only if both reads fall between its two writes (a few milliseconds)
    journal = read_journal(JOURNAL)
    curator = read_curator_manifest(CURATOR_MANIFEST, sampled_keys=set(auto["lot_key"]))
    check_journal(curator, journal)
    joined = join_decisions(auto, curator)
    reviewed = reviewed_rows(joined)
    if reviewed.empty:
        log.warning("%s: every row is dropped; the images stage will have nothing to convert", CURATOR_MANIFEST)
    pages = render_contact_sheet(joined)
    with atomic_path(REVIEWED_CSV) as tmp:
        reviewed.to_csv(tmp, index=False, lineterminator="\n")
    write_contact_sheet(pages)
    log.info("%d of %d rows kept -> %s; contact sheet %s (%d artist pages in %s)", len(reviewed), len(joined),
             REVIEWED_CSV, CONTACT_SHEET, len(pages) - 1, ARTIST_PAGES)


if __name__ == "__main__":
    main()
