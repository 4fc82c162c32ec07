"""Copy-paste (Ghiasi et al. 2021, "Simple Copy-Paste is a Strong Data Augmentation Method for
Instance Segmentation"), for micrographs.

Each synthetic pair starts from one of the cell's real training crops (its own labels kept).
A label map drawn from the cell's mask prior says how many defects to add, of which class and
where; for each, a real defect of that class is cut from another training crop with its
surrounding pixels, turned (one of the 8 symmetries), scaled by a random factor and pasted
with a soft edge. Micrograph backgrounds differ in brightness, so the patch is pasted as its
difference from its own local background (the median of a ring around the defect), added to
the target. A pasted defect that would overlap a labelled one is skipped: labels stay exact.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage
from skimage.transform import rescale

from ..config import Config
from ..data import write_dataset
from ..data.sample import Instance, Sample
from ..utils import declare_stream, derive_seed
from .base import Augmentation, Cell, register

COPY_PASTE = declare_stream("copy_paste.places", 11)  # where copied defects go


@dataclass
class CopyPasteConfig(Config):
    scale_jitter: float = 0.2  # scale factor drawn from [1 - j, 1 + j]
    margin: int = 4  # px of surrounding pixels cut with each defect
    feather: float = 1.5  # px, Gaussian sigma of the soft paste edge
    min_area: int = 6  # px; a pasted defect cut smaller by the crop border is dropped
    max_tries: int = 20  # placements tried per defect before it is skipped


@dataclass
class _Source:
    patch: np.ndarray  # float image patch with margin, minus its local background
    mask: np.ndarray  # bool, same shape: the defect
    category_id: int


def _sources(train, margin: int) -> dict[int, list[_Source]]:
    """Every labelled defect of the training crops, cut with ``margin`` px around it."""
    out: dict[int, list[_Source]] = {}
    for s in train:
        h, w = s.image.shape
        for inst in s.instances:
            x1, y1, x2, y2 = inst.bbox
            X1, Y1, X2, Y2 = max(0, x1 - margin), max(0, y1 - margin), min(w, x2 + margin), min(h, y2 + margin)
            mask = inst.full_mask((h, w))[Y1:Y2, X1:X2]
            patch = s.image[Y1:Y2, X1:X2].astype(np.float32)
            ring = ndimage.binary_dilation(mask, iterations=max(1, margin)) & ~mask
            if not ring.any() or mask.sum() < 2:
                continue
            out.setdefault(inst.category_id, []).append(
                _Source(patch - float(np.median(patch[ring])), mask, inst.category_id))
    return out


def _transform(src: _Source, rng: np.random.Generator, jitter: float) -> tuple[np.ndarray, np.ndarray]:
    k, flip = int(rng.integers(4)), bool(rng.integers(2))
    patch, mask = np.rot90(src.patch, k), np.rot90(src.mask, k)
    if flip:
        patch, mask = patch[:, ::-1], mask[:, ::-1]
    f = float(rng.uniform(1 - jitter, 1 + jitter)) if jitter > 0 else 1.0
    if abs(f - 1) > 1e-3:
        patch = rescale(patch, f, order=1, anti_aliasing=f < 1, preserve_range=True).astype(np.float32)
        mask = rescale(mask.astype(np.float32), f, order=1, preserve_range=True) >= 0.5
    return np.ascontiguousarray(patch), np.ascontiguousarray(mask)


def paste(image: np.ndarray, occupied: np.ndarray, patch: np.ndarray, mask: np.ndarray, cx: float, cy: float,
          category_id: int, feather: float, min_area: int) -> Instance | None:
    """Paste ``patch`` (background-subtracted) centred at (cx, cy) into ``image`` in place with a
    soft edge; returns the new instance, or None when it would overlap ``occupied`` or be cut
    below ``min_area``. ``occupied`` (bool) is updated."""
    h, w = image.shape
    ph, pw = patch.shape
    y0, x0 = int(round(cy - ph / 2)), int(round(cx - pw / 2))
    Y0, X0, Y1, X1 = max(0, y0), max(0, x0), min(h, y0 + ph), min(w, x0 + pw)
    if Y1 <= Y0 or X1 <= X0:
        return None
    sub_mask = mask[Y0 - y0:Y1 - y0, X0 - x0:X1 - x0]
    if sub_mask.sum() < min_area or (occupied[Y0:Y1, X0:X1] & ndimage.binary_dilation(sub_mask)).any():
        return None
    alpha = ndimage.gaussian_filter(ndimage.binary_dilation(sub_mask, iterations=2).astype(np.float32), feather)
    alpha = np.maximum(alpha / max(alpha.max(), 1e-6), sub_mask)  # 1 on the defect, soft outside
    region = image[Y0:Y1, X0:X1]
    region += alpha * patch[Y0 - y0:Y1 - y0, X0 - x0:X1 - x0]
    np.clip(region, 0.0, 1.0, out=region)
    occupied[Y0:Y1, X0:X1] |= sub_mask
    rows, cols = np.nonzero(sub_mask)
    m = sub_mask[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
    return Instance(m.copy(), X0 + int(cols.min()), Y0 + int(rows.min()), int(category_id))


@register
class CopyPaste(Augmentation):
    """Real defects pasted into other real training crops, counts and places from the prior."""
    name = "copy_paste"
    Config = CopyPasteConfig

    def _make(self, cell: Cell, n: int, out_dir: Path, meta: dict) -> None:
        c = self.config
        rng = np.random.default_rng(derive_seed(cell.seed, COPY_PASTE))
        sources = _sources(cell.train, c.margin)
        if not sources:
            raise ValueError(f"{out_dir}: copy_paste needs labelled defects in the training crops; the cell has none")
        maps = cell.prior.sample(n, cell.crop_size, generator=rng, name="cp", nm_per_px=cell.nm_per_px)
        samples, pasted, skipped, missing = [], 0, 0, set()
        for i, m in enumerate(maps):
            base = cell.train[int(rng.integers(len(cell.train)))]
            image = base.image.astype(np.float32).copy()
            occupied = np.zeros(image.shape, bool)
            for inst in base.instances:
                occupied |= inst.full_mask(image.shape)
            new = []
            for want in m.instances:
                pool = sources.get(want.category_id)
                if not pool:
                    missing.add(want.category_id)
                    skipped += 1
                    continue
                x1, y1, x2, y2 = want.bbox
                patch, mask = _transform(pool[int(rng.integers(len(pool)))], rng, c.scale_jitter)
                got = None
                for t in range(c.max_tries):  # the prior's place first, then random ones
                    if t == 0:
                        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
                    else:
                        cx, cy = float(rng.uniform(0, image.shape[1])), float(rng.uniform(0, image.shape[0]))
                    got = paste(image, occupied, patch, mask, cx, cy, want.category_id, c.feather, c.min_area)
                    if got is not None:
                        break
                if got is None:
                    skipped += 1
                else:
                    new.append(got)
            pasted += len(new)
            samples.append(Sample(image, [*base.instances, *new], source_id=f"copy_paste:{base.source_id}",
                                  nm_per_px=base.nm_per_px, name=f"cp_{i:05d}",
                                  meta={"base": base.name, "pasted": len(new)}))
        write_dataset(samples, out_dir, cell.classes, metadata={}, overwrite=True)
        meta.update({"n_images": len(samples), "defects_pasted": pasted, "defects_skipped": skipped,
                     "classes_without_source": sorted(missing),
                     "bases": {s.name: s.meta["base"] for s in samples}})  # image -> the real crop it started from
