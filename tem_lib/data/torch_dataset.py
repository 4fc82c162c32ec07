"""A torch Dataset yielding torchvision-detection targets, with flips and 90-degree turns."""
from __future__ import annotations

import numpy as np
import torch

from .sample import Sample


class DetectionDataset(torch.utils.data.Dataset):
    """Crops as ``(image, target)`` pairs in torchvision's detection contract.

    ``image``: float32 [1, H, W] in [0, 1]. ``target``: ``boxes`` float32 [N, 4]
    (x1, y1, x2, y2, pixel edges), ``labels`` int64 [N] (class ids, 1-based), ``masks``
    uint8 [N, H, W], ``area`` float32 [N], ``iscrowd`` int64 [N], ``image_id`` int.
    With ``augment=True`` each item is flipped and turned by a multiple of 90 degrees
    (one of the 8 symmetries of the square), drawn from ``generator`` if given, so the
    sequence of augmentations is reproducible.
    """

    def __init__(self, samples: list[Sample], augment: bool = False,
                 generator: torch.Generator | None = None):
        self.samples = samples
        self.augment = augment
        self.generator = generator

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, idx: int):
        s = self.samples[idx]
        image = torch.from_numpy(np.ascontiguousarray(s.image, dtype=np.float32))[None]
        masks = torch.from_numpy(s.masks().astype(np.uint8))
        if self.augment:
            g = torch.randint(0, 8, (1,), generator=self.generator).item()
            k, flip = g // 2, bool(g % 2)
            image, masks = dihedral(image, k, flip), dihedral(masks, k, flip)
        return image, make_target(masks, torch.as_tensor(s.labels), idx)


def stack_crops(samples) -> tuple[torch.Tensor, torch.Tensor]:
    """images float32 [N, 1, H, W] in [-1, 1] and class maps uint8 [N, H, W]."""
    if not samples:
        raise ValueError("no training crops")
    shapes = {s.shape for s in samples}
    if len(shapes) != 1:
        raise ValueError(f"training crops must share one size, got {sorted(shapes)}")
    images = torch.from_numpy(np.stack([s.image for s in samples]).astype(np.float32))[:, None] * 2 - 1
    maps = torch.from_numpy(np.stack([s.class_map() for s in samples]))
    return images, maps


def dihedral(x: torch.Tensor, k: int, flip: bool) -> torch.Tensor:
    """Turn the last two dims by k x 90 degrees, then mirror left-right if ``flip``."""
    x = torch.rot90(x, k, dims=(-2, -1))
    return torch.flip(x, dims=(-1,)) if flip else x


def random_patches(images, maps, batch: int, patch: int | None, gen: torch.Generator, scale: int = 1,
                   augment: bool = True):
    """A batch of random patches of ``images`` [N, C, h, w] (side ``patch``; whole items when
    None) and the matching patches of ``maps`` [N, h * scale, w * scale], each pair in the same
    random one of the 8 orientations of the square (``scale`` > 1: latents with their
    full-resolution masks). ``augment=False`` keeps the orientation (cached latents already
    hold all 8: the encoder is not exactly equivariant, so turning a latent is not the same as
    encoding a turned image)."""
    n, _, h, w = images.shape
    p = patch or h
    if p > h or p > w:
        raise ValueError(f"patch size {p} is larger than the {h}x{w} crops")
    idx = torch.randint(n, (batch,), generator=gen)
    oy = torch.randint(h - p + 1, (batch,), generator=gen)
    ox = torch.randint(w - p + 1, (batch,), generator=gen)
    g8 = torch.randint(8, (batch,), generator=gen) if augment else torch.zeros(batch, dtype=torch.long)
    xs, ms = [], []
    for i in range(batch):
        y, x, k, flip = int(oy[i]), int(ox[i]), int(g8[i]) // 2, bool(g8[i] % 2)
        xs.append(dihedral(images[idx[i], :, y:y + p, x:x + p], k, flip))
        ms.append(dihedral(maps[idx[i], y * scale:(y + p) * scale, x * scale:(x + p) * scale], k, flip))
    return torch.stack(xs), torch.stack(ms)


def masks_to_boxes(masks: torch.Tensor) -> torch.Tensor:
    """float32 [N, 4] pixel-edge boxes (x2 = last column + 1) of uint8/bool [N, H, W] masks."""
    if masks.shape[0] == 0:
        return torch.zeros((0, 4), dtype=torch.float32)
    masks = masks.bool()
    rows, cols = masks.any(dim=2), masks.any(dim=1)
    ar_h = torch.arange(masks.shape[1]).expand_as(rows)
    ar_w = torch.arange(masks.shape[2]).expand_as(cols)
    big = masks.shape[1] + masks.shape[2]
    y1 = torch.where(rows, ar_h, big).min(dim=1).values
    y2 = torch.where(rows, ar_h, -1).max(dim=1).values + 1
    x1 = torch.where(cols, ar_w, big).min(dim=1).values
    x2 = torch.where(cols, ar_w, -1).max(dim=1).values + 1
    return torch.stack([x1, y1, x2, y2], dim=1).float()


def make_target(masks: torch.Tensor, labels: torch.Tensor, image_id: int) -> dict:
    keep = masks.flatten(1).bool().any(dim=1)
    masks, labels = masks[keep], labels[keep].long()
    return {"boxes": masks_to_boxes(masks), "labels": labels, "masks": masks,
            "area": masks.flatten(1).sum(dim=1).float(),
            "iscrowd": torch.zeros(len(labels), dtype=torch.int64), "image_id": image_id}


def collate(batch):
    """torchvision detection collate: a tuple of images and a tuple of targets."""
    return tuple(zip(*batch))
