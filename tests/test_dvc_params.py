"""Each stage declares in dvc.yaml exactly the params its code reads (the module's PARAMS, which is all that
`load_params(keys=PARAMS)` hands its entry point: a stage test that runs `main()` fails on any other read). So a change re-runs
exactly the stages that read it: `-S model.k=20` does not re-train the autoencoder, `-S scrape.end=…` does not
re-fetch images."""

import importlib
from pathlib import Path

import pytest
import yaml

from common import load_params

ROOT = Path(__file__).parents[1]
STAGES = yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"]


def stage_module(command: str):
    """The module of a stage command `python -m <module>`."""
    words = command.split()
    return importlib.import_module(words[words.index("-m") + 1])


@pytest.mark.parametrize("name", sorted(STAGES))
def test_dvc_yaml_declares_exactly_the_params_the_stage_reads(name):
    stage = STAGES[name]
    declared = [entry if isinstance(entry, str) else next(iter(entry)) for entry in stage.get("params", [])]
    module = stage_module(stage["cmd"])
    assert sorted(declared) == sorted(module.PARAMS), f"dvc.yaml stage {name!r} vs {module.__name__}.PARAMS"


@pytest.mark.parametrize("name", sorted(STAGES))
def test_every_declared_param_exists_in_params_yaml(name):
    load_params(path=ROOT / "params.yaml", keys=stage_module(STAGES[name]["cmd"]).PARAMS)  # KeyError otherwise


def test_a_stage_gets_only_the_keys_it_declares(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({"model": {"k": 3, "embedding": 8}, "cluster": {"lr": 0.1}}), encoding="utf-8")
    params = load_params(path=path, keys=("model.k", "cluster"))
    assert params == {"model": {"k": 3}, "cluster": {"lr": 0.1}}
    with pytest.raises(KeyError, match="has no 'epochs'"):
        load_params(path=path, keys=("model.epochs",))
