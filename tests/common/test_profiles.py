"""Parameter profiles (common/profiles.py) and the shipped paper profile (profiles/paper.yaml)."""

from __future__ import annotations

import json
import os
from collections import Counter
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from common.profiles import (ProfileError, apply_profile, check_profile, flatten, format_value, load_profile, main,
                             override_args)

REPO = Path(__file__).resolve().parents[2]
PAPER = REPO / "profiles" / "paper.yaml"
MISSION = REPO / "profiles" / "mission-demo.yaml"
PARAMS = REPO / "params.yaml"

PARAMS_SAMPLE = {
    "scrape": {"site": "demo", "start": "2019-01", "image_width": 512, "categories": ["category_7"]},
    "cluster": {"tol": 0.001, "maxiter": 300},
    "report": {"paper_values": False},
}


def read_yaml(path: Path) -> dict:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def override_pairs(args: list[str]) -> dict[str, str]:
    """{'key.path': 'value text'} from ['-S', 'key.path=value', ...]; every other token must be -S."""
    assert args[0::2] == ["-S"] * (len(args) // 2)
    return dict(arg.split("=", 1) for arg in args[1::2])


@pytest.mark.parametrize("profile", [PAPER, MISSION], ids=lambda p: p.name)
def test_shipped_profiles_are_valid_against_params_yaml(profile):
    check_profile(load_profile(profile), read_yaml(PARAMS), profile, PARAMS)
    assert main([str(profile), "--params", str(PARAMS), "--check"]) == 0


def test_paper_profile_sets_the_values_named_in_issue_5():
    values = dict(flatten(load_profile(PAPER)))
    assert values["scrape.site"] == "live"
    assert str(values["scrape.start"]) == "2005-12"
    assert (values["select.n_artists"], values["select.per_artist"]) == (50, 250)
    assert values["model.k"] == 50
    assert values["images.size"] == 128
    assert values["pretrain.epochs"] == 200
    assert values["cluster.update_interval"] == 140
    assert values["cluster.tol"] == 0.001
    assert values["cluster.maxiter"] == 20000
    assert (values["cluster.kl_weight"], values["cluster.recon_weight"]) == (0.9, 0.1)
    assert values["pretrain.batch_size"] == values["cluster.batch_size"] == 512
    assert values["model.device"] == "auto"
    assert len(values["compare.seeds"]) >= 5
    assert values["report.paper_values"] is True


def test_paper_profile_months_are_strings_and_ordered():
    """YYYY-MM must stay text through YAML (the scrape stage formats it) and end after start."""
    scrape = load_profile(PAPER)["scrape"]
    assert isinstance(scrape["start"], str) and isinstance(scrape["end"], str)
    assert scrape["start"] < scrape["end"]


def test_unknown_key_is_an_error_naming_profile_and_key(tmp_path):
    profile_path = tmp_path / "typo.yaml"
    profile_path.write_text("cluster:\n  maxiterations: 20000\n  tol: 0.001\nreprot:\n  paper_values: true\n")
    with pytest.raises(ProfileError) as error:
        check_profile(load_profile(profile_path), PARAMS_SAMPLE, profile_path, "params.yaml")
    message = str(error.value)
    assert str(profile_path) in message and "2 key(s)" in message
    assert "cluster.maxiterations: no such key" in message
    assert "reprot: no such key" in message
    assert "cluster.tol" not in message


def test_kind_mismatch_and_empty_section_are_errors():
    bad = {"scrape": {"image_width": "512", "categories": "category_7"}, "cluster": {}, "report": True}
    with pytest.raises(ProfileError) as error:
        check_profile(bad, PARAMS_SAMPLE, "p.yaml")
    message = str(error.value)
    assert "scrape.image_width: params.yaml holds a number here, the profile a string" in message
    assert "scrape.categories: params.yaml holds a list here, the profile a string" in message
    assert "cluster: empty section" in message
    assert "report: params.yaml holds a section here, the profile a bool" in message


def test_cli_exits_2_with_the_error_on_stderr(tmp_path, capsys):
    profile_path = tmp_path / "bad.yaml"
    profile_path.write_text("cluster:\n  nope: 1\n")
    params_path = tmp_path / "params.yaml"
    params_path.write_text(yaml.safe_dump(PARAMS_SAMPLE))
    assert main([str(profile_path), "--params", str(params_path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "cluster.nope: no such key" in captured.err


def test_flatten_walks_sections_and_keeps_lists_and_bools_as_leaves():
    nested = {"a": {"b": {"c": 1}, "flag": False, "items": [1, 2]}, "top": "x"}
    assert list(flatten(nested)) == [("a.b.c", 1), ("a.flag", False), ("a.items", [1, 2]), ("top", "x")]
    assert override_args(nested) == ["-S", "a.b.c=1", "-S", "a.flag=false", "-S", "a.items=[1,2]", "-S", "top=x"]


@pytest.mark.parametrize("value, text", [
    (True, "true"), (False, "false"), (None, "null"), (140, "140"), (0.001, "0.001"), (1e-05, "1e-05"),
    ("live", "live"), ("2005-12", "2005-12"), ("https://example.org/a_b/c", "https://example.org/a_b/c"),
    ([0, 1, 2, 3, 4], "[0,1,2,3,4]"), ([0.5, 1.0], "[0.5,1.0]"),
    (["category_7", "category_11"], "[category_7,category_11]"),
    ({"widths": [32, 64], "hflip": True}, "{widths:[32,64],hflip:true}"),
])
def test_format_value_in_override_grammar(value, text):
    assert format_value(value) == text


@pytest.mark.parametrize("value", ["two words", "it's", "a,b", "${x}", "17123", "true", "Null", "yes", "inf",
                                   "2019-01-01", "", "*", "[x]"])
def test_strings_that_would_need_quoting_or_change_type_are_refused(value):
    with pytest.raises(ProfileError, match=r"cannot be passed unquoted"):
        format_value(value, "scrape.x")


def test_printed_line_survives_shell_splitting_unchanged(capsys):
    """The Makefile splits the line with an unquoted substitution: no token may depend on quote removal."""
    assert main([str(PAPER), "--params", str(PARAMS)]) == 0
    line = capsys.readouterr().out.strip()
    assert "\n" not in line
    assert shlex.split(line) == line.split(" ")
    assert line.split(" ") == override_args(load_profile(PAPER))


def test_printed_values_parse_back_to_the_profile_values():
    pairs = override_pairs(override_args(load_profile(PAPER)))
    for key, value in flatten(load_profile(PAPER)):
        assert yaml.safe_load(pairs[key]) == value, key


@pytest.mark.parametrize("profile_path", [PAPER, MISSION], ids=lambda p: p.name)
def test_dvc_set_param_applies_the_profile_exactly(tmp_path, profile_path):
    """DVC's own `-S` code path (Hydra overrides on params.yaml), then the stages' reader (yaml.safe_load);
    apply_profile (the benchmark's scratch copies) gives the same params."""
    apply_overrides = pytest.importorskip("dvc.utils.hydra").apply_overrides
    params_copy = tmp_path / "params.yaml"
    shutil.copy(PARAMS, params_copy)
    profile = load_profile(profile_path)
    apply_overrides(params_copy, override_args(profile)[1::2])

    before, after = read_yaml(PARAMS), read_yaml(params_copy)
    changed = dict(flatten(profile))
    for key, value in flatten(before):
        assert after_value(after, key) == changed.get(key, value), key
    assert apply_profile(before, profile) == after


def test_mission_profile_catalogue_has_50_artists_of_300_works_and_samples_12500():
    from scraper.demo import build_catalogue  # noqa: PLC0415

    params = apply_profile(read_yaml(PARAMS), load_profile(MISSION))
    assert (params["select"]["n_artists"], params["select"]["per_artist"], params["images"]["size"],
            params["model"]["k"]) == (50, 250, 128, 50)
    catalogue = build_catalogue(params["demo"], str(params["scrape"]["start"]))
    works = sorted(Counter(lot.truth.artist_key for lot in catalogue.lots.values() if lot.truth.artist_key).values(),
                   reverse=True)
    assert len(works) >= 50 and works[49] >= 300


def after_value(params: dict, dotted: str):
    node = params
    for part in dotted.split("."):
        node = node[part]
    return node


def fake_bin(tmp_path: Path) -> Path:
    """A BIN folder whose `python` is this interpreter (a wrapper: a symlink would lose the venv)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python").write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} "$@"\n')
    (bin_dir / "python").chmod(0o755)
    return bin_dir


def test_make_repro_paper_passes_the_profile_to_dvc_exp_run(tmp_path):
    """The Makefile target, with a stand-in `dvc` that records its argv, in a scratch folder that holds a
    file named like a glob match of a list value (globbing must be off)."""
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    work = tmp_path / "work"
    (work / "profiles").mkdir(parents=True)
    shutil.copy(PAPER, work / "profiles" / "paper.yaml")
    shutil.copy(PARAMS, work / "params.yaml")
    (work / "pyproject.toml").write_text("")
    (work / "constraints.txt").write_text("")
    (work / "compare.seeds=0").write_text("")  # what [0,1,2,3,4] would glob to
    bin_dir = fake_bin(tmp_path)
    argv_file = tmp_path / "argv.json"
    fake_dvc = bin_dir / "dvc"
    fake_dvc.write_text(f"#!{sys.executable}\nimport json, sys\n"
                        f"json.dump(sys.argv[1:], open({str(argv_file)!r}, 'w'))\n")
    fake_dvc.chmod(0o755)
    stamp = tmp_path / "stamp"
    stamp.write_text("")
    os.utime(work / "pyproject.toml", (0, 0))
    os.utime(work / "constraints.txt", (0, 0))

    env = {**os.environ, "PYTHONPATH": str(REPO)}
    subprocess.run(["make", "-s", "-f", str(REPO / "Makefile"), "-C", str(work), "repro-paper",
                    f"BIN={bin_dir}", f"STAMP={stamp}"], check=True, env=env, capture_output=True, timeout=60)
    argv = json.loads(argv_file.read_text())
    assert argv[:4] == ["exp", "run", "-n", "paper"]
    assert argv[4:] == override_args(load_profile(PAPER))


def test_make_repro_paper_stops_when_the_profile_is_invalid(tmp_path):
    """A broken profile must not fall through to `dvc exp run` with the embedded default."""
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    work = tmp_path / "work"
    (work / "profiles").mkdir(parents=True)
    (work / "profiles" / "paper.yaml").write_text("cluster:\n  no_such_key: 1\n")
    shutil.copy(PARAMS, work / "params.yaml")
    (work / "pyproject.toml").write_text("")
    (work / "constraints.txt").write_text("")
    os.utime(work / "pyproject.toml", (0, 0))
    os.utime(work / "constraints.txt", (0, 0))
    bin_dir = fake_bin(tmp_path)
    marker = tmp_path / "dvc_ran"
    (bin_dir / "dvc").write_text(f"#!/bin/sh\ntouch {marker}\n")
    (bin_dir / "dvc").chmod(0o755)
    stamp = tmp_path / "stamp"
    stamp.write_text("")

    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run(["make", "-s", "-f", str(REPO / "Makefile"), "-C", str(work), "repro-paper",
                             f"BIN={bin_dir}", f"STAMP={stamp}"], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "cluster.no_such_key: no such key" in result.stderr
    assert not marker.exists()


def test_paper_profile_doc_table_lists_every_key_with_its_profile_value():
    """docs/PAPER_PROFILE.md's table of changes: one row per profile key, the profile column as in the file."""
    doc_rows = {}
    for line in (REPO / "docs" / "PAPER_PROFILE.md").read_text(encoding="utf-8").splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split(" | ")]
        if line.startswith("| `") and len(cells) == 4 and "." in cells[0]:
            doc_rows[cells[0].strip("`")] = yaml.safe_load(cells[2].strip("`"))
    assert doc_rows == dict(flatten(load_profile(PAPER)))
