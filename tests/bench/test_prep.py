"""bench/prep.py on a few small JPEGs: every method gets a row, the outputs agree with plain Pillow."""

from __future__ import annotations

from bench import prep
from tests.bench.conftest import table_rows


def test_prep_benchmark_rows_ratio_and_goal(record_file):
    text = prep.main(["--sides", "300,1500", "--count", "3", "--size", "32", "--rounds", "1", "--workers", "2",
                      "--record-to", str(record_file)])
    for side in ("300 px JPEG", "1500 px JPEG"):
        rows = table_rows(text, side)
        assert [r[1].split(" (")[0] for r in rows] == ["plain Pillow", "project, no draft, 1 thread",
                                                        "project, draft, 1 thread", "project, process pool",
                                                        "project stage"]
        assert rows[0][4] == "1.00"  # the plain row is the reference
        assert all(float(r[6]) < 4.0 for r in rows)  # draft decoding changes pixels only slightly
        assert all(float(r[5]) > 0 for r in rows)  # CPU ms per image, children of the process pool included
    assert "prep ≥ 3.5× plain Pillow on 1500-px JPEGs" in text
    for side in ("300 px JPEG, facts", "1500 px JPEG, facts"):
        (row,) = table_rows(text, side)
        assert float(row[1]) > 0 and row[4] == "0"  # the cached pass decoded nothing
    assert "## Image preparation" in record_file.read_text(encoding="utf-8")


def test_plain_pillow_and_the_project_agree_without_draft(tmp_path):
    from common import load_params
    params = load_params()
    path = prep.write_jpegs(tmp_path, params["demo"], str(params["scrape"]["start"]), 400, 1)[0]
    plain = prep.plain_pillow(path, 48)
    project = prep.project_file(path, 48, "shortest-side-then-centre-crop", draft=False)
    assert plain.shape == project.shape == (48, 48, 3)
    assert (plain == project).all()
