"""DeepCluster's networks (Caron et al., ECCV 2018), sized for 28–128 px images.

The original uses AlexNet (conv 96-256-384-384-256, LRN replaced by BatchNorm, FC 4096-4096) on 224 px crops,
whose `view(…, 256·6·6)` fixes the input size. Here (models.md §4, "what must change for 128×128 input"):

* the trunk is a VGG-style stack of blocks, conv (first k×k with stride `first_stride` like AlexNet's
  strided conv1, then 3×3) → BatchNorm → ReLU → 2×2 max-pool, with configurable widths, ending in
  **adaptive average pooling** to `pool_size`² cells, so one network
  accepts any input side (28, 64, 128 px) without resizing;
* the classifier keeps the original shape (dropout → FC → ReLU → dropout → FC), with `hidden` units instead
  of 4096; the clustering features are its output **before the last ReLU**, as in the paper;
* the top layer (pseudo-label head) is a separate `nn.Linear` that the training loop re-initialises every
  epoch with N(0, 0.01) weights and zero bias (`reset_head`);
* the optional fixed **Sobel** front end is `SobelFilter`: grayscale by a 1×1 convolution with weights 1/C,
  then Sobel x and y (2 output channels); none of it is trained.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

HEAD_INIT_STD = 0.01  # paper / reference code: top layer weights ~ N(0, 0.01), bias 0

# Sobel kernels: SOBEL_X responds to intensity increasing left → right, SOBEL_Y top → bottom.
SOBEL_X = ((-1.0, 0.0, 1.0), (-2.0, 0.0, 2.0), (-1.0, 0.0, 1.0))
SOBEL_Y = ((-1.0, -2.0, -1.0), (0.0, 0.0, 0.0), (1.0, 2.0, 1.0))


class SobelFilter(nn.Module):
    """Fixed pre-processing: (B, C, H, W) → grayscale (B, 1, H, W) → Sobel x/y (B, 2, H, W).

    Removes colour and keeps edges, which in the paper stops k-means from clustering on colour alone. The
    Sobel convolution is zero-padded by one pixel, so the spatial size is kept and the border rows/columns
    see a zero frame. Its parameters have `requires_grad=False` and it never enters an optimiser.
    """

    def __init__(self, in_channels: int):
        super().__init__()
        self.grayscale = nn.Conv2d(in_channels, 1, kernel_size=1, bias=True)
        self.sobel = nn.Conv2d(1, 2, kernel_size=3, padding=1, bias=True)
        with torch.no_grad():
            self.grayscale.weight.fill_(1.0 / in_channels)          # (1, C, 1, 1)
            self.grayscale.bias.zero_()
            self.sobel.weight.copy_(torch.tensor([[SOBEL_X], [SOBEL_Y]]))  # (2, 1, 3, 3)
            self.sobel.bias.zero_()
        for parameter in self.parameters():
            parameter.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.sobel(self.grayscale(x))  # (B, C, H, W) → (B, 1, H, W) → (B, 2, H, W)


def conv_block(in_channels: int, out_channels: int, kernel: int, stride: int = 1) -> nn.Sequential:
    """conv (same padding, `stride`, no bias: BatchNorm follows) → BatchNorm → ReLU → 2×2 max-pool (halves H, W).

    `ceil_mode=True` so an odd side (e.g. 7 from 28 px) keeps its last row instead of dropping it, and a
    1-pixel map stays 1 pixel instead of collapsing to 0.
    """
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=kernel, stride=stride, padding=kernel // 2, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=2, stride=2, ceil_mode=True),
    )


class DeepClusterNet(nn.Module):
    """Trunk + classifier + re-initialisable top layer. Build with `build_deepcluster_net`.

    `features(x)` gives the clustering features (B, hidden) (classifier output before its last ReLU);
    `forward(x)` gives the pseudo-label logits (B, k) and needs `reset_head(k)` to have been called.
    """

    def __init__(self, in_channels: int, widths: Sequence[int], first_kernel: int, first_stride: int, pool_size: int,
                 hidden: int, dropout: float, sobel: bool):
        super().__init__()
        if not widths:
            raise ValueError("deepcluster: arch.widths must list at least one convolution width")
        if first_kernel < 1 or first_kernel % 2 == 0:
            raise ValueError(f"deepcluster: arch.first_kernel must be an odd positive size, not {first_kernel}")
        self.config = {"in_channels": int(in_channels), "widths": [int(w) for w in widths],
                       "first_kernel": int(first_kernel), "first_stride": int(first_stride),
                       "pool_size": int(pool_size), "hidden": int(hidden),
                       "dropout": float(dropout), "sobel": bool(sobel)}
        self.sobel = SobelFilter(in_channels) if sobel else None
        trunk_in = 2 if sobel else in_channels
        kernels = [first_kernel] + [3] * (len(widths) - 1)
        strides = [first_stride] + [1] * (len(widths) - 1)
        channels = [trunk_in, *widths]
        self.trunk = nn.Sequential(*(conv_block(channels[i], channels[i + 1], kernels[i], strides[i])
                                     for i in range(len(widths))))
        self.pool = nn.AdaptiveAvgPool2d(pool_size)
        flat = widths[-1] * pool_size * pool_size
        self.classifier = nn.Sequential(   # ends before the last ReLU: its output is the feature vector
            nn.Dropout(dropout),
            nn.Linear(flat, hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(hidden, hidden),
        )
        self.feature_dim = int(hidden)
        self.head: nn.Linear | None = None
        self._init_weights()

    def _init_weights(self) -> None:
        """He-normal convolutions (ReLU nets), BatchNorm to identity, N(0, 0.01) linear layers with zero bias —
        the initialisation of the reference code, which this net otherwise does not reproduce. The Sobel
        filter is left as built."""
        for module in [*self.trunk.modules(), *self.classifier.modules()]:
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, 0.0, HEAD_INIT_STD)
                nn.init.zeros_(module.bias)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) float in [0, 1] → (B, hidden), the classifier output before its last ReLU."""
        if self.sobel is not None:
            x = self.sobel(x)                 # (B, 2, H, W)
        x = self.trunk(x)                     # (B, widths[-1], H / (first_stride · 2^L), …) (rounded up)
        x = self.pool(x).flatten(1)           # (B, widths[-1] · pool_size²)
        return self.classifier(x)             # (B, hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) → logits (B, k) of the current pseudo-labels."""
        if self.head is None:
            raise RuntimeError("DeepClusterNet.forward before reset_head(k): there is no top layer yet")
        return self.head(torch.relu(self.features(x)))  # (B, hidden) → (B, k)

    def reset_head(self, k: int, generator: torch.Generator | None = None) -> nn.Linear:
        """Replace the top layer by a fresh `Linear(hidden, k)`, weights ~ N(0, 0.01), bias 0, on the trunk's
        device. Returns it (the caller builds its own optimiser over it, as the reference code does)."""
        device = next(self.classifier.parameters()).device
        head = nn.Linear(self.feature_dim, k)
        with torch.no_grad():
            head.weight.copy_(torch.randn(head.weight.shape, generator=generator) * HEAD_INIT_STD)
            head.bias.zero_()
        self.head = head.to(device)
        return self.head

    def body_parameters(self) -> list[nn.Parameter]:
        """The trained parameters other than the top layer (the fixed Sobel filter excluded)."""
        return [p for p in [*self.trunk.parameters(), *self.classifier.parameters()] if p.requires_grad]


def build_deepcluster_net(in_channels: int, arch: dict, sobel: bool) -> DeepClusterNet:
    """Build the net from the `deepcluster.arch` params: widths, first_kernel, first_stride, pool_size, hidden,
    dropout.

    Raises:
        KeyError: a required arch key is missing (the message names it).
    """
    required = ("widths", "first_kernel", "first_stride", "pool_size", "hidden", "dropout")
    missing = [key for key in required if key not in arch]
    if missing:
        raise KeyError(f"params.yaml deepcluster.arch: missing {missing} (needs {list(required)})")
    return DeepClusterNet(in_channels=in_channels, widths=arch["widths"], first_kernel=arch["first_kernel"],
                          first_stride=arch["first_stride"], pool_size=arch["pool_size"], hidden=arch["hidden"],
                          dropout=arch["dropout"], sobel=sobel)
