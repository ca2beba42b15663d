"""Where the side files of a crawl go (rejects, failures, stats) and a line-at-a-time JSON Lines writer."""

from __future__ import annotations

import json
from pathlib import Path
from typing import IO, Any

from scrapy.settings import BaseSettings


def feed_path(settings: BaseSettings) -> Path | None:
    """The local file of the first feed (`-o/-O FILE`), or None when there is no local feed."""
    for uri in settings.getdict("FEEDS"):
        uri = str(uri)
        if "%(" in uri:
            continue
        if uri.startswith("file://"):
            return Path(uri[len("file://"):])
        if "://" not in uri:
            return Path(uri)
    return None


def side_file(settings: BaseSettings, setting: str, default_name: str, suffix_of_feed: bool) -> Path:
    """The path named by `setting`, else a file beside the feed.

    `suffix_of_feed=True` names it `<feed>.<default_name>` (e.g. `lots.jsonl.failures.jsonl`); otherwise
    `<feed dir>/<default_name>`. Without a feed, `<default_name>` in the working directory.
    """
    explicit = settings.get(setting)
    if explicit:
        return Path(explicit)
    feed = feed_path(settings)
    if feed is None:
        return Path(default_name)
    return feed.with_name(f"{feed.name}.{default_name}") if suffix_of_feed else feed.parent / default_name


class JsonLinesLog:
    """An append-as-you-go JSON Lines file, flushed per line so a killed crawl keeps what it wrote.

    It is truncated when a crawl starts and appended to when a crawl resumes from a JOBDIR, so one job
    keeps one log.
    """

    def __init__(self, path: Path, resume: bool):
        self.path = path
        self.count = 0
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fh: IO[str] | None = open(path, "a" if resume else "w", encoding="utf-8")  # noqa: SIM115

    def write(self, record: dict[str, Any]) -> None:
        if self._fh is None:
            raise ValueError(f"{self.path}: log already closed")
        self._fh.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
        self._fh.flush()
        self.count += 1

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
