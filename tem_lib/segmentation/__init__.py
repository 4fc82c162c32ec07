"""Semantic segmentation.

* ``small``: the mask-fidelity segmenter (a small U-Net trained from scratch on a cell's real
  crops; ``train_segmenter`` / ``predict``), used by ``tem_lib.metrics.fidelity`` and the
  LDM's quality filter.
* ``unet``: the U-Nets of the confidence study (seed 002, notebook 08): smp encoders,
  scratch / ImageNet / simulator-pretrained initialisation, L2 and L2-SP, frozen stages,
  resumable training and safetensors folders.
"""
from .small import SmallUNet, predict, train_segmenter
from .unet import (
    PretrainedWeightsMissing,
    SegConfig,
    SegUNet,
    WeightPenalty,
    build_unet,
    encoder_stages,
    imagenet_weights,
    load_unet,
    predict_proba,
    save_encoder,
    save_unet,
    train_unet,
)

__all__ = ["PretrainedWeightsMissing", "SegConfig", "SegUNet", "SmallUNet", "WeightPenalty", "build_unet",
           "encoder_stages", "imagenet_weights", "load_unet", "predict", "predict_proba", "save_encoder", "save_unet",
           "train_segmenter", "train_unet"]
