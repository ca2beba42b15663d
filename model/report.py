"""Stage `report`: `reports/results.md`, generated only from the pipeline's outputs (no number typed by hand).

    python -m model.report          # reads params.yaml: model, report

* Table 1 — the dataset (`reports/dataset.md`, written by curation), embedded;
* Table 2 — the k sweep in paap's layout: k | AS CAE+KMeans | CH CAE+KMeans rel (abs) | AS DCEC | CH DCEC
  rel (abs), from `reports/compare/sweep.csv`; with `report.paper_values: true` (the paper profile) the
  published values (`PAPER_TABLE2`) are printed beside ours;
* Table 3 — methods × artist-label metrics at k = model.k, mean ± std over seeds, from
  `reports/compare/summary.json`; then DCEC against every other method, paired by seed (mean difference,
  95% t-interval, verdict read off the interval), in a table and a sentence, and DCEC's convergence;
* where the data and the settings come from: the demo catalogue said plainly, and which settings were tuned
  on what (`reports/tuning/tuning.json`, made by `bench/tune_default.py` on another catalogue), checked
  against params.yaml;
* Table 4 — the price stage's models of the hammer price on the time-split test works
  (`reports/price/metrics.json`): error, R², rank correlation and bias per model beside Christie's experts,
  the paired comparisons with sale-resampled intervals, whether the image predicts the experts' error, a
  sentence (on the demo: whether the planted signals were recovered and the experts came out unbiased), and
  its figures; one sentence instead when the crawl was too narrow for a time split;
* the cluster stage's DCEC run (`reports/metrics.json`), how to read the numbers, and every figure.
"""

from __future__ import annotations

import json
import math
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from common import atomic_write, load_params
from model.evaluate import FIGURE_NAMES
from model.runtime import git_sha

# The params this stage reads (dvc.yaml declares exactly these; tests/test_dvc_params.py).
PARAMS = (
    "report", "scrape.site", "scrape.base_url", "demo.seed", "pretrain.epochs", "cluster.kl_weight",
    "cluster.recon_weight", "deepcluster.sobel", "deepcluster.epochs", "cluster.kmeans_n_init",
    "compare.pixels_kmeans_n_init"
)
REPORT_PATH = Path("reports/results.md")
DATASET_MD = Path("reports/dataset.md")
METRICS_JSON = Path("reports/metrics.json")
SUMMARY_JSON = Path("reports/compare/summary.json")
SWEEP_CSV = Path("reports/compare/sweep.csv")
TUNING_JSON = Path("reports/tuning/tuning.json")
PRICE_JSON = Path("reports/price/metrics.json")
CODE_PATHS = ("common", "scraper", "curation", "model", "params.yaml", "dvc.yaml")
FIGURES_DIR = Path("reports/figures")

# paap's published Table 2 (average silhouette AS and Calinski-Harabasz CH, relative to its maximum over k,
# absolute in brackets) on its 50-artist, 10,505-image Christie's set; 32-d embedding.
PAPER_SOURCE = "bradgwest/paap, write/paper.md, results table (as quoted in docs models.md §2.3)"
PAPER_TABLE2: dict[int, dict[str, float]] = {
    2: {"as_cae": 0.2090, "ch_rel_cae": 1.0000, "ch_cae": 3166, "as_dcec": 0.7929, "ch_rel_dcec": 0.4744, "ch_dcec": 91977},
    3: {"as_cae": 0.1426, "ch_rel_cae": 0.8219, "ch_cae": 2602, "as_dcec": 0.8280, "ch_rel_dcec": 1.0000, "ch_dcec": 193882},
    4: {"as_cae": 0.1028, "ch_rel_cae": 0.5754, "ch_cae": 1822, "as_dcec": 0.7750, "ch_rel_dcec": 0.4775, "ch_dcec": 92569},
    5: {"as_cae": 0.0934, "ch_rel_cae": 0.4496, "ch_cae": 1423, "as_dcec": 0.8073, "ch_rel_dcec": 0.5089, "ch_dcec": 98661},
    6: {"as_cae": 0.0819, "ch_rel_cae": 0.3705, "ch_cae": 1173, "as_dcec": 0.7834, "ch_rel_dcec": 0.3245, "ch_dcec": 62924},
    7: {"as_cae": 0.0884, "ch_rel_cae": 0.3784, "ch_cae": 1198, "as_dcec": 0.7863, "ch_rel_dcec": 0.3873, "ch_dcec": 75088},
    8: {"as_cae": 0.0811, "ch_rel_cae": 0.3301, "ch_cae": 1045, "as_dcec": 0.8702, "ch_rel_dcec": 0.9098, "ch_dcec": 176387},
    9: {"as_cae": 0.0463, "ch_rel_cae": 0.2369, "ch_cae": 750, "as_dcec": 0.8520, "ch_rel_dcec": 0.6518, "ch_dcec": 126363},
    10: {"as_cae": 0.0772, "ch_rel_cae": 0.2750, "ch_cae": 870, "as_dcec": 0.8284, "ch_rel_dcec": 0.4480, "ch_dcec": 86855},
}

