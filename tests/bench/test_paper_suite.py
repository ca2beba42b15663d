"""bench/paper_suite.py: parts by device, budgets enforced, and what gets recorded."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from bench import paper_suite
from tests.bench.conftest import table_rows

BLOCKS_FOREVER = [sys.executable, "-c", "import threading; print('epoch 3/200', flush=True); threading.Event().wait()"]


def suite_args(tmp_path: Path, *extra: str):
    return paper_suite.build_parser().parse_args(["--no-record", "--log-dir", str(tmp_path), *extra])


def fake_fmnist(folder: Path) -> Path:
    folder.mkdir()
    for split in paper_suite.FASHION_FILES.values():
        for name in split:
            (folder / name).write_bytes(b"")
    return folder


def test_parts_by_device_and_data(tmp_path):
    data = fake_fmnist(tmp_path / "fmnist")
    parts, not_run = paper_suite.plan_parts(suite_args(tmp_path, "--fmnist-dir", str(data)), False, tmp_path)
    assert [p.name for p in parts] == ["paper configuration", "experiment matrix"] and "no CUDA" in not_run
    assert "--full" not in parts[0].command and "profiles/paper.yaml" in parts[0].command
    parts, not_run = paper_suite.plan_parts(suite_args(tmp_path, "--fmnist-dir", str(data)), True, tmp_path)
    assert "--full" in parts[0].command and not_run == ""
    verify = parts[2].command
    assert verify[verify.index("--out") + 1].startswith(str(tmp_path))  # never reports/verify/ of the checkout
    assert verify[verify.index("--data-dir") + 1] == str(data) and parts[2].budget_minutes == 30.0


def test_the_fashion_mnist_seed_on_a_cpu_only_when_asked_and_with_a_cpu_sized_budget(tmp_path):
    data = fake_fmnist(tmp_path / "fmnist")
    parts, _ = paper_suite.plan_parts(suite_args(tmp_path, "--fmnist-dir", str(data), "--fmnist-on-cpu"), False,
                                      tmp_path)
    assert parts[-1].name == "Fashion-MNIST seed" and parts[-1].budget_minutes == 150.0
    parts, _ = paper_suite.plan_parts(suite_args(tmp_path, "--fmnist-dir", str(data), "--fmnist-on-cpu",
                                                 "--budget-fmnist", "40"), False, tmp_path)
    assert parts[-1].budget_minutes == 40.0


def test_without_the_dataset_the_seed_is_skipped_and_said_so(tmp_path):
    parts, not_run = paper_suite.plan_parts(suite_args(tmp_path, "--fmnist-dir", str(tmp_path / "none")), True,
                                            tmp_path)
    assert len(parts) == 2 and "lacks train-images-idx3-ubyte.gz" in not_run


def test_a_part_over_its_budget_is_stopped_with_its_children_and_keeps_its_last_lines(tmp_path):
    pid_file = tmp_path / "child.pid"
    spawns_a_child = [sys.executable, "-c",
                      "import subprocess, sys, threading; "
                      "c = subprocess.Popen([sys.executable, '-c', 'import threading; threading.Event().wait()']); "
                      f"open({str(pid_file)!r}, 'w').write(str(c.pid)); "
                      "print('epoch 3/200', flush=True); threading.Event().wait()"]
    outcome = paper_suite.run_part(paper_suite.Part("stuck", 0.1, spawns_a_child), tmp_path / "stuck.log")
    assert outcome.status == "over budget"
    assert "epoch 3/200" in outcome.tail
    assert gone(int(pid_file.read_text()))


def gone(pid: int, attempts: int = 200) -> bool:
    """True once `pid` has exited (a zombie waiting for init counts): SIGKILL lands when the process is next
    scheduled, so this polls its state rather than waiting a fixed time."""
    for _ in range(attempts):
        try:
            if Path(f"/proc/{pid}/stat").read_text().split()[2] in ("Z", "X"):
                return True
        except OSError:  # reaped, or reaped while being read
            return True
        time.sleep(0.01)
    return False


def test_a_failing_part_reports_its_exit_code(tmp_path):
    command = [sys.executable, "-c", "import sys; print('no CUDA'); sys.exit(3)"]
    outcome = paper_suite.run_part(paper_suite.Part("broken", 1, command), tmp_path / "broken.log")
    assert outcome.status == "failed (exit 3)" and outcome.tail == "no CUDA"


def test_progress_bars_become_lines_in_the_tail(tmp_path):
    log = tmp_path / "bar.log"
    log.write_text("a\rb\rc\n\n" + "".join(f"line {i}\n" for i in range(30)), encoding="utf-8")
    tail = paper_suite.last_lines(log, 3)
    assert tail.splitlines() == ["line 27", "line 28", "line 29"]


def test_fashion_mnist_summary_reads_the_seed_file_or_says_none(tmp_path):
    assert paper_suite.fmnist_summary(tmp_path) is None
    seed_dir = tmp_path / "fashion-mnist-full"
    seed_dir.mkdir()
    (seed_dir / "seed-0.json").write_text(json.dumps({"results": {}}), encoding="utf-8")
    assert paper_suite.fmnist_summary(tmp_path) is None  # not as expected: the log goes in instead
    (seed_dir / "seed-0.json").write_text(json.dumps({
        "key": {"code": "abc", "device": "cuda"}, "seconds": 1234,
        "results": {"kmeans_pixels": {"acc": 0.47, "nmi": 0.51},
                    "dcec": {"acc": 0.6, "nmi": 0.63, "n_iter": 4200, "converged": True}}}), encoding="utf-8")
    text = paper_suite.fmnist_summary(tmp_path)
    assert "**0:20:34** wall on cuda" in text and "converged after 4200" in text
    assert table_rows(text, "dcec")[0][1:] == ["0.600", "0.630"]


def test_suite_records_a_summary_with_every_part(tmp_path, monkeypatch, record_file):
    def tiny_parts(args, cuda, scratch):
        return [paper_suite.Part("paper configuration", 1, [sys.executable, "-c", "print('done')"]),
                paper_suite.Part("experiment matrix", args.budget_matrix, BLOCKS_FOREVER)], "The seed did not run."
    monkeypatch.setattr(paper_suite, "plan_parts", tiny_parts)
    text = paper_suite.main(["--budget-matrix", "0.1", "--log-dir", str(tmp_path), "--record-to", str(record_file)])
    assert table_rows(text, "paper configuration")[0][1] == "finished"
    assert table_rows(text, "experiment matrix")[0][1] == "over budget"
    assert "**experiment matrix: over budget**" in text and "epoch 3/200" in text and "The seed did not run." in text
    assert "## make bench-paper" in record_file.read_text(encoding="utf-8")
