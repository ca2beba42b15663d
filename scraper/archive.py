"""The response archive: what Christie's answered, kept by month, replayed instead of asked again.

A month is **settled** once its calendar was read and every sale in it was closed and fully listed, each
request answered on its first route (no fallback, no failure, no lost or incomplete listing, no open or
upcoming sale; scraper/spiders/christies.py decides). Its answers are then replayed from here on every later
crawl: a parsing change, a longer range or a rerun after a kill asks the site only for months not settled.

Layout (one folder per calendar month, what DVC never deletes: `scrape.archive`, its own folder):

    <root>/2019-01/settled.json     written last, atomically: the month is settled iff it reads
    <root>/2019-01/<key>.gz          one gzip'd response body per request (key: sha256 of method, URL, body)
    <root>/2019-01/recorded.jsonl    answers recorded since the month last settled (merged, then removed)

`settled.json` lists each entry's URL, status, a few headers, and the sha256 and size of its body: an entry
whose bytes do not match (a truncated or corrupted file) is never replayed, its request goes to the site
again, and the month is rewritten once it settles again. Deleting a month's folder (or its `settled.json`)
forces that month to be crawled again.

Origins: the demo site listens on random ports, so URLs and bodies are stored with the served origins
written as the published ones (`origins`, served -> published; identity for the live site) and turned back
on replay. Bodies with a Content-Encoding are stored as received (the live site: nothing to rewrite).

Scrapy glue: `ArchiveReplayMiddleware` (priority 50, before RobotsTxtMiddleware: a replay asks the site for
nothing, robots.txt included) and `ArchiveRecordMiddleware` (950, beside the downloader: it sees every raw
answer, a redirect's 302 included, which RedirectMiddleware at 600 would have consumed). Scrapy's own
HttpCacheMiddleware is one middleware at one priority and cannot do both; its policy API also has no notion
of a month that settles only after its last listing.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import os
import re
import weakref
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scrapy import Request
from scrapy.crawler import Crawler
from scrapy.http import Response
from scrapy.responsetypes import responsetypes
from w3lib.url import canonicalize_url

from common import atomic_write

logger = logging.getLogger(__name__)

MONTH_META = "christies_month"  # "YYYY-MM": the calendar month a request belongs to
ARCHIVED_FLAG = "archived"  # Response.flags of a replayed answer
MANIFEST = "settled.json"
RECORDED = "recorded.jsonl"
FORMAT = 1
KEPT_HEADERS = ("Content-Type", "Content-Encoding", "Location")
MONTH_FOLDER = re.compile(r"\d{4}-\d{2}")


@dataclass(frozen=True)
class Stored:
    url: str
    status: int
    headers: dict[str, str]
    body: bytes


class OriginMap:
    """Served origins <-> published origins, on URLs and bodies (an origin followed by a digit is another)."""

    def __init__(self, served_to_published: Mapping[str, str]):
        pairs = [(served.rstrip("/"), public.rstrip("/")) for served, public in served_to_published.items()
                 if served.rstrip("/") != public.rstrip("/")]
        self._publish = [(re.compile(re.escape(a.encode()) + rb"(?![0-9])"), b.encode()) for a, b in pairs]
        self._serve = [(re.compile(re.escape(b.encode()) + rb"(?![0-9])"), a.encode()) for a, b in pairs]

    @staticmethod
    def _apply(rules: list, data: bytes) -> bytes:
        for pattern, replacement in rules:
            data = pattern.sub(replacement, data)
        return data

    def publish(self, data: bytes) -> bytes:
        return self._apply(self._publish, data)

    def serve(self, data: bytes) -> bytes:
        return self._apply(self._serve, data)

    def publish_text(self, text: str) -> str:
        return self.publish(text.encode()).decode()

    def serve_text(self, text: str) -> str:
        return self.serve(text.encode()).decode()


def entry_key(method: str, published_url: str, body: bytes = b"") -> str:
    """The archive key of a request: stable across Scrapy versions (not Scrapy's fingerprinter)."""
    digest = hashlib.sha256(f"{method.upper()} {canonicalize_url(published_url)}\n".encode() + body)
    return digest.hexdigest()[:40]


def read_manifest(folder: Path) -> dict[str, dict[str, Any]] | None:
    """The entries of a settled month, or None when the month is not settled (no or unreadable manifest)."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        entries = manifest["entries"]
        if manifest.get("format") != FORMAT or not isinstance(entries, dict):
            return None
        return entries
    except (OSError, ValueError, KeyError, TypeError):
        return None


def settled_months(root: Path) -> dict[str, int]:
    """Settled month -> number of archived answers, for every month folder under `root`."""
    if not root.is_dir():
        return {}
    found = {}
    for folder in sorted(root.iterdir()):
        if MONTH_FOLDER.fullmatch(folder.name) and (entries := read_manifest(folder)) is not None:
            found[folder.name] = len(entries)
    return found


class ResponseArchive:
    """Month folders of archived answers under `root` (see the module docstring)."""

    def __init__(self, root: Path, origins: Mapping[str, str] | None = None):
        self.root = Path(root)
        self.origins = OriginMap(origins or {})
        self.settled: dict[str, dict[str, dict[str, Any]]] = {}
        for month in settled_months(self.root):
            self.settled[month] = read_manifest(self.root / month) or {}

    def key(self, method: str, url: str, body: bytes = b"") -> str:
        return entry_key(method, self.origins.publish_text(url), self.origins.publish(body))

    def load(self, month: str, key: str) -> Stored | None:
        """The verified answer of a settled month, or None (not settled, not archived, or failing its
        checksum: logged as corrupt)."""
        entry = self.settled.get(month, {}).get(key)
        if entry is None:
            return None
        path = self.root / month / f"{key}.gz"
        try:
            body = gzip.decompress(path.read_bytes())
        except (OSError, EOFError, zlib.error) as error:
            logger.warning("archive entry %s unreadable (%s): asking the site again", path, error)
            return None
        if len(body) != entry["size"] or hashlib.sha256(body).hexdigest() != entry["sha256"]:
            logger.warning("archive entry %s fails its checksum: asking the site again", path)
            return None
        headers = {name: self.origins.serve_text(value) for name, value in entry["headers"].items()}
        if "Content-Encoding" not in headers:
            body = self.origins.serve(body)
        return Stored(self.origins.serve_text(entry["url"]), int(entry["status"]), headers, body)

    def record(self, month: str, key: str, url: str, status: int, headers: Mapping[str, str], body: bytes) -> None:
        """Write one answer into its month's folder (listed in the manifest only when the month settles)."""
        kept = {name: self.origins.publish_text(value) for name, value in headers.items() if name in KEPT_HEADERS}
        if "Content-Encoding" not in kept:
            body = self.origins.publish(body)
        folder = self.root / month
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{key}.gz.tmp"
        tmp.write_bytes(gzip.compress(body, compresslevel=6, mtime=0))
        os.replace(tmp, folder / f"{key}.gz")
        entry = {"key": key, "url": self.origins.publish_text(url), "status": status, "headers": kept,
                 "sha256": hashlib.sha256(body).hexdigest(), "size": len(body)}
        with open(folder / RECORDED, "a", encoding="utf-8") as fh:  # survives a stop between record and settle
            fh.write(json.dumps(entry) + "\n")

    def recorded(self, month: str) -> dict[str, dict[str, Any]]:
        """Answers recorded for `month` since it last settled (a half-written last line is skipped)."""
        entries: dict[str, dict[str, Any]] = {}
        try:
            lines = (self.root / month / RECORDED).read_text(encoding="utf-8").splitlines()
        except OSError:
            return entries
        for line in lines:
            try:
                entry = json.loads(line)
                entries[entry.pop("key")] = entry
            except (ValueError, KeyError, AttributeError):
                continue
        return entries

    def settle(self, month: str) -> bool:
        """Mark `month` settled: its manifest lists the answers settled before and those recorded since; files
        it does not list (left by a killed or failed run) are removed. Returns whether anything changed."""
        new = self.recorded(month)
        if month in self.settled and not new:
            return False
        entries = {**self.settled.get(month, {}), **new}
        folder = self.root / month
        folder.mkdir(parents=True, exist_ok=True)
        with atomic_write(folder / MANIFEST) as fh:
            json.dump({"format": FORMAT, "month": month, "entries": dict(sorted(entries.items()))}, fh, indent=1)
            fh.write("\n")
        for path in folder.iterdir():
            if path.name != MANIFEST and path.name.removesuffix(".gz") not in entries:
                path.unlink()
        self.settled[month] = entries
        return True


# ---------------------------------------------------------------- Scrapy glue

_ARCHIVES: weakref.WeakKeyDictionary[Crawler, ResponseArchive | None] = weakref.WeakKeyDictionary()


def archive_of(crawler: Crawler) -> ResponseArchive | None:
    """The crawl's archive (`CHRISTIES_ARCHIVE_DIR`, origins `CHRISTIES_ARCHIVE_ORIGINS`), shared by the
    spider and both middlewares; None when no archive is configured."""
    if crawler not in _ARCHIVES:
        root = crawler.settings.get("CHRISTIES_ARCHIVE_DIR")
        origins = crawler.settings.getdict("CHRISTIES_ARCHIVE_ORIGINS")
        _ARCHIVES[crawler] = ResponseArchive(Path(root), origins) if root else None
    return _ARCHIVES[crawler]


class _ArchiveMiddleware:
    def __init__(self, crawler: Crawler, archive: ResponseArchive):
        self.crawler, self.archive = crawler, archive

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> _ArchiveMiddleware:
        from scrapy.exceptions import NotConfigured  # noqa: PLC0415

        archive = archive_of(crawler)
        if archive is None:
            raise NotConfigured("CHRISTIES_ARCHIVE_DIR is not set")
        return cls(crawler, archive)

    def _key(self, request: Request) -> str:
        return self.archive.key(request.method, request.url, request.body)


class ArchiveReplayMiddleware(_ArchiveMiddleware):
    """Answers a request of a settled month from the archive. A retry (the archived answer did not parse)
    always goes to the site."""

    def process_request(self, request: Request) -> Response | None:
        month = request.meta.get(MONTH_META)
        if month not in self.archive.settled or request.meta.get("retry_times"):
            return None
        stored = self.archive.load(month, self._key(request))
        stats = self.crawler.stats
        if stored is None:
            stats.inc_value("archive/missed")
            return None
        stats.inc_value("archive/replayed")
        response_class = responsetypes.from_args(headers=stored.headers, url=stored.url, body=stored.body)
        return response_class(url=stored.url, status=stored.status, headers=stored.headers, body=stored.body,
                              request=request, flags=[ARCHIVED_FLAG])


class ArchiveRecordMiddleware(_ArchiveMiddleware):
    """Writes every 2xx/3xx answer the site gave for a month's request into the archive."""

    def process_response(self, request: Request, response: Response) -> Response:
        month = request.meta.get(MONTH_META)
        if month and ARCHIVED_FLAG not in response.flags and 200 <= response.status < 400:
            headers = {name: response.headers.get(name).decode("latin-1") for name in KEPT_HEADERS
                       if response.headers.get(name) is not None}
            self.archive.record(month, self._key(request), response.url, response.status, headers, response.body)
            self.crawler.stats.inc_value("archive/recorded")
        return response
