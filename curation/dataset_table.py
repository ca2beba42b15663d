"""Stage `dataset_table`: the paper's Table 1 (artist, n_images, birth, death, kinds) from the final data.

Sorted by n_images descending, then artist, as the paper sorts it; a totals row last.
Birth and death come from lots.parquet: the most frequent parsed year over all the artist's lots.
"""

from __future__ import annotations

import html
import logging
from pathlib import Path

import pandas as pd

from common import atomic_path, atomic_write
from curation.eligibility import artist_life_dates

log = logging.getLogger("curation.dataset_table")

# The params this stage reads: none (dvc.yaml declares none; tests/test_dvc_params.py).
PARAMS: tuple[str, ...] = ()
LABELS_CSV = Path("data/final/labels.csv")
LOTS_PARQUET = Path("data/interim/lots.parquet")
TABLE_MD = Path("reports/dataset.md")
TABLE_CSV = Path("reports/dataset.csv")
TOTAL_LABEL = "Total"
TABLE_COLUMNS = ("artist", "n_images", "birth", "death", "kinds")


def kinds_text(kinds: pd.Series) -> str:
    """`painting (120), print (30)`: counts descending, then kind name."""
    counts = kinds.value_counts()
    ordered = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return ", ".join(f"{kind} ({count})" for kind, count in ordered)


def build_table(labels: pd.DataFrame, lots: pd.DataFrame) -> pd.DataFrame:
    """One row per artist plus a totals row.

    Raises:
        ValueError: a labelled lot_key that lots.parquet does not have.
    """
    keys = lots.set_index("lot_key")["artist_key"]
    missing = sorted(set(labels["lot_key"]) - set(keys.index))
    if missing:
        raise ValueError(f"{LABELS_CSV}: lot_key(s) not in {LOTS_PARQUET}: {', '.join(missing[:5])}")
    labelled = labels.assign(artist_key=labels["lot_key"].map(keys))
    dates = artist_life_dates(lots[lots["artist_key"].isin(labelled["artist_key"])])
    rows = []
    for artist, group in labelled.groupby("artist", sort=False):
        artist_key = group["artist_key"].iloc[0]
        rows.append(
            {
                "artist": artist,
                "n_images": len(group),
                "birth": dates.at[artist_key, "birth"],
                "death": dates.at[artist_key, "death"],
                "kinds": kinds_text(group["kind"]),
            }
        )
    table = pd.DataFrame(rows, columns=list(TABLE_COLUMNS)).sort_values(["n_images", "artist"], ascending=[False, True], kind="stable")
    total = {"artist": TOTAL_LABEL, "n_images": len(labels), "birth": pd.NA, "death": pd.NA, "kinds": kinds_text(labels["kind"])}
    table = pd.concat([table, pd.DataFrame([total])], ignore_index=True)
    for column in ("birth", "death"):
        table[column] = table[column].astype("Int64")
    return table


def markdown_cell(value: object) -> str:
    """Text safe inside a Markdown table cell: HTML-escaped, backslashes and pipes escaped, one line."""
    if value is None or value is pd.NA or (isinstance(value, float) and pd.isna(value)):
        return ""
    text = html.escape(str(value), quote=False).replace("\\", "\\\\").replace("|", "\\|")
    return " ".join(text.splitlines()).strip()


def to_markdown(table: pd.DataFrame) -> str:
    """Table 1 as a Markdown table, the totals row in bold."""
    header = "| Artist | Images | Born | Died | Kinds |\n|---|---:|---:|---:|---|\n"
    lines = []
    last = len(table) - 1
    for position, row in enumerate(table.itertuples(index=False)):
        cells = [markdown_cell(getattr(row, c)) for c in TABLE_COLUMNS]
        if position == last:  # the totals row
            cells = [f"**{cell}**" if cell else "" for cell in cells]
        lines.append("| " + " | ".join(cells) + " |")
    return f"# Dataset\n\n{int(table['n_images'].iloc[-1])} images of {last} artists.\n\n{header}" + "\n".join(lines) + "\n"


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    labels = pd.read_csv(LABELS_CSV, dtype={"lot_key": str, "artist": str, "kind": str}, keep_default_na=False)
    table = build_table(labels, pd.read_parquet(LOTS_PARQUET, columns=["lot_key", "artist_key", "birth", "death"]))
    with atomic_write(TABLE_MD) as fh:
        fh.write(to_markdown(table))
    with atomic_path(TABLE_CSV) as tmp:
        table.to_csv(tmp, index=False, lineterminator="\n")
    log.info("Table 1: %d artists, %d images -> %s, %s", len(table) - 1, int(table["n_images"].iloc[-1]), TABLE_MD, TABLE_CSV)


if __name__ == "__main__":
    main()
