"""Patch discriminator for the first stage, as latent-diffusion autoencoders are trained.

Esser et al. (taming transformers) and Rombach et al. (LDM) train the first stage with a
PatchGAN discriminator on top of the reconstruction loss: an L1 loss alone rewards the
conditional mean, which is smooth; the discriminator rewards texture that looks like the
data. Recipe kept here:

* ``PatchDiscriminator``: the pix2pix ``NLayerDiscriminator`` (4x4 convs, stride 2, LeakyReLU
  0.2), GroupNorm instead of BatchNorm (small batches), one logit per overlapping patch;
* hinge loss for the discriminator, ``-D(x_rec)`` for the generator;
* the adaptive weight ``|grad L_rec| / |grad L_G|`` at the decoder's last layer, so the
  adversarial term never swamps reconstruction, times ``adversarial_weight``;
* switched on after ``adversarial_start`` of the training steps (a discriminator that wins
  against a random decoder teaches it nothing).

``adversarial_loss`` returns generator and discriminator terms to add into ONE loss for the
shared training loop (``tem_lib.ldm.loop.fit``): the generator term sees the
discriminator through detached weights, the discriminator term sees detached reconstructions,
so one backward pass gives each network only its own gradient.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.func import functional_call
from torch.nn import functional as F


class PatchDiscriminator(nn.Module):
    """Grayscale image [B, 1, H, W] in [-1, 1] -> patch logits [B, 1, h, w]."""

    def __init__(self, channels: int = 32, n_layers: int = 3):
        super().__init__()
        layers = [nn.Conv2d(1, channels, 4, 2, 1), nn.LeakyReLU(0.2, True)]
        c = channels
        for k in range(1, n_layers + 1):
            c_out = channels * min(2 ** k, 8)
            stride = 2 if k < n_layers else 1
            layers += [nn.Conv2d(c, c_out, 4, stride, 1, bias=False), nn.GroupNorm(min(8, c_out), c_out),
                       nn.LeakyReLU(0.2, True)]
            c = c_out
        layers.append(nn.Conv2d(c, 1, 4, 1, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def hinge_d_loss(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    return 0.5 * (F.relu(1 - real).mean() + F.relu(1 + fake).mean())


def adaptive_weight(rec_loss: torch.Tensor, g_loss: torch.Tensor, last_layer: torch.Tensor,
                    max_weight: float = 1e4) -> torch.Tensor:
    """``|dL_rec/dW| / |dL_G/dW|`` at ``last_layer`` (detached; clamped to [0, max_weight])."""
    g_rec = torch.autograd.grad(rec_loss, last_layer, retain_graph=True)[0]
    g_adv = torch.autograd.grad(g_loss, last_layer, retain_graph=True)[0]
    return (g_rec.norm() / (g_adv.norm() + 1e-4)).clamp(0.0, max_weight).detach()


def adversarial_loss(disc: PatchDiscriminator, x: torch.Tensor, rec: torch.Tensor, rec_loss: torch.Tensor,
                     last_layer: torch.Tensor, weight: float) -> tuple[torch.Tensor, dict]:
    """``(generator term + discriminator term, logs)`` for real ``x`` and reconstructions
    ``rec`` (both [B, 1, H, W] in [-1, 1]); ``weight`` scales the adaptive weight."""
    frozen = {k: v.detach() for k, v in disc.named_parameters()}
    g_loss = -functional_call(disc, frozen, (rec,)).mean()
    lam = adaptive_weight(rec_loss, g_loss, last_layer) if rec.requires_grad else torch.tensor(1.0)
    d_loss = hinge_d_loss(disc(x), disc(rec.detach()))
    return weight * lam * g_loss + d_loss, {"g_loss": float(g_loss.detach()), "d_loss": float(d_loss.detach()),
                                            "adaptive_weight": float(lam)}
