"""Item pipelines: validation with a rejects file, de-duplication by lot_key, and image download.

`ValidateLotPipeline` (100) → `DedupeLotPipeline` (200) → `LotFilesPipeline` (300) for the `christies` spider;
`christies_images` runs only `LotFilesPipeline`.
"""

from __future__ import annotations

import hashlib
import io
import logging
import re
import warnings
from dataclasses import asdict
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

from PIL import Image
from scrapy import Request
from scrapy.crawler import Crawler
from scrapy.exceptions import DropItem, IgnoreRequest
from scrapy.http import Response
from scrapy.pipelines.files import FilesPipeline, FSFilesStore
from scrapy.pipelines.media import FileException
from twisted.python.failure import Failure

from common import atomic_write, file_sha1, safe_join
from scraper.items import LotImageItem, LotItem
from scraper.jobdir import resumes_job
from scraper.middlewares import KIND_META, failure_log_of, failure_reason
from scraper.outputs import JsonLinesLog, side_file
from scraper.parsing import rebase_url, rendition_url

logger = logging.getLogger(__name__)

LOT_KEY_PATTERN = re.compile(r"^[A-Za-z0-9._-]+$")
ISO_DATE_PATTERN = re.compile(r"^\d{4}-\d{2}-\d{2}$")
CURRENCY_PATTERN = re.compile(r"^[A-Z]{3}$")
REQUIRED_TEXT = ("lot_key", "object_id", "sale_id", "lot_number", "lot_url")
OPTIONAL_TEXT = ("sale_number", "sale_title", "sale_location", "maker", "title", "description")
AMOUNTS = ("estimate_low", "estimate_high", "price_realised")
IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".gif", ".webp", ".tif", ".tiff"}
DEFAULT_IMAGE_EXTENSION = ".jpg"
MAX_NAME_CHARS = 100  # file-name stem cap; longer scraped ids are shortened with a hash suffix
UNSAFE_NAME_CHARS = re.compile(r"[^A-Za-z0-9._-]")
DECODABLE_FORMATS = ("JPEG", "PNG", "GIF", "WEBP", "TIFF")  # Pillow format names of IMAGE_EXTENSIONS


def _is_http_url(value: Any) -> bool:
    return isinstance(value, str) and urlsplit(value).scheme in ("http", "https") and bool(urlsplit(value).netloc)


def _text_reasons(record: dict[str, Any]) -> list[str]:
    reasons = []
    for name in REQUIRED_TEXT:
        value = record.get(name)
        if not isinstance(value, str):
            reasons.append(f"type:{name}")
        elif not value.strip():
            reasons.append(f"missing:{name}")
    reasons += [f"type:{name}" for name in OPTIONAL_TEXT if not isinstance(record.get(name), str)]
    if isinstance(record.get("lot_key"), str) and record["lot_key"] and not LOT_KEY_PATTERN.match(record["lot_key"]):
        reasons.append("bad:lot_key")
    return reasons


def _money_reasons(record: dict[str, Any]) -> list[str]:
    reasons = []
    for name in AMOUNTS:
        value = record.get(name)
        if value is not None and (not isinstance(value, float) or value != value):  # NaN fails value != value
            reasons.append(f"type:{name}")
        elif isinstance(value, float) and value < 0:
            reasons.append(f"bad:{name}")
    low, high = record.get("estimate_low"), record.get("estimate_high")
    if isinstance(low, float) and isinstance(high, float) and low > high:
        reasons.append("bad:estimate_range")
    currency = record.get("currency")
    if currency is not None and not (isinstance(currency, str) and CURRENCY_PATTERN.match(currency)):
        reasons.append("bad:currency")
    return reasons


def _status_reasons(record: dict[str, Any]) -> list[str]:
    reasons = [f"type:{name}" for name in ("sold", "withdrawn") if not isinstance(record.get(name), bool)]
    if record.get("sold") is True and record.get("price_realised") is None:
        reasons.append("bad:sold_without_price")
    if record.get("sold") is True and record.get("withdrawn") is True:
        reasons.append("bad:sold_and_withdrawn")
    return reasons


