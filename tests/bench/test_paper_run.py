"""bench/paper_run.py: the extrapolation arithmetic and a tiny estimate run."""

from __future__ import annotations

import pytest

from bench import paper_run
from tests.bench.conftest import table_rows


def test_extrapolation_charges_every_phase_of_the_paper_run():
    paper = paper_run.PaperConfig()  # 10,500 images, 200 epochs, maxiter 20,000, interval 140
    phases = {p.name: p.seconds for p in paper_run.extrapolate(paper, pretrain_img_s=100.0, cluster_step_s=0.5,
                                                               target_img_s=500.0, kmeans_s=2.0)}
    assert phases["pretraining"] == pytest.approx(200 * 10_500 / 100.0)
    assert phases["clustering steps"] == pytest.approx(20_000 * 0.5)
    assert phases["target-distribution passes"] == pytest.approx(143 * 10_500 / 500.0)  # ceil(20000/140) = 143
    assert phases["initial embedding"] == pytest.approx(21.0) and phases["k-means init"] == 2.0


def test_hours_formatting():
    assert paper_run.hours(3725.4) == "1:02:05"


def test_tiny_estimate_is_labelled_as_an_extrapolation(record_file, monkeypatch):
    monkeypatch.setattr(paper_run, "keep_freed_memory", lambda enabled: False)  # mallopt is process-wide
    text = paper_run.main(["--size", "16", "--n-images", "64", "--batch-size", "8", "--cluster-batch-size", "8",
                           "--eval-batch-size", "16", "--n-clusters", "4", "--kmeans-n-init", "1",
                           "--fraction", "0.25", "--cluster-steps", "1", "--device", "cpu",
                           "--record-to", str(record_file)])
    assert "**EXTRAPOLATION" in text
    assert [row[0] for row in table_rows(text, "pretraining")] == ["pretraining"]
    total = table_rows(text, "**total**")[0]
    assert float(total[3].replace(",", "")) > 0
    assert "## Paper run on cpu" in record_file.read_text(encoding="utf-8")


def test_a_profile_gives_the_defaults_and_flags_still_win(tmp_path, record_file, monkeypatch):
    monkeypatch.setattr(paper_run, "keep_freed_memory", lambda enabled: False)
    profile = tmp_path / "tiny.yaml"
    profile.write_text("images: {size: 16}\nmodel: {k: 3, eval_batch_size: 16}\npretrain: {epochs: 7, batch_size: 8}\n"
                       "cluster: {batch_size: 8, maxiter: 30, update_interval: 10, kmeans_n_init: 1}\n",
                       encoding="utf-8")
    text = paper_run.main(["--profile", str(profile), "--n-images", "64", "--epochs", "9", "--fraction", "0.25",
                           "--cluster-steps", "1", "--device", "cpu", "--record-to", str(record_file)])
    assert f"Configuration (`{profile}` applied to `params.yaml`): 64 images 16×16×3, 9 pretraining epochs " \
           "(batch 8), clustering batch 8, update interval 10, maxiter 30" in text
    assert table_rows(text, "pretraining")[0][1] == "9 epochs × 64 images"
