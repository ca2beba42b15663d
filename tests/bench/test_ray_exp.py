"""bench.ray_exp re-runs the whole pipeline, crawl included: it must refuse a HEAD that crawls the real site; both
Ray benchmarks offer the loopback nodes the cores a run needs."""

from __future__ import annotations

import subprocess

import pytest
import yaml

from bench import ray_compare, ray_exp

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


@pytest.mark.parametrize(("cores", "threads", "expected"), [(2, 1, (1, 1)), (2, 2, (0, 2)), (16, 4, (8, 8)),
                                                            (2, 3, (0, 3))])
def test_loopback_nodes_offer_the_cores_without_oversubscribing_them(monkeypatch, cores, threads, expected):
    monkeypatch.setattr("os.cpu_count", lambda: cores)
    assert ray_compare.node_cpus(threads) == expected
