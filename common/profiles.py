"""Parameter profiles: a YAML file of overrides to params.yaml, turned into `dvc exp run -S` arguments.

    python -m common.profiles profiles/paper.yaml            # prints: -S scrape.site=live -S ... (one line)
    python -m common.profiles profiles/paper.yaml --check    # only validates against params.yaml

A profile has the same nesting as params.yaml and lists only the keys it changes. Every key path must
already exist in params.yaml (DVC applies `-S` in struct mode and would refuse a new key too, but later and
less clearly), and each value must be of the same kind as the one it replaces (a section stays a section,
a list a list, a number a number).

Values are written in the override grammar DVC uses for `-S` (Hydra's): `true`/`false`, `null`, numbers as
Python writes them, lists in flow style `[0,1,2]`, strings unquoted. The printed line is meant for an
unquoted command substitution, `dvc exp run $(python -m common.profiles ...)`: the shell splits it on
spaces but removes no quotes, so no token may contain whitespace or a quote. A string value is therefore
accepted only when it needs no quoting at all (letters, digits and `_-./:+@%`) and cannot be read back as
anything but that string; any other string is refused with an error naming the profile and the key. Lists
contain `[` `]`, which a shell may glob: run the substitution with globbing off (`set -f`), as the Makefile
target does.
"""

from __future__ import annotations

import argparse
import copy
import math
import re
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from common.params import DEFAULT_PARAMS

KEY_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Characters that neither the shell (outside a word's start) nor DVC's override grammar treat specially.
UNQUOTED_STRING = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_\-./:+@%]*")
# Words the override grammar reads as a float, a boolean or null, whatever their case.
OVERRIDE_KEYWORDS = {"true", "false", "null", "inf", "+inf", "-inf", "nan", "+nan", "-nan"}


class ProfileError(ValueError):
    """A profile that cannot be applied: the message names the file and the key."""


def load_profile(path: str | Path) -> dict[str, Any]:
    """Read a profile file; it must be a non-empty YAML mapping."""
    path = Path(path)
    try:
        with path.open(encoding="utf-8") as fh:
            profile = yaml.safe_load(fh)
    except FileNotFoundError:
        raise ProfileError(f"{path}: no such profile file") from None
    except yaml.YAMLError as error:
        raise ProfileError(f"{path}: not valid YAML: {error}") from None
    if not isinstance(profile, dict) or not profile:
        raise ProfileError(f"{path}: a profile must be a non-empty mapping of params.yaml sections")
    return profile


def value_kind(value: Any) -> str:
    """The kind a value must keep when a profile replaces it: section, list, bool, number, string or null."""
    if isinstance(value, Mapping):
        return "section"
    if isinstance(value, list | tuple):
        return "list"
    if isinstance(value, bool):  # before number: bool is an int in Python
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if value is None:
        return "null"
    return "string"


def profile_problems(profile: Mapping[str, Any], params: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Every key of `profile` that params has not, or whose value is of another kind (one line each)."""
    problems = []
    for key, value in profile.items():
        path = f"{prefix}{key}"
        if not isinstance(key, str) or not KEY_PATTERN.fullmatch(key):
            problems.append(f"{path!s}: key names must match {KEY_PATTERN.pattern}")
            continue
        if key not in params:
            problems.append(f"{path}: no such key in params.yaml")
            continue
        expected, got = value_kind(params[key]), value_kind(value)
        if got == "section" and not value:
            problems.append(f"{path}: empty section (it would erase params.yaml's; remove it)")
        elif expected == "section" and got == "section":
            problems.extend(profile_problems(value, params[key], prefix=f"{path}."))
        elif expected != got and expected != "null":
            problems.append(f"{path}: params.yaml holds a {expected} here, the profile a {got} ({value!r})")
    return problems


def check_profile(profile: Mapping[str, Any], params: Mapping[str, Any], profile_path: str | Path,
                  params_path: str | Path = DEFAULT_PARAMS) -> None:
    """Raise ProfileError listing every key of the profile that does not fit params.yaml."""
    problems = profile_problems(profile, params)
    if problems:
        lines = "\n  ".join(problems)
        raise ProfileError(f"{profile_path}: {len(problems)} key(s) do not fit {params_path}:\n  {lines}")


def flatten(profile: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(`section.key.path`, value) for every leaf, in file order; lists are leaves, not walked into."""
    for key, value in profile.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping):
            yield from flatten(value, prefix=f"{path}.")
        else:
            yield path, value


