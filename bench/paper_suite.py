"""`make bench-paper`: the GPU run of issue #17, every part with its own time budget, recorded in
docs/BENCHMARKS.md with the device.

    python -m bench.paper_suite [--budget-paper 20] [--budget-matrix 10] [--budget-fmnist 30] [--fmnist-on-cpu]

Parts, each a child process (in its own process group) stopped at its budget (minutes):
1. the paper configuration (`bench.paper_run --profile profiles/paper.yaml`): with CUDA the whole DCEC-Paint run
   (10,500 images at 128 px, 200 epochs at batch 512, clustering to convergence or 20,000 iterations), without
   it the extrapolation from unit costs;
2. the paper profile's experiment matrix (`bench.paper_matrix`): every run of `make repro-paper` costed on
   this device, and the wall time against the number of devices (issue #18);
3. the full Fashion-MNIST protocol for one seed (`model.verify`, into a scratch folder, so the committed
   seeds in reports/verify/ are neither reused nor touched): 70,000 images, 200 pretraining epochs, up to
   20,000 joint iterations. Needs the four idx files in --fmnist-dir (`make verify` installs them to
   /usr/share/datasets/fashion-mnist); skipped, and said so, without them. On a CPU only with --fmnist-on-cpu,
   and then with a budget of 150 minutes unless given (about 1.5 hours on 2 cores).

Parts 1 and 2 record their own sections; this script records part 3 and every part that ran out of its
budget or failed (with the last lines it printed), so an interrupted GPU lease still leaves a record. A part
stopped at its budget is not resumed: its time is the measurement. The defaults add up to an hour; on a
shorter lease give smaller budgets (e.g. `--budget-paper 6 --budget-matrix 3 --budget-fmnist 5` for 15
minutes, which records how far each part got). Each part's full output is in --log-dir (logs/bench-paper/,
ignored by git).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from bench import _record
from bench.paper_run import hours
from model.fashion_mnist import DATA_DIR as FASHION_MNIST_DIR
from model.fashion_mnist import FILES as FASHION_FILES

LOG_DIR = Path("logs/bench-paper")
PAPER_PROFILE = "profiles/paper.yaml"
TAIL_LINES = 15


@dataclass(frozen=True)
class Part:
    name: str
    budget_minutes: float
    command: list[str]


@dataclass(frozen=True)
class Outcome:
    name: str
    status: str  # "finished", "over budget" or "failed (exit N)"
    seconds: float
    tail: str


def last_lines(path: Path, count: int = TAIL_LINES) -> str:
    """The last `count` lines of a log, progress-bar carriage returns turned into lines."""
    text = path.read_text(encoding="utf-8", errors="replace").replace("\r", "\n")
    return "\n".join([line for line in text.splitlines() if line.strip()][-count:])


def run_part(part: Part, log: Path) -> Outcome:
    """Run the part's command with its output in `log`; when its budget has passed, kill its whole process
    group (a part that started children of its own does not leave them running)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    print(f"paper_suite: {part.name} (budget {part.budget_minutes:g} min; log {log}) ...", file=sys.stderr)
    started = time.perf_counter()
    with log.open("w", encoding="utf-8") as out:
        process = subprocess.Popen(part.command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            code = process.wait(timeout=part.budget_minutes * 60)
            status = "finished" if code == 0 else f"failed (exit {code})"
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            status = "over budget"
    seconds = time.perf_counter() - started
    print(f"paper_suite: {part.name}: {status} after {hours(seconds)}", file=sys.stderr)
    return Outcome(part.name, status, seconds, last_lines(log))


def fmnist_summary(out_dir: Path) -> str | None:
    """The seed's wall time and scores from the seed file model.verify wrote; None if it is missing or
    not as expected (the part's log then goes into the record instead)."""
    try:
        seed = json.loads(next(out_dir.rglob("seed-0.json")).read_text(encoding="utf-8"))
        rows = [[method, f"{scores['acc']:.3f}", f"{scores['nmi']:.3f}"] for method, scores in seed["results"].items()]
        dcec = seed["results"]["dcec"]
        return (f"Full Fashion-MNIST protocol, seed 0 (`model.verify`; code {seed['key']['code']}): "
                f"**{hours(seed['seconds'])}** wall on {seed['key']['device']} "
                f"({'converged' if dcec['converged'] else 'stopped at maxiter'} after {dcec['n_iter']} joint "
                f"iterations).\n\n" + _record.markdown_table(["method", "ACC", "NMI"], rows))
    except (StopIteration, OSError, ValueError, KeyError, TypeError):
        return None


def outcome_section(outcome: Outcome, budget_minutes: float) -> str:
    return (f"**{outcome.name}: {outcome.status}** after {hours(outcome.seconds)} (budget {budget_minutes:g} min). "
            f"Last lines it printed:\n\n```\n{outcome.tail}\n```\n")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget-paper", type=float, default=20.0, help="minutes for the paper configuration")
    parser.add_argument("--budget-matrix", type=float, default=10.0, help="minutes for the experiment matrix")
    parser.add_argument("--budget-fmnist", type=float, default=None,
                        help="minutes for the Fashion-MNIST seed (default 30 on CUDA, 150 on a CPU)")
    parser.add_argument("--fmnist-on-cpu", action="store_true", help="run part 3 without CUDA too (hours)")
    parser.add_argument("--fmnist-dir", type=Path, default=FASHION_MNIST_DIR, help="the four idx .gz files")
    parser.add_argument("--log-dir", type=Path, default=LOG_DIR, help="each part's full output (ignored by git)")
    _record.add_record_arguments(parser)
    return parser


def plan_parts(args: argparse.Namespace, cuda: bool, scratch: Path) -> tuple[list[Part], str]:
    """The parts to run on this machine, and a sentence on any that will not run."""
    python = [sys.executable, "-m"]
    record = ["--no-record"] if args.no_record else ["--record-to", str(args.record_to)]
    parts = [Part("paper configuration", args.budget_paper,
                  [*python, "bench.paper_run", "--profile", PAPER_PROFILE, *(["--full"] if cuda else []), *record]),
             Part("experiment matrix", args.budget_matrix, [*python, "bench.paper_matrix", *record])]
    if not (cuda or args.fmnist_on_cpu):
        return parts, ("The Fashion-MNIST seed did not run: no CUDA device (`--fmnist-on-cpu` runs it anyway; "
                       "`make verify-full` records the 2-core CPU time per seed in docs/VERIFICATION.md).")
    missing = [name for split in FASHION_FILES.values() for name in split if not (args.fmnist_dir / name).is_file()]
    if missing:
        return parts, (f"The Fashion-MNIST seed did not run: {args.fmnist_dir} lacks {', '.join(missing)} "
                       "(`make verify` installs them; or give --fmnist-dir).")
    budget = args.budget_fmnist if args.budget_fmnist is not None else (30.0 if cuda else 150.0)
    parts.append(Part("Fashion-MNIST seed", budget,
                      [*python, "model.verify", "--seeds", "1", "--out", str(scratch / "reports"),
                       "--work-dir", str(scratch / "models"), "--data-dir", str(args.fmnist_dir)]))
    return parts, ""


def main(argv: list[str] | None = None) -> str:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    cuda = torch.cuda.is_available()
    rows, details = [], []
    with tempfile.TemporaryDirectory(prefix="bench-paper-") as scratch:
        parts, not_run = plan_parts(args, cuda, Path(scratch))
        for part in parts:
            outcome = run_part(part, args.log_dir / (part.name.split(" ")[0].lower().replace("-", "_") + ".log"))
            rows.append([part.name, outcome.status, outcome.seconds, hours(outcome.seconds), part.budget_minutes])
            summary = fmnist_summary(Path(scratch) / "reports") if part.name == "Fashion-MNIST seed" else None
            if outcome.status != "finished" or (part.name == "Fashion-MNIST seed" and summary is None):
                details.append(outcome_section(outcome, part.budget_minutes))
            elif summary:
                details.append(summary)
    body = (f"CUDA: {'yes, ' + torch.cuda.get_device_name(0) if cuda else 'no (CPU only)'}. Parts 1 and 2 record "
            f"their own sections just above this one when they finish.\n\n"
            + _record.markdown_table(["part", "status", "seconds", "h:mm:ss", "budget (min)"], rows)
            + (f"\n{not_run}\n" if not_run else "") + "\n" + "\n".join(details))
    return _record.publish(args, "bench.paper_suite", argv, "make bench-paper (bench/paper_suite.py)", body)


if __name__ == "__main__":
    main()
