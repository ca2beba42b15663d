"""The price stage: conversion at known ECB rates, the premium taken off, the time split, metrics recomputed from a
predictions table, sale-resampled intervals, bad currencies and missing prices, and the demo's planted signals
(the image's, and the experts' unbiased hammer estimate) recovered from its pictures."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pandas as pd
import pytest
import yaml

from curation.text import parse_dimensions
from model import price
from model.currency import PriceConversionError, UsdConverter
from common.premium import PremiumSchedule, PremiumScheduleError, schedule_day
from model.price import paired_error_difference, price_metrics
from scraper.demo import build_catalogue
from scraper.demo import prices as demo_prices
from scraper.demo.artwork import render
from scraper.demo.catalogue import CURRENCY_RATE
from tests.model.test_pipeline import REPO_ROOT, write_final_data, write_lot_table


@pytest.fixture(scope="module")
def converter() -> UsdConverter:
    return UsdConverter()


def test_conversion_uses_the_ecb_fixing_of_the_sale_day(converter):
    # ECB reference rates (EUR 1 = ...): 2019-01-04 USD 1.1403; 1999-01-04 USD 1.1789, GBP 0.7111.
    assert converter.factor("EUR", dt.date(2019, 1, 4), "x") == pytest.approx(1.1403)
    assert converter.factor("GBP", dt.date(1999, 1, 4), "x") == pytest.approx(1.1789 / 0.7111)
    assert converter.factor("usd ", dt.date(2019, 1, 4), "x") == 1.0


def test_a_weekend_sale_takes_the_rate_between_the_fixings_around_it(converter):
    friday, saturday, monday = dt.date(2019, 1, 4), dt.date(2019, 1, 5), dt.date(2019, 1, 7)
    rates = [converter.factor("GBP", day, "x") for day in (friday, saturday, monday)]
    assert min(rates[0], rates[2]) <= rates[1] <= max(rates[0], rates[2])


@pytest.mark.parametrize("currency, day, message", [
    ("XAU", dt.date(2019, 1, 4), r"lot www-1-2: currency 'XAU' has no ECB reference rate"),
    ("", dt.date(2019, 1, 4), r"lot www-1-2: currency '' has no ECB reference rate"),
    ("HKD", dt.date(1998, 12, 1), r"lot www-1-2: no HKD->USD rate for the sale date 1998-12-01"),
    ("GBP", dt.date(2099, 1, 1), r"lot www-1-2: no GBP->USD rate for the sale date 2099-01-01"),
])
def test_an_unknown_currency_or_a_date_outside_the_table_is_an_error_naming_the_lot(converter, currency, day, message):
    with pytest.raises(PriceConversionError, match=message):
        converter.factor(currency, day, "www-1-2")


def test_deflating_uses_the_cpi_ratio_and_refuses_a_year_outside_the_table():
    deflating = UsdConverter(deflate_to=2024)
    assert deflating.factor("USD", dt.date(2019, 6, 3), "x") == pytest.approx(313.689 / 255.657)
    assert UsdConverter(deflate_to=2000).factor("USD", dt.date(2000, 3, 1), "y") == 1.0
    with pytest.raises(PriceConversionError, match="lot y: sale year 2025 is not in us_cpi_u.csv"):
        deflating.factor("USD", dt.date(2025, 3, 3), "y")
    with pytest.raises(PriceConversionError, match="price.deflate_to 1998: not a year"):
        UsdConverter(deflate_to=1998)


def test_the_time_split_keeps_whole_days_and_puts_the_latest_in_test():
    dates = pd.Series(["2019-01-01"] * 4 + ["2019-01-02"] * 3 + ["2019-01-03"] * 2 + ["2019-01-04"] * 1)
    later = price.time_split(dates, 0.25)
    assert dates[later].tolist() == ["2019-01-03"] * 2 + ["2019-01-04"]   # 3 of 10 >= 25%, whole days
    assert price.time_split(dates, 0.95).sum() == 6                        # one day always stays earlier
    with pytest.raises(ValueError, match="at least two"):
        price.time_split(pd.Series(["2019-01-01"] * 3), 0.25)


def test_eligibility_counts_each_left_out_work_once():
    works = pd.DataFrame({
        "sold": [True, False, False, True, True, True],
        "withdrawn": [False, False, True, False, False, False],
        "price_realised": [100.0, None, None, None, 50.0, 80.0],
        "estimate_low": [80.0, 80.0, None, 80.0, None, 60.0],
        "estimate_high": [120.0, 120.0, None, 120.0, None, 90.0],
    })
    keep, counts = price.eligibility(works)
    assert keep.tolist() == [True, False, False, False, False, True]
    assert counts == {"withdrawn": 1, "unsold": 1, "no_price": 1, "no_estimate": 1}


def test_metrics_are_recomputed_from_a_tiny_predictions_table():
    actual = np.array([1.0, 2.0, 3.0, 4.0])
    predicted = np.array([1.5, 2.0, 2.0, 4.5])
    scores = price_metrics(actual, predicted, actual - 0.6, actual + 0.6)
    assert scores["mae"] == pytest.approx(0.5)
    assert scores["median_ae"] == pytest.approx(0.5)
    assert scores["r2"] == pytest.approx(1 - 1.5 / 5.0)
    assert scores["within_estimate"] == pytest.approx(0.75)
    assert scores["bias"] == pytest.approx(0.0)
    assert scores["spearman"] == pytest.approx(pd.Series(predicted).corr(pd.Series(actual), method="spearman"))


def test_test_metrics_read_only_the_test_rows_of_predictions_csv():
    rows = {"split": ["train", "test", "test", "test", "test"], "sale": ["a", "b", "b", "c", "d"],
            "actual_log_usd": [9.0, 1.0, 2.0, 3.0, 4.0],
            "estimate_low_log_usd": [0.0, 0.5, 1.5, 2.5, 3.5], "estimate_high_log_usd": [0.0, 1.5, 2.5, 3.5, 4.5]}
    predictions = pd.DataFrame(rows)
    for offset, name in enumerate(price.MODELS):
        predictions[f"pred_{name}"] = predictions["actual_log_usd"] + 0.1 * offset
    predictions["gap_mean"] = 0.0
    for name in price.FITTED:
        predictions[f"gap_{name}"] = 0.0
    scores = price.test_metrics(predictions, resamples=200, seed=0, min_sales=2)
    assert scores["models"]["experts"]["mae"] == pytest.approx(0.1)
    assert scores["models"]["image"]["n"] == 4 and scores["n_test_sales"] == 3
    assert scores["hammer_within_estimate"] == 1.0
    assert scores["comparisons"]["hedonic vs mean"]["diff_mean"] == pytest.approx(0.2)
    assert scores["comparisons"]["hedonic vs mean"]["n_sales"] == 3


def test_paired_bootstrap_verdicts_follow_the_interval():
    rng = np.random.default_rng(0)
    errors = rng.uniform(0, 1, 200)
    sales = np.arange(200) // 10                       # 20 sales of 10 works
    assert paired_error_difference(errors * 0.5, errors, sales, 500, 0, 5)["verdict"] == "better"
    assert paired_error_difference(errors + 0.2, errors, sales, 500, 0, 5)["verdict"] == "worse"
    noisy = paired_error_difference(errors + rng.normal(0, 0.01, 200), errors, sales, 500, 0, 5)
    assert noisy["verdict"] == "no detectable difference" and noisy["ci_low"] < 0 < noisy["ci_high"]
    few = paired_error_difference(errors * 0.5, errors, sales // 5, 500, 0, 5)     # 4 sales
    assert few["verdict"] == price.TOO_FEW_SALES and few["ci_low"] is None and few["n_sales"] == 4


def test_the_sale_bootstrap_draws_whole_sales_worked_by_hand():
    """Two sales: {a: diffs 1, 1}, {b: diff 4}. A resample draws two sales with replacement, so its mean is
    one of (1+1+1+1)/4 = 1 (aa), (1+1+4)/3 = 2 (ab or ba) or 4/1 = 4 (bb), with probabilities 1/4, 1/2, 1/4;
    a bootstrap over works would give other values (e.g. 1.5 from three works)."""
    diffs, sales = np.array([1.0, 1.0, 4.0]), np.array(["a", "a", "b"])
    means = [diffs[rows].mean() for rows in price.sale_resamples(sales, 4000, seed=0)]
    values, counts = np.unique(np.round(means, 9), return_counts=True)
    assert values.tolist() == [1.0, 2.0, 4.0]
    assert counts / counts.sum() == pytest.approx([0.25, 0.5, 0.25], abs=0.03)
    assert price.sale_interval(lambda rows: float(diffs[rows].mean()), sales, 4000, 0) == (1.0, 4.0)


def test_realised_prices_lose_exactly_the_premium_in_force(tmp_path):
    works = pd.DataFrame({
        "lot_key": ["ny", "online-before", "ldn-after", "cny"], "sale_kind": ["live", "online", "live", "live"],
        "sale_date": ["2019-05-13", "2019-02-05", "2019-02-05", "2019-03-01"],
        "sale_start_date": ["2019-05-13", "2019-01-28", "2019-02-05", "2019-03-01"],
        "sale_location": ["New York", "London", "London", "Shanghai"], "currency": ["USD", "GBP", "GBP", "CNY"],
        "price_realised": [1_215_000.0, 1_000_000.0, 1_000_000.0, 100_000.0]})
    schedule = PremiumSchedule.read()
    with pytest.raises(PremiumScheduleError, match=r"lot cny \(saleroom 'Shanghai', live sale, schedule day "
                                                    r"2019-03-01\).*price.premium_fallback"):
        price.hammer_prices(works, schedule, "stop")
    hammer, labels = price.hammer_prices(works, schedule, "new_york_converted")
    assert hammer[0] == pytest.approx(1_000_000)
    old = schedule.row_for("GBP", "London", dt.date(2017, 9, 11)).tiers       # opened before the 2019 change
    new = schedule.row_for("GBP", "London", dt.date(2019, 2, 1)).tiers
    assert hammer[1] == pytest.approx(old.hammer(1_000_000)) and hammer[2] == pytest.approx(new.hammer(1_000_000))
    assert hammer[1] != pytest.approx(hammer[2])
    assert labels[1] == "GBP from 2017-09-11 (V)" and labels[3].startswith("fallback: USD from 2019-02-01 (V)")
    assert schedule_day("online", "2019-02-05", "2019-01-28") == dt.date(2019, 1, 28)


def test_a_sale_before_every_schedule_names_the_lot_even_with_the_fallback():
    works = pd.DataFrame({"lot_key": ["old"], "sale_kind": ["live"], "sale_date": ["2004-06-01"],
                          "sale_start_date": ["2004-06-01"], "sale_location": ["Paris"], "currency": ["EUR"],
                          "price_realised": [1000.0]})
    with pytest.raises(PremiumScheduleError, match=r"lot old \(saleroom 'Paris'\).*no fallback: .*USD"):
        price.hammer_prices(works, PremiumSchedule.read(), "new_york_converted")


@pytest.mark.parametrize(("name", "value", "message"), [
    ("premium_fallback", "guess", "price.premium_fallback is 'guess'"),
    ("min_test_sales", 1, "price.min_test_sales is 1"),
])
def test_bad_price_settings_are_named(name, value, message):
    params = yaml.safe_load((REPO_ROOT / "params.yaml").read_text(encoding="utf-8"))
    params["price"][name] = value
    with pytest.raises(ValueError, match=message):
        price.PriceSettings.from_params(params)


# ---------------------------------------------------------------- the demo's planted price model


@pytest.fixture(scope="module")
def demo_sold_works() -> list:
    """(lot, sale) of every clean 2-D work of the embedded default's demo that sold."""
    params = yaml.safe_load((REPO_ROOT / "params.yaml").read_text(encoding="utf-8"))
    catalogue = build_catalogue(params["demo"], str(params["scrape"]["start"]))
    return [(lot, catalogue.sale_of(lot)) for lot in catalogue.lots.values()
            if lot.truth.clean and lot.truth.sold and lot.price_realised]


