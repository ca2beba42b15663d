"""Procedural pictures: deterministic, one learnable style per artist, the kinds look like what they are."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from scraper.demo import artwork
from scraper.demo.catalogue import IMAGE_BOMB, IMAGE_RGB


def works_of(catalogue, predicate, limit=None):
    lots = [lot for lot in catalogue.lots.values() if lot.truth.has_image and predicate(lot)]
    return lots[:limit] if limit else lots


def test_same_lot_same_bytes_even_after_the_cache_is_cleared(catalogue):
    lot = works_of(catalogue, lambda lot: lot.truth.image_kind == IMAGE_RGB, 1)[0]
    first = artwork.encode_image(lot, width=200)
    artwork.render_spec.cache_clear()
    assert artwork.encode_image(lot, width=200) == first
    assert np.array_equal(np.asarray(artwork.render(lot, 64)), np.asarray(artwork.render(lot, 64)))


def test_render_keeps_the_source_aspect_at_any_width(catalogue):
    for lot in works_of(catalogue, lambda lot: lot.truth.clean, 5):
        source_w, source_h = lot.image_size
        for width in (64, 333):
            image = artwork.render(lot, width)
            assert image.mode == "RGB" and image.width == width
            assert abs(image.height - width * source_h / source_w) <= 1


def colour_histogram(image: Image.Image) -> np.ndarray:
    pixels = np.asarray(image.resize((32, 32)), dtype=np.int32) // 64          # 4 levels per channel
    codes = pixels[..., 0] * 16 + pixels[..., 1] * 4 + pixels[..., 2]
    return np.bincount(codes.ravel(), minlength=64) / codes.size


def test_artists_have_learnable_styles(catalogue, params):
    """Leave-one-out nearest centroid on colour histograms finds the artist far above chance (10%)."""
    artists = catalogue.artists[: params["select"]["n_artists"]]
    features, labels = [], []
    for index, artist in enumerate(artists):
        for lot in works_of(catalogue, lambda lot, key=artist.key: lot.truth.clean and lot.truth.artist_key == key,
                            8):
            features.append(colour_histogram(artwork.render(lot, 48)))
            labels.append(index)
    features, labels = np.array(features), np.array(labels)
    hits = 0
    for i in range(len(labels)):
        others = np.arange(len(labels)) != i
        centroids = np.array([features[others & (labels == a)].mean(axis=0) for a in range(len(artists))])
        hits += int(np.argmin(np.abs(centroids - features[i]).sum(axis=1)) == labels[i])
    assert hits / len(labels) >= 0.6


def test_works_of_one_artist_differ(catalogue):
    artist = catalogue.artists[0]
    pictures = [np.asarray(artwork.render(lot, 64).resize((64, 64)), dtype=np.float32)
                for lot in works_of(catalogue, lambda lot: lot.truth.clean and lot.truth.artist_key == artist.key, 6)]
    gaps = [np.abs(a - b).mean() for i, a in enumerate(pictures) for b in pictures[i + 1:]]
    assert min(gaps) > 5, "each work varies (placement, scale, palette jitter)"


def test_sketches_are_sparse_lines_on_light_paper(catalogue):
    for lot in works_of(catalogue, lambda lot: lot.truth.is_sketch, 5):
        gray = np.asarray(artwork.render(lot, 128).convert("L"), dtype=np.float32)
        assert gray.mean() > 180 and np.mean(gray > 200) > 0.6


def test_photographs_are_grayscale_ish(catalogue):
    for lot in works_of(catalogue, lambda lot: lot.truth.kind == "photograph" and not lot.truth.qualifier, 5):
        pixels = np.asarray(artwork.render(lot, 96), dtype=np.float32)
        assert (pixels.max(axis=2) - pixels.min(axis=2)).mean() < 40


def test_sculptures_are_one_object_on_a_plain_background(catalogue):
    for lot in works_of(catalogue, lambda lot: lot.truth.kind == "sculpture", 5):
        gray = np.asarray(artwork.render(lot, 96).convert("L"), dtype=np.float32)
        corners = [gray[:8, :8].mean(), gray[:8, -8:].mean(), gray[-8:, :8].mean(), gray[-8:, -8:].mean()]
        assert max(corners) - min(corners) < 40
        centre = gray[gray.shape[0] // 3: 2 * gray.shape[0] // 3, 40:56].mean()
        assert abs(centre - np.mean(corners)) > 30


def test_target_size_clamps_to_the_largest_side():
    assert artwork.target_size((400, 200), width=100) == (100, 50)
    assert artwork.target_size((400, 200), height=100) == (200, 100)
    assert artwork.target_size((400, 200)) == (400, 200)
    assert artwork.target_size((400, 200), width=10_000, max_side=1000) == (1000, 500)


def test_bomb_is_small_on_the_wire_and_refused_by_pillow(catalogue):
    lot = works_of(catalogue, lambda lot: lot.truth.image_kind == IMAGE_BOMB)[0]
    data, content_type = artwork.encode_image(lot, width=512)
    assert content_type == "image/png" and len(data) < 100_000
    with pytest.raises(Image.DecompressionBombError):
        Image.open(io.BytesIO(data))
