"""The catalogue: deterministic, with every quirk the spiders and curation must meet, and true ground truth."""

from __future__ import annotations

import dataclasses
import re
import unicodedata
from collections import Counter

import pytest

from scraper.demo.catalogue import (
    ROUNDEL_PATH,
    ART_CATEGORIES,
    DECOY_CATEGORIES,
    IMAGE_BOMB,
    IMAGE_CMYK,
    IMAGE_L,
    IMAGE_NONE,
    IMAGE_PLACEHOLDER,
    IMAGE_RGBA_PNG,
    IMAGE_TRUNCATED,
    KINDS_2D,
    NO_IMAGE_PATH,
    QUALIFIER_AFTER,
    QUALIFIERS_OLD_MASTER,
    TRAP_TITLE,
    build_catalogue,
    estimate_text,
    inches_text,
    month_list,
)


def fingerprint(catalogue) -> list:
    """Everything a spider could see or a test could check, as plain values."""
    return [dataclasses.asdict(lot) for lot in catalogue.lots.values()] + [
        (s.event_id, s.sale_number, s.online_sale_id, s.title, s.start, s.end, s.closed, s.lot_ids)
        for s in catalogue.sales]


def test_same_params_give_the_same_catalogue_and_another_seed_another(params, catalogue):
    again = build_catalogue(dict(params["demo"]), params["scrape"]["start"])
    assert fingerprint(again) == fingerprint(catalogue)
    reseeded = build_catalogue({**params["demo"], "seed": params["demo"]["seed"] + 1}, params["scrape"]["start"])
    assert fingerprint(reseeded) != fingerprint(catalogue)


def test_size_and_months_follow_params(params, catalogue):
    demo = params["demo"]
    assert 1000 <= len(catalogue.lots) <= 2000
    assert catalogue.months == month_list(params["scrape"]["start"], demo["months"])
    closed = [s for s in catalogue.sales if s.closed]
    art = [s for s in closed if not s.is_decoy]
    assert len(art) == demo["months"] * demo["sales_per_month"]
    decoys = [s for s in closed if s.is_decoy]
    assert len(decoys) == demo["months"] * demo["decoy_sales_per_month"]
    assert all(len(s.lot_ids) == demo["lots_per_decoy_sale"] for s in decoys)
    assert {s.month for s in catalogue.sales} == set(catalogue.months)
    assert len(set(catalogue.lots)) == sum(len(s.lot_ids) for s in catalogue.sales)


def test_sales_mix_channels_categories_decoys_and_an_upcoming_sale(catalogue):
    closed_art = [s for s in catalogue.sales if s.closed and not s.is_decoy]
    assert {s.is_online for s in closed_art} == {True, False}
    assert {s.categories[0] for s in closed_art} == set(ART_CATEGORIES)
    assert {s.categories[0] for s in catalogue.sales if s.is_decoy} == set(DECOY_CATEGORIES)
    upcoming = [s for s in catalogue.sales if not s.closed]
    assert upcoming and all("CLOSED" not in s.subtitle_txt for s in upcoming)
    assert all(s.subtitle_txt.endswith("| CLOSED") for s in catalogue.sales if s.closed)
    assert all(catalogue.lots[i].price_realised is None for s in upcoming for i in s.lot_ids)
    online = [s for s in catalogue.sales if s.is_online]
    assert all(s.online_sale_id and s.online_sale_id != s.event_id for s in online)
    assert any(len(s.lot_ids) > 2 * 84 for s in closed_art), "one sale must need three lotsearch pages"
    assert all(re.fullmatch(r"\|category_\d+\|location_\d+\|(event_0\|\|event_live|event_115)\|", s.filter_ids)
               for s in catalogue.sales)


