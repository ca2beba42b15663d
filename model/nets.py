"""The convolutional autoencoder of DCEC (Guo et al. 2017) and the DCEC clustering layer, in PyTorch.

Layout (models.md §1.1), for input S×S×C and filters (f1, f2, f3), kernels (k1, k2, k3), stride 2:

    encoder: conv k1 → act → conv k2 → act → conv k3 → act → flatten → linear embedding (no activation)
    decoder: linear → act → reshape → deconv k3 → act → deconv k2 → act → deconv k1 (linear output)

Padding reproduces Keras' shapes: 'same'-style convolutions (pad (k-1)//2) for the first two layers,
and for the third too when S % 8 == 0 (128 → 64 → 32 → 16, flatten 16·16·128 = 32,768); otherwise
Guo's 'valid' third convolution (28 → 14 → 7 → 3, flatten 3·3·128 = 1,152). The transposed
convolutions use output_padding chosen so the decoder retraces the encoder's sizes exactly.
Weights are Glorot-uniform and biases zero, as Keras initialises them. The activations work in place: a
convolution's backward pass needs its input, not its output, and ELU/ReLU differentiate from their own
result, so the pre-activation tensor is never needed (one 33 MB tensor fewer per 64×64 layer and batch of 64
at 128×128; same values).

The transposed convolutions are `FastConvTranspose2d` (same parameters, same state_dict, same function), whose
kernels are chosen from bench.step_profile's measurements (docs/BENCHMARKS.md, issue #31): in channels_last,
oneDNN's weight gradient of a transposed convolution runs at half the speed of the equal convolution's, its
forward pass with fewer than 8 output channels (the decoder's last layer) at a sixth of it, and in bf16 its
forward pass with an odd output size (Guo's first decoder layer) 5–7x slower than its backward-data kernel.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from model.runtime import save_atomic

ACTIVATIONS = {"elu": nn.ELU, "relu": nn.ReLU}
STRIDE = 2


def soft_assign(z: torch.Tensor, centres: torch.Tensor, alpha: float = 1.0) -> torch.Tensor:
    """Student-t soft assignment q_ij ∝ (1 + ‖z_i − μ_j‖²/α)^(−(α+1)/2), rows normalised (DEC eq. 1).

    z: (B, E), centres: (K, E) → q: (B, K), each row sums to 1. Always computed in fp32, also inside a
    mixed-precision autocast region: q feeds log(q) and the target distribution's squares.
    """
    with torch.autocast(z.device.type, enabled=False):
        z, centres = z.float(), centres.float()
        sq_dist = torch.cdist(z, centres).pow(2)  # (B, K); cdist avoids the cancellation of ‖z‖²+‖μ‖²−2zμ
        kernel = (1.0 + sq_dist / alpha).pow(-(alpha + 1.0) / 2.0)  # (B, K)
        return kernel / kernel.sum(dim=1, keepdim=True)


def _conv_out(size: int, kernel: int, padding: int) -> int:
    return (size + 2 * padding - kernel) // STRIDE + 1


def _glorot_init(module: nn.Module) -> None:
    """Keras defaults: glorot_uniform kernels, zero biases (fan_in + fan_out is symmetric, so the
    transposed-conv weight layout gives the same bound)."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        nn.init.xavier_uniform_(module.weight)
        nn.init.zeros_(module.bias)


SUBPIXEL_MAX_CHANNELS = 7  # fewer output channels than one AVX2 vector of fp32: oneDNN's deconvolution idles


def _layout(x: torch.Tensor) -> torch.memory_format:
    return torch.channels_last if x.is_contiguous(memory_format=torch.channels_last) else torch.contiguous_format


def _compute_dtype(x: torch.Tensor) -> torch.dtype:
    """The dtype x's layer computes in: autocast's for an fp32 x where autocast is on (bf16 mixed precision),
    else x's (autocast leaves other dtypes as they are)."""
    if x.dtype == torch.float32 and torch.is_autocast_enabled("cpu"):
        return torch.get_autocast_dtype("cpu")
    return x.dtype


