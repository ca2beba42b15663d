"""Benchmark: the whole pipeline from scratch on the embedded default, stage by stage.

    python -m bench.pipeline [--runner dvc|cmds] [--profile profiles/mission-demo.yaml] [--keep] [--no-record]

The checkout's files (tracked and untracked-but-not-ignored, as `git ls-files -co --exclude-standard` lists
them: no data outputs, no DVC cache, no virtualenv) are copied to a scratch folder, so the run never
touches this checkout's data/, models/ or reports/, and every stage starts from nothing as on a fresh
clone. Then:
* `--runner dvc` (default): `dvc repro --force` in the copy (a throwaway `git init` + commit makes it a
  DVC workspace), with the Makefile's environment (the virtualenv first on PATH, no analytics). Each
  stage's time runs from DVC's `Running stage '<name>'` line to the next one, so it includes DVC hashing
  and caching that stage's outputs, as `make repro` does;
* `--runner cmds`: each stage's `cmd` from dvc.yaml, in dependency order, timed alone (no DVC overhead).

`--profile` applies a profile's overrides to the copy's params.yaml first (as `dvc exp run -S` would); with
profiles/mission-demo.yaml (`make bench-mission`) the mission's goals are checked from the copy's outputs:
≤ 60 minutes, peak memory ≤ 8 GB (the largest resident set of any stage process), ≥ 10,000 of the 12,500
sampled works in data/final/, and results.md at k = 50.
"""

from __future__ import annotations

import argparse
import csv
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

from bench import _record
from common.profiles import apply_profile, check_profile, load_profile

GOAL_SECONDS = 600.0  # issue #8: `make repro` within 10 minutes on 2 cores
MISSION_GOAL_SECONDS = 3600.0  # issue #14: the mission-size demo profile within 60 minutes on 2 cores
MISSION_GOAL_PEAK_BYTES = 8 * 2**30
MISSION_GOAL_FINAL_WORKS = 10_000
STAGE_LINE = re.compile(r"^Running stage '(?P<stage>[^']+)'")
STARTUP = "(dvc start-up)"
MAKEFILE_ENV = {"DVC_NO_ANALYTICS": "1"}  # the model stages set their allocator from params (keep_freed_memory)


@dataclass(frozen=True)
class StageTime:
    stage: str
    seconds: float


def stage_commands(dvc_yaml: Path) -> dict[str, str]:
    """{stage: cmd} from dvc.yaml in dependency order (a stage after every stage whose outs it depends on).

    Raises:
        ValueError: the file has no stages, a stage has no cmd, or the dependencies form a cycle.
    """
    stages = (yaml.safe_load(dvc_yaml.read_text(encoding="utf-8")) or {}).get("stages") or {}
    if not stages:
        raise ValueError(f"{dvc_yaml}: no stages")
    outs = {name: {_path_of(o) for o in spec.get("outs", []) + spec.get("metrics", []) + spec.get("plots", [])}
            for name, spec in stages.items()}
    needs = {}
    for name, spec in stages.items():
        if not spec.get("cmd"):
            raise ValueError(f"{dvc_yaml}: stage {name!r} has no cmd")
        deps = {_path_of(d) for d in spec.get("deps", [])}
        needs[name] = {other for other, produced in outs.items() if other != name
                       and any(_within(dep, out) or _within(out, dep) for dep in deps for out in produced)}
    return {name: _command(stages[name]["cmd"]) for name in _topological(needs, dvc_yaml)}


def _path_of(entry: object) -> str:
    return next(iter(entry)) if isinstance(entry, dict) else str(entry)


