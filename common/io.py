"""Crash-safe file writing and path containment.

Every stage writes to a temporary name beside the target and renames on success, so a crash never
leaves a half-written file that looks complete.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any


@contextlib.contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `target`; rename it onto `target` if the block succeeds.

    For writers that want a file name (numpy, torch, pandas, Pillow).
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o644)  # mkstemp makes 0600; outputs are ordinary readable files
        os.replace(tmp_path, target)
    finally:
        tmp_path.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_write(target: str | Path, mode: str = "w", encoding: str | None = "utf-8", **kwargs: Any) -> Iterator[IO]:
    """Open a temporary file beside `target` for writing; fsync and rename it onto `target` on success."""
    if "b" in mode:
        encoding = None
    with atomic_path(target) as tmp:
        with open(tmp, mode, encoding=encoding, **kwargs) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())


def write_json(target: str | Path, obj: Any) -> None:
    """Write `obj` as indented UTF-8 JSON, atomically."""
    with atomic_write(target) as fh:
        json.dump(obj, fh, indent=2, ensure_ascii=False, sort_keys=False)
        fh.write("\n")


def read_json(path: str | Path) -> Any:
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def safe_join(root: str | Path, *parts: str) -> Path:
    """Join `parts` under `root` and refuse any result that escapes it.

    Scraped values (ids, slugs) end up in file names; `../../x`, absolute paths and symlink tricks
    must not write outside the data folder.

    Raises:
        ValueError: the joined path is not inside `root`.
    """
    root_resolved = Path(root).resolve()
    candidate = root_resolved.joinpath(*parts).resolve()
    if candidate != root_resolved and root_resolved not in candidate.parents:
        raise ValueError(f"path {os.path.join(*parts)!r} escapes {root}")
    return candidate


def file_sha1(path: str | Path, chunk_size: int = 1 << 20) -> str:
    """sha1 of a file's bytes, streamed: the content key of the model stages' caches."""
    digest = hashlib.sha1()
    with open(path, "rb") as fh:
        while chunk := fh.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()
