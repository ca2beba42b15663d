"""Stage manifest: automatic flags, thumbnails, and the curator's file (created, kept, extended with a backup)."""

import json

import pandas as pd
import pytest
from PIL import Image

from curation import apply_review, manifest
from curation.review_csv import ReviewCsvError, read_review_csv, write_review_csv
from tests.curation.conftest import jpeg_bytes, pattern_image, write_params

SAMPLE_COLUMNS = ["lot_key", "artist_key", "artist", "title", "sale_title", "sale_date", "medium", "kind", "dimensions",
                  "price_realised", "currency", "image_url", "lot_url"]


def sample_row(key, title="Untitled", medium="oil on canvas"):
    return {"lot_key": key, "artist_key": "ann-a", "artist": "Ann A", "title": title, "sale_title": "Sale", "sale_date": "2019-05-16",
            "medium": medium, "kind": "painting", "dimensions": "", "price_realised": "100.0", "currency": "USD",
            "image_url": f"https://img/{key}.jpg", "lot_url": f"https://www.christies.com/en/lot/lot-{key}"}


def write_inputs(repo, rows, fetch):
    (repo / "data/interim").mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows, columns=SAMPLE_COLUMNS).to_csv(repo / "data/interim/sample.csv", index=False)
    (repo / "data/raw").mkdir(parents=True, exist_ok=True)
    (repo / "data/raw/images.jsonl").write_text("".join(json.dumps(r) + "\n" for r in fetch))
    write_lots(repo, [row["lot_key"] for row in rows])


def write_lots(repo, keys):
    """lots.parquet holds every lot ever crawled: keys only accumulate across re-samples."""
    path = repo / "data/interim/lots.parquet"
    known = pd.read_parquet(path)["lot_key"].tolist() if path.exists() else []
    pd.DataFrame({"lot_key": sorted(set(known) | set(keys))}).to_parquet(path)


def put_image(repo, relative, data):
    path = repo / "data/raw/images" / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return {"lot_key": relative.split("/")[-1].rsplit(".", 1)[0], "image_url": "u", "image_path": relative, "image_sha1": "x", "status": "downloaded", "reason": None}


@pytest.fixture
def flagged_repo(repo):
    original = jpeg_bytes(pattern_image(100, 80, seed=1))
    fetch = [
        put_image(repo, "s/www-a-1.jpg", original),
        put_image(repo, "s/www-a-2.jpg", jpeg_bytes(pattern_image(150, 120, seed=1))),  # the same print, another size
        put_image(repo, "s/www-a-3.jpg", jpeg_bytes(pattern_image(30, 20, seed=3))),
        put_image(repo, "s/www-a-4.jpg", jpeg_bytes(pattern_image(90, 90, seed=4).convert("L"))),
        put_image(repo, "s/www-a-5.jpg", original[:700]),
        {"lot_key": "www-a-6", "image_url": "u", "image_path": None, "image_sha1": None, "status": "failed", "reason": "HTTP 404"},
        put_image(repo, "s/www-a-7.jpg", jpeg_bytes(pattern_image(100, 100, seed=7))),
        put_image(repo, "s/www-a-8.jpg", original),  # byte-identical to www-a-1
        put_image(repo, "s/www-a-9.jpg", jpeg_bytes(pattern_image(100, 100, seed=9))),
    ]
    rows = [sample_row(f"www-a-{i}") for i in range(1, 10)]
    rows[6] = sample_row("www-a-7", title="Study for a portrait", medium="oil and plaster on canvas")
    write_inputs(repo, rows[:8], fetch)  # www-a-9 is held back for the re-sample test
    return repo, rows, fetch


def auto_table(repo):
    return read_review_csv(repo / "data/interim/manifest_auto.csv", ["lot_key"]).set_index("lot_key")


