"""bench/paper_suite.py: parts by device, budgets enforced, and what gets recorded."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from bench import paper_suite
from tests.bench.conftest import table_rows

BLOCKS_FOREVER = [sys.executable, "-c", "import threading; print('epoch 3/200', flush=True); threading.Event().wait()"]


def test_without_cuda_the_fashion_mnist_seed_runs_only_when_asked(tmp_path):
    parts = paper_suite.part_commands(False, ["--no-record"], tmp_path, False, Path("/data"))
    assert list(parts) == ["paper configuration", "experiment matrix"]
    assert "--full" not in parts["paper configuration"]
    parts = paper_suite.part_commands(True, ["--no-record"], tmp_path, False, Path("/data"))
    assert "--full" in parts["paper configuration"]
    verify = parts["Fashion-MNIST seed"]
    assert verify[verify.index("--out") + 1].startswith(str(tmp_path))  # never reports/verify/ of the checkout
    assert verify[verify.index("--data-dir") + 1] == "/data"


def test_a_part_over_its_budget_is_stopped_and_keeps_its_last_lines(tmp_path):
    outcome = paper_suite.run_part("stuck", BLOCKS_FOREVER, budget_minutes=0.03, log=tmp_path / "stuck.log")
    assert outcome.status == "over budget"
    assert "epoch 3/200" in outcome.tail


def test_a_failing_part_reports_its_exit_code(tmp_path):
    command = [sys.executable, "-c", "import sys; print('no CUDA'); sys.exit(3)"]
    outcome = paper_suite.run_part("broken", command, budget_minutes=1, log=tmp_path / "broken.log")
    assert outcome.status == "failed (exit 3)" and outcome.tail == "no CUDA"


def test_progress_bars_become_lines_in_the_tail(tmp_path):
    log = tmp_path / "bar.log"
    log.write_text("a\rb\rc\n\n" + "".join(f"line {i}\n" for i in range(30)), encoding="utf-8")
    tail = paper_suite.last_lines(log, 3)
    assert tail.splitlines() == ["line 27", "line 28", "line 29"]


def test_fashion_mnist_summary_reads_the_seed_file(tmp_path):
    seed_dir = tmp_path / "fashion-mnist-full"
    seed_dir.mkdir()
    (seed_dir / "seed-0.json").write_text(json.dumps({
        "key": {"code": "abc", "device": "cuda"}, "seconds": 1234,
        "results": {"kmeans_pixels": {"acc": 0.47, "nmi": 0.51},
                    "dcec": {"acc": 0.6, "nmi": 0.63, "n_iter": 4200, "converged": True}}}), encoding="utf-8")
    text = paper_suite.fmnist_summary(tmp_path)
    assert "**0:20:34** wall on cuda" in text and "converged after 4200" in text
    assert table_rows(text, "dcec")[0][1:] == ["0.600", "0.630"]


def test_suite_records_a_summary_with_every_part(tmp_path, monkeypatch, record_file):
    def tiny_parts(cuda, record_args, scratch, fmnist_on_cpu, fmnist_dir):
        return {"paper configuration": [sys.executable, "-c", "print('done')"], "experiment matrix": BLOCKS_FOREVER}
    monkeypatch.setattr(paper_suite, "part_commands", tiny_parts)
    text = paper_suite.main(["--budget-matrix", "0.03", "--log-dir", str(tmp_path), "--record-to", str(record_file)])
    assert table_rows(text, "paper configuration")[0][1] == "finished"
    assert table_rows(text, "experiment matrix")[0][1] == "over budget"
    assert "**experiment matrix: over budget**" in text and "epoch 3/200" in text
    assert "## make bench-paper" in record_file.read_text(encoding="utf-8")
