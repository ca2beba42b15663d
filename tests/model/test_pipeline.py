"""Integration: the model stages in dvc.yaml order (pretrain → cluster → evaluate → compare → price → report) on a tiny
synthetic dataset in a temporary repository root, each through its own entry point, then checks that every
declared output exists and that the tables, metrics and report agree with each other and with labels.csv.

The chain runs once per module (module-scoped fixture); each test checks one output family, so a failure
names what broke. The params are the repository's params.yaml with tiny overrides (`TINY_OVERRIDES`), so a
new required setting in params.yaml reaches this test without editing it.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from model import cluster, compare, evaluate, pretrain, price, report
from model.metrics import cluster_acc, nmi

REPO_ROOT = Path(__file__).resolve().parents[2]
MODEL_STAGES = ("pretrain", "cluster", "evaluate", "compare", "price", "report")

SIDE = 16
PER_ARTIST = 8
# Four "artists", each with its own motif and palette; rows are interleaved so no stage can lean on the order.
ARTISTS = ("Anna Albers", "Bruno Berg", "Carla Cruz", "Dario Dorn")
N = PER_ARTIST * len(ARTISTS)
K = len(ARTISTS)

# Tiny settings on top of the repository's params.yaml (section → key → value). cluster.batch_size divides N
# on purpose: the last batch of a pass is then full, the edge case of Guo's sequential batching.
TINY_OVERRIDES = {
    "base": {"seed": 0},
    "model": {"k": K, "embedding": 8, "filters": [8, 16, 32], "kernels": [5, 5, 3], "device": "cpu",
              "compile": False, "mixed_precision": "off", "keep_freed_memory": False, "eval_batch_size": 64},
    "pretrain": {"epochs": 3, "batch_size": 8, "lr": 0.001},
    "cluster": {"batch_size": 8, "maxiter": 20, "update_interval": 5, "kmeans_n_init": 3},
    "deepcluster": {"k_train": 8, "epochs": 2, "reassign": 1, "batch_size": 8, "feature_batch_size": 32,
                    "pca_dim": 8, "kmeans_iter": 10, "kmeans_n_init": 2,
                    "arch": {"widths": [8, 16, 16, 32], "first_kernel": 5, "first_stride": 2, "pool_size": 2,
                             "hidden": 32, "dropout": 0.5}},
    "compare": {"seeds": [0, 1], "sweep_ks": [2, 3], "sweep_seeds": [0], "pca_components": 8},
    "evaluate": {"tsne_perplexity": 5, "collage_per_cluster": 4},
    "report": {"paper_values": False},
}


def tiny_params() -> dict:
    """The repository's params.yaml with `TINY_OVERRIDES` applied key by key (other settings untouched)."""
    params = yaml.safe_load((REPO_ROOT / "params.yaml").read_text(encoding="utf-8"))
    for section, values in TINY_OVERRIDES.items():
        params.setdefault(section, {}).update(values)
    return params