def reads_back_as_other_than_string(text: str) -> bool:
    """True when the override grammar or a YAML 1.1 reader (yaml.safe_load, as the stages use) would
    turn `text` into a number, a boolean, null or a date instead of the string itself."""
    if text.lower() in OVERRIDE_KEYWORDS:
        return True
    try:
        float(text)
        return True
    except ValueError:
        pass
    return yaml.safe_load(text) != text


def format_value(value: Any, key: str = "?") -> str:
    """`value` in DVC's `-S` override grammar, with no whitespace or quote (see the module docstring).

    Raises:
        ProfileError: a string that would need quoting, or a value of a type YAML params never hold.
    """
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return repr(value) if math.isfinite(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, str):
        if not UNQUOTED_STRING.fullmatch(value) or reads_back_as_other_than_string(value):
            raise ProfileError(f"{key}: the string {value!r} cannot be passed unquoted through `dvc exp run -S`; "
                               f"use only letters, digits and _-./:+@% in a value that is not a number, "
                               f"boolean, null or date, or set it in params.yaml instead")
        return value
    if isinstance(value, list | tuple):
        return "[" + ",".join(format_value(item, key) for item in value) + "]"
    if isinstance(value, Mapping):
        bad = [k for k in value if not isinstance(k, str) or not KEY_PATTERN.fullmatch(k)]
        if bad:
            raise ProfileError(f"{key}: key names must match {KEY_PATTERN.pattern}, not {bad[0]!r}")
        return "{" + ",".join(f"{k}:{format_value(v, f'{key}.{k}')}" for k, v in value.items()) + "}"
    raise ProfileError(f"{key}: values of type {type(value).__name__} ({value!r}) are not supported")


def override_args(profile: Mapping[str, Any], profile_path: str | Path = "profile") -> list[str]:
    """The `dvc exp run` arguments of a profile: `-S`, `key.path=value` pairs, in file order."""
    args: list[str] = []
    for path, value in flatten(profile):
        try:
            args += ["-S", f"{path}={format_value(value, path)}"]
        except ProfileError as error:
            raise ProfileError(f"{profile_path}: {error}") from None
    return args


def apply_profile(params: Mapping[str, Any], profile: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of `params` with every leaf of `profile` set (what `dvc exp run -S` does to params.yaml)."""
    merged = copy.deepcopy(dict(params))
    for path, value in flatten(profile):
        *sections, key = path.split(".")
        target = merged
        for section in sections:
            target = target[section]
        target[key] = copy.deepcopy(value)
    return merged


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m common.profiles", description=__doc__.split("\n\n")[0])
    parser.add_argument("profile", type=Path, help="the profile file, e.g. profiles/paper.yaml")
    parser.add_argument("--params", type=Path, default=DEFAULT_PARAMS, help="params file to validate against")
    parser.add_argument("--check", action="store_true", help="only validate; print nothing on stdout but a summary")
    args = parser.parse_args(argv)
    try:
        profile = load_profile(args.profile)
        with args.params.open(encoding="utf-8") as fh:
            params = yaml.safe_load(fh) or {}
        check_profile(profile, params, args.profile, args.params)
        overrides = override_args(profile, args.profile)
    except (ProfileError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.check:
        print(f"{args.profile}: {len(overrides) // 2} override(s), all valid against {args.params}")
    else:
        print(" ".join(overrides))
    return 0


if __name__ == "__main__":
    sys.exit(main())
