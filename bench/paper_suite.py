"""`make bench-paper`: the GPU run of issue #17, every part with its own time budget, recorded in
docs/BENCHMARKS.md with the device.

    python -m bench.paper_suite [--budget-paper 20] [--budget-matrix 10] [--budget-fmnist 30] [--fmnist-on-cpu]

Parts, each a child process stopped at its budget (minutes):
1. the paper configuration (`bench.paper_run --profile profiles/paper.yaml`): with CUDA the whole DCEC-Paint run
   (10,500 images at 128 px, 200 epochs at batch 512, clustering to convergence or 20,000 iterations), without
   it the extrapolation from unit costs;
2. the paper profile's experiment matrix (`bench.paper_matrix`): every run of `make repro-paper` costed on
   this device, and the wall time against the number of devices (issue #18);
3. the full Fashion-MNIST protocol for one seed (`model.verify`, into a scratch folder, so the committed
   seeds in reports/verify/ are neither reused nor touched): 70,000 images, 200 pretraining epochs, up to
   20,000 joint iterations. On a CPU only with --fmnist-on-cpu (about 1.5 hours on 2 cores).

Parts 1 and 2 record their own sections; this script records part 3 and every part that ran out of its
budget or failed (with the last lines it printed), so an interrupted GPU lease still leaves a record.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from bench import _record
from bench.paper_run import hours
from model.verify import DATA_DIR as FASHION_MNIST_DIR

LOG_DIR = Path("logs/bench-paper")
PAPER_PROFILE = "profiles/paper.yaml"
TAIL_LINES = 15


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


def run_part(name: str, command: list[str], budget_minutes: float, log: Path) -> Outcome:
    """Run `command` with its output in `log`; stop it when `budget_minutes` have passed."""
    log.parent.mkdir(parents=True, exist_ok=True)
    print(f"paper_suite: {name} (budget {budget_minutes:g} min; log {log}) ...", file=sys.stderr)
    started = time.perf_counter()
    with log.open("w", encoding="utf-8") as out:
        try:
            code = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT,
                                  timeout=budget_minutes * 60).returncode
            status = "finished" if code == 0 else f"failed (exit {code})"
        except subprocess.TimeoutExpired:
            status = "over budget"
    seconds = time.perf_counter() - started
    print(f"paper_suite: {name}: {status} after {hours(seconds)}", file=sys.stderr)
    return Outcome(name, status, seconds, last_lines(log))


def fmnist_summary(out_dir: Path) -> str:
    """The seed's wall time and scores, from the seed file model.verify wrote."""
    seed_file = next(out_dir.rglob("seed-0.json"))
    seed = json.loads(seed_file.read_text(encoding="utf-8"))
    rows = [[method, f"{scores['acc']:.3f}", f"{scores['nmi']:.3f}"] for method, scores in seed["results"].items()]
    dcec = seed["results"].get("dcec", {})
    return (f"Full Fashion-MNIST protocol, seed 0 (`model.verify`; code {seed['key']['code']}): "
            f"**{hours(seed['seconds'])}** wall on {seed['key']['device']} "
            f"({'converged' if dcec.get('converged') else 'stopped at maxiter'} after {dcec.get('n_iter')} joint "
            f"iterations).\n\n" + _record.markdown_table(["method", "ACC", "NMI"], rows))


def outcome_section(outcome: Outcome, budget_minutes: float) -> str:
    return (f"**{outcome.name}: {outcome.status}** after {hours(outcome.seconds)} (budget {budget_minutes:g} min). "
            f"Last lines it printed:\n\n```\n{outcome.tail}\n```\n")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget-paper", type=float, default=20.0, help="minutes for the paper configuration")
    parser.add_argument("--budget-matrix", type=float, default=10.0, help="minutes for the experiment matrix")
    parser.add_argument("--budget-fmnist", type=float, default=30.0, help="minutes for the Fashion-MNIST seed")
    parser.add_argument("--fmnist-on-cpu", action="store_true", help="run part 3 without CUDA too (hours)")
    parser.add_argument("--fmnist-dir", type=Path, default=FASHION_MNIST_DIR, help="the four idx .gz files")
    parser.add_argument("--log-dir", type=Path, default=LOG_DIR)
    _record.add_record_arguments(parser)
    return parser


def part_commands(cuda: bool, record_args: list[str], scratch: Path, fmnist_on_cpu: bool,
                  fmnist_dir: Path) -> dict[str, list[str]]:
    python = [sys.executable, "-m"]
    parts = {
        "paper configuration": [*python, "bench.paper_run", "--profile", PAPER_PROFILE, *(["--full"] if cuda else []),
                                *record_args],
        "experiment matrix": [*python, "bench.paper_matrix", *record_args],
    }
    if cuda or fmnist_on_cpu:
        parts["Fashion-MNIST seed"] = [*python, "model.verify", "--seeds", "1", "--out", str(scratch / "reports"),
                                       "--work-dir", str(scratch / "models"), "--data-dir", str(fmnist_dir)]
    return parts


def main(argv: list[str] | None = None) -> str:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    cuda = torch.cuda.is_available()
    record_args = ["--no-record"] if args.no_record else ["--record-to", str(args.record_to)]
    budgets = {"paper configuration": args.budget_paper, "experiment matrix": args.budget_matrix,
               "Fashion-MNIST seed": args.budget_fmnist}
    rows, details = [], []
    with tempfile.TemporaryDirectory(prefix="bench-paper-") as scratch:
        for name, command in part_commands(cuda, record_args, Path(scratch), args.fmnist_on_cpu,
                                                   args.fmnist_dir).items():
            log = args.log_dir / (name.split(" ")[0].lower().replace("-", "_") + ".log")
            outcome = run_part(name, command, budgets[name], log)
            rows.append([name, outcome.status, outcome.seconds, hours(outcome.seconds), budgets[name]])
            if outcome.status != "finished":
                details.append(outcome_section(outcome, budgets[name]))
            elif name == "Fashion-MNIST seed":
                details.append(fmnist_summary(Path(scratch) / "reports"))
    skipped = "" if cuda or args.fmnist_on_cpu else (
        "The Fashion-MNIST seed did not run: no CUDA device (`--fmnist-on-cpu` runs it anyway; `make verify-full` "
        "records the 2-core CPU time per seed in docs/VERIFICATION.md).\n\n")
    body = (f"CUDA: {'yes, ' + torch.cuda.get_device_name(0) if cuda else 'no (CPU only)'}. Parts 1 and 2 record "
            f"their own sections just above this one when they finish.\n\n"
            + _record.markdown_table(["part", "status", "seconds", "h:mm:ss", "budget (min)"],
                                     rows)
            + f"\n{skipped}" + "\n".join(details))
    return _record.publish(args, "bench.paper_suite", argv, "make bench-paper (bench/paper_suite.py)", body)


if __name__ == "__main__":
    main()
