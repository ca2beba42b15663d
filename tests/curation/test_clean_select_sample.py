"""Stages clean, select and sample, run through their main() in a temporary repository."""

import json

import pandas as pd
import pytest

from curation import clean, sample_works, select_artists
from tests.curation.conftest import lot, write_params


def write_jsonl(path, records, tail: str = ""):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records) + tail, encoding="utf-8")


def test_clean_one_row_per_lot_with_audit_columns(repo):
    records = [
        lot("www-1-1", maker="JOAN MIRO (1893-1983)"),
        lot("www-1-2", maker="JOAN MIRÓ (1893-1983)", medium="lithograph in colours", title="Femme"),
        lot("www-1-2", maker="JOAN MIRÓ (1893-1983)", medium="lithograph in colours", title="Femme (newer copy)"),
        lot("www-1-3", maker="ATTRIBUTED TO JOHN SAMPLE (1901-1977)", image_url=None),
        lot("www-1-4", maker="Joan  Miró (b. 1893)", medium="bronze with brown patina", withdrawn=True),
    ]
    write_jsonl(repo / "data/raw/lots.jsonl", records, tail='{"lot_key": "www-1-5", "maker": "JO')  # killed mid-line
    clean.main()
    lots = pd.read_parquet(repo / "data/interim/lots.parquet").set_index("lot_key")
    assert list(lots.index) == ["www-1-1", "www-1-2", "www-1-3", "www-1-4"]
    assert lots.at["www-1-2", "title"] == "Femme (newer copy)"  # the last line of a repeated key wins
    # one artist whatever the case, spacing or accents; the accented spelling is displayed
    assert set(lots.loc[["www-1-1", "www-1-2", "www-1-4"], "artist_key"]) == {"joan-miro"}
    assert set(lots.loc[["www-1-1", "www-1-2", "www-1-4"], "artist"]) == {"Joan Miró"}
    assert lots.at["www-1-4", "birth"] == 1893 and pd.isna(lots.at["www-1-4", "death"])
    assert str(lots["birth"].dtype) == "Int64"
    assert lots.at["www-1-3", "qualifier"] == "ATTRIBUTED TO" and lots.at["www-1-3", "artist"] == "John Sample"
    assert not lots.at["www-1-3", "has_image"] and lots.at["www-1-1", "has_image"]
    assert (lots.at["www-1-2", "kind"], lots.at["www-1-2", "kind_keyword"]) == ("print", "lithograph")
    assert (lots.at["www-1-4", "kind"], lots.at["www-1-4", "kind_keyword"]) == ("sculpture", "bronze")
    assert lots.at["www-1-1", "medium"] == "oil on canvas"
    assert (lots.at["www-1-1", "height_cm"], lots.at["www-1-1", "width_cm"]) == (101.6, 76.2)
    assert lots.at["www-1-1", "dimensions"] == "40 x 30 in. (101.6 x 76.2 cm.)"
    assert lots.at["www-1-1", "artist_as_written"] == "JOAN MIRO"


def test_clean_rejects_a_bad_line_naming_file_line_and_field(repo):
    write_jsonl(repo / "data/raw/lots.jsonl", [lot("www-1-1"), {**lot("www-1-2"), "lot_key": ""}, lot("www-1-3", price_realised="USD 5")])
    with pytest.raises(clean.LotsFormatError) as error:
        clean.main()
    message = str(error.value)
    assert "lots.jsonl: line 2: field lot_key" in message and "line 3: field price_realised" in message
    assert not (repo / "data/interim/lots.parquet").exists()


def test_clean_rejects_broken_json_that_is_not_the_last_line(repo):
    path = repo / "data/raw/lots.jsonl"
    write_jsonl(path, [lot("www-1-1")])
    path.write_text(path.read_text() + '{"lot_key": \n' + json.dumps(lot("www-1-2")) + "\n")
    with pytest.raises(clean.LotsFormatError, match="line 2: not valid JSON"):
        clean.main()


def lots_for_selection():
    """Artist A: 4 eligible; B: 3 eligible; C: 3 eligible (tie with B, C sorts after B); D: only ineligible works."""
    records = [lot(f"www-a-{i}", maker="ALPHA ARTIST (1900-1950)") for i in range(3)]
    records += [lot("www-a-9", maker="ALPHA ARTIST (1900-1950)", medium="etching on paper")]
    records += [lot(f"www-c-{i}", maker="CHARLIE ARTIST (B. 1960)", medium="watercolour on paper") for i in range(3)]
    records += [lot(f"www-b-{i}", maker="BRAVO ARTIST (1800-1880)") for i in range(3)]
    records += [
        lot("www-d-1", maker="AFTER DELTA ARTIST"),
        lot("www-d-2", maker="DELTA ARTIST", medium="bronze"),
        lot("www-d-3", maker="DELTA ARTIST", image_url=None),
        lot("www-d-4", maker="DELTA ARTIST", withdrawn=True),
        lot("www-d-5", maker="DELTA ARTIST", medium="mixed media"),
    ]
    return records