def usd(amount: float, currency: str) -> float:
    """The demo's own conversion (its fixed rates), so the check sees the generating model exactly."""
    return amount / CURRENCY_RATE[currency]


def demo_hammer(lot, sale) -> float:
    """The demo lot's hammer in its currency: its realised price less the premium of the shipped schedule."""
    day = schedule_day("online" if sale.is_online else "live", sale.end.isoformat(), sale.start.isoformat())
    return PremiumSchedule.read().row_for(sale.template.currency, sale.template.location, day).tiers.hammer(
        lot.price_realised)


def test_demo_prices_follow_the_documented_model(demo_sold_works):
    truth = np.array([[lot.truth.hedonic_log_usd, lot.truth.quality] for lot, _ in demo_sold_works])
    hammer = np.log([usd(demo_hammer(lot, sale), sale.template.currency) for lot, sale in demo_sold_works])
    design = np.column_stack([np.ones(len(truth)), truth])
    coefficients, *_ = np.linalg.lstsq(design, hammer, rcond=None)
    assert coefficients[1] == pytest.approx(1.0, abs=0.05)                          # H enters one to one
    assert coefficients[2] == pytest.approx(demo_prices.QUALITY_PRICE, abs=0.05)     # the planted quality
    residual = hammer - design @ coefficients
    assert residual.std() == pytest.approx(demo_prices.SALE_NOISE, abs=0.05)
    experts = np.log([usd(np.sqrt(lot.estimate_low * lot.estimate_high), sale.template.currency)
                      for lot, sale in demo_sold_works])
    seen, *_ = np.linalg.lstsq(design, experts, rcond=None)
    assert seen[2] == pytest.approx(demo_prices.EXPERT_QUALITY_SHARE * demo_prices.QUALITY_PRICE, abs=0.06)


