"""bench.price_scale: the price stage on synthetic works of the mission's shape, timed and measured."""

from __future__ import annotations

from bench import price_scale
from model import price
from tests.model.test_pipeline import REPO_ROOT


def test_synthetic_works_have_the_columns_the_stage_reads():
    works, embedding = price_scale.synthetic_works(200, 5)
    assert set(price.LOT_COLUMNS + ["artist", "kind", "cluster"]) <= set(works.columns)
    assert embedding.shape == (200, 32) and works["artist"].nunique() == 5


def test_a_small_run_prints_one_row_and_records_nothing(monkeypatch, tmp_path):
    monkeypatch.chdir(REPO_ROOT)
    record = tmp_path / "BENCH.md"
    text = price_scale.main(["--works", "400", "--artists", "5", "--no-record", "--record-to", str(record)])
    assert "| 400 |" in text and not record.exists()