def run_through_sample(repo, records):
    write_jsonl(repo / "data/raw/lots.jsonl", records)
    clean.main()
    select_artists.main()
    sample_works.main()
    return (
        pd.read_csv(repo / "data/interim/artists.csv", dtype=str, keep_default_na=False),
        pd.read_csv(repo / "data/interim/sample.csv", dtype=str, keep_default_na=False),
    )


def test_select_ranks_by_eligible_count_then_key(repo, params):
    params["select"]["n_artists"] = 3
    write_params(repo, params)
    artists, _ = run_through_sample(repo, lots_for_selection())
    assert list(artists.columns) == ["rank", "artist_key", "artist", "birth", "death", "n_eligible", "n_painting", "n_drawing", "n_print", "n_photograph"]
    assert artists["artist_key"].tolist() == ["alpha-artist", "bravo-artist", "charlie-artist"]
    first = artists.iloc[0]
    assert (first["n_eligible"], first["n_painting"], first["n_print"], first["birth"], first["death"]) == ("4", "3", "1", "1900", "1950")
    assert artists.iloc[2]["n_drawing"] == "3" and artists.iloc[2]["death"] == ""


def test_sample_is_seeded_per_artist_and_stable(repo, params):
    records = [lot(f"www-a-{i:02d}", maker="ALPHA ARTIST") for i in range(20)]
    records += [lot(f"www-b-{i:02d}", maker="BRAVO ARTIST") for i in range(2)]
    params["select"].update(n_artists=2, per_artist=5)
    write_params(repo, params)
    _, first = run_through_sample(repo, records)
    assert list(first.columns) == list(sample_works.SAMPLE_COLUMNS)
    alpha = first.loc[first["artist_key"] == "alpha-artist", "lot_key"].tolist()
    assert len(alpha) == 5 and len(set(alpha)) == 5  # without replacement
    assert first.loc[first["artist_key"] == "bravo-artist", "lot_key"].tolist() == ["www-b-00", "www-b-01"]  # all when fewer

    _, again = run_through_sample(repo, records)
    pd.testing.assert_frame_equal(first, again)  # same seed, same sample

    params["select"]["n_artists"] = 3  # another artist joins: alpha's draw must not move
    write_params(repo, params)
    _, with_charlie = run_through_sample(repo, records + [lot(f"www-c-{i}", maker="ALPHA  ARTISTE") for i in range(9)])
    assert with_charlie.loc[with_charlie["artist_key"] == "alpha-artist", "lot_key"].tolist() == alpha

    params["select"]["per_artist"] = 8  # more per artist keeps the works already drawn
    write_params(repo, params)
    _, bigger = run_through_sample(repo, records)
    assert set(alpha) <= set(bigger["lot_key"])

    params["base"]["seed"] = 1
    params["select"]["per_artist"] = 5
    write_params(repo, params)
    _, other_seed = run_through_sample(repo, records)
    assert other_seed.loc[other_seed["artist_key"] == "alpha-artist", "lot_key"].tolist() != alpha


def test_top_up_replaces_dropped_works_with_the_artists_next_ones(repo, params):
    records = [lot(f"www-a-{i:02d}", maker="ALPHA ARTIST") for i in range(9)]
    records += [lot(f"www-b-{i:02d}", maker="BRAVO ARTIST") for i in range(4)]
    params["select"].update(n_artists=2, per_artist=3, top_up=True)
    write_params(repo, params)
    _, first = run_through_sample(repo, records)  # no curator file yet: nothing to top up
    alpha = first.loc[first["artist_key"] == "alpha-artist", "lot_key"].tolist()
    bravo = first.loc[first["artist_key"] == "bravo-artist", "lot_key"].tolist()
    assert len(alpha) == len(bravo) == 3

    curator = repo / "data/review/manifest.csv"
    curator.parent.mkdir(parents=True, exist_ok=True)
    drops = {alpha[0]: "drop", alpha[2]: "DROP", bravo[0]: "drop", bravo[1]: "drop"}
    curator.write_text("lot_key,decision,note\n" + "".join(f"{key},{drops.get(key, 'keep')},\n" for key in alpha + bravo),
                       encoding="utf-8")
    _, topped = run_through_sample(repo, records)
    new_alpha = topped.loc[topped["artist_key"] == "alpha-artist", "lot_key"].tolist()
    new_bravo = topped.loc[topped["artist_key"] == "bravo-artist", "lot_key"].tolist()
    assert set(alpha) < set(new_alpha) and len(new_alpha) == 5  # 2 dropped -> 2 more; 3 not dropped
    assert set(bravo) < set(new_bravo) and len(new_bravo) == 4  # bravo runs out: 2 of 4 left
    _, again = run_through_sample(repo, records)
    pd.testing.assert_frame_equal(topped, again)  # seeded: the same replacements

    params["select"]["top_up"] = False  # off: the plain draw, whatever the curator dropped
    write_params(repo, params)
    _, plain = run_through_sample(repo, records)
    pd.testing.assert_frame_equal(plain, first)
