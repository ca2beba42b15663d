"""Stage `cluster`: DCEC joint training from the pretrained CAE (`models/cae.pt`).

    python -m model.cluster         # reads params.yaml: base, model, cluster

Outputs: `models/dcec.pt` ({cae_config, n_clusters, alpha, state_dict, ...}), `reports/dcec/assignments.csv`
(`row, lot_key, cluster, q_max`), `reports/dcec/embedding.npy` (N×E float32), and the per-update history in
`reports/dcec/` (dvclive: delta_label, loss, kl, mse and, as labels exist, acc / nmi / nmi_geometric / ari).
Assignments, q_max and embedding are those of the last P update step (see `model.dcec.fit_dcec`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from common import atomic_path, atomic_write, load_params, write_json
from model.data import ImageSet, load_image_set
from model.dcec import DCECConfig, DCECResult, fit_dcec, save_dcec
from model.nets import load_cae
from model.runtime import git_sha, keep_freed_memory, pick_device

# The params this stage reads (dvc.yaml declares exactly these; tests/test_dvc_params.py).
PARAMS = (
    "base.seed", "model.k", "model.device", "model.eval_batch_size", "model.compile", "model.mixed_precision",
    "model.keep_freed_memory", "cluster"
)
IMAGES = Path("data/final/images.npy")
LABELS = Path("data/final/labels.csv")
CAE_PATH = Path("models/cae.pt")
OUTPUT = Path("models/dcec.pt")
REPORT_DIR = Path("reports/dcec")
HISTORY_METRICS = ("delta_label", "loss", "kl", "mse", "acc", "nmi", "nmi_geometric", "ari")


def dcec_config(params: dict) -> DCECConfig:
    """DCECConfig from the whole params dict (sections base, model, cluster)."""
    c, m = params["cluster"], params["model"]
    return DCECConfig(
        n_clusters=int(m["k"]), batch_size=int(c["batch_size"]), lr=float(c["lr"]), maxiter=int(c["maxiter"]),
        update_interval=int(c["update_interval"]), tol=float(c["tol"]), kl_weight=float(c["kl_weight"]),
        recon_weight=float(c["recon_weight"]), kmeans_n_init=int(c["kmeans_n_init"]), seed=int(params["base"]["seed"]),
        eval_batch_size=int(m["eval_batch_size"]), compile=bool(m["compile"]),
        mixed_precision=str(m["mixed_precision"]),
    )


def assignments_frame(image_set: ImageSet, result: DCECResult) -> pd.DataFrame:
    """One row per image, in images.npy order: row, lot_key, cluster, q_max."""
    lot_keys = image_set.labels["lot_key"].to_numpy() if image_set.labels is not None else [""] * image_set.n
    return pd.DataFrame({"row": np.arange(image_set.n), "lot_key": lot_keys,
                         "cluster": result.assignments, "q_max": result.q_max.astype(np.float32)})


def check_cae_matches(cae_config: dict, image_set: ImageSet, cae_path: Path) -> None:
    """The CAE must have been pretrained on images of this size and channel count."""
    if (cae_config["input_size"], cae_config["channels"]) != (image_set.size, image_set.channels):
        raise ValueError(f"{cae_path}: built for {cae_config['input_size']}px × {cae_config['channels']} channels, "
                         f"but the images are {image_set.size}px × {image_set.channels}; re-run the pretrain stage")


def run_cluster(images_path: Path, labels_path: Path, cae_path: Path, output: Path, report_dir: Path,
                params: dict) -> DCECResult:
    """The stage body with explicit paths and the parsed params."""
    from dvclive import Live

    config = dcec_config(params)
    device = pick_device(params["model"]["device"])
    image_set = load_image_set(images_path, labels_path)
    cae = load_cae(cae_path)
    check_cae_matches(cae.config, image_set, cae_path)
    print(f"cluster: {image_set.n} images, k={config.n_clusters}, on {device}", file=sys.stderr)
    with Live(dir=str(report_dir), dvcyaml=False, save_dvc_exp=False) as live:
        def log_update(record: dict) -> None:
            for name in HISTORY_METRICS:
                if name in record and np.isfinite(record[name]):
                    live.log_metric(name, record[name])
            live.next_step()

        result = fit_dcec(cae, image_set.images, config, device, labels=image_set.artist_ids, on_update=log_update)
    save_dcec(result.net, output, extra={"n_iter": result.n_iter, "converged": result.converged,
                                         "seed": config.seed, "git_sha": git_sha() or ""})
    with atomic_write(report_dir / "assignments.csv", newline="") as fh:
        assignments_frame(image_set, result).to_csv(fh, index=False)
    with atomic_path(report_dir / "embedding.npy") as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, result.embedding.astype(np.float32))
    write_json(report_dir / "history.json", {"n_iter": result.n_iter, "converged": result.converged,
                                              "history": result.history})
    last = result.history[-1]
    print(f"cluster: {'converged' if result.converged else 'stopped at maxiter'} after {result.n_iter} iterations; "
          + ", ".join(f"{k} {last[k]:.4f}" for k in ("acc", "nmi", "ari") if k in last), file=sys.stderr)
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = parser.parse_args(argv)
    params = load_params(path=args.params, keys=PARAMS)
    keep_freed_memory(bool(params["model"]["keep_freed_memory"]))
    run_cluster(IMAGES, LABELS, CAE_PATH, OUTPUT, REPORT_DIR, params)


if __name__ == "__main__":
    main()
