"""Segmentation metrics of the U-Net confidence study (seed 002), in two families.

Against a reference (the noisy human-like labels, or the simulator's truth, whichever is
passed): pixel IoU / F1 (:func:`pixel_scores`), boundary F1 with a distance tolerance
(:func:`boundary_f1`), and the detection rate of reference objects (:func:`object_recall`:
a defect, or a grain between boundaries, counts as found when enough of it is predicted).

Independent of any labels: the number of objects a model finds per image
(:func:`object_counts`; the seed's count-based detection rate is the ratio of two models'
counts, or of a model's to the labelled count), confidence (:func:`confidence_stats`: mean max
probability, normalised entropy, and, where a reference exists, expected calibration error),
agreement of a model with itself under the 8 turns and flips of the square
(:func:`flip_agreement`), and agreement between models trained with different seeds
(:func:`seed_agreement`).

Masks are bool [N, H, W]; probabilities float [N, K, H, W] (K classes, background 0).
"""
from __future__ import annotations

import itertools
from typing import Callable

import numpy as np
from scipy import ndimage


def pixel_scores(pred: np.ndarray, ref: np.ndarray) -> dict:
    """Pooled over all pixels of all images: IoU, F1 (Dice), precision and recall of the
    positive pixels (NaN where undefined)."""
    pred, ref = np.asarray(pred, bool), np.asarray(ref, bool)
    if pred.shape != ref.shape:
        raise ValueError(f"prediction {pred.shape} and reference {ref.shape} differ in shape")
    tp = float(np.logical_and(pred, ref).sum())
    fp, fn = float(pred.sum()) - tp, float(ref.sum()) - tp

    def div(a, b):
        return a / b if b else float("nan")
    return {"iou": div(tp, tp + fp + fn), "f1": div(2 * tp, 2 * tp + fp + fn), "precision": div(tp, tp + fp),
            "recall": div(tp, tp + fn)}


def boundary_f1(pred: np.ndarray, ref: np.ndarray, tolerance_px: float = 2.0) -> dict:
    """Thin structures (grain boundaries): a predicted pixel is right when a reference pixel
    lies within ``tolerance_px``, a reference pixel is found when a predicted one does (the
    usual boundary F-measure); pooled over images."""
    pred, ref = np.asarray(pred, bool), np.asarray(ref, bool)
    hit_p = hit_r = 0
    for p, r in zip(pred, ref):
        if r.any():
            hit_p += int((ndimage.distance_transform_edt(~r)[p] <= tolerance_px).sum())
        if p.any():
            hit_r += int((ndimage.distance_transform_edt(~p)[r] <= tolerance_px).sum())
    n_p, n_r = int(pred.sum()), int(ref.sum())
    precision = hit_p / n_p if n_p else float("nan")
    recall = hit_r / n_r if n_r else float("nan")
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else precision + recall  # 0 or NaN
    return {"precision": precision, "recall": recall, "f1": f1}


def grains(boundary: np.ndarray, min_area: int = 50) -> np.ndarray:
    """Grain labels int32 [H, W] (0 on boundaries and in regions below ``min_area`` px): the
    4-connected regions a boundary map encloses."""
    lab, n = ndimage.label(~np.asarray(boundary, bool))
    if n:
        areas = np.bincount(lab.ravel())
        lab[areas[lab] < min_area] = 0
    return lab


def objects(mask: np.ndarray, kind: str = "defects", min_area: int = 4) -> np.ndarray:
    """Labelled objects of one binary map: ``"defects"`` = connected components of the mask
    (at least ``min_area`` px), ``"grains"`` = regions enclosed by it (:func:`grains`)."""
    if kind == "grains":
        return grains(mask)
    if kind != "defects":
        raise ValueError(f"kind must be 'defects' or 'grains', got {kind!r}")
    lab, n = ndimage.label(np.asarray(mask, bool))
    if n:
        areas = np.bincount(lab.ravel())
        small = areas < min_area
        small[0] = False
        lab[small[lab]] = 0
    return lab


def object_counts(masks: np.ndarray, kind: str = "defects") -> np.ndarray:
    """Objects per image (labels not needed): defects predicted, or grains enclosed."""
    return np.array([len(np.unique(objects(m, kind))) - 1 for m in masks])


