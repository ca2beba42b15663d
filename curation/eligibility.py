"""Which lots count as works for the dataset: shared by the `select` and `sample` stages."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd


def eligible_mask(lots: pd.DataFrame, two_d_kinds: Sequence[str]) -> pd.Series:
    """True for lots that are an artist's own 2-D work with an image.

    Excluded: a qualifier (AFTER, ATTRIBUTED TO, CIRCLE OF ...: not the artist's own hand), a kind outside
    `two_d_kinds`, no image, a withdrawn lot, or no artist at all.
    """
    return (
        (lots["qualifier"] == "")
        & lots["kind"].isin(list(two_d_kinds))
        & lots["has_image"].astype(bool)
        & ~lots["withdrawn"].astype(bool)
        & (lots["artist_key"] != "")
    )


def artist_life_dates(lots: pd.DataFrame) -> pd.DataFrame:
    """Birth and death per artist_key: the most frequent parsed year over all the artist's lots.

    Ties go to the earliest year; artists whose lines never carried a year get <NA>.
    Returns a frame indexed by artist_key with Int64 columns `birth`, `death`.
    """

    def mode(values: pd.Series) -> object:
        counts = values.dropna().value_counts()
        if counts.empty:
            return pd.NA
        top = counts[counts == counts.max()].index
        return int(min(top))

    grouped = lots.groupby("artist_key", sort=True)
    return pd.DataFrame({"birth": grouped["birth"].agg(mode), "death": grouped["death"].agg(mode)}).astype("Int64")
