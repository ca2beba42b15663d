"""Benchmark: the compare stage run locally and on a two-node Ray cluster on loopback, same machine, same run.

    python -m bench.ray_compare [--profile profiles/mission-demo.yaml] [--inputs DIR] [--no-record]

Needs `pretrain` outputs made with the same profile: this checkout's (`dvc repro pretrain`), or those of another
folder given with --inputs (a scratch copy kept by `bench.pipeline --keep`). The checkout's files and the inputs'
`data/final/` and `models/cae_seeds/` are copied to a scratch folder, and `python -m
model.compare` runs there twice from an empty run cache: `compare.executor: local` (as params.yaml says), then
`compare.executor: ray` on a cluster of two nodes started for the purpose (`ray start --head` and `ray start
--address`, each offered half the cores). On one machine no speed-up is expected: the ratio is what Ray's
scheduling, object store and per-task start-up cost (issue #18). The outputs of both runs are compared too.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from bench import _record
from bench.pipeline import apply_profile_to_copy, copy_checkout

INPUTS = ("data/final", "models/cae_seeds")
OUTPUTS = ("reports/compare/runs.csv", "reports/compare/summary.json", "reports/compare/sweep.csv")


def environment() -> dict[str, str]:
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "DVC_NO_ANALYTICS": "1"}
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


def set_executor(workdir: Path, executor: str, address: str = "auto") -> None:
    path = workdir / "params.yaml"
    params = yaml.safe_load(path.read_text(encoding="utf-8"))
    params["compare"].update(executor=executor, ray_address=address)
    path.write_text(yaml.safe_dump(params, sort_keys=False, allow_unicode=True), encoding="utf-8")


def timed_compare(workdir: Path) -> float:
    shutil.rmtree(workdir / "models/compare_cache", ignore_errors=True)
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "model.compare"], cwd=workdir, env=environment(), check=True)
    return time.perf_counter() - started


def node_cpus(threads_per_run: int) -> tuple[int, int]:
    """(head, worker) CPUs offered on this machine: half the cores each, or, when a run needs more threads than
    half (compare.threads_per_run), none on the head and all on the worker, so that the cluster runs as many
    runs at once as the cores hold, like the local executor, instead of oversubscribing them."""
    cores = os.cpu_count() or 2
    half = max(1, cores // 2)
    return (half, half) if threads_per_run <= half else (0, max(cores, threads_per_run))


def start_cluster(temp: Path, head_cpus: int, worker_cpus: int) -> tuple[str, subprocess.Popen]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    ray = str(Path(sys.executable).parent / "ray")
    subprocess.run([ray, "start", "--head", f"--port={port}", "--include-dashboard=false", "--disable-usage-stats",
                    f"--temp-dir={temp}", f"--num-cpus={head_cpus}", "--node-ip-address=127.0.0.1"],
                   env=environment(), check=True, capture_output=True)
    worker = subprocess.Popen([ray, "start", f"--address=127.0.0.1:{port}", "--block", f"--num-cpus={worker_cpus}",
                               "--node-ip-address=127.0.0.1"], env=environment(),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    return f"127.0.0.1:{port}", worker


def stop_cluster(worker: subprocess.Popen) -> None:
    if worker.poll() is None:
        os.killpg(worker.pid, 9)
    subprocess.run([str(Path(sys.executable).parent / "ray"), "stop", "--force"], env=environment(),
                   capture_output=True)


def main(argv: list[str] | None = None) -> str:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", type=Path, help="apply this profile to the copy's params.yaml first")
    parser.add_argument("--source", type=Path, default=Path("."), help="the checkout (with pretrain outputs)")
    parser.add_argument("--inputs", type=Path, default=None,
                        help="take data/final and models/cae_seeds from this folder instead (e.g. a scratch copy "
                             "kept by `bench.pipeline --keep`); the code stays --source's")
    _record.add_record_arguments(parser)
    args = parser.parse_args(argv)
    source = args.source.resolve()
    workdir = Path(tempfile.mkdtemp(prefix="bench-ray-"))
    temp = Path(tempfile.mkdtemp(prefix="ray", dir="/tmp"))
    try:
        copy_checkout(source, workdir)
        for relative in INPUTS:
            shutil.copytree((args.inputs or source) / relative, workdir / relative)
        if args.profile:
            apply_profile_to_copy(workdir, args.profile)
        set_executor(workdir, "local")
        local_seconds = timed_compare(workdir)
        local_outputs = {name: (workdir / name).read_bytes() for name in OUTPUTS}
        params = yaml.safe_load((workdir / "params.yaml").read_text(encoding="utf-8"))
        threads = int(params["compare"]["threads_per_run"])
        head_cpus, worker_cpus = node_cpus(threads)
        address, worker = start_cluster(temp, head_cpus, worker_cpus)
        try:
            set_executor(workdir, "ray", address)
            ray_seconds = timed_compare(workdir)
        finally:
            stop_cluster(worker)
        same = all((workdir / name).read_bytes() == local_outputs[name] for name in OUTPUTS)
        runs = len(list((workdir / "models/compare_cache").glob("*.json")))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        shutil.rmtree(temp, ignore_errors=True)
    what = f"params.yaml with `{args.profile}`" if args.profile else "the embedded default (params.yaml)"
    if args.inputs:
        what += f", its inputs ({', '.join(INPUTS)}) from `{args.inputs}`"
    body = (f"The compare stage of {what}: {runs} runs from an empty cache, local executor then a two-node Ray "
            f"cluster on loopback (head {head_cpus} CPU(s), worker {worker_cpus}; {threads} thread(s) per run), same "
            f"machine, same run.\n\n"
            + _record.markdown_table(["executor", "seconds", "ratio to local"],
                                     [["local (compare.workers)", local_seconds, "1.00"],
                                      ["ray, 2 loopback nodes", ray_seconds, f"{ray_seconds / local_seconds:.2f}"]])
            + f"\nOutputs (runs.csv, summary.json, sweep.csv) byte-identical: **{'yes' if same else 'NO'}**.\n")
    return _record.publish(args, "bench.ray_compare", argv, "Compare on Ray against local (bench/ray_compare.py)", body)


if __name__ == "__main__":
    main()
