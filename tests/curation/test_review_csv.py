"""The curator's CSV: spreadsheet round trips accepted, damaged files rejected with row and column, nothing written."""

import pandas as pd
import pytest

from curation import apply_review
from curation.review_csv import ReviewCsvError, neutralise_cell, read_review_csv, restore_cell, write_review_csv

KEYS = ["www-1-1", "www-1-2", "www-1-3"]


def auto_frame(titles=None):
    titles = titles or ["Red", "Blue", "Green"]
    return pd.DataFrame(
        {
            "lot_key": KEYS, "artist_key": ["a", "a", "b"], "artist": ["Ann A", "Ann A", "Bob B"],
            "title": titles, "medium": "oil on canvas", "kind": "painting",
            "image_path": [f"s/{k}.jpg" for k in KEYS], "thumb_path": [f"thumbs/{k}.jpg" for k in KEYS],
            "flags": ["", "tiny", ""], "flag_reasons": ["", "tiny: 10x10 px", ""],
            "suggested_decision": ["keep", "drop", "keep"], "lot_url": [f"https://www.christies.com/en/lot/lot-{k}" for k in KEYS],
        }
    )


@pytest.fixture
def review_repo(repo):
    auto = auto_frame()
    write_review_csv(repo / "data/interim/manifest_auto.csv", auto)
    curator = auto.assign(in_sample="yes", decision=auto["suggested_decision"], note="")
    write_review_csv(repo / "data/review/manifest.csv", curator)
    return repo


def curator_path(repo):
    return repo / "data/review/manifest.csv"


def write_curator(repo, content: str | bytes):
    data = content.encode("utf-8") if isinstance(content, str) else content
    curator_path(repo).write_bytes(data)
    return data


def kept_keys(repo):
    return pd.read_csv(repo / "data/interim/reviewed.csv", dtype=str, keep_default_na=False)["lot_key"].tolist()


@pytest.mark.parametrize(
    "value", ["=SUM(A1:A3)", "+1", "-5", "@cmd", "\tlead tab", "\rcr", "'=already quoted", "''", "'", "plain", "", "it's"]
)
def test_formula_neutralisation_round_trip(value):
    written = neutralise_cell(value)
    assert not written.startswith(("=", "+", "-", "@", "\t", "\r"))
    assert restore_cell(written) == value


def test_writer_uses_bom_comma_lf_and_neutralises(tmp_path):
    path = tmp_path / "m.csv"
    write_review_csv(path, pd.DataFrame({"lot_key": ["www-1-1"], "title": ["=HYPERLINK(\"x\")"], "note": ["a,b\nc"]}))
    data = path.read_bytes()
    assert data.startswith(b"\xef\xbb\xbflot_key,title,note\n") and b"\r\n" not in data
    assert b"'=HYPERLINK" in data
    back = read_review_csv(path, ["lot_key"])
    assert back.at[0, "title"] == '=HYPERLINK("x")' and back.at[0, "note"] == "a,b\nc"


def test_untouched_manifest_applies(review_repo):
    apply_review.main()
    assert kept_keys(review_repo) == ["www-1-1", "www-1-3"]


def test_spreadsheet_round_trip_edits_are_accepted(review_repo):
    # BOM, ';' delimiter, CRLF, reordered and extra columns, header case, spaces and case in decisions
    write_curator(
        review_repo,
        "\ufeffNote;Decision;extra;LOT_KEY\r\n ok ; KEEP ;x; www-1-1 \r\n;drop;;www-1-2\r\n\r\nfine; Drop ;;www-1-3\r\n",
    )
    apply_review.main()
    assert kept_keys(review_repo) == ["www-1-1"]
    reviewed = pd.read_csv(review_repo / "data/interim/reviewed.csv", dtype=str, keep_default_na=False)
    assert reviewed.at[0, "note"] == "ok" and reviewed.at[0, "title"] == "Red"  # data columns come from manifest_auto


def test_tab_delimited_is_accepted(review_repo):
    write_curator(review_repo, "lot_key\tdecision\nwww-1-1\tkeep\nwww-1-2\tkeep\nwww-1-3\tdrop\n")
    apply_review.main()
    assert kept_keys(review_repo) == ["www-1-1", "www-1-2"]


