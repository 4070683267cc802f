"""Learned segmentation models (plain PyTorch)."""

from imaging.models.config import UNetConfig
from imaging.models.unet import UNet

__all__ = ["UNet", "UNetConfig"]
