"""Stage `price`: a work's auction price from the catalogue, from its image, and from Christie's experts.

    python -m model.price          # reads params.yaml: base.seed, price

The seed paper's other branch ("DCEC-Pred"): does the image embedding add anything to a hedonic model of the
price, and how do both compare with the house's own estimate? On the works of `data/final/` that sold:

* target: natural log of the realised price (hammer plus buyer's premium, as the site reports it) in US
  dollars at the sale date, converted with the ECB reference rates (model/currency.py); with
  `price.deflate`, in constant dollars of `price.deflate_to` (US CPI-U);
* split by time, never at random: the latest sales holding `price.test_fraction` of the works are the test
  set (a sale day is never cut in two); the latest `price.validation_fraction` of the training period is
  the validation slice that chooses each model's family and strength, which is then refit on the whole
  training period;
* models, each a column `pred_<name>` (natural log of USD): `mean` (the training mean: the floor),
  `experts` (the geometric mean of the low and high estimate, converted the same way: the premium is not
  in it, so it runs low), `hedonic` (artist, log area, kind, sale year, saleroom, live or online),
  `hedonic_image` (the same plus the DCEC embedding and cluster of the `cluster` stage), `image` (the
  embedding and cluster only). Hedonic-type models are ridge regression or gradient boosting.

Outputs: `reports/price/predictions.csv` (every eligible work: lot_key, split, sale_date, artist,
actual_log_usd, the estimate's range in log USD, one pred_<model> per model), `reports/price/metrics.json`
(counts, split, per-model test metrics, the chosen candidates, paired comparisons) and two figures,
`reports/figures/price_scatter.png` and `reports/figures/price_artist_error.png`. Every metric is
recomputable from predictions.csv (`test_metrics`).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.impute import SimpleImputer
from sklearn.linear_model import Ridge
from sklearn.pipeline import Pipeline, make_pipeline
from scipy import stats
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from common import atomic_path, load_params, write_json
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
HEDONIC_CATEGORIES = ["artist", "kind", "sale_location", "sale_kind"]
HEDONIC_NUMBERS = ["log_area", "sale_year"]
LOT_COLUMNS = ["lot_key", "sale_date", "sale_location", "sale_kind", "currency", "price_realised",
               "estimate_low", "estimate_high", "sold", "withdrawn", "height_cm", "width_cm"]


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

    @classmethod
    def from_params(cls, params: dict) -> PriceSettings:
        p = params["price"]
        settings = cls(float(p["test_fraction"]), float(p["validation_fraction"]), bool(p["deflate"]),
                       int(p["deflate_to"]), tuple(float(a) for a in p["ridge_alphas"]),
                       tuple(dict(b) for b in p["boosting"]), int(p["bootstrap_resamples"]),
                       int(params["base"]["seed"]))
        for name in ("test_fraction", "validation_fraction"):
            if not 0 < getattr(settings, name) < 1:
                raise ValueError(f"params.yaml: price.{name} is {getattr(settings, name)}; expected 0 < value < 1")
        if not settings.ridge_alphas and not settings.boosting:
            raise ValueError("params.yaml: price.ridge_alphas and price.boosting are both empty: no model to fit")
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


def log_usd_columns(works: pd.DataFrame, converter: UsdConverter) -> pd.DataFrame:
    """actual_log_usd, estimate_low/high_log_usd and experts (log of the estimate's geometric mean)."""
    factor = converter.factors(works)
    out = pd.DataFrame(index=works.index)
    out["actual_log_usd"] = np.log(works["price_realised"].astype(float) * factor)
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
        raise ValueError(f"the works span {len(per_day)} sale day(s): a time split needs at least two")
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
    slice), refit it on the whole training period; return it with the validation scores of every candidate."""
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
    return model, {"chosen": best["candidate"],
                   "validation": [{k: s[k] for k in ("candidate", "validation_mae")} for s in scores]}


def predict_prices(works: pd.DataFrame, embedding: np.ndarray, logs: pd.DataFrame, settings: PriceSettings
                   ) -> tuple[pd.DataFrame, dict]:
    """predictions.csv as a frame (eligible works only) and the per-model choice records."""
    test = time_split(works["sale_date"], settings.test_fraction)
    train = ~test
    validation = np.zeros(len(works), dtype=bool)
    validation[train] = time_split(works["sale_date"][train], settings.validation_fraction)
    target = logs["actual_log_usd"].to_numpy()
    frame = feature_frame(works, embedding)
    predictions = pd.DataFrame({
        "lot_key": works["lot_key"].to_numpy(), "split": np.where(test, "test", "train"),
        "sale_date": works["sale_date"].to_numpy(), "artist": works["artist"].to_numpy(),
        "actual_log_usd": target, "estimate_low_log_usd": logs["estimate_low_log_usd"].to_numpy(),
        "estimate_high_log_usd": logs["estimate_high_log_usd"].to_numpy(),
        "pred_mean": np.full(len(works), target[train].mean()), "pred_experts": logs["experts"].to_numpy(),
    })
    choices = {}
    for name, groups in FITTED.items():
        model, choices[name] = fit_chosen(frame, target, train, validation, groups, settings)
        predictions[f"pred_{name}"] = model.predict(frame)
    split_dates = {
        "train": [str(works["sale_date"][train].min()), str(works["sale_date"][train].max())],
        "validation": [str(works["sale_date"][validation].min()), str(works["sale_date"][validation].max())],
        "test": [str(works["sale_date"][test].min()), str(works["sale_date"][test].max())],
    }
    return predictions, {"choices": choices, "split_dates": split_dates, "n_validation": int(validation.sum())}


# ---------------------------------------------------------------- metrics from predictions.csv
# Here rather than in model/metrics.py: that module is part of the code key of the cached Fashion-MNIST
# verification (model/verify.py TRAINING_CODE), and price scores have nothing to do with those results.


def price_metrics(actual: np.ndarray, predicted: np.ndarray, range_low: np.ndarray, range_high: np.ndarray) -> dict:
    """Scores of log-price predictions: MAE and median absolute error (log points), R² against the mean of
    `actual`, the share of predictions inside the experts' [low, high] range, Spearman's ρ (None when either
    side is constant, e.g. the mean model), and the bias (mean of predicted − actual)."""
    error = predicted - actual
    spread = float(np.sum((actual - actual.mean()) ** 2))
    ranked = np.ptp(predicted) > 0 and np.ptp(actual) > 0
    return {
        "mae": float(np.mean(np.abs(error))),
        "median_ae": float(np.median(np.abs(error))),
        "r2": float(1 - np.sum(error ** 2) / spread) if spread > 0 else None,
        "within_estimate": float(np.mean((predicted >= range_low) & (predicted <= range_high))),
        "spearman": float(stats.spearmanr(predicted, actual).statistic) if ranked else None,
        "bias": float(np.mean(error)),
        "n": int(actual.size),
    }


def paired_error_difference(errors: np.ndarray, their_errors: np.ndarray, resamples: int, seed: int,
                            level: float = 0.95) -> dict:
    """Paired comparison of two models' absolute errors on the same test works.

    diff_mean is MAE(ours) − MAE(theirs), so negative means ours errs less; the interval is the percentile
    bootstrap over works (resampled in pairs; with dozens to thousands of test works it is well behaved,
    unlike over a handful of seeds). Verdict `better` when the interval lies below 0, `worse` above.
    """
    diffs = np.asarray(errors, dtype=np.float64) - np.asarray(their_errors, dtype=np.float64)
    n = int(diffs.size)
    if n < 2:
        return {"diff_mean": float(diffs.mean()) if n else None, "ci_low": None, "ci_high": None, "n": n,
                "verdict": VERDICTS[2]}
    rng = np.random.default_rng(seed)
    means = np.empty(resamples)
    for start in range(0, resamples, 256):          # (chunk, n) index blocks bound the memory
        count = min(256, resamples - start)
        means[start:start + count] = diffs[rng.integers(0, n, (count, n))].mean(axis=1)
    low, high = (float(v) for v in np.quantile(means, [0.5 - level / 2, 0.5 + level / 2]))
    verdict = VERDICTS[0] if high < 0 else VERDICTS[1] if low > 0 else VERDICTS[2]
    return {"diff_mean": float(diffs.mean()), "ci_low": low, "ci_high": high, "n": n, "verdict": verdict}


def test_metrics(predictions: pd.DataFrame, resamples: int, seed: int) -> dict:
    """Per-model metrics on the test split, the realised price's own hit rate of the estimate range, and
    the paired comparisons; computed from predictions.csv's columns only."""
    test = predictions[predictions["split"] == "test"]
    actual = test["actual_log_usd"].to_numpy()
    low, high = test["estimate_low_log_usd"].to_numpy(), test["estimate_high_log_usd"].to_numpy()
    models = {name: price_metrics(actual, test[f"pred_{name}"].to_numpy(), low, high) for name in MODELS}
    errors = {name: np.abs(test[f"pred_{name}"].to_numpy() - actual) for name in MODELS}
    comparisons = {f"{model} vs {against}": paired_error_difference(errors[model], errors[against], resamples, seed)
                   for model, against in COMPARISONS}
    return {"models": models, "realised_within_estimate": float(np.mean((actual >= low) & (actual <= high))),
            "comparisons": comparisons}