LABEL_COLUMNS = (("acc", "ACC"), ("nmi_arithmetic", "NMI (arithmetic)"), ("nmi_geometric", "NMI (geometric)"),
                 ("ari", "ARI"), ("purity", "purity"))
METHOD_TITLES = {"kmeans_pixels": "k-means (raw pixels)", "pca_kmeans": "PCA + k-means", "cae_kmeans": "CAE + k-means",
                 "dcec": "DCEC", "dcec_no_kl": "DCEC without KL (control)", "deepcluster": "DeepCluster",
                 "n2d": "N2D (CAE → UMAP → GMM)"}
# Where each tuned setting lives in params.yaml (tuning.json's candidate keys → (section, key) pairs).
TUNED_PARAMS = {"pretrain.epochs": [("pretrain", "epochs")],
                "cluster.weights": [("cluster", "kl_weight"), ("cluster", "recon_weight")],
                "deepcluster.sobel": [("deepcluster", "sobel")], "deepcluster.epochs": [("deepcluster", "epochs")]}
FIGURE_TITLES = {"tsne_clusters": "t-SNE of the DCEC embedding, coloured by cluster",
                 "tsne_artists": "t-SNE of the DCEC embedding, coloured by artist",
                 "heatmap": "artist × cluster contingency heat-map",
                 "collage": "sample images per cluster",
                 "curves": "DCEC training curves (loss, delta_label, ACC/NMI over the P updates)"}

PRICE_TITLES = {"mean": "training mean (the floor)", "experts": "Christie's experts (the estimate's geometric mean)",
                "hedonic": "hedonic", "hedonic_image": "hedonic + image", "image": "image only"}
PRICE_SHORT = {"mean": "the training mean", "experts": "the experts", "hedonic": "hedonic",
               "hedonic_image": "hedonic + image", "image": "image only"}
TOO_FEW_SALES_TEXT = "too few sales for a verdict"   # model/price.py's TOO_FEW_SALES (report reads only JSON)
GAP_FEATURES = {"hedonic": "the catalogue", "hedonic_image": "the catalogue and the image", "image": "the image"}
PRICE_FIGURES = {"price_scatter.png": "predicted against hammer price, test works",
                 "price_artist_error.png": "price error per artist, test works"}

HOW_TO_READ = (
    "**How to read this.** ACC is one-to-one: each cluster is matched to at most one artist (Hungarian "
    "matching), so surplus clusters or artists count as errors. Purity is many-to-one: every cluster votes for "
    "its majority artist, so it rises with k and must be read together with k. NMI is given with both "
    "normalisations: arithmetic (I/((H(Y)+H(C))/2), scikit-learn's default since 0.22, equal to V-measure) and "
    "geometric (I/√(H(Y)·H(C)), the 2017 DCEC/DEC and DeepCluster convention); they differ when k ≠ the number "
    "of artists. ARI is chance-corrected and can be negative. Silhouette (AS) and Calinski-Harabasz (CH) are "
    "computed in each method's own embedding, so they compare k values within one method but are **not "
    "comparable across methods** (DCEC's training pulls its own embedding into tight clusters). "
    "All clusterings are unsupervised; the artist labels are used only for scoring."
)


