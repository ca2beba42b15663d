"""Benchmark: the project's training passes against Keras on the identical nets, both against the machine's peak.

    make bench-keras                 # creates .venv-keras (tensorflow-cpu) once, then runs this
    python -m bench.keras_compare [--nets paper,guo] [--rounds 5] [--precision fp32|bf16] [--keras-python ...]

For each net — DCEC-Paint at 128×128×3 (ELU, embedding 32, k 50) and Guo's at 28×28×1 (ReLU, embedding 10,
k 10), batch 256 — and each pass — the pretraining step, the joint-phase step, the target-distribution pass
over eval batches of 1024 — three workers are started once and warmed up:
* PyTorch: bench/_workloads.py's `tuned` variant, i.e. exactly what model/ trains with (this environment);
* Keras: bench/keras_worker.py in the separate bench environment (`model.fit`, `train_on_batch`,
  `predict`), the same layers (parameter counts are checked equal before timing);
* the peak: a large fp32 convolution (oneDNN, the kind of kernel the passes spend their time in) and a large
  fp32 matmul, timed in the same rounds.
Then the rounds alternate — PyTorch, Keras, peak, PyTorch, ... — one process at a time (the others wait on
their stdin), so they never share the cores and load from elsewhere falls on all alike.

Yardstick (issue #31): the **steady-state rate**, by the same rule for both frameworks. Each worker times every
step of every round — a training batch for `pretrain` and `cluster` (Keras `fit` through a callback at each
batch's end, so a step runs from the previous step's end to its own, input handling included, as PyTorch's
does), the whole pass for `target` — and the rate is the images of one step over the median of all steps of
all rounds pooled. A pause (Keras `fit` has slow spells: its median epoch on the 2026-12-02 Intel machine ran
at 99 img/s, its best at 185) then counts only while it lasts fewer than half of the steps. The median of
whole rounds, which does count them, stays beside it, labelled.

Both frameworks run with glibc malloc keeping freed memory (model.keep_freed_memory, as model/ trains; the
Keras worker through the equivalent MALLOC_* variables): without it each step page-faults its activations.

Precision: `fp32` everywhere (the default), or `bf16` — PyTorch under `model.mixed_precision: bf16` (bf16
autocast for the training steps and the target-distribution pass, as model/dcec.py runs them), Keras under its
`mixed_bfloat16` policy (every layer, prediction included), the peak kernels in bf16. On a CPU with
AMX (Intel Sapphire Rapids and later) bf16 runs on the matrix units, with AVX-512 BF16 (AMD Zen 4 and later, Intel
Cooper Lake) on bf16 dot-product instructions; on CPUs with neither (AVX2-only) it is emulated and slower.

Share of the peak: the FLOPs of one image as torch.utils.flop_counter counts them (convolutions and matmuls, forward
and backward; the same for both frameworks since the nets are identical), divided by the time, as a share of
the higher of the two measured peaks. The measured peak, not a theoretical FMA rate: it is what the
machine's best kernels reach under the same load, so a share above 100% would mean the yardstick is wrong.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from bench import _record
from bench._workloads import BUILDERS, Architecture, synthetic_images
from model.nets import DCECNet, build_cae
from model.runtime import keep_freed_memory

KERAS_WORKER = Path(__file__).with_name("keras_worker.py")
DEFAULT_KERAS_PYTHON = Path(".venv-keras/bin/python")
GIGA = 1e9
GOAL_RATIO = 1.25          # issues #17, #31: each pass at least 1.25x Keras at steady state, on the identical net
PEAK_SHARE_TOLERANCE = 0.10  # ... or, where Keras is within 10% of the peak, within 10% of it ourselves
NETS = {
    "paper": Architecture(filters=(32, 64, 128), kernels=(5, 5, 3), embedding=32, activation="elu", n_clusters=50,
                          kl_weight=0.9, recon_weight=0.1, lr=0.001, channels=3),
    "guo": Architecture(filters=(32, 64, 128), kernels=(5, 5, 3), embedding=10, activation="relu", n_clusters=10,
                        kl_weight=0.1, recon_weight=1.0, lr=0.001, channels=1),
}
SIZES = {"paper": 128, "guo": 28}
PASSES = ("pretrain", "cluster", "target")
CALLS = {("paper", "pretrain"): 4, ("paper", "cluster"): 4, ("paper", "target"): 2,   # ~2-6 s per round
         ("guo", "pretrain"): 20, ("guo", "cluster"): 20, ("guo", "target"): 10}
BATCH, EVAL_BATCH = 256, 1024
CONV_SHAPE = (16, 256, 64, 64)       # N, C, H, W of the peak convolution (3x3, 256 -> 256 channels)
MATMUL_SIDE = 2048
# glibc malloc told to keep freed memory (what model.runtime.keep_freed_memory does by mallopt), for the Keras
# worker: without it every step page-faults its activations in afresh, in either framework.
KEEP_FREED_ENV = {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": "100000000000", "TF_CPP_MIN_LOG_LEVEL": "2"}


# ---------------------------------------------------------------- workers (one process each)


def torch_round_fn(net: str, workload: str, calls: int, threads: int,
                   precision: str) -> tuple[Callable[[], None], int, float]:
    """(one round, images per round, FLOPs per image) of the project's own pass."""
    torch.set_num_threads(threads)
    arch = replace(NETS[net], mixed_precision="bf16" if precision == "bf16" else "off")
    batch = EVAL_BATCH if workload == "target" else BATCH
    images = synthetic_images(batch * calls, SIZES[net], arch.channels, seed=0)
    built = BUILDERS[workload](arch, images, batch, "tuned", torch.device("cpu"), 0)
    per_round = 1 if workload == "target" else calls      # the target workload passes over all images at once

    def one_round() -> list[float]:
        """Seconds of each step of the round."""
        steps = []
        for _ in range(per_round):
            started = time.perf_counter()
            built.call()
            steps.append(time.perf_counter() - started)
        return steps
    return one_round, batch * calls, built.flops_per_image


