"""Progress reporting for long loops: a tqdm bar on a terminal, periodic lines with counts and rate in logs."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

from tqdm import tqdm

T = TypeVar("T")


def progress(iterable: Iterable[T], desc: str, total: int | None = None, unit: str = "it") -> Iterator[T]:
    """Wrap `iterable` with a progress display.

    On a terminal this is a live bar; under DVC or CI (no TTY) tqdm prints a line at most every
    10 seconds, each with the count, the rate and the time left.
    """
    interactive = sys.stderr.isatty()
    return iter(
        tqdm(
            iterable,
            desc=desc,
            total=total,
            unit=unit,
            mininterval=0.2 if interactive else 10.0,
            dynamic_ncols=interactive,
            ascii=not interactive,
            file=sys.stderr,
        )
    )
