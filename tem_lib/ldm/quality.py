"""Quality filter for generated pairs: keep a pair only if its image shows its mask's defects.

A generated image whose defects are not where its mask says teaches a detector that
"background" looks like a defect (or the reverse). A segmenter trained on real crops
(``tem_lib.segmentation``) labels each generated image; an instance counts as *found* when at
least ``min_overlap`` of its mask pixels are segmented as a defect (any class, as
:func:`tem_lib.metrics.fidelity.fidelity_table`'s ``found``). A pair is kept when at least
``min_found`` of its instances are found; a pair without instances is kept (nothing to miss).
What was dropped, and why, goes into the synthetic dataset's metadata.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np


def found_fractions(predicted: np.ndarray, label_maps, min_overlap: float = 0.5) -> list[tuple[int, int]]:
    """Per pair ``(instances found, instances)`` for predicted class maps uint8 [N, H, W]."""
    out = []
    for pred, m in zip(predicted, label_maps):
        n = found = 0
        for inst in m.instances:
            pix = pred[inst.y0:inst.y0 + inst.mask.shape[0], inst.x0:inst.x0 + inst.mask.shape[1]][inst.mask]
            if pix.size:
                n += 1
                found += (pix > 0).mean() >= min_overlap
        out.append((int(found), n))
    return out


@dataclass
class QualityFilter:
    """``predict``: float images [N, H, W] in [0, 1] -> uint8 class maps [N, H, W] (e.g.
    ``functools.partial(tem_lib.segmentation.predict, model)``)."""
    predict: Callable[[np.ndarray], np.ndarray]
    min_found: float = 0.5
    min_overlap: float = 0.5
    description: str = "segmenter"

    def __post_init__(self):
        if not 0 <= self.min_found <= 1 or not 0 < self.min_overlap <= 1:
            raise ValueError(f"quality filter needs min_found in [0, 1] and min_overlap in (0, 1], got "
                             f"{self.min_found}, {self.min_overlap}")

    def __call__(self, images: np.ndarray, label_maps) -> tuple[np.ndarray, dict]:
        """``(keep, record)``: a bool mask over the pairs and the metadata record."""
        counts = found_fractions(self.predict(images), label_maps, self.min_overlap)
        keep, dropped = [], []
        for m, (found, n) in zip(label_maps, counts):
            ok = n == 0 or found / n >= self.min_found
            keep.append(ok)
            if not ok:
                dropped.append({"name": m.name, "found": found, "instances": n,
                                "reason": f"{found} of {n} defects found under their masks "
                                          f"({found / n:.2f} < {self.min_found:g})"})
        record = {"by": self.description, "min_found": self.min_found, "min_overlap": self.min_overlap,
                  "n_generated": len(label_maps), "n_kept": int(sum(keep)), "n_dropped": len(dropped),
                  "dropped": dropped}
        return np.asarray(keep, bool), record
