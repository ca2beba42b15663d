"""Benchmark: where the time of the project's training passes goes, operator by operator and layer by layer.

    python -m bench.step_profile [--nets paper,guo] [--passes pretrain,cluster,target] [--precision fp32|bf16]
                                 [--baseline REF]

For each net of bench/keras_compare.py (DCEC-Paint at 128×128×3, Guo's at 28×28×1; batch 256) and each pass, the
pass model/ runs (bench/_workloads.py, variant `tuned`) is started in a fresh process, warmed up, then `--rounds` rounds run under
torch.profiler with input shapes recorded. Two tables per pass: operators by self CPU time, and the same
grouped by input shape, which tells the layers apart (a convolution's shapes name its layer). This is the
profile issue #17 asks for where a pass is not yet ahead of Keras.

`--baseline REF` profiles git REF too (checked out in a temporary worktree), pass by pass beside this tree, so
that a kernel change is measured before and after in the same run (issue #31).
"""

from __future__ import annotations

import argparse
import contextlib
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import torch

from bench import _record
from bench.keras_compare import CALLS, PASSES, torch_round_fn
from model.runtime import keep_freed_memory

ROWS = 12


def profile_pass(net: str, workload: str, rounds: int, precision: str) -> tuple[float, str, str]:
    """(img/s while profiled, operator table, operator-by-input-shape table) of `rounds` rounds, each of
    bench.keras_compare's batches per round for this net and pass."""
    one_round, images, _ = torch_round_fn(net, workload, CALLS.get((net, workload), 1), torch.get_num_threads(),
                                          precision)
    one_round()  # warm-up: oneDNN primitives, allocator
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], record_shapes=True) as prof:
        started = time.perf_counter()
        for _ in range(rounds):
            with torch.inference_mode(workload == "target"):
                one_round()
        seconds = time.perf_counter() - started
    averages = prof.key_averages()
    by_op = averages.table(sort_by="self_cpu_time_total", row_limit=ROWS, max_name_column_width=40)
    by_shape = prof.key_averages(group_by_input_shape=True).table(
        sort_by="self_cpu_time_total", row_limit=ROWS, max_name_column_width=30, max_shapes_column_width=80)
    return images * rounds / seconds, by_op, by_shape


def section(net: str, workload: str, rounds: int, precision: str) -> str:
    rate, by_op, by_shape = profile_pass(net, workload, rounds, precision)
    return (f"**{net}, {workload}** ({rate:,.0f} img/s while profiled)\n\n```\n{by_op.rstrip()}\n```\n\n"
            f"By input shape (which layer):\n\n```\n{by_shape.rstrip()}\n```\n")


@contextlib.contextmanager
def trees(baseline: str | None) -> Iterator[list[tuple[str, Path]]]:
    """[(label, source tree)]: a worktree of `baseline` first when given, then this tree."""
    here = Path.cwd()
    if baseline is None:
        yield [("", here)]
        return
    with tempfile.TemporaryDirectory(prefix="step-profile-") as scratch:
        worktree = Path(scratch) / "baseline"
        commit = subprocess.run(["git", "rev-parse", "--short", baseline], capture_output=True, text=True,
                                check=True).stdout.strip()
        subprocess.run(["git", "worktree", "add", "--detach", str(worktree), commit], capture_output=True, check=True)
        try:
            named = baseline if commit.startswith(baseline) else f"{baseline} = {commit}"
            yield [(f"before ({named}): ", worktree), ("after (this tree): ", here)]
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(worktree)], capture_output=True)


def main(argv: list[str] | None = None) -> str | None:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nets", default="paper,guo")
    parser.add_argument("--passes", default="pretrain,cluster")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    parser.add_argument("--rounds", type=int, default=1, help="profiled rounds per pass (bench.keras_compare's)")
    parser.add_argument("--baseline", metavar="REF", help="profile git REF too, pass by pass beside this tree")
    parser.add_argument("--single", nargs=2, metavar=("NET", "PASS"), help=argparse.SUPPRESS)
    _record.add_record_arguments(parser)
    args = parser.parse_args(argv)
    if args.single:  # one pass in a fresh process, as bench.keras_compare times it: passes run one after
        keep_freed_memory(True)  # another in one process slowed the later ones by up to 1.5x (heap state)
        print(section(*args.single, args.rounds, args.precision))
        return None
    sections = [f"Precision {args.precision}, {torch.get_num_threads()} threads, {args.rounds} profiled round(s) per "
                "pass after one warm-up round, a round as in bench.keras_compare, each pass in a fresh process (the "
                "profiler itself slows the pass a little: take rates from bench.keras_compare).\n"]
    with trees(args.baseline) as sources:
        for net in args.nets.split(","):
            for workload in args.passes.split(","):
                if workload not in PASSES:
                    raise SystemExit(f"--passes: {workload!r} is not one of {PASSES}")
                for label, tree in sources:
                    print(f"step_profile: {label}{net} {workload} ...", file=sys.stderr)
                    sections.append(label + subprocess.run(
                        [sys.executable, "-m", "bench.step_profile", "--single", net, workload, "--rounds",
                         str(args.rounds), "--precision", args.precision], cwd=tree, capture_output=True, text=True,
                        check=True).stdout)
    return _record.publish(args, "bench.step_profile", argv, "Where the training passes' time goes "
                           "(bench/step_profile.py)", "\n".join(sections))


if __name__ == "__main__":
    main()