def fmt(value: float | None, digits: int = 4) -> str:
    """A number for a table cell; '—' for missing or undefined values."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:.{digits}f}"


def fmt_mean_std(cell: Mapping[str, float | None] | None, digits: int = 3) -> str:
    if not cell or cell.get("mean") is None:
        return "—"
    return f"{cell['mean']:.{digits}f} ± {cell['std']:.{digits}f}"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def demote_headings(markdown: str, levels: int = 2) -> str:
    """Push every ATX heading of an embedded document down `levels` levels (so '# X' becomes '### X')."""
    return "\n".join("#" * levels + line if line.startswith("#") else line for line in markdown.splitlines())


def ch_cell(relative: float | None, absolute: float | None) -> str:
    """'rel (abs)' as in paap's Table 2."""
    if absolute is None or (isinstance(absolute, float) and math.isnan(absolute)):
        return "—"
    return f"{fmt(relative)} ({absolute:.0f})"


def sweep_rows(sweep: pd.DataFrame) -> dict[int, dict[str, float]]:
    """{k: {as_cae, ch_rel_cae, ch_cae, as_dcec, ch_rel_dcec, ch_dcec}} from sweep.csv (NaN where absent)."""
    out: dict[int, dict[str, float]] = {}
    for record in sweep.to_dict("records"):
        suffix = {"cae_kmeans": "cae", "dcec": "dcec"}.get(record["method"])
        if suffix is None:
            continue
        row = out.setdefault(int(record["k"]), {})
        row[f"as_{suffix}"] = record["silhouette"]
        row[f"ch_rel_{suffix}"] = record["calinski_harabasz_rel"]
        row[f"ch_{suffix}"] = record["calinski_harabasz"]
    return out


def table2(sweep: pd.DataFrame, with_paper: bool) -> str:
    """The k sweep in paap's layout; paper columns beside ours when `with_paper`."""
    ours = sweep_rows(sweep)
    header = ["k", "AS CAE+KMeans", "CH CAE+KMeans rel (abs)", "AS DCEC", "CH DCEC rel (abs)"]
    if with_paper:
        header = ["k", "AS CAE+KMeans", "paper", "CH CAE+KMeans rel (abs)", "paper", "AS DCEC", "paper",
                  "CH DCEC rel (abs)", "paper"]
    rows = []
    for k in sorted(ours):
        row = ours[k]
        cells = {"as_cae": fmt(row.get("as_cae")), "ch_cae": ch_cell(row.get("ch_rel_cae"), row.get("ch_cae")),
                 "as_dcec": fmt(row.get("as_dcec")), "ch_dcec": ch_cell(row.get("ch_rel_dcec"), row.get("ch_dcec"))}
        if not with_paper:
            rows.append([str(k), cells["as_cae"], cells["ch_cae"], cells["as_dcec"], cells["ch_dcec"]])
            continue
        paper = PAPER_TABLE2.get(k)
        published = {"as_cae": "—", "ch_cae": "—", "as_dcec": "—", "ch_dcec": "—"} if paper is None else {
            "as_cae": fmt(paper["as_cae"]), "ch_cae": ch_cell(paper["ch_rel_cae"], paper["ch_cae"]),
            "as_dcec": fmt(paper["as_dcec"]), "ch_dcec": ch_cell(paper["ch_rel_dcec"], paper["ch_dcec"])}
        rows.append([str(k)] + [cell for key in ("as_cae", "ch_cae", "as_dcec", "ch_dcec")
                                for cell in (cells[key], published[key])])
    return markdown_table(header, rows)


