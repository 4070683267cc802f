"""``UNetConfig``: the frozen, serializable description of a U-Net, stored in every checkpoint."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from imaging.models.unet import UNet


class UNetConfig(BaseModel):
    """Architecture of a ``UNet``; ``build()`` makes a freshly initialized one."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    type: Literal["unet"] = "unet"
    version: Literal[1] = 1
    in_channels: int = Field(default=1, ge=1)
    n_classes: int = Field(default=5, ge=2)
    base_channels: int = Field(default=16, ge=1)
    depth: int = Field(default=4, ge=1, le=8)
    dropout: float = Field(default=0.0, ge=0.0, lt=1.0)
    norm: Literal["batch", "group"] = "batch"

    @property
    def multiple(self) -> int:
        """H and W of every input must be divisible by this (``2**depth``)."""
        return int(2**self.depth)

    def build(self) -> UNet:
        return UNet(
            in_channels=self.in_channels,
            n_classes=self.n_classes,
            base_channels=self.base_channels,
            depth=self.depth,
            dropout=self.dropout,
            norm=self.norm,
        )
