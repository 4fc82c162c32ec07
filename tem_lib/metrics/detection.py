"""The paper's detection and classification metrics, plus COCO AP and size/density errors.

Definitions follow the authors' analysis code (``PAPER_NOTES.md`` section 1), all on the test
set:

* **matching** (``matching="gt"``, the paper's): for each ground-truth defect in turn (the order
  of the annotations), take the not-yet-matched prediction with the highest **box** IoU; the
  defect is *found* if that IoU >= the threshold, and only then is the prediction used up.
  One-to-one, greedy in ground-truth order, class ignored. ``matching="score"`` is the COCO
  order instead: predictions by decreasing score, each taking the unmatched ground truth of
  highest IoU (pycocotools' rule, here class-agnostic).
* **detection F1**: pooled over all test images. TP = found, FP = predictions - found,
  FN = ground truth - found; F1 = 2 TP / (2 TP + FP + FN) (the harmonic mean of precision and
  recall, written so that it is defined everywhere: no prediction and no defect at all scores 1).
* **classification F1**: 3 x 3 confusion matrix (rows true class, columns predicted class) over
  the found pairs only; per class F1 = 2 C[c, c] / (row_c + column_c); classification F1 is
  the unweighted mean over the classes that occur among the found pairs (as truth or as
  prediction). A class that never occurs there is left out of the mean and listed in
  ``absent_classes``; with no found pair at all classification F1 is 0 (1 when the test set
  has neither defects nor predictions).
* **headline**: harmonic mean of detection F1 and classification F1 (0 if both are 0).

The authors' quirks are options, off by default: ``skip_images_without_predictions`` (their
code skipped such images, so their defects never counted as misses) and ``detections_cap``
(at most 100 detections for the first image and 500 for the others).

Boxes everywhere are float [N, 4] ``(x1, y1, x2, y2)`` in pixel-edge coordinates (x2 - x1 is
the width in pixels), the convention of :meth:`tem_lib.data.Sample.boxes` and of torchvision.
"""
from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..classes import ClassSet
from ..data.sample import Instance, Sample

IOU_THRESHOLDS = (0.1, 0.3, 0.5, 0.7)


