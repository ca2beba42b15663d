"""The records the spiders yield: one `LotItem` per lot (`christies`), one `LotImageItem` per requested image
(`christies_images`). Field meanings: docs/CONTRACTS.md and docs/SCRAPER.md."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from scraper.parsing import LOT_FIELDS


@dataclass
class LotItem:
    lot_key: str
    object_id: str
    sale_id: str
    sale_number: str
    sale_title: str
    sale_location: str
    sale_date: str | None
    sale_start_date: str | None
    sale_kind: str
    category_ids: list[str]
    lot_number: str
    maker: str
    title: str
    description: str
    estimate_low: Any  # float | None once valid; kept raw when the site sent something untypable
    estimate_high: Any
    currency: str | None
    price_realised: Any
    sold: bool
    withdrawn: bool
    lot_url: str
    image_url: str | None
    # Filled only when the spider downloads the image itself (CHRISTIES_IMAGES=all).
    image_path: str | None = None
    image_sha1: str | None = None
    # Filled only with CHRISTIES_LOT_DETAILS: lines of the lot page's Details accordion.
    medium: str | None = None
    dimensions: str | None = None
    # Where the lot was read (listing page URL); used in rejects, never exported.
    source_url: str | None = field(default=None, repr=False)

    @classmethod
    def from_record(cls, record: dict[str, Any], source_url: str | None = None) -> LotItem:
        """Build from a `parsing.lot_record` dict (exactly the contract fields)."""
        return cls(**{name: record[name] for name in LOT_FIELDS}, source_url=source_url)


IMAGE_FIELDS = ("image_path", "image_sha1")
DETAIL_FIELDS = ("medium", "dimensions")


def lot_export_fields(with_images: bool, with_details: bool) -> list[str]:
    """The exported fields of a `LotItem` in contract order; optional groups only when they are filled."""
    return [*LOT_FIELDS, *(IMAGE_FIELDS if with_images else ()), *(DETAIL_FIELDS if with_details else ())]


@dataclass
class LotImageItem:
    """One line of `images.jsonl`: the outcome of downloading one requested lot image."""

    lot_key: str
    image_url: str | None
    image_path: str | None = None  # relative to FILES_STORE
    image_sha1: str | None = None
    status: str | None = None  # downloaded | uptodate | failed
    reason: str | None = None


IMAGE_ITEM_FIELDS = [f.name for f in fields(LotImageItem)]