def table3(summary: Mapping) -> str:
    """Methods × artist-label metrics, mean ± std over the comparison seeds."""
    header = ["method"] + [title for _, title in LABEL_COLUMNS]
    rows = [[METHOD_TITLES.get(method, method)] + [fmt_mean_std(scores.get(key)) for key, _ in LABEL_COLUMNS]
            for method, scores in summary["methods"].items()]
    return markdown_table(header, rows)


def signed(value: float | None) -> str:
    return "—" if value is None else f"{value:+.3f}"


def comparison_cell(cell: Mapping) -> str:
    """'+0.012 [−0.003, +0.027] no detectable difference' for one paired comparison."""
    if cell.get("ci_low") is None:
        return f"{signed(cell.get('diff_mean'))} (n = {cell['n']}: no interval) {cell['verdict']}"
    return f"{signed(cell['diff_mean'])} [{signed(cell['ci_low'])}, {signed(cell['ci_high'])}] {cell['verdict']}"


def comparisons_table(summary: Mapping) -> str:
    """DCEC minus each other method, per label metric: mean difference, 95% interval, verdict."""
    header = ["DCEC vs"] + [title for _, title in LABEL_COLUMNS]
    rows = [[METHOD_TITLES.get(other, other)] + [comparison_cell(cells[key]) for key, _ in LABEL_COLUMNS]
            for other, cells in summary["comparisons"].items()]
    return markdown_table(header, rows)


def paired_section(summary: Mapping) -> list[str]:
    """The paired comparisons (heading, note, table, sentence); nothing when DCEC was not compared."""
    if not summary.get("comparisons"):
        return []
    return ["## DCEC against each method, paired by seed",
            "DCEC minus the other method, per seed; mean difference and 95% Student t-interval over the seeds, and "
            "the verdict the interval gives. Each interval is a per-comparison 95% interval (no correction for "
            "the number of comparisons): with this many cells, expect an occasional 'better' or 'worse' by chance, "
            "so read a verdict together with its interval and the other metrics.",
            comparisons_table(summary), comparisons_sentence(summary)]


def methods_headline(summary: Mapping, metric: str = "nmi_arithmetic", rival: str = "n2d") -> str:
    """The first sentence about methods: the highest mean on `metric`, and DCEC against the strongest simple
    rival (N2D on the same CAE) by its paired interval: whether DCEC's joint training beats clustering the
    manifold of the same embedding."""
    means = {method: scores[metric]["mean"] for method, scores in summary["methods"].items()
             if scores.get(metric, {}).get("mean") is not None}
    if not means:
        return ""
    top = max(means, key=means.get)
    text = (f"Highest mean arithmetic NMI: {METHOD_TITLES.get(top, top)} ({means[top]:.3f}; a mean, not a verdict: "
            "the paired comparisons below give those).")
    cell = summary["comparisons"].get(rival, {}).get(metric)
    if cell:
        reading = {"better": "DCEC beats", "worse": "DCEC loses to"}.get(
            cell["verdict"], "DCEC shows no detectable difference from")
        text += (f" Against the strongest simple rival, {METHOD_TITLES.get(rival, rival)} on the same CAE: "
                 f"{reading} it ({comparison_cell(cell)}).")
    return text


def comparisons_sentence(summary: Mapping, metric: str = "nmi_arithmetic") -> str:
    """One sentence per verdict on `metric`, every method named: the reading of Table 3 in words."""
    by_verdict: dict[str, list[str]] = {}
    for other, cells in summary["comparisons"].items():
        by_verdict.setdefault(cells[metric]["verdict"], []).append(METHOD_TITLES.get(other, other))
    n = max((cells[metric]["n"] for cells in summary["comparisons"].values()), default=0)
    parts = [f"is {verdict} than {', '.join(names)}" if verdict in ("better", "worse")
             else f"shows {verdict} from {', '.join(names)}" for verdict, names in by_verdict.items()]
    return (f"On arithmetic NMI over {n} paired seeds, DCEC " + "; ".join(parts) + " (95% t-intervals of the "
            "per-seed differences; a verdict is 'better' or 'worse' only when the interval excludes 0).")