def _sale_reasons(record: dict[str, Any]) -> list[str]:
    reasons = []
    if record.get("sale_kind") not in ("live", "online"):
        reasons.append("bad:sale_kind")
    days = {field: record.get(field) for field in ("sale_start_date", "sale_date")}
    for field, day in days.items():
        if day is None:
            reasons.append(f"missing:{field}")
        elif not (isinstance(day, str) and ISO_DATE_PATTERN.match(day)):
            reasons.append(f"bad:{field}")
    if all(isinstance(day, str) and ISO_DATE_PATTERN.match(day) for day in days.values()) \
            and days["sale_start_date"] > days["sale_date"]:
        reasons.append("bad:sale_start_after_end")
    categories = record.get("category_ids")
    # empty only for a sale listed by the JSON-LD calendar route, which names no category
    if not (isinstance(categories, list) and all(isinstance(c, str) and c for c in categories)):
        reasons.append("bad:category_ids")
    return reasons


def validation_reasons(record: dict[str, Any]) -> list[str]:
    """Why a lot record breaks docs/CONTRACTS.md; empty when it is valid.

    Reasons are short codes, `type:<field>` (wrong type), `missing:<field>` (empty required value) or
    `bad:<what>` (right type, impossible value), so they can be counted in stats.
    """
    reasons = _text_reasons(record) + _money_reasons(record) + _status_reasons(record) + _sale_reasons(record)
    if isinstance(record.get("lot_url"), str) and record["lot_url"] and not _is_http_url(record["lot_url"]):
        reasons.append("bad:lot_url")
    if record.get("image_url") is not None and not _is_http_url(record["image_url"]):
        reasons.append("bad:image_url")
    return reasons


def lot_record_of(item: LotItem) -> dict[str, Any]:
    """The exported part of a LotItem (everything but `source_url`)."""
    record = asdict(item)
    record.pop("source_url", None)
    return record


class ValidateLotPipeline:
    """Rejects lots that break the contract: each goes to the rejects file with its reasons and is counted
    (`rejects/count`, `rejects/<reason>`), never silently dropped.

    File: `CHRISTIES_REJECTS_FILE`, else `<feed dir>/rejects.jsonl`; lines `{"reasons", "item", "url"}`.
    """

    def __init__(self, crawler: Crawler):
        self.crawler = crawler
        settings = crawler.settings
        self.path = side_file(settings, "CHRISTIES_REJECTS_FILE", "rejects.jsonl", suffix_of_feed=False)
        self.resume = resumes_job(settings.get("JOBDIR"))
        self.log: JsonLinesLog | None = None

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> ValidateLotPipeline:
        return cls(crawler)

    def open_spider(self) -> None:
        self.log = JsonLinesLog(self.path, resume=self.resume)

    def close_spider(self) -> None:
        if self.log is not None:
            self.log.close()

    def process_item(self, item: Any) -> Any:
        if not isinstance(item, LotItem):
            return item
        reasons = validation_reasons(lot_record_of(item))
        if not reasons:
            return item
        assert self.log is not None
        self.log.write({"reasons": reasons, "item": lot_record_of(item), "url": item.source_url})
        stats = self.crawler.stats
        stats.inc_value("rejects/count")
        for reason in reasons:
            stats.inc_value(f"rejects/{reason}")
        raise DropItem(f"rejected {item.lot_key!r} from {item.source_url}: {', '.join(reasons)}", log_level="INFO")


class DedupeLotPipeline:
    """Drops a lot already seen in this run (`?page=N` sale pages are cumulative; pages may overlap).
    Counted in `dedupe/duplicates`. Across a JOBDIR resume, duplicates are removed when the feed is read."""

    def __init__(self, crawler: Crawler):
        self.crawler = crawler
        self.seen: set[str] = set()

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> DedupeLotPipeline:
        return cls(crawler)

    def process_item(self, item: Any) -> Any:
        if not isinstance(item, LotItem):
            return item
        if item.lot_key in self.seen:
            self.crawler.stats.inc_value("dedupe/duplicates")
            raise DropItem(f"duplicate lot_key {item.lot_key!r}", log_level="DEBUG")
        self.seen.add(item.lot_key)
        return item


