"""Per-instance geometry and per-image statistics of labelled micrographs.

Used by notebook 01 (exploration), the mask priors (notebook 02) and the realism benchmark,
so the simulated and the real data are always measured the same way.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import ndimage
from skimage.measure import regionprops

from .classes import ClassSet
from .data.sample import Sample


def instance_table(samples: list[Sample], classes: ClassSet | None = None) -> pd.DataFrame:
    """One row per instance: ellipse fit of its mask (scikit-image moments).

    Columns: source_id, name, class_id, class_name, cx, cy (px, image coordinates),
    major, minor (full axis lengths, px), ratio (major / minor), angle (degrees in [0, 180),
    tem_lib's convention: counter-clockwise from +x on screen), area (px), and the same
    lengths in nm (NaN when the pixel size is unknown). Masks of one or two pixels get
    minor = 1 so that ratios stay finite.
    """
    rows = []
    for s in samples:
        nm = s.nm_per_px if s.nm_per_px else np.nan
        H, W = s.shape
        for inst in s.instances:
            x1, y1, x2, y2 = inst.bbox
            p = regionprops(inst.mask.astype(np.uint8))[0]
            major = max(p.axis_major_length, 1.0)
            minor = max(p.axis_minor_length, 1.0)
            # skimage: angle between the row axis and the major axis -> ours (from +x, CCW).
            angle = (np.degrees(p.orientation) + 90.0) % 180.0
            cy, cx = p.centroid
            rows.append({"source_id": s.source_id, "name": s.name, "class_id": inst.category_id,
                         "class_name": classes[inst.category_id].name if classes else str(inst.category_id),
                         "cx": inst.x0 + cx + 0.5, "cy": inst.y0 + cy + 0.5,
                         "major": major, "minor": minor, "ratio": major / minor, "angle": angle,
                         "area": float(p.area), "major_nm": major * nm, "minor_nm": minor * nm,
                         "nm_per_px": nm, "edge": x1 <= 0 or y1 <= 0 or x2 >= W or y2 >= H})
    cols = ["source_id", "name", "class_id", "class_name", "cx", "cy", "major", "minor",
            "ratio", "angle", "area", "major_nm", "minor_nm", "nm_per_px", "edge"]
    return pd.DataFrame(rows, columns=cols)


def defect_contrast(image: np.ndarray, mask: np.ndarray, ring: int = 3) -> float:
    """Mean of a ``ring``-px band around the defect minus the mean inside it (dark defect > 0)."""
    grown = ndimage.binary_dilation(mask, iterations=ring)
    band = grown & ~ndimage.binary_dilation(mask, iterations=1)
    if not band.any() or not mask.any():
        return float("nan")
    return float(image[band].mean() - image[mask].mean())


def noise_stats(image: np.ndarray, highpass_sigma: float = 2.0) -> dict:
    """Noise level and correlation of an image, in 8-bit gray levels.

    The residual ``image - gaussian(image, highpass_sigma)`` keeps the pixel noise and
    little of the structure; sigma is its robust spread (1.4826 x MAD), ``corr`` the mean
    Pearson correlation of horizontally and vertically neighbouring residual pixels.
    """
    img = image.astype(np.float64) * 255.0
    r = img - ndimage.gaussian_filter(img, highpass_sigma)
    r = r[4:-4, 4:-4]
    sigma = 1.4826 * np.median(np.abs(r - np.median(r)))

    def corr(a, b):
        a, b = a.ravel() - a.mean(), b.ravel() - b.mean()
        return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum() + 1e-12))

    cx, cy = corr(r[:, :-1], r[:, 1:]), corr(r[:-1, :], r[1:, :])
    return {"noise_sigma": float(sigma), "noise_corr": (cx + cy) / 2, "noise_corr_x": cx,
            "noise_corr_y": cy}


def image_table(samples: list[Sample], classes: ClassSet) -> pd.DataFrame:
    """One row per image: size, defect counts per class (``n_<class name>``), density,
    intensity and noise."""
    rows = []
    for s in samples:
        h, w = s.shape
        mpx = h * w / 1e6
        labels = s.labels
        row = {"source_id": s.source_id, "name": s.name, "height": h, "width": w,
               "nm_per_px": s.nm_per_px, "n_defects": len(labels),
               "defects_per_mpx": len(labels) / mpx}
        for c in classes:
            row[f"n_{c.name}"] = int((labels == c.id).sum())
        if s.nm_per_px:
            row["defects_per_um2"] = len(labels) / (h * w * (s.nm_per_px / 1000.0) ** 2)
        p = np.percentile(s.image * 255.0, [1, 5, 50, 95, 99])
        row.update({f"intensity_p{q}": v for q, v in zip((1, 5, 50, 95, 99), p)})
        row.update(noise_stats(s.image))
        rows.append(row)
    return pd.DataFrame(rows)