def test_flags_thumbnails_and_first_curator_file(flagged_repo):
    repo, _, _ = flagged_repo
    manifest.main()
    auto = auto_table(repo)
    assert list(auto.columns) == SAMPLE_COLUMNS[1:] + ["image_path", "thumb_path", "flags", "flag_reasons", "suggested_decision", "_sheet_row"]
    flags = auto["flags"].to_dict()
    assert flags["www-a-1"] == ""
    assert flags["www-a-2"] == "near_duplicate" and "to www-a-1" in auto.at["www-a-2", "flag_reasons"]
    assert flags["www-a-3"] == "tiny" and "30x20" in auto.at["www-a-3", "flag_reasons"]
    assert flags["www-a-4"] == "grayscale"
    assert flags["www-a-5"] == "unreadable" and "truncated" in auto.at["www-a-5", "flag_reasons"]
    assert flags["www-a-6"] == "no_image" and "HTTP 404" in auto.at["www-a-6", "flag_reasons"]
    assert flags["www-a-7"] == "likely_sculpture;likely_sketch"
    assert "medium mentions 'plaster'" in auto.at["www-a-7", "flag_reasons"] and "title mentions 'study'" in auto.at["www-a-7", "flag_reasons"]
    assert flags["www-a-8"] == "near_duplicate" and "phash distance 0 to www-a-1" in auto.at["www-a-8", "flag_reasons"]
    # grayscale informs but does not drop (photographs are grayscale); every other flag suggests a drop
    assert auto["suggested_decision"].to_dict() == {k: ("keep" if f in ("", "grayscale") else "drop") for k, f in flags.items()}
    assert auto.at["www-a-1", "image_path"] == "s/www-a-1.jpg" and auto.at["www-a-1", "thumb_path"] == "thumbs/www-a-1.jpg"
    assert auto.at["www-a-5", "thumb_path"] == "" and auto.at["www-a-6", "image_path"] == ""
    thumbs = sorted(p.name for p in (repo / "data/review/thumbs").iterdir())
    assert thumbs == [f"www-a-{i}.jpg" for i in (1, 2, 3, 4, 7, 8)]

    curator = read_review_csv(repo / "data/review/manifest.csv", ["lot_key", "decision", "note", "in_sample"])
    assert curator["decision"].tolist() == auto["suggested_decision"].tolist()
    assert set(curator["note"]) == {""} and set(curator["in_sample"]) == {"yes"}
    assert (repo / "data/review/manifest.csv").read_bytes().startswith(b"\xef\xbb\xbf")
    assert list(curator.columns[:5]) == ["lot_key", "artist", "title", "decision", "note"]  # what a curator edits


def test_rerun_without_new_lots_leaves_the_curator_file_alone(flagged_repo):
    repo, _, _ = flagged_repo
    manifest.main()
    path = repo / "data/review/manifest.csv"
    resaved = path.read_text(encoding="utf-8-sig").replace("\n", "\r\n")
    path.write_bytes(resaved.encode("utf-8"))  # a CRLF re-save by a spreadsheet, no BOM
    before = path.read_bytes()
    manifest.main()
    assert path.read_bytes() == before
    assert not (repo / "data/review/history").exists()


def test_resample_keeps_decisions_and_backs_up(flagged_repo):
    repo, rows, fetch = flagged_repo
    manifest.main()
    path = repo / "data/review/manifest.csv"
    curator = read_review_csv(path, ["lot_key", "decision"]).drop(columns="_sheet_row")
    curator.loc[curator["lot_key"] == "www-a-2", ["decision", "note"]] = ["KEEP", "not a duplicate: other edition"]
    curator.loc[curator["lot_key"] == "www-a-1", ["decision", "note"]] = ["drop", "=looks wrong"]
    curator["my_column"] = "mine"
    curator = curator[["decision", "my_column", *[c for c in curator.columns if c not in ("decision", "my_column")]]]
    write_review_csv(path, curator)
    before = path.read_bytes()

    write_inputs(repo, rows[1:], fetch)  # the sample changed: www-a-1 gone, www-a-9 new
    manifest.main()
    backups = list((repo / "data/review/history").iterdir())
    assert len(backups) == 1 and backups[0].name.startswith("manifest.") and backups[0].read_bytes() == before
    merged = read_review_csv(path, ["lot_key", "decision", "note", "in_sample"]).set_index("lot_key")
    assert (merged.at["www-a-2", "decision"], merged.at["www-a-2", "note"]) == ("KEEP", "not a duplicate: other edition")
    assert (merged.at["www-a-1", "decision"], merged.at["www-a-1", "note"], merged.at["www-a-1", "in_sample"]) == ("drop", "=looks wrong", "no")
    assert merged.at["www-a-9", "decision"] == "keep" and merged.at["www-a-9", "in_sample"] == "yes"
    assert merged.at["www-a-3", "decision"] == "drop" and merged.at["www-a-2", "my_column"] == "mine"
    assert merged.index.tolist()[-1] == "www-a-1"  # rows no longer sampled come last
    assert list(merged.columns[:3]) == ["decision", "my_column", "artist"]  # the curator's column order is kept

    apply_review.main()  # the merged file is valid for the next stage
    reviewed = pd.read_csv(repo / "data/interim/reviewed.csv", dtype=str, keep_default_na=False)
    assert set(reviewed["lot_key"]) == {"www-a-2", "www-a-4", "www-a-9"}  # www-a-4 is only grayscale


