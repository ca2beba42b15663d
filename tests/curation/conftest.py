"""Shared fixtures for the curation tests: a temporary repository root with a tiny params.yaml, lot records
and tiny generated images."""

from __future__ import annotations

import copy
import io
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

PARAMS = {
    "base": {"seed": 0},
    "clean": {
        "two_d_kinds": ["painting", "drawing", "print", "photograph"],
        "kind_keywords": {
            "sculpture": ["bronze", "marble", "sculpture", "patina", "terracotta", "plaster", "carved", "cast", "wood relief", "ceramic", "porcelain"],
            "photograph": ["gelatin silver", "chromogenic", "c-print", "platinum print", "albumen", "photograph", "inkjet print", "dye transfer", "cibachrome"],
            "print": ["lithograph", "etching", "screenprint", "woodcut", "linocut", "aquatint", "engraving", "drypoint", "silkscreen", "offset", "print"],
            "drawing": ["pencil", "charcoal", "chalk", "pastel", "ink", "gouache", "watercolour", "watercolor", "crayon", "graphite", "sanguine"],
            "painting": ["oil", "acrylic", "tempera", "enamel on", "encaustic", "canvas", "panel"],
        },
        "qualifiers": ["AFTER", "ATTRIBUTED TO", "CIRCLE OF", "SCHOOL OF", "STUDIO OF", "FOLLOWER OF", "WORKSHOP OF", "MANNER OF", "ENTOURAGE OF", "STYLE OF"],
    },
    "select": {"n_artists": 2, "per_artist": 3, "top_up": False},
    "review": {
        "sketch_keywords": ["study", "sketch", "preparatory", "esquisse", "studie", "verso"],
        "sculpture_keywords": ["bronze", "marble", "sculpture", "terracotta", "plaster", "patina"],
        "phash_max_distance": 6,
        "min_side": 40,
        "grayscale_tolerance": 6,
        "thumb_size": 32,
        "drop_flags": ["no_image", "unreadable", "tiny", "likely_sculpture", "likely_sketch", "near_duplicate"],
    },
    "images": {"size": 16, "method": "shortest-side-then-centre-crop", "draft": True, "workers": 1},
    "scrape": {"site": "demo", "base_url": "https://www.christies.com", "categories": ["category_7"],
               "start": "2019-01", "end": "2019-04"},
    "demo": {"seed": 7, "months": 4},
}


@pytest.fixture
def params() -> dict:
    return copy.deepcopy(PARAMS)


def write_params(root: Path, values: dict) -> None:
    (root / "params.yaml").write_text(yaml.safe_dump(values, sort_keys=False), encoding="utf-8")


@pytest.fixture
def repo(tmp_path, monkeypatch, params) -> Path:
    """A temporary repository root (the CWD) holding the tiny params.yaml."""
    monkeypatch.chdir(tmp_path)
    write_params(tmp_path, params)
    return tmp_path


def lot(lot_key: str, maker: str = "JOHN SAMPLE (1901-1977)", medium: str = "oil on canvas", **overrides) -> dict:
    """A lots.jsonl record in the scraper's format, with a Christie's-style description."""
    title = overrides.pop("title", f"Untitled {lot_key}")
    record = {
        "lot_key": lot_key, "object_id": lot_key.split("-")[-1], "sale_id": "27901", "sale_number": "17123",
        "sale_title": "Post-War Art", "sale_location": "New York", "sale_date": "2019-05-16", "sale_kind": "live",
        "category_ids": ["category_7"], "lot_number": "1", "maker": maker, "title": title,
        "description": f"{maker}\n{title}\nsigned 'Sample' (lower right)\n{medium}\n40 x 30 in. (101.6 x 76.2 cm.)\nPainted in 1962.",
        "estimate_low": 1000.0, "estimate_high": 2000.0, "currency": "USD", "price_realised": 2500.0, "sold": True,
        "withdrawn": False, "lot_url": f"https://www.christies.com/en/lot/lot-{lot_key}",
        "image_url": f"https://www.christies.com/img/LotImages/{lot_key}.jpg",
    }
    record.update(overrides)
    return record


def pattern_image(width: int, height: int, seed: int = 0) -> Image.Image:
    """A colourful, structured RGB image (distinct perceptual hashes for distinct seeds)."""
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, 256, size=(8, 8, 3), dtype=np.uint8)
    return Image.fromarray(blocks, "RGB").resize((width, height), Image.Resampling.NEAREST)


def jpeg_bytes(image: Image.Image, **save_args) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=95, **save_args)
    return buffer.getvalue()