def _within(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def _command(cmd: object) -> str:
    return " && ".join(cmd) if isinstance(cmd, list) else str(cmd)


def _topological(needs: Mapping[str, set[str]], source: Path) -> list[str]:
    """Kahn's order, ties broken by the file's own order."""
    order, done, pending = [], set(), list(needs)
    while pending:
        ready = [name for name in pending if needs[name] <= done]
        if not ready:
            raise ValueError(f"{source}: the stages {pending} depend on each other in a cycle")
        order.append(ready[0])
        done.add(ready[0])
        pending.remove(ready[0])
    return order


def stage_times_from_log(events: Iterable[tuple[float, str]], end: float) -> list[StageTime]:
    """Per-stage seconds from (timestamp, line) pairs of `dvc repro` output, timestamps counted from the
    command's start: each stage lasts from its `Running stage` line to the next one, the last to `end`;
    the time before the first stage is DVC's own start-up (reading dvc.yaml, checking the workspace)."""
    starts = [(stamp, match["stage"]) for stamp, line in events if (match := STAGE_LINE.match(line.strip()))]
    bounds = [stamp for stamp, _ in starts[1:]] + [end]
    times = [StageTime(stage, stop - start) for (start, stage), stop in zip(starts, bounds)]
    return ([StageTime(STARTUP, starts[0][0])] if starts and starts[0][0] > 0 else []) + times


def copy_checkout(source: Path, target: Path) -> int:
    """Copy the files git would give a fresh clone (+ untracked, not ignored) from `source`; return the count."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=source, check=True,
                            capture_output=True).stdout.decode("utf-8").split("\0")
    copied = 0
    for relative in filter(None, listed):
        origin = source / relative
        if origin.is_file():
            destination = target / relative
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(origin, destination)
            copied += 1
    return copied


def run_environment(venv_bin: Path) -> dict[str, str]:
    env = {**os.environ, **MAKEFILE_ENV}
    env["PATH"] = os.pathsep.join([str(venv_bin), env.get("PATH", "")])
    env.pop("PYTHONPATH", None)
    return env


def timestamped_lines(command: list[str] | str, cwd: Path, env: Mapping[str, str],
                      log: Path) -> Iterator[tuple[float, str]]:
    """Run `command`, echo and log its merged output, yield (time, line); raise if it fails."""
    with open(log, "w", encoding="utf-8") as log_fh, subprocess.Popen(
            command, cwd=cwd, env=dict(env), shell=isinstance(command, str), text=True,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT) as process:
        for line in process.stdout:
            log_fh.write(line)
            print(line, end="", file=sys.stderr)
            yield time.perf_counter(), line
    if process.returncode:
        raise RuntimeError(f"{command!r} exited with status {process.returncode}")


def run_dvc(workdir: Path, env: Mapping[str, str]) -> tuple[list[StageTime], float]:
    # A throwaway repository with one commit: DVC needs a git workspace, dvclive an actual commit.
    git = ["git", "-c", "user.name=bench", "-c", "user.email=bench@localhost"]
    subprocess.run(["git", "init", "-q"], cwd=workdir, check=True)
    subprocess.run(["git", "add", "-A"], cwd=workdir, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "bench scratch copy"], cwd=workdir, check=True)
    started, events, failure = time.perf_counter(), [], None
    try:
        for event in timestamped_lines(["dvc", "repro", "--force"], workdir, env, workdir / "bench-repro.log"):
            events.append(event)
    except RuntimeError as exc:  # a failed or stopped stage: report the stages so far, the last one marked
        failure = str(exc)
    end = time.perf_counter()
    times = stage_times_from_log(((stamp - started, line) for stamp, line in events), end - started)
    if not times:
        raise RuntimeError(failure or f"no 'Running stage' line in the dvc output ({workdir / 'bench-repro.log'})")
    if failure:
        last = times[-1]
        times[-1] = StageTime(f"{last.stage} (FAILED or stopped)", last.seconds)
        print(f"dvc repro did not finish: {failure}", file=sys.stderr)
    return times, end - started


def run_commands(workdir: Path, env: Mapping[str, str]) -> tuple[list[StageTime], float]:
    times = []
    for stage, command in stage_commands(workdir / "dvc.yaml").items():
        print(f"--- {stage}: {command}", file=sys.stderr)
        started = time.perf_counter()
        for _ in timestamped_lines(command, workdir, env, workdir / f"bench-{stage}.log"):
            pass
        times.append(StageTime(stage, time.perf_counter() - started))
    return times, sum(t.seconds for t in times)


def apply_profile_to_copy(workdir: Path, profile_path: Path) -> dict:
    """Rewrite the copy's params.yaml with the profile applied; return the resulting params."""
    params_path = workdir / "params.yaml"
    params = yaml.safe_load(params_path.read_text(encoding="utf-8"))
    profile = load_profile(profile_path)
    check_profile(profile, params, profile_path, params_path)
    merged = apply_profile(params, profile)
    params_path.write_text(yaml.safe_dump(merged, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return merged


def peak_child_rss_bytes() -> int:
    """The largest resident set of any finished child process (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024


@dataclass(frozen=True)
class MissionOutcome:
    """What the mission goals are checked on, read from the copy's outputs (None where a file is missing)."""

    sampled: int | None
    final: int | None
    report_k: int | None


def mission_outcome(workdir: Path) -> MissionOutcome:
    sample = workdir / "data/interim/sample.csv"
    summary = workdir / "data/final/images_summary.json"
    results = workdir / "reports/results.md"
    sampled = None
    if sample.is_file():
        with sample.open(encoding="utf-8", newline="") as fh:
            sampled = sum(1 for _ in csv.reader(fh)) - 1
    final = int(yaml.safe_load(summary.read_text(encoding="utf-8"))["converted"]) if summary.is_file() else None
    match = re.search(r"methods at k = (\d+)", results.read_text(encoding="utf-8")) if results.is_file() else None
    return MissionOutcome(sampled, final, int(match[1]) if match else None)


def mission_goals(total: float, peak_bytes: int, outcome: MissionOutcome, finished: bool) -> str:
    final_ok = None if outcome.final is None else outcome.final >= MISSION_GOAL_FINAL_WORKS
    return "".join([
        _record.goal_line(f"mission profile ≤ {MISSION_GOAL_SECONDS / 60:.0f} minutes on 2 cores",
                          total <= MISSION_GOAL_SECONDS if finished or total > MISSION_GOAL_SECONDS else None,
                          f"{total / 60:.1f} min on {os.cpu_count()} cores" + ("" if finished else ", run incomplete")),
        _record.goal_line(f"peak memory ≤ {MISSION_GOAL_PEAK_BYTES / 2**30:.0f} GB",
                          peak_bytes <= MISSION_GOAL_PEAK_BYTES, f"{peak_bytes / 2**30:.2f} GiB (largest process)"),
        _record.goal_line(f"≥ {MISSION_GOAL_FINAL_WORKS:,} of the sampled works in data/final/", final_ok,
                          f"{outcome.final} of {outcome.sampled} sampled"),
        _record.goal_line("results.md at k = 50", None if outcome.report_k is None else outcome.report_k == 50,
                          f"k = {outcome.report_k}"),
    ])


def report(times: list[StageTime], total: float, runner: str, n_files: int, profile: Path | None = None,
           peak_bytes: int = 0, outcome: MissionOutcome | None = None) -> str:
    rows = [[t.stage, t.seconds, f"{t.seconds / total:.0%}"] for t in times]
    rows.append(["**total**", total, "100%"])
    dominant = max((t for t in times if t.stage != STARTUP), key=lambda t: t.seconds)
    finished = "FAILED" not in times[-1].stage
    how = ("`dvc repro --force` (stage time includes DVC hashing/caching its outputs)" if runner == "dvc"
           else "each dvc.yaml `cmd` alone, in dependency order (no DVC overhead)")
    what = f"params.yaml with `{profile}` applied" if profile else "Embedded default (params.yaml as checked out)"
    goals = (mission_goals(total, peak_bytes, outcome, finished) if outcome is not None else
             _record.goal_line(f"`make repro` ≤ {GOAL_SECONDS / 60:.0f} minutes on 2 cores",
                                total <= GOAL_SECONDS if finished or total > GOAL_SECONDS else None,
                                f"{total:.0f} s on {os.cpu_count()} cores" + ("" if finished else ", run incomplete")))
    return (f"{what}, from scratch in a scratch copy of {n_files} files; runner: {how}.\n\n"
            + _record.markdown_table(["stage", "seconds", "share"], rows)
            + f"\nDominant stage: **{dominant.stage}** ({dominant.seconds:.1f} s, {dominant.seconds / total:.0%}). "
            + f"Peak memory: {peak_bytes / 2**30:.2f} GiB (largest resident set of one process).\n\n"
            + "Goals:\n\n" + goals)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runner", choices=("dvc", "cmds"), default="dvc")
    parser.add_argument("--source", type=Path, default=Path("."), help="the checkout to copy")
    parser.add_argument("--venv-bin", type=Path, default=Path(sys.executable).parent,
                        help="put first on PATH for the stages (default: this interpreter's folder)")
    parser.add_argument("--profile", type=Path, help="apply this profile to the copy's params.yaml first")
    parser.add_argument("--keep", action="store_true", help="keep the scratch copy (its path is printed)")
    _record.add_record_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> str:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="bench-pipeline-"))
    try:
        n_files = copy_checkout(args.source.resolve(), workdir)
        print(f"scratch copy: {workdir} ({n_files} files)", file=sys.stderr)
        if args.profile:
            apply_profile_to_copy(workdir, args.profile)
        env = run_environment(args.venv_bin.absolute())
        runner = run_dvc if args.runner == "dvc" else run_commands
        times, total = runner(workdir, env)
        outcome = mission_outcome(workdir) if args.profile else None
    finally:
        if args.keep:
            print(f"kept {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    body = report(times, total, args.runner, n_files, args.profile, peak_child_rss_bytes(), outcome)
    title = f"Pipeline from scratch{f' with {args.profile}' if args.profile else ''}, runner {args.runner}"
    return _record.publish(args, "bench.pipeline", argv, f"{title} (bench/pipeline.py)", body)


if __name__ == "__main__":
    main()