def peak_round_fn(kind: str, threads: int, precision: str) -> tuple[Callable[[], object], float]:
    """(one round, FLOPs per round) of the peak kernels, in the benchmark's precision."""
    torch.set_num_threads(threads)
    generator = torch.Generator().manual_seed(0)
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    if kind == "conv":
        n, c, h, w = CONV_SHAPE
        x = torch.rand(CONV_SHAPE, generator=generator).to(dtype).contiguous(memory_format=torch.channels_last)
        weight = torch.rand((c, c, 3, 3), generator=generator).to(dtype).contiguous(memory_format=torch.channels_last)
        return (lambda: torch.nn.functional.conv2d(x, weight, padding=1)), 2.0 * n * c * c * 9 * h * w
    a, b = (torch.rand((MATMUL_SIDE, MATMUL_SIDE), generator=generator).to(dtype) for _ in range(2))
    return (lambda: torch.mm(a, b)), 2.0 * MATMUL_SIDE ** 3


def serve(one_round: Callable[[], object], info: dict) -> None:
    """Warm up, say ready (with `info`), then time one round per "round" line on stdin: its seconds, and the
    seconds of each of its steps where `one_round` returns them (else the round is one step)."""
    one_round()
    print(json.dumps({"ready": True, **info}), flush=True)
    for line in sys.stdin:
        if line.strip() == "quit":
            break
        started = time.perf_counter()
        with torch.inference_mode(info.get("inference", False)):
            steps = one_round()
        seconds = time.perf_counter() - started
        print(json.dumps({"seconds": seconds, "steps": steps if isinstance(steps, list) else [seconds]}), flush=True)


def run_worker(args: argparse.Namespace) -> None:
    keep_freed_memory(True)   # as model/ trains (model.keep_freed_memory); Keras gets the same via KEEP_FREED_ENV
    if args.workload in ("conv", "matmul"):
        one_round, flops = peak_round_fn(args.workload, args.threads, args.precision)
        serve(one_round, {"flops": flops, "inference": True})
        return
    one_round, images, flops_per_image = torch_round_fn(args.net, args.workload, args.calls, args.threads,
                                                        args.precision)
    serve(one_round, {"images": images, "flops_per_image": flops_per_image})


# ---------------------------------------------------------------- the orchestrator


@dataclass
class Worker:
    """A started worker process speaking the round protocol."""

    name: str
    process: subprocess.Popen
    info: dict

    @classmethod
    def start(cls, name: str, command: list[str]) -> Worker:
        process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                   env={**os.environ, **KEEP_FREED_ENV})
        for line in process.stdout:
            message = json.loads(line)
            if message.get("ready"):
                return cls(name, process, message)
        raise RuntimeError(f"{name}: worker exited before it was ready ({' '.join(command)})")

    def time_round(self) -> tuple[float, list[float]]:
        """(seconds of the round, seconds of each of its steps)."""
        self.process.stdin.write("round\n")
        self.process.stdin.flush()
        answer = json.loads(self.process.stdout.readline())
        return float(answer["seconds"]), [float(step) for step in answer["steps"]]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.write("quit\n")
            self.process.stdin.flush()
            self.process.wait(timeout=60)


