"""The micrograph's own noise, fitted on what the first stage cannot draw, put back after decoding.

A small autoencoder trained for minutes reconstructs a micrograph's structure but not its
pixel noise and fine texture: the residual ``x - D(E(x))`` is mostly noise, and a denoiser in
latent space cannot add back what the decoder never draws. ``ResidualNoise`` fits that residual
on the training crops and samples fresh noise with the same statistics:

* **signal dependence**: the residual's robust spread (1.4826 x MAD) in ``n_levels`` bins of
  the reconstruction's gray level (shot noise is brighter where the beam is);
* **spatial correlation and anisotropy**: the 2-D power spectrum of the residual divided by
  that spread, averaged over ``size`` x ``size`` tiles. Colouring white noise with its square
  root reproduces the residual's autocorrelation in every direction (detector blur, scan
  streaks), not only a correlation length.

Sampling: white Gaussian noise, coloured in Fourier space by the fitted amplitude (resampled to
the image's frequency grid), scaled by the spread at each pixel's gray level, added to the
decoded image. It is a diffusers ``ModelMixin``, so the fitted model is saved with the pipeline
(safetensors) and loaded by path with it; ``kind="none"`` disables it.
"""
from __future__ import annotations

import numpy as np
import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch.nn import functional as F

NOISE_MODELS = ("none", "fitted")


