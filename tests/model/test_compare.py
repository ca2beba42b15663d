"""Stage `compare`: run planning, the per-run cache, the summary and the k sweep (Table 2 layout)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from common.provenance import REPO_ROOT
from model import compare, runs
from model import methods as methods_module
from model.compare import RunSpec, execute_runs, plan_runs, records_frame, relative_to_max, sweep_table
from model.local_executor import WorkerPool
from model.methods import MethodResult, get_method
from tests.model.test_exp_fixtures import K, small_params, synthetic_image_set, write_inputs, write_params

FINGERPRINTS = {"images": "a" * 40, "labels": "b" * 40}
CAE_SHAS = {0: "c" * 40, 1: "e" * 40}
ORIGIN = {"code": "f" * 20, "libraries": {"torch": "2"}, "device": "cpu", "precision": "fp32", "threads": 1}


class CountingMethod:
    """A stand-in method: deterministic assignments from the seed, a 2-D embedding, and a call counter."""

    def __init__(self, name: str, uses_cae: bool = False, setting: int = 1):
        self.name, self.uses_cae, self.settings = name, uses_cae, {"setting": setting}
        self.calls: list[tuple[int, int]] = []

    def fit(self, image_set, k, seed):
        self.calls.append((k, seed))
        rng = np.random.default_rng(seed)
        assignments = (np.arange(image_set.n) + seed) % k
        return MethodResult(assignments, rng.normal(size=(image_set.n, 2)) + assignments[:, None], {})


def test_plan_covers_comparison_and_sweep_without_duplicates():
    specs = plan_runs(["a", "b"], seeds=[0, 1], k=3, sweep_ks=[2, 3], sweep_seeds=[0], sweep_methods=["b", "c"])
    assert len(specs) == len(set(specs))
    expected = {RunSpec(m, 3, s) for m in "ab" for s in (0, 1)} | {RunSpec(m, kk, 0) for m in "bc" for kk in (2, 3)}
    assert set(specs) == expected
    assert [s.method for s in specs] == sorted((s.method for s in specs), key="abc".index)  # grouped by method


def test_second_run_is_served_from_the_cache_and_a_new_k_computes_only_new_runs(tmp_path):
    image_set = synthetic_image_set()
    methods = {"a": CountingMethod("a"), "b": CountingMethod("b", uses_cae=True)}
    specs = plan_runs(["a", "b"], [0, 1], K, [2], [0], sweep_methods=["b"])
    first = execute_runs(specs, methods, image_set, tmp_path, FINGERPRINTS, CAE_SHAS, ORIGIN)
    assert sum(len(m.calls) for m in methods.values()) == len(specs) == 5
    for method in methods.values():
        method.calls.clear()
    second = execute_runs(specs, methods, image_set, tmp_path, FINGERPRINTS, CAE_SHAS, ORIGIN)
    assert sum(len(m.calls) for m in methods.values()) == 0
    assert [r["metrics"] for r in second] == [r["metrics"] for r in first]

    wider = plan_runs(["a", "b"], [0, 1], K, [2, 3], [0], sweep_methods=["b"])
    execute_runs(wider, methods, image_set, tmp_path, FINGERPRINTS, CAE_SHAS, ORIGIN)
    assert methods["b"].calls == [(3, 0)] and methods["a"].calls == []


def test_cache_key_follows_settings_and_only_the_inputs_a_method_uses(tmp_path):
    image_set = synthetic_image_set()
    methods = {"a": CountingMethod("a"), "b": CountingMethod("b", uses_cae=True)}
    specs = [RunSpec("a", K, 0), RunSpec("b", K, 0)]
    execute_runs(specs, methods, image_set, tmp_path, FINGERPRINTS, CAE_SHAS, ORIGIN)
    new_cae = {**CAE_SHAS, 0: "d" * 40}
    execute_runs(specs, methods, image_set, tmp_path, FINGERPRINTS, new_cae, ORIGIN)
    assert len(methods["a"].calls) == 1 and len(methods["b"].calls) == 2  # only the CAE user reruns
    methods["a"] = CountingMethod("a", setting=2)
    execute_runs(specs, methods, image_set, tmp_path, FINGERPRINTS, new_cae, ORIGIN)
    assert len(methods["a"].calls) == 1


def test_corrupt_cache_entry_is_recomputed(tmp_path):
    image_set, method = synthetic_image_set(), CountingMethod("a")
    execute_runs([RunSpec("a", K, 0)], {"a": method}, image_set, tmp_path, FINGERPRINTS, CAE_SHAS, ORIGIN)
    (entry,) = tmp_path.glob("*.json")
    entry.write_text("{truncated", encoding="utf-8")
    execute_runs([RunSpec("a", K, 0)], {"a": method}, image_set, tmp_path, FINGERPRINTS, CAE_SHAS, ORIGIN)
    assert len(method.calls) == 2 and json.loads(entry.read_text())["k"] == K


def test_out_of_range_assignments_are_refused(tmp_path):
    class Broken(CountingMethod):
        def fit(self, image_set, k, seed):
            return MethodResult(np.full(image_set.n, k), None, {})

    with pytest.raises(ValueError, match="outside 0..3"):
        execute_runs([RunSpec("x", K, 0)], {"x": Broken("x")}, synthetic_image_set(), tmp_path, FINGERPRINTS, CAE_SHAS, ORIGIN)


def test_relative_ch_is_absolute_over_its_maximum_per_method():
    frame = pd.DataFrame({"method": ["cae_kmeans"] * 3 + ["dcec"] * 3, "k": [2, 3, 4] * 2, "seed": 0,
                          "calinski_harabasz": [3166.0, 2602.0, 1822.0, 91977.0, 193882.0, 92569.0],
                          **{key: 0.5 for key in compare.LABEL_KEYS + ("silhouette",)}})
    table = sweep_table(frame, [2, 3, 4], [0])
    for method in ("cae_kmeans", "dcec"):
        rows = table[table["method"] == method]
        np.testing.assert_allclose(rows["calinski_harabasz_rel"], rows["calinski_harabasz"] / rows["calinski_harabasz"].max())
    assert table.loc[(table["method"] == "dcec") & (table["k"] == 3), "calinski_harabasz_rel"].item() == 1.0
    np.testing.assert_allclose(relative_to_max([1.0, np.nan, 4.0]), [0.25, np.nan, 1.0])


def test_sweep_averages_over_the_sweep_seeds():
    frame = pd.DataFrame({"method": "dcec", "k": [2, 2, 2], "seed": [0, 1, 5], "silhouette": [0.2, 0.4, 0.9],
                          "calinski_harabasz": [10.0, 20.0, 90.0], **{key: 0.1 for key in compare.LABEL_KEYS}})
    row = sweep_table(frame, [2], [0, 1]).iloc[0]
    assert row["n_seeds"] == 2 and row["silhouette"] == pytest.approx(0.3) and row["calinski_harabasz"] == 15.0


def test_stage_writes_runs_summary_and_sweep_then_reuses_every_run(tmp_path, monkeypatch):
    write_inputs(tmp_path)
    params = small_params(methods=["kmeans_pixels", "pca_kmeans", "cae_kmeans", "dcec"], seeds=[0, 1],
                          sweep_ks=[2, 3], sweep_seeds=[0])
    write_params(tmp_path, params)
    monkeypatch.chdir(tmp_path)
    compare.main()
    runs = pd.read_csv("reports/compare/runs.csv")
    assert len(runs) == 4 * 2 and set(runs["k"]) == {K}
    assert runs[list(compare.LABEL_KEYS)].apply(lambda c: c.between(-1, 1)).all().all()
    assert runs.loc[runs["method"] == "kmeans_pixels", "silhouette"].isna().all()  # no pixel-space embedding
    summary = json.loads(open("reports/compare/summary.json").read())
    assert list(summary["methods"]) == params["compare"]["methods"] and summary["n_seeds"] == 2
    pixels = runs.loc[runs["method"] == "kmeans_pixels", "acc"]
    assert summary["methods"]["kmeans_pixels"]["acc"]["mean"] == pytest.approx(pixels.mean())
    assert summary["methods"]["kmeans_pixels"]["acc"]["std"] == pytest.approx(pixels.std(ddof=1))
    sweep = pd.read_csv("reports/compare/sweep.csv")
    assert set(zip(sweep["method"], sweep["k"])) == {(m, k) for m in ("cae_kmeans", "dcec") for k in (2, 3, K)}
    n_cached = len(list((tmp_path / "models/compare_cache").glob("*.json")))
    assert n_cached == 4 * 2 + 2 * 2  # the (k=4, seed 0) sweep runs are shared with the comparison

    def fail(*args, **kwargs):
        raise AssertionError("a cached run was recomputed")

    for cls in ("KMeansPixels", "PCAKMeans", "CAEKMeans", "DCEC"):
        monkeypatch.setattr(f"model.methods.{cls}.fit", fail)
    before = open("reports/compare/runs.csv").read()
    compare.main()
    assert open("reports/compare/runs.csv").read() == before


def test_runs_are_paired_by_seed_with_verdicts_and_convergence(tmp_path, monkeypatch):
    write_inputs(tmp_path)
    params = small_params(methods=["kmeans_pixels", "cae_kmeans", "dcec", "dcec_no_kl", "n2d"], seeds=[0, 1, 2],
                          sweep_ks=[], sweep_seeds=[0])
    write_params(tmp_path, params)
    monkeypatch.chdir(tmp_path)
    compare.main()
    runs = pd.read_csv("reports/compare/runs.csv")
    assert runs.loc[runs["method"] == "kmeans_pixels", "pretrain_seed"].isna().all()
    cae_runs = runs[runs["method"] != "kmeans_pixels"]
    assert (cae_runs["pretrain_seed"] == cae_runs["seed"]).all()  # seed s starts from the CAE of seed s
    joint = runs[runs["method"].isin(["dcec", "dcec_no_kl"])]
    assert joint["n_iter"].notna().all() and joint["last_delta_label"].between(0, 1).all()
    control = runs[runs["method"] == "dcec_no_kl"]
    assert (control["n_iter"] == params["cluster"]["maxiter"]).all()  # the control never stops early
    assert runs.loc[runs["method"] == "n2d", ["silhouette", "calinski_harabasz"]].notna().all().all()  # UMAP space

    summary = json.loads(open("reports/compare/summary.json").read())
    assert set(summary["comparisons"]) == {"kmeans_pixels", "cae_kmeans", "dcec_no_kl", "n2d"}
    for other, cells in summary["comparisons"].items():
        assert set(cells) == set(compare.LABEL_KEYS)
        for metric, cell in cells.items():
            diffs = (runs.loc[runs["method"] == "dcec", metric].to_numpy()
                     - runs.loc[runs["method"] == other, metric].to_numpy())
            assert cell["n"] == 3 and cell["diff_mean"] == pytest.approx(diffs.mean(), abs=1e-5)  # runs.csv: 6 digits
            assert cell["verdict"] in ("better", "worse", "no detectable difference")
            assert (cell["verdict"] == "better") == (cell["ci_low"] > 0)
    assert summary["convergence"]["dcec"]["runs"] == 3
    assert "1/N" in summary["tol_note"]  # tol 0.001 < 1/40


def test_missing_seed_cae_names_the_file_and_the_stage(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"seed-7\.pt.*pretrain"):
        compare.cae_shas([7], tmp_path)


def test_worker_processes_give_the_in_process_results(tmp_path, monkeypatch):
    write_inputs(tmp_path)
    monkeypatch.chdir(tmp_path)
    params = small_params(methods=["kmeans_pixels", "cae_kmeans"], seeds=[0, 1, 2], sweep_ks=[], sweep_seeds=[0])
    image_set = synthetic_image_set()
    methods = {name: get_method(name, params, tmp_path / "models/cae_seeds") for name in params["compare"]["methods"]}
    specs = plan_runs(params["compare"]["methods"], [0, 1, 2], K, [], [0], sweep_methods=["cae_kmeans"])
    shas = compare.cae_shas(range(3), tmp_path / "models/cae_seeds")
    local = execute_runs(specs, methods, image_set, tmp_path / "local", FINGERPRINTS, shas, ORIGIN)
    pooled = execute_runs(specs, methods, image_set, tmp_path / "pooled", FINGERPRINTS, shas, ORIGIN,
                          WorkerPool(params, 2, compare.IMAGES_PATH, compare.LABELS_PATH))
    assert [r["key"] for r in pooled] == [r["key"] for r in local]  # in plan order, whatever finished first
    assert [r["assignments"] for r in pooled] == [r["assignments"] for r in local]
    assert len(list((tmp_path / "pooled").glob("*.json"))) == len(specs)


def test_a_runs_thread_count_is_part_of_its_cache_key(tmp_path):
    """k-means and DeepCluster sum in a thread-dependent order: a run cached with 2 threads is not a 1-thread run."""
    spec = RunSpec("kmeans_pixels", K, 0)
    one_thread, two_threads = (runs.run_provenance(small_params(threads_per_run=n)) for n in (1, 2))
    assert runs.cache_key(spec, {}, FINGERPRINTS, one_thread) != runs.cache_key(spec, {}, FINGERPRINTS, two_threads)
    params = small_params(methods=["kmeans_pixels"], seeds=[0], sweep_ks=[], sweep_seeds=[0])
    methods = {"kmeans_pixels": get_method("kmeans_pixels", params, tmp_path)}
    one = execute_runs([spec], methods, synthetic_image_set(), tmp_path, FINGERPRINTS, {}, one_thread)
    two = execute_runs([spec], methods, synthetic_image_set(), tmp_path, FINGERPRINTS, {}, two_threads)
    assert one[0]["key"] != two[0]["key"] and len(list(tmp_path.glob("*.json"))) == 2
    assert one[0]["provenance"] == one_thread  # each record names what computed it


@pytest.mark.parametrize("value", [0, 1.5, "2", True, None])
def test_threads_per_run_must_be_a_whole_number_of_at_least_one(value):
    params = small_params(threads_per_run=value)
    with pytest.raises(ValueError, match="compare.threads_per_run"):
        runs.threads_per_run(params)


def scratch_model_copy(root):
    """A copy of model/ under `root`, for edits that the run's code key must see."""
    shutil.copytree(REPO_ROOT / "model", root / "model", ignore=shutil.ignore_patterns("__pycache__"))
    return root