def keras_params(keras_python: Path, net: str) -> int:
    out = subprocess.run([str(keras_python), str(KERAS_WORKER), "--net", net, "--workload", "params"],
                         capture_output=True, text=True, check=True, env={**os.environ, **KEEP_FREED_ENV})
    return int(json.loads(out.stdout.strip().splitlines()[-1])["params"])


def torch_params(net: str) -> int:
    arch = NETS[net]
    cae = build_cae(SIZES[net], arch.channels, arch.filters, arch.kernels, arch.embedding, arch.activation)
    return sum(p.numel() for p in DCECNet(cae, arch.n_clusters).parameters())


def worker_command(args: argparse.Namespace, backend: str, net: str, workload: str) -> list[str]:
    calls = str(CALLS.get((net, workload), 1))
    if backend == "keras":
        return [str(args.keras_python), str(KERAS_WORKER), "--net", net, "--workload", workload, "--calls", calls,
                "--threads", str(args.threads), "--batch-size", str(BATCH), "--eval-batch-size", str(EVAL_BATCH),
                "--precision", args.precision]
    return [sys.executable, "-m", "bench.keras_compare", "--worker", "--net", net, "--workload", workload,
            "--calls", calls, "--threads", str(args.threads), "--precision", args.precision]


@dataclass(frozen=True)
class Row:
    """One net and pass: steady-state rates (the yardstick) and medians of whole rounds, in images per second."""

    net: str
    workload: str
    torch_img_s: float
    keras_img_s: float | None
    torch_rounds: float
    keras_rounds: float | None
    flops_per_image: float
    peaks_gflop_s: dict[str, float]     # conv, matmul: medians of the rounds beside this pass
    precision: str = "fp32"

    @property
    def peak_gflop_s(self) -> float:
        return max(self.peaks_gflop_s.values())


def measure(args: argparse.Namespace, net: str, workload: str, peaks: dict[str, Worker]) -> Row:
    """Alternating rounds of PyTorch, Keras (when installed) and the peak kernels for one net and pass."""
    workers = {"torch": Worker.start("torch", worker_command(args, "torch", net, workload))}
    if args.keras_python.exists():
        workers["keras"] = Worker.start("keras", worker_command(args, "keras", net, workload))
    images, flops_per_image = workers["torch"].info["images"], workers["torch"].info["flops_per_image"]
    step_images = images if workload == "target" else BATCH
    seconds: dict[str, list[float]] = {name: [] for name in [*workers, *peaks]}
    steps: dict[str, list[float]] = {name: [] for name in workers}
    try:
        for _ in range(args.rounds):
            for name, worker in [*workers.items(), *peaks.items()]:
                round_seconds, step_seconds = worker.time_round()
                seconds[name].append(round_seconds)
                if name in steps:
                    steps[name].extend(step_seconds)
    finally:
        for worker in workers.values():
            worker.stop()
    peak = {name: peaks[name].info["flops"] / statistics.median(seconds[name]) / GIGA for name in peaks}
    steady = {name: step_images / statistics.median(steps[name]) for name in workers}
    rounds = {name: images / statistics.median(seconds[name]) for name in workers}
    return Row(net, workload, steady["torch"], steady.get("keras"), rounds["torch"], rounds.get("keras"),
               flops_per_image, peak, args.precision)


