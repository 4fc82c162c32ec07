"""Mask fidelity: does an image show the defects its mask asks for, where it asks for them?

A segmenter trained on real crops (``tem_lib.segmentation``) labels the image; the label is
compared with the mask per class. Read the numbers against two references measured the same
way: real test crops with their own masks (what a perfect generator would score) and
generated images paired with someone else's mask (what ignoring the mask scores).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..classes import ClassSet


def fidelity_table(predicted: np.ndarray, label_maps, classes: ClassSet, min_overlap: float = 0.5) -> pd.DataFrame:
    """Per class: pixel IoU and Dice between ``predicted`` uint8 [N, H, W] class maps and the
    maps of ``label_maps`` (Samples or LabelMaps), and instance recall: the fraction of mask
    instances with at least ``min_overlap`` of their pixels predicted as a defect
    (``found``) and as their own class (``found_class``). Classes absent from the masks get NaN.
    """
    if len(predicted) != len(label_maps):
        raise ValueError(f"{len(predicted)} predictions for {len(label_maps)} masks")
    truth = np.stack([m.class_map() for m in label_maps])
    rows = []
    for c in classes.ids:
        p, t = predicted == c, truth == c
        inter, union = np.logical_and(p, t).sum(), np.logical_or(p, t).sum()
        found = found_cls = n = 0
        for pred, m in zip(predicted, label_maps):
            for inst in m.instances:
                if inst.category_id != c:
                    continue
                pix = pred[inst.y0:inst.y0 + inst.mask.shape[0], inst.x0:inst.x0 + inst.mask.shape[1]][inst.mask]
                if not pix.size:
                    continue
                n += 1
                found += (pix > 0).mean() >= min_overlap
                found_cls += (pix == c).mean() >= min_overlap
        rows.append({"class": classes.display(c), "class_id": c, "n_instances": n,
                     "pixel_iou": inter / union if t.any() else np.nan,
                     "dice": 2 * inter / (p.sum() + t.sum()) if t.any() else np.nan,
                     "found": found / n if n else np.nan, "found_class": found_cls / n if n else np.nan})
    return pd.DataFrame(rows)
