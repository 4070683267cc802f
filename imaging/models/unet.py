"""A plain-PyTorch U-Net for semantic segmentation of grayscale micrographs.

Encoder: ``depth`` down-sampling stages of two 3×3 conv → norm → ReLU blocks, channels doubling from
``base_channels``; a bottleneck; a mirrored decoder with transposed-conv up-sampling and skip connections.
Dropout (``nn.Dropout2d``) sits after each block when ``dropout > 0``; ``UNet.enable_mc_dropout`` turns it on at
inference for Monte-Carlo dropout while leaving normalization in eval mode.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

Norm = Literal["batch", "group"]


def _norm(kind: Norm, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    groups = next(g for g in (8, 4, 2, 1) if channels % g == 0)
    return nn.GroupNorm(groups, channels)


class ConvBlock(nn.Sequential):
    """Two (3×3 conv → norm → ReLU) layers, then dropout. x: (B, C_in, H, W) → (B, C_out, H, W)."""

    def __init__(self, c_in: int, c_out: int, norm: Norm, dropout: float) -> None:
        super().__init__(
            nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
            _norm(norm, c_out),
            nn.ReLU(inplace=True),
            nn.Conv2d(c_out, c_out, 3, padding=1, bias=False),
            _norm(norm, c_out),
            nn.ReLU(inplace=True),
            nn.Dropout2d(dropout) if dropout > 0 else nn.Identity(),
        )


class UNet(nn.Module):
    """U-Net: x: (B, C_in, H, W) → logits (B, n_classes, H, W); H and W must be divisible by ``2**depth``.

    ``encoder`` (the down path and bottleneck) and ``decoder`` (up path and head) are separate module lists so
    that transfer learning can load or freeze the encoder alone (``encoder_parameters``).
    """

    def __init__(
        self,
        in_channels: int = 1,
        n_classes: int = 5,
        base_channels: int = 16,
        depth: int = 4,
        dropout: float = 0.0,
        norm: Norm = "batch",
    ) -> None:
        super().__init__()
        if depth < 1:
            raise ValueError(f"depth must be ≥ 1, got {depth}")
        self.depth = depth
        chans = [base_channels * 2**i for i in range(depth + 1)]
        self.encoder = nn.ModuleList()
        c_prev = in_channels
        for c in chans:  # depth down stages + the bottleneck
            self.encoder.append(ConvBlock(c_prev, c, norm, dropout))
            c_prev = c
        self.pool = nn.MaxPool2d(2)
        self.ups = nn.ModuleList()
        self.decoder = nn.ModuleList()
        for c in reversed(chans[:-1]):
            self.ups.append(nn.ConvTranspose2d(c * 2, c, 2, stride=2))
            self.decoder.append(ConvBlock(c * 2, c, norm, dropout))
        self.head = nn.Conv2d(chans[0], n_classes, 1)

    def forward(self, x: Tensor) -> Tensor:
        """x: (B, C_in, H, W) → logits (B, n_classes, H, W)."""
        h, w = x.shape[-2:]
        k = 2**self.depth
        if h % k or w % k:
            raise ValueError(f"input H×W = {h}×{w} must be divisible by 2**depth = {k}")
        skips: list[Tensor] = []
        for i, block in enumerate(self.encoder):
            x = block(x)
            if i < self.depth:
                skips.append(x)
                x = self.pool(x)
        for up, block, skip in zip(self.ups, self.decoder, reversed(skips), strict=True):
            x = block(torch.cat([up(x), skip], dim=1))
        return self.head(x)

    def encoder_parameters(self) -> list[nn.Parameter]:
        """Parameters of the down path and bottleneck (what ``load: encoder`` transfers and freezing holds)."""
        return list(self.encoder.parameters())

    def set_encoder_trainable(self, trainable: bool) -> None:
        """Freeze (``False``) or unfreeze the encoder; frozen, its norm layers also keep their running stats."""
        for p in self.encoder_parameters():
            p.requires_grad_(trainable)
        self._encoder_frozen = not trainable
        if not trainable:
            self.encoder.eval()

    def train(self, mode: bool = True) -> UNet:
        super().train(mode)
        if mode and getattr(self, "_encoder_frozen", False):
            self.encoder.eval()  # frozen encoder: BatchNorm running statistics stay as loaded
        return self

    def enable_mc_dropout(self) -> UNet:
        """Eval mode with dropout layers active: repeated forward passes sample the MC-dropout posterior."""
        self.eval()
        for m in self.modules():
            if isinstance(m, nn.Dropout2d):
                m.train()
        return self