def test_editing_a_methods_module_recomputes_every_affected_cached_run(tmp_path, monkeypatch):
    """The stage's run cache is keyed on the code: an edit to a method's module (in a scratch copy of model/)
    turns its cached runs into misses, which the stage recomputes; a comment-only edit does not."""
    scratch = scratch_model_copy(tmp_path / "scratch")
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    write_inputs(workspace)
    write_params(workspace, small_params(methods=["kmeans_pixels", "cae_kmeans"], seeds=[0], sweep_ks=[],
                                         sweep_seeds=[0]))
    monkeypatch.chdir(workspace)
    monkeypatch.setattr(compare, "run_provenance", lambda params: runs.run_provenance(params, scratch))
    calls = []
    for cls in (methods_module.KMeansPixels, methods_module.CAEKMeans, methods_module.DCEC):
        monkeypatch.setattr(cls, "fit", lambda self, *args, _real=cls.fit: calls.append(self.name) or _real(self, *args))
    compare.main()
    every_run = ["cae_kmeans", "dcec", "kmeans_pixels"]  # the sweep adds DCEC at model.k
    assert sorted(calls) == every_run

    calls.clear()
    methods_py = scratch / "model/methods.py"
    methods_py.write_text(methods_py.read_text() + "\n# a comment changes no result\n")
    compare.main()
    assert calls == []  # served from the cache

    deepcluster_train = scratch / "model/deepcluster_train.py"  # a method's module, imported through methods.py
    deepcluster_train.write_text(deepcluster_train.read_text() + "\nEDITED = True\n")
    compare.main()
    assert sorted(calls) == every_run  # the run code is one closure: every run recomputed
    assert len(list((workspace / "models/compare_cache").glob("*.json"))) == 2 * len(every_run)


