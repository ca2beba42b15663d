"""Read `params.yaml` once, at a stage's entry point.

A stage names the params it reads in a module constant `PARAMS` (dotted keys: a whole section, or
`section.key`) and loads them with `load_params(keys=PARAMS)`: it then gets only those, so reading anything
else is a KeyError in its tests, and tests/test_dvc_params.py checks that dvc.yaml declares exactly `PARAMS`
for the stage. DVC then re-runs a stage exactly when something it reads changed.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

DEFAULT_PARAMS = Path("params.yaml")


def load_params(section: str | None = None, path: str | Path = DEFAULT_PARAMS,
                keys: Sequence[str] | None = None) -> dict[str, Any]:
    """Return the whole params file, one top-level section of it, or (with `keys`) only the given dotted keys.

    Raises:
        FileNotFoundError: the params file is missing.
        KeyError: the section or a key is not in the file (the message names the file and what it has).
    """
    path = Path(path)
    with path.open(encoding="utf-8") as fh:
        params = yaml.safe_load(fh) or {}
    if keys is not None:
        return select_keys(params, keys, path)
    if section is None:
        return params
    if section not in params:
        raise KeyError(f"{path}: no section {section!r} (sections: {', '.join(sorted(params))})")
    return params[section]


def select_keys(params: dict[str, Any], keys: Sequence[str], source: str | Path = "params") -> dict[str, Any]:
    """{section: {key: value}} holding only `keys` ("section" takes the whole section, "section.key" one key)."""
    out: dict[str, Any] = {}
    for dotted in keys:
        section, _, name = dotted.partition(".")
        if section not in params:
            raise KeyError(f"{source}: no section {section!r} (sections: {', '.join(sorted(params))})")
        if not name:
            out[section] = params[section]
        elif name not in params[section]:
            raise KeyError(f"{source}: section {section!r} has no {name!r} (keys: {', '.join(sorted(params[section]))})")
        else:
            out.setdefault(section, {})[name] = params[section][name]
    return out
