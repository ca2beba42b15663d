"""bench/pipeline.py: stage order from dvc.yaml, stage times from DVC's output, a tiny run of the cmds runner."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from bench import pipeline
from tests.bench.conftest import table_rows

DVC_YAML = textwrap.dedent("""\
    stages:
      second:
        cmd: {python} -c "open('b.txt','w').write(open('out/a.txt').read() * 2)"
        deps: [out/a.txt]
        outs: [b.txt]
      first:
        cmd: {python} -c "import os; os.makedirs('out', exist_ok=True); open('out/a.txt','w').write('a')"
        outs: [out]
""")


def test_stage_commands_follow_the_dependencies_not_the_file_order(tmp_path):
    dvc_yaml = tmp_path / "dvc.yaml"
    dvc_yaml.write_text(DVC_YAML.format(python="python"))
    assert list(pipeline.stage_commands(dvc_yaml)) == ["first", "second"]


def test_a_dependency_cycle_is_an_error(tmp_path):
    dvc_yaml = tmp_path / "dvc.yaml"
    dvc_yaml.write_text("stages:\n  a: {cmd: x, deps: [b.txt], outs: [a.txt]}\n"
                        "  b: {cmd: y, deps: [a.txt], outs: [b.txt]}\n")
    with pytest.raises(ValueError, match="cycle"):
        pipeline.stage_commands(dvc_yaml)


def test_the_real_dvc_yaml_starts_with_the_scrape():
    from pathlib import Path
    order = list(pipeline.stage_commands(Path("dvc.yaml")))
    assert order[0] == "scrape" and order.index("clean") < order.index("select") < order.index("sample")


def test_stage_times_from_dvc_output():
    events = [(0.5, "Verifying ...\n"), (1.0, "Running stage 'scrape':\n"), (1.1, "> python -m x\n"),
              (4.0, "Running stage 'clean':\n"), (9.0, "Updating lock file 'dvc.lock'\n")]
    times = pipeline.stage_times_from_log(events, end=10.0)
    assert [(t.stage, t.seconds) for t in times] == [(pipeline.STARTUP, 1.0), ("scrape", 3.0), ("clean", 6.0)]


def test_cmds_runner_times_each_stage_in_a_scratch_copy(tmp_path, record_file):
    source = tmp_path / "repo"
    source.mkdir()
    (source / "dvc.yaml").write_text(DVC_YAML.format(python=sys.executable))
    subprocess.run(["git", "init", "-q"], cwd=source, check=True)
    text = pipeline.main(["--runner", "cmds", "--source", str(source), "--record-to", str(record_file)])
    assert [row[0] for row in table_rows(text, "first") + table_rows(text, "second")] == ["first", "second"]
    assert "**met**" in text and "Dominant stage" in text
    assert not (source / "out").exists()  # the stages ran in the copy, not in the source checkout
    assert "## Pipeline from scratch" in record_file.read_text(encoding="utf-8")


def test_mission_goals_are_read_from_the_copys_outputs(tmp_path):
    (tmp_path / "data/interim").mkdir(parents=True)
    (tmp_path / "data/final").mkdir(parents=True)
    (tmp_path / "reports").mkdir()
    (tmp_path / "data/interim/sample.csv").write_text('lot_key,title\na,"two\nlines"\nb,x\nc,y\n', encoding="utf-8")
    (tmp_path / "data/final/images_summary.json").write_text('{"converted": 2}', encoding="utf-8")
    (tmp_path / "reports/results.md").write_text("## Table 3 — methods at k = 50: agreement\n", encoding="utf-8")
    outcome = pipeline.mission_outcome(tmp_path)
    assert outcome == pipeline.MissionOutcome(sampled=3, final=2, report_k=50)
    text = pipeline.report([pipeline.StageTime("scrape", 10.0)], 10.0, "dvc", 5, tmp_path / "p.yaml", 2**30, outcome)
    assert "p.yaml" in text and "1.00 GiB" in text
    goals = pipeline.mission_goals(3000.0, 9 * 2**30, outcome, finished=True)
    assert goals.count("NOT met") == 2 and goals.count("**met**") == 2, goals  # memory over 8 GB, 2 < 10,000 works; time and k met
    assert pipeline.mission_outcome(tmp_path / "missing") == pipeline.MissionOutcome(None, None, None)
