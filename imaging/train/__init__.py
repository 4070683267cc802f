"""Training of learned segmentation models on a labelled dataset folder (see ``imaging.train.dataset``)."""

from imaging.train.checkpoint import CheckpointError, load_checkpoint, load_model, save_checkpoint
from imaging.train.dataset import DatasetError, SegmentationFolder
from imaging.train.trainer import TrainConfig, TrainResult, train

__all__ = [
    "CheckpointError",
    "DatasetError",
    "SegmentationFolder",
    "TrainConfig",
    "TrainResult",
    "load_checkpoint",
    "load_model",
    "save_checkpoint",
    "train",
]
