"""Paired bootstrap intervals of the gain of one detector over another, over test images."""
from __future__ import annotations

import numpy as np
import pandas as pd

from .detections import Detections
from .matching import as_class_set, per_image_counts, scores_from_counts


def paired_bootstrap(truth: list, base: list[Detections], other: list[Detections], iou: float = 0.5,
                     n_boot: int = 1000, seed: int = 0, classes=None,
                     return_replicates: bool = False):
    """Gain of ``other`` over ``base`` (e.g. EXP+GEN minus EXP) on the same test images, with a
    paired bootstrap over the images: each replicate resamples the test images with replacement
    and recomputes both pooled scores on the same resample. Returns one row per metric: the
    observed gain, the bootstrap mean, the 2.5/97.5 % percentiles and the fraction of
    replicates with a gain > 0. ``return_replicates``: also the replicate gains (one row per
    replicate), e.g. to pool splits replicate by replicate. ``classes``: the dataset's class set."""
    if classes is None:
        raise ValueError("paired_bootstrap needs the dataset's class set (classes=...)")
    classes = as_class_set(classes)
    a_counts, a_cms = per_image_counts(truth, base, iou, classes)
    b_counts, b_cms = per_image_counts(truth, other, iou, classes)
    rng = np.random.default_rng(seed)
    n = len(truth)
    observed = {k: v - scores_from_counts(a_counts.sum(0), a_cms.sum(0), classes)[k]
                for k, v in scores_from_counts(b_counts.sum(0), b_cms.sum(0), classes).items()}
    reps = []
    for _ in range(n_boot):
        idx = rng.integers(0, n, n)
        sa = scores_from_counts(a_counts[idx].sum(0), a_cms[idx].sum(0), classes)
        sb = scores_from_counts(b_counts[idx].sum(0), b_cms[idx].sum(0), classes)
        reps.append({k: sb[k] - sa[k] for k in sa})
    reps = pd.DataFrame(reps)
    summary = summarize_gains(observed, reps)
    return (summary, reps) if return_replicates else summary


def summarize_gains(observed: dict, reps: pd.DataFrame) -> pd.DataFrame:
    """Observed gain, bootstrap mean, 95 % percentile interval and P(gain > 0) per metric."""
    return pd.DataFrame([{"metric": k, "gain": observed[k], "boot_mean": reps[k].mean(),
                          "ci_low": reps[k].quantile(0.025), "ci_high": reps[k].quantile(0.975),
                          "p_gain_positive": float((reps[k] > 0).mean())} for k in observed])