@dataclass
class Detections:
    """A detector's output for one image, as numpy arrays.

    ``boxes`` float [N, 4] (x1, y1, x2, y2, pixel edges; from the box head, which the paper's
    matching uses), ``labels`` int64 [N] class ids, ``scores`` float [N] in [0, 1],
    ``instances`` the predicted masks (binarised, cropped to their bounding box; same order)
    or None when the detector gives none; ``shape`` (H, W) of the image.
    """
    boxes: np.ndarray
    labels: np.ndarray
    scores: np.ndarray
    shape: tuple[int, int]
    name: str = "image"
    instances: list[Instance] | None = None

    def __post_init__(self):
        self.boxes = np.asarray(self.boxes, dtype=np.float64).reshape(-1, 4)
        self.labels = np.asarray(self.labels, dtype=np.int64).reshape(-1)
        self.scores = np.asarray(self.scores, dtype=np.float64).reshape(-1)
        n = len(self.boxes)
        if len(self.labels) != n or len(self.scores) != n or (self.instances is not None and len(self.instances) != n):
            raise ValueError(f"{self.name}: {n} boxes, {len(self.labels)} labels, {len(self.scores)} scores"
                             + (f", {len(self.instances)} masks" if self.instances is not None else "")
                             + ": lengths must agree")

    def __len__(self) -> int:
        return len(self.boxes)

    def top(self, k: int | None = None, min_score: float | None = None) -> "Detections":
        """The ``k`` highest-scoring detections with score >= ``min_score``, by decreasing score."""
        order = np.argsort(-self.scores, kind="stable")
        if min_score is not None:
            order = order[self.scores[order] >= min_score]
        if k is not None:
            order = order[:k]
        inst = None if self.instances is None else [self.instances[i] for i in order]
        return Detections(self.boxes[order], self.labels[order], self.scores[order], self.shape, self.name, inst)

    def subset(self, indices) -> "Detections":
        """The detections at ``indices``, in that order."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        inst = None if self.instances is None else [self.instances[i] for i in idx]
        return Detections(self.boxes[idx], self.labels[idx], self.scores[idx], self.shape, self.name, inst)

    def above_class_thresholds(self, thresholds: dict) -> "Detections":
        """The detections scoring at least their class's threshold (``{class_id: threshold}``;
        a class not in it keeps every detection), by decreasing score."""
        t = np.array([thresholds.get(int(lab), 0.0) for lab in self.labels], dtype=np.float64)
        order = np.argsort(-self.scores, kind="stable")
        return self.subset(order[self.scores[order] >= t[order]])

    def class_agnostic_nms(self, iou: float = 0.5) -> "Detections":
        """Keep, among boxes overlapping more than ``iou`` whatever their class, only the
        highest-scoring (what ``DetectorConfig.class_agnostic_nms`` does inside the model),
        by decreasing score."""
        import torch
        import torchvision
        keep = torchvision.ops.nms(torch.as_tensor(self.boxes), torch.as_tensor(self.scores), iou).numpy()
        inst = None if self.instances is None else [self.instances[i] for i in keep]
        return Detections(self.boxes[keep], self.labels[keep], self.scores[keep], self.shape, self.name, inst)

    def to_sample(self) -> Sample:
        """The predicted masks as a :class:`Sample` (placeholder image), for geometry tables."""
        if self.instances is None:
            raise ValueError(f"{self.name}: these detections carry no masks")
        return Sample(np.zeros(self.shape, np.float32), list(self.instances), self.name, name=self.name)


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


# ----------------------------------------------------------------------------- COCO AP
def _coco_results(predictions: list[Detections], with_masks: bool) -> list[dict]:
    from pycocotools import mask as mask_utils
    out = []
    for k, d in enumerate(predictions, start=1):
        for j in range(len(d)):
            x1, y1, x2, y2 = (float(v) for v in d.boxes[j])
            r = {"image_id": k, "category_id": int(d.labels[j]), "score": float(d.scores[j]),
                 "bbox": [x1, y1, x2 - x1, y2 - y1]}
            if with_masks:
                full = np.asfortranarray(d.instances[j].full_mask(d.shape).astype(np.uint8))
                rle = mask_utils.encode(full)
                rle["counts"] = rle["counts"].decode("ascii")
                r["segmentation"] = rle
            out.append(r)
    return out


def coco_eval(truth: list, predictions: list[Detections], iou_type: str = "bbox", class_agnostic: bool = False,
              max_dets: tuple[int, int, int] = (10, 100, 500)):
    """A run pycocotools ``COCOeval`` (evaluate + accumulate + summarize, its printing
    silenced) of ``predictions`` against ``truth``. ``iou_type``: "bbox" or "segm".
    ``class_agnostic``: pool the classes (``useCats = 0``)."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    from ..data.io import to_coco
    if len(truth) != len(predictions):
        raise ValueError(f"{len(predictions)} prediction sets for {len(truth)} images")
    samples = [s.to_sample() if not isinstance(s, Sample) else s for s in truth]
    gt = COCO()
    ids = {i.category_id for s in samples for i in s.instances} | {int(c) for p in predictions for c in p.labels}
    gt.dataset = to_coco(samples, as_class_set(sorted(ids) or [1]))  # categories: only their ids matter here
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
        res = _coco_results(predictions, iou_type == "segm")
        dt = gt.loadRes(res) if res else COCO()
        if not res:
            dt.dataset = {"images": gt.dataset["images"], "categories": gt.dataset["categories"], "annotations": []}
            dt.createIndex()
        ev = COCOeval(gt, dt, iou_type)
        ev.params.maxDets = list(max_dets)
        ev.params.useCats = 0 if class_agnostic else 1
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev


def coco_ap(truth: list, predictions: list[Detections]) -> dict:
    """COCO AP (IoU 0.50:0.95), AP50 and AP75 for boxes, and for masks when the detections
    carry them; -1 where pycocotools finds no ground truth (its convention)."""
    out = {}
    types = ["bbox"] + (["segm"] if all(d.instances is not None for d in predictions) else [])
    for t in types:
        stats = coco_eval(truth, predictions, t).stats
        out.update({f"{t}_AP": float(stats[0]), f"{t}_AP50": float(stats[1]), f"{t}_AP75": float(stats[2])})
    return out


# ----------------------------------------------------------------------------- sizes and densities
def size_density_table(truth: list, predictions: list[Detections], classes,
                       score_threshold: float | None = None) -> pd.DataFrame:
    """Per class: count, areal density and mean size of the true and the predicted defects over
    the whole test set, and their relative errors ((pred - true) / true).

    Size is the major axis of the moment ellipse of each mask (nm when every image knows its
    pixel size, else px); density is per µm² (or per megapixel without a pixel size). Predicted
    masks are needed (``Detections.instances``). The paper's code reported these errors too.
    """
    from ..stats import instance_table
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


# ----------------------------------------------------------------------------- paired bootstrap
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


