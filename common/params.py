"""Read `params.yaml` once, at a stage's entry point."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

DEFAULT_PARAMS = Path("params.yaml")


def load_params(section: str | None = None, path: str | Path = DEFAULT_PARAMS) -> dict[str, Any]:
    """Return the whole params file, or one top-level section of it.

    Raises:
        FileNotFoundError: the params file is missing.
        KeyError: the section is not in the file (the message lists the sections that are).
    """
    path = Path(path)
    with path.open(encoding="utf-8") as fh:
        params = yaml.safe_load(fh) or {}
    if section is None:
        return params
    if section not in params:
        raise KeyError(f"{path}: no section {section!r} (sections: {', '.join(sorted(params))})")
    return params[section]