BAD_FILES = {
    "missing column": ("lot_key,choice\nwww-1-1,keep\n", ["row 1: missing required column(s) decision"]),
    "unknown decision": (
        "lot_key,decision\nwww-1-1,keep\nwww-1-2,maybe\nwww-1-3,\n",
        ["row 3, column decision: 'maybe'", "row 4, column decision: ''"],
    ),
    "duplicated key": ("lot_key,decision\nwww-1-1,keep\nwww-1-2,keep\nwww-1-3,keep\nwww-1-1,drop\n", ["row 5, column lot_key: 'www-1-1' is duplicated (first on row 2)"]),
    "edited key": ("lot_key,decision\nwww-1-1,keep\nwww-1-9,keep\nwww-1-3,keep\n", ["row 3, column lot_key: 'www-1-9' is not in the current sample", "sampled lot 'www-1-2' has no row"]),
    "excel number": ("lot_key,decision\nwww-1-1,keep\n1.23E+05,keep\nwww-1-2,keep\nwww-1-3,keep\n", ["row 3, column lot_key: '1.23E+05'"]),
    "empty file": ("", ["the file is empty"]),
    "header only": ("\ufefflot_key,decision\r\n", ["a header but no data rows"]),
    "binary garbage": (b"PK\x03\x04\x14\x00\x06\x00\x08\x00\x00\x00!\x00\xff\xfe", ["NUL bytes"]),
    "not utf-8": ("lot_key,decision\nwww-1-1,keep\n".encode() + b"\xe9\xff\n", ["line 3: not UTF-8"]),
    "second header": ("lot_key,decision\nwww-1-1,keep\nlot_key,decision\nwww-1-2,keep\nwww-1-3,keep\n", ["row 3: repeats the header row"]),
    "extra cells": ("lot_key,decision\nwww-1-1,keep,surprise\nwww-1-2,keep\nwww-1-3,keep\n", ["row 2: 3 cells but the header has 2"]),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_damaged_manifest_is_rejected_and_nothing_is_written(review_repo, case):
    content, expected = BAD_FILES[case]
    data = write_curator(review_repo, content)
    with pytest.raises(ReviewCsvError) as error:
        apply_review.main()
    message = str(error.value)
    assert "data/review/manifest.csv" in message
    for fragment in expected:
        assert fragment in message
    assert curator_path(review_repo).read_bytes() == data  # the curator's file is never modified
    assert not (review_repo / "data/interim/reviewed.csv").exists()
    assert not (review_repo / "data/review/index.html").exists()


def test_all_row_errors_are_reported_together(review_repo):
    write_curator(review_repo, "lot_key,decision\nwww-1-1,yes\nwww-1-2,no\nwww-1-3,keep\n")
    with pytest.raises(ReviewCsvError) as error:
        apply_review.main()
    assert len(error.value.issues) == 2


def test_rows_kept_from_an_earlier_sample_are_allowed(review_repo):
    write_curator(review_repo, "lot_key,decision,in_sample\nwww-1-1,keep,yes\nwww-1-2,keep,yes\nwww-1-3,keep,yes\nwww-0-0,drop,no\n")
    apply_review.main()
    assert kept_keys(review_repo) == KEYS


def test_contact_sheet_escapes_untrusted_text(repo):
    nasty = '<script>alert("x")</script>" onerror="x\u202e\x00' + "A" * 100_000
    auto = auto_frame(titles=[nasty, "Blue", "Green"]).assign(lot_url=["javascript:alert(1)", "https://ok/\"x", "https://ok"])
    write_review_csv(repo / "data/interim/manifest_auto.csv", auto)
    write_review_csv(repo / "data/review/manifest.csv", auto.assign(decision="keep", note="<b>n</b>"))
    apply_review.main()
    index = (repo / "data/review/index.html").read_text(encoding="utf-8")
    artist_pages = sorted((repo / "data/review/sheet").glob("artist-*.html"))
    assert len(artist_pages) == index.count('href="sheet/artist-') >= 1
    page = index + "".join(path.read_text(encoding="utf-8") for path in artist_pages)
    assert "<script" not in page and "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    assert "javascript:" not in page and "onerror=\"" not in page and "\x00" not in page
    assert "<b>n</b>" not in page and "&lt;b&gt;n&lt;/b&gt;" in page
    assert 'href="https://ok/&quot;x"' in page
    assert len(page) < 50_000  # the 100 kB title is cut
    assert 'src="../thumbs/www-1-1.jpg"' in page and '<span class="row">row 2</span>' in page
    assert "<td>2</td><td>0</td><td>2</td>" in page  # Ann A: 2 kept, 0 dropped


def test_contact_sheet_is_one_page_per_artist_with_counts_links_and_csv_rows(repo):
    auto = auto_frame()
    write_review_csv(repo / "data/interim/manifest_auto.csv", auto)
    # Ann A's first work dropped by the curator; rows in the curator's file in another order than the sample
    curator = auto.assign(decision=["drop", "keep", "keep"], note="").iloc[[2, 0, 1]]
    write_review_csv(repo / "data/review/manifest.csv", curator)
    (repo / "data/review/sheet").mkdir(parents=True)
    (repo / "data/review/sheet/artist-099.html").write_text("stale page of an earlier run")
    apply_review.main()
    index = (repo / "data/review/index.html").read_text(encoding="utf-8")
    assert "<img" not in index and "<td>1</td><td>1</td><td>2</td>" in index and "<th>2</th><th>1</th><th>3</th>" in index
    pages = sorted(p.name for p in (repo / "data/review/sheet").iterdir())
    assert pages == ["artist-000.html", "artist-001.html"]  # the stale page is gone
    ann = (repo / "data/review/sheet/artist-000.html").read_text(encoding="utf-8")
    assert "Ann A" in ann and "1 kept, 1 dropped, 2 in all" in ann
    assert 'href="artist-001.html">next artist' in ann and "previous artist" not in ann
    # kept first; each work shows its row in the curator's file (header = row 1): www-1-2 is row 4, www-1-1 row 3
    assert ann.index("www-1-2") < ann.index("www-1-1")
    assert '<span class="row">row 4</span> <a href="https://www.christies.com/en/lot/lot-www-1-2"' in ann
    assert '<span class="row">row 3</span>' in ann