def report(rows: list[Row], params: dict[str, tuple[int, int | None]], keras_note: str) -> str:
    lines = [keras_note, ""]
    for net in dict.fromkeys(row.net for row in rows):
        ours, theirs = params[net]
        net_rows = [row for row in rows if row.net == net]
        counts = f"parameters PyTorch {ours:,}, Keras {theirs:,}" if theirs else f"parameters {ours:,}"
        peaks = ", ".join(f"{kind} {statistics.median(r.peaks_gflop_s[kind] for r in net_rows):.0f}"
                          for kind in net_rows[0].peaks_gflop_s)
        lines.append(f"**{net}** ({SIZES[net]}×{SIZES[net]}×{NETS[net].channels}, batch {BATCH}, eval batch "
                     f"{EVAL_BATCH}; {counts}). Peak GFLOP/s beside these passes (median): {peaks}; each share "
                     "below is of the higher one measured beside that pass.\n")
        table = []
        for row in net_rows:
            gflop = row.torch_img_s * row.flops_per_image / GIGA
            keras_gflop = row.keras_img_s * row.flops_per_image / GIGA if row.keras_img_s else None
            table.append([row.workload, f"{row.torch_img_s:,.0f}", f"{row.keras_img_s:,.0f}" if row.keras_img_s else "—",
                          f"**{row.torch_img_s / row.keras_img_s:.2f}**" if row.keras_img_s else "—",
                          f"{row.torch_rounds:,.0f} / {row.keras_rounds:,.0f} ({row.torch_rounds / row.keras_rounds:.2f})"
                          if row.keras_rounds else f"{row.torch_rounds:,.0f}",
                          f"{gflop:.0f} ({gflop / row.peak_gflop_s:.0%})",
                          f"{keras_gflop:.0f} ({keras_gflop / row.peak_gflop_s:.0%})" if keras_gflop else "—",
                          goal_text(row)])
        lines.append(_record.markdown_table(["pass", "PyTorch img/s, steady", "Keras img/s, steady", "ratio",
                                             "median of rounds, PyTorch / Keras (ratio)", "PyTorch GFLOP/s "
                                             "(share of peak)", "Keras GFLOP/s (share)", "goal"], table))
    return "\n".join(lines)


def goal_text(row: Row) -> str:
    """Issue #17's goal for one pass: >= 1.25x Keras, or within 10% of the peak where Keras is too."""
    if not row.keras_img_s:
        return "—"
    if row.torch_img_s >= GOAL_RATIO * row.keras_img_s:
        return "met (≥ 1.25× Keras)"
    keras_share = row.keras_img_s * row.flops_per_image / GIGA / row.peak_gflop_s
    ours_share = row.torch_img_s * row.flops_per_image / GIGA / row.peak_gflop_s
    if keras_share >= 1 - PEAK_SHARE_TOLERANCE and ours_share >= 1 - PEAK_SHARE_TOLERANCE:
        return "met (both within 10% of the peak)"
    return "**not met**"


def main(argv: list[str] | None = None) -> str | None:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--net", default="paper")
    parser.add_argument("--workload", default="pretrain")
    parser.add_argument("--calls", type=int, default=1)
    parser.add_argument("--nets", default="paper,guo")
    parser.add_argument("--passes", default=",".join(PASSES))
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--keras-python", type=Path, default=DEFAULT_KERAS_PYTHON)
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    _record.add_record_arguments(parser)
    args = parser.parse_args(argv)
    if args.worker:
        run_worker(args)
        return None
    nets, passes = args.nets.split(","), args.passes.split(",")
    have_keras = args.keras_python.exists()
    params = {net: (torch_params(net), keras_params(args.keras_python, net) if have_keras else None) for net in nets}
    for net, (ours, theirs) in params.items():
        if theirs is not None and ours != theirs:
            raise SystemExit(f"{net}: PyTorch has {ours:,} parameters, Keras {theirs:,}: not the identical net")
    peaks = {kind: Worker.start(kind, [sys.executable, "-m", "bench.keras_compare", "--worker", "--workload", kind,
                                       "--threads", str(args.threads), "--precision", args.precision])
             for kind in ("conv", "matmul")}
    try:
        rows = []
        for net in nets:
            for workload in passes:
                print(f"keras_compare: {net} {workload} ...", file=sys.stderr)
                rows.append(measure(args, net, workload, peaks))
    finally:
        for worker in peaks.values():
            worker.stop()
    timing = (f"Keras: {keras_version(args.keras_python)} (`{args.keras_python}`), {args.threads} intra-op threads; "
              f"PyTorch {torch.__version__}, {args.threads} threads. {args.rounds} alternating rounds; rates are steady-state "
              "(images of a step over the median step of all rounds; module docstring), and so are the ratio, the "
              "shares and the goal; the median of whole rounds is beside them." if have_keras
              else f"Keras not installed at `{args.keras_python}` (make bench-keras).")
    keras_note = f"Precision: **{args.precision}** (module docstring). {timing}"
    body = report(rows, params, keras_note)
    return _record.publish(args, "bench.keras_compare", argv, "PyTorch against Keras on the identical nets, "
                           f"{args.precision} (bench/keras_compare.py)", body)


def keras_version(keras_python: Path) -> str:
    out = subprocess.run([str(keras_python), "-c", "import keras, tensorflow as tf; print(f'Keras {keras.__version__}, "
                          "TensorFlow {tf.__version__}')"], capture_output=True, text=True,
                         env={**os.environ, **KEEP_FREED_ENV})
    return out.stdout.strip() or "unknown version"


if __name__ == "__main__":
    main()