def convergence_text(summary: Mapping) -> str:
    """Per joint-phase method: runs converged by tol, iterations used, last delta_label; what tol means here."""
    lines = []
    for method, facts in summary.get("convergence", {}).items():
        deltas = ", ".join(f"{value:.4f}" for value in facts["last_delta_label"])
        lines.append(f"- {METHOD_TITLES.get(method, method)}: {facts['converged']} of {facts['runs']} runs converged; "
                     f"iterations used {', '.join(map(str, facts['n_iter']))}; last delta_label {deltas}.")
    if not lines:
        return ""
    note = f" {summary['tol_note']}." if summary.get("tol_note") else ""
    return "**Convergence** (the joint phase stops when fewer than `cluster.tol` of the labels changed between two " \
           f"P updates, else at `cluster.maxiter`).{note}\n\n" + "\n".join(lines)


def provenance_text(params: Mapping, tuning: Mapping | None) -> str:
    """Where the data and the settings come from, in plain words, checked against params.yaml."""
    site = params["scrape"]["site"]
    data = (f"**Data.** The synthetic embedded demo catalogue (`scrape.site: demo`, `demo.seed` "
            f"{params['demo']['seed']}): procedurally drawn works by invented artists, not Christie's. These "
            f"numbers test the pipeline; they say nothing about real artists." if site == "demo" else
            f"**Data.** Christie's public results crawled from `{params['scrape']['base_url']}` "
            f"(`scrape.site: {site}`).")
    if tuning is None:
        return data + " **Settings.** No tuning record (`reports/tuning/tuning.json`): the settings are as given."
    catalogue = tuning["catalogue"]
    chosen = [f"{key} = {value}" for family in tuning["chosen"].values() for key, value in family.items()]
    mismatches = [f"{section}.{key}" for family in tuning["chosen"].values() for name, value in family.items()
                  for (section, key), expected in zip(TUNED_PARAMS[name], value if isinstance(value, list) else [value])
                  if params[section][key] != expected]
    check = ("params.yaml holds exactly that choice." if not mismatches else
             f"params.yaml differs from that choice in {', '.join(mismatches)}: these results are NOT from the "
             f"tuned settings.")
    return (data + f" **Settings.** Tuned without these labels: on a separate tuning catalogue (demo.seed "
            f"{catalogue['demo_seed']}: another draw of the same generator, {catalogue['n_images']} images of "
            f"{catalogue['n_artists']} artists with other works and styles; names come from one pool and may recur), "
            f"by {tuning['criterion']}, the protocol of docs/VERIFICATION.md chose " + "; ".join(chosen) +
            f" (commit {str(tuning.get('git_sha'))[:10]}). " + check + " Every other setting is the published "
            "one (Guo et al.'s DCEC, Caron et al.'s DeepCluster, scaled down as params.yaml notes) or fixed for "
            "running time, never chosen by the evaluation labels.")


def restarts_note(params: Mapping) -> str:
    """A sentence when k-means on raw pixels had fewer (or more) restarts than every other k-means."""
    pixels, others = params["compare"]["pixels_kmeans_n_init"], params["cluster"]["kmeans_n_init"]
    if pixels is None or pixels == others:
        return ""
    return (f" **Restarts.** k-means on raw pixels ran with {pixels} restart(s) (`compare.pixels_kmeans_n_init`), "
            f"every other k-means with {others} (`cluster.kmeans_n_init`): a bound on running time, which makes "
            "that baseline weaker than the others, not stronger.")


def table4(price: Mapping) -> str:
    """Per price model on the test works: MAE, median AE, R², share inside the estimate, Spearman, bias."""
    header = ["model", "MAE", "median AE", "R²", "inside the estimate", "Spearman ρ", "bias", "chosen on validation"]
    rows = [[PRICE_TITLES.get(name, name), fmt(m["mae"], 3), fmt(m["median_ae"], 3), fmt(m["r2"], 3),
             f"{m['within_estimate']:.0%}", fmt(m["spearman"], 3), signed(m["bias"]),
             chosen_cell(price["choices"].get(name))] for name, m in price["models"].items()]
    return markdown_table(header, rows)