def run_price(works: pd.DataFrame, embedding: np.ndarray, settings: PriceSettings, out_dir: Path,
              figures_dir: Path) -> dict:
    """The whole stage after reading: convert, split, fit, predict, score, draw, write. Returns metrics.json."""
    eligible, excluded = eligibility(works)
    if eligible.sum() < 20:
        raise ValueError(f"only {int(eligible.sum())} of {len(works)} final works sold with a price and an "
                         f"estimate: too few to fit and test a price model")
    works, embedding = works[eligible].reset_index(drop=True), embedding[eligible]
    converter = UsdConverter(settings.deflate_to if settings.deflate else None)
    logs = log_usd_columns(works, converter)
    predictions, fitted = predict_prices(works, embedding, logs, settings)
    scores = test_metrics(predictions, settings.bootstrap_resamples, settings.seed)
    metrics = {
        "n": {"final_works": int(len(eligible)), "eligible": int(eligible.sum()), "excluded": excluded,
              "train": int((predictions["split"] == "train").sum()), "validation": fitted["n_validation"],
              "test": int((predictions["split"] == "test").sum())},
        "split_dates": fitted["split_dates"],
        "target": ("log US dollars at the sale date" if not settings.deflate else
                   f"log US dollars of {settings.deflate_to} (CPI-U)") + ", buyer's premium included",
        "currencies": {str(c): int(n) for c, n in works["currency"].value_counts().sort_index().items()},
        **scores,
        "choices": fitted["choices"],
        "settings": {"test_fraction": settings.test_fraction, "validation_fraction": settings.validation_fraction,
                     "bootstrap_resamples": settings.bootstrap_resamples, "seed": settings.seed},
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(out_dir / "predictions.csv") as tmp:
        predictions.to_csv(tmp, index=False, float_format="%.6f")
    write_json(out_dir / "metrics.json", metrics)
    draw_figures(predictions, figures_dir)
    return metrics


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
    summary = ", ".join(f"{name} MAE {metrics['models'][name]['mae']:.3f}" for name in MODELS)
    print(f"price: {metrics['n']['train']} train / {metrics['n']['test']} test works; {summary}", file=sys.stderr)


if __name__ == "__main__":
    main()