def object_recall(pred: np.ndarray, ref: np.ndarray, kind: str = "defects", min_overlap: float = 0.5) -> float:
    """Fraction of the reference's objects that the prediction finds: a defect when at least
    ``min_overlap`` of its pixels are predicted; a grain when a predicted grain overlaps it
    with IoU >= ``min_overlap``."""
    found = total = 0
    for p, r in zip(np.asarray(pred, bool), np.asarray(ref, bool)):
        ref_lab = objects(r, kind)
        ids = np.unique(ref_lab)
        ids = ids[ids > 0]
        total += len(ids)
        if kind == "defects":
            for i in ids:
                found += p[ref_lab == i].mean() >= min_overlap
            continue
        pred_lab = grains(p)
        for i in ids:
            g = ref_lab == i
            cand, counts = np.unique(pred_lab[g], return_counts=True)
            best = cand[np.argmax(np.where(cand > 0, counts, -1))]
            if best == 0:
                continue
            q = pred_lab == best
            found += (g & q).sum() / (g | q).sum() >= min_overlap
    return found / total if total else float("nan")


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, n_bins: int = 15) -> float:
    """ECE of the per-pixel top class: confidence bins of equal width, |accuracy - confidence|
    weighted by the bin's share of pixels."""
    conf = probs.max(1).ravel()
    correct = (probs.argmax(1) == labels).ravel()
    bins = np.minimum((conf * n_bins).astype(int), n_bins - 1)
    count = np.bincount(bins, minlength=n_bins)
    acc = np.bincount(bins, correct, minlength=n_bins)
    mean_conf = np.bincount(bins, conf, minlength=n_bins)
    ok = count > 0
    return float(np.abs(acc[ok] - mean_conf[ok]).sum() / conf.size)


def confidence_stats(probs: np.ndarray, labels: np.ndarray | None = None, mask: np.ndarray | None = None) -> dict:
    """Mean max probability and mean entropy / log K over all pixels (or those of ``mask``,
    e.g. the pixels near a reference object), and the ECE against ``labels`` when given."""
    probs = np.asarray(probs, np.float64)
    k = probs.shape[1]
    pmax = probs.max(1)
    ent = -(probs * np.log(np.clip(probs, 1e-12, 1))).sum(1) / np.log(k)
    sel = np.ones(pmax.shape, bool) if mask is None else np.asarray(mask, bool)
    out = {"mean_max_prob": float(pmax[sel].mean()), "mean_entropy": float(ent[sel].mean())}
    if labels is not None:
        out["ece"] = expected_calibration_error(probs, np.asarray(labels))
    return out


def _dihedral(x: np.ndarray, k: int, flip: bool) -> np.ndarray:
    x = np.rot90(x, k, axes=(-2, -1))
    return np.flip(x, -1) if flip else x


def _undo(x: np.ndarray, k: int, flip: bool) -> np.ndarray:
    x = np.flip(x, -1) if flip else x
    return np.rot90(x, -k, axes=(-2, -1))


def flip_agreement(predict: Callable[[np.ndarray], np.ndarray], images: np.ndarray) -> float:
    """Self-consistency: ``predict`` (images [N, H, W] -> masks [N, H, W]) on each of the 7
    other turns/flips of the square, turned back, against its prediction on the original;
    mean IoU of the positive pixels (1: the model sees the same thing whichever way up)."""
    images = np.asarray(images)
    base = np.asarray(predict(images), bool)
    ious = []
    for k, flip in itertools.product(range(4), (False, True)):
        if k == 0 and not flip:
            continue
        other = _undo(np.asarray(predict(np.ascontiguousarray(_dihedral(images, k, flip))), bool), k, flip)
        ious.append(pixel_scores(other, base)["iou"])
    return float(np.nanmean(ious))


def seed_agreement(masks: list[np.ndarray]) -> float:
    """Mean pairwise IoU of the predictions of models trained with different seeds."""
    if len(masks) < 2:
        return float("nan")
    return float(np.nanmean([pixel_scores(a, b)["iou"] for a, b in itertools.combinations(masks, 2)]))
