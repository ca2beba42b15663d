"""Benchmark: the cost of N2D's clustering step (UMAP + Gaussian mixture, `model.methods.n2d_cluster`) and its
determinism, at the sizes the pipeline runs it (issue #28).

    python -m bench.n2d_cost [--cases 352x32:10,10800x32:50,70000x32:10] [--case-timeout 600] [--no-record]

Cases are N × D embeddings at k clusters (n_components = k, N2D's rule, with params.yaml's `n2d` settings):
352 × 32 at k = 10 is the embedded default's compare set, 10,800 × 32 at k = 50 the mission profile's, and
70,000 at k = 10 Fashion-MNIST's full protocol (whose CAE embedding is 10-D; 32 here bounds it from above).
The embeddings are synthetic Gaussian blobs (`make_blobs`, k centres): the cost of UMAP depends mainly on N and
D, but its nearest-neighbour descent and the mixture's EM iterations also depend on the data's structure, so
real embeddings may take somewhat longer or shorter.

Each case runs in a fresh process, so that its peak resident memory (ru_maxrss) is its own and numba's JIT
compilation is paid in it, as in every compare worker. In that process:
* the pipeline's seeded step, cold: the first fit, numba compiling what it uses (UMAP's exact neighbours below
  4,096 points, NN-descent above), as the first n2d run of a compare worker pays it;
* the same step again with the same seed, warm: its seconds, and whether the assignments and the manifold are
  identical (UMAP is deterministic only when seeded; umap-learn then runs single-threaded);
* the same step unseeded (umap-learn's default n_jobs=-1, numba on every core), warm: after an unseeded fit of
  min(N, 5,000) rows that compiles the parallel code, so that seeded against unseeded compares the work alone.
The memory column is the peak resident size of the process after the seeded runs (numba's compilation
included), and that peak less its size before the first fit (the embedding, numpy, scikit-learn, torch and
umap-learn already loaded).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

from bench import _record
from common import load_params

DEFAULT_CASES = "352x32:10,10800x32:50,70000x32:10"
UNSEEDED_WARM_UP_ROWS = 5000  # above umap-learn's 4,096-point switch to NN-descent: compiles its parallel paths


def parse_cases(text: str) -> list[tuple[int, int, int]]:
    """'352x32:10,...' → [(N, D, k), ...]."""
    cases = []
    for item in text.split(","):
        shape, _, k = item.partition(":")
        n, _, d = shape.partition("x")
        cases.append((int(n), int(d), int(k)))
    return cases


def resident_mb() -> float:
    """This process's resident set size now, in MB (Linux /proc)."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 1e6


