"""What computed a result (common/provenance.py), and the import structure of model/ it relies on."""

from __future__ import annotations

import shutil

import pytest
import yaml

from common.provenance import REPO_ROOT, code_digest, import_closure, import_graph, imported_modules, library_versions
from model.runs import RUN_MODULES
from model.runtime import KERNEL_LIBRARIES


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every import cycle of `graph` found by depth-first search, as the path that closes it."""
    found, state = [], {}

    def visit(module: str, path: list[str]) -> None:
        state[module] = "open"
        for child in sorted(graph.get(module, ())):
            if state.get(child) == "open":
                found.append(path[path.index(child):] + [child] if child in path else [module, child])
            elif child not in state:
                visit(child, path + [child])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    return found


def test_model_has_no_import_cycle():
    graph = import_graph("model")
    assert "model.compare" in graph and "model.runs" in graph["model.compare"]
    assert cycles(graph) == []


def test_the_cycle_finder_finds_one():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]


def test_neither_executor_imports_the_other_or_the_stage():
    for executor, other in (("model.local_executor", "model.ray_executor"), ("model.ray_executor", "model.local_executor")):
        closure = import_closure([executor])
        assert other not in closure and "model.compare" not in closure
        assert "model.runs" in imported_modules(executor)  # both compute a run with the same code


def test_a_runs_code_includes_every_methods_module_without_a_list():
    closure = set(import_closure(RUN_MODULES))
    assert imported_modules("model.methods") <= closure
    assert {"model.methods", "model.dcec", "model.deepcluster_train", "model.deepcluster", "model.nets"} <= closure
    assert "model.compare" not in closure and "model.report" not in closure  # the stage's tables are not a run


def test_code_digest_ignores_comments_and_docstrings_but_not_code(tmp_path):
    shutil.copytree(REPO_ROOT / "model", tmp_path / "model", ignore=shutil.ignore_patterns("__pycache__"))
    before = code_digest(RUN_MODULES, tmp_path)
    assert before == code_digest(RUN_MODULES)
    dcec = tmp_path / "model/dcec.py"
    source = dcec.read_text()
    dcec.write_text(source.replace('"""KL(P‖Q)', '"""The KL divergence KL(P‖Q)').replace(
        "LOG_EPS = 1e-12  #", "LOG_EPS = 1e-12  # reworded:"))
    assert dcec.read_text() != source and code_digest(RUN_MODULES, tmp_path) == before
    dcec.write_text(source.replace("LOG_EPS = 1e-12", "LOG_EPS = 1e-10"))
    assert code_digest(RUN_MODULES, tmp_path) != before


def test_library_versions_name_the_installed_and_the_absent():
    versions = library_versions([*KERNEL_LIBRARIES, "no-such-distribution-here"])
    assert versions["torch"] and versions["numpy"] and versions["scikit-learn"]
    assert versions["no-such-distribution-here"] is None


def test_a_pretrained_cae_depends_on_the_training_code_only():
    """The per-seed CAEs are hours of training at the paper's size: their key must not follow DCEC's joint
    phase, the metrics or the compare stage (model/pretrain.py, `training_provenance`)."""
    assert import_closure(["model.pretrain"]) == ["model.data", "model.nets", "model.pretrain", "model.runtime"]


@pytest.mark.parametrize("stage", ["pretrain", "cluster", "evaluate", "compare", "price", "report"])
def test_a_model_stage_depends_on_every_module_it_imports(stage):
    """DVC reruns the stage when a module it imports changes (for the caching stages, pretrain and compare: the
    modules of their code key, so the stage can then find its misses)."""
    spec = yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"][stage]
    module = spec["cmd"].split(" -m ")[1].split()[0]
    needed = {module.replace(".", "/") + ".py" for module in import_closure([module])}
    assert needed <= set(spec["deps"])