def motif(artist_id: int, rng: np.random.Generator) -> np.ndarray:
    """One (SIDE, SIDE, 3) uint8 image in the style of artist `artist_id`: horizontal stripes, vertical
    stripes, a checkerboard or a diagonal gradient, each in its own palette, with a random phase and noise."""
    y, x = np.mgrid[0:SIDE, 0:SIDE]
    phase = int(rng.integers(0, 4))
    pattern = {
        0: ((y + phase) // 2) % 2,
        1: ((x + phase) // 2) % 2,
        2: (((x + phase) // 4) + ((y + phase) // 4)) % 2,
        3: (x + y + phase) / (2 * SIDE + 4),
    }[artist_id].astype(np.float64)  # (S, S) in [0, 1]
    palettes = {0: ((200, 30, 30), (250, 200, 180)), 1: ((20, 120, 40), (180, 240, 120)),
                2: ((20, 20, 120), (120, 160, 250)), 3: ((120, 100, 0), (250, 240, 80))}
    dark, light = (np.array(c, dtype=np.float64) for c in palettes[artist_id])
    image = dark + pattern[..., None] * (light - dark)  # (S, S, 3)
    image += rng.normal(0.0, 8.0, size=image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def write_final_data(root: Path) -> tuple[np.ndarray, pd.DataFrame]:
    """data/final/images.npy and labels.csv as the `images` stage writes them (contract in docs/CONTRACTS.md)."""
    rng = np.random.default_rng(0)
    artist_ids = np.tile(np.arange(K), PER_ARTIST)  # 0,1,2,3,0,1,... (artist_id = order of artist name)
    images = np.stack([motif(int(a), rng) for a in artist_ids])  # (N, S, S, 3) uint8
    labels = pd.DataFrame({"row": np.arange(N), "lot_key": [f"www-27901-{1000 + i}" for i in range(N)],
                           "artist": [ARTISTS[a] for a in artist_ids], "artist_id": artist_ids,
                           "kind": ["painting", "print"] * (N // 2)})
    (root / "data/final").mkdir(parents=True)
    np.save(root / "data/final/images.npy", images)
    labels.to_csv(root / "data/final/labels.csv", index=False)
    return images, labels


def write_lot_table(root: Path, labels: pd.DataFrame) -> None:
    """data/interim/lots.parquet with the sale and price columns the price stage reads: eight sale days,
    two currencies, a price level per artist, one unsold work."""
    rng = np.random.default_rng(1)
    level = 8.0 + labels["artist_id"].to_numpy() * 0.7 + rng.normal(0, 0.3, N)
    currency = np.where(np.arange(N) % 2 == 0, "USD", "GBP")
    local = np.exp(level) * np.where(currency == "GBP", 0.78, 1.0)
    days = [f"2019-02-{1 + i % 8:02d}" for i in range(N)]
    lots = pd.DataFrame({
        "lot_key": labels["lot_key"], "sale_id": [f"{day}-{c}" for day, c in zip(days, currency)],
        "sale_title": "Day Sale", "sale_date": days, "sale_start_date": days,
        "sale_location": np.where(currency == "USD", "New York", "London"), "sale_kind": "live",
        "currency": currency, "price_realised": pd.array(np.round(local), dtype="Float64"),
        "estimate_low": np.round(local * 0.7), "estimate_high": np.round(local * 1.1),
        "sold": np.arange(N) != 5, "withdrawn": False, "height_cm": 50.0, "width_cm": 40.0,
    })
    lots.loc[5, "price_realised"] = pd.NA
    (root / "data/interim").mkdir(parents=True)
    lots.to_parquet(root / "data/interim/lots.parquet", index=False)


def write_dataset_table(root: Path, labels: pd.DataFrame) -> None:
    """reports/dataset.md in the layout of curation's dataset_table stage (Table 1; the report embeds it)."""
    rows = [f"| {artist} | {len(group)} | 1900 |  | {', '.join(sorted(set(group['kind'])))} |"
            for artist, group in labels.groupby("artist")]
    text = (f"# Dataset\n\n{len(labels)} images of {labels['artist'].nunique()} artists.\n\n"
            "| Artist | Images | Born | Died | Kinds |\n|---|---:|---:|---:|---|\n"
            + "\n".join(rows) + f"\n| **Total** | **{len(labels)}** |  |  |  |\n")
    (root / "reports").mkdir(parents=True, exist_ok=True)
    (root / "reports/dataset.md").write_text(text, encoding="utf-8")


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> dict:
    """Run the model stages once in a temporary repository root; return root, params and labels."""
    root = tmp_path_factory.mktemp("repo")
    params = tiny_params()
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
    _, labels = write_final_data(root)
    write_lot_table(root, labels)
    write_dataset_table(root, labels)
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        pretrain.main([])
        cluster.main([])
        evaluate.main()
        compare.main()
        price.main()
        report.main()
    return {"root": root, "params": params, "labels": labels}


def dvc_paths(entries: list) -> list[str]:
    """Paths of a dvc.yaml outs/metrics/plots list, whose items are a path or {path: options}."""
    return [next(iter(entry)) if isinstance(entry, dict) else entry for entry in entries]


def declared_model_outputs() -> list[str]:
    """Every output, metric and plot dvc.yaml declares for the model stages, plus the top-level metrics and
    plots that lie inside one of them (the dvclive folders)."""
    dvc = yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text(encoding="utf-8"))
    paths = []
    for name in MODEL_STAGES:
        stage = dvc["stages"][name]
        for field in ("outs", "metrics", "plots"):
            paths += dvc_paths(stage.get(field, []))
    stage_paths = list(paths)
    for field in ("metrics", "plots"):
        paths += [p for p in dvc_paths(dvc.get(field, []))
                  if any(p == s or p.startswith(s.rstrip("/") + "/") for s in stage_paths)]
    return paths


def assert_unit_interval(frame: pd.DataFrame, columns, low: float = 0.0, where: str = "") -> None:
    for column in columns:
        values = frame[column].to_numpy(dtype=float)
        assert np.isfinite(values).all(), f"{where}: {column} has NaN/inf: {values}"
        assert ((values >= low) & (values <= 1.0)).all(), f"{where}: {column} outside [{low}, 1]: {values}"


def section(markdown: str, heading: str) -> str:
    """The text from the `## heading…` line up to the next level-2 heading."""
    start = markdown.index(f"## {heading}")
    following = markdown.find("\n## ", start + 3)
    return markdown[start:] if following < 0 else markdown[start:following]


def table_rows(markdown: str) -> list[list[str]]:
    """Cells of every Markdown table body row in `markdown` (header and separator rows dropped)."""
    lines = [line for line in markdown.splitlines() if line.startswith("|")]
    cells = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]
    separators = {i for i, row in enumerate(cells) if all(cell and set(cell) <= set("-:") for cell in row)}
    headers = {i - 1 for i in separators}
    return [row for i, row in enumerate(cells) if i not in separators | headers]


def test_every_output_declared_in_dvc_yaml_exists(run):
    declared = declared_model_outputs()
    assert "models/cae.pt" in declared and "reports/results.md" in declared  # the parse found the stages
    missing = [path for path in declared if not (run["root"] / path).exists()]
    assert not missing, f"declared in dvc.yaml but not written: {missing}"
    for path in declared:
        target = run["root"] / path
        if target.is_dir():
            assert any(p.is_file() for p in target.rglob("*")), f"{path}: empty folder"
        else:
            assert target.stat().st_size > 0, f"{path}: empty file"


def test_pretrain_and_cluster_logs_follow_the_settings(run):
    root, params = run["root"], run["params"]
    loss = pd.read_csv(root / "reports/pretrain/plots/metrics/loss.tsv", sep="\t")
    assert len(loss) == params["pretrain"]["epochs"] and np.isfinite(loss["loss"]).all()
    history = json.loads((root / "reports/dcec/history.json").read_text())
    assert history["n_iter"] <= params["cluster"]["maxiter"]
    assert [record["ite"] for record in history["history"]][:2] == [0, params["cluster"]["update_interval"]]
    embedding = np.load(root / "reports/dcec/embedding.npy")
    assert embedding.shape == (N, params["model"]["embedding"]) and np.isfinite(embedding).all()


def test_assignments_match_labels(run):
    labels = run["labels"]
    assignments = pd.read_csv(run["root"] / "reports/dcec/assignments.csv", dtype={"lot_key": str})
    assert len(assignments) == N
    assert assignments["row"].tolist() == list(range(N))
    assert assignments["lot_key"].tolist() == labels["lot_key"].tolist()
    assert assignments["cluster"].between(0, K - 1).all()
    assert assignments["q_max"].between(1.0 / K, 1.0).all()  # the max of a K-way distribution


def test_metrics_are_in_range_and_computed_from_the_assignments(run):
    root, labels = run["root"], run["labels"]
    metrics = json.loads((root / "reports/metrics.json").read_text())
    assert (metrics["n"], metrics["k"], metrics["n_artists"]) == (N, K, len(ARTISTS))
    for key in ("acc", "nmi_arithmetic", "nmi_geometric", "purity"):
        assert 0.0 <= metrics[key] <= 1.0, key
    assert -1.0 <= metrics["ari"] <= 1.0  # chance-corrected: may be slightly negative
    clusters = pd.read_csv(root / "reports/dcec/assignments.csv")["cluster"].to_numpy()
    assert metrics["n_nonempty_clusters"] == np.unique(clusters).size
    if metrics["n_nonempty_clusters"] >= 2:
        assert -1.0 <= metrics["silhouette"] <= 1.0 and metrics["calinski_harabasz"] >= 0.0
    else:  # a collapsed clustering: both internal metrics are undefined, written as null
        assert metrics["silhouette"] is None and metrics["calinski_harabasz"] is None
    assert metrics["acc"] == pytest.approx(cluster_acc(labels["artist_id"], clusters))
    assert metrics["nmi_arithmetic"] == pytest.approx(nmi(labels["artist_id"], clusters))


def test_contingency_counts_every_image_once_by_artist(run):
    root, labels = run["root"], run["labels"]
    table = pd.read_csv(root / "reports/contingency.csv", index_col="artist")
    assert list(table.index) == sorted(labels["artist"].unique())
    assert list(table.columns) == [str(c) for c in range(K)]
    assert table.to_numpy().sum() == N
    clusters = pd.read_csv(root / "reports/dcec/assignments.csv")["cluster"]
    expected = pd.crosstab(labels["artist"], clusters).reindex(columns=range(K), fill_value=0)
    np.testing.assert_array_equal(table.to_numpy(), expected.to_numpy())


def test_runs_have_one_row_per_method_and_seed(run):
    params = run["params"]
    runs = pd.read_csv(run["root"] / "reports/compare/runs.csv")
    methods, seeds = params["compare"]["methods"], params["compare"]["seeds"]
    assert sorted(zip(runs["method"], runs["seed"])) == sorted((m, s) for m in methods for s in seeds)
    assert (runs["n"] == N).all() and (runs["k"] == K).all()
    assert_unit_interval(runs, ["acc", "nmi_arithmetic", "nmi_geometric", "purity"], where="runs.csv")
    assert_unit_interval(runs, ["ari"], low=-1.0, where="runs.csv")
    assert runs["n_nonempty_clusters"].between(1, K).all()
    # Internal metrics exist where there is an embedding (not for k-means on pixels) and ≥ 2 clusters.
    scored = runs[(runs["method"] != "kmeans_pixels") & (runs["n_nonempty_clusters"] >= 2)]
    assert len(scored) >= len(runs) // 2
    assert_unit_interval(scored, ["silhouette"], low=-1.0, where="runs.csv")
    assert (scored["calinski_harabasz"] >= 0).all()
    assert runs.loc[runs["method"] == "kmeans_pixels", "silhouette"].isna().all()
    summary = json.loads((run["root"] / "reports/compare/summary.json").read_text())
    assert list(summary["methods"]) == methods and summary["n"] == N and summary["k"] == K
    dcec_acc = runs.loc[runs["method"] == "dcec", "acc"]
    assert summary["methods"]["dcec"]["acc"]["mean"] == pytest.approx(dcec_acc.mean())


def test_sweep_covers_every_k(run):
    params = run["params"]
    sweep = pd.read_csv(run["root"] / "reports/compare/sweep.csv")
    ks = sorted(set(params["compare"]["sweep_ks"]) | {K})
    assert sorted(zip(sweep["method"], sweep["k"])) == sorted((m, k) for m in compare.SWEEP_METHODS for k in ks)
    assert (sweep["n_seeds"] == len(params["compare"]["sweep_seeds"])).all()
    assert_unit_interval(sweep, ["acc", "nmi_arithmetic", "purity"], where="sweep.csv")
    kmeans = sweep[sweep["method"] == "cae_kmeans"]  # k-means never leaves a cluster empty: always defined
    assert_unit_interval(kmeans, ["silhouette"], low=-1.0, where="sweep.csv cae_kmeans")
    assert_unit_interval(kmeans, ["calinski_harabasz_rel"], where="sweep.csv cae_kmeans")
    dcec = sweep[sweep["method"] == "dcec"].dropna(subset=["silhouette"])  # NaN only for a collapsed run
    assert len(dcec) >= 1 and dcec["silhouette"].between(-1, 1).all()
    assert (sweep.groupby("method")["calinski_harabasz_rel"].max() == 1.0).all()  # relative to the max over k


def test_results_md_has_the_three_tables_and_live_figure_links(run):
    root, params, labels = run["root"], run["params"], run["labels"]
    text = (root / "reports/results.md").read_text(encoding="utf-8")

    table1 = [row[0] for row in table_rows(section(text, "Table 1"))]
    assert set(labels["artist"]) <= set(table1)

    table2 = [row[0] for row in table_rows(section(text, "Table 2"))]
    assert table2 == [str(k) for k in sorted(set(params["compare"]["sweep_ks"]) | {K})]

    table3 = {row[0]: row for row in table_rows(section(text, "Table 3"))}
    runs = pd.read_csv(root / "reports/compare/runs.csv")
    for method in params["compare"]["methods"]:
        title = report.METHOD_TITLES.get(method, method)
        assert title in table3, f"Table 3 has no row for {method}"
        acc = runs.loc[runs["method"] == method, "acc"]
        assert table3[title][1] == f"{acc.mean():.3f} ± {acc.std(ddof=1):.3f}"  # ACC column from runs.csv

    dcec_run = table_rows(section(text, "The DCEC run"))
    assert dcec_run[0][:3] == [str(N), str(K), str(len(ARTISTS))]

    links = re.findall(r"\]\(([^)\s]+)\)", text)
    assert len(links) >= len(evaluate.FIGURE_NAMES)
    for link in links:
        assert (root / "reports" / link).is_file(), f"results.md links to a missing file: {link}"


def test_a_crawl_whose_works_sold_on_one_day_still_reaches_the_report(run, tmp_path, monkeypatch):
    """A narrow crawl (say two months of a replica, one sale day with sold works): the price stage writes its
    outputs with the reason instead of failing, and Table 4's place in results.md says so in one sentence."""
    root = tmp_path / "repo"
    shutil.copytree(run["root"], root)
    lots = pd.read_parquet(root / "data/interim/lots.parquet").assign(sale_date="2019-02-01",
                                                                      sale_start_date="2019-02-01")
    lots.to_parquet(root / "data/interim/lots.parquet", index=False)
    monkeypatch.chdir(root)
    price.main()
    report.main()
    metrics = json.loads((root / "reports/price/metrics.json").read_text(encoding="utf-8"))
    assert metrics["status"] == "skipped" and "1 sale day(s)" in metrics["reason"]
    assert len(pd.read_csv(root / "reports/price/predictions.csv")) == N - 1
    for name in price.FIGURE_NAMES.values():
        assert (root / "reports/figures" / name).stat().st_size > 0       # DVC's declared outputs exist
    text = section((root / "reports/results.md").read_text(encoding="utf-8"), "Table 4")
    assert "No price model on this crawl: the works span 1 sale day(s)" in text and "on 1 sale day(s)" in text


def test_table4_has_every_price_model_from_the_price_metrics(run):
    root = run["root"]
    metrics = json.loads((root / "reports/price/metrics.json").read_text(encoding="utf-8"))
    assert metrics["n"]["excluded"]["unsold"] == 1 and metrics["n"]["eligible"] == N - 1
    predictions = pd.read_csv(root / "reports/price/predictions.csv")
    assert len(predictions) == N - 1 and set(predictions["split"]) == {"train", "test"}
    assert predictions.loc[predictions["split"] == "test", "sale_date"].min() > \
        predictions.loc[predictions["split"] == "train", "sale_date"].max()
    text = (root / "reports/results.md").read_text(encoding="utf-8")
    rows = {row[0]: row for row in table_rows(section(text, "Table 4"))}
    for name in price.MODELS:
        title = report.PRICE_TITLES[name]
        assert rows[title][1] == f"{metrics['models'][name]['mae']:.3f}", f"Table 4 MAE of {name}"
