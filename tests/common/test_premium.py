"""The shipped buyer's premium schedule: the worked example of the reference, every tier boundary, a change of
schedule, exact round trips, rows the table does not cover, and malformed files named by line and field."""

from __future__ import annotations

import datetime as dt
import random

import pytest

from common.premium import PremiumSchedule, PremiumScheduleError, Tiers, schedule_day


@pytest.fixture(scope="module")
def schedule() -> PremiumSchedule:
    return PremiumSchedule.read()


def test_the_references_worked_example_new_york_2019(schedule):
    tiers = schedule.row_for("USD", "New York", dt.date(2019, 5, 13)).tiers
    assert tiers.realised(1_000_000) == pytest.approx(1_215_000)      # 25% of 300k + 20% of 700k
    assert tiers.hammer(1_215_000) == pytest.approx(1_000_000)


@pytest.mark.parametrize(("day", "bounds", "rates"), [
    (dt.date(2019, 1, 31), (250_000, 4_000_000), (0.25, 0.20, 0.125)),   # the day before the change
    (dt.date(2019, 2, 1), (300_000, 4_000_000), (0.25, 0.20, 0.135)),    # the change day
    (dt.date(2020, 9, 21), (600_000, 6_000_000), (0.25, 0.20, 0.145)),
    (dt.date(2006, 6, 1), (200_000,), (0.20, 0.12)),                     # a two-tier schedule
])
def test_the_row_in_force_changes_on_its_effective_day(schedule, day, bounds, rates):
    tiers = schedule.row_for("USD", "New York", day).tiers
    assert tiers == Tiers(tuple(float(b) for b in bounds), rates)


def test_every_tier_boundary_inverts_exactly(schedule):
    for rows in schedule.by_key.values():
        for row in rows:
            if row.tiers is None:
                continue
            lower = 0.0
            for bound, rate in zip(row.tiers.bounds, row.tiers.rates):
                top = row.tiers.realised(bound)
                assert top == pytest.approx(bound + row.tiers.premium(lower) + rate * (bound - lower))
                assert row.tiers.hammer(top) == pytest.approx(bound)                       # on the corner
                assert row.tiers.hammer(top - 1) == pytest.approx(bound - 1 / (1 + rate))   # just below it
                assert row.tiers.hammer(top + 1) < bound + 1                                 # just above it
                lower = bound


def test_round_trips_on_random_prices_for_every_row(schedule):
    rng = random.Random(0)
    for rows in schedule.by_key.values():
        for row in (r for r in rows if r.tiers):
            for _ in range(300):
                hammer = 10 ** rng.uniform(1, 9)
                assert row.tiers.hammer(row.tiers.realised(hammer)) == pytest.approx(hammer, rel=1e-12)
                assert row.tiers.realised(row.tiers.hammer(hammer)) == pytest.approx(hammer, rel=1e-12)


def test_a_timed_online_sale_keeps_the_schedule_in_force_when_it_opened(schedule):
    day = schedule_day("online", "2019-02-05", "2019-01-28")
    assert day == dt.date(2019, 1, 28)
    assert schedule.row_for("GBP", "London", day).effective == dt.date(2017, 9, 11)
    assert schedule_day("live", "2019-02-05", "2019-02-04") == dt.date(2019, 2, 5)


def test_vat_inclusive_salerooms_have_rows_of_their_own_and_online_sales_follow_the_currency(schedule):
    amsterdam = schedule.row_for("EUR", "Amsterdam", dt.date(2024, 3, 1))
    assert amsterdam.vat_inclusive and amsterdam.tiers.rates[0] == pytest.approx(0.3146)
    assert not schedule.row_for("EUR", "Paris", dt.date(2024, 3, 1)).vat_inclusive
    assert schedule.row_for("EUR", "", dt.date(2024, 3, 1)).saleroom == ""


@pytest.mark.parametrize(("currency", "saleroom", "day", "message"), [
    ("CNY", "Shanghai", dt.date(2019, 3, 1), "has no schedule for it"),
    ("HKD", "Hong Kong", dt.date(2010, 3, 1), "before the first row"),
    ("EUR", "Paris", dt.date(2012, 3, 1), "not known from 2007-02-05"),
    ("EUR", "Amsterdam", dt.date(2019, 3, 1), "before the first row"),     # never the non-VAT rows
    ("GBP", "London", dt.date(2026, 1, 5), "not known from 2025-09-01"),
])
def test_a_sale_outside_the_table_names_currency_saleroom_and_day(schedule, currency, saleroom, day, message):
    with pytest.raises(PremiumScheduleError, match=message) as error:
        schedule.row_for(currency, saleroom, day)
    assert currency in str(error.value) and saleroom in str(error.value) and str(day) in str(error.value)


def test_every_row_has_a_source_and_a_confidence(schedule):
    for rows in schedule.by_key.values():
        for row in rows:
            assert row.source and row.confidence in ("V", "P", "?")
            assert row.tiers is not None or row.note            # an unknown schedule says why


@pytest.mark.parametrize(("field", "value", "message"), [
    ("effective", "2019-13-01", "field 'effective'"),
    ("rate_2", "0.2x", "field 'rate_2': not a number"),
    ("up_to_1", "5000000", "field 'up_to_2': thresholds must be positive and increasing"),
    ("rate_1", "1.25", "field 'rate_1': a rate is a fraction"),
    ("confidence", "high", "field 'confidence'"),
])
def test_a_malformed_schedule_names_the_line_and_the_field(tmp_path, field, value, message):
    header = "effective,currency,saleroom,vat_inclusive,rate_1,up_to_1,rate_2,up_to_2,rate_3,confidence,source,note"
    row = dict(zip(header.split(","), "2019-02-01,USD,,no,0.25,300000,0.20,4000000,0.135,V,page,".split(",")))
    row[field] = value
    path = tmp_path / "premium.csv"
    path.write_text(f"# a comment\n{header}\n" + ",".join(row.values()) + "\n", encoding="utf-8")
    with pytest.raises(PremiumScheduleError, match=f"line 3, {message}"):
        PremiumSchedule.read(path)