def test_the_demo_premium_crosses_a_schedule_change(demo_sold_works):
    """The embedded default's months hold sales on both sides of 2019-02-01 (so the inversion is exercised across
    a change), and every realised price is the hammer on a bid increment plus exactly that premium."""
    days = {sale.start if sale.is_online else sale.end for _, sale in demo_sold_works}
    assert min(days) < dt.date(2019, 2, 1) <= max(days)
    for lot, sale in demo_sold_works:
        hammer = demo_hammer(lot, sale)
        step = 10 ** max(1, int(np.floor(np.log10(hammer))) - 1)
        assert abs(hammer - round(hammer / step) * step) < 1, lot.object_id


def test_the_demos_planted_image_signal_is_recovered_from_its_pictures(demo_sold_works, tmp_path):
    """The stage, fed picture statistics instead of the DCEC embedding, finds what only the image shows, on
    hammer prices: better than the catalogue alone, and a predictor of the experts' error; the experts, unbiased
    by construction, come out unbiased once the premium is taken off."""
    rows, features = [], []
    for lot, sale in demo_sold_works:
        dims = parse_dimensions(lot.dimensions)
        rows.append({"lot_key": lot.object_id, "artist": lot.truth.artist_key, "kind": lot.truth.kind,
                     "sale_id": sale.event_id, "sale_title": sale.title, "sale_date": sale.end.isoformat(),
                     "sale_start_date": sale.start.isoformat(), "sale_location": sale.template.location,
                     "sale_kind": "online" if sale.is_online else "live", "currency": sale.template.currency,
                     "price_realised": lot.price_realised, "estimate_low": lot.estimate_low,
                     "estimate_high": lot.estimate_high, "sold": True, "withdrawn": False,
                     "height_cm": dims.height_cm, "width_cm": dims.width_cm, "cluster": "0"})
        pixels = np.asarray(render(lot, 32), dtype=np.float32) / 255          # (h, 32, 3)
        features.append([*pixels.mean(axis=(0, 1)), pixels.mean(axis=2).std()])
    settings = price.PriceSettings(test_fraction=0.25, validation_fraction=0.25, deflate=False, deflate_to=2024,
                                   ridge_alphas=(0.1, 1.0, 10.0), boosting=(), bootstrap_resamples=1000, seed=0,
                                   min_test_sales=3)
    metrics = price.run_price(pd.DataFrame(rows), np.array(features, dtype=np.float32), settings,
                              tmp_path / "price", tmp_path / "figures")
    assert metrics["comparisons"]["hedonic vs mean"]["verdict"] == "better"
    assert metrics["comparisons"]["hedonic_image vs hedonic"]["verdict"] == "better"
    assert metrics["experts_error"]["image"]["verdict"] == "yes"
    assert abs(metrics["models"]["experts"]["bias"]) < 0.1                  # hammer against hammer
    realised_bias = float(np.mean(predictions_of(tmp_path).eval("pred_experts - realised_log_usd")))
    assert realised_bias < -0.15                                            # what the premium did to them
    saved = json.loads((tmp_path / "price/metrics.json").read_text())
    predictions = pd.read_csv(tmp_path / "price/predictions.csv")
    recomputed = price.test_metrics(predictions, 1000, 0, 3)["models"]
    for name in price.MODELS:
        assert recomputed[name]["mae"] == pytest.approx(saved["models"][name]["mae"], abs=1e-5)
    assert (tmp_path / "figures" / price.FIGURE_NAMES["scatter"]).stat().st_size > 0


def predictions_of(tmp_path) -> pd.DataFrame:
    predictions = pd.read_csv(tmp_path / "price/predictions.csv")
    return predictions[predictions["split"] == "test"]


def test_a_lot_table_without_the_price_columns_is_named(tmp_path):
    labels = write_final_data(tmp_path)[1]
    write_lot_table(tmp_path, labels)
    lots = pd.read_parquet(tmp_path / "data/interim/lots.parquet").drop(columns=["currency"])
    lots.to_parquet(tmp_path / "data/interim/lots.parquet", index=False)
    (tmp_path / "reports/dcec").mkdir(parents=True)
    np.save(tmp_path / "reports/dcec/embedding.npy", np.zeros((len(labels), 4), dtype=np.float32))
    labels.assign(cluster=0)[["row", "lot_key", "cluster"]].to_csv(tmp_path / "reports/dcec/assignments.csv",
                                                                   index=False)
    with pytest.raises(ValueError, match=r"lots.parquet: no column\(s\) \['currency'\]"):
        price.read_works(tmp_path / "data/final/labels.csv", tmp_path / "data/interim/lots.parquet",
                         tmp_path / "reports/dcec", k=4)
