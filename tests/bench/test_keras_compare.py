"""bench.keras_compare: the round protocol of its workers, the goal rule, and the Keras nets' definitions."""

from __future__ import annotations

import argparse
from dataclasses import replace

import pytest
import torch

from bench import keras_compare, keras_worker
from bench._workloads import synthetic_images, target_workload
from tests.model.test_pipeline import REPO_ROOT


def test_the_keras_worker_builds_the_same_nets_as_the_pytorch_side():
    for net, (size, channels, filters, kernels, embedding, activation, k, weights) in keras_worker.NETS.items():
        arch = keras_compare.NETS[net]
        assert (size, channels) == (keras_compare.SIZES[net], arch.channels)
        assert (filters, kernels, embedding, activation, k) == (arch.filters, arch.kernels, arch.embedding,
                                                                arch.activation, arch.n_clusters)
        assert weights == (arch.kl_weight, arch.recon_weight)


def row(torch_img_s: float, keras_img_s: float, peak: float = 100.0) -> keras_compare.Row:
    return keras_compare.Row("guo", "pretrain", torch_img_s, keras_img_s, torch_img_s, keras_img_s, flops_per_image=1e9,
                             peaks_gflop_s={"conv": peak, "matmul": peak / 2})


def test_the_goal_is_a_quarter_ahead_of_keras_or_both_near_the_peak():
    assert keras_compare.goal_text(row(125, 100, peak=1000)).startswith("met (≥ 1.25×")
    assert keras_compare.goal_text(row(120, 100, peak=1000)) == "**not met**"
    assert keras_compare.goal_text(row(92, 95, peak=100)).startswith("met (both within 10%")
    assert keras_compare.goal_text(row(85, 95, peak=100)) == "**not met**"


def test_a_run_without_keras_times_pytorch_and_the_peak_in_alternating_rounds(monkeypatch, tmp_path):
    monkeypatch.chdir(REPO_ROOT)
    text = keras_compare.main(["--nets", "guo", "--passes", "target", "--rounds", "1", "--threads", "1",
                               "--keras-python", str(tmp_path / "absent/python"), "--no-record"])
    assert "Keras not installed" in text
    line = next(line for line in text.splitlines() if line.startswith("| target |"))
    cells = [cell.strip() for cell in line.strip("|").split("|")]
    assert float(cells[1].split(" (")[0].replace(",", "")) > 0 and cells[2] == "—"
    assert cells[5].endswith("%)")


class ScriptedWorker:
    """A worker whose rounds take the scripted (seconds, steps), as Worker.time_round returns them."""

    def __init__(self, info: dict, rounds: list[tuple[float, list[float]]]):
        self.info, self.rounds = info, list(rounds)

    def time_round(self) -> tuple[float, list[float]]:
        return self.rounds.pop(0)

    def stop(self) -> None:
        pass


def test_the_steady_rate_is_the_median_step_so_a_slow_spell_of_keras_fit_counts_only_while_it_lasts(monkeypatch,
                                                                                                       tmp_path):
    """Keras: 4 steps of 1 s per round, but one round of 4 has a 10-s pause in a step. The steady rate is one
    batch per median step (1 s); the median of whole rounds still shows the pause, labelled apart."""
    keras_rounds = [(4.0, [1.0] * 4)] * 3 + [(13.0, [1.0, 1.0, 10.0, 1.0])]
    torch_rounds = [(2.0, [0.5] * 4)] * 4
    scripted = {"torch": ScriptedWorker({"images": 4 * keras_compare.BATCH, "flops_per_image": 1e9}, torch_rounds),
                "keras": ScriptedWorker({}, keras_rounds)}
    monkeypatch.setattr(keras_compare.Worker, "start", classmethod(lambda cls, name, command: scripted[name]))
    keras_python = tmp_path / "python"
    keras_python.touch()
    args = argparse.Namespace(rounds=4, keras_python=keras_python, precision="fp32", threads=1)
    peaks = {"conv": ScriptedWorker({"flops": 1e12}, [(1.0, [1.0])] * 4)}
    row = keras_compare.measure(args, "guo", "pretrain", peaks)
    assert row.keras_img_s == keras_compare.BATCH / 1.0 and row.torch_img_s == keras_compare.BATCH / 0.5
    assert row.torch_img_s / row.keras_img_s == 2.0
    assert row.keras_rounds == 4 * keras_compare.BATCH / 4.0  # median round of (4, 4, 4, 13) s
    assert row.peaks_gflop_s == {"conv": 1000.0}


def test_bf16_asks_for_bf16_kernels_and_the_bf16_training_setting(monkeypatch, tmp_path):
    # small: bf16 is emulated on CPUs without AMX or AVX-512 BF16
    monkeypatch.setattr(keras_compare, "CONV_SHAPE", (2, 8, 8, 8))
    monkeypatch.setattr(keras_compare, "MATMUL_SIDE", 16)
    for kind in ("conv", "matmul"):
        one_round, flops = keras_compare.peak_round_fn(kind, 1, "bf16")
        assert one_round().dtype == torch.bfloat16 and flops > 0
    assert keras_compare.peak_round_fn("matmul", 1, "fp32")[0]().dtype == torch.float32
    seen = []
    monkeypatch.setattr(keras_compare, "BUILDERS", {"pretrain": lambda arch, *rest: seen.append(arch) or
                                                    type("W", (), {"call": None, "flops_per_image": 1.0})()})
    keras_compare.torch_round_fn("guo", "pretrain", 1, 1, "bf16")
    keras_compare.torch_round_fn("guo", "pretrain", 1, 1, "fp32")
    assert [arch.mixed_precision for arch in seen] == ["bf16", "off"]
    args = argparse.Namespace(precision="bf16", threads=1, keras_python=tmp_path / "python")
    for backend in ("torch", "keras"):
        command = keras_compare.worker_command(args, backend, "guo", "pretrain")
        assert command[command.index("--precision") + 1] == "bf16"


def test_the_bf16_target_pass_predicts_in_bf16_as_the_pipeline_does():
    seen = set()
    for precision in ("fp32", "bf16"):
        arch = replace(keras_compare.NETS["guo"], mixed_precision="bf16" if precision == "bf16" else "off")
        workload = target_workload(arch, synthetic_images(8, 28, 1, seed=0), 4, "tuned", torch.device("cpu"), 0)
        conv = next(m for m in workload.forward.modules() if isinstance(m, torch.nn.Conv2d))  # the eager module
        dtypes = set()
        handle = conv.register_forward_hook(lambda module, inputs, output: dtypes.add(output.dtype))
        workload.call()
        handle.remove()
        seen.add((precision, *dtypes))
    assert seen == {("fp32", torch.float32), ("bf16", torch.bfloat16)}
    row = keras_compare.Row("guo", "target", 100.0, 200.0, 100.0, 200.0, 1e6, {"conv": 1000.0}, "bf16")
    assert keras_compare.goal_text(row) == "**not met**"  # judged like every other pass


@pytest.mark.skipif(not (REPO_ROOT / ".venv-keras/bin/python").exists(), reason="no Keras environment (make bench-keras)")
def test_the_keras_net_has_exactly_the_pytorch_parameter_count():
    for net in keras_compare.NETS:
        assert keras_compare.keras_params(REPO_ROOT / ".venv-keras/bin/python", net) == keras_compare.torch_params(net)
