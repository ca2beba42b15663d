"""Benchmark: DCEC-Paint training and inference throughput against the machine's own fp32 matmul peak.

    python -m bench.train [--sizes 128,32] [--variants eager,channels_last,tuned,compile] [--no-record]
    python -m bench.train --system-allocator      # the "before" of model.keep_freed_memory

For each device (CPU always, CUDA when available), image size and variant, times the pretraining step,
the clustering step and the full-dataset target-distribution pass (bench/_workloads.py) after warm-up,
as the median of several rounds, and reports images/s, achieved GFLOP/s and the share of the fp32 peak.
The peak is a `torch.mm` of large square fp32 matrices timed as one more candidate in the same interleaved
rounds, so the step and the peak see the same machine load: the share compares medians with medians (and
best round with best round). FLOPs per image are counted with torch.utils.flop_counter.FlopCounterMode
(matmuls and convolutions; cross-checked against an analytic count from the layer shapes). When the CPU
training step misses the goal (60% of peak), a torch.profiler table of the top operators shows where the
time goes.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

from bench import _record
from bench._timing import Rate, measure_interleaved
from bench._workloads import (BUILDERS, VARIANTS, WORKLOADS, Architecture, Workload, analytic_forward_flops,
                              architecture_from_params, build_net, synthetic_images)
from common import load_params
from model.runtime import keep_freed_memory

GOAL_SHARE_OF_PEAK = 0.60  # issue #8: the CPU training step at >= 60% of the fp32 matmul peak
PROFILE_ROWS = 12
PROFILE_CALLS = 3
COMPILE_WARMUP = 3
GIGA = 1e9
PEAK = "matmul peak"  # the extra candidate in every interleaved measurement


@dataclass(frozen=True)
class Settings:
    """Everything a run needs, parsed once in main()."""

    sizes: tuple[int, ...]
    variants: tuple[str, ...]
    workloads: tuple[str, ...]
    devices: tuple[torch.device, ...]
    batch_size: int
    cluster_batch_size: int
    eval_batch_size: int
    n_images: int
    warmup: int
    rounds: int
    calls: int
    matmul_size: int
    matmul_repeats: int
    profile: str
    seed: int
    keep_freed_memory: bool


@dataclass(frozen=True)
class Row:
    device: str
    size: int
    workload: str
    variant: str
    batch: int
    gflop_per_image: float
    rate: Rate
    peak: Rate  # fp32 matmul GFLOP/s over the same rounds
    eager_rate: float | None
    faults_per_call: float  # minor page faults per step (per full pass for the target workload)
    note: str = ""

    @property
    def gflops(self) -> float:
        return self.rate.median * self.gflop_per_image

    @property
    def share_of_peak(self) -> float:
        """Median step GFLOP/s over median matmul GFLOP/s."""
        return self.gflops / self.peak.median

    @property
    def best_share_of_peak(self) -> float:
        """Best round over best round: the least disturbed estimate of both."""
        return self.rate.best * self.gflop_per_image / self.peak.best


def synchronizer(device: torch.device):
    return torch.cuda.synchronize if device.type == "cuda" else (lambda: None)


def matmul_plan(size: int, repeats: int, device: torch.device) -> tuple:
    """A measure_interleaved plan for an fp32 `torch.mm` of two size×size matrices: its "items" are GFLOPs
    (2·size³ per call), so its rate is GFLOP/s; `repeats` calls per round."""
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(size, size, generator=generator).to(device)
    b = torch.randn(size, size, generator=generator).to(device)
    out = torch.empty(size, size, device=device)
    return lambda: torch.mm(a, b, out=out), 2 * size**3 / GIGA, 1, repeats


def build_workload(name: str, arch: Architecture, images: torch.Tensor, settings: Settings, variant: str,
                   device: torch.device) -> Workload:
    batch = {"pretrain": settings.batch_size, "cluster": settings.cluster_batch_size,
             "target": settings.eval_batch_size}[name]
    return BUILDERS[name](arch, images, batch, variant, device, settings.seed)


def timing_plan(workload: Workload, settings: Settings) -> tuple:
    """(call, images per call, warm-up calls, calls per round) for measure_interleaved."""
    # The target pass processes every image per call: one call per round is already a long measurement.
    calls = 1 if workload.name == "target" else settings.calls
    # A compiled step may compile again on its second call (the backward graph, guards): warm it longer.
    warmup = max(settings.warmup, COMPILE_WARMUP) if workload.variant == "compile" else settings.warmup
    return workload.call, workload.images_per_call, warmup, calls


def page_faults_per_call(call, calls: int) -> float:
    """Minor page faults per call of `call`, from getrusage: memory the kernel had to map in afresh.

    Unlike a rate, this count does not depend on other load on the machine, so it shows the allocator's
    effect (model.keep_freed_memory) even where the timings are noisy.
    """
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(calls):
        call()
    return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / calls


def measure_device(arch: Architecture, settings: Settings, device: torch.device) -> tuple[Rate, list[Row]]:
    """The matmul peak (GFLOP/s over all rounds) and one row per (size, workload, variant) on `device`.

    The variants of one workload and the matmul are timed in interleaved rounds, so that load from other
    processes hits them alike.
    """
    matmul = matmul_plan(settings.matmul_size, settings.matmul_repeats, device)
    peak_rounds: list[float] = []
    measured = []  # (size, workload name, variant, Workload, Rate, eager median, page faults per call)
    for size in settings.sizes:
        images = synthetic_images(settings.n_images, size, arch.channels, settings.seed).to(device)
        for name in settings.workloads:
            workloads = {v: build_workload(name, arch, images, settings, v, device) for v in settings.variants}
            plans = {v: timing_plan(w, settings) for v, w in workloads.items()} | {PEAK: matmul}
            rates = measure_interleaved(plans, settings.rounds, synchronizer(device))
            peak_rounds += rates.pop(PEAK).per_round
            eager_rate = rates["eager"].median if "eager" in rates else None
            for variant, workload in workloads.items():
                print(f"{device} {size}px {name:8s} {variant:13s} {rates[variant].median:8.1f} img/s",
                      file=sys.stderr)
                faults = page_faults_per_call(workload.call, timing_plan(workload, settings)[3])
                measured.append((size, name, variant, workload, rates[variant], eager_rate, faults))
    peak = Rate(statistics.median(peak_rounds), max(peak_rounds), tuple(peak_rounds))
    print(f"{device}: fp32 matmul {peak.median:.1f} GFLOP/s (median), {peak.best:.1f} (best)", file=sys.stderr)
    rows = []
    for size, name, variant, workload, rate, eager_rate, faults in measured:
        note = "" if workload.compiled is not False else "compile failed: eager fallback"
        batch = settings.eval_batch_size if name == "target" else workload.images_per_call
        rows.append(Row(str(device), size, name, variant, batch, workload.flops_per_image / GIGA, rate, peak,
                        eager_rate, faults, note))
    return peak, rows


def results_table(rows: list[Row]) -> str:
    headers = ["device", "size", "workload", "variant", "batch", "GFLOP/img", "img/s (median)", "img/s (best)",
               "GFLOP/s", "% of matmul peak", "% of peak (best rounds)", "× eager", "page faults per call",
               "note"]
    cells = [[r.device, f"{r.size}×{r.size}×3", r.workload, r.variant, r.batch, _fmt3(r.gflop_per_image),
              r.rate.median, r.rate.best, r.gflops, f"{r.share_of_peak:.0%}", f"{r.best_share_of_peak:.0%}",
              f"{r.rate.median / r.eager_rate:.2f}" if r.eager_rate else None, round(r.faults_per_call), r.note]
             for r in rows]
    return _record.markdown_table(headers, cells)


def _fmt3(value: float) -> str:
    return f"{value:.3f}"


def training_goal(rows: list[Row], size: int) -> tuple[bool | None, Row | None]:
    """The best CPU pretraining-step row at `size` and whether it reaches the goal share of the peak."""
    candidates = [r for r in rows if r.device == "cpu" and r.workload == "pretrain" and r.size == size]
    if not candidates:
        return None, None
    best = max(candidates, key=lambda r: r.rate.median)
    return best.share_of_peak >= GOAL_SHARE_OF_PEAK, best


def profile_table(arch: Architecture, settings: Settings, row: Row) -> str:
    """torch.profiler's top operators by self CPU time for a few calls of the row's workload."""
    device = torch.device(row.device)
    images = synthetic_images(settings.n_images, row.size, arch.channels, settings.seed)
    workload = build_workload(row.workload, arch, images, settings, row.variant, device)
    for _ in range(max(1, settings.warmup)):
        workload.call()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        for _ in range(PROFILE_CALLS):
            workload.call()
    return prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=PROFILE_ROWS)


def flop_check(arch: Architecture, size: int) -> str:
    """One line comparing FlopCounterMode's forward count with the analytic one, for the record."""
    net = build_net(arch, size, torch.device("cpu"), variant="eager", seed=0)
    analytic = analytic_forward_flops(net.cae, size, arch.channels)
    return f"analytic forward count from the layer shapes at {size}×{size}: {analytic / GIGA:.3f} GFLOP/image"


