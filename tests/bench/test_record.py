"""bench/_record.py: tables, the machine line, and appending sections atomically."""

from __future__ import annotations

import argparse
import datetime as dt

import pytest

from bench import _record


def test_markdown_table_formats_and_escapes_cells():
    table = _record.markdown_table(["a|b", "n"], [["x|y", 1234.5], [None, 7]])
    lines = table.splitlines()
    assert lines[0] == "| a\\|b | n |"
    assert lines[2] == "| x\\|y | 1,234.5 |"
    assert lines[3] == "| – | 7 |"


def test_markdown_table_rejects_a_short_row():
    with pytest.raises(ValueError, match="2 headers"):
        _record.markdown_table(["a", "b"], [["only one"]])


def test_cpu_model_reads_the_model_name(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: Test CPU 9000 @ 3GHz\nflags\t: avx\n")
    assert _record.cpu_model(cpuinfo) == "Test CPU 9000 @ 3GHz"


def test_command_line_carries_the_allocator_variables(monkeypatch):
    monkeypatch.setenv("MALLOC_MMAP_MAX_", "0")
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)
    assert _record.command_line("bench.train", ["--sizes", "64,128"]) == \
        "MALLOC_MMAP_MAX_=0 python -m bench.train --sizes 64,128"
    assert "MALLOC_MMAP_MAX_=0" in _record.machine_info()["malloc environment"]


def test_sections_are_appended_after_the_header(tmp_path):
    target = tmp_path / "docs" / "BENCHMARKS.md"
    when = dt.datetime(2026, 1, 2, 3, 4, tzinfo=dt.timezone.utc)
    for title in ("First", "Second"):
        _record.append_section(target, _record.section(title, "python -m x", {"cpu": "c"}, "body", now=when))
    text = target.read_text(encoding="utf-8")
    assert text.startswith("# Benchmarks")
    assert text.index("## First — 2026-01-02 03:04 UTC") < text.index("## Second")
    assert "Command: `python -m x`" in text and "Machine: cpu c" in text
    assert not list(target.parent.glob("*.part"))  # the temporary file was renamed away


def test_publish_respects_no_record(tmp_path):
    target = tmp_path / "B.md"
    args = argparse.Namespace(no_record=True, record_to=target)
    text = _record.publish(args, "bench.x", [], "T", "body")
    assert "## T" in text and not target.exists()
