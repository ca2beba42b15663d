"""bench/n2d_cost.py: one tiny case measured in its own process, and a case stopped at its time limit."""

from __future__ import annotations

from bench import n2d_cost
from tests.bench.conftest import table_rows


def test_a_tiny_case_is_timed_deterministic_and_recorded_and_a_slow_case_is_stopped(record_file):
    text = n2d_cost.main(["--cases", "300x8:3", "--record-to", str(record_file)])
    (row,) = table_rows(text, "300 × 8")
    assert row[1] == "3" and row[4] == "yes"  # the same seed gave the same assignments and manifold
    assert all(float(cell.replace(",", "")) > 0 for cell in row[2:4] + row[5:7])
    assert "N2D's UMAP + Gaussian mixture step" in record_file.read_text(encoding="utf-8")
    stopped = n2d_cost.main(["--cases", "2000000x8:3", "--case-timeout", "1", "--no-record"])
    assert "stopped after 1 s" in table_rows(stopped, "2,000,000 × 8")[0][2]