def report(arch: Architecture, settings: Settings, peaks: dict[str, Rate], rows: list[Row]) -> str:
    threads = torch.get_num_threads()
    allocator = ("glibc keeps freed memory (model.keep_freed_memory, applied in-process)"
                 if settings.keep_freed_memory else
                 "malloc defaults (--system-allocator, model.keep_freed_memory false, or not glibc)")
    lines = [
        f"fp32 matmul peak (torch.mm {settings.matmul_size}², {settings.matmul_repeats} calls per round, "
        "interleaved with the steps): "
        + ", ".join(f"{device} {peak.median:.1f} GFLOP/s median, {peak.best:.1f} best round"
                    for device, peak in peaks.items())
        + f"; torch threads {threads}; allocator: {allocator}.\n",
        f"Synthetic uint8 images ({settings.n_images} per size); warm-up {settings.warmup} calls, median of "
        f"{settings.rounds} interleaved rounds (variants take turns) of {settings.calls} steps (the target pass: 1 full pass over all "
        f"{settings.n_images} images per round). FLOPs: FlopCounterMode (matmul/conv forward+backward; "
        f"element-wise ops and Adam not counted); {flop_check(arch, max(settings.sizes))}.\n",
        "`eager` = plain PyTorch: contiguous NCHW, out-of-place activations, default Adam (the \"before\"); "
        "`channels_last` = NHWC weights and input; `tuned` = channels_last + in-place activations + fused Adam, "
        "the step model/ trains with; `compile` = tuned + torch.compile (model.runtime.maybe_compile).\n",
        results_table(rows),
    ]
    size = 128 if 128 in settings.sizes else max(settings.sizes)
    met, best = training_goal(rows, size)
    if best is not None:
        lines.append("Goals:\n\n" + _record.goal_line(
            f"CPU training step ≥ {GOAL_SHARE_OF_PEAK:.0%} of the fp32 matmul peak at {size}×{size}", met,
            f"best: {best.variant} {best.rate.median:.1f} img/s = {best.gflops:.1f} GFLOP/s = "
            f"{best.share_of_peak:.0%} of the matmul's {best.peak.median:.1f}; best rounds "
            f"{best.best_share_of_peak:.0%}"))
        if settings.profile == "always" or (settings.profile == "auto" and not met):
            print("profiling the best CPU training step ...", file=sys.stderr)
            lines.append(f"Where the time goes (torch.profiler, {PROFILE_CALLS} {best.variant} pretraining steps "
                         f"of {best.batch} images at {size}×{size}, top {PROFILE_ROWS} operators by self CPU "
                         f"time):\n\n```\n{profile_table(arch, settings, best).rstrip()}\n```\n")
    return "\n".join(lines)


