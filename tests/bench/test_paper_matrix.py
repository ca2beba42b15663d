"""bench/paper_matrix.py: the cost model, the schedule, and a tiny measured run."""

from __future__ import annotations

import math

import pytest
import yaml

from bench import paper_matrix
from common import load_params
from common.profiles import apply_profile, load_profile
from tests.bench.conftest import table_rows

UNITS = paper_matrix.UnitCosts(pretrain_img_s=100.0, cluster_step_s=0.5, target_img_s=1000.0,
                               kmeans_embedding_s={k: float(k) for k in range(2, 51)}, pixel_init_s=2.0,
                               pixel_iteration_s=1.0, pca_s=30.0, kmeans_projection_s=5.0, deepcluster_epoch_s=60.0,
                               n2d_s=20.0)


@pytest.fixture
def paper_params():
    return apply_profile(load_params(), load_profile("profiles/paper.yaml"))


def test_makespan_places_the_longest_runs_first():
    assert paper_matrix.makespan([3, 5, 3, 4, 3], 2) == 10  # 5+3 | 4+3+3; the optimum, 9, is within LPT's 4/3
    assert paper_matrix.makespan([7, 1, 1, 1], 4) == 7  # one long run bounds it
    assert paper_matrix.makespan([2, 2, 2], 1) == 6
    with pytest.raises(ValueError, match="at least 1"):
        paper_matrix.makespan([1], 0)


def test_dcec_is_charged_every_iteration_and_every_target_pass(paper_params):
    n = 10_500
    seconds = paper_matrix.run_seconds("dcec", 50, paper_params, UNITS, n)
    passes = math.ceil(20_000 / 140)
    assert seconds == pytest.approx(n / 1000 + 50 + 20_000 * 0.5 + passes * n / 1000)
    assert paper_matrix.run_seconds("dcec_no_kl", 50, paper_params, UNITS, n) == seconds


def test_pixel_kmeans_scales_with_restarts_and_k(paper_params):
    at_k = paper_matrix.run_seconds("kmeans_pixels", 50, paper_params, UNITS, 10_500)
    assert at_k == pytest.approx(20 * (2.0 + paper_matrix.PIXEL_LLOYD_ITERATIONS * 1.0))  # paper: 20 restarts
    assert paper_matrix.run_seconds("kmeans_pixels", 5, paper_params, UNITS, 10_500) == pytest.approx(at_k / 10)
    with pytest.raises(ValueError, match="no cost model"):
        paper_matrix.run_seconds("spectral", 50, paper_params, UNITS, 10_500)


def test_matrix_has_every_run_of_the_paper_profile(paper_params):
    tasks = paper_matrix.matrix_tasks(paper_params, UNITS, 10_500)
    stages = [t.stage for t in tasks]
    assert stages.count("pretrain") == 5  # seeds 0..4 (sweep seeds 0..2 among them, base seed 0 too)
    assert stages.count("cluster") == 1
    # 7 methods × 5 seeds at k = 50, plus cae_kmeans and dcec at k = 2..10 for sweep seeds 0..2 (27 each)
    assert stages.count("compare") == 7 * 5 + 2 * 9 * 3
    n2d = [t.seconds for t in tasks if t.method == "n2d"]
    assert n2d == [pytest.approx(10_500 / 1000 + 20.0)] * 5  # one embedding pass, then UMAP + the mixture
    pretrain = [t.seconds for t in tasks if t.stage == "pretrain"]
    assert pretrain == [pytest.approx(200 * 10_500 / 100.0)] * 5


def test_more_devices_only_shrink_the_compare_part(paper_params):
    tasks = paper_matrix.matrix_tasks(paper_params, UNITS, 10_500)
    serial = sum(t.seconds for t in tasks if t.stage != "compare")
    compare = [t.seconds for t in tasks if t.stage == "compare"]
    walls = paper_matrix.wall_times(tasks, [1, 2, 4])
    assert [w.devices for w in walls] == [1, 2, 4, None]
    assert walls[0].seconds == pytest.approx(serial + sum(compare))
    assert walls[0].seconds > walls[1].seconds > walls[2].seconds > walls[3].seconds
    assert walls[3].seconds == pytest.approx(serial + max(compare))  # unlimited: the longest run is the floor
    for wall in walls:
        assert wall.lower_bound <= wall.seconds + 1e-6
    assert walls[1].lower_bound == pytest.approx(serial + sum(compare) / 2)


def test_tiny_measured_run_is_recorded_as_an_estimate(tmp_path, record_file, monkeypatch):
    monkeypatch.setattr(paper_matrix, "keep_freed_memory", lambda enabled: False)  # mallopt is process-wide
    profile = tmp_path / "tiny.yaml"
    profile.write_text(yaml.safe_dump({
        "images": {"size": 16}, "model": {"k": 3, "eval_batch_size": 16},
        "pretrain": {"epochs": 2, "batch_size": 8},
        "cluster": {"batch_size": 8, "maxiter": 6, "update_interval": 3, "kmeans_n_init": 1},
        "deepcluster": {"epochs": 2, "k_train": 4, "batch_size": 8, "feature_batch_size": 16, "pca_dim": 4},
        "compare": {"seeds": [0, 1], "sweep_ks": [2], "sweep_seeds": [0], "pca_components": 4},
    }), encoding="utf-8")
    text = paper_matrix.main(["--profile", str(profile), "--n-images", "48", "--devices", "1", "2",
                              "--fraction", "0.5", "--deepcluster-subset", "24", "--device", "cpu",
                              "--record-to", str(record_file)])
    assert "**ESTIMATE from unit costs measured on cpu" in text
    # 7 methods × seeds 0, 1 at k = 3, plus CAE + k-means and DCEC at k = 2 for sweep seed 0
    assert table_rows(text, "compare")[0][1] == "16"
    one, two = table_rows(text, "1")[0], table_rows(text, "2")[0]
    assert float(one[1].replace(",", "")) >= float(two[1].replace(",", "")) > 0
    assert table_rows(text, "unlimited")
    assert "## Paper profile's experiment matrix on cpu" in record_file.read_text(encoding="utf-8")
