"""The shared module: params loading, atomic writes, path containment, progress."""

import json

import pytest

from common import atomic_path, atomic_write, load_params, progress, read_json, safe_join, write_json


def test_load_params_section_and_missing_section(tmp_path):
    (tmp_path / "params.yaml").write_text("base:\n  seed: 3\nselect:\n  n_artists: 5\n")
    assert load_params("base", tmp_path / "params.yaml") == {"seed": 3}
    assert load_params(path=tmp_path / "params.yaml")["select"]["n_artists"] == 5
    with pytest.raises(KeyError, match="no section 'model'.*base, select"):
        load_params("model", tmp_path / "params.yaml")


def test_atomic_write_replaces_only_on_success(tmp_path):
    target = tmp_path / "out" / "table.csv"
    with atomic_write(target) as fh:
        fh.write("first\n")
    assert target.read_text() == "first\n"

    with pytest.raises(RuntimeError):
        with atomic_write(target) as fh:
            fh.write("half-writ")
            raise RuntimeError("crash mid-write")
    assert target.read_text() == "first\n"
    assert [p.name for p in target.parent.iterdir()] == ["table.csv"]  # no temp file left behind


def test_atomic_path_for_writers_that_want_a_name(tmp_path):
    target = tmp_path / "weights.bin"
    with atomic_path(target) as tmp:
        assert tmp.parent == target.parent and tmp != target
        tmp.write_bytes(b"\x00\x01")
        assert not target.exists()
    assert target.read_bytes() == b"\x00\x01"


def test_write_json_round_trip_keeps_unicode(tmp_path):
    write_json(tmp_path / "m.json", {"artist": "Joan Miró", "n": 3})
    assert read_json(tmp_path / "m.json") == {"artist": "Joan Miró", "n": 3}
    assert "Miró" in (tmp_path / "m.json").read_text(encoding="utf-8")
    json.loads((tmp_path / "m.json").read_text())


@pytest.mark.parametrize("part", ["../../x", "/etc/passwd", "a/../../b", "..", "a/" + "../" * 5 + "x"])
def test_safe_join_refuses_escapes(tmp_path, part):
    with pytest.raises(ValueError, match="escapes"):
        safe_join(tmp_path, part)


def test_safe_join_accepts_nested_names_and_refuses_symlink_escape(tmp_path):
    assert safe_join(tmp_path, "www", "lot-1.jpg") == (tmp_path / "www" / "lot-1.jpg").resolve()
    outside = tmp_path.parent / f"{tmp_path.name}-outside"
    outside.mkdir()
    (tmp_path / "link").symlink_to(outside)
    with pytest.raises(ValueError):
        safe_join(tmp_path, "link", "x.jpg")


def test_progress_yields_every_item():
    assert list(progress(range(5), desc="test")) == [0, 1, 2, 3, 4]


def test_atomic_outputs_are_world_readable(tmp_path):
    with atomic_write(tmp_path / "x.txt") as fh:
        fh.write("x")
    assert (tmp_path / "x.txt").stat().st_mode & 0o777 == 0o644
