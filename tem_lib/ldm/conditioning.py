"""Mask conditioning: one-hot class maps and their encoding at latent resolution.

The denoiser sees ``[noisy latent, MaskEncoder(one_hot(mask))]`` concatenated along channels
(the paper's concat conditioning). Two encoders:

* ``"rescaler"``: the authors' ``SpatialRescaler``: bilinear halvings down to latent size,
  then a 1x1 conv. A bilinear halving averages 2x2 pixel blocks at best, so a 3 px dot in an
  f=8 latent cell ends up as a faint fraction of one value.
* ``"learned"`` (default): strided 3x3 convolutions, one per halving, that see every pixel
  and can spend channels on "there is a small dot here".

The null mask of classifier-free guidance is all zeros in every channel, background
included, which no real mask produces (a real one-hot has exactly one 1 per pixel).
"""
from __future__ import annotations

import math

import numpy as np
import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn
from torch.nn import functional as F


def one_hot(class_maps, class_ids) -> torch.Tensor:
    """float32 [B, 1 + len(class_ids), H, W] one-hot of uint8/int class-id maps [B, H, W].

    Channel 0 is background (id 0); channel ``i + 1`` is ``class_ids[i]``. A map holding an
    id outside ``{0} | class_ids`` raises ``ValueError`` naming the map and the ids.
    """
    maps = torch.as_tensor(np.asarray(class_maps) if not torch.is_tensor(class_maps) else class_maps)
    if maps.ndim != 3:
        raise ValueError(f"class maps must be [B, H, W], got shape {tuple(maps.shape)}")
    lut = torch.full((256,), -1, dtype=torch.long)
    lut[0] = 0
    for i, c in enumerate(class_ids):
        lut[int(c)] = i + 1
    maps = maps.long()
    if maps.min() < 0 or maps.max() > 255:
        raise ValueError(f"class ids must be 0-255, got {int(maps.min())}..{int(maps.max())}")
    idx = lut[maps]
    if (idx < 0).any():
        b = int((idx < 0).flatten(1).any(1).nonzero()[0, 0])
        bad = sorted(set(torch.unique(maps[b]).tolist()) - {0, *map(int, class_ids)})
        raise ValueError(f"mask {b}: class ids {bad} unknown to this model (it knows background 0 "
                         f"and {list(map(int, class_ids))})")
    return F.one_hot(idx, len(class_ids) + 1).permute(0, 3, 1, 2).float()


class MaskEncoder(ModelMixin, ConfigMixin):
    """One-hot mask [B, 1 + len(class_ids), H, W] -> [B, out_channels, H / factor, W / factor].

    ``class_ids`` (the mask channels after background) live in this config, so a saved
    pipeline knows which classes it was trained on.
    """

    @register_to_config
    def __init__(self, class_ids: tuple[int, ...], out_channels: int = 8, factor: int = 4,
                 kind: str = "learned", hidden_channels: int = 32):
        super().__init__()
        in_channels = len(class_ids) + 1
        if factor < 1 or factor & (factor - 1):
            raise ValueError(f"factor must be a power of two, got {factor}")
        self.n_down = int(math.log2(factor))
        if kind == "rescaler":
            self.proj = nn.Conv2d(in_channels, out_channels, 1)
        elif kind == "learned":
            layers = [nn.Conv2d(in_channels, hidden_channels, 3, padding=1), nn.SiLU()]
            for _ in range(self.n_down):
                layers += [nn.Conv2d(hidden_channels, hidden_channels, 3, stride=2, padding=1), nn.SiLU()]
            layers.append(nn.Conv2d(hidden_channels, out_channels, 3, padding=1))
            self.net = nn.Sequential(*layers)
        else:
            raise ValueError(f"kind must be 'learned' or 'rescaler', got {kind!r}")

    def forward(self, mask: torch.Tensor) -> torch.Tensor:
        if self.config.kind == "rescaler":
            for _ in range(self.n_down):  # the authors' SpatialRescaler: bilinear halvings
                mask = F.interpolate(mask, scale_factor=0.5, mode="bilinear")
            return self.proj(mask)
        return self.net(mask)