# ---------------------------------------------------------------- images


def safe_name(text: str, max_chars: int = MAX_NAME_CHARS) -> str:
    """`text` as one path component: characters outside `[A-Za-z0-9._-]` become `_`, no leading dots (so never
    `.` or `..`), and long names are cut with a hash of the full text appended to stay unique."""
    name = UNSAFE_NAME_CHARS.sub("_", text).lstrip(".") or "_"
    if len(name) > max_chars:
        digest = hashlib.sha1(text.encode("utf-8")).hexdigest()[:16]  # noqa: S324 (a name, not security)
        name = f"{name[: max_chars - 17]}-{digest}"
    return name


def image_extension(image_url: str | None) -> str:
    suffix = PurePosixPath(urlsplit(image_url or "").path).suffix.lower()
    return suffix if suffix in IMAGE_EXTENSIONS else DEFAULT_IMAGE_EXTENSION


def image_relpath(lot_key: str, image_url: str | None) -> str:
    """`<sale shard>/<lot_key>.<ext>` relative to FILES_STORE: the shard is the `www-<sale_id>` /
    `oo-<sale_id>` prefix of the lot key, so one sale's images share a folder."""
    name = safe_name(lot_key)
    parts = name.split("-")
    shard = safe_name("-".join(parts[:2])) if len(parts) >= 3 else "other"
    return f"{shard}/{name}{image_extension(image_url)}"


