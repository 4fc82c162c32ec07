"""Size and density errors per class (Jacobs et al.'s relative errors)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ...data.sample import Sample
from .detections import Detections
from .matching import as_class_set


def size_density_table(truth: list, predictions: list[Detections], classes,
                       score_threshold: float | None = None) -> pd.DataFrame:
    """Per class: count, areal density and mean size of the true and the predicted defects over
    the whole test set, and their relative errors ((pred - true) / true).

    Size is the major axis of the moment ellipse of each mask (nm when every image knows its
    pixel size, else px); density is per µm² (or per megapixel without a pixel size). Predicted
    masks are needed (``Detections.instances``). The paper's code reported these errors too.
    """
    from ...stats import instance_table
    classes = as_class_set(classes)
    samples = [s.to_sample() if not isinstance(s, Sample) else s for s in truth]
    preds = [p.top(None, score_threshold) if score_threshold is not None else p for p in predictions]
    nm = [s.nm_per_px for s in samples]
    known = all(v for v in nm)
    area = sum(s.shape[0] * s.shape[1] * ((s.nm_per_px / 1000) ** 2 if known else 1e-6) for s in samples)
    unit_size, unit_density = ("nm", "per um2") if known else ("px", "per Mpx")
    pred_samples = []
    for s, p in zip(samples, preds):
        d = p.to_sample()
        d.nm_per_px = s.nm_per_px
        pred_samples.append(d)
    t_tab, p_tab = instance_table(samples), instance_table(pred_samples)
    size_col = "major_nm" if known else "major"
    rows = []
    for c in classes.ids:
        tt, pp = t_tab[t_tab.class_id == c], p_tab[p_tab.class_id == c]
        t_size = float(tt[size_col].mean()) if len(tt) else np.nan
        p_size = float(pp[size_col].mean()) if len(pp) else np.nan
        rows.append({"class_id": c, "class": classes.display(c), "n_true": len(tt), "n_pred": len(pp),
                     "density_true": len(tt) / area, "density_pred": len(pp) / area,
                     "density_rel_error": (len(pp) - len(tt)) / len(tt) if len(tt) else np.nan,
                     "size_true": t_size, "size_pred": p_size,
                     "size_rel_error": (p_size - t_size) / t_size if len(tt) and len(pp) else np.nan,
                     "size_unit": unit_size, "density_unit": unit_density})
    return pd.DataFrame(rows)