def _tiles(a: np.ndarray, size: int) -> np.ndarray:
    """Non-overlapping ``size`` x ``size`` tiles of [N, H, W] arrays: [M, size, size]."""
    n, h, w = a.shape
    a = a[:, :h - h % size, :w - w % size]
    return a.reshape(n, h // size, size, w // size, size).transpose(0, 1, 3, 2, 4).reshape(-1, size, size)


class ResidualNoise(ModelMixin, ConfigMixin):
    """Signal-dependent, spatially correlated Gaussian noise fitted on first-stage residuals.

    Gray levels are those of images in [0, 1]. Build with :meth:`fit`; an unfitted model adds
    nothing.
    """

    @register_to_config
    def __init__(self, size: int = 32, n_levels: int = 8, kind: str = "fitted"):
        super().__init__()
        if kind not in NOISE_MODELS:
            raise ValueError(f"noise model kind must be one of {NOISE_MODELS}, got {kind!r}")
        if size < 4 or n_levels < 1:
            raise ValueError(f"noise model needs size >= 4 and n_levels >= 1, got {size}, {n_levels}")
        self.register_buffer("amplitude", torch.zeros(size, size))  # fftshifted, mean square 1
        self.register_buffer("levels", torch.linspace(0, 1, n_levels))  # bin centres (gray level)
        self.register_buffer("sigma", torch.zeros(n_levels))  # residual spread at those levels

    @property
    def fitted(self) -> bool:
        return self.config.kind != "none" and bool(self.sigma.abs().sum() > 0)

    # ------------------------------------------------------------------ fitting
    @torch.no_grad()
    def fit(self, images: np.ndarray, reconstructions: np.ndarray) -> "ResidualNoise":
        """Fit on float [N, H, W] images in [0, 1] and their first-stage reconstructions."""
        x = np.asarray(images, np.float64)
        rec = np.asarray(reconstructions, np.float64)
        if x.shape != rec.shape or x.ndim != 3:
            raise ValueError(f"images {x.shape} and reconstructions {rec.shape} must both be [N, H, W]")
        size, n = self.config.size, self.config.n_levels
        if min(x.shape[1:]) < size:
            raise ValueError(f"noise model size {size} px is larger than the crops {x.shape[1:]}")
        r = x - rec
        edges = np.quantile(rec, np.linspace(0, 1, n + 1))
        idx = np.clip(np.searchsorted(edges, rec, side="right") - 1, 0, n - 1)
        levels, sigma = [], []
        for k in range(n):  # empty bins (few distinct gray levels) are left out
            sel = idx == k
            if sel.any():
                v = r[sel]
                levels.append(rec[sel].mean())
                sigma.append(1.4826 * np.median(np.abs(v - np.median(v))))
        order = np.argsort(levels)
        levels, sigma = np.asarray(levels)[order], np.asarray(sigma)[order]
        levels = np.concatenate([levels, np.full(n - len(levels), levels[-1])])  # pad: same level, same spread
        sigma = np.concatenate([sigma, np.full(n - len(sigma), sigma[-1])])
        spread = np.interp(rec, levels, sigma)
        white = r / np.maximum(spread, 1e-6)
        t = _tiles(white, size)
        t = t - t.mean(axis=(1, 2), keepdims=True)
        win = np.outer(np.hanning(size), np.hanning(size))
        power = (np.abs(np.fft.fft2(t * win)) ** 2).mean(0) / (win ** 2).mean()
        power[0, 0] = 0.0  # no DC: the structure's mean stays the decoder's
        amp = np.sqrt(power / max(power.mean(), 1e-12))
        self.amplitude.copy_(torch.as_tensor(np.fft.fftshift(amp), dtype=torch.float32))
        self.levels.copy_(torch.as_tensor(levels, dtype=torch.float32))
        self.sigma.copy_(torch.as_tensor(sigma, dtype=torch.float32))
        return self

    # ------------------------------------------------------------------ sampling
    def _amplitude(self, h: int, w: int, device) -> torch.Tensor:
        """The fitted amplitude on the [h, w] FFT grid (unshifted), mean square 1."""
        a = self.amplitude.to(device, torch.float32)[None, None]
        a = F.interpolate(a, size=(h, w), mode="bilinear", align_corners=False)[0, 0]
        a = torch.fft.ifftshift(a)
        a[0, 0] = 0.0
        return a / a.pow(2).mean().sqrt().clamp_min(1e-12)

    def _spread(self, image01: torch.Tensor) -> torch.Tensor:
        """Residual spread at each pixel's gray level (linear between bins, flat outside)."""
        lv, sg = self.levels.to(image01.device), self.sigma.to(image01.device)
        if len(lv) == 1:
            return sg[0].expand_as(image01)
        x = image01.clamp(lv[0], lv[-1])
        k = torch.searchsorted(lv, x.contiguous()).clamp(1, len(lv) - 1)
        x0, x1, y0, y1 = lv[k - 1], lv[k], sg[k - 1], sg[k]
        return y0 + (y1 - y0) * (x - x0) / (x1 - x0).clamp_min(1e-6)

    def sample(self, shape, generator=None, device="cpu") -> torch.Tensor:
        """Unit-variance coloured noise [B, H, W] (before the gray-level scaling)."""
        b, h, w = shape
        white = torch.randn((b, h, w), generator=generator, device=device)
        return torch.fft.ifft2(torch.fft.fft2(white) * self._amplitude(h, w, device)).real

    def forward(self, images: torch.Tensor, generator=None) -> torch.Tensor:
        """Add noise to decoded images float [B, 1, H, W] in [-1, 1] (the decoder's range);
        ``generator``: one ``torch.Generator`` or one per image (then each image's noise
        depends on its own generator only)."""
        if not self.fitted:
            return images
        b, _, h, w = images.shape
        gens = generator if isinstance(generator, (list, tuple)) else [generator] * b
        dev = images.device
        noise = torch.cat([self.sample((1, h, w), g, "cpu" if g is None else g.device) for g in gens]).to(dev)
        x01 = (images[:, 0].float() + 1) / 2
        out = x01 + self._spread(x01) * noise
        return (out.clamp(0, 1) * 2 - 1)[:, None].to(images.dtype)

    def add(self, images01: np.ndarray, seed: int = 0) -> np.ndarray:
        """The same on float [N, H, W] numpy images in [0, 1] (reconstructions, benchmarks)."""
        g = torch.Generator().manual_seed(seed)
        x = torch.as_tensor(np.asarray(images01, np.float32))[:, None] * 2 - 1
        return ((self(x, g)[:, 0].numpy() + 1) / 2).astype(np.float32)
