"""Stage `select`: the `select.n_artists` most prolific artists by number of eligible works.

Ranking: eligible works descending, ties broken by artist_key ascending (deterministic).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from common import atomic_path, load_params
from curation.eligibility import artist_life_dates, eligible_mask

log = logging.getLogger("curation.select_artists")

# The params this stage reads (dvc.yaml declares exactly these; tests/test_dvc_params.py).
PARAMS = ("clean.two_d_kinds", "select.n_artists")
LOTS_PARQUET = Path("data/interim/lots.parquet")
ARTISTS_CSV = Path("data/interim/artists.csv")


def rank_artists(lots: pd.DataFrame, two_d_kinds: Sequence[str], n_artists: int) -> pd.DataFrame:
    """The artists table: rank, artist_key, artist, birth, death, n_eligible, n_<kind> per 2-D kind.

    Raises:
        ValueError: no lot is eligible.
    """
    eligible = lots[eligible_mask(lots, two_d_kinds)]
    if eligible.empty:
        raise ValueError(f"{LOTS_PARQUET}: no eligible works (2-D kinds {list(two_d_kinds)}, no qualifier, with an image)")
    per_kind = pd.crosstab(eligible["artist_key"], eligible["kind"]).reindex(columns=list(two_d_kinds), fill_value=0)
    per_kind.columns = [f"n_{kind}" for kind in per_kind.columns]
    table = per_kind.assign(n_eligible=per_kind.sum(axis=1)).reset_index()
    table = table.sort_values(["n_eligible", "artist_key"], ascending=[False, True], kind="stable").head(n_artists)
    if len(table) < n_artists:
        log.warning("only %d artists have eligible works; select.n_artists is %d", len(table), n_artists)
    names = eligible.groupby("artist_key")["artist"].first()
    dates = artist_life_dates(lots[lots["artist_key"].isin(table["artist_key"])])
    table = table.assign(
        rank=range(1, len(table) + 1),
        artist=table["artist_key"].map(names),
        birth=table["artist_key"].map(dates["birth"]).astype("Int64"),
        death=table["artist_key"].map(dates["death"]).astype("Int64"),
    )
    kind_columns = [f"n_{kind}" for kind in two_d_kinds]
    return table[["rank", "artist_key", "artist", "birth", "death", "n_eligible", *kind_columns]].reset_index(drop=True)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    params = load_params(keys=PARAMS)
    two_d_kinds = params["clean"]["two_d_kinds"]
    n_artists = int(params["select"]["n_artists"])
    table = rank_artists(pd.read_parquet(LOTS_PARQUET), two_d_kinds, n_artists)
    with atomic_path(ARTISTS_CSV) as tmp:
        table.to_csv(tmp, index=False, lineterminator="\n")
    log.info("%d artists -> %s (eligible works %d..%d)", len(table), ARTISTS_CSV,
             table["n_eligible"].min(), table["n_eligible"].max())


if __name__ == "__main__":
    main()