def chosen_cell(choice: Mapping | None) -> str:
    """The candidate the validation slice chose, flagged when it is a ridge strength at the grid's edge."""
    if not choice:
        return "—"
    return choice["chosen"] + (" (edge of price.ridge_alphas)" if choice.get("at_grid_edge") else "")


def price_comparisons_table(price: Mapping) -> str:
    """Each paired comparison of two price models: MAE difference, sale-resampled interval, verdict."""
    header = ["model vs", "MAE difference [95% interval over sales], verdict"]
    rows = []
    for pair, cell in price["comparisons"].items():
        model, against = pair.split(" vs ")
        rows.append([f"{PRICE_TITLES.get(model, model)} vs {PRICE_TITLES.get(against, against)}", comparison_cell(cell)])
    return markdown_table(header, rows)


def interval_cell(value: float | None, interval: Sequence[float | None] | None) -> str:
    if not interval or interval[0] is None:
        return fmt(value, 3)
    return f"{fmt(value, 3)} [{fmt(interval[0], 3)}, {fmt(interval[1], 3)}]"


def experts_error_table(price: Mapping) -> str:
    """Models of the experts' error on the test works: out-of-sample R², Spearman, intervals, verdict."""
    header = ["features", "R² against the training mean [95% interval over sales]", "Spearman ρ [interval]",
              "carries what the estimate left out"]
    rows = [[GAP_FEATURES.get(name, name), interval_cell(cell["r2"], cell["r2_ci"]),
             interval_cell(cell["spearman"], cell["spearman_ci"]), cell["verdict"]]
            for name, cell in price["experts_error"].items()]
    return markdown_table(header, rows)


def price_sentence(price: Mapping, site: str) -> str:
    """The reading of Table 4: hammer against hammer; does the image add to the hedonic model and does it
    predict the experts' error; on the demo, were the plants found and are the experts unbiased."""
    verdicts = {tuple(pair.split(" vs ")): cell["verdict"] for pair, cell in price["comparisons"].items()}
    reading = "On the test works, by mean absolute error: " + "; ".join(
        f"{PRICE_SHORT.get(model, model)} against {PRICE_SHORT.get(against, against)}: {verdict}"
        for (model, against), verdict in verdicts.items()) + "."
    image_gap = price["experts_error"]["image"]["verdict"]
    reading += f" Does the image predict the experts' error (R² above 0 by its interval over sales)? {image_gap}."
    if site != "demo":
        return reading
    plants = (verdicts[("hedonic_image", "hedonic")], verdicts[("hedonic", "mean")])
    found = ("recovered" if plants == ("better", "better") else
             f"not tested: {TOO_FEW_SALES_TEXT}" if TOO_FEW_SALES_TEXT in plants else
             "**not** recovered — the stage or the embedding missed it")
    bias = price["models"]["experts"]["bias"]
    return reading + (
        " On the demo the prices follow a planted model with a quality only the picture shows (docs/PRICE.md): "
        f"the planted image signal was {found}" +
        f". Its experts are unbiased by construction and see half of that quality, so the image predicts their "
        f"error by construction (found: {image_gap}); their bias on hammer prices is {signed(bias)} "
        + ("(near zero: the premium was taken off right)." if abs(bias) < 0.15 else
           "— **not** near zero: the premium inversion is wrong."))


