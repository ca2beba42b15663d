"""bench/train.py and bench/_workloads.py on tiny sizes: the table is produced, the FLOP counts are right."""

from __future__ import annotations

import torch

from bench import _workloads, train
from bench._workloads import analytic_forward_flops, architecture_from_params, build_net
from common import load_params
from tests.bench.conftest import table_rows

TINY = ["--sizes", "16", "--images", "16", "--eval-batch-size", "8", "--batch-size", "4",
        "--cluster-batch-size", "4", "--warmup", "1", "--rounds", "1", "--calls", "1",
        "--matmul-size", "64", "--matmul-repeats", "1", "--devices", "cpu", "--system-allocator"]


def arch():
    return architecture_from_params(load_params())


def test_train_benchmark_writes_a_row_per_workload_and_variant(record_file):
    text = train.main([*TINY, "--variants", "eager,channels_last", "--profile", "always",
                       "--record-to", str(record_file)])
    rows = table_rows(text, "cpu")
    assert {(r[2], r[3]) for r in rows} == {(w, v) for w in ("pretrain", "cluster", "target")
                                           for v in ("eager", "channels_last")}
    assert all(float(r[6].replace(",", "")) > 0 for r in rows)  # img/s
    assert "CPU training step ≥ 60%" in text and "aten::" in text  # goal line and the profiler table
    assert record_file.read_text(encoding="utf-8").count("## Training throughput") == 1


def test_flop_counts_match_the_paper_network():
    """DCEC-Paint at 128×128×3: 0.329 GFLOP forward, 0.967 GFLOP per training image (environment.md)."""
    net = build_net(arch(), 128, torch.device("cpu"), variant="eager", seed=0)
    assert analytic_forward_flops(net.cae, 128, 3) == 328_728_576
    images = _workloads.synthetic_images(2, 128, 3, seed=0)
    step = _workloads.pretrain_workload(arch(), images, 2, "eager", torch.device("cpu"), seed=0)
    assert round(step.flops_per_image / 1e9, 3) == 0.967


def test_analytic_count_agrees_with_the_flop_counter_at_another_size():
    net = build_net(arch(), 24, torch.device("cpu"), variant="eager", seed=0)  # 'valid' conv3 branch
    counted = _workloads.count_flops(lambda: net.cae(torch.zeros(1, 3, 24, 24)))
    assert analytic_forward_flops(net.cae, 24, 3) == counted


def test_compile_failure_is_reported_as_an_eager_fallback(monkeypatch):
    def broken_compile(*args, **kwargs):
        raise RuntimeError("no compiler here")

    monkeypatch.setattr(torch, "compile", broken_compile)
    images = _workloads.synthetic_images(4, 16, 3, seed=0)
    workload = _workloads.pretrain_workload(arch(), images, 2, "compile", torch.device("cpu"), seed=0)
    workload.call()
    assert workload.compiled is False
    plain = _workloads.pretrain_workload(arch(), images, 2, "eager", torch.device("cpu"), seed=0)
    assert plain.compiled is None


def test_training_goal_uses_the_best_cpu_pretraining_row():
    rate = lambda r: train.Rate(r, r, (r,))  # noqa: E731
    rows = [train.Row("cpu", 128, "pretrain", "eager", 64, 1.0, rate(50.0), rate(100.0), 50.0, 0.0),
            train.Row("cpu", 128, "pretrain", "channels_last", 64, 1.0, rate(70.0), rate(100.0), 50.0, 0.0),
            train.Row("cpu", 128, "target", "eager", 64, 1.0, rate(500.0), rate(100.0), 500.0, 0.0)]
    met, best = train.training_goal(rows, 128)
    assert best.variant == "channels_last" and met is True  # 70 GFLOP/s of a 100 peak
    met, _ = train.training_goal(rows[:1], 128)
    assert met is False
