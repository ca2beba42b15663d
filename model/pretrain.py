"""Stage `pretrain`: train the CAE on reconstruction alone (MSE, Adam), once per seed, resumable.

    python -m model.pretrain        # reads the params in PARAMS (base.seed, the architecture, pretrain, compare seeds)

Outputs: `models/cae.pt` (the CAE of `base.seed`, for the cluster stage; per-epoch loss in `reports/pretrain/`,
dvclive) and `models/cae_seeds/seed-<s>.pt` for every seed of `compare.seeds` and `compare.sweep_seeds`, each
{config, state_dict, fingerprint}: a file whose fingerprint (images content, architecture, settings, seed, and
the training code, libraries, device, precision and threads) matches is kept, so a re-run trains only what
changed.
Every epoch the full training state (model, optimiser, epoch, batch-order generator and global RNG states,
all as tensors/lists so `torch.load(weights_only=True)` reads it) is written atomically to
`models/checkpoints/pretrain_last.pt`. A re-run finds it, checks it was made with the same settings
(architecture, data shape, batch size, lr, seed) and continues from the next epoch, with dvclive resumed;
the checkpoint is removed once `models/cae.pt` is written. A NaN/inf loss stops the run with an error and
leaves the last good checkpoint in place.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from common import file_sha1, load_params, progress
from common.provenance import provenance
from model.data import load_image_set, to_model_input
from model.nets import CAE, build_cae, save_cae
from model.runtime import (KERNEL_LIBRARIES, NonFiniteLossError, adam, autocast, autocast_dtype, git_sha,
                           keep_freed_memory, maybe_compile, pick_device, precision_name, restore_rng_states,
                           rng_states, save_atomic, seed_everything)

# The params this stage reads (dvc.yaml declares exactly these; tests/test_dvc_params.py).
PARAMS = (
    "base.seed", "model.embedding", "model.filters", "model.kernels", "model.activation", "model.device",
    "model.compile", "model.mixed_precision", "model.keep_freed_memory", "pretrain", "compare.seeds",
    "compare.sweep_seeds"
)
IMAGES = Path("data/final/images.npy")
CHECKPOINT_DIR = Path("models/checkpoints")
OUTPUT = Path("models/cae.pt")
SEEDS_DIR = Path("models/cae_seeds")
LIVE_DIR = Path("reports/pretrain")


@dataclass
class PretrainConfig:
    """params.yaml `pretrain` + `base.seed` + `model.compile` and `model.mixed_precision`."""

    epochs: int
    batch_size: int
    lr: float
    seed: int = 0
    compile: bool = False
    mixed_precision: str = "off"
    show_progress: bool = True


PRETRAIN_MODULES = ("model.pretrain",)  # the code of a pretrained CAE: this module's import closure in model/


def training_provenance(config: PretrainConfig, device: torch.device) -> dict:
    """The code (import closure of this module, by syntax tree: common/provenance.py), the kernel libraries,
    the device type, the precision in effect there and torch's thread count of a pretraining run.

    By syntax tree rather than bytes: a comment or docstring edit retrains no CAE (hours at the paper's size);
    any change to the code does. The closure is model/pretrain.py, data.py, nets.py and runtime.py: the CAE's
    persistence lives in nets.py, not in dcec.py, so a change to DCEC's joint phase or the metrics retrains
    nothing (tests/model/test_provenance.py holds the closure to that)."""
    return provenance(PRETRAIN_MODULES, KERNEL_LIBRARIES, device=device.type,
                      precision=precision_name(config.mixed_precision, device), threads=torch.get_num_threads())


def fingerprint(cae: CAE, images_u8: torch.Tensor, config: PretrainConfig, device: torch.device) -> dict:
    """What a checkpoint must match to be resumed. `epochs` is left out: raising it continues a run. The
    training provenance is in it: a run interrupted before a code, library or device change starts afresh.

    `optimizer` names the kind of Adam state saved: a checkpoint of the unfused Adam (before issue #8) would
    load its param-group settings over the fused ones, so it is not resumed.
    """
    return {"cae_config": dict(cae.config), "images_shape": list(images_u8.shape), "batch_size": config.batch_size,
            "lr": float(config.lr), "seed": config.seed, "mixed_precision": config.mixed_precision,
            "optimizer": "adam, fused", "provenance": training_provenance(config, device)}


def read_checkpoint(path: Path | None, expected: dict) -> dict | None:
    """The checkpoint at `path` if it exists and matches `expected`; None otherwise (with a note why)."""
    if path is None or not path.is_file():
        return None
    state = torch.load(path, map_location="cpu", weights_only=True)
    if state.get("fingerprint") != expected:
        print(f"{path}: made with other settings; starting afresh", file=sys.stderr)
        return None
    return state


def write_checkpoint(path: Path, state: dict) -> None:
    save_atomic(state, path)


def train_cae(cae: CAE, images_u8: torch.Tensor, config: PretrainConfig, device: torch.device,
              checkpoint_path: Path | None = None, resume_from: dict | None = None,
              on_epoch: Callable[[dict], None] | None = None) -> CAE:
    """Reconstruction training of `cae` in place on uint8 images (N, H, W, C); returns it.

    Batch order: a fresh permutation per epoch from a generator seeded with `config.seed` (its state is in
    the checkpoint, so a resumed run draws the same batches). `resume_from` is a checkpoint dict from
    `read_checkpoint`; `on_epoch(record)` gets {epoch, loss, img_per_s, seconds} after each epoch's
    checkpoint is written. NaN guard: a device-side flag, read every step on CPU and once per epoch on
    CUDA (before the checkpoint is written, so a bad epoch is never saved). Raises NonFiniteLossError.
    """
    generator = seed_everything(config.seed)
    expected = fingerprint(cae, images_u8, config, device)
    cae.to(device).to(memory_format=torch.channels_last).train()
    optimizer = adam(cae.parameters(), config.lr)
    start_epoch = 0
    if resume_from is not None:
        cae.load_state_dict(resume_from["model"])
        optimizer.load_state_dict(resume_from["optimizer"])
        generator.set_state(resume_from["generator"])
        restore_rng_states(resume_from["rng"])
        start_epoch = int(resume_from["epoch"])
    forward = maybe_compile(cae, config.compile)
    amp_dtype = autocast_dtype(config.mixed_precision, device)
    images = images_u8.to(device)
    n = images.shape[0]
    check_every_step = device.type == "cpu"
    revision = git_sha() or ""
    epochs = range(start_epoch, config.epochs)
    if config.show_progress:
        epochs = progress(epochs, desc="pretrain", total=len(epochs), unit="epoch")
    for epoch in epochs:
        started = time.perf_counter()
        order = torch.randperm(n, generator=generator).to(device)
        loss_sum = torch.zeros((), device=device)
        bad = torch.zeros((), dtype=torch.bool, device=device)
        for batch_no, start in enumerate(range(0, n, config.batch_size)):
            x = to_model_input(images[order[start:start + config.batch_size]], device)  # (b, C, H, W)
            with autocast(device, amp_dtype):
                _, x_hat = forward(x)
                loss = F.mse_loss(x_hat.float(), x)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            with torch.no_grad():
                bad |= ~torch.isfinite(loss)
                loss_sum += loss.detach() * x.shape[0]
            if check_every_step and bool(bad):
                raise NonFiniteLossError(f"pretrain: non-finite loss at epoch {epoch + 1}, batch {batch_no}; "
                                         f"the last good checkpoint (epoch {epoch}) is kept at {checkpoint_path}")
        if bool(bad):
            raise NonFiniteLossError(f"pretrain: non-finite loss in epoch {epoch + 1}; "
                                     f"the last good checkpoint (epoch {epoch}) is kept at {checkpoint_path}")
        seconds = time.perf_counter() - started
        record = {"epoch": epoch + 1, "loss": float(loss_sum) / n, "img_per_s": n / seconds, "seconds": seconds}
        if checkpoint_path is not None:
            write_checkpoint(checkpoint_path, {
                "fingerprint": expected, "epoch": epoch + 1,
                "model": {k: v.detach().cpu() for k, v in cae.state_dict().items()},
                "optimizer": optimizer.state_dict(), "generator": generator.get_state(), "rng": rng_states(),
                "git_sha": revision,
            })
        if config.show_progress:
            tqdm.write(f"epoch {epoch + 1}/{config.epochs}  loss {record['loss']:.6f}  "
                       f"{record['img_per_s']:.0f} img/s", file=sys.stderr)
        if on_epoch is not None:
            on_epoch(record)
    return cae


def pretrain_fingerprint(cae: CAE, images_sha1: str, config: PretrainConfig, device: torch.device) -> dict:
    """Everything a finished CAE depends on: what a per-seed file must match to be reused (its content key).
    With the training provenance: the code, libraries, device type, precision in effect on `device` (a CPU
    fp32 CAE is not reused for a bf16 CUDA run) and threads."""
    return {"cae_config": dict(cae.config), "images_sha1": images_sha1, "epochs": config.epochs,
            "batch_size": config.batch_size, "lr": float(config.lr), "seed": config.seed,
            "optimizer": "adam, fused", "provenance": training_provenance(config, device)}


def saved_fingerprint(path: Path) -> dict | None:
    """The `fingerprint` stored in a CAE file, or None (missing, unreadable, or written before it had one)."""
    if not path.is_file():
        return None
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError) as exc:
        print(f"{path}: unreadable ({exc}); retraining", file=sys.stderr)
        return None
    return saved.get("fingerprint") if isinstance(saved, dict) else None


def new_cae(image_set, model_p: dict, seed: int) -> CAE:
    """A freshly initialised CAE; the initial weights are part of the seeded run."""
    seed_everything(seed)
    return build_cae(image_set.size, image_set.channels, model_p["filters"], model_p["kernels"],
                     model_p["embedding"], model_p["activation"])


def pretrain_config(params: dict, seed: int, show_progress: bool = True) -> PretrainConfig:
    model_p, pre_p = params["model"], params["pretrain"]
    return PretrainConfig(epochs=int(pre_p["epochs"]), batch_size=int(pre_p["batch_size"]), lr=float(pre_p["lr"]),
                          seed=seed, compile=bool(model_p["compile"]), mixed_precision=str(model_p["mixed_precision"]),
                          show_progress=show_progress)


def pretrain_one(image_set, images_sha1: str, params: dict, seed: int, output: Path, checkpoint: Path,
                 live_dir: Path | None = None) -> bool:
    """Pretrain the CAE of one seed into `output`, unless `output` already holds it; True if it trained.

    Resumes from `checkpoint` after an interruption (same settings and provenance only). The file carries its
    fingerprint (`pretrain_fingerprint`), so a re-run with nothing changed trains nothing and a changed
    setting, code, library or device retrains. With `live_dir`, the per-epoch loss is logged there (dvclive).
    """
    device = pick_device(params["model"]["device"])
    cae = new_cae(image_set, params["model"], seed)
    config = pretrain_config(params, seed)
    wanted = pretrain_fingerprint(cae, images_sha1, config, device)
    if saved_fingerprint(output) == wanted:
        print(f"pretrain: seed {seed}: {output} is up to date", file=sys.stderr)
        return False
    resume_from = read_checkpoint(checkpoint, fingerprint(cae, image_set.images, config, device))
    if resume_from is not None:
        print(f"resuming pretrain seed {seed} from {checkpoint} after epoch {resume_from['epoch']}", file=sys.stderr)
    if live_dir is None:
        cae = train_cae(cae, image_set.images, config, device, checkpoint, resume_from)
    else:
        from dvclive import Live

        with Live(dir=str(live_dir), resume=resume_from is not None, dvcyaml=False, save_dvc_exp=False) as live:
            if resume_from is not None:
                live.step = int(resume_from["epoch"])

            def log_epoch(record: dict) -> None:
                live.log_metric("loss", record["loss"])
                live.next_step()

            cae = train_cae(cae, image_set.images, config, device, checkpoint, resume_from, log_epoch)
    save_cae(cae, output, extra={"fingerprint": wanted})
    checkpoint.unlink(missing_ok=True)  # finished: a later re-run trains afresh (deterministically)
    return True


def seed_paths(seeds_dir: Path, seeds: list[int]) -> dict[int, Path]:
    """Where the CAE of each comparison seed lives: `<seeds_dir>/seed-<s>.pt`."""
    return {seed: seeds_dir / f"seed-{seed}.pt" for seed in seeds}


def comparison_seeds(params: dict) -> list[int]:
    """Every seed the compare stage runs a CAE-based method with: its seeds and its sweep seeds."""
    compare_p = params["compare"]
    return sorted({int(s) for s in compare_p["seeds"]} | {int(s) for s in compare_p["sweep_seeds"]})


def run_pretrain(images_path: Path, output: Path, checkpoint_dir: Path, live_dir: Path, params: dict,
                 seeds_dir: Path) -> None:
    """The stage body with explicit paths and the parsed params (tests call it on tiny data).

    1. `output` (models/cae.pt): the CAE of `base.seed`, the one the `cluster` stage trains on, with its
       per-epoch loss in `live_dir`;
    2. `seeds_dir/seed-<s>.pt` for every comparison seed s, so that CAE + k-means and DCEC of seed s share a
       CAE pretrained with seed s (paired comparisons that vary everything random). The base seed's file is
       a copy of `output`; the others are trained here, each skipped when its file is already up to date.
    """
    image_set = load_image_set(images_path, labels_path=None)
    images_sha1 = file_sha1(images_path)
    base_seed = int(params["base"]["seed"])
    seeds = comparison_seeds(params)
    device = pick_device(params["model"]["device"])
    print(f"pretrain: {image_set.n} images {image_set.size}x{image_set.size}x{image_set.channels} on {device}; "
          f"seed {base_seed} for the cluster stage, seeds {seeds} for compare", file=sys.stderr)
    pretrain_one(image_set, images_sha1, params, base_seed, output, checkpoint_dir / "pretrain_last.pt", live_dir)
    seeds_dir.mkdir(parents=True, exist_ok=True)
    for number, (seed, path) in enumerate(seed_paths(seeds_dir, seeds).items(), start=1):
        print(f"pretrain: comparison seed {seed} ({number} of {len(seeds)})", file=sys.stderr)
        if seed == base_seed:
            shutil.copyfile(output, path)
            continue
        pretrain_one(image_set, images_sha1, params, seed, path, checkpoint_dir / f"pretrain_seed-{seed}.pt")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = parser.parse_args(argv)
    params = load_params(path=args.params, keys=PARAMS)
    keep_freed_memory(bool(params["model"]["keep_freed_memory"]))
    run_pretrain(IMAGES, OUTPUT, CHECKPOINT_DIR, LIVE_DIR, params, SEEDS_DIR)


if __name__ == "__main__":
    main()