def price_section(price: Mapping, site: str, figures_dir: Path, report_path: Path) -> list[str]:
    """Table 4 with its notes, comparisons, the experts' error models and figures; one sentence when the
    price stage could not fit (a crawl too narrow for a time split)."""
    n = price["n"]
    title = "## Table 4 — hammer prices: the catalogue, the image and Christie's experts"
    if price.get("status") == "skipped":
        return [title, f"No price model on this crawl: {price['reason']} ({n['eligible']} of {n['final_works']} "
                       f"final works sold with a price and an estimate, on {n['sale_days']} sale day(s))."]
    dates = price["split_dates"]
    excluded = ", ".join(f"{count} {reason.replace('_', ' ')}" for reason, count in n["excluded"].items() if count)
    few = price["n_test_sales"] < price["settings"]["min_test_sales"]
    return [
        title,
        f"Target: {price['target']}, so that the models and the experts' (hammer) estimate stand on one footing; "
        f"errors in natural-log points (0.10 ≈ 10%). Split by time, never at random: "
        f"{n['train']} works sold {dates['train'][0]} to {dates['train'][1]} train (the {n['validation']} of "
        f"{dates['validation'][0]} onwards choose each model's family and strength), {n['test']} works in "
        f"{price['n_test_sales']} sales from {dates['test'][0]} to {dates['test'][1]} test. {n['eligible']} of "
        f"{n['final_works']} final works sold with a price and an estimate" + (f"; left out: {excluded}" if excluded
                                                                            else "") +
        f". On the test works {price['hammer_within_estimate']:.0%} of hammer prices fell inside the estimate. "
        "The image features are the `cluster` stage's DCEC embedding and cluster (one pretraining seed, base.seed), "
        "fitted transductively on every final picture (test works' included, never their prices). Premium "
        "schedules used (common/buyers_premium.csv, confidence in brackets): " +
        "; ".join(f"{label}: {count}" for label, count in price["premium_schedules"].items()) + ".",
        table4(price),
        "Paired on the same test works: mean absolute error of the first minus the second (negative: the first "
        "errs less), 95% percentile bootstrap interval that resamples whole **sales** (works of one sale share "
        "its market), and the verdict it gives" + (f" — the test split holds {price['n_test_sales']} sales, fewer "
                                                   f"than price.min_test_sales ({price['settings']['min_test_sales']}"
                                                   "): too few for a verdict" if few else "") + ".",
        price_comparisons_table(price),
        "What the estimate leaves out: log(hammer / the experts' estimate) modelled on the training works from the "
        "image, the catalogue and both, scored on the test works against the training mean of that error "
        "(R² above 0: the features predict where the experts go wrong).",
        experts_error_table(price), price_sentence(price, site),
        figure_links(figures_dir, report_path, PRICE_FIGURES, "price"),
    ]


def dcec_run_table(metrics: Mapping) -> str:
    """The cluster stage's single DCEC run (reports/metrics.json)."""
    keys = [("acc", "ACC"), ("nmi_arithmetic", "NMI (arithmetic)"), ("nmi_geometric", "NMI (geometric)"),
            ("ari", "ARI"), ("purity", "purity"), ("silhouette", "AS"), ("calinski_harabasz", "CH")]
    header = ["n", "k", "artists", "non-empty clusters"] + [title for _, title in keys]
    row = [str(metrics["n"]), str(metrics["k"]), str(metrics["n_artists"]), str(metrics["n_nonempty_clusters"])]
    row += [fmt(metrics.get(key), 1 if key == "calinski_harabasz" else 4) for key, _ in keys]
    return markdown_table(header, [row])


def figure_links(figures_dir: Path, report_path: Path, titles: Mapping[str, str], stage: str) -> str:
    """Every figure of `titles` (file name → title) embedded under its title, paths relative to the report;
    each must exist (made by `stage`)."""
    lines = []
    for name, title in titles.items():
        path = figures_dir / name
        if not path.is_file():
            raise FileNotFoundError(f"{path}: not found (made by the '{stage}' stage: dvc repro {stage})")
        lines.append(f"**{title}**\n\n![{title}]({path.relative_to(report_path.parent).as_posix()})")
    return "\n\n".join(lines)


