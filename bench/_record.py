"""What every benchmark shares: the machine description, markdown tables, and appending a result section
to docs/BENCHMARKS.md (atomically: the whole file is rewritten through a temporary file and a rename).

A result is only comparable with others from the same machine and the same allocator settings, so each
section carries the CPU model, core count, library versions, the glibc malloc variables (which change the
PyTorch CPU numbers by up to 2x, see /work/shared/reference/environment.md) and the command to rerun it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shlex
import sys
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

from common import atomic_write

BENCHMARKS_MD = Path("docs/BENCHMARKS.md")
MALLOC_VARIABLES = ("MALLOC_MMAP_MAX_", "MALLOC_TRIM_THRESHOLD_")
FILE_HEADER = (
    "# Benchmarks\n\n"
    "Appended by the scripts in `bench/` (issue #8); newest sections last. Rerun any of them with the command\n"
    "shown in its section. Columns within one table are measured in the same run, side by side: compare those\n"
    "ratios, not absolute numbers across runs (the machines are shared and vary by ±20%).\n"
)
PACKAGES = ("torch", "Pillow", "Scrapy", "numpy", "dvc")


def cpu_model(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The 'model name' line of /proc/cpuinfo, or platform.processor() where there is none."""
    try:
        for line in cpuinfo.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.lower().startswith("model name") and ":" in line:
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def package_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def gpu_name() -> str:
    """The CUDA device's name, or 'none' (torch is imported only if it is already installed)."""
    try:
        import torch  # noqa: PLC0415 - only the torch benchmarks need it loaded
    except ImportError:
        return "none"
    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"


def malloc_settings() -> str:
    """The glibc allocator variables as `NAME=value` words, or 'glibc defaults'."""
    words = [f"{name}={os.environ[name]}" for name in MALLOC_VARIABLES if name in os.environ]
    return " ".join(words) if words else "glibc defaults"


def machine_info() -> dict[str, str]:
    """CPU model, cores, GPU, Python and package versions, allocator settings."""
    info = {
        "cpu": cpu_model(),
        "cores": str(os.cpu_count() or "?"),
        "gpu": gpu_name(),
        "python": platform.python_version(),
    }
    info.update({name: package_version(name) for name in PACKAGES})
    info["malloc environment"] = malloc_settings()  # the model code may also set it in-process: see the body
    return info


def command_line(module: str, argv: Sequence[str]) -> str:
    """The shell command that reruns this benchmark, with the allocator variables that were in effect."""
    env = [f"{name}={os.environ[name]}" for name in MALLOC_VARIABLES if name in os.environ]
    return " ".join([*env, "python", "-m", module, *(shlex.quote(a) for a in argv)])


def fmt(value: object, digits: int = 1) -> str:
    """A table cell: floats with `digits` decimals and thousands separators, None as an en dash."""
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub markdown table; cells go through `fmt`, pipes inside cells are escaped."""
    def cell(value: object) -> str:
        return fmt(value).replace("|", "\\|")

    lines = ["| " + " | ".join(cell(h) for h in headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    for row in rows:
        if len(row) != len(headers):
            raise ValueError(f"table row {list(row)!r} has {len(row)} cells for {len(headers)} headers")
        lines.append("| " + " | ".join(cell(value) for value in row) + " |")
    return "\n".join(lines) + "\n"


def goal_line(name: str, met: bool | None, measured: str) -> str:
    """`- goal: **met** (measured)`; met=None means it could not be judged in this run."""
    verdict = "not judged" if met is None else ("met" if met else "NOT met")
    return f"- {name}: **{verdict}** ({measured})\n"


def section(title: str, command: str, machine: dict[str, str], body: str, now: dt.datetime | None = None) -> str:
    """A markdown section: heading with the UTC date, the rerun command, the machine, then `body`."""
    now = now or dt.datetime.now(dt.timezone.utc)
    machine_text = "; ".join(f"{key} {value}" for key, value in machine.items())
    return (f"\n## {title} — {now:%Y-%m-%d %H:%M} UTC\n\n"
            f"Command: `{command}`\n\n"
            f"Machine: {machine_text}\n\n"
            f"{body.rstrip()}\n")


def append_section(path: Path, text: str) -> None:
    """Append `text` to `path` (created with the file header if missing), atomically."""
    existing = path.read_text(encoding="utf-8") if path.exists() else FILE_HEADER
    with atomic_write(path) as fh:
        fh.write(existing.rstrip("\n") + "\n" + text)


def add_record_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-record", action="store_true", help="print the table only; do not append to the file")
    parser.add_argument("--record-to", type=Path, default=BENCHMARKS_MD, help="markdown file to append to")


def publish(args: argparse.Namespace, module: str, argv: Sequence[str], title: str, body: str) -> str:
    """Print the section and, unless --no-record, append it to --record-to. Returns the section text."""
    text = section(title, command_line(module, argv), machine_info(), body)
    print(text)
    if not args.no_record:
        append_section(args.record_to, text)
        print(f"appended to {args.record_to}", file=sys.stderr)
    return text
