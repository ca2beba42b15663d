"""Spider `christies_images`: download exactly the images of a list of lots.

    scrapy crawl christies_images -a list=data/interim/sample.csv -O data/raw/images.jsonl

The list is CSV (columns `lot_key`, `image_url`; others ignored) or JSON Lines with those keys. Each lot becomes
one `LotImageItem`; `LotFilesPipeline` fetches the rendition (`CHRISTIES_IMAGE_WIDTH`, host rebased onto
`CHRISTIES_IMAGE_BASE_URL` when set), skips files already stored, and sets `status` to downloaded, uptodate
or failed (with `reason`). One output line per requested lot.
"""

from __future__ import annotations

import asyncio
import csv
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

from scrapy import Spider, signals
from scrapy.settings import BaseSettings

from scraper.items import IMAGE_ITEM_FIELDS, LotImageItem
from scraper.parsing import LOT_KEY_UNSAFE
from scraper.spiders import apply_contact_user_agent

REQUIRED_COLUMNS = ("lot_key", "image_url")


def _csv_rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    with open(path, encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh)
        missing = [name for name in REQUIRED_COLUMNS if name not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path}: missing column(s) {', '.join(missing)}")
        for line_number, row in enumerate(reader, start=2):
            yield line_number, row


def _jsonl_rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    with open(path, encoding="utf-8") as fh:
        for line_number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}, line {line_number}: not JSON ({exc.msg})") from exc
            if not isinstance(row, dict):
                raise ValueError(f"{path}, line {line_number}: expected an object")
            yield line_number, row


def read_image_list(path: str | Path) -> list[LotImageItem]:
    """The lots to fetch, in file order, first occurrence of each lot_key kept.

    An empty `image_url` is kept (its line will say `failed: no image_url`).

    Raises:
        ValueError: a missing column, or a row whose lot_key is empty or unsafe as a file name
            (the message names the file, line and field).
    """
    path = Path(path)
    rows = _csv_rows(path) if path.suffix.lower() == ".csv" else _jsonl_rows(path)
    items: dict[str, LotImageItem] = {}
    for line_number, row in rows:
        lot_key = str(row.get("lot_key") or "").strip()
        if not lot_key or LOT_KEY_UNSAFE.search(lot_key):
            raise ValueError(f"{path}, line {line_number}, field lot_key: {row.get('lot_key')!r} is empty or "
                             "has characters outside [A-Za-z0-9._-]")
        image_url = str(row.get("image_url") or "").strip() or None
        items.setdefault(lot_key, LotImageItem(lot_key=lot_key, image_url=image_url))
    return list(items.values())


class ChristiesImagesSpider(Spider):
    name = "christies_images"
    custom_settings = {"ITEM_PIPELINES": {"scraper.pipelines.LotFilesPipeline": 300}}

    def __init__(self, list: str | None = None, **kwargs: Any):  # noqa: A002 (the -a name in the docs)
        super().__init__(**kwargs)
        if not list:
            raise ValueError("christies_images spider: pass -a list=<csv or jsonl with lot_key, image_url>")
        self.lots = read_image_list(list)

    @classmethod
    def update_settings(cls, settings: BaseSettings) -> None:
        super().update_settings(settings)
        settings.set("FEED_EXPORT_FIELDS", IMAGE_ITEM_FIELDS, priority="spider")
        apply_contact_user_agent(settings)

    async def start(self) -> AsyncIterator[LotImageItem]:
        """Yield the lots, at most CONCURRENT_ITEMS of them in the pipeline at a time.

        Scrapy reads items from start() without back-pressure (only requests are held back): 12,500 items
        at once put 12,500 downloads in the queue behind 8 connections, and the reactor, busy with all of
        them, answers late enough that requests time out and are re-sent (3.5 requests per image measured).
        """
        self.logger.info("%d lots to fetch images for", len(self.lots))
        self.crawler.stats.set_value("images/requested", len(self.lots))
        in_pipeline = asyncio.Semaphore(self.crawler.settings.getint("CONCURRENT_ITEMS"))
        for signal in (signals.item_scraped, signals.item_dropped, signals.item_error):
            self.crawler.signals.connect(lambda *_, **__: in_pipeline.release(), signal=signal, weak=False)
        for item in self.lots:
            await in_pipeline.acquire()
            yield item
