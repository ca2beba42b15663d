"""Stage `price`: a work's hammer price from the catalogue, from its image, and from Christie's experts.

    python -m model.price          # reads params.yaml: base.seed, price

The seed paper's other branch ("DCEC-Pred"): does the image embedding add anything to a hedonic model of the
price, how do both compare with the house's own estimate, and does the image tell where the experts go wrong?
On the works of `data/final/` that sold:

* target: natural log of the **hammer** price in US dollars at the sale date. Christie's estimates are hammer
  estimates, and `price_realised` includes the buyer's premium: the premium is taken off exactly with the
  schedule in force for the sale (common/premium.py, common/buyers_premium.csv), so that models and experts are
  compared on one footing. Converted with the ECB reference rates (model/currency.py); with `price.deflate`,
  in constant dollars of `price.deflate_to` (US CPI-U). The premium-inclusive price stays a column;
* split by time, never at random: the latest sales holding `price.test_fraction` of the works are the test
  set (a sale day is never cut in two); the latest `price.validation_fraction` of the training period is
  the validation slice that chooses each model's family and strength, which is then refit on the whole
  training period;
* models, each a column `pred_<name>` (natural log of USD): `mean` (the training mean: the floor),
  `experts` (the geometric mean of the low and high estimate), `hedonic` (artist, log area, kind, sale year,
  saleroom, live or online), `hedonic_image` (the same plus the DCEC embedding and cluster of the `cluster`
  stage), `image` (the embedding and cluster only). Hedonic-type models are ridge regression or gradient
  boosting. The embedding is transductive: the `cluster` stage fitted it on every final image, the test works'
  pictures included (never their prices);
* intervals resample **sales**, not works: works of one sale share that evening's market;
* the experts' error, log(hammer / experts' point estimate), modelled from the image, the catalogue and both
  on the training split and scored on the test split: does the picture carry what the estimate left out?

Outputs: `reports/price/predictions.csv` (every eligible work: lot_key, sale, split, sale_date, artist,
actual_log_usd (hammer), realised_log_usd (premium included), premium_schedule, the estimate's range in log
USD, one pred_<model> per model, one gap_<features> per model of the experts' error),
`reports/price/metrics.json` (counts, split, per-model test metrics, the chosen candidates, paired
comparisons, the experts' error models) and two figures, `reports/figures/price_scatter.png` and
`reports/figures/price_artist_error.png`. Every metric is recomputable from predictions.csv (`test_metrics`).
When the sold works cannot support a time split (a narrow crawl) the stage writes the same files with the
reason (`status: skipped`) instead of failing, so the pipeline reaches its report.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from scipy import stats
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.impute import SimpleImputer
from sklearn.linear_model import Ridge
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from common import atomic_path, load_params, write_json
from common.premium import PremiumSchedule, PremiumScheduleError, schedule_day
from model import figures
from model.currency import UsdConverter
from model.data import read_labels
from model.evaluate import read_assignments, read_embedding
from model.metrics import VERDICTS

# The params this stage reads (dvc.yaml declares exactly these; tests/test_dvc_params.py).
PARAMS = ("base.seed", "model.k", "price")
LABELS_PATH = Path("data/final/labels.csv")
LOTS_PATH = Path("data/interim/lots.parquet")
DCEC_DIR = Path("reports/dcec")
OUT_DIR = Path("reports/price")
FIGURES_DIR = Path("reports/figures")
FIGURE_NAMES = {"scatter": "price_scatter.png", "artist_error": "price_artist_error.png"}
MODELS = ("mean", "experts", "hedonic", "hedonic_image", "image")
FITTED = {"hedonic": ("hedonic",), "hedonic_image": ("hedonic", "image"), "image": ("image",)}
# Paired comparisons on the test works: (model, against). Lower absolute error is better.
COMPARISONS = (("hedonic", "mean"), ("hedonic_image", "hedonic"), ("image", "mean"),
               ("hedonic", "experts"), ("hedonic_image", "experts"))
TOO_FEW_SALES = "too few sales for a verdict"
GAP_VERDICTS = ("yes", "no detectable")        # does a model of the experts' error beat its training mean?
PREMIUM_FALLBACKS = ("stop", "new_york_converted")
HEDONIC_CATEGORIES = ["artist", "kind", "sale_location", "sale_kind"]
HEDONIC_NUMBERS = ["log_area", "sale_year"]
LOT_COLUMNS = ["lot_key", "sale_id", "sale_title", "sale_date", "sale_start_date", "sale_location", "sale_kind",
               "currency", "price_realised", "estimate_low", "estimate_high", "sold", "withdrawn", "height_cm",
               "width_cm"]


class NarrowCrawl(ValueError):
    """The sold works cannot support a time split; the stage reports why instead of fitting."""


@dataclass(frozen=True)
class PriceSettings:
    """The `price` section of params.yaml, with base.seed."""

    test_fraction: float
    validation_fraction: float
    deflate: bool
    deflate_to: int
    ridge_alphas: tuple[float, ...]
    boosting: tuple[dict, ...]
    bootstrap_resamples: int
    seed: int
    premium_fallback: str = "stop"
    min_works: int = 20
    min_test_sales: int = 5

    @classmethod
    def from_params(cls, params: dict) -> PriceSettings:
        p = params["price"]
        settings = cls(float(p["test_fraction"]), float(p["validation_fraction"]), bool(p["deflate"]),
                       int(p["deflate_to"]), tuple(float(a) for a in p["ridge_alphas"]),
                       tuple(dict(b) for b in p["boosting"]), int(p["bootstrap_resamples"]),
                       int(params["base"]["seed"]), str(p["premium_fallback"]), int(p["min_works"]),
                       int(p["min_test_sales"]))
        for name in ("test_fraction", "validation_fraction"):
            if not 0 < getattr(settings, name) < 1:
                raise ValueError(f"params.yaml: price.{name} is {getattr(settings, name)}; expected 0 < value < 1")
        if not settings.ridge_alphas and not settings.boosting:
            raise ValueError("params.yaml: price.ridge_alphas and price.boosting are both empty: no model to fit")
        if settings.premium_fallback not in PREMIUM_FALLBACKS:
            raise ValueError(f"params.yaml: price.premium_fallback is {settings.premium_fallback!r}; expected one "
                             f"of {PREMIUM_FALLBACKS}")
        if settings.min_test_sales < 2:
            raise ValueError(f"params.yaml: price.min_test_sales is {settings.min_test_sales}; a sale-resampled "
                             "interval needs at least 2")
        return settings


# ---------------------------------------------------------------- the works and their prices


def read_works(labels_path: Path, lots_path: Path, dcec_dir: Path, k: int) -> tuple[pd.DataFrame, np.ndarray]:
    """One row per final image (labels.csv order) with its lot's sale and price facts and DCEC cluster,
    and the (N, E) DCEC embedding. Errors name the file, the row and the field."""
    embedding = read_embedding(dcec_dir / "embedding.npy", None)
    labels = read_labels(labels_path, embedding.shape[0])
    clusters = read_assignments(dcec_dir / "assignments.csv", labels, k)
    if not lots_path.is_file():
        raise FileNotFoundError(f"{lots_path}: not found (made by the 'clean' stage: dvc repro clean)")
    missing_columns = sorted(set(LOT_COLUMNS) - set(pq.read_schema(lots_path).names))
    if missing_columns:
        raise ValueError(f"{lots_path}: no column(s) {missing_columns}; re-run the clean stage (dvc repro clean)")
    lots = pd.read_parquet(lots_path, columns=LOT_COLUMNS).drop_duplicates("lot_key")
    works = labels[["lot_key", "artist", "kind"]].merge(lots, on="lot_key", how="left", indicator=True)
    missing = np.flatnonzero((works.pop("_merge") != "both").to_numpy())
    if missing.size:
        i = int(missing[0])
        raise ValueError(f"{labels_path}: row {i}, field 'lot_key': {works['lot_key'].iloc[i]!r} is not in "
                         f"{lots_path}; re-run the pipeline (dvc repro)")
    works["cluster"] = clusters.astype(str)
    return works, embedding


def eligibility(works: pd.DataFrame) -> tuple[np.ndarray, dict[str, int]]:
    """Works that sold with a price and an estimate, and how many were left out for each reason (first
    reason that applies, in this order)."""
    reasons = {
        "withdrawn": works["withdrawn"].fillna(False).astype(bool).to_numpy(),
        "unsold": ~works["sold"].fillna(False).astype(bool).to_numpy(),
        "no_price": ~(works["price_realised"].astype("Float64") > 0).fillna(False).to_numpy(dtype=bool),
        "no_estimate": ~((works["estimate_low"].astype("Float64") > 0)
                         & (works["estimate_high"].astype("Float64") > 0)).fillna(False).to_numpy(dtype=bool),
    }
    excluded = np.zeros(len(works), dtype=bool)
    counts = {}
    for reason, mask in reasons.items():
        counts[reason] = int((mask & ~excluded).sum())
        excluded |= mask
    return ~excluded, counts


def sale_units(works: pd.DataFrame) -> pd.Series:
    """The resampling unit of each work: its sale id, or its sale's day, saleroom and title when the crawl
    route gave no id."""
    fallback = (works["sale_date"].astype(str) + " " + works["sale_location"].fillna("").astype(str) + " "
                + works["sale_title"].fillna("").astype(str))
    ids = works["sale_id"].fillna("").astype(str)
    return ids.where(ids != "", fallback)


def hammer_prices(works: pd.DataFrame, schedule: PremiumSchedule, fallback: str) -> tuple[np.ndarray, list[str]]:
    """Each work's hammer price in its sale's currency (the realised price less the buyer's premium in force),
    and the label of the schedule row used.

    Raises:
        PremiumScheduleError: a sale the schedule does not cover, with price.premium_fallback `stop`; the
            message names the lot, the saleroom and the day.
    """
    rates = None          # the ECB table, loaded only when a fallback converts thresholds
    hammers, labels = [], []
    for work in works.itertuples(index=False):
        day = schedule_day(work.sale_kind, work.sale_date, work.sale_start_date)
        try:
            row = schedule.row_for(str(work.currency), str(work.sale_location), day)
            tiers, label = row.tiers, row.label
        except PremiumScheduleError as error:
            if fallback == "stop":
                raise PremiumScheduleError(
                    f"lot {work.lot_key} (saleroom {work.sale_location!r}, {work.sale_kind} sale, schedule day "
                    f"{day}): {error}. Add the schedule to {schedule.path.name}, or set price.premium_fallback: "
                    "new_york_converted (docs/PRICE.md)") from None
            try:
                new_york = schedule.row_for("USD", "", day)
            except PremiumScheduleError as no_fallback:
                raise PremiumScheduleError(f"lot {work.lot_key} (saleroom {work.sale_location!r}): {error}; and "
                                           f"no fallback: {no_fallback}") from None
            rates = rates or UsdConverter(None)
            tiers = new_york.tiers.scaled(1.0 / rates.factor(str(work.currency), day, work.lot_key))
            label = f"fallback: {new_york.label} converted to {work.currency}"
        hammers.append(tiers.hammer(float(work.price_realised)))
        labels.append(label)
    return np.array(hammers), labels


def log_usd_columns(works: pd.DataFrame, hammer: np.ndarray, converter: UsdConverter) -> pd.DataFrame:
    """actual_log_usd (hammer), realised_log_usd, estimate_low/high_log_usd and experts (log of the estimate's
    geometric mean)."""
    factor = converter.factors(works)
    out = pd.DataFrame(index=works.index)
    out["actual_log_usd"] = np.log(hammer * factor)
    out["realised_log_usd"] = np.log(works["price_realised"].astype(float) * factor)
    out["estimate_low_log_usd"] = np.log(works["estimate_low"].astype(float) * factor)
    out["estimate_high_log_usd"] = np.log(works["estimate_high"].astype(float) * factor)
    out["experts"] = (out["estimate_low_log_usd"] + out["estimate_high_log_usd"]) / 2
    return out


def time_split(dates: pd.Series, later_fraction: float) -> np.ndarray:
    """True for the works of the latest sale days that together hold at least `later_fraction` of the works
    (whole days only), False for the earlier ones; at least one day on each side."""
    days = pd.to_datetime(dates).dt.normalize()
    per_day = days.value_counts().sort_index(ascending=False)
    if len(per_day) < 2:
        raise NarrowCrawl(f"the works span {len(per_day)} sale day(s): a time split needs at least two")
    cumulative = per_day.cumsum().to_numpy()
    taken = int(np.searchsorted(cumulative, later_fraction * len(days))) + 1
    first_later = per_day.index[min(taken, len(per_day) - 1) - 1]
    return (days >= first_later).to_numpy()


# ---------------------------------------------------------------- models


def feature_frame(works: pd.DataFrame, embedding: np.ndarray) -> pd.DataFrame:
    """The model inputs: hedonic columns (categories as text, log area, fractional sale year) and image
    columns (emb_0.. and the cluster)."""
    area = works["height_cm"].astype(float) * works["width_cm"].astype(float).fillna(works["height_cm"].astype(float))
    dates = pd.to_datetime(works["sale_date"])
    frame = pd.DataFrame({
        **{column: works[column].fillna("").astype(str) for column in HEDONIC_CATEGORIES + ["cluster"]},
        "log_area": np.log(area.where(area > 0)),
        "sale_year": dates.dt.year + (dates.dt.day_of_year - 1) / 365.25,
    }, index=works.index)
    image = pd.DataFrame(embedding, index=works.index, columns=[f"emb_{i}" for i in range(embedding.shape[1])])
    return pd.concat([frame, image], axis=1)


def feature_columns(groups: tuple[str, ...], frame: pd.DataFrame) -> tuple[list[str], list[str]]:
    """(categorical, numeric) columns of the feature groups ("hedonic", "image")."""
    categorical, numeric = [], []
    if "hedonic" in groups:
        categorical += HEDONIC_CATEGORIES
        numeric += HEDONIC_NUMBERS
    if "image" in groups:
        categorical.append("cluster")
        numeric += [c for c in frame.columns if c.startswith("emb_")]
    return categorical, numeric


def candidates(settings: PriceSettings) -> list[tuple[str, dict]]:
    """Every (family, settings) the validation slice chooses among."""
    return ([("ridge", {"alpha": alpha}) for alpha in settings.ridge_alphas]
            + [("boosting", dict(options)) for options in settings.boosting])


def build_model(family: str, options: dict, categorical: list[str], numeric: list[str], seed: int) -> Pipeline:
    """One-hot categories, median-imputed (with a missing flag) and standardised numbers, then the regressor."""
    columns = ColumnTransformer([
        ("categories", OneHotEncoder(handle_unknown="ignore", sparse_output=False), categorical),
        ("numbers", make_pipeline(SimpleImputer(strategy="median", add_indicator=True), StandardScaler()), numeric),
    ])
    if family == "ridge":
        regressor = Ridge(alpha=options["alpha"])
    elif family == "boosting":
        regressor = HistGradientBoostingRegressor(random_state=seed, **options)
    else:
        raise ValueError(f"unknown model family {family!r}")
    return Pipeline([("columns", columns), ("regressor", regressor)])


def describe(family: str, options: dict) -> str:
    return family + " " + ", ".join(f"{key}={value}" for key, value in options.items())


def fit_chosen(frame: pd.DataFrame, target: np.ndarray, train: np.ndarray, validation: np.ndarray,
               groups: tuple[str, ...], settings: PriceSettings) -> tuple[Pipeline, dict]:
    """Choose the candidate with the lowest validation MAE (fit on the training period before the validation
    slice), refit it on the whole training period; return it with the validation scores of every candidate and
    whether a chosen ridge strength lies at the edge of price.ridge_alphas (then the grid should be wider)."""
    categorical, numeric = feature_columns(groups, frame)
    fit_rows = train & ~validation
    scores = []
    for family, options in candidates(settings):
        model = build_model(family, options, categorical, numeric, settings.seed)
        model.fit(frame[fit_rows], target[fit_rows])
        error = float(np.mean(np.abs(model.predict(frame[validation]) - target[validation])))
        scores.append({"candidate": describe(family, options), "validation_mae": error, "family": family,
                       "options": options})
    best = min(scores, key=lambda score: score["validation_mae"])
    model = build_model(best["family"], best["options"], categorical, numeric, settings.seed)
    model.fit(frame[train], target[train])
    alphas = settings.ridge_alphas
    at_edge = best["family"] == "ridge" and len(alphas) > 1 and best["options"]["alpha"] in (min(alphas), max(alphas))
    return model, {"chosen": best["candidate"], "at_grid_edge": bool(at_edge),
                   "validation": [{k: s[k] for k in ("candidate", "validation_mae")} for s in scores]}


def split_masks(works: pd.DataFrame, settings: PriceSettings) -> tuple[np.ndarray, np.ndarray]:
    """(test, validation) masks over the works; NarrowCrawl when the sale days cannot hold three parts."""
    test = time_split(works["sale_date"], settings.test_fraction)
    validation = np.zeros(len(works), dtype=bool)
    try:
        validation[~test] = time_split(works["sale_date"][~test], settings.validation_fraction)
    except NarrowCrawl as error:
        raise NarrowCrawl(f"the training period: {error} (one for fitting, one for validation)") from None
    return test, validation


def predict_prices(works: pd.DataFrame, embedding: np.ndarray, logs: pd.DataFrame, settings: PriceSettings
                   ) -> tuple[pd.DataFrame, dict]:
    """predictions.csv as a frame (eligible works only) and the per-model choice records."""
    test, validation = split_masks(works, settings)
    train = ~test
    target = logs["actual_log_usd"].to_numpy()
    gap = target - logs["experts"].to_numpy()
    frame = feature_frame(works, embedding)
    predictions = pd.DataFrame({
        "lot_key": works["lot_key"].to_numpy(), "sale": sale_units(works).to_numpy(),
        "split": np.where(test, "test", "train"), "sale_date": works["sale_date"].to_numpy(),
        "artist": works["artist"].to_numpy(), "actual_log_usd": target,
        "realised_log_usd": logs["realised_log_usd"].to_numpy(),
        "premium_schedule": works["premium_schedule"].to_numpy(),
        "estimate_low_log_usd": logs["estimate_low_log_usd"].to_numpy(),
        "estimate_high_log_usd": logs["estimate_high_log_usd"].to_numpy(),
        "pred_mean": np.full(len(works), target[train].mean()), "pred_experts": logs["experts"].to_numpy(),
    })
    choices, gap_choices = {}, {}
    for name, groups in FITTED.items():
        model, choices[name] = fit_chosen(frame, target, train, validation, groups, settings)
        predictions[f"pred_{name}"] = model.predict(frame)
    predictions["gap_mean"] = gap[train].mean()
    for name, groups in FITTED.items():
        model, gap_choices[name] = fit_chosen(frame, gap, train, validation, groups, settings)
        predictions[f"gap_{name}"] = model.predict(frame)
    split_dates = {part: [str(works["sale_date"][rows].min()), str(works["sale_date"][rows].max())]
                   for part, rows in (("train", train), ("validation", validation), ("test", test))}
    return predictions, {"choices": choices, "gap_choices": gap_choices, "split_dates": split_dates,
                         "n_validation": int(validation.sum())}


# ---------------------------------------------------------------- metrics from predictions.csv
# Here rather than in model/metrics.py: that module is part of the code key of the cached Fashion-MNIST
# verification (model/verify.py keys its seeds on the modules it imports), and price scores have nothing to do with
# those results.


def price_metrics(actual: np.ndarray, predicted: np.ndarray, range_low: np.ndarray, range_high: np.ndarray) -> dict:
    """Scores of log-price predictions: MAE and median absolute error (log points), R² against the mean of
    `actual`, the share of predictions inside the experts' [low, high] range, Spearman's ρ (None when either
    side is constant, e.g. the mean model), and the bias (mean of predicted − actual)."""
    error = predicted - actual
    spread = float(np.sum((actual - actual.mean()) ** 2))
    return {
        "mae": float(np.mean(np.abs(error))),
        "median_ae": float(np.median(np.abs(error))),
        "r2": float(1 - np.sum(error ** 2) / spread) if spread > 0 else None,
        "within_estimate": float(np.mean((predicted >= range_low) & (predicted <= range_high))),
        "spearman": spearman(predicted, actual),
        "bias": float(np.mean(error)),
        "n": int(actual.size),
    }


def spearman(a: np.ndarray, b: np.ndarray) -> float | None:
    """Spearman's ρ; None when either side is constant."""
    return float(stats.spearmanr(a, b).statistic) if np.ptp(a) > 0 and np.ptp(b) > 0 else None


def sale_resamples(sales: np.ndarray, resamples: int, seed: int) -> Iterator[np.ndarray]:
    """Row indices of bootstrap samples that draw whole sales with replacement (as many sales as there are),
    so that works of one sale, who share that evening's market, stay together."""
    codes, _ = pd.factorize(np.asarray(sales))
    order = np.argsort(codes, kind="stable")
    groups = np.split(order, np.cumsum(np.bincount(codes))[:-1])
    rng = np.random.default_rng(seed)
    for _ in range(resamples):
        yield np.concatenate([groups[i] for i in rng.integers(0, len(groups), len(groups))])


def sale_interval(statistic: Callable[[np.ndarray], float | None], sales: np.ndarray, resamples: int, seed: int,
                  level: float = 0.95) -> tuple[float | None, float | None]:
    """Percentile interval of `statistic(rows)` over sale-resampled bootstrap samples (undefined ones skipped)."""
    values = [statistic(rows) for rows in sale_resamples(sales, resamples, seed)]
    values = np.array([v for v in values if v is not None and np.isfinite(v)])
    if values.size < resamples / 2:
        return None, None
    low, high = np.quantile(values, [0.5 - level / 2, 0.5 + level / 2])
    return float(low), float(high)


def paired_error_difference(errors: np.ndarray, their_errors: np.ndarray, sales: np.ndarray, resamples: int,
                            seed: int, min_sales: int) -> dict:
    """Paired comparison of two models' absolute errors on the same test works.

    diff_mean is MAE(ours) − MAE(theirs), so negative means ours errs less; the interval is the percentile
    bootstrap over sales (pairs resampled with their sale). Verdict `better` when the interval lies below 0,
    `worse` above; with fewer than `min_sales` sales, no verdict.
    """
    diffs = np.asarray(errors, dtype=np.float64) - np.asarray(their_errors, dtype=np.float64)
    n_sales = int(pd.Series(sales).nunique())
    cell = {"diff_mean": float(diffs.mean()) if diffs.size else None, "ci_low": None, "ci_high": None,
            "n": int(diffs.size), "n_sales": n_sales}
    if n_sales < min_sales:
        return {**cell, "verdict": TOO_FEW_SALES}
    low, high = sale_interval(lambda rows: float(diffs[rows].mean()), sales, resamples, seed)
    verdict = VERDICTS[0] if high < 0 else VERDICTS[1] if low > 0 else VERDICTS[2]
    return {**cell, "ci_low": low, "ci_high": high, "verdict": verdict}


def out_of_sample_r2(actual: np.ndarray, predicted: np.ndarray, baseline: np.ndarray) -> float | None:
    """1 − SSE(predicted) / SSE(baseline): above 0 when the model beats the training-mean baseline."""
    base = float(np.sum((actual - baseline) ** 2))
    return float(1 - np.sum((actual - predicted) ** 2) / base) if base > 0 else None


def gap_metrics(test: pd.DataFrame, resamples: int, seed: int, min_sales: int) -> dict:
    """Does the image (catalogue, both) predict the experts' error log(hammer / estimate) on the test works?
    Out-of-sample R² against the training mean of the error and Spearman's ρ, each with its sale-resampled
    interval; verdict `yes` when the R² interval lies above 0."""
    gap = (test["actual_log_usd"] - test["pred_experts"]).to_numpy()
    baseline, sales = test["gap_mean"].to_numpy(), test["sale"].to_numpy()
    n_sales = int(pd.Series(sales).nunique())
    out = {}
    for name in FITTED:
        predicted = test[f"gap_{name}"].to_numpy()
        cell = {"r2": out_of_sample_r2(gap, predicted, baseline), "spearman": spearman(predicted, gap),
                "n": int(gap.size), "n_sales": n_sales}
        if n_sales < min_sales:
            out[name] = {**cell, "r2_ci": None, "spearman_ci": None, "verdict": TOO_FEW_SALES}
            continue
        r2_ci = sale_interval(lambda rows: out_of_sample_r2(gap[rows], predicted[rows], baseline[rows]),
                              sales, resamples, seed)
        rho_ci = sale_interval(lambda rows: spearman(predicted[rows], gap[rows]), sales, resamples, seed)
        verdict = GAP_VERDICTS[0] if r2_ci[0] is not None and r2_ci[0] > 0 else GAP_VERDICTS[1]
        out[name] = {**cell, "r2_ci": list(r2_ci), "spearman_ci": list(rho_ci), "verdict": verdict}
    return out


def test_metrics(predictions: pd.DataFrame, resamples: int, seed: int, min_sales: int) -> dict:
    """Per-model metrics on the test split, the hammer price's own hit rate of the estimate range, the paired
    comparisons and the experts' error models; computed from predictions.csv's columns only."""
    test = predictions[predictions["split"] == "test"]
    actual, sales = test["actual_log_usd"].to_numpy(), test["sale"].to_numpy()
    low, high = test["estimate_low_log_usd"].to_numpy(), test["estimate_high_log_usd"].to_numpy()
    models = {name: price_metrics(actual, test[f"pred_{name}"].to_numpy(), low, high) for name in MODELS}
    errors = {name: np.abs(test[f"pred_{name}"].to_numpy() - actual) for name in MODELS}
    comparisons = {f"{model} vs {against}": paired_error_difference(errors[model], errors[against], sales,
                                                                    resamples, seed, min_sales)
                   for model, against in COMPARISONS}
    return {"models": models, "hammer_within_estimate": float(np.mean((actual >= low) & (actual <= high))),
            "n_test_sales": int(pd.Series(sales).nunique()), "comparisons": comparisons,
            "experts_error": gap_metrics(test, resamples, seed, min_sales)}


# ---------------------------------------------------------------- the stage


def target_text(settings: PriceSettings) -> str:
    money = f"US dollars of {settings.deflate_to} (CPI-U)" if settings.deflate else "US dollars at the sale date"
    return f"log {money} of the hammer price (the buyer's premium taken off with the schedule in force)"


def run_price(works: pd.DataFrame, embedding: np.ndarray, settings: PriceSettings, out_dir: Path,
              figures_dir: Path) -> dict:
    """The whole stage after reading: convert, split, fit, predict, score, draw, write. Returns metrics.json.
    A crawl too narrow for a time split writes the same files with `status: skipped` and the reason."""
    eligible, excluded = eligibility(works)
    works, embedding = works[eligible].reset_index(drop=True), embedding[eligible]
    counts = {"final_works": int(len(eligible)), "eligible": int(eligible.sum()), "excluded": excluded,
              "sale_days": int(pd.to_datetime(works["sale_date"]).dt.normalize().nunique())}
    hammer, works["premium_schedule"] = hammer_prices(works, PremiumSchedule.read(), settings.premium_fallback)
    logs = log_usd_columns(works, hammer, UsdConverter(settings.deflate_to if settings.deflate else None))
    common = {"target": target_text(settings), "premium_schedules": value_counts(works["premium_schedule"]),
              "currencies": value_counts(works["currency"]),
              "settings": {"test_fraction": settings.test_fraction, "validation_fraction": settings.validation_fraction,
                           "bootstrap_resamples": settings.bootstrap_resamples, "seed": settings.seed,
                           "min_test_sales": settings.min_test_sales, "premium_fallback": settings.premium_fallback}}
    try:
        if len(works) < settings.min_works:
            raise NarrowCrawl(f"{len(works)} of {len(eligible)} final works sold with a price and an estimate; "
                              f"price.min_works is {settings.min_works}")
        predictions, fitted = predict_prices(works, embedding, logs, settings)
    except NarrowCrawl as reason:
        metrics = {"status": "skipped", "reason": str(reason), "n": counts, **common}
        write_outputs(out_dir, figures_dir, skipped_predictions(works, logs), metrics, str(reason))
        return metrics
    scores = test_metrics(predictions, settings.bootstrap_resamples, settings.seed, settings.min_test_sales)
    metrics = {
        "status": "fitted",
        "n": {**counts, "train": int((predictions["split"] == "train").sum()), "validation": fitted["n_validation"],
              "test": int((predictions["split"] == "test").sum())},
        "split_dates": fitted["split_dates"], **common, **scores,
        "choices": fitted["choices"], "experts_error_choices": fitted["gap_choices"],
        "embedding": "transductive: the cluster stage's DCEC embedding, fitted on every final image (test works' "
                     "pictures included, never their prices)",
    }
    write_outputs(out_dir, figures_dir, predictions, metrics, None)
    return metrics


def value_counts(column: pd.Series) -> dict[str, int]:
    return {str(value): int(count) for value, count in column.value_counts().sort_index().items()}


def skipped_predictions(works: pd.DataFrame, logs: pd.DataFrame) -> pd.DataFrame:
    """predictions.csv of a skipped stage: the eligible works and their prices, no split, no predictions."""
    return pd.DataFrame({"lot_key": works["lot_key"], "sale": sale_units(works), "sale_date": works["sale_date"],
                         "artist": works["artist"], "actual_log_usd": logs["actual_log_usd"],
                         "realised_log_usd": logs["realised_log_usd"], "premium_schedule": works["premium_schedule"]})


def write_outputs(out_dir: Path, figures_dir: Path, predictions: pd.DataFrame, metrics: dict,
                  skipped: str | None) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(out_dir / "predictions.csv") as tmp:
        predictions.to_csv(tmp, index=False, float_format="%.6f")
    write_json(out_dir / "metrics.json", metrics)
    if skipped is None:
        draw_figures(predictions, figures_dir)
    else:
        for name in FIGURE_NAMES.values():
            figures.notice(f"No price model: {skipped}", figures_dir / name)


def draw_figures(predictions: pd.DataFrame, figures_dir: Path) -> None:
    test = predictions[predictions["split"] == "test"]
    shown = [name for name in MODELS if name != "mean"]
    figures.price_scatter(test["actual_log_usd"].to_numpy(), {name: test[f"pred_{name}"].to_numpy() for name in shown},
                          figures_dir / FIGURE_NAMES["scatter"])
    errors = pd.DataFrame({name: (test[f"pred_{name}"] - test["actual_log_usd"]).abs() for name in shown})
    figures.price_artist_error(errors.groupby(test["artist"].to_numpy()).mean(),
                               test["artist"].value_counts(), figures_dir / FIGURE_NAMES["artist_error"])


def main() -> None:
    params = load_params(keys=PARAMS)
    settings = PriceSettings.from_params(params)
    works, embedding = read_works(LABELS_PATH, LOTS_PATH, DCEC_DIR, int(params["model"]["k"]))
    metrics = run_price(works, embedding, settings, OUT_DIR, FIGURES_DIR)
    if metrics["status"] == "skipped":
        print(f"price: skipped ({metrics['reason']}); the report says so", file=sys.stderr)
        return
    summary = ", ".join(f"{name} MAE {metrics['models'][name]['mae']:.3f}" for name in MODELS)
    print(f"price: {metrics['n']['train']} train / {metrics['n']['test']} test works in "
          f"{metrics['n_test_sales']} test sales; {summary}", file=sys.stderr)


if __name__ == "__main__":
    main()
