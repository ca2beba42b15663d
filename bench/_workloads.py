"""The three DCEC-Paint workloads the training benchmarks time, built from the project's own model code.

* `pretrain`: one CAE reconstruction step — forward, MSE, backward, Adam (model/pretrain.py's inner loop);
* `cluster`: one DCEC step — forward through the clustering layer, 0.9·KL(P‖Q) + 0.1·MSE, backward, Adam
  (model/dcec.py's inner loop, with P fixed as between two target updates);
* `target`: the full-dataset target-distribution pass — encoder + soft assignment in inference mode over
  every image, then P from Q (what model/dcec.py does every `update_interval` iterations).

Each workload comes in four variants, each adding to the one before:
* `eager`: plain PyTorch — contiguous NCHW weights and input, activations that allocate their output, the
  default (multi-tensor) Adam: the "before";
* `channels_last`: weights and input in NHWC strides;
* `tuned`: + in-place activations and fused Adam — exactly the step model/ trains with;
* `compile`: `tuned` + `torch.compile` through model.runtime.maybe_compile, which falls back to eager
  execution when compilation fails (the row then says so).
The glibc allocator setting (model.keep_freed_memory) is process-wide, so bench/train.py compares it across
two runs, not as a variant.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from unittest import mock

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from model.dcec import clustering_loss, target_distribution
from model.nets import ACTIVATIONS, DCECNet, FastConvTranspose2d, build_cae
from model.runtime import adam, autocast, autocast_dtype, maybe_compile

VARIANTS = ("eager", "channels_last", "tuned", "compile")
TUNED = ("tuned", "compile")  # the variants with in-place activations and fused Adam, as model/ trains
WORKLOADS = ("pretrain", "cluster", "target")
UINT8_SCALE = 255.0


@dataclass(frozen=True)
class Architecture:
    """params.yaml `model` (filters, kernels, embedding, activation, k) and the loss weights of `cluster`."""

    filters: tuple[int, ...]
    kernels: tuple[int, ...]
    embedding: int
    activation: str
    n_clusters: int
    kl_weight: float
    recon_weight: float
    lr: float
    mixed_precision: str = "off"  # params model.mixed_precision; the tuned variants train under it
    channels: int = 3


@dataclass
class Workload:
    """A callable doing one unit of work on `images_per_call` images; `compiled` False if compile fell back."""

    name: str
    variant: str
    call: Callable[[], object]
    images_per_call: int
    flops_per_image: float
    forward: Callable | None = None  # what maybe_compile returned (compile variant only)

    @property
    def compiled(self) -> bool | None:
        """None when compile was not asked for; after the first call, False if it fell back to eager
        (model.runtime's fallback drops its compiled callable on the first failure)."""
        if self.variant != "compile":
            return None
        return getattr(self.forward, "compiled", None) is not None


def architecture_from_params(params: dict) -> Architecture:
    model, cluster = params["model"], params["cluster"]
    return Architecture(filters=tuple(model["filters"]), kernels=tuple(model["kernels"]),
                        embedding=int(model["embedding"]), activation=str(model["activation"]),
                        n_clusters=int(model["k"]), kl_weight=float(cluster["kl_weight"]),
                        recon_weight=float(cluster["recon_weight"]), lr=float(cluster["lr"]),
                        mixed_precision=str(model["mixed_precision"]))


def synthetic_images(n: int, size: int, channels: int, seed: int) -> torch.Tensor:
    """(N, S, S, C) uint8 noise, as `data/final/images.npy` would be loaded (throughput ignores content)."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, size, size, channels), dtype=torch.uint8, generator=generator)


def model_input(batch_u8: torch.Tensor, device: torch.device, channels_last: bool) -> torch.Tensor:
    """(B, H, W, C) uint8 → (B, C, H, W) float32 in [0, 1], in NHWC strides or plain contiguous NCHW."""
    x = batch_u8.to(device, non_blocking=True).permute(0, 3, 1, 2).float().div_(UINT8_SCALE)  # (B, C, H, W)
    return x.contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)


def build_net(arch: Architecture, size: int, device: torch.device, variant: str, seed: int) -> DCECNet:
    """A freshly initialised DCEC net (CAE + clustering layer) on `device`, laid out as `variant` asks."""
    torch.manual_seed(seed)
    cae = build_cae(size, arch.channels, arch.filters, arch.kernels, arch.embedding, arch.activation)
    for module in cae.modules():
        if isinstance(module, tuple(ACTIVATIONS.values())):  # model.nets builds them in place
            module.inplace = variant in TUNED
    net = DCECNet(cae, arch.n_clusters).to(device)
    return net if variant == "eager" else net.to(memory_format=torch.channels_last)


def optimiser(parameters, variant: str, lr: float) -> torch.optim.Adam:
    """model/'s fused Adam for the tuned variants, PyTorch's default Adam for the others."""
    return adam(parameters, lr) if variant in TUNED else torch.optim.Adam(parameters, lr=lr)


def step_precision(arch: Architecture, variant: str, device: torch.device) -> torch.dtype | None:
    """The tuned variants' autocast dtype (model.mixed_precision: bf16 on CUDA under "auto"); fp32 otherwise."""
    return autocast_dtype(arch.mixed_precision, device) if variant in TUNED else None


def count_flops(call: Callable[[], object]) -> int:
    """FLOPs of one call as torch.utils.flop_counter.FlopCounterMode counts them: matmuls and convolutions
    (forward and backward), not element-wise ops, activations or the optimiser update. Counted with the
    decoder as nn.ConvTranspose2d: model.nets.FastConvTranspose2d computes the same function on other kernels,
    the sub-pixel one multiplying some zeros, and the yardstick is the net's arithmetic, the same in Keras."""
    counter = FlopCounterMode(display=False)
    with counter, mock.patch.object(FastConvTranspose2d, "forward", nn.ConvTranspose2d.forward):
        call()
    return int(counter.get_total_flops())


def analytic_forward_flops(cae: nn.Module, size: int, channels: int) -> int:
    """Forward FLOPs of a CAE for one image, from its layer shapes: 2·C_in·C_out·k²·H_out·W_out per conv,
    2·C_in·C_out·k²·H_in·W_in per transposed conv (each input pixel scatters a k×k patch), 2·in·out per
    linear layer. An independent check on FlopCounterMode."""
    total = 0

    def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        nonlocal total
        x = inputs[0]
        if isinstance(module, nn.ConvTranspose2d):
            kh, kw = module.kernel_size
            total += 2 * module.in_channels * module.out_channels * kh * kw * x.shape[2] * x.shape[3]
        elif isinstance(module, nn.Conv2d):
            kh, kw = module.kernel_size
            total += 2 * module.in_channels * module.out_channels * kh * kw * output.shape[2] * output.shape[3]
        elif isinstance(module, nn.Linear):
            total += 2 * module.in_features * module.out_features

    handles = [m.register_forward_hook(hook) for m in cae.modules()
               if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear))]
    try:
        with torch.no_grad():
            cae(torch.zeros(1, channels, size, size))
    finally:
        for handle in handles:
            handle.remove()
    return total