def test_makers_cover_every_title_form(catalogue):
    makers = [lot.title_primary_txt for lot in catalogue.lots.values() if not lot.truth.is_decoy]
    assert any(re.search(r"\(\d{4}-\d{4}\)$", m) for m in makers)
    assert any(re.search(r"\(B\. \d{4}\)$", m) for m in makers)
    assert any(re.search(r"\(b\. \d{4}\)$", m) for m in makers), "mixed case on some online sales"
    assert any(re.search(r"\(1[5-7]\d\d-1[5-7]\d\d\)$", m) for m in makers), "old masters"
    assert any(m != m.strip() or "  " in m for m in makers), "extra whitespace"
    letters = set("".join(makers))
    assert {"É", "Ø", "Ñ"} <= letters
    for qualifier in (QUALIFIER_AFTER, *QUALIFIERS_OLD_MASTER):
        assert any(m.startswith(qualifier + " ") for m in makers), qualifier


def test_one_artist_appears_in_upper_case_and_in_mixed_case(catalogue):
    forms: dict[str, set[str]] = {}
    for lot in catalogue.lots.values():
        if lot.truth.artist_key and not lot.truth.qualifier:
            name = re.sub(r"\s*\(.*", "", lot.title_primary_txt.strip())
            forms.setdefault(lot.truth.artist_key, set()).add(name)
    assert any(any(n.isupper() for n in names) and any(not n.isupper() for n in names) for names in forms.values())


def test_ground_truth_agrees_with_the_text(catalogue):
    for lot in catalogue.lots.values():
        truth = lot.truth
        if truth.is_decoy:
            assert truth.artist_key is None and lot.decoy_type
            continue
        artist = catalogue.artist(truth.artist_key)
        plain = unicodedata.normalize("NFC", " ".join(lot.title_primary_txt.split())).casefold()
        assert artist.name.casefold() in plain
        assert plain.startswith(truth.qualifier.casefold())
        assert lot.description_html.split("<")[0].casefold().startswith(truth.qualifier.casefold())
        if truth.is_sketch:
            assert re.match(r"(Study|Preparatory sketch) for '", lot.title) and truth.kind == "drawing"
        if truth.kind == "sculpture":
            assert lot.dimensions.endswith("high")
        if truth.withdrawn:
            assert (lot.estimate_low, lot.estimate_txt, lot.price_realised) == (None, "", None)
        if not truth.sold:
            assert lot.price_realised is None and lot.price_realised_txt == ""
        else:
            assert lot.price_realised and lot.price_realised_txt.endswith(f"{int(lot.price_realised):,}")


def test_fine_art_sales_hold_sculptures_and_sketches(catalogue):
    fine_art_kinds = Counter()
    for sale in catalogue.sales:
        if sale.categories == ("category_7",):
            for lot in catalogue.lots_of(sale):
                fine_art_kinds["sculpture" if lot.truth.kind == "sculpture" else "sketch" if lot.truth.is_sketch
                               else "other"] += 1
    assert fine_art_kinds["sculpture"] > 0 and fine_art_kinds["sketch"] > 0
    assert any("\u2044" in lot.dimensions for lot in catalogue.lots.values()), "U+2044 fraction slash"


def test_repeated_prints_share_the_picture_but_not_the_sale(catalogue):
    repeats = [lot for lot in catalogue.lots.values() if lot.truth.duplicate_of]
    assert repeats
    for lot in repeats:
        original = catalogue.lots[lot.truth.duplicate_of]
        assert lot.truth.kind == original.truth.kind == "print"
        assert (lot.render_seed, lot.image_size, lot.title) == (original.render_seed, original.image_size,
                                                                original.title)
        assert lot.event_id != original.event_id and lot.image_path != original.image_path


