"""The mask-fidelity segmenter: a small U-Net (class-id maps) trained from scratch.

It measures mask fidelity of generated images (``tem_lib.metrics.fidelity``): trained on
real crops, it is run on images generated for known masks and scored against them (and the
LDM's quality filter uses it). The U-Nets of the confidence study are in ``.unet``.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from tqdm import tqdm

from ..data.torch_dataset import random_patches, stack_crops
from ..utils import torch_generator


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.GroupNorm(8, cout), nn.SiLU(),
                         nn.Conv2d(cout, cout, 3, padding=1), nn.GroupNorm(8, cout), nn.SiLU())


class SmallUNet(nn.Module):
    """Grayscale image float [B, 1, H, W] in [-1, 1] -> logits [B, 1 + len(class_ids), H, W]
    (channel 0 background). H and W must be multiples of ``2 ** depth``."""

    def __init__(self, class_ids, width: int = 16, depth: int = 3):
        super().__init__()
        self.class_ids = tuple(int(c) for c in class_ids)
        chans = [width * 2 ** i for i in range(depth + 1)]
        self.stem = _block(1, chans[0])
        self.down = nn.ModuleList(_block(chans[i], chans[i + 1]) for i in range(depth))
        self.up = nn.ModuleList(_block(chans[i + 1] + chans[i], chans[i]) for i in reversed(range(depth)))
        self.head = nn.Conv2d(chans[0], len(self.class_ids) + 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = [self.stem(x)]
        for d in self.down:
            skips.append(d(F.max_pool2d(skips[-1], 2)))
        h = skips.pop()
        for u in self.up:
            s = skips.pop()
            h = u(torch.cat([F.interpolate(h, size=s.shape[-2:], mode="nearest"), s], 1))
        return self.head(h)


def _targets(maps: torch.Tensor, class_ids) -> torch.Tensor:
    lut = torch.zeros(256, dtype=torch.long)
    for i, c in enumerate(class_ids):
        lut[int(c)] = i + 1
    return lut[maps.long()]


def train_segmenter(samples, class_ids, steps: int = 600, batch_size: int = 8,
                    patch: int = 128, lr: float = 2e-3, width: int = 16, device="cpu", seed: int = 0,
                    progress: bool = True) -> SmallUNet:
    """Train on random patches (with flips/turns) of labelled crops; cross-entropy with class
    weights 1/sqrt(pixel frequency), so small dots are not drowned by background."""
    images, maps = stack_crops(samples)
    target_all = _targets(maps, class_ids)
    freq = torch.bincount(target_all.ravel(), minlength=len(class_ids) + 1).float() + 1
    weight = (freq.sum() / freq).sqrt()
    weight = (weight / weight.mean()).to(device)
    torch.manual_seed(seed)
    model = SmallUNet(class_ids, width).to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=steps, pct_start=0.1)
    for step in tqdm(range(steps), desc="segmenter", disable=not progress, mininterval=2.0):
        gen = torch_generator(seed, step)
        x, m = random_patches(images, maps, batch_size, min(patch, images.shape[-1]), gen)
        loss = F.cross_entropy(model(x.to(device)), _targets(m, class_ids).to(device), weight=weight)
        if not torch.isfinite(loss):
            raise RuntimeError(f"segmenter: loss is {loss.item()} at step {step}; lower lr (now {lr})")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    return model.eval()


@torch.inference_mode()
def predict(model: SmallUNet, images, device="cpu", batch_size: int = 8) -> np.ndarray:
    """uint8 class-id maps [N, H, W] for float images [N, H, W] in [0, 1]."""
    ids = torch.tensor((0, *model.class_ids), dtype=torch.uint8)
    out = []
    for i in range(0, len(images), batch_size):
        x = torch.as_tensor(np.stack(images[i:i + batch_size]), dtype=torch.float32)[:, None] * 2 - 1
        out.append(ids[model(x.to(device)).argmax(1).cpu()].numpy())
    return np.concatenate(out)
