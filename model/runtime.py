"""Device choice, seeding and provenance shared by the model stages.

Determinism (pitfalls §5.1): seeds for torch, numpy and `random`; cuDNN benchmarking off; deterministic
algorithms requested with `warn_only=True` so an op without a deterministic kernel warns instead of
failing a long run. Bitwise equality is promised only on CPU with the same torch build.
"""

from __future__ import annotations

import ctypes
import os
import random
import subprocess
import sys
from collections.abc import Callable, Iterable

import numpy as np
import torch
from torch import nn

from common import atomic_path

class NonFiniteLossError(RuntimeError):
    """A training loss became NaN or infinite."""


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


# glibc mallopt parameters (malloc.h) and values (man 3 mallopt)
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_TRIM_NEVER = -1  # M_TRIM_THRESHOLD -1: never give the top of the heap back to the OS
_MMAP_NEVER = 0  # M_MMAP_MAX 0: serve every block from the heap, none with its own mmap


def keep_freed_memory(enabled: bool) -> bool:
    """`model.keep_freed_memory`: tell glibc's malloc to keep freed memory for reuse (True if applied).

    Why: a training step allocates and frees activations of tens of MB. By default glibc serves such blocks
    with mmap and unmaps them on free, so every step page-faults its memory in afresh: 93,000 page faults per
    128×128 pretraining step of 64 images, 0 with this (docs/BENCHMARKS.md, the bench.train sections with
    and without --system-allocator). The same as starting Python with MALLOC_MMAP_MAX_=0 and a huge
    MALLOC_TRIM_THRESHOLD_. The price: the process keeps its peak memory until it exits. A no-op returning
    False when disabled or off glibc (macOS, musl).
    """
    if not enabled or not _is_glibc():
        return False
    libc = ctypes.CDLL(None)
    return bool(libc.mallopt(_M_MMAP_MAX, _MMAP_NEVER)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, _TRIM_NEVER))


def _is_glibc() -> bool:
    try:
        return bool(os.confstr("CS_GNU_LIBC_VERSION"))
    except (AttributeError, ValueError, OSError):  # no confstr, or a libc that does not know the name
        return False


def adam(parameters: Iterable[torch.nn.Parameter], lr: float) -> torch.optim.Adam:
    """Adam with its fused kernel (one pass over all parameters per step) where torch has one: floating-point
    parameters on CPU or CUDA; the default multi-tensor kernel otherwise. Same update rule either way.

    Decided here, because torch only checks the devices at the first `step()`.
    """
    parameters = list(parameters)
    fused = all(p.device.type in ("cpu", "cuda") and p.is_floating_point() for p in parameters)
    return torch.optim.Adam(parameters, lr=lr, fused=fused or None)


MIXED_PRECISION = ("auto", "bf16", "off")
# Libraries whose kernels the model's results may depend on: part of every cache key (common/provenance.py).
# A library added later is one more line; one not installed keys as None.
KERNEL_LIBRARIES = ("torch", "numpy", "scipy", "scikit-learn", "threadpoolctl", "umap-learn", "pynndescent", "numba")


def autocast_dtype(setting: str, device: torch.device) -> torch.dtype | None:
    """`model.mixed_precision` for `device`: the autocast dtype of the training steps, or None for fp32.

    "auto" means bf16 on a CUDA device that supports it (no loss scaling needed, unlike fp16) and fp32
    elsewhere: a CPU without bf16 units (AVX2 only, like this project's 2-core machines) runs bf16 slower.
    "bf16" forces it on any device (the equivalence tests use it on CPU); "off" is fp32 everywhere.
    """
    if setting not in MIXED_PRECISION:
        raise ValueError(f"model.mixed_precision {setting!r}: expected one of {MIXED_PRECISION}")
    if setting == "auto":
        return torch.bfloat16 if device.type == "cuda" and _native_bf16(device) else None
    return torch.bfloat16 if setting == "bf16" else None


def precision_name(setting: str, device: torch.device) -> str:
    """"bf16" or "fp32": the precision `model.mixed_precision` trains in on `device` (for cache keys)."""
    return "bf16" if autocast_dtype(setting, device) else "fp32"


def _native_bf16(device: torch.device) -> bool:
    """bf16 tensor cores: compute capability 8.0 (Ampere) or later. Older GPUs (the T4 paap used, V100)
    emulate bf16, more slowly than fp32."""
    return torch.cuda.get_device_capability(device) >= (8, 0)


def autocast(device: torch.device, dtype: torch.dtype | None) -> torch.autocast:
    """Autocast context for a training step: a no-op when `dtype` is None."""
    return torch.autocast(device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None)


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
