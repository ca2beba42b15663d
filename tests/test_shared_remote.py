"""docs/SCALING.md's recipe, run for real: one lab member crawls and pushes to a shared DVC remote (a folder on
this machine), another clones, pulls, and has the same crawl without re-crawling — `dvc repro` has nothing to do."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from bench.pipeline import copy_checkout

REPO_ROOT = Path(__file__).resolve().parents[1]
GIT = ["git", "-c", "user.name=lab", "-c", "user.email=lab@localhost"]


def run(command: list[str], cwd: Path) -> str:
    env = {**os.environ, "DVC_NO_ANALYTICS": "1",
           "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])}
    env.pop("PYTHONPATH", None)
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    assert done.returncode == 0, f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_a_crawl_pushed_to_a_shared_remote_is_pulled_by_a_new_clone_and_never_recrawled(tmp_path):
    first, second, remote = tmp_path / "first", tmp_path / "second", tmp_path / "shared-remote"
    copy_checkout(REPO_ROOT, first)
    run(["git", "init", "-q"], first)
    run(["dvc", "remote", "add", "-d", "shared", str(remote)], first)  # SCALING.md step 1 (a local path here)
    run(["git", "add", "-A"], first)
    run([*GIT, "commit", "-q", "-m", "project with a shared remote"], first)

    run(["dvc", "repro", "scrape"], first)  # the crawler's machine (the demo site here)
    run(["dvc", "push", "scrape"], first)
    run(["git", "add", "dvc.lock"], first)
    run([*GIT, "commit", "-q", "-m", "crawl"], first)

    run(["git", "clone", "-q", str(first), str(second)], tmp_path)  # a new lab member
    run(["dvc", "pull", "scrape"], second)
    for name in ("lots.jsonl", "crawl_stats.json"):
        assert (second / "data/raw" / name).read_bytes() == (first / "data/raw" / name).read_bytes()
    status = run(["dvc", "status", "scrape"], second)
    assert "up to date" in status, status  # nothing to re-crawl