def test_a_cuda_key_differs_from_a_cpu_key_and_the_device_is_decided_once(monkeypatch):
    spec = RunSpec("dcec", K, 0)
    cpu = runs.pin_device(small_params())
    cuda = cpu | {"model": cpu["model"] | {"device": "cuda"}}
    assert runs.run_provenance(cpu)["device"] == "cpu" and runs.run_provenance(cuda)["device"] == "cuda"
    assert runs.cache_key(spec, {}, FINGERPRINTS, runs.run_provenance(cpu)) != \
        runs.cache_key(spec, {}, FINGERPRINTS, runs.run_provenance(cuda))

    monkeypatch.setattr("torch.cuda.is_available", lambda: True)  # a machine with an Ampere GPU, stubbed
    monkeypatch.setattr("model.runtime._native_bf16", lambda device: True)
    auto = small_params()
    auto["model"] |= {"device": "auto", "mixed_precision": "auto"}
    pinned = runs.pin_device(auto)
    assert pinned["model"]["device"] == "cuda" and pinned["model"]["mixed_precision"] == "bf16"
    origin = runs.run_provenance(pinned)
    assert (origin["device"], origin["precision"]) == ("cuda", "bf16")
    assert get_method("dcec", pinned).settings["mixed_precision"] == "bf16"  # the method runs what the key says