def test_image_kinds_and_missing_images(catalogue):
    kinds = Counter(lot.truth.image_kind for lot in catalogue.lots.values())
    assert kinds[IMAGE_TRUNCATED] == 1 and kinds[IMAGE_BOMB] == 1
    assert min(kinds[IMAGE_CMYK], kinds[IMAGE_L], kinds[IMAGE_RGBA_PNG], kinds[IMAGE_PLACEHOLDER],
               kinds[IMAGE_NONE]) >= 1
    for lot in catalogue.lots.values():
        if lot.truth.image_kind == IMAGE_PLACEHOLDER:
            sale = catalogue.sale_of(lot)  # onlineonly shows its roundel, www its no-image picture (site §12)
            assert lot.image_path == (ROUNDEL_PATH if sale.is_online else NO_IMAGE_PATH) and not lot.truth.has_image
        elif lot.truth.image_kind == IMAGE_NONE:
            assert lot.image_path is None and not lot.truth.has_image
        else:
            assert re.fullmatch(r"/img/LotImages/\d{4}/[A-Z]{3}/\d{4}_[A-Z]{3}_\d{5}_\d{4}_000\([a-z0-9_]+\)\.jpg",
                                lot.image_path), lot.image_path
            assert catalogue.lot_by_image_path(lot.image_path.lower()) is lot
            low, high = catalogue.config.image_min_side, catalogue.config.image_max_side
            assert low <= max(lot.image_size) <= high


def test_top_artists_are_clearly_prolific(params, catalogue):
    n_top, needed = params["select"]["n_artists"], params["select"]["per_artist"]
    eligible = Counter(
        lot.truth.artist_key for lot in catalogue.lots.values()
        if lot.truth.artist_key and not lot.truth.qualifier and lot.truth.kind in KINDS_2D and lot.truth.has_image)
    ranked = [count for _, count in eligible.most_common()]
    assert len(ranked) == params["demo"]["n_artists"]
    assert ranked[n_top - 1] >= needed
    assert ranked[n_top] < needed, "the artists after the top group stay below the per-artist sample"
    clean = Counter(lot.truth.artist_key for lot in catalogue.lots.values() if lot.truth.clean)
    assert sorted(clean.values(), reverse=True)[n_top - 1] >= needed


def test_expected_lots_are_closed_in_range_and_in_category(catalogue):
    months = catalogue.months
    everything = catalogue.expected_lots(months[0], months[-1], ART_CATEGORIES)
    assert everything and not any(lot.truth.is_decoy for lot in everything)
    assert all(catalogue.sale_of(lot).closed for lot in everything)
    upcoming_ids = {i for s in catalogue.sales if not s.closed for i in s.lot_ids}
    assert not upcoming_ids & {lot.object_id for lot in everything}
    first = catalogue.expected_lots(months[0], months[0], ["category_11"])
    assert first and all(catalogue.sale_of(lot).month == months[0] for lot in first)
    assert all(catalogue.sale_of(lot).categories == ("category_11",) for lot in first)
    assert catalogue.expected_lots("1990-01", "1990-12", ART_CATEGORIES) == []


def test_the_trap_title_is_placed_once(catalogue):
    assert sum(TRAP_TITLE in lot.description_html for lot in catalogue.lots.values()) == 1


@pytest.mark.parametrize("change, message", [
    ({"months": 0}, "demo.months"),
    ({"works_min": "20"}, "demo.works_min"),
    ({"works_min": 100}, "works_min"),
    ({"colour": 1}, "unknown keys"),
])
def test_bad_params_are_named(params, change, message):
    with pytest.raises(ValueError, match=message):
        build_catalogue({**params["demo"], **change}, "2019-01")


def test_bad_start_month_is_named(params):
    with pytest.raises(ValueError, match="2019-13"):
        build_catalogue(params["demo"], "2019-13")


def test_text_formatters():
    assert inches_text(31.1) == "12 1/4" and inches_text(45.1, "\u2044") == "17 3\u20444"
    assert estimate_text("USD", 60000, 80000, "once") == "USD 60,000 - 80,000"
    assert estimate_text("GBP", 1500, 2500, "twice") == "GBP 1,500 - GBP 2,500"
    assert estimate_text("CHF", 11000, 17000, "twice_endash") == "CHF 11,000 \u2013 CHF 17,000"
    assert month_list("2019-11", 3) == ["2019-11", "2019-12", "2020-01"]
