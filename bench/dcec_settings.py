"""Study: which DCEC settings beat k-means on raw pixels on the embedded default, and how robustly.

    python -m bench.dcec_settings [--pretrain-seeds 0 1 2] [--epochs 200] [--kl-weight 0.1 --recon-weight 1.0]
                                  [--maxiter 300] [--record-to docs/VERIFICATION.md | --no-record]

Reads the pipeline's `data/final/images.npy` and `labels.csv` (run `dvc repro images` first) and the
`model`, `pretrain` and `cluster` sections of params.yaml, overridden by the flags. For each pretraining
seed it trains a CAE from scratch (the `pretrain` stage's code), then scores against the artist labels,
over the comparison seeds (`compare.seeds`): k-means on pixels, CAE + k-means, and DCEC from that CAE.
The pretraining seed is the factor the pipeline holds fixed (`base.seed`), so this shows how much of a
DCEC-vs-pixels difference is luck of one CAE.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch

from bench import _record
from common import load_params
from model.data import encode_all, load_image_set
from model.dcec import DCECConfig, fit_dcec
from model.methods import pixels_matrix, seeded_kmeans
from model.metrics import nmi
from model.nets import build_cae
from model.pretrain import PretrainConfig, train_cae
from model.runtime import keep_freed_memory, seed_everything

MODULE = "bench.dcec_settings"


def pretrain(images: torch.Tensor, model_p: dict, epochs: int, batch_size: int, lr: float, seed: int) -> torch.nn.Module:
    """A CAE trained as the `pretrain` stage does (seeded before the weights are built)."""
    seed_everything(seed)
    cae = build_cae(images.shape[1], images.shape[3], model_p["filters"], model_p["kernels"], model_p["embedding"],
                    model_p["activation"])
    config = PretrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, show_progress=False,
                            mixed_precision=model_p["mixed_precision"])
    return train_cae(cae, images, config, torch.device("cpu"))


def study_row(images: torch.Tensor, y: np.ndarray, k: int, seeds: list[int], model_p: dict, args: argparse.Namespace,
              cluster_p: dict, pretrain_seed: int) -> list[object]:
    """[pretrain seed, pixels NMI, CAE+k-means NMI, DCEC NMI (each mean ± std over seeds), DCEC per seed, seconds]."""
    started = time.perf_counter()
    n_init = int(cluster_p["kmeans_n_init"])
    pixels = [nmi(y, seeded_kmeans(pixels_matrix(images), k, n_init, s)) for s in seeds]
    cae = pretrain(images, model_p, args.epochs, args.batch_size, args.lr, pretrain_seed)
    embedding = encode_all(cae, images, 1024, torch.device("cpu"))
    cae_km = [nmi(y, seeded_kmeans(embedding, k, n_init, s)) for s in seeds]
    dcec = []
    for seed in seeds:
        config = DCECConfig(n_clusters=k, batch_size=int(cluster_p["batch_size"]), lr=float(cluster_p["lr"]),
                            maxiter=args.maxiter, update_interval=int(cluster_p["update_interval"]),
                            tol=float(cluster_p["tol"]), kl_weight=args.kl_weight, recon_weight=args.recon_weight,
                            kmeans_n_init=n_init, seed=seed, show_progress=False,
                            mixed_precision=model_p["mixed_precision"])
        dcec.append(nmi(y, fit_dcec(cae, images, config, torch.device("cpu")).assignments))
        print(f"pretrain seed {pretrain_seed}, seed {seed}: DCEC NMI {dcec[-1]:.3f}", file=sys.stderr)

    def pm(values: list[float]) -> str:
        return f"{np.mean(values):.3f} ± {np.std(values, ddof=1) if len(values) > 1 else 0.0:.3f}"

    return [pretrain_seed, pm(pixels), pm(cae_km), pm(dcec), " / ".join(f"{v:.3f}" for v in dcec),
            "yes" if np.mean(dcec) > np.mean(pixels) else "no", round(time.perf_counter() - started)]


def main(argv: list[str] | None = None) -> None:
    params = load_params()
    model_p, pre_p, cluster_p = params["model"], params["pretrain"], params["cluster"]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pretrain-seeds", type=int, nargs="+", default=[int(params["base"]["seed"])])
    parser.add_argument("--epochs", type=int, default=int(pre_p["epochs"]))
    parser.add_argument("--batch-size", type=int, default=int(pre_p["batch_size"]))
    parser.add_argument("--lr", type=float, default=float(pre_p["lr"]))
    parser.add_argument("--kl-weight", type=float, default=float(cluster_p["kl_weight"]))
    parser.add_argument("--recon-weight", type=float, default=float(cluster_p["recon_weight"]))
    parser.add_argument("--maxiter", type=int, default=int(cluster_p["maxiter"]))
    _record.add_record_arguments(parser)
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(argv)

    keep_freed_memory(model_p["keep_freed_memory"])
    image_set = load_image_set()
    y, k, seeds = image_set.artist_ids, int(model_p["k"]), [int(s) for s in params["compare"]["seeds"]]
    rows = [study_row(image_set.images, y, k, seeds, model_p, args, cluster_p, ps) for ps in args.pretrain_seeds]
    headers = ["pretraining seed", "k-means pixels NMI", "CAE + k-means NMI", "DCEC NMI", "DCEC per seed",
               "DCEC > pixels", "seconds"]
    body = (f"{image_set.n} images {image_set.size}×{image_set.size}, k = {k}, seeds {seeds}; pretraining "
            f"{args.epochs} epochs (batch {args.batch_size}); DCEC weights {args.kl_weight} KL + "
            f"{args.recon_weight} MSE, maxiter {args.maxiter}, update interval {cluster_p['update_interval']}. "
            "NMI arithmetic, mean ± sample std over the seeds.\n\n" + _record.markdown_table(headers, rows))
    _record.publish(args, MODULE, argv, "DCEC settings study on the embedded default (bench/dcec_settings.py)", body)


if __name__ == "__main__":
    main()
