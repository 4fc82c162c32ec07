"""Build the three networks from their configs (diffusers classes, random init, no hub)."""
from __future__ import annotations

from diffusers import AutoencoderKL, DDPMScheduler, UNet2DModel

from .conditioning import MaskEncoder
from .config import AutoencoderConfig, DenoiserConfig


def build_autoencoder(cfg: AutoencoderConfig) -> AutoencoderKL:
    """Grayscale ``AutoencoderKL`` (1 channel in and out), downsampling by ``cfg.factor``.

    No attention in the mid block: at f=4 on 256 px crops it would attend over 4096
    positions, the main cost on a CPU, for no visible gain on micrograph texture.
    """
    n = len(cfg.block_out_channels)
    return AutoencoderKL(
        in_channels=1, out_channels=1, latent_channels=cfg.latent_channels,
        down_block_types=("DownEncoderBlock2D",) * n, up_block_types=("UpDecoderBlock2D",) * n,
        block_out_channels=tuple(cfg.block_out_channels), layers_per_block=cfg.layers_per_block,
        norm_num_groups=cfg.norm_num_groups, mid_block_add_attention=False, scaling_factor=1.0)


def build_mask_encoder(cfg: DenoiserConfig, factor: int) -> MaskEncoder:
    if not cfg.class_ids:
        raise ValueError("denoiser config has no class_ids: set them to the dataset's class ids "
                         "(train_ldm does this from the training data's class set)")
    return MaskEncoder(class_ids=tuple(cfg.class_ids), out_channels=cfg.cond_channels,
                       factor=factor, kind=cfg.mask_encoder)


def build_unet(cfg: DenoiserConfig, latent_channels: int, sample_size: int) -> UNet2DModel:
    """``UNet2DModel`` taking [noisy latent, mask encoding] and predicting ``latent_channels``."""
    n = len(cfg.block_out_channels)
    attn = set(cfg.attention_levels)
    bad = sorted(i for i in attn if not 0 <= i < n)
    if bad:
        raise ValueError(f"attention_levels {bad} out of range for {n} UNet blocks")
    down = tuple("AttnDownBlock2D" if i in attn else "DownBlock2D" for i in range(n))
    up = tuple("AttnUpBlock2D" if n - 1 - i in attn else "UpBlock2D" for i in range(n))
    return UNet2DModel(
        sample_size=sample_size, in_channels=latent_channels + cfg.cond_channels,
        out_channels=latent_channels, block_out_channels=tuple(cfg.block_out_channels),
        layers_per_block=cfg.layers_per_block, down_block_types=down, up_block_types=up,
        attention_head_dim=cfg.attention_head_dim, norm_num_groups=cfg.norm_num_groups)


def build_train_scheduler(cfg: DenoiserConfig) -> DDPMScheduler:
    return DDPMScheduler(num_train_timesteps=cfg.num_train_timesteps, beta_schedule=cfg.beta_schedule,
                         beta_start=cfg.beta_start, beta_end=cfg.beta_end,
                         prediction_type=cfg.prediction_type, clip_sample=False)