def parse_list(text: str, allowed: tuple[str, ...] | None = None) -> tuple[str, ...]:
    items = tuple(part.strip() for part in text.split(",") if part.strip())
    unknown = [item for item in items if allowed is not None and item not in allowed]
    if unknown or not items:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a comma-separated list of {allowed}")
    return items


def parse_devices(text: str) -> tuple[torch.device, ...]:
    if text == "auto":
        return (torch.device("cpu"),) + ((torch.device("cuda"),) if torch.cuda.is_available() else ())
    devices = tuple(torch.device(name) for name in parse_list(text))
    if any(d.type == "cuda" for d in devices) and not torch.cuda.is_available():
        raise SystemExit("--devices names cuda but CUDA is not available")
    return devices


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--sizes", default="128,32", help="image sizes (128: the paper; 32: the embedded default)")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--workloads", default=",".join(WORKLOADS))
    parser.add_argument("--devices", default="auto", help="auto = cpu, plus cuda when available")
    parser.add_argument("--batch-size", type=int, help="pretraining batch (default: params pretrain.batch_size)")
    parser.add_argument("--cluster-batch-size", type=int, help="default: params cluster.batch_size")
    parser.add_argument("--eval-batch-size", type=int, default=256, help="batch of the target-distribution pass")
    parser.add_argument("--images", type=int, default=1024, help="synthetic images per size (the target pass)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--calls", type=int, default=3, help="training steps per timed round")
    parser.add_argument("--matmul-size", type=int, default=2048)
    parser.add_argument("--matmul-repeats", type=int, default=5)
    parser.add_argument("--profile", choices=("auto", "always", "never"), default="auto",
                        help="auto: profile when the CPU training goal is not met")
    parser.add_argument("--system-allocator", action="store_true",
                        help="leave glibc malloc at its defaults instead of params model.keep_freed_memory")
    _record.add_record_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> str:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    params = load_params(path=args.params)
    arch = architecture_from_params(params)
    settings = Settings(
        sizes=tuple(int(s) for s in parse_list(args.sizes)), variants=parse_list(args.variants, VARIANTS),
        workloads=parse_list(args.workloads, WORKLOADS), devices=parse_devices(args.devices),
        batch_size=args.batch_size or int(params["pretrain"]["batch_size"]),
        cluster_batch_size=args.cluster_batch_size or int(params["cluster"]["batch_size"]),
        eval_batch_size=args.eval_batch_size, n_images=args.images, warmup=args.warmup, rounds=args.rounds,
        calls=args.calls, matmul_size=args.matmul_size, matmul_repeats=args.matmul_repeats, profile=args.profile,
        seed=int(params["base"]["seed"]),
        keep_freed_memory=keep_freed_memory(params["model"]["keep_freed_memory"] and not args.system_allocator))
    if settings.n_images % settings.eval_batch_size:
        raise SystemExit(f"--images {settings.n_images} must be a multiple of --eval-batch-size "
                         f"{settings.eval_batch_size} (one compiled shape for the target pass)")
    peaks, rows = {}, []
    for device in settings.devices:
        peaks[str(device)], device_rows = measure_device(arch, settings, device)
        rows += device_rows
    body = report(arch, settings, peaks, rows)
    return _record.publish(args, "bench.train", argv, "Training throughput (bench/train.py)", body)


if __name__ == "__main__":
    main()
