"""Stage `report`: results.md from small fake outputs of dataset_table, compare and evaluate."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from common import write_json
from model import price, report
from model.evaluate import FIGURE_NAMES
from tests.model.test_exp_fixtures import small_params, write_params

DATASET_MD = "# Dataset\n\n| artist | n_images |\n|---|---|\n| Anna Albers | 10 |\n| Bruno Berg | 12 |\n"


def fake_summary(dcec_nmi: float, pixels_nmi: float) -> dict:
    def cell(mean, std=0.01):
        return {"mean": mean, "std": std}

    def scores(nmi):
        return {"acc": cell(0.4321), "nmi_arithmetic": cell(nmi), "nmi_geometric": cell(nmi + 0.01),
                "ari": cell(0.1111), "purity": cell(0.5555), "silhouette": cell(0.2), "calinski_harabasz": cell(50.0)}

    def compared(diff, low, high, verdict):
        cell = {"diff_mean": diff, "ci_low": low, "ci_high": high, "n": 3, "verdict": verdict}
        return {key: cell for key in ("acc", "nmi_arithmetic", "nmi_geometric", "ari", "purity")}

    return {"k": 4, "seeds": [0, 1, 2], "n_seeds": 3, "n": 40,
            "methods": {"kmeans_pixels": scores(pixels_nmi), "pca_kmeans": scores(0.3),
                        "cae_kmeans": scores(0.35), "dcec": scores(dcec_nmi), "n2d": scores(0.6)},
            "comparisons": {"kmeans_pixels": compared(dcec_nmi - pixels_nmi, 0.2, 0.27, "better"),
                            "pca_kmeans": compared(0.1, 0.05, 0.15, "better"),
                            "cae_kmeans": compared(0.01, -0.02, 0.04, "no detectable difference"),
                            "n2d": compared(-0.1, -0.15, -0.05, "worse")},
            "convergence": {"dcec": {"runs": 3, "converged": 1, "n_iter": [8, 4, 8],
                                     "last_delta_label": [0.05, 0.0, 0.025]}},
            "tol_note": "cluster.tol 0.001 < 1/N = 0.025: a run converges only when no label at all changed; "
                        "below 1/N"}


def fake_sweep() -> pd.DataFrame:
    rows = []
    for method, sil, chs in (("cae_kmeans", [0.1234, 0.2345, 0.0456], [300.0, 600.0, 150.0]),
                             ("dcec", [0.7123, 0.8123, 0.9123], [9000.0, 4500.0, 3000.0])):
        for k, s, ch in zip((2, 3, 4), sil, chs):
            rows.append({"method": method, "k": k, "n_seeds": 1, "silhouette": s, "calinski_harabasz": ch,
                         "calinski_harabasz_rel": ch / max(chs), "acc": 0.5, "nmi_arithmetic": 0.4,
                         "nmi_geometric": 0.4, "ari": 0.2, "purity": 0.6})
    return pd.DataFrame(rows)


def fake_price(image_verdict: str = "better", experts_bias: float = 0.02) -> dict:
    def scores(mae):
        return {"mae": mae, "median_ae": mae - 0.05, "r2": 0.5, "within_estimate": 0.25, "spearman": None,
                "bias": 0.1, "n": 20}

    def compared(verdict):
        return {"diff_mean": -0.1, "ci_low": -0.2, "ci_high": 0.05, "n": 20, "n_sales": 6, "verdict": verdict}

    gap = {"r2": 0.12, "r2_ci": [0.03, 0.2], "spearman": 0.35, "spearman_ci": [0.1, 0.5], "n": 20, "n_sales": 6,
           "verdict": "yes"}
    models = {name: scores(0.9 - 0.1 * i) for i, name in enumerate(report.PRICE_TITLES)}
    models["experts"]["bias"] = experts_bias
    return {"status": "fitted",
            "n": {"final_works": 40, "eligible": 30, "excluded": {"withdrawn": 0, "unsold": 10, "no_price": 0,
                                                                  "no_estimate": 0},
                  "sale_days": 9, "train": 20, "validation": 5, "test": 10},
            "split_dates": {"train": ["2019-01-01", "2019-02-01"], "validation": ["2019-01-20", "2019-02-01"],
                            "test": ["2019-02-05", "2019-03-01"]},
            "target": "log US dollars at the sale date of the hammer price", "hammer_within_estimate": 0.3,
            "n_test_sales": 6, "settings": {"min_test_sales": 5},
            "premium_schedules": {"USD from 2019-02-01 (V)": 30},
            "models": models,
            "comparisons": {"hedonic vs mean": compared("better"), "hedonic_image vs hedonic": compared(image_verdict)},
            "experts_error": {"image": gap, "hedonic": {**gap, "verdict": "no detectable"}, "hedonic_image": gap},
            "choices": {"hedonic": {"chosen": "ridge alpha=1.0", "at_grid_edge": True}}}


@pytest.fixture
def outputs(tmp_path, monkeypatch):
    (tmp_path / "reports/compare").mkdir(parents=True)
    (tmp_path / "reports/dataset.md").write_text(DATASET_MD, encoding="utf-8")
    fake_sweep().to_csv(tmp_path / "reports/compare/sweep.csv", index=False)
    write_json(tmp_path / "reports/compare/summary.json", fake_summary(dcec_nmi=0.4567, pixels_nmi=0.2222))
    write_json(tmp_path / "reports/metrics.json",
               {"n": 40, "k": 4, "n_artists": 4, "n_nonempty_clusters": 4, "acc": 0.6789, "nmi_arithmetic": 0.5,
                "nmi_geometric": 0.51, "ari": 0.4, "purity": 0.7, "silhouette": 0.3, "calinski_harabasz": 77.7})
    write_json(tmp_path / "reports/price/metrics.json", fake_price())
    (tmp_path / "reports/figures").mkdir()
    for name in [*FIGURE_NAMES.values(), *report.PRICE_FIGURES]:
        (tmp_path / "reports/figures" / name).write_bytes(b"\x89PNG")
    write_params(tmp_path, small_params())
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_report_has_all_three_tables_with_the_input_numbers(outputs):
    report.main()
    text = (outputs / "reports/results.md").read_text(encoding="utf-8")
    for heading in ("## Table 1", "## Table 2", "## Table 3"):
        assert heading in text
    assert "### Dataset" in text and "| Anna Albers | 10 |" in text  # Table 1 embedded, heading demoted
    assert "0.2345" in text and "1.0000 (600)" in text and "0.2500 (150)" in text  # CH rel = abs / max over k
    assert "1.0000 (9000)" in text and "0.5000 (4500)" in text and "0.9123" in text
    assert "0.432 ± 0.010" in text and "0.457 ± 0.010" in text and "0.467 ± 0.010" in text
    assert "NMI (arithmetic)" in text and "NMI (geometric)" in text and "3 seeds (0, 1, 2)" in text
    assert "0.6789" in text  # the cluster stage's run
    for name in FIGURE_NAMES.values():
        assert f"(figures/{name})" in text
    assert "not comparable across methods" in text


def test_paper_values_appear_only_with_the_paper_profile(outputs):
    report.main()
    with_paper = (outputs / "reports/results.md").read_text(encoding="utf-8")
    assert "0.7929" in with_paper and "1.0000 (193882)" in with_paper and report.PAPER_SOURCE in with_paper
    params = small_params()
    params["report"]["paper_values"] = False
    write_params(outputs, params)
    report.main()
    without = (outputs / "reports/results.md").read_text(encoding="utf-8")
    assert "0.7929" not in without and "193882" not in without


def test_table2_rows_follow_the_sweep():
    table = report.table2(fake_sweep(), with_paper=False)
    lines = [line for line in table.splitlines() if line.startswith("| 2 ")]
    assert lines == ["| 2 | 0.1234 | 0.5000 (300) | 0.7123 | 1.0000 (9000) |"]


def test_comparisons_are_reported_with_intervals_and_verdicts(outputs):
    report.main()
    text = (outputs / "reports/results.md").read_text(encoding="utf-8")
    assert "## DCEC against each method, paired by seed" in text
    assert "[+0.200, +0.270] better" in text  # the pixels row
    assert "no detectable difference from CAE + k-means" in text and "better than k-means (raw pixels)" in text
    assert "| N2D (CAE → UMAP → GMM) | -0.100 [-0.150, -0.050] worse |" in text  # paired row, Table 3's below
    assert "| N2D (CAE → UMAP → GMM) | 0.432 ± 0.010 | 0.600 ± 0.010 |" in text and "worse than N2D" in text
    assert "**yes**" not in text  # no bare mean-versus-mean verdict
    assert "1 of 3 runs converged" in text and "below 1/N" in text


def test_provenance_says_demo_and_whether_params_match_the_tuned_choice(outputs):
    tuning = {"catalogue": {"demo_seed": 1007, "n_images": 300, "n_artists": 10}, "criterion": "NMI",
              "chosen": {"dcec": {"pretrain.epochs": 2, "cluster.weights": [0.9, 0.1]},
                         "deepcluster": {"deepcluster.sobel": True, "deepcluster.epochs": 2}}, "git_sha": "abc"}
    write_json(outputs / "reports/tuning/tuning.json", tuning)
    report.main()
    text = (outputs / "reports/results.md").read_text(encoding="utf-8")
    assert "synthetic embedded demo catalogue" in text and "demo.seed 1007" in text
    assert "params.yaml holds exactly that choice" in text
    tuning["chosen"]["dcec"]["pretrain.epochs"] = 200
    write_json(outputs / "reports/tuning/tuning.json", tuning)
    report.main()
    text = (outputs / "reports/results.md").read_text(encoding="utf-8")
    assert "differs from that choice in pretrain.epochs" in text and "NOT from the tuned settings" in text


def test_missing_figure_is_an_error(outputs):
    (outputs / "reports/figures" / FIGURE_NAMES["collage"]).unlink()
    with pytest.raises(FileNotFoundError, match="collage.png"):
        report.main()


def test_no_paired_section_when_dcec_was_not_compared(outputs):
    summary = fake_summary(0.4, 0.3)
    summary["comparisons"] = {}
    write_json(outputs / "reports/compare/summary.json", summary)
    report.main()
    text = (outputs / "reports/results.md").read_text(encoding="utf-8")
    assert "paired by seed" not in text and "## Table 3" in text


def test_a_bounded_pixel_kmeans_is_said_in_the_report():
    params = {"compare": {"pixels_kmeans_n_init": None}, "cluster": {"kmeans_n_init": 20}}
    assert report.restarts_note(params) == ""
    params["compare"]["pixels_kmeans_n_init"] = 1
    assert "raw pixels ran with 1 restart(s)" in report.restarts_note(params) and "with 20" in report.restarts_note(params)


def test_table4_and_whether_the_demos_planted_signal_was_recovered(outputs):
    report.main()
    text = (outputs / "reports/results.md").read_text(encoding="utf-8")
    assert "## Table 4 — hammer prices" in text and "| hedonic + image | 0.600 |" in text
    assert "ridge alpha=1.0 (edge of price.ridge_alphas)" in text
    assert "left out: 10 unsold" in text and "10 works in 6 sales" in text and "USD from 2019-02-01 (V): 30" in text
    assert "| the image | 0.120 [0.030, 0.200] | 0.350 [0.100, 0.500] | yes |" in text
    assert "the planted image signal was recovered." in text and "(near zero: the premium was taken off right)" in text
    missed = report.price_sentence(fake_price("no detectable difference", experts_bias=-0.25), "demo")
    assert "hedonic + image against hedonic: no detectable difference" in missed and "**not** recovered" in missed
    assert "**not** near zero: the premium inversion is wrong" in missed
    assert "planted" not in report.price_sentence(fake_price(), "live")


def test_a_skipped_price_stage_is_one_sentence_in_table4s_place():
    skipped = {"status": "skipped", "reason": "the works span 1 sale day(s): a time split needs at least two",
               "n": {"final_works": 40, "eligible": 30, "sale_days": 1}}
    lines = report.price_section(skipped, "live", Path("reports/figures"), Path("reports/results.md"))
    assert lines[1] == ("No price model on this crawl: the works span 1 sale day(s): a time split needs at least "
                        "two (30 of 40 final works sold with a price and an estimate, on 1 sale day(s)).")


def test_too_few_test_sales_is_said_beside_the_comparisons():
    few = {**fake_price(), "n_test_sales": 3}
    text = "\n".join(report.price_section(few, "live", Path("reports/figures"), Path("reports/results.md")))
    assert "the test split holds 3 sales, fewer than price.min_test_sales (5): too few for a verdict" in text




def test_the_first_sentence_about_methods_names_the_top_mean_and_dcec_against_n2d(outputs):
    report.main()
    text = (outputs / "reports/results.md").read_text(encoding="utf-8")
    table3_section = text[text.index("## Table 3"):]
    first = table3_section.splitlines()[2]
    assert first.startswith("Highest mean arithmetic NMI: N2D (CAE → UMAP → GMM) (0.600;")
    assert "DCEC loses to it (-0.100 [-0.150, -0.050] worse)" in first


def test_too_few_test_sales_on_the_demo_is_not_a_missed_plant():
    assert report.TOO_FEW_SALES_TEXT == price.TOO_FEW_SALES
    sentence = report.price_sentence(fake_price(price.TOO_FEW_SALES), "demo")
    assert "the planted image signal was not tested: too few sales for a verdict" in sentence
    assert "**not** recovered" not in sentence
