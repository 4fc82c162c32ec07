"""Configuration of the mask-conditioned latent diffusion model, one dataclass per component.

Defaults are the CPU-sized model used by the ``smoke`` and ``quick`` profiles; the ``paper``
profile sets the wider UNet and the authors' f=8 first stage (``PAPER_NOTES.md`` section 1).
Every artifact stores the configuration that made it (``asdict``), and a checkpoint made with
another configuration is refused rather than silently loaded.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..config import Config


@dataclass
class AutoencoderConfig(Config):
    """First stage: a grayscale diffusers ``AutoencoderKL`` trained from scratch.

    The downsampling factor is ``2 ** (len(block_out_channels) - 1)``: three widths give f=4,
    four give f=8 (the paper's VQ-f8 made 256 px -> 32 x 32 x 4).
    """
    block_out_channels: tuple[int, ...] = (16, 32, 64)
    layers_per_block: int = 1
    latent_channels: int = 4
    norm_num_groups: int = 8
    # Reconstruction loss (why: a 2-5 px black dot is a few pixels of an L1 average, so it is
    # weighted up inside the defect masks and sharpened by an image-gradient term).
    defect_weight: float = 5.0  # L1 weight of defect pixels relative to background
    gradient_weight: float = 1.0  # L1 of finite-difference image gradients
    kl_weight: float = 1e-6  # KL to N(0, 1); small, as in Stable Diffusion's first stage
    # Patch discriminator (tem_lib.ldm.adversarial; 0 = off): hinge loss, adaptive weight at the
    # decoder's last layer times this, switched on after `adversarial_start` of the steps.
    adversarial_weight: float = 0.0
    adversarial_start: float = 0.5
    disc_channels: int = 32
    disc_layers: int = 3
    # What the decoder cannot draw, put back (tem_lib.ldm.noise): "fitted" samples the training
    # crops' residual noise (gray-level dependent spread, 2-D spectrum) after decoding; "none".
    noise_model: str = "fitted"
    noise_tile: int = 32  # px; the spectrum's resolution (longest correlation it can hold)

    def __post_init__(self):
        if self.noise_model not in ("none", "fitted"):
            raise ValueError(f"noise_model must be 'none' or 'fitted', got {self.noise_model!r}")
        if self.adversarial_weight < 0 or not 0 <= self.adversarial_start <= 1:
            raise ValueError("adversarial_weight must be >= 0 and adversarial_start in [0, 1], got "
                             f"{self.adversarial_weight}, {self.adversarial_start}")

    @property
    def factor(self) -> int:
        return 2 ** (len(self.block_out_channels) - 1)


@dataclass
class DenoiserConfig(Config):
    """Second stage: a diffusers ``UNet2DModel`` on [noisy latent, mask encoding]."""
    block_out_channels: tuple[int, ...] = (32, 64, 128)
    layers_per_block: int = 1
    attention_levels: tuple[int, ...] = (2,)  # indices of blocks with self-attention
    attention_head_dim: int = 32
    norm_num_groups: int = 16
    # mask channels: background + these classes; () = the training data's class set (train_ldm)
    class_ids: tuple[int, ...] = ()
    mask_encoder: str = "learned"  # "learned" conv encoder or the paper's bilinear "rescaler"
    cond_channels: int = 8  # channels of the mask encoding at latent resolution
    p_uncond: float = 0.1  # probability of the null mask in training (classifier-free guidance)
    # Extra loss weight on latent pixels under a defect: the loss map is 1 + mask_weight x (the
    # defect fraction of each latent pixel), normalised per sample so the loss scale is kept.
    # Defects cover a few % of a crop; without it the denoiser can lower its loss by drawing the
    # background well and the defects anywhere (why samples ignore their masks on real crops).
    mask_weight: float = 0.0
    # Noise schedule: the authors' LDM "linear" schedule is linear in sqrt(beta), which is
    # diffusers' "scaled_linear"; 1000 steps, 0.0015-0.0205 (PAPER_NOTES section 1).
    num_train_timesteps: int = 1000
    beta_schedule: str = "scaled_linear"
    beta_start: float = 0.0015
    beta_end: float = 0.0205
    # v-prediction with Min-SNR weighting trained visibly better samples than epsilon in the same
    # 1500 CPU steps (quick profile); the authors predicted epsilon.
    prediction_type: str = "v_prediction"  # "epsilon", "v_prediction" or "sample"
    loss: str = "mse"  # "mse" or "l1" (the authors' choice)
    # Min-SNR-gamma loss weighting (Hang et al. 2023): caps the weight of low-noise steps so
    # training spends its effort where the layout is decided; converges faster. None: off.
    snr_gamma: float | None = 5.0

    def __post_init__(self):
        if self.mask_encoder not in ("learned", "rescaler"):
            raise ValueError(f"mask_encoder must be 'learned' or 'rescaler', got {self.mask_encoder!r}")
        if self.prediction_type not in ("epsilon", "v_prediction", "sample"):
            raise ValueError(f"unknown prediction_type {self.prediction_type!r}")
        if self.loss not in ("mse", "l1"):
            raise ValueError(f"loss must be 'mse' or 'l1', got {self.loss!r}")
        if self.mask_weight < 0:
            raise ValueError(f"mask_weight must be >= 0, got {self.mask_weight}")
        if not 0 <= self.p_uncond < 1:
            raise ValueError(f"p_uncond must be in [0, 1), got {self.p_uncond}")


@dataclass
class TrainConfig(Config):
    """One training run (either stage)."""
    steps: int = 1500
    batch_size: int = 16
    lr: float = 2e-4
    warmup_steps: int = 100
    patch_size: int | None = 64  # train on random square patches (image px); None: whole crops
    checkpoint_every: int = 250  # an interruption loses at most this many steps
    ema_decay: float = 0.999  # 0 disables EMA
    grad_clip: float = 1.0
    mixed_precision: str = "auto"  # "auto" (bf16 on CUDA, none on CPU), "no", "fp16", "bf16"
    seed: int = 0


@dataclass
class LDMConfig(Config):
    """The whole model: four sections, each read over its default (``LDMConfig.from_dict``)."""
    _where = "LDM config"
    autoencoder: AutoencoderConfig = field(default_factory=AutoencoderConfig)
    denoiser: DenoiserConfig = field(default_factory=DenoiserConfig)
    autoencoder_training: TrainConfig = field(default_factory=lambda: TrainConfig(steps=600, batch_size=8, lr=5e-4))
    denoiser_training: TrainConfig = field(default_factory=lambda: TrainConfig(lr=4e-4))