def above(predictions: list[Detections], min_score: float) -> list[Detections]:
    """The detections of each image with score >= ``min_score``."""
    return [p.top(None, min_score) for p in predictions]


def score_threshold_sweep(truth: list, predictions: list[Detections], classes, thresholds=None, iou: float = 0.5,
                          **columns) -> pd.DataFrame:
    """The paper's metrics at IoU ``iou`` with only the detections scoring at least each of
    ``thresholds`` (default 0.1, 0.2, ..., 0.9): one row per threshold (``score_threshold``),
    with ``columns`` (e.g. ``condition="EXP"``) added before it."""
    thresholds = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9] if thresholds is None else list(thresholds)
    return pd.DataFrame([
        evaluate_detections(truth, predictions, (iou,), classes=classes, score_threshold=t).table.iloc[0].to_dict()
        | columns | {"score_threshold": t} for t in thresholds])


def choose_class_thresholds(truth: list, predictions: list[Detections], classes, iou: float = 0.5,
                            objective: str = "headline", thresholds=None, rounds: int = 2) -> tuple[dict, pd.DataFrame]:
    """One score threshold per class, chosen on ``truth`` (VALIDATION crops, never test):

    * ``objective="headline"``: coordinate ascent on the headline (harmonic mean of detection
      and classification F1 at ``iou``) from the best single threshold, one class at a time,
      ``rounds`` passes; a class's threshold moves only when the headline rises;
    * ``objective="count"``: for each class the threshold at which as many of its detections
      are kept as it has labelled defects (the density a microscopist reports), the higher
      among ties.

    Returns ``({class_id: threshold}, table)``: per class its threshold, labelled and kept
    counts on ``truth``. Candidates: 0.05, 0.10, ..., 0.95 unless ``thresholds``."""
    classes = as_class_set(classes)
    grid = np.round(np.arange(0.05, 0.951, 0.05), 2) if thresholds is None else np.asarray(thresholds, float)
    n_true = {c: sum(i.category_id == c for s in truth for i in s.instances) for c in classes.ids}
    if objective == "count":
        chosen = {}
        for c in classes.ids:
            sc = np.concatenate([p.scores[p.labels == c] for p in predictions]) if predictions else np.zeros(0)
            gaps = [abs(int((sc >= t).sum()) - n_true[c]) for t in grid]
            best = min(gaps)
            chosen[c] = float(max(t for t, g in zip(grid, gaps) if g == best))
    elif objective == "headline":
        start, _ = choose_score_threshold(truth, predictions, classes, iou, thresholds=grid)
        chosen = dict.fromkeys(classes.ids, start)

        def score(th):
            counts, cms = per_image_counts(truth, [p.above_class_thresholds(th) for p in predictions], iou, classes)
            return scores_from_counts(counts.sum(0), cms.sum(0), classes)["harmonic"]
        current = score(chosen)
        for _ in range(rounds):
            for c in classes.ids:
                for t in grid:
                    trial = {**chosen, c: float(t)}
                    v = score(trial)
                    if v > current + 1e-12:
                        chosen, current = trial, v
    else:
        raise ValueError(f"objective must be 'headline' or 'count', got {objective!r}")
    kept = [p.above_class_thresholds(chosen) for p in predictions]
    table = pd.DataFrame([{"class_id": c, "class": classes.display(c), "threshold": chosen[c], "n_true": n_true[c],
                           "n_kept": int(sum((p.labels == c).sum() for p in kept))} for c in classes.ids])
    return chosen, table


def choose_score_threshold(truth: list, predictions: list[Detections], classes, iou: float = 0.5,
                           metric: str = "harmonic", thresholds=None) -> tuple[float, pd.DataFrame]:
    """The score threshold that maximises ``metric`` (pooled, at ``iou``) on ``truth``: pass
    VALIDATION crops, never test crops. Returns the threshold (the lowest among ties) and the
    table of every candidate (default 0.05, 0.10, ..., 0.95)."""
    if not truth:
        raise ValueError("choose_score_threshold needs labelled validation crops; got none")
    thresholds = np.round(np.arange(0.05, 0.951, 0.05), 2) if thresholds is None else np.asarray(thresholds)
    rows = []
    for t in thresholds:
        counts, cms = per_image_counts(truth, above(predictions, float(t)), iou, classes)
        rows.append({"threshold": float(t), **scores_from_counts(counts.sum(0), cms.sum(0), classes)})
    table = pd.DataFrame(rows)
    best = table.loc[table[metric].idxmax()]
    return float(best["threshold"]), table
