"""What computed a persisted result: the code (by content), the libraries' versions, and the runtime.

A cache entry kept across runs must be keyed on all of it, or a fix to the code (or another torch, another
device) is served the old result. Used by the model's caches (compare's runs, the per-seed CAEs, verify's
seeds) and curation's image facts.

The code of a result is the static import closure of the module that computes it, within its own package
(`model/` or `curation/`), by content: a module added later (a new clustering method imported by
model/methods.py) is part of it without being listed anywhere. Content means the module's syntax tree
without docstrings, comments and line numbers: an edit to a comment or a docstring is not a new result,
because recomputing for it would be costly (the per-seed CAEs, hours at the paper's size) and changes
nothing; any change to what the code does is a new key.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.metadata
from collections.abc import Iterable
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def library_versions(names: Iterable[str]) -> dict[str, str | None]:
    """{distribution name: installed version, or None when it is not installed}."""
    versions = {}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def module_path(module: str, root: Path = REPO_ROOT) -> Path:
    """`model.runs` → <root>/model/runs.py (a package → its __init__.py)."""
    base = root.joinpath(*module.split("."))
    return base / "__init__.py" if base.is_dir() else base.with_suffix(".py")


def imported_modules(module: str, root: Path = REPO_ROOT) -> set[str]:
    """The modules of `module`'s own top-level package that it imports anywhere in its body (functions
    included: a lazy import is still code the module runs), by reading its source."""
    package = module.split(".")[0]
    tree = ast.parse(module_path(module, root).read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.split(".")[0] == package}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == package:  # `from model import figures`
                found |= {f"{package}.{alias.name}" for alias in node.names}
            elif node.module.split(".")[0] == package:
                found.add(node.module)
    return {name for name in found if module_path(name, root).is_file()}


def import_graph(package: str, root: Path = REPO_ROOT) -> dict[str, set[str]]:
    """{module: the package's modules it imports} for every module of `package`."""
    modules = sorted(f"{package}.{path.stem}" for path in (root / package).glob("*.py") if path.stem != "__init__")
    return {module: imported_modules(module, root) for module in modules}


def import_closure(modules: Iterable[str], root: Path = REPO_ROOT) -> list[str]:
    """`modules` and everything of their package they import, directly or not, sorted."""
    seen: set[str] = set()
    todo = list(modules)
    while todo:
        module = todo.pop()
        if module not in seen:
            seen.add(module)
            todo.extend(imported_modules(module, root) - seen)
    return sorted(seen)


def _without_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
                node.body = node.body[1:] or [ast.Pass()]
    return tree


def code_digest(modules: Iterable[str], root: Path = REPO_ROOT) -> str:
    """sha256 over the syntax trees (no docstrings, comments or positions) of the import closure of `modules`."""
    digest = hashlib.sha256()
    for module in import_closure(modules, root):
        tree = _without_docstrings(ast.parse(module_path(module, root).read_text(encoding="utf-8")))
        digest.update(module.encode() + b"\0" + ast.dump(tree).encode() + b"\0")
    return digest.hexdigest()[:20]


def provenance(modules: Iterable[str], libraries: Iterable[str], root: Path = REPO_ROOT, **runtime: object) -> dict:
    """What a result depends on besides its inputs and settings: {"code": code_digest(modules),
    "libraries": library_versions(libraries), **runtime} (runtime: device, precision, threads, ...)."""
    return {"code": code_digest(modules, root), "libraries": library_versions(libraries), **runtime}
