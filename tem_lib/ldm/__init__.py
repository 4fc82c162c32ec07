"""Mask-conditioned latent diffusion (the paper's method, on diffusers).

``train_ldm`` trains a grayscale autoencoder and a mask-conditioned UNet on labelled crops and
saves a :class:`MaskToImagePipeline`; ``load_pipeline`` reads one back; ``synthesize`` turns
label maps from a mask prior (``tem_lib.priors``) into a labelled dataset folder.
"""
from .autoencoder import reconstruction_report
from .conditioning import MaskEncoder, one_hot
from .config import AutoencoderConfig, DenoiserConfig, LDMConfig, TrainConfig
from .pipeline import SAMPLERS, MaskToImagePipeline, load_pipeline
from .train import train_ldm

__all__ = ["AutoencoderConfig", "DenoiserConfig", "LDMConfig", "MaskEncoder", "MaskToImagePipeline",
           "SAMPLERS", "TrainConfig", "load_pipeline", "one_hot", "reconstruction_report", "train_ldm"]