def peak_mb() -> float:
    """This process's peak resident set size so far, in MB (ru_maxrss is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6


def timed(call):
    started = time.perf_counter()
    result = call()
    return time.perf_counter() - started, result


def measure_case(n: int, d: int, k: int, settings: dict, seed: int = 0) -> dict:
    """One case, in this process (the child): warm-up, two seeded runs, one unseeded run."""
    import numpy as np  # noqa: PLC0415 - the child imports what it measures
    import umap  # noqa: PLC0415
    from sklearn.datasets import make_blobs  # noqa: PLC0415
    from sklearn.mixture import GaussianMixture  # noqa: PLC0415

    from model.methods import n2d_cluster  # noqa: PLC0415

    embedding, _ = make_blobs(n_samples=n, n_features=d, centers=k, random_state=seed)
    embedding = embedding.astype(np.float32)  # (N, D)
    before = resident_mb()
    cold_s, (labels, manifold) = timed(lambda: n2d_cluster(embedding, k, seed, settings))
    seeded_peak = peak_mb()
    warm_s, (labels_again, manifold_again) = timed(lambda: n2d_cluster(embedding, k, seed, settings))

    def unseeded(rows: np.ndarray) -> np.ndarray:
        reducer = umap.UMAP(n_components=k, n_neighbors=settings["n_neighbors"], min_dist=settings["min_dist"],
                            metric=settings["metric"])  # random_state None: n_jobs=-1, numba on every core
        layout = reducer.fit_transform(rows)
        return GaussianMixture(k, covariance_type=settings["covariance_type"], random_state=seed).fit_predict(layout)

    unseeded(embedding[:UNSEEDED_WARM_UP_ROWS])
    unseeded_s, _ = timed(lambda: unseeded(embedding))
    return {"n": n, "d": d, "k": k, "cold_s": cold_s, "warm_s": warm_s,
            "identical": bool(np.array_equal(labels, labels_again) and np.array_equal(manifold, manifold_again)),
            "unseeded_s": unseeded_s, "peak_mb": seeded_peak, "peak_above_start_mb": seeded_peak - before,
            "cores": os.cpu_count()}


def run_case(n: int, d: int, k: int, timeout: float) -> dict:
    """`measure_case` in a fresh Python process; {'n', 'd', 'k', 'stopped_after_s'} when it ran out of time."""
    command = [sys.executable, "-m", "bench.n2d_cost", "--child", f"{n}x{d}:{k}"]
    print(f"n2d_cost: {n:,} x {d} at k = {k} ...", file=sys.stderr)
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=True)
    except subprocess.TimeoutExpired:
        return {"n": n, "d": d, "k": k, "stopped_after_s": timeout}
    return json.loads(done.stdout.strip().splitlines()[-1])


def lscpu_summary() -> str:
    """lscpu's model name, CPUs and threads per core, or '' where lscpu is missing."""
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return ""
    wanted = ("Model name", "CPU(s)", "Thread(s) per core", "Core(s) per socket")
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    return "; ".join(f"{key} {fields[key].strip()}" for key in wanted if key in fields)


def report(rows: list[dict], settings: dict, timeout: float, load_at_start: float) -> str:
    table = []
    for row in rows:
        shape = f"{row['n']:,} × {row['d']}"
        if "stopped_after_s" in row:
            table.append([shape, row["k"], f"stopped after {row['stopped_after_s']:.0f} s"] + ["–"] * 5)
            continue
        table.append([shape, row["k"], row["cold_s"], row["warm_s"], "yes" if row["identical"] else "**no**",
                      row["unseeded_s"], f"{row['warm_s'] / row['unseeded_s']:.2f}",
                      f"{row['peak_mb']:,.0f} ({row['peak_above_start_mb']:+,.0f})"])
    return (f"lscpu: {lscpu_summary()}. Load average at the start {load_at_start:.1f} (the cores are shared). "
            f"Settings: params.yaml n2d {settings}; n_components = k. Embeddings: synthetic Gaussian blobs "
            "(k centres), not real CAE embeddings. Each case in a fresh process; cases over "
            f"{timeout:.0f} s are stopped.\n\n" + _record.markdown_table(
                ["N × D", "k", "seeded, first fit s (numba JIT included)", "seeded again s", "identical on rerun",
                 "unseeded s (every core)", "seeded / unseeded", "peak RSS MB (above start)"],
                table))


def main(argv: list[str] | None = None) -> str | None:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = argparse.ArgumentParser(description="Seconds, peak memory and determinism of N2D's UMAP + GMM step.")
    parser.add_argument("--cases", default=DEFAULT_CASES, help="NxD:k,... (default %(default)s)")
    parser.add_argument("--case-timeout", type=float, default=600.0, help="seconds before a case is stopped")
    parser.add_argument("--child", help=argparse.SUPPRESS)  # one case, in the child process: prints JSON
    _record.add_record_arguments(parser)
    args = parser.parse_args(argv)
    settings = load_params("n2d")
    if args.child:
        print(json.dumps(measure_case(*parse_cases(args.child)[0], settings)))
        return None
    load_at_start = os.getloadavg()[0]
    rows = [run_case(n, d, k, args.case_timeout) for n, d, k in parse_cases(args.cases)]
    return _record.publish(args, "bench.n2d_cost", argv, "N2D's UMAP + Gaussian mixture step (bench/n2d_cost.py)",
                           report(rows, settings, args.case_timeout, load_at_start))


if __name__ == "__main__":
    main()