def build_report(dataset_md: str, sweep: pd.DataFrame, summary: Mapping, metrics: Mapping, figures_md: str,
                 with_paper: bool, provenance: str, revision: str, price_md: Sequence[str] = ()) -> str:
    """The whole results.md as text."""
    sweep_seeds = sorted({int(n) for n in sweep["n_seeds"]}) if len(sweep) else []
    seeds_note = f"mean over {', '.join(map(str, sweep_seeds))} seed(s) per k" if sweep_seeds else "no runs"
    paper_note = (f"Columns headed “paper” are the published values of {PAPER_SOURCE}; they were obtained on "
                  "paap's own 50-artist set, so only trends over k are comparable." if with_paper else
                  "Published values are shown only with the paper profile (params `report.paper_values: true`).")
    sections = [
        "# Results",
        f"Generated by `python -m model.report` from the pipeline's outputs at commit {revision}; do not edit by "
        "hand.",
        provenance,
        "## Table 1 — dataset", demote_headings(dataset_md.strip()),
        "## Table 2 — number of clusters k: internal metrics",
        f"Average silhouette (AS) and Calinski-Harabasz (CH, relative to its maximum over k, absolute in brackets) "
        f"of CAE+k-means and DCEC, each in its own embedding; {seeds_note}. {paper_note}",
        table2(sweep, with_paper),
        f"## Table 3 — methods at k = {summary['k']}: agreement with the artists",
        methods_headline(summary),
        f"Mean ± sample standard deviation over {summary['n_seeds']} seeds ({', '.join(map(str, summary['seeds']))}); "
        f"not best-of. Seed s seeds everything random in a run, pretraining included: CAE + k-means, N2D, DCEC and "
        f"its control of seed s start from the same CAE pretrained with seed s. n = {summary['n']} images. NMI "
        "averages: arithmetic and geometric, as labelled.",
        table3(summary),
        *paired_section(summary),
        convergence_text(summary),
        *price_md,
        "## The DCEC run of the `cluster` stage", dcec_run_table(metrics),
        HOW_TO_READ,
        "## Figures", figures_md,
    ]
    return "\n\n".join(section for section in sections if section) + "\n"


def working_tree_revision() -> str:
    """The commit the outputs came from, marked when the code or settings had uncommitted changes (the
    pipeline's own outputs, dvc.lock and reports/, are expected to be newer than the commit)."""
    sha = git_sha()
    if sha is None:
        return "unknown (not a git checkout)"
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", *CODE_PATHS],
                           capture_output=True, text=True).stdout.strip()
    return f"`{sha[:10]}`" + (" plus uncommitted changes to the code or settings" if dirty else "")


def read_text(path: Path, stage: str) -> str:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found (made by the '{stage}' stage: dvc repro {stage})")
    return path.read_text(encoding="utf-8")


def main() -> None:
    params = load_params(keys=PARAMS)
    with_paper = bool(params["report"]["paper_values"])
    dataset_md = read_text(DATASET_MD, "dataset_table")
    summary = json.loads(read_text(SUMMARY_JSON, "compare"))
    metrics = json.loads(read_text(METRICS_JSON, "evaluate"))
    read_text(SWEEP_CSV, "compare")
    sweep = pd.read_csv(SWEEP_CSV)
    tuning = json.loads(TUNING_JSON.read_text(encoding="utf-8")) if TUNING_JSON.is_file() else None
    price = json.loads(read_text(PRICE_JSON, "price"))
    evaluation_figures = {FIGURE_NAMES[key]: FIGURE_TITLES[key] for key in FIGURE_NAMES}
    text = build_report(dataset_md, sweep, summary, metrics,
                        figure_links(FIGURES_DIR, REPORT_PATH, evaluation_figures, "evaluate"), with_paper,
                        provenance_text(params, tuning) + restarts_note(params), working_tree_revision(),
                        price_section(price, params["scrape"]["site"], FIGURES_DIR, REPORT_PATH))
    with atomic_write(REPORT_PATH) as fh:
        fh.write(text)


if __name__ == "__main__":
    main()