class BatchCycle:
    """Batches of `batch_size` indices read in turn from one seeded permutation (as the training loops do)."""

    def __init__(self, n: int, batch_size: int, seed: int):
        if batch_size > n:
            raise ValueError(f"batch size {batch_size} is larger than the {n} images")
        self.order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
        self.batch_size, self.position = batch_size, 0

    def next(self) -> torch.Tensor:
        if self.position + self.batch_size > self.order.shape[0]:
            self.position = 0
        idx = self.order[self.position:self.position + self.batch_size]
        self.position += self.batch_size
        return idx


def pretrain_workload(arch: Architecture, images: torch.Tensor, batch_size: int, variant: str,
                      device: torch.device, seed: int) -> Workload:
    channels_last = variant != "eager"
    cae = build_net(arch, images.shape[1], device, variant, seed).cae
    optimizer = optimiser(cae.parameters(), variant, arch.lr)
    forward = maybe_compile(cae, variant == "compile")
    batches = BatchCycle(images.shape[0], batch_size, seed)
    amp_dtype = step_precision(arch, variant, device)

    def step(model: Callable = forward) -> None:
        x = model_input(images[batches.next()], device, channels_last)  # (B, C, S, S)
        with autocast(device, amp_dtype):
            _, x_hat = model(x)  # (B, C, S, S)
            loss = F.mse_loss(x_hat.float(), x)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    flops = count_flops(lambda: step(cae))
    return Workload("pretrain", variant, step, batch_size, flops / batch_size, forward)


def cluster_workload(arch: Architecture, images: torch.Tensor, batch_size: int, variant: str,
                     device: torch.device, seed: int) -> Workload:
    channels_last = variant != "eager"
    net = build_net(arch, images.shape[1], device, variant, seed)
    optimizer = optimiser(net.parameters(), variant, arch.lr)
    forward = maybe_compile(net, variant == "compile")
    batches = BatchCycle(images.shape[0], batch_size, seed)
    generator = torch.Generator().manual_seed(seed)
    q_fixed = torch.rand(images.shape[0], arch.n_clusters, generator=generator)
    p = target_distribution(q_fixed / q_fixed.sum(dim=1, keepdim=True)).to(device)  # (N, K), fixed
    amp_dtype = step_precision(arch, variant, device)

    def step(model: Callable = forward) -> None:
        idx = batches.next()
        x = model_input(images[idx], device, channels_last)  # (B, C, S, S)
        with autocast(device, amp_dtype):
            q, x_hat, _ = model(x)  # (B, K), (B, C, S, S)
            loss = (arch.kl_weight * clustering_loss(q, p[idx.to(device)])
                    + arch.recon_weight * F.mse_loss(x_hat.float(), x))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    flops = count_flops(lambda: step(net))
    return Workload("cluster", variant, step, batch_size, flops / batch_size, forward)


def target_workload(arch: Architecture, images: torch.Tensor, eval_batch_size: int, variant: str,
                    device: torch.device, seed: int) -> Workload:
    """One call = Q and P for ALL `images` (N must be a multiple of the batch for a single compiled shape)."""
    channels_last = variant != "eager"
    net = build_net(arch, images.shape[1], device, variant, seed).eval()

    assign = _Assign(net)
    assign_fn = maybe_compile(assign, variant == "compile")
    n = images.shape[0]
    amp_dtype = step_precision(arch, variant, device)  # model/dcec.py predicts in the training precision

    def full_pass(fn: Callable = assign_fn, stop: int = n) -> torch.Tensor:
        with torch.inference_mode(), autocast(device, amp_dtype):
            q = torch.cat([fn(model_input(images[start:start + eval_batch_size], device, channels_last))
                           for start in range(0, stop, eval_batch_size)])  # (N, K)
            return target_distribution(q)  # (N, K)

    batch = min(eval_batch_size, n)
    flops = count_flops(lambda: full_pass(assign, batch))
    return Workload("target", variant, full_pass, n, flops / batch, assign_fn)


class _Assign(nn.Module):
    """encoder + clustering layer as one module, so torch.compile sees the whole inference graph."""

    def __init__(self, net: DCECNet):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.clustering(self.net.cae.encode(x))  # (B, K)


BUILDERS = {"pretrain": pretrain_workload, "cluster": cluster_workload, "target": target_workload}