def count_decodes(monkeypatch):
    """Count manifest.inspect_image calls (the image decodes) while keeping its behaviour."""
    calls = []
    real = manifest.inspect_image

    def counting(path, thumb_target, thumb_size):
        calls.append(path.name)
        return real(path, thumb_target, thumb_size)

    monkeypatch.setattr(manifest, "inspect_image", counting)
    return calls


def thumbs_and_auto(repo):
    thumbs = {p.name: p.read_bytes() for p in sorted((repo / "data/review/thumbs").iterdir())}
    return thumbs, (repo / "data/interim/manifest_auto.csv").read_bytes()


def test_each_image_content_is_decoded_once_across_runs(flagged_repo, monkeypatch):
    repo, rows, fetch = flagged_repo
    decodes = count_decodes(monkeypatch)
    manifest.main()
    # 7 image files, www-a-8 byte-identical to www-a-1: 6 decodes (the truncated www-a-5 included)
    assert sorted(decodes) == ["www-a-1.jpg", "www-a-2.jpg", "www-a-3.jpg", "www-a-4.jpg", "www-a-5.jpg", "www-a-7.jpg"]
    first = thumbs_and_auto(repo)
    (repo / "data/review/thumbs/www-a-8.jpg").unlink()  # DVC empties the stage's outputs before a re-run
    (repo / "data/interim/manifest_auto.csv").unlink()

    decodes.clear()
    manifest.main()
    assert decodes == []  # everything from the cache ...
    assert thumbs_and_auto(repo) == first  # ... with the same thumbnails and flags

    write_inputs(repo, rows, fetch)  # the sample grows by www-a-9: only it is decoded
    manifest.main()
    assert decodes == ["www-a-9.jpg"]


def test_an_unreadable_cache_entry_is_recomputed(flagged_repo, monkeypatch, caplog):
    repo, _, _ = flagged_repo
    manifest.main()
    first = thumbs_and_auto(repo)
    entry = next(p for p in (repo / "data/interim/image_facts").glob("*.json")
                 if p.with_suffix(".jpg").is_file())
    entry.write_text('{"width": "not a number", "phash": [', encoding="utf-8")
    decodes = count_decodes(monkeypatch)
    manifest.main()
    assert len(decodes) == 1 and "ignoring unreadable cache entry" in caplog.text
    assert thumbs_and_auto(repo) == first
    assert json.loads(entry.read_text(encoding="utf-8"))["width"] > 0  # rewritten


def test_another_thumbnail_size_misses_the_cache(flagged_repo, monkeypatch, params):
    repo, _, _ = flagged_repo
    manifest.main()
    params["review"]["thumb_size"] = 48
    write_params(repo, params)
    decodes = count_decodes(monkeypatch)
    manifest.main()
    assert len(decodes) == 6
    assert max(Image.open(repo / "data/review/thumbs/www-a-1.jpg").size) == 48


def test_another_pillow_or_curation_code_misses_the_cache(flagged_repo, monkeypatch):
    """Image facts are keyed on what computed them: another Pillow (or an edit to the curation code, which
    goes into the same provenance) decodes every image again rather than serve the old facts."""
    import importlib.metadata

    repo, _, _ = flagged_repo
    manifest.main()
    real_version = importlib.metadata.version
    monkeypatch.setattr(importlib.metadata, "version", lambda name: "99.0" if name == "Pillow" else real_version(name))
    decodes = count_decodes(monkeypatch)
    manifest.main()
    assert len(decodes) == 6


