"""Stage `sample`: `select.per_artist` eligible works per selected artist, seeded, without replacement.

Each artist draws from its own RNG, seeded from (`base.seed`, a stable hash of the artist_key), over its
eligible lots sorted by lot_key: adding or removing an artist never reshuffles another, and raising
`per_artist` keeps the works already sampled (the draw is a prefix of one fixed permutation).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from common import atomic_path, load_params
from curation.eligibility import eligible_mask

log = logging.getLogger("curation.sample_works")

# The params this stage reads (dvc.yaml declares exactly these; tests/test_dvc_params.py).
PARAMS = ("base.seed", "clean.two_d_kinds", "select.per_artist")
LOTS_PARQUET = Path("data/interim/lots.parquet")
ARTISTS_CSV = Path("data/interim/artists.csv")
SAMPLE_CSV = Path("data/interim/sample.csv")
SAMPLE_COLUMNS = (
    "lot_key", "artist_key", "artist", "title", "sale_title", "sale_date", "medium", "kind", "dimensions",
    "price_realised", "currency", "image_url", "lot_url",
)


def artist_rng(seed: int, artist_key: str) -> np.random.Generator:
    """An RNG that depends only on the seed and the artist (not on Python's salted hash())."""
    digest = int.from_bytes(hashlib.sha256(artist_key.encode("utf-8")).digest()[:8], "big")
    return np.random.default_rng([int(seed), digest])


def sample_artist(lot_keys: Sequence[str], per_artist: int, rng: np.random.Generator) -> list[str]:
    """Up to `per_artist` of `lot_keys` without replacement (all of them when fewer), sorted."""
    ordered = sorted(lot_keys)
    order = rng.permutation(len(ordered))[:per_artist]
    return sorted(ordered[i] for i in order)


def draw_sample(lots: pd.DataFrame, artist_keys: Sequence[str], two_d_kinds: Sequence[str], per_artist: int, seed: int) -> pd.DataFrame:
    """The sample table, artists in the given (rank) order, lots by lot_key within an artist."""
    eligible = lots[eligible_mask(lots, two_d_kinds)].set_index("lot_key", drop=False)
    chosen: list[str] = []
    for artist_key in artist_keys:
        keys = eligible.loc[eligible["artist_key"] == artist_key, "lot_key"].tolist()
        if not keys:
            raise ValueError(f"{ARTISTS_CSV}: artist_key {artist_key!r} has no eligible works in {LOTS_PARQUET}")
        if len(keys) < per_artist:
            log.info("%s: only %d eligible works (< %d), all taken", artist_key, len(keys), per_artist)
        chosen.extend(sample_artist(keys, per_artist, artist_rng(seed, artist_key)))
    return eligible.loc[chosen, list(SAMPLE_COLUMNS)].reset_index(drop=True)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    params = load_params(keys=PARAMS)
    seed = int(params["base"]["seed"])
    two_d_kinds = params["clean"]["two_d_kinds"]
    per_artist = int(params["select"]["per_artist"])
    artists = pd.read_csv(ARTISTS_CSV, dtype=str, keep_default_na=False)
    sample = draw_sample(pd.read_parquet(LOTS_PARQUET), artists["artist_key"].tolist(), two_d_kinds, per_artist, seed)
    with atomic_path(SAMPLE_CSV) as tmp:
        sample.to_csv(tmp, index=False, lineterminator="\n")
    log.info("%d works from %d artists -> %s", len(sample), len(artists), SAMPLE_CSV)


if __name__ == "__main__":
    main()
