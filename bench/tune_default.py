"""Tuning the embedded default without its evaluation labels: choose on another catalogue, run once.

    python -m bench.tune_default [--demo-seed 1007] [--seeds 0 1 2] [--record-to docs/VERIFICATION.md]

Protocol (docs/VERIFICATION.md, "Tuning protocol"):
1. A tuning catalogue: a scratch copy of this checkout with `demo.seed` set to `--demo-seed`, so the demo
   site draws other artists and other works. The curator's file is left out (the automatic flags decide)
   and the data stages `scrape` … `images` run there, with every other setting as in params.yaml.
2. Every candidate setting is scored on that catalogue's artist labels: arithmetic NMI, mean over the
   seeds, where a seed seeds everything random (pretraining included, as in the compare stage).
   DCEC: pretraining epochs × loss weights (Guo's 0.1 KL + 1.0 MSE, paap's 0.9 + 0.1). DeepCluster: its
   input (Sobel on grayscale, or colour) × its training length.
3. The best candidate of each family is the choice; it is written to `reports/tuning/tuning.json` with
   every score, the catalogue and the commit. params.yaml takes the choice by hand, and the report stage
   says which settings were tuned on what and whether params.yaml still matches the choice.
The evaluation catalogue (`demo.seed` in params.yaml) and its labels are never read here.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

from bench import _record
from bench.pipeline import copy_checkout, run_environment, stage_commands, timestamped_lines
from common import file_sha1, load_params, write_json
from model.data import load_image_set
from model.methods import get_method
from model.metrics import label_metrics
from model.pretrain import pretrain_one, seed_paths
from model.report import working_tree_revision
from model.runtime import git_sha, keep_freed_memory

MODULE = "bench.tune_default"
OUTPUT = Path("reports/tuning/tuning.json")
DATA_STAGES_UNTIL = "images"  # the last data stage: scrape … images give data/final/
DCEC_GRID = {"pretrain.epochs": [100, 200], "cluster.weights": [(0.1, 1.0), (0.9, 0.1)]}
DEEPCLUSTER_GRID = {"deepcluster.sobel": [True, False], "deepcluster.epochs": [12, 24]}


def build_tuning_catalogue(repo: Path, workdir: Path, demo_seed: int) -> Path:
    """Run the data stages on the demo catalogue of `demo_seed` in a scratch copy; return its root."""
    copy_checkout(repo, workdir)
    (workdir / "data/review/manifest.csv").unlink(missing_ok=True)  # the evaluation catalogue's curator file
    params_path = workdir / "params.yaml"
    params = yaml.safe_load(params_path.read_text(encoding="utf-8"))
    params["demo"]["seed"] = demo_seed
    params_path.write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
    env = run_environment(Path(sys.executable).parent)
    for stage, command in stage_commands(workdir / "dvc.yaml").items():
        print(f"tuning catalogue: {stage}", file=sys.stderr)
        for _ in timestamped_lines(command, workdir, env, workdir / f"tune-{stage}.log"):
            pass
        if stage == DATA_STAGES_UNTIL:
            return workdir
    raise RuntimeError(f"dvc.yaml has no stage {DATA_STAGES_UNTIL!r}")


def with_overrides(params: dict, overrides: dict) -> dict:
    """A deep copy of params with dotted keys set ("cluster.weights" sets kl_weight and recon_weight)."""
    out = yaml.safe_load(yaml.safe_dump(params))
    for key, value in overrides.items():
        if key == "cluster.weights":
            out["cluster"]["kl_weight"], out["cluster"]["recon_weight"] = value
            continue
        section, name = key.split(".")
        out[section][name] = value
    return out


def grid(axes: dict) -> list[dict]:
    return [dict(zip(axes, values)) for values in itertools.product(*axes.values())]


def score(method_name: str, params: dict, cae_dir: Path, image_set, seeds: list[int]) -> dict:
    """Per-seed arithmetic NMI and ACC of one method with `params` on the tuning catalogue."""
    method = get_method(method_name, params, cae_dir)
    k = int(params["model"]["k"])
    per_seed = {}
    for seed in seeds:
        result = method.fit(image_set, k, seed)
        per_seed[seed] = label_metrics(image_set.artist_ids, result.assignments)
        print(f"tune: {method_name} {seed=}: NMI {per_seed[seed]['nmi_arithmetic']:.3f}", file=sys.stderr)
    nmis = [m["nmi_arithmetic"] for m in per_seed.values()]
    return {"nmi_mean": float(np.mean(nmis)), "nmi_std": float(np.std(nmis, ddof=1)) if len(nmis) > 1 else 0.0,
            "acc_mean": float(np.mean([m["acc"] for m in per_seed.values()])),
            "nmi_per_seed": [round(v, 4) for v in nmis]}


def tune_dcec(params: dict, catalogue: Path, image_set, seeds: list[int]) -> list[dict]:
    """DCEC candidates; the CAEs of one pretraining length are shared by its loss-weight candidates."""
    images_path = catalogue / "data/final/images.npy"
    rows = []
    for epochs in DCEC_GRID["pretrain.epochs"]:
        cae_dir = catalogue / f"models/tune_cae_e{epochs}"
        cae_dir.mkdir(parents=True, exist_ok=True)
        pre_params = with_overrides(params, {"pretrain.epochs": epochs})
        for seed, path in seed_paths(cae_dir, seeds).items():
            pretrain_one(image_set, file_sha1(images_path), pre_params, seed, path,
                         catalogue / f"models/checkpoints/tune_e{epochs}_seed-{seed}.pt")
        cae_scores = score("cae_kmeans", pre_params, cae_dir, image_set, seeds)
        for weights in DCEC_GRID["cluster.weights"]:
            candidate = {"pretrain.epochs": epochs, "cluster.weights": weights}
            scores = score("dcec", with_overrides(params, candidate), cae_dir, image_set, seeds)
            rows.append({"candidate": candidate, **scores, "cae_kmeans_nmi_mean": cae_scores["nmi_mean"]})
    return rows


def tune_deepcluster(params: dict, image_set, seeds: list[int]) -> list[dict]:
    return [{"candidate": candidate, **score("deepcluster", with_overrides(params, candidate), Path("-"),
                                             image_set, seeds)}
            for candidate in grid(DEEPCLUSTER_GRID)]


def best(rows: list[dict]) -> dict:
    """The candidate with the highest mean NMI (the first listed on a tie)."""
    return max(rows, key=lambda row: row["nmi_mean"])["candidate"]


def markdown(result: dict) -> str:
    def table(rows: list[dict], chosen: dict) -> str:
        headers = ["candidate", "NMI mean ± std", "per seed", "ACC mean", "chosen"]
        return _record.markdown_table(headers, [[
            ", ".join(f"{k} {v}" for k, v in row["candidate"].items()),
            f"{row['nmi_mean']:.3f} ± {row['nmi_std']:.3f}", " / ".join(map(str, row["nmi_per_seed"])),
            f"{row['acc_mean']:.3f}", "**yes**" if row["candidate"] == chosen else ""] for row in rows])

    catalogue = result["catalogue"]
    lines = [f"Tuning catalogue: demo.seed {catalogue['demo_seed']} ({catalogue['n_images']} images of "
             f"{catalogue['n_artists']} artists, {catalogue['size']}×{catalogue['size']}); seeds {result['seeds']}; "
             f"arithmetic NMI against that catalogue's artists. The evaluation catalogue is not read.", ""]
    for family in ("dcec", "deepcluster"):
        lines += [f"{family}:", "", table(result[family], result["chosen"][family]), ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo-seed", type=int, default=1007, help="the tuning catalogue's demo.seed")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=OUTPUT)
    _record.add_record_arguments(parser)
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(argv)
    params = load_params()
    if args.demo_seed == int(params["demo"]["seed"]):
        parser.error(f"--demo-seed {args.demo_seed} is the evaluation catalogue's demo.seed: pick another")
    keep_freed_memory(bool(params["model"]["keep_freed_memory"]))
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="tune-") as scratch:
        catalogue = build_tuning_catalogue(Path.cwd(), Path(scratch), args.demo_seed)
        image_set = load_image_set(catalogue / "data/final/images.npy", catalogue / "data/final/labels.csv")
        dcec_rows = tune_dcec(params, catalogue, image_set, args.seeds)
        deepcluster_rows = tune_deepcluster(params, image_set, args.seeds)
    result = {
        "protocol": "docs/VERIFICATION.md, Tuning protocol; bench/tune_default.py",
        "criterion": "arithmetic NMI against the tuning catalogue's artists, mean over seeds (pretraining seeded too)",
        "catalogue": {"demo_seed": args.demo_seed, "n_images": image_set.n, "size": image_set.size,
                      "n_artists": int(np.unique(image_set.artist_ids).size)},
        "seeds": args.seeds, "grid": {"dcec": DCEC_GRID, "deepcluster": DEEPCLUSTER_GRID},
        "dcec": dcec_rows, "deepcluster": deepcluster_rows,
        "chosen": {"dcec": best(dcec_rows), "deepcluster": best(deepcluster_rows)},
        "seconds": round(time.perf_counter() - started), "git_sha": git_sha(),
        "code": working_tree_revision(),  # the commit, flagged when the code had uncommitted changes
    }
    write_json(args.out, result)
    body = markdown(result)
    print(body)
    _record.publish(args, MODULE, argv, "Tuning the embedded default on another catalogue (bench/tune_default.py)",
                    body)
    return result


if __name__ == "__main__":
    main()
