"""Fixtures for the demo-site tests: the catalogue of params.yaml and a live site on loopback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from common import load_params
from scraper.demo import DemoSite, build_catalogue

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def params() -> dict:
    return load_params(path=REPO_ROOT / "params.yaml")


@pytest.fixture(scope="session")
def catalogue(params):
    return build_catalogue(params["demo"], params["scrape"]["start"])


@pytest.fixture(scope="session")
def site(catalogue):
    with DemoSite(catalogue) as running:
        yield running


def extract_json_object(text: str, marker: str) -> object:
    """The JSON object that starts at the first '{' after `marker`: brace-balanced and string-aware,
    so '});' or braces inside strings do not end it early."""
    start = text.index("{", text.index(marker) + len(marker))
    depth, in_string, escaped = 0, False, False
    for position in range(start, len(text)):
        char = text[position]
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return json.loads(text[start:position + 1])
    raise ValueError(f"unbalanced object after {marker!r}")
