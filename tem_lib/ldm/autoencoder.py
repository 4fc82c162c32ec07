"""First-stage loss and the reconstruction report (PSNR, SSIM, per-class defect survival)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from ..classes import ClassSet
from ..stats import defect_contrast
from .config import AutoencoderConfig


def image_gradients(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return x[..., :, 1:] - x[..., :, :-1], x[..., 1:, :] - x[..., :-1, :]


def reconstruction_loss(vae, x: torch.Tensor, defect: torch.Tensor, cfg: AutoencoderConfig,
                        generator: torch.Generator | None = None, return_reconstruction: bool = False):
    """Loss of one batch: ``x`` float [B, 1, H, W] in [-1, 1]; ``defect`` bool [B, 1, H, W].

    L1 with defect pixels weighted ``defect_weight`` x, plus ``gradient_weight`` x L1 of the
    image gradients (keeps the sharp rims of loops), plus ``kl_weight`` x KL(q(z|x) || N(0, 1)).
    With ``return_reconstruction``: ``(loss, reconstruction)`` (for the adversarial term).
    """
    post = vae.encode(x).latent_dist
    z = post.mean + post.std * torch.randn(post.mean.shape, generator=generator).to(x.device, x.dtype)
    rec = vae.decode(z).sample
    w = 1 + (cfg.defect_weight - 1) * defect.to(x.dtype)
    loss = (w * (rec - x).abs()).sum() / w.sum()
    if cfg.gradient_weight:
        (gx, gy), (rx, ry) = image_gradients(x), image_gradients(rec)
        loss = loss + cfg.gradient_weight * ((gx - rx).abs().mean() + (gy - ry).abs().mean())
    if cfg.kl_weight:
        loss = loss + cfg.kl_weight * post.kl().mean() / x[0].numel()
    return (loss, rec) if return_reconstruction else loss


@torch.inference_mode()
def reconstruct(vae, images: np.ndarray, device="cpu", batch_size: int = 8) -> np.ndarray:
    """Encode (posterior mean) and decode float [N, H, W] images in [0, 1]; same shape out."""
    out = []
    for i in range(0, len(images), batch_size):
        x = torch.as_tensor(images[i:i + batch_size], dtype=torch.float32)[:, None].to(device) * 2 - 1
        z = vae.encode(x).latent_dist.mean
        out.append(((vae.decode(z).sample.clamp(-1, 1) + 1) / 2)[:, 0].float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros_like(images)


def survival_table(originals, reconstructions, samples, classes: ClassSet, min_contrast: float = 0.03,
                   keep: float = 0.5) -> pd.DataFrame:
    """One row per defect with its contrast before and after; ``survives`` when the
    reconstruction keeps at least ``keep`` of a contrast of at least ``min_contrast``
    (defects fainter than that in the original are left out: nothing to lose)."""
    rows = []
    for img, rec, s in zip(originals, reconstructions, samples):
        for inst in s.instances:
            m = inst.full_mask(s.shape)
            c0 = defect_contrast(img, m)
            if not np.isfinite(c0) or c0 < min_contrast:
                continue
            c1 = defect_contrast(rec, m)
            rows.append({"class": classes.display(inst.category_id), "class_id": inst.category_id,
                         "area": int(m.sum()), "contrast": c0, "contrast_rec": c1,
                         "survives": bool(c1 >= keep * c0)})
    return pd.DataFrame(rows, columns=["class", "class_id", "area", "contrast", "contrast_rec", "survives"])


def reconstruction_report(vae, samples, classes: ClassSet, device="cpu") -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray]:
    """PSNR/SSIM per image and defect survival per class on ``samples`` (held-out crops).

    Returns ``(summary, per_defect, reconstructions)``; ``summary`` has one row per class plus
    an "all" row, with mean PSNR (dB) and SSIM over images in every row.
    """
    images = np.stack([s.image for s in samples]).astype(np.float32)
    rec = reconstruct(vae, images, device)
    psnr = [peak_signal_noise_ratio(a, b, data_range=1.0) for a, b in zip(images, rec)]
    ssim = [structural_similarity(a, b, data_range=1.0) for a, b in zip(images, rec)]
    per = survival_table(images, rec, samples, classes)
    groups = [("all", per)] + [(c, g) for c, g in per.groupby("class", sort=False)]
    summary = pd.DataFrame([{"class": c, "n_defects": len(g),
                             "survival": g["survives"].mean() if len(g) else float("nan"),
                             "contrast_kept": (g["contrast_rec"] / g["contrast"]).median() if len(g) else float("nan"),
                             "psnr_db": float(np.mean(psnr)), "ssim": float(np.mean(ssim))}
                            for c, g in groups])
    return summary, per, rec