def _subpixel_taps(kernel: int, padding: int) -> tuple[torch.Tensor, int, int]:
    """Per output phase r ∈ {0, 1}, which kernel taps a stride-2 transposed convolution applies, as a
    correlation window over the input: (taps (2, K) with `kernel` for "no tap", pad before, pad after).

    Output o = 2i − padding + t (input i, tap t). For o = 2m + r the taps are t ≡ r + padding (mod 2), reading
    input m + (r + padding − t)/2; ordered by that offset they form a correlation window of K positions.
    """
    offsets = {}  # (phase, offset from m) -> tap
    for r in (0, 1):
        for t in range(kernel):
            if (r + padding - t) % 2 == 0:
                offsets[(r, (r + padding - t) // 2)] = t
    before = -min(offset for _, offset in offsets)
    after = max(offset for _, offset in offsets)
    window = before + after + 1
    taps = torch.full((2, window), kernel, dtype=torch.long)
    for (r, offset), t in offsets.items():
        taps[r, offset + before] = t
    return taps, before, after


def subpixel_conv_transpose(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, padding: int,
                            output_size: int) -> torch.Tensor:
    """A stride-2 transposed convolution as one ordinary convolution with the four output phases as channels,
    then the phases interleaved into pixels (the sub-pixel convolution of Shi et al. 2016): the same sums, on
    oneDNN's forward-convolution kernels.

    x (B, Cin, n, n), weight (Cin, Cout, k, k) → (B, Cout, output_size, output_size), in x's memory format.
    """
    (n_in, n_out), kernel, n = weight.shape[:2], weight.shape[-1], x.shape[-1]
    taps, before, after = _subpixel_taps(kernel, padding)
    after += max(0, -(-output_size // 2) - n)  # 'valid' layers (odd output) read one phase row past the input
    padded = F.pad(weight, (0, 1, 0, 1))  # tap index `kernel` reads zero: (Cin, Cout, k+1, k+1)
    window = taps.shape[1]
    phases = padded[:, :, taps.view(2, window, 1, 1), taps.view(1, 1, 2, window)]  # (Cin, Cout, 2, K, 2, K)
    phases = phases.permute(2, 4, 1, 0, 3, 5).reshape(4 * n_out, n_in, window, window)  # (rh·2+rw)·Cout + c
    layout = _layout(x)
    bias4 = None if bias is None else bias.repeat(4)  # (4·Cout,): one bias per phase
    if before != after:
        x = F.pad(x, (before, after, before, after))
    y = F.conv2d(x, phases.contiguous(memory_format=layout), bias4,
                 padding=before if before == after else 0)  # (B, 4·Cout, m, m)
    batch, _, rows, cols = y.shape
    by_phase = y.permute(0, 2, 3, 1).view(batch, rows, cols, 2, 2, n_out).permute(0, 1, 3, 2, 4, 5)  # (B, m, rh, m, rw, Cout)
    pixels = torch.empty(batch, n_out, 2 * rows, 2 * cols, dtype=y.dtype, device=y.device, memory_format=layout)
    pixels.permute(0, 2, 3, 1).view(batch, rows, 2, cols, 2, n_out).copy_(by_phase)  # one copy, no view returned
    if output_size == 2 * rows:
        return pixels  # (B, Cout, S, S)
    return pixels[:, :, :output_size, :output_size].clone(memory_format=layout)  # 'valid' layers: odd S


def adjoint_conv_transpose(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, padding: int,
                           output_size: int) -> torch.Tensor:
    """A stride-2 transposed convolution as the input gradient of the convolution it transposes, on oneDNN's
    backward-data kernel, in the dtype the layer computes in (autocast does not cover that kernel). In bf16 the
    bias is added to the rounded sums (one rounding more than oneDNN's deconvolution, which adds it before).

    x (B, Cin, n, n), weight (Cin, Cout, k, k) → (B, Cout, output_size, output_size), in x's memory format.
    """
    dtype = _compute_dtype(x)
    x, weight = x.to(dtype), weight.to(dtype)
    template = torch.empty(x.shape[0], weight.shape[1], output_size, output_size, dtype=dtype, device=x.device,
                           memory_format=_layout(x))  # the convolution's input: only its shape and format are read
    y = torch.ops.aten.convolution_backward(x, template, weight, None, [STRIDE, STRIDE], [padding, padding], [1, 1],
                                            False, [0, 0], 1, [True, False, False])[0]  # (B, Cout, S, S)
    return y if bias is None else y.add_(bias.to(dtype).view(1, -1, 1, 1))


def conv_transpose_forward(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, padding: int,
                           output_padding: int) -> torch.Tensor:
    """F.conv_transpose2d at stride 2, in the sub-pixel form where the layer has few output channels, and in the
    adjoint form in bf16 where the output size is odd (see the module docstring).

    x (B, Cin, n, n) → (B, Cout, S, S), S = (n − 1)·2 − 2·padding + kernel + output_padding.
    """
    size = (x.shape[-1] - 1) * STRIDE - 2 * padding + weight.shape[-1] + output_padding
    if weight.shape[1] <= SUBPIXEL_MAX_CHANNELS:
        return subpixel_conv_transpose(x, weight, bias, padding, size)
    if size % STRIDE and _compute_dtype(x) == torch.bfloat16:
        return adjoint_conv_transpose(x, weight, bias, padding, size)
    return F.conv_transpose2d(x, weight, bias, STRIDE, padding, output_padding)


class _TransposedConvolution(torch.autograd.Function):
    """Forward by `conv_transpose_forward`; backward by the fast kernels of the adjoint: a transposed
    convolution's input gradient is the forward convolution of its output gradient, and its weight gradient is
    the weight gradient of that convolution with the roles of input and output swapped."""

    @staticmethod
    @torch.amp.custom_fwd(device_type="cpu")
    def forward(ctx, x, weight, bias, padding: int, output_padding: int):
        ctx.save_for_backward(x, weight)
        ctx.padding = padding
        return conv_transpose_forward(x, weight, bias, padding, output_padding)

    @staticmethod
    @torch.amp.custom_bwd(device_type="cpu")
    def backward(ctx, grad_y):
        x, weight = ctx.saved_tensors
        grad_y = grad_y.contiguous(memory_format=_layout(x))  # (B, Cout, S, S)
        x_, weight_ = x.to(grad_y.dtype), weight.to(grad_y.dtype)  # bf16 under autocast, as the forward ran
        stride, padding = [STRIDE, STRIDE], [ctx.padding, ctx.padding]
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_x = F.conv2d(grad_y, weight_, None, stride, padding).to(x.dtype)  # (B, Cin, n, n)
        if ctx.needs_input_grad[1]:
            grad_w = torch.ops.aten.convolution_backward(x_, grad_y, weight_, None, stride, padding, [1, 1], False,
                                                         [0, 0], 1, [False, True, False])[1].to(weight.dtype)
        if ctx.needs_input_grad[2]:
            # In bf16: accumulated in fp32, rounded to bf16 as autocast's own convolutions do, without the fp32
            # copy of grad_y that sum(dtype=...) makes (12% of a bf16 step at 128 px).
            grad_b = grad_y.sum(dim=(0, 2, 3)).to(weight.dtype)
        return grad_x, grad_w, grad_b, None, None


class FastConvTranspose2d(nn.ConvTranspose2d):
    """nn.ConvTranspose2d at stride 2 (square kernels, no dilation or groups) on the CPU kernels of the module
    docstring; parameters and state_dict are nn.ConvTranspose2d's, so saved CAEs load unchanged. On other
    devices it is nn.ConvTranspose2d (the kernels were chosen by CPU measurements)."""

    def forward(self, x: torch.Tensor, output_size: list[int] | None = None) -> torch.Tensor:
        if x.device.type != "cpu" or output_size is not None:
            return super().forward(x, output_size)
        return _TransposedConvolution.apply(x, self.weight, self.bias, self.padding[0], self.output_padding[0])


class CAE(nn.Module):
    """Convolutional autoencoder; build it with `build_cae`. `config` holds the builder's arguments."""

    def __init__(self, input_size: int, channels: int, filters: Sequence[int], kernels: Sequence[int],
                 embedding: int, activation: str):
        super().__init__()
        if len(filters) != 3 or len(kernels) != 3:
            raise ValueError(f"the CAE has exactly 3 conv layers; got filters={filters}, kernels={kernels}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation {activation!r} not in {sorted(ACTIVATIONS)}")
        self.config = {"input_size": int(input_size), "channels": int(channels), "filters": [int(f) for f in filters],
                       "kernels": [int(k) for k in kernels], "embedding": int(embedding), "activation": activation}
        self.embedding_dim = int(embedding)
        act = ACTIVATIONS[activation]
        same_last = input_size % 8 == 0
        paddings = [(k - 1) // 2 for k in kernels]
        if not same_last:
            paddings[2] = 0  # Guo's 'valid' conv3 when the size is not a multiple of 8
        sizes = [int(input_size)]
        for k, p in zip(kernels, paddings):
            sizes.append(_conv_out(sizes[-1], k, p))
        if sizes[-1] < 1:
            raise ValueError(f"input size {input_size} is too small for kernels {list(kernels)}")
        self.feature_shape = (filters[2], sizes[3], sizes[3])  # (C3, H3, W3)
        flat = filters[2] * sizes[3] * sizes[3]

        in_ch = [channels, filters[0], filters[1]]
        self.encoder = nn.Sequential()
        for i in range(3):
            self.encoder.append(nn.Conv2d(in_ch[i], filters[i], kernels[i], STRIDE, paddings[i]))
            self.encoder.append(act(inplace=True))
        self.encoder.append(nn.Flatten())
        self.embed = nn.Linear(flat, embedding)

        self.expand = nn.Sequential(nn.Linear(embedding, flat), act(inplace=True))
        self.decoder = nn.Sequential()
        for i in (2, 1, 0):
            target, source = sizes[i], sizes[i + 1]
            natural = (source - 1) * STRIDE - 2 * paddings[i] + kernels[i]
            output_padding = target - natural
            if not 0 <= output_padding < STRIDE:
                raise ValueError(f"input size {input_size}: the decoder cannot map {source} back to {target}")
            out_ch = in_ch[i]
            self.decoder.append(FastConvTranspose2d(filters[i], out_ch, kernels[i], STRIDE, paddings[i],
                                                    output_padding=output_padding))
            if i > 0:
                self.decoder.append(act(inplace=True))
        self.apply(_glorot_init)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, S, S) float in [0, 1] → (B, E)."""
        return self.embed(self.encoder(x))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """(B, E) → (B, C, S, S), linear output."""
        h = self.expand(z).view(z.shape[0], *self.feature_shape)  # (B, C3, H3, W3)
        return self.decoder(h.contiguous(memory_format=torch.channels_last))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, C, S, S) → (z (B, E), x_hat (B, C, S, S))."""
        z = self.encode(x)
        return z, self.decode(z)


def build_cae(input_size: int, channels: int, filters: Sequence[int] = (32, 64, 128),
              kernels: Sequence[int] = (5, 5, 3), embedding: int = 32, activation: str = "elu") -> CAE:
    """DCEC-Paint by default (128×128×3 in, ELU, embedding 32: 2,384,931 parameters);
    Guo's MNIST net is `build_cae(28, 1, embedding=10, activation="relu")`."""
    return CAE(input_size, channels, filters, kernels, embedding, activation)


class ClusteringLayer(nn.Module):
    """DEC/DCEC clustering layer: trainable centres (K, E), Student-t soft assignment.

    The centres are a Parameter from construction on, so an optimiser built afterwards sees them; load
    k-means centres with `set_centres` (an in-place copy), never by replacing the Parameter.
    """

    def __init__(self, n_clusters: int, dim: int, alpha: float = 1.0):
        super().__init__()
        self.alpha = float(alpha)
        self.centres = nn.Parameter(torch.empty(n_clusters, dim))  # (K, E)
        nn.init.xavier_uniform_(self.centres)

    @torch.no_grad()
    def set_centres(self, centres: torch.Tensor) -> None:
        """Copy (K, E) centres into the existing Parameter."""
        if tuple(centres.shape) != tuple(self.centres.shape):
            raise ValueError(f"centres of shape {tuple(centres.shape)}, expected {tuple(self.centres.shape)}")
        self.centres.data.copy_(centres.to(self.centres.device, self.centres.dtype))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """(B, E) → q (B, K)."""
        return soft_assign(z, self.centres, self.alpha)


class DCECNet(nn.Module):
    """CAE + clustering layer on its embedding: `forward(x) -> (q, x_hat, z)`."""

    def __init__(self, cae: CAE, n_clusters: int, alpha: float = 1.0):
        super().__init__()
        self.cae = cae
        self.clustering = ClusteringLayer(n_clusters, cae.embedding_dim, alpha)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(B, C, S, S) → q (B, K), x_hat (B, C, S, S), z (B, E)."""
        z = self.cae.encode(x)
        return self.clustering(z), self.cae.decode(z), z


def save_cae(cae: CAE, path: str | Path, extra: dict | None = None) -> None:
    """Write {config, state_dict, **extra} atomically; loadable with `torch.load(weights_only=True)`."""
    state = {k: v.detach().cpu().contiguous() for k, v in cae.state_dict().items()}
    save_atomic({"config": dict(cae.config), "state_dict": state, **(extra or {})}, path)


def cae_from_state(saved: dict, source: str) -> CAE:
    """Rebuild a CAE from a {config, state_dict} dict (as `save_cae` writes it)."""
    if not isinstance(saved, dict) or "config" not in saved or "state_dict" not in saved:
        raise ValueError(f"{source}: not a CAE checkpoint (expected keys 'config' and 'state_dict')")
    cae = build_cae(**saved["config"])
    cae.load_state_dict(saved["state_dict"])
    return cae


def load_cae(path: str | Path) -> CAE:
    """Rebuild the CAE saved by `save_cae` (CPU tensors; move it where needed)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found (made by the 'pretrain' stage: dvc repro pretrain)")
    return cae_from_state(torch.load(path, map_location="cpu", weights_only=True), str(path))
