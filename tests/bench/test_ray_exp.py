"""bench.ray_exp re-runs the whole pipeline, crawl included: it must refuse a HEAD that crawls the real site."""

from __future__ import annotations

import subprocess

import pytest
import yaml

from bench import ray_exp

GIT = ["git", "-c", "user.name=t", "-c", "user.email=t@localhost"]


def test_refuses_to_recrawl_the_real_site(tmp_path, capsys):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"scrape": {"site": "live"}}), encoding="utf-8")
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run(["git", "add", "params.yaml"], cwd=tmp_path, check=True)
    subprocess.run([*GIT, "commit", "-q", "-m", "live"], cwd=tmp_path, check=True)
    with pytest.raises(SystemExit) as exited:
        ray_exp.main(["--source", str(tmp_path), "--no-record"])
    assert exited.value.code == 2
    assert "scrape.site is not demo" in capsys.readouterr().err