def test_malformed_curator_file_stops_before_writing_anything(flagged_repo):
    repo, _, _ = flagged_repo
    path = repo / "data/review/manifest.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"lot_key;decision\r\nwww-a-1;keep\r\nwww-a-1;perhaps\r\n")
    before = path.read_bytes()
    with pytest.raises(ReviewCsvError) as error:
        manifest.main()
    assert "row 3, column lot_key" in str(error.value) and "row 3, column decision" in str(error.value)
    assert path.read_bytes() == before
    assert not (repo / "data/interim/manifest_auto.csv").exists()


def test_near_duplicates_name_the_earliest_match():
    hashes = [0b1111, 0b1110, None, 0b1111 << 40, 0b0111]
    found = manifest.near_duplicates(hashes, ["k0", "k1", "k2", "k3", "k4"], max_distance=1)
    assert found == {1: "phash distance 1 to k0", 4: "phash distance 1 to k0"}


def curator_file(repo):
    return read_review_csv(repo / "data/review/manifest.csv", ["lot_key"]).set_index("lot_key")


def test_the_curator_file_names_its_crawl(flagged_repo, params):
    repo, _, _ = flagged_repo
    manifest.main()
    crawl = manifest.crawl_id(params["scrape"], params["demo"])
    assert crawl.startswith("demo seed 7") and "2019-01..2019-04" in crawl
    assert set(curator_file(repo)["crawl"]) == {crawl}


def test_a_new_crawl_archives_the_old_file_and_carries_decisions_over(flagged_repo, params, caplog):
    repo, rows, fetch = flagged_repo
    manifest.main()
    path = repo / "data/review/manifest.csv"
    old = curator_file(repo)
    old.loc["www-a-1", ["decision", "note"]] = ["drop", "a copy"]
    write_review_csv(path, old.reset_index().drop(columns=["_sheet_row"]))
    before = path.read_bytes()

    params["scrape"].update(site="live", start="2019-02")  # another site and date range: another crawl
    write_params(repo, params)
    kept = [row for row in rows[:8] if row["lot_key"] in ("www-a-1", "www-a-2")]
    new_rows = kept + [sample_row(f"www-b-{i}") for i in (1, 2)]
    pd.DataFrame(new_rows, columns=SAMPLE_COLUMNS).to_csv(repo / "data/interim/sample.csv", index=False)
    pd.DataFrame({"lot_key": [row["lot_key"] for row in new_rows]}).to_parquet(repo / "data/interim/lots.parquet")
    manifest.main()

    archived = list((repo / "data/review/history").glob("manifest.*.csv"))
    assert len(archived) == 1 and archived[0].read_bytes() == before  # the old file, byte for byte
    assert "belonged to demo seed 7" in caplog.text and "carried over for 2 lots" in caplog.text
    new = curator_file(repo)
    assert sorted(new.index) == ["www-a-1", "www-a-2", "www-b-1", "www-b-2"]
    assert new.loc["www-a-1", "decision"] == "drop" and new.loc["www-a-1", "note"] == "a copy"
    assert set(new["crawl"]) == {manifest.crawl_id(params["scrape"], params["demo"])}
    apply_review.main()  # the new file is valid for the new crawl


def test_a_file_from_before_the_crawl_column_is_archived_when_its_lots_are_not_crawled(flagged_repo):
    repo, _, _ = flagged_repo
    path = repo / "data/review/manifest.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("lot_key,decision,note\nwww-old-1,keep,\nwww-old-2,drop,fake\n", encoding="utf-8")
    manifest.main()
    assert len(list((repo / "data/review/history").glob("manifest.*.csv"))) == 1
    assert "www-old-1" not in curator_file(repo).index


def test_a_mangled_key_in_the_current_crawls_file_is_still_an_error(flagged_repo):
    repo, _, _ = flagged_repo
    manifest.main()
    path = repo / "data/review/manifest.csv"
    path.write_text(path.read_text(encoding="utf-8-sig").replace("www-a-3", "WWW-A-3"), encoding="utf-8")
    with pytest.raises(ReviewCsvError, match=r"row 4, column lot_key: 'WWW-A-3' is not a crawled lot"):
        manifest.main()
    assert not (repo / "data/review/history").exists() or not list((repo / "data/review/history").iterdir())