def image_bytes_problem(body: bytes) -> str | None:
    """Why `body` is not a usable image, or None when it is one.

    Opened with Pillow restricted to DECODABLE_FORMATS and fully decoded (`load()`: a truncated or zeroed JPEG
    passes `open`, which reads only the header). A decompression bomb (DecompressionBombError, or the warning
    between 1x and 2x `Image.MAX_IMAGE_PIXELS`) is a real but huge image: not decoded here, and None is
    returned so it is stored untouched; curation skips it later with its own reason.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(body), formats=DECODABLE_FORMATS) as picture:
                picture.load()
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            return None
        except Exception as exc:  # noqa: BLE001 (decoders of hostile bytes raise OSError, SyntaxError, ValueError, ...)
            return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return None


class LotFilesPipeline(FilesPipeline):
    """Downloads a lot's image rendition (`?mode=max&w=<CHRISTIES_IMAGE_WIDTH>`) and stores the bytes untouched
    under `<FILES_STORE>/<sale shard>/<lot_key>.<ext>`, filling `image_path` and `image_sha1`.

    The path comes from the lot, not the URL, so a new port, host or width does not re-download: a file
    already present (younger than FILES_EXPIRES days) is `uptodate`. Files are written to a temporary name and
    renamed, so a killed crawl never leaves a truncated image that a rerun would take as up to date.
    For `LotItem`s it runs only with `CHRISTIES_IMAGES=all`; every `LotImageItem` is processed.

    A 200 answer whose bytes do not decode (`image_bytes_problem`) is never stored: it is requested again up to
    `CHRISTIES_IMAGE_CORRUPT_RETRIES` times (the HTTP cache bypassed), then the lot fails with
    `corrupt image: <why>`, a line in the failures file and `images/corrupt` in stats.
    """

    LOG_FAILED_RESULTS = False  # failures are logged once, as a warning with the reason, in item_completed

    def __init__(self, store_uri: str, *, crawler: Crawler):
        super().__init__(store_uri, crawler=crawler)
        settings = crawler.settings
        self.width = settings.getint("CHRISTIES_IMAGE_WIDTH")
        self.image_base_url = settings.get("CHRISTIES_IMAGE_BASE_URL") or None
        self.lot_images = settings.get("CHRISTIES_IMAGES", "all")
        self.corrupt_retries = settings.getint("CHRISTIES_IMAGE_CORRUPT_RETRIES")
        if self.corrupt_retries < 0:
            raise ValueError(f"CHRISTIES_IMAGE_CORRUPT_RETRIES={self.corrupt_retries}: expected >= 0")
        if self.lot_images not in ("all", "none"):
            raise ValueError(f"CHRISTIES_IMAGES={self.lot_images!r}: expected 'all' or 'none'")

    def _wants_image(self, item: Any) -> bool:
        if isinstance(item, LotImageItem):
            return bool(item.image_url)
        return isinstance(item, LotItem) and self.lot_images == "all" and bool(item.image_url)

    def get_media_requests(self, item: Any, info: Any) -> list[Request]:
        if not self._wants_image(item):
            return []
        url = rendition_url(rebase_url(item.image_url, self.image_base_url), self.width)
        return [Request(url, meta={KIND_META: "image"})]

    def file_path(self, request: Request, response: Response | None = None, info: Any = None, *,
                  item: Any = None) -> str:
        if item is None:
            raise ValueError(f"LotFilesPipeline needs the item to name {request.url}")
        return image_relpath(item.lot_key, item.image_url)

    def _local_path(self, relpath: str) -> Path | None:
        if isinstance(self.store, FSFilesStore):
            return safe_join(self.store.basedir, relpath)
        return None

    async def media_downloaded(self, response: Response, request: Request, info: Any, *, item: Any = None) -> Any:
        response = await self._decodable_response(response, request)
        return await super().media_downloaded(response, request, info, item=item)

    async def _decodable_response(self, response: Response, request: Request) -> Response:
        """`response`, or a later answer to the same request, whose body is a decodable image.

        Raises:
            FileException: a non-200 answer, or bytes still undecodable after the allowed re-requests.
        """
        stats = self.crawler.stats
        for attempt in range(self.corrupt_retries + 1):
            if attempt:
                stats.inc_value("images/corrupt_retries")
                retry = request.replace(meta={**request.meta, "dont_cache": True})
                response = await self.crawler.engine.download_async(retry)
            if response.status != 200:
                raise FileException(f"HTTP {response.status}")
            problem = image_bytes_problem(response.body)
            if problem is None:
                return response
            logger.info("undecodable image bytes from %s (%s), attempt %d", request.url, problem, attempt + 1)
        reason = f"corrupt image: {problem}"
        stats.inc_value("images/corrupt")
        if (failure_log := failure_log_of(self.crawler)) is not None:
            failure_log.record(request, reason, status=200)
        raise FileException(reason)

    def media_failed(self, failure: Failure, request: Request, info: Any) -> Any:
        if isinstance(failure.value, IgnoreRequest):
            return super().media_failed(failure, request, info)
        if isinstance(failure.value, FileException):
            raise failure.value
        raise FileException(failure_reason(failure.value))

    def file_downloaded(self, response: Response, request: Request, info: Any, *, item: Any = None) -> Any:
        target = self._local_path(self.file_path(request, response=response, info=info, item=item))
        if target is None:
            return super().file_downloaded(response, request, info, item=item)
        with atomic_write(target, "wb") as fh:
            fh.write(response.body)
        return hashlib.md5(response.body).hexdigest()  # noqa: S324 (FilesPipeline's own checksum)

    def item_completed(self, results: list[tuple[bool, Any]], item: Any, info: Any) -> Any:
        stats = self.crawler.stats
        if not results:
            if isinstance(item, LotImageItem):
                item.status, item.reason = "failed", "no image_url"
                stats.inc_value("images/no_url")
            return item
        ok, value = results[0]
        if ok:
            local = self._local_path(value["path"])
            item.image_path = value["path"]
            item.image_sha1 = file_sha1(local) if local is not None else None
            status = "uptodate" if value.get("status") == "uptodate" else "downloaded"
            stats.inc_value(f"images/{status}")
            if isinstance(item, LotImageItem):
                item.status, item.reason = status, None
            return item
        reason = _media_failure_reason(value)
        stats.inc_value("images/failed")
        logger.warning("image of %s not stored: %s", item.lot_key, reason)
        if isinstance(item, LotImageItem):
            item.status, item.reason = "failed", reason
        return item


def _media_failure_reason(failure: Any) -> str:
    value = getattr(failure, "value", failure)
    message = str(value) or type(value).__name__
    return "forbidden by robots.txt" if "robots.txt" in message.lower() else message

