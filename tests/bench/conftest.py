"""Shared helpers for the benchmark smoke tests: tiny sizes, results recorded to a temporary file."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def record_file(tmp_path: Path) -> Path:
    return tmp_path / "BENCHMARKS.md"


@pytest.fixture(autouse=True)
def run_from_repo_root(monkeypatch):
    """The scripts read params.yaml relative to the repository root, as the stages do."""
    monkeypatch.chdir(REPO)


def table_rows(markdown: str, first_cell: str) -> list[list[str]]:
    """Cells of the markdown table rows whose first cell is `first_cell`."""
    rows = []
    for line in markdown.splitlines():
        if line.startswith("| "):
            cells = [cell.strip() for cell in line.strip("|").split(" | ")]
            if cells[0] == first_cell:
                rows.append(cells)
    return rows
