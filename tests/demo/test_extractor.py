"""The tests' own brace-balanced extractor must not stop at '});' or braces inside strings."""

import pytest

from tests.demo.conftest import extract_json_object


def test_extractor_ignores_braces_and_terminators_inside_strings():
    text = 'x = 1; window.chrComponents.lots = {"data": {"t": "a});b {c} \\"q\\""}, "n": [1, {"k": 2}]};\nmore'
    assert extract_json_object(text, "window.chrComponents.lots =") == {
        "data": {"t": 'a});b {c} "q"'}, "n": [1, {"k": 2}]}


def test_extractor_reports_an_unbalanced_object():
    with pytest.raises(ValueError, match="unbalanced"):
        extract_json_object('data: {"a": {"b": 1}', "data: ")
