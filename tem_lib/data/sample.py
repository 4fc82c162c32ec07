"""The one in-memory representation of a labelled micrograph."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..classes import ClassSet


@dataclass
class Instance:
    """One labelled defect: a boolean mask cropped to its bounding box.

    ``mask`` bool [h, w]; ``(x0, y0)`` is the image column/row of ``mask[0, 0]``.
    Cropped storage keeps hundreds of instances of a 2048-pixel micrograph cheap and lets
    instances overlap (hand-fitted ellipses do).
    """
    mask: np.ndarray
    x0: int
    y0: int
    category_id: int
    # Optional ellipse (cx, cy, major, minor, angle_deg) the mask was drawn from.
    ellipse: tuple[float, float, float, float, float] | None = None

    @property
    def area(self) -> int:
        return int(self.mask.sum())

    @property
    def bbox(self) -> tuple[int, int, int, int]:
        """(x1, y1, x2, y2) in pixel-edge coordinates: x2 - x1 is the width in pixels."""
        h, w = self.mask.shape
        return self.x0, self.y0, self.x0 + w, self.y0 + h

    def full_mask(self, shape) -> np.ndarray:
        out = np.zeros(shape, dtype=bool)
        h, w = self.mask.shape
        out[self.y0:self.y0 + h, self.x0:self.x0 + w] = self.mask
        return out

    def crop(self, x0: int, y0: int, x1: int, y1: int) -> "Instance | None":
        """The part inside the window [x0, x1) x [y0, y1), in window coordinates, or None."""
        ix0, iy0, ix1, iy1 = self.bbox
        cx0, cy0, cx1, cy1 = max(ix0, x0), max(iy0, y0), min(ix1, x1), min(iy1, y1)
        if cx1 <= cx0 or cy1 <= cy0:
            return None
        m = self.mask[cy0 - iy0:cy1 - iy0, cx0 - ix0:cx1 - ix0]
        if not m.any():
            return None
        rows, cols = np.nonzero(m)
        r0, c0 = rows.min(), cols.min()
        m = m[r0:rows.max() + 1, c0:cols.max() + 1]
        ell = None
        if self.ellipse is not None:
            cx, cy, *rest = self.ellipse
            ell = (cx - x0, cy - y0, *rest)
        return Instance(m.copy(), cx0 - x0 + int(c0), cy0 - y0 + int(r0), self.category_id, ell)


class _Labelled:
    """Label views shared by :class:`Sample` and :class:`LabelMap` (needs ``shape`` and
    ``instances``)."""

    def _check_classes(self) -> None:
        bad = [i.category_id for i in self.instances if not 1 <= int(i.category_id) <= 255]
        if bad:
            raise ValueError(f"{self.name}: class ids must be in 1..255 (0 is background), got {sorted(set(bad))}")

    @property
    def labels(self) -> np.ndarray:
        return np.array([i.category_id for i in self.instances], dtype=np.int64)

    def masks(self) -> np.ndarray:
        """Full-size instance masks, bool [N, H, W]."""
        out = np.zeros((len(self.instances), *self.shape), dtype=bool)
        for k, inst in enumerate(self.instances):
            h, w = inst.mask.shape
            out[k, inst.y0:inst.y0 + h, inst.x0:inst.x0 + w] = inst.mask
        return out

    def boxes(self) -> np.ndarray:
        """float32 [N, 4] boxes (x1, y1, x2, y2), pixel-edge coordinates."""
        return np.array([i.bbox for i in self.instances], dtype=np.float32).reshape(-1, 4)

    def class_map(self) -> np.ndarray:
        """uint8 [H, W] semantic map of class ids (0 background; later instances win)."""
        out = np.zeros(self.shape, dtype=np.uint8)
        for inst in self.instances:
            h, w = inst.mask.shape
            out[inst.y0:inst.y0 + h, inst.x0:inst.x0 + w][inst.mask] = inst.category_id
        return out

    def gray_mask(self, classes: ClassSet) -> np.ndarray:
        """Gray-level class mask, uint8 [H, W] (0 background), with ``classes``' gray levels
        (the paper's 85 / 170 / 255 for ``preset("fecral")``)."""
        classes.check_ids({i.category_id for i in self.instances}, str(self.name))
        return classes.gray_lut()[self.class_map()]


@dataclass
class Sample(_Labelled):
    """A micrograph (or crop of one) with its instance labels.

    ``image``: float32 [H, W] in [0, 1] (8-bit input is divided by 255; 16-bit and float
    TIFFs are min-max normalised). ``source_id`` names the micrograph it came from, so
    splits never put crops of one micrograph on both sides. ``nm_per_px`` is None when the
    pixel size is unknown.
    """
    image: np.ndarray
    instances: list[Instance]
    source_id: str
    nm_per_px: float | None = None
    name: str | None = None  # file stem, unique inside a dataset
    origin: tuple[int, int] = (0, 0)  # (x0, y0) of a crop in its source micrograph
    meta: dict = field(default_factory=dict)  # e.g. "file": the image file a dataset reader read it from
    # Pixel label layers beside the instances, name -> bool [H, W] (the simulator's
    # "grain_boundary"); cropped with the image, kept in memory (dataset folders hold instances)
    layers: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.name is None:
            self.name = self.source_id
        if self.image.ndim != 2:
            raise ValueError(f"{self.name}: image must be 2-D grayscale, got shape {self.image.shape}")
        for k, v in self.layers.items():
            if np.shape(v) != self.image.shape:
                raise ValueError(f"{self.name}: label layer {k!r} has shape {np.shape(v)}, the image {self.image.shape}")
        self._check_classes()

    @property
    def shape(self) -> tuple[int, int]:
        return self.image.shape


@dataclass
class LabelMap(_Labelled):
    """Instance labels without an image: what a mask prior samples (``tem_lib.priors``)
    and what conditions the diffusion model. ``to_sample`` gives it an image."""
    shape: tuple[int, int]
    instances: list[Instance]
    name: str = "map"
    nm_per_px: float | None = None
    source_id: str | None = None
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        self.shape = (int(self.shape[0]), int(self.shape[1]))
        if self.source_id is None:
            self.source_id = self.name
        self._check_classes()

    def to_sample(self, image: np.ndarray | None = None, classes: ClassSet | None = None) -> Sample:
        """A :class:`Sample` with ``image`` (float [0, 1], this map's shape) or, without one,
        the gray-level class mask of ``classes`` as a placeholder image (for inspection and
        export; without ``classes``, the class-id map)."""
        if image is None:
            image = (self.gray_mask(classes) if classes is not None else self.class_map()).astype(np.float32) / 255.0
        if image.shape != self.shape:
            raise ValueError(f"{self.name}: image shape {image.shape} != label map shape {self.shape}")
        return Sample(image.astype(np.float32), self.instances, self.source_id, self.nm_per_px,
                      self.name, meta=dict(self.meta))
