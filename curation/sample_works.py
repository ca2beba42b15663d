"""Stage `sample`: `select.per_artist` eligible works per selected artist, seeded, without replacement.

Each artist draws from its own RNG, seeded from (`base.seed`, a stable hash of the artist_key), over its
eligible lots sorted by lot_key: adding or removing an artist never reshuffles another, and raising
`per_artist` keeps the works already sampled (the draw is a prefix of one fixed permutation).

With `select.top_up` (off by default and in the paper profile: paap did not), the prefix of an artist is
extended past every work the curator's `data/review/manifest.csv` marks `drop`, until `per_artist` works are
kept or pending review, or the artist runs out. Replacements are therefore the next works of the same
seeded permutation: nothing already sampled leaves, and the manifest stage adds the new works as new rows
for review without touching any decision. Each `dvc repro` tops up what the last review dropped; the new
works' automatic flags may drop some of them again, so run it until the sample stops growing.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Collection, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from common import atomic_path, load_params
from curation.eligibility import eligible_mask
from curation.review_csv import read_curator_manifest

log = logging.getLogger("curation.sample_works")

# The params this stage reads (dvc.yaml declares exactly these; tests/test_dvc_params.py).
PARAMS = ("base.seed", "clean.two_d_kinds", "select.per_artist", "select.top_up")
LOTS_PARQUET = Path("data/interim/lots.parquet")
ARTISTS_CSV = Path("data/interim/artists.csv")
SAMPLE_CSV = Path("data/interim/sample.csv")
CURATOR_MANIFEST = Path("data/review/manifest.csv")
SAMPLE_COLUMNS = (
    "lot_key", "artist_key", "artist", "title", "sale_title", "sale_date", "medium", "kind", "dimensions",
    "price_realised", "currency", "image_url", "lot_url",
)


def artist_rng(seed: int, artist_key: str) -> np.random.Generator:
    """An RNG that depends only on the seed and the artist (not on Python's salted hash())."""
    digest = int.from_bytes(hashlib.sha256(artist_key.encode("utf-8")).digest()[:8], "big")
    return np.random.default_rng([int(seed), digest])


def sample_artist(lot_keys: Sequence[str], per_artist: int, rng: np.random.Generator,
                  dropped: Collection[str] = frozenset()) -> list[str]:
    """The shortest prefix of one seeded permutation of `lot_keys` that holds `per_artist` works not in
    `dropped` (all of them when there are too few), sorted. Without drops: `per_artist` works."""
    ordered = sorted(lot_keys)
    taken, kept = [], 0
    for index in rng.permutation(len(ordered)):
        if kept == per_artist:
            break
        taken.append(ordered[index])
        kept += ordered[index] not in dropped
    return sorted(taken)


def draw_sample(lots: pd.DataFrame, artist_keys: Sequence[str], two_d_kinds: Sequence[str], per_artist: int, seed: int,
                dropped: Collection[str] = frozenset()) -> pd.DataFrame:
    """The sample table, artists in the given (rank) order, lots by lot_key within an artist; works in
    `dropped` are replaced by the next of their artist's permutation (`select.top_up`)."""
    eligible = lots[eligible_mask(lots, two_d_kinds)].set_index("lot_key", drop=False)
    chosen: list[str] = []
    for artist_key in artist_keys:
        keys = eligible.loc[eligible["artist_key"] == artist_key, "lot_key"].tolist()
        if not keys:
            raise ValueError(f"{ARTISTS_CSV}: artist_key {artist_key!r} has no eligible works in {LOTS_PARQUET}")
        drawn = sample_artist(keys, per_artist, artist_rng(seed, artist_key), dropped)
        short = len(drawn) - sum(key in dropped for key in drawn) < per_artist
        if short:
            log.info("%s: only %d eligible works not dropped (< %d), all taken", artist_key, len(drawn), per_artist)
        chosen.extend(drawn)
    return eligible.loc[chosen, list(SAMPLE_COLUMNS)].reset_index(drop=True)


def curator_drops(path: Path) -> set[str]:
    """The lot_keys the curator's file marks `drop` (none when the file does not exist yet)."""
    if not path.is_file():
        return set()
    curator = read_curator_manifest(path)
    return set(curator.loc[curator["decision_normalised"] == "drop", "lot_key"])


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    params = load_params(keys=PARAMS)
    seed = int(params["base"]["seed"])
    two_d_kinds = params["clean"]["two_d_kinds"]
    per_artist = int(params["select"]["per_artist"])
    dropped = curator_drops(CURATOR_MANIFEST) if params["select"]["top_up"] else set()
    artists = pd.read_csv(ARTISTS_CSV, dtype=str, keep_default_na=False)
    sample = draw_sample(pd.read_parquet(LOTS_PARQUET), artists["artist_key"].tolist(), two_d_kinds, per_artist, seed,
                         dropped)
    with atomic_path(SAMPLE_CSV) as tmp:
        sample.to_csv(tmp, index=False, lineterminator="\n")
    replaced = int(sample["lot_key"].isin(dropped).sum())
    log.info("%d works from %d artists -> %s%s", len(sample), len(artists), SAMPLE_CSV,
             f" ({replaced} dropped in review, topped up)" if params["select"]["top_up"] else "")


if __name__ == "__main__":
    main()
