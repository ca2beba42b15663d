"""Device choice, seeding and provenance shared by the model stages.

Determinism (pitfalls §5.1): seeds for torch, numpy and `random`; cuDNN benchmarking off; deterministic
algorithms requested with `warn_only=True` so an op without a deterministic kernel warns instead of
failing a long run. Bitwise equality is promised only on CPU with the same torch build.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from common import atomic_path


def pick_device(name: str) -> torch.device:
    """Resolve `model.device`: "auto" → CUDA when available, else CPU; anything else is taken literally.

    Raises:
        RuntimeError: CUDA was asked for explicitly but is not available.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"model.device is {name!r} but CUDA is not available; use 'auto' or 'cpu'")
    return device


def seed_everything(seed: int) -> torch.Generator:
    """Seed torch, numpy and `random`, switch on deterministic kernels, and return a seeded CPU generator.

    The returned generator is the one to draw batch orders from: it is independent of the global torch
    RNG (which layer initialisation consumes), so the batch order does not depend on the architecture.
    """
    # Must be set before CUDA initialises to take effect for cuBLAS (pytorch#109856); harmless on CPU.
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    torch.use_deterministic_algorithms(True, warn_only=True)
    return torch.Generator().manual_seed(seed)


def git_sha() -> str | None:
    """The checkout's commit, for provenance in checkpoints; None outside a git work tree."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


class _EagerFallback:
    """Call the compiled module; on the first compile-time failure, warn once and run eagerly for good.

    `torch.compile` is lazy: a missing compiler or an unsupported op only surfaces at the first call.
    """

    def __init__(self, module: nn.Module, compiled: Callable):
        self.module, self.compiled = module, compiled

    def __call__(self, *args, **kwargs):
        if self.compiled is not None:
            try:
                return self.compiled(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001 - any backend failure means "run eagerly"
                print(f"torch.compile failed ({type(exc).__name__}: {exc}); running eagerly", file=sys.stderr)
                self.compiled = None
        return self.module(*args, **kwargs)


def maybe_compile(module: nn.Module, enabled: bool) -> Callable:
    """`torch.compile(module)` behind `model.compile`, falling back to eager execution cleanly.

    The returned callable shares parameters with `module`, so optimisers and `state_dict` keep using
    `module` itself.
    """
    if not enabled:
        return module
    try:
        compiled = torch.compile(module)
    except Exception as exc:  # noqa: BLE001
        print(f"torch.compile unavailable ({type(exc).__name__}: {exc}); running eagerly", file=sys.stderr)
        return module
    return _EagerFallback(module, compiled)


def rng_states() -> dict:
    """All global RNG states as tensors and lists, loadable with `torch.load(weights_only=True)`."""
    np_state = np.random.get_state()
    py_state = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": list(torch.cuda.get_rng_state_all()) if torch.cuda.is_available() else [],
        "numpy": {"key": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "cached": float(np_state[4])},
        "python": [py_state[0], list(py_state[1]), py_state[2]],
    }


def restore_rng_states(states: dict) -> None:
    """Inverse of `rng_states`."""
    torch.set_rng_state(states["torch"])
    if states["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
    np_s = states["numpy"]
    np.random.set_state(("MT19937", np_s["key"].numpy().astype(np.uint32), np_s["pos"], np_s["has_gauss"],
                         np_s["cached"]))
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))


def save_atomic(obj: object, path: str | os.PathLike) -> None:
    """`torch.save` through a temporary file and a rename, byte-identical for identical content.

    Saving to an open file handle, not to the temporary path, keeps torch from naming the archive inside
    the file after the random temporary name: otherwise every save differs and DVC (and the compare
    cache, keyed on the file's sha1) sees a new file after each re-run.
    """
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        torch.save(obj, fh)
