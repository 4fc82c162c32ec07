"""Matching detections to labels (the paper's greedy box matching) and the paper's F1s."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ...classes import ClassSet
from .detections import IOU_THRESHOLDS, Detections


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU [N, M] of boxes ``a`` [N, 4] and ``b`` [M, 4] (x1, y1, x2, y2, pixel edges).
    Degenerate boxes (zero width or height) have IoU 0 with everything."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    area_a = np.clip(a[:, 2] - a[:, 0], 0, None) * np.clip(a[:, 3] - a[:, 1], 0, None)
    area_b = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    wh = np.clip(rb - lt, 0, None)
    inter = wh[..., 0] * wh[..., 1]
    union = area_a[:, None] + area_b[None, :] - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def match_greedy(gt_boxes, pred_boxes, iou_threshold: float, order: str = "gt",
                 scores=None) -> list[tuple[int, int, float]]:
    """One-to-one greedy matching; returns ``(gt_index, pred_index, iou)`` of the found pairs.

    ``order="gt"`` (the paper): ground truths in their order, each taking the unmatched
    prediction of highest IoU if it reaches ``iou_threshold``. ``order="score"`` (COCO):
    predictions by decreasing ``scores``, each taking the unmatched ground truth of highest
    IoU if it reaches the threshold. Ties go to the lower index.
    """
    iou = box_iou(gt_boxes, pred_boxes)
    n_gt, n_pred = iou.shape
    pairs = []
    if order == "gt":
        free = np.ones(n_pred, dtype=bool)
        for g in range(n_gt):
            if not free.any():
                break
            row = np.where(free, iou[g], -1.0)
            p = int(np.argmax(row))
            if row[p] >= iou_threshold:
                free[p] = False
                pairs.append((g, p, float(row[p])))
    elif order == "score":
        if scores is None:
            raise ValueError("order='score' needs the prediction scores")
        free = np.ones(n_gt, dtype=bool)
        for p in np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable"):
            if not free.any():
                break
            col = np.where(free, iou[:, p], -1.0)
            g = int(np.argmax(col))
            if col[g] >= iou_threshold:
                free[g] = False
                pairs.append((g, int(p), float(col[g])))
        pairs.sort()
    else:
        raise ValueError(f"order must be 'gt' or 'score', got {order!r}")
    return pairs


def f1(tp: float, fp: float, fn: float) -> float:
    """2 TP / (2 TP + FP + FN); 1 when there is nothing to find and nothing was claimed."""
    d = 2 * tp + fp + fn
    return 1.0 if d == 0 else 2 * tp / d


def harmonic(a: float, b: float) -> float:
    return 0.0 if a + b == 0 else 2 * a * b / (a + b)


def headline_metric(classes) -> str:
    """The metric a table leads with: the paper's harmonic mean of detection and classification
    F1; with one class, classification F1 is 1 by construction, so detection F1."""
    return "det_f1" if len(as_class_set(classes)) == 1 else "harmonic"


def as_class_set(classes) -> ClassSet:
    """A :class:`ClassSet`, or one made from bare class ids (names ``class_<id>``)."""
    if isinstance(classes, ClassSet):
        return classes
    ids = [int(c) for c in classes]
    return ClassSet.from_names([f"class_{i}" for i in ids], ids)


def classification_scores(confusion: np.ndarray, classes) -> tuple[float, pd.DataFrame, list[int]]:
    """Classification F1 of a confusion matrix (rows true, columns predicted, in ``classes``
    order; an optional last column counts predictions of a class outside ``classes``, which
    are wrong for the true class): the unweighted mean of per-class F1 over the classes
    present; the per-class table; the ids of the absent classes (left out of the mean)."""
    classes = as_class_set(classes)
    class_ids = classes.ids
    cm = np.asarray(confusion, dtype=np.float64)
    if cm.shape not in ((len(class_ids), len(class_ids)), (len(class_ids), len(class_ids) + 1)):
        raise ValueError(f"confusion matrix of shape {cm.shape} for {len(class_ids)} classes")
    rows, present = [], []
    for k, c in enumerate(class_ids):
        tp, n_true, n_pred = cm[k, k], cm[k].sum(), cm[:, k].sum()
        ok = n_true + n_pred > 0
        rows.append({"class_id": c, "class": classes.display(c), "n_true": int(n_true),
                     "n_pred": int(n_pred),
                     "precision": tp / n_pred if n_pred else np.nan,
                     "recall": tp / n_true if n_true else np.nan,
                     "f1": f1(tp, n_pred - tp, n_true - tp) if ok else np.nan})
        if ok:
            present.append(rows[-1]["f1"])
    absent = [c for c, r in zip(class_ids, rows) if np.isnan(r["f1"])]
    return (float(np.mean(present)) if present else 0.0), pd.DataFrame(rows), absent


@dataclass
class DetectionReport:
    """What :func:`evaluate_detections` measured.

    ``table``: one row per IoU threshold (tp, fp, fn, det_precision, det_recall, det_f1, cls_f1,
    f1_<class> per class, harmonic, ...). ``confusion``: per threshold, a DataFrame of the
    found pairs' classes (index true, columns predicted). ``per_class``: per threshold and class,
    precision/recall/F1 of the classification. ``per_image``: tp/fp/fn per image and threshold.
    """
    table: pd.DataFrame
    confusion: dict[float, pd.DataFrame]
    per_class: pd.DataFrame
    per_image: pd.DataFrame
    options: dict = field(default_factory=dict)

    def headline(self, iou: float = 0.5) -> dict:
        row = self.table.set_index("iou").loc[iou]
        return {"det_f1": float(row["det_f1"]), "cls_f1": float(row["cls_f1"]), "harmonic": float(row["harmonic"])}


def evaluate_detections(truth: list, predictions: list[Detections], iou_thresholds=IOU_THRESHOLDS,
                        classes=None, matching: str = "gt", score_threshold: float | None = None,
                        skip_images_without_predictions: bool = False,
                        detections_cap: tuple[int, int] | None = None) -> DetectionReport:
    """The paper's metrics for ``predictions`` (one :class:`Detections` per image, in the order
    of ``truth``: Samples or LabelMaps with their instances).

    ``score_threshold``: drop detections below it first (the paper's 0.1 is applied by the
    detector at test time). ``skip_images_without_predictions`` and ``detections_cap`` are the
    authors' quirks (see the module docstring). ``classes``: the dataset's class set (or bare
    ids); its names label the ``f1_<name>`` columns. Ground-truth boxes are the bounding boxes
    of the true masks; predicted classes outside ``classes`` count as detections and as
    misclassifications.
    """
    if classes is None:
        raise ValueError("evaluate_detections needs the dataset's class set (classes=...)")
    classes = as_class_set(classes)
    if len(truth) != len(predictions):
        raise ValueError(f"{len(predictions)} prediction sets for {len(truth)} images")
    class_ids = classes.ids
    n_cls = len(class_ids)
    thresholds = tuple(float(t) for t in iou_thresholds)
    kept_truth, kept_preds, skipped = [], [], 0
    for i, (gt, pred) in enumerate(zip(truth, predictions)):
        if tuple(gt.shape) != tuple(pred.shape):
            raise ValueError(f"{pred.name}: predictions for a {pred.shape} image, truth {gt.name} is {gt.shape}")
        if score_threshold is not None or detections_cap is not None:
            cap = None if detections_cap is None else detections_cap[0 if i == 0 else 1]
            pred = pred.top(cap, score_threshold)
        if skip_images_without_predictions and len(pred) == 0:
            skipped += 1
            continue
        kept_truth.append(gt)
        kept_preds.append(pred)
    counts, confusion, per_image = {}, {}, []
    for t in thresholds:
        c, cm = per_image_counts(kept_truth, kept_preds, t, classes, matching)
        counts[t], confusion[t] = c.sum(0), cm.sum(0)
        per_image += [{"image": gt.name, "iou": t, "tp": int(tp), "fp": int(fp), "fn": int(fn),
                       "n_true": len(gt.instances), "n_pred": len(p)}
                      for gt, p, (tp, fp, fn) in zip(kept_truth, kept_preds, c)]
    rows, per_class, cms = [], [], {}
    names = [c.display for c in classes]
    for t in thresholds:
        tp, fp, fn = (int(v) for v in counts[t])
        cm = confusion[t]
        _, pc, absent = classification_scores(cm, classes)
        row = {"iou": t, "tp": tp, "fp": fp, "fn": fn,
               "det_precision": tp / (tp + fp) if tp + fp else (1.0 if fn == 0 else 0.0),
               "det_recall": tp / (tp + fn) if tp + fn else 1.0,
               **scores_from_counts(counts[t], cm, classes),
               "cls_accuracy": float(np.trace(cm[:, :n_cls]) / cm.sum()) if cm.sum() else 0.0,
               "absent_classes": ",".join(str(c) for c in absent)}
        for c, r in zip(class_ids, pc.itertuples()):
            row[f"f1_{classes[c].name}"] = r.f1
        rows.append(row)
        per_class.append(pc.assign(iou=t))
        cms[t] = pd.DataFrame(cm, index=pd.Index(names, name="true"),
                              columns=pd.Index(names + ["other"], name="predicted"))
        if not cm[:, n_cls].any():
            cms[t] = cms[t].drop(columns="other")
    table = pd.DataFrame(rows)
    table["images_skipped"] = skipped
    options = {"matching": matching, "score_threshold": score_threshold,
               "skip_images_without_predictions": skip_images_without_predictions,
               "detections_cap": detections_cap, "class_ids": list(class_ids)}
    per_image = pd.DataFrame(per_image, columns=["image", "iou", "tp", "fp", "fn", "n_true", "n_pred"])
    return DetectionReport(table, cms, pd.concat(per_class, ignore_index=True), per_image, options)



def per_image_counts(truth: list, predictions: list[Detections], iou: float, classes,
                     matching: str = "gt") -> tuple[np.ndarray, np.ndarray]:
    """Per image: (tp, fp, fn) int [n, 3] and the confusion of its found pairs int [n, C, C + 1]
    (last column: predicted classes outside ``classes``). Summing over any subset of images
    gives that subset's pooled metrics (:func:`scores_from_counts`)."""
    class_ids = as_class_set(classes).ids
    col = {c: k for k, c in enumerate(class_ids)}
    counts = np.zeros((len(truth), 3), np.int64)
    cms = np.zeros((len(truth), len(class_ids), len(class_ids) + 1), np.int64)
    for i, (gt, pred) in enumerate(zip(truth, predictions)):
        pairs = match_greedy(gt.boxes(), pred.boxes, iou, matching, pred.scores)
        counts[i] = (len(pairs), len(pred) - len(pairs), len(gt.instances) - len(pairs))
        labels = gt.labels
        for g, p, _ in pairs:
            if labels[g] in col:
                cms[i, col[labels[g]], col.get(int(pred.labels[p]), len(class_ids))] += 1
    return counts, cms


def scores_from_counts(counts: np.ndarray, cms: np.ndarray, classes) -> dict:
    """Detection F1, classification F1 and their harmonic mean from summed per-image counts."""
    tp, fp, fn = (int(v) for v in counts)
    cls, _, _ = classification_scores(cms, classes)
    if tp == fp == fn == 0:
        cls = 1.0  # nothing to find and nothing claimed: nothing misclassified either
    det = f1(tp, fp, fn)
    return {"det_f1": det, "cls_f1": cls, "harmonic": harmonic(det, cls)}


