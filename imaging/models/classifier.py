"""A small CNN image classifier: a stack of U-Net ``ConvBlock`` stages with max pooling, global average pooling and a
linear head, so that it takes micrographs of any size ≥ ``2**(depth-1)`` pixels."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn

from imaging.models.unet import ConvBlock, Norm


class Encoder(nn.Module):
    """``depth`` ConvBlock stages (channels doubling from ``base_channels``, 2×2 max pool between them) then global
    average pooling. x: (B, C_in, H, W) → features (B, ``out_channels``)."""

    def __init__(self, in_channels: int, base_channels: int, depth: int, dropout: float, norm: Norm) -> None:
        super().__init__()
        chans = [base_channels * 2**i for i in range(depth)]
        self.blocks = nn.ModuleList()
        c_prev = in_channels
        for c in chans:
            self.blocks.append(ConvBlock(c_prev, c, norm, dropout))
            c_prev = c
        self.pool = nn.MaxPool2d(2)
        self.out_channels = chans[-1]

    def forward(self, x: Tensor) -> Tensor:
        for i, block in enumerate(self.blocks):
            x = block(x if i == 0 else self.pool(x))
        return x.mean(dim=(-2, -1))


def enable_mc_dropout(model: nn.Module) -> nn.Module:
    """Eval mode (norm layers use running statistics) with every dropout layer active, for Monte-Carlo dropout."""
    model.eval()
    for m in model.modules():
        if isinstance(m, nn.Dropout | nn.Dropout2d):
            m.train()
    return model


class CNNClassifier(nn.Module):
    """x: (B, C_in, H, W) → class logits (B, n_classes)."""

    def __init__(
        self,
        in_channels: int = 1,
        n_classes: int = 2,
        base_channels: int = 16,
        depth: int = 4,
        dropout: float = 0.0,
        norm: Norm = "batch",
    ) -> None:
        super().__init__()
        self.encoder = Encoder(in_channels, base_channels, depth, dropout, norm)
        self.head = nn.Sequential(
            nn.Dropout(dropout) if dropout > 0 else nn.Identity(), nn.Linear(self.encoder.out_channels, n_classes)
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.encoder(x))


class ClassifierConfig(BaseModel):
    """Architecture of a ``CNNClassifier``, stored in its checkpoint; ``build()`` makes a freshly initialized one."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    type: Literal["cnn_classifier"] = "cnn_classifier"
    version: Literal[1] = 1
    in_channels: int = Field(default=1, ge=1)
    n_classes: int = Field(default=2, ge=2)
    base_channels: int = Field(default=16, ge=1)
    depth: int = Field(default=4, ge=1, le=8)
    dropout: float = Field(default=0.0, ge=0.0, lt=1.0)
    norm: Literal["batch", "group"] = "batch"

    @property
    def min_size(self) -> int:
        """Smallest input H and W (each pooling halves them)."""
        return int(2 ** (self.depth - 1))

    def build(self) -> CNNClassifier:
        return CNNClassifier(self.in_channels, self.n_classes, self.base_channels, self.depth, self.dropout, self.norm)
