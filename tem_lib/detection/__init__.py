"""Mask R-CNN (torchvision) for TEM defects: model, training on real and synthetic crops,
prediction. The metrics it is judged by are in :mod:`tem_lib.metrics.detection`."""
from . import foundation  # noqa: F401  (registers pretrained="foundation")
from .config import DetectorConfig, DetTrainConfig
from .engine import evaluate, train_one_epoch
from .model import PretrainedWeightsMissing, build_maskrcnn, cached_weights_path, resolve_pretrained
from .train import load_detector, mixed_indices, save_detector, train_detector

__all__ = ["DetTrainConfig", "DetectorConfig", "PretrainedWeightsMissing", "build_maskrcnn",
           "cached_weights_path", "evaluate", "load_detector", "mixed_indices", "resolve_pretrained",
           "save_detector", "train_detector", "train_one_epoch"]
