"""What the two DVC stage runners share: running `scrapy crawl` in a subprocess and writing its outputs.

A subprocess isolates Twisted's reactor (it cannot restart in one process) and lets a stage run the demo site
in-process beside it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from common import atomic_write, premium, read_json

REPO_ROOT = Path(__file__).resolve().parents[1]
DEMO_PACKAGE = Path(__file__).parent / "demo"
# The demo's modules that decide what it serves (records and pictures); dvc.yaml lists the same files. Its
# fault injection, command line and package init do not: changing them keeps the demo's pictures and answers.
DEMO_SOURCES = ("artwork.py", "catalogue.py", "payloads.py", "prices.py", "server.py")
# Shared files that also decide the demo's answers (not its pictures): the buyer's premium its prices include.
DEMO_PRICE_SOURCES = (Path(premium.__file__), premium.SCHEDULE_PATH)

# Settings for the loopback demo site only: it is ours and on 127.0.0.1, so politeness delays would only make
# the stage slow. The live site always gets the polite defaults of scraper/settings.py.
DEMO_CRAWL_SETTINGS: dict[str, Any] = {
    "DOWNLOAD_DELAY": 0,
    "AUTOTHROTTLE_ENABLED": False,
    "CONCURRENT_REQUESTS": 16,
    "CONCURRENT_REQUESTS_PER_DOMAIN": 8,
    "CHRISTIES_BACKOFF_BASE_DELAY": 0.1,
    "CHRISTIES_BACKOFF_MAX_DELAY": 2.0,
    "DOWNLOAD_TIMEOUT": 20,
}

logger = logging.getLogger(__name__)

# params.yaml's shipped contact: the project's own issue tracker, not the person who runs the crawl.
PLACEHOLDER_CONTACT = "https://github.com/christies-dcec/christies-dcec/issues"


def check_section(section: Mapping[str, Any], keys: tuple[str, ...], name: str, params_path: Path) -> None:
    missing = [key for key in keys if key not in section]
    if missing:
        raise KeyError(f"{params_path}: section {name!r} lacks {', '.join(missing)}")


def check_contact(scrape: Mapping[str, Any], params_path: Path) -> None:
    """A live crawl names who runs it: refuse the shipped placeholder (or nothing) in scrape.contact."""
    contact = str(scrape.get("contact") or "").strip()
    if scrape.get("site") == "live" and contact in ("", PLACEHOLDER_CONTACT):
        raise SystemExit(
            f"{params_path}: scrape.contact is {'empty' if not contact else 'still the placeholder ' + contact}. "
            "A live crawl puts it into the User-Agent so that Christie's can reach whoever runs the crawl: set it "
            "to your e-mail address or a web page about your project, e.g. "
            "`dvc exp run -S 'scrape.contact=mailto:you@example.org'` or edit params.yaml.")


def demo_site(demo_params: Mapping[str, Any], start: str) -> Any:
    """The demo site context manager (imported lazily: the live crawl does not need it)."""
    from scraper.demo import DemoSite, build_catalogue  # noqa: PLC0415

    return DemoSite(build_catalogue(demo_params, start=start), faults=None)


def demo_build_id(demo: Mapping[str, Any], start: str, package: Path = DEMO_PACKAGE) -> str:
    """sha1 of the demo params, the first month and the demo's DEMO_SOURCES (catalogue, renderer, server):
    what the demo site serves. Keys its pictures kept between runs (its archived answers: `demo_answers_id`)."""
    digest = hashlib.sha1(json.dumps({"demo": demo, "start": start}, sort_keys=True, default=str).encode())
    for name in DEMO_SOURCES:
        if (source := package / name).is_file():
            digest.update(name.encode() + b"\0" + source.read_bytes())
    return digest.hexdigest()


def demo_answers_id(demo: Mapping[str, Any], start: str) -> str:
    """`demo_build_id` and the premium schedule the demo's prices include: keys its archived answers (a new
    schedule changes the prices it serves, not its pictures, which stay keyed on `demo_build_id`)."""
    digest = hashlib.sha1(demo_build_id(demo, start).encode())
    for source in DEMO_PRICE_SOURCES:
        digest.update(source.name.encode() + b"\0" + source.read_bytes())
    return digest.hexdigest()


def setting_value(value: Any) -> str:
    """A Python value as a `-s NAME=VALUE` string Scrapy parses back (lists comma-joined, bools as 0/1,
    dicts as JSON)."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, Mapping):
        return json.dumps(dict(value))
    if isinstance(value, (list, tuple)):
        return ",".join(str(item) for item in value)
    return str(value)


def scrapy_command(spider: str, arguments: Mapping[str, str], settings: Mapping[str, Any], feed: Path,
                   append: bool) -> list[str]:
    """`python -m scrapy crawl SPIDER -a k=v ... -o|-O FEED:jsonlines -s K=V ...`."""
    command = [sys.executable, "-m", "scrapy", "crawl", spider]
    for name, value in arguments.items():
        command += ["-a", f"{name}={value}"]
    command += ["-o" if append else "-O", f"{feed}:jsonlines"]
    for name, value in settings.items():
        command += ["-s", f"{name}={setting_value(value)}"]
    return command


def scrapy_env() -> dict[str, str]:
    """The environment of a crawl subprocess: this repository first on the path, our settings module."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    env["SCRAPY_SETTINGS_MODULE"] = "scraper.settings"
    return env


def run_scrapy(command: list[str]) -> int:
    """Run a crawl from the repository root (where scrapy.cfg is) and return its exit status."""
    logger.info("running %s", " ".join(command))
    return subprocess.run(command, cwd=REPO_ROOT, env=scrapy_env(), check=False).returncode


def read_stats(path: Path) -> dict[str, Any]:
    """The stats the StatsFileExtension wrote, or `{}` when the crawl died before closing."""
    return read_json(path) if path.exists() else {}


def write_jsonl(target: Path, records: Iterable[Mapping[str, Any]]) -> int:
    """Write records as JSON Lines atomically; return how many."""
    count = 0
    with atomic_write(target) as fh:
        for record in records:
            fh.write(json.dumps(record, ensure_ascii=False) + "\n")
            count += 1
    return count


def count_lines(path: Path) -> int:
    if not path.exists():
        return 0
    with open(path, encoding="utf-8") as fh:
        return sum(1 for line in fh if line.strip())
