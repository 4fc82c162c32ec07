"""A torch Dataset yielding torchvision-detection targets, with flips and 90-degree turns."""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import torch
import torchvision.transforms.v2.functional

from .sample import Sample


class DetectionDataset(torch.utils.data.Dataset):
    """Crops as ``(image, target)`` pairs in torchvision's detection contract.

    ``image``: float32 [1, H, W] in [0, 1]. ``target``: ``boxes`` float32 [N, 4]
    (x1, y1, x2, y2, pixel edges), ``labels`` int64 [N] (class ids, 1-based), ``masks``
    uint8 [N, H, W], ``area`` float32 [N], ``iscrowd`` int64 [N], ``image_id`` int.
    With ``augment=True`` each item is flipped and turned by a multiple of 90 degrees
    (one of the 8 symmetries of the square), drawn from ``generator`` if given, so the
    sequence of augmentations is reproducible; ``photometric`` (:class:`Photometric` fields)
    changes its gray levels too.
    """

    def __init__(self, samples: list[Sample], augment: bool = False,
                 generator: torch.Generator | None = None, photometric: dict | None = None):
        self.samples = samples
        self.augment = augment
        self.generator = generator
        self.photometric = Photometric(**(photometric or {}))

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
        image = self.photometric(image, self.generator)
        return image, make_target(masks, torch.as_tensor(s.labels), idx)


@dataclass
class Photometric:
    """Random changes of the gray levels that leave the labels as they are: micrographs differ
    widely in contrast, exposure, focus and dose. Each applies with probability ``p``, drawn
    from ``generator``; all zero (the default) is the identity.

    ``contrast``: gray levels scaled about their mean by a factor in [1 - c, 1 + c];
    ``brightness``: shifted by up to +-b; ``gamma``: raised to exp(u), u in [-g, g];
    ``blur``: Gaussian, sigma up to ``blur`` px; ``noise``: Gaussian, sd up to ``noise``.
    The result is clipped to [0, 1].
    """
    contrast: float = 0.0
    brightness: float = 0.0
    gamma: float = 0.0
    blur: float = 0.0
    noise: float = 0.0
    p: float = 0.8

    def __post_init__(self):
        for k, v in dataclasses.asdict(self).items():
            if not (math.isfinite(v) and v >= 0) or (k == "p" and v > 1) or (k == "contrast" and v >= 1):
                raise ValueError(f"photometric augmentation: {k} must be finite and >= 0"
                                 f"{' and <= 1' if k == 'p' else ' and < 1' if k == 'contrast' else ''}, got {v}")

    def __call__(self, image: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """``image``: float32 [1, H, W] in [0, 1]."""
        if not any((self.contrast, self.brightness, self.gamma, self.blur, self.noise)):
            return image
        u = torch.rand(10, generator=generator)  # a fixed number of draws: the stream stays aligned
        on = u[:5] < self.p
        if on[0] and self.contrast:
            m = image.mean()
            image = (image - m) * (1 + self.contrast * (2 * u[5] - 1)) + m
        if on[1] and self.brightness:
            image = image + self.brightness * (2 * u[6] - 1)
        if on[2] and self.gamma:
            image = image.clamp(0, 1) ** torch.exp(self.gamma * (2 * u[7] - 1))
        if on[3] and self.blur and u[8] * self.blur > 0.3:
            sigma = float(u[8] * self.blur)
            k = 2 * math.ceil(3 * sigma) + 1
            image = torchvision.transforms.v2.functional.gaussian_blur(image, [k, k], [sigma, sigma])
        if on[4] and self.noise:
            image = image + float(u[9] * self.noise) * torch.randn(image.shape, generator=generator)
        return image.clamp(0, 1)


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
