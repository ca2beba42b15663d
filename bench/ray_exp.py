"""Check: `dvc exp run -S compare.executor=ray` on a two-node loopback Ray cluster gives the committed reports/compare/.

    python -m bench.ray_exp [--source .] [--no-record]

Issue #18's "done when", run for real. The HEAD commit of --source (whose `reports/compare/` the local executor
made) is cloned into a scratch folder with an empty DVC cache of its own, so nothing can be restored: `dvc exp
run` recomputes every stage from the embedded demo site, and every compare run on the cluster (`ray start
--head` and `ray start --address`, each offered half the cores). Then `runs.csv`, `summary.json` and
`sweep.csv` are compared byte for byte with the committed ones. Refuses params that crawl christies.com: a
check must not re-crawl the real site.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from bench import _record
from bench.ray_compare import OUTPUTS, environment, node_cpus, start_cluster, stop_cluster


def main(argv: list[str] | None = None) -> str:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=Path("."), help="the checkout whose HEAD is cloned")
    _record.add_record_arguments(parser)
    args = parser.parse_args(argv)
    source = args.source.resolve()
    committed = yaml.safe_load(subprocess.run(["git", "show", "HEAD:params.yaml"], cwd=source, check=True,
                                              capture_output=True, text=True).stdout)
    if committed["scrape"]["site"] != "demo":
        parser.error("HEAD's params.yaml crawls the real site (scrape.site is not demo); this check re-runs the "
                     "crawl, so it runs on the embedded demo only")
    scratch = Path(tempfile.mkdtemp(prefix="bench-ray-exp-"))
    temp = Path(tempfile.mkdtemp(prefix="ray", dir="/tmp"))
    repo = scratch / "checkout"
    head_cpus, worker_cpus = node_cpus(int(committed["compare"]["threads_per_run"]))
    try:
        subprocess.run(["git", "clone", "-q", str(source), str(repo)], check=True)
        subprocess.run(["dvc", "cache", "dir", "--local", str(scratch / "dvc-cache")], cwd=repo, env=environment(),
                       check=True)
        local_outputs = {name: (repo / name).read_bytes() for name in OUTPUTS}
        address, worker = start_cluster(temp, head_cpus, worker_cpus)
        try:
            started = time.perf_counter()
            subprocess.run(["dvc", "exp", "run", "-S", "compare.executor=ray", "-S", f"compare.ray_address={address}"],
                           cwd=repo, env=environment(), check=True)
            seconds = time.perf_counter() - started
        finally:
            stop_cluster(worker)
        differing = [name for name in OUTPUTS if (repo / name).read_bytes() != local_outputs[name]]
        runs = len(list((repo / "models/compare_cache").glob("*.json")))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        shutil.rmtree(temp, ignore_errors=True)
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=source, check=True, capture_output=True,
                          text=True).stdout.strip()
    verdict = "**byte-identical**" if not differing else "**DIFFERENT**: " + ", ".join(differing)
    body = (f"A clone of {head} with an empty DVC cache: `dvc exp run -S compare.executor=ray -S "
            f"compare.ray_address=…` on a two-node loopback cluster (head {head_cpus} CPU(s), worker {worker_cpus}) "
            f"recomputed "
            f"every stage from the embedded demo site, compare's {runs} runs on the cluster, in {seconds:,.0f} s. "
            f"reports/compare/ (runs.csv, summary.json, sweep.csv) against the committed local-executor files: "
            f"{verdict}.\n")
    return _record.publish(args, "bench.ray_exp", argv, "dvc exp run on Ray against the committed local run "
                           "(bench/ray_exp.py)", body)


if __name__ == "__main__":
    main()
