"""Count calibration: expected true counts per class from detected counts.

A detector misses some defects, finds some that are not labelled, and gives some the wrong
class; on a micrograph it reports ``D_c`` defects of class ``c``. Measured on labelled
validation crops at the thresholds quantify keeps detections at (never test crops):

* ``P[c, j]``: the probability that a labelled defect of class ``j`` is found (IoU >= ``iou``,
  the paper's greedy matching) by a detection of class ``c``; ``sum_c P[c, j]`` is the recall
  of class ``j``, the off-diagonal terms the confusion between classes;
* ``f[c]``: class-``c`` detections that match no label, per pixel of image.

Expected counts follow ``E[D] = P T + f A`` for true counts ``T`` on an image of ``A`` pixels;
the calibrated counts solve it for ``T >= 0`` (non-negative least squares, exact when ``P`` is
invertible and the solution positive). This is the confusion-matrix inversion of
quantification learning (Saerens et al. 2002; Forman 2008), which unlike the fraction of a
class's detections that are really of class ``j`` does not depend on the mix of classes of the
validation crops. The interval is a bootstrap that resamples the validation crops (the
uncertainty of ``P`` and ``f``, which a few dozen crops make wide) and draws the detected
counts from a Poisson law (the micrograph's own counting noise).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..classes import ClassSet
from ..metrics.detection import Detections, per_image_counts


@dataclass
class CountCalibration:
    """Per validation crop ``i``: ``matched[i, c, j]`` detections of class ``c`` matched to a
    labelled defect of class ``j``; ``detected[i, c]`` detections of class ``c``; ``labelled[i, j]``
    labelled defects of class ``j`` (classes in ``class_ids`` order); ``area[i]`` its pixels."""
    class_ids: list[int]
    matched: np.ndarray
    detected: np.ndarray
    labelled: np.ndarray
    area: np.ndarray
    iou: float = 0.5
    thresholds: dict | None = None  # class id -> the score threshold it was measured at
    source: str = ""

    def __post_init__(self):
        self.class_ids = [int(c) for c in self.class_ids]
        C = len(self.class_ids)
        self.matched = np.asarray(self.matched, np.int64)
        self.detected = np.asarray(self.detected, np.int64)
        self.labelled = np.asarray(self.labelled, np.int64)
        self.area = np.asarray(self.area, np.float64)
        n = len(self.detected)
        if (self.matched.shape != (n, C, C) or self.detected.shape != (n, C) or self.labelled.shape != (n, C)
                or self.area.shape != (n,)):
            raise ValueError(f"count calibration: arrays of shapes {self.matched.shape}, {self.detected.shape}, "
                             f"{self.labelled.shape}, {self.area.shape} for {n} crops and {C} classes")
        if n == 0:
            raise ValueError("count calibration: no validation crops")
        if (self.matched < 0).any() or (self.matched.sum(2) > self.detected).any() \
                or (self.matched.sum(1) > self.labelled).any() or not (self.area > 0).all():
            raise ValueError("count calibration: more matches than detections or labelled defects in a crop, or a "
                             "crop without area")

    def __eq__(self, other) -> bool:
        return isinstance(other, CountCalibration) and self.to_dict() == other.to_dict()

    # -------------------------------------------------------------- estimates
    def rates(self, crops=None) -> tuple[np.ndarray, np.ndarray]:
        """``(P [C, C], f [C])`` from the crops ``crops`` (indices; default all): ``P[c, j]`` the
        probability a labelled class-``j`` defect is found as class ``c``, ``f[c]`` unmatched
        class-``c`` detections per pixel. A class with nothing labelled there: its column NaN."""
        sel = slice(None) if crops is None else crops
        m, lab = self.matched[sel].sum(0), self.labelled[sel].sum(0)
        with np.errstate(invalid="ignore", divide="ignore"):
            P = np.where(lab[None, :] > 0, m / lab[None, :], np.nan)
        f = (self.detected[sel].sum(0) - m.sum(1)) / self.area[sel].sum()
        return P, f

    def recall(self) -> np.ndarray:
        return self.rates()[0].sum(0)

    def correct(self, counts, area_px: float, n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> pd.DataFrame:
        """Expected true counts from detected ``counts`` (``{class_id: n}`` or a sequence in
        ``class_ids`` order) on ``area_px`` pixels (at the pixel size the detector ran at): one
        row per class with ``detected``, ``calibrated`` and its ``level`` interval
        (``calibrated_ci_low``/``_high``)."""
        D = self._counts(counts)
        if not (np.isfinite(area_px) and area_px > 0):
            raise ValueError(f"count calibration: the image area must be a positive number of pixels, got {area_px}")
        point = _solve(*self.rates(), D, area_px)
        rng = np.random.default_rng(seed)
        n = len(self.detected)
        reps = np.array([_solve(*self.rates(rng.integers(0, n, n)), rng.poisson(D), area_px) for _ in range(n_boot)])
        a = (1 - level) / 2
        with np.errstate(all="ignore"):
            lo, hi = (np.nanquantile(reps, [a, 1 - a], axis=0) if np.isfinite(reps).any()
                      else (point * np.nan, point * np.nan))
        return pd.DataFrame({"class_id": self.class_ids, "detected": D, "calibrated": point,
                             "calibrated_ci_low": lo, "calibrated_ci_high": hi})

    def _counts(self, counts) -> np.ndarray:
        if isinstance(counts, dict):
            unknown = sorted(set(int(k) for k in counts) - set(self.class_ids))
            if unknown:
                raise ValueError(f"count calibration: classes {unknown} are not among its classes {self.class_ids}")
            return np.array([counts.get(c, 0) for c in self.class_ids], float)
        D = np.asarray(counts, float)
        if D.shape != (len(self.class_ids),):
            raise ValueError(f"count calibration: {D.shape[0] if D.ndim else 'scalar'} counts for "
                             f"{len(self.class_ids)} classes")
        return D

    def table(self, classes: ClassSet | None = None) -> pd.DataFrame:
        """Per class: labelled and detected on the crops, precision (matched to a label of any
        class), recall (found as any class), and the column of ``P`` (as which class it is found)."""
        P, _ = self.rates()
        d, lab, m = self.detected.sum(0), self.labelled.sum(0), self.matched.sum(0)
        name = (lambda c: classes.display(c)) if classes is not None else str  # noqa: E731
        return pd.DataFrame([{"class_id": c, "class": name(c), "labelled": int(lab[k]), "detected": int(d[k]),
                              "precision": float(m[k].sum() / d[k]) if d[k] else np.nan, "recall": float(P[:, k].sum()),
                              **{f"found as {name(j)}": float(P[i, k]) for i, j in enumerate(self.class_ids)}}
                             for k, c in enumerate(self.class_ids)])

    # -------------------------------------------------------------- serialisation (the model card)
    def to_dict(self) -> dict:
        return {"class_ids": self.class_ids, "iou": self.iou, "source": self.source,
                "thresholds": None if self.thresholds is None else {str(k): v for k, v in self.thresholds.items()},
                "matched": self.matched.tolist(), "detected": self.detected.tolist(),
                "labelled": self.labelled.tolist(), "area": self.area.tolist()}

    @classmethod
    def from_dict(cls, d: dict, where: str) -> "CountCalibration":
        if not isinstance(d, dict):
            raise ValueError(f"{where}: calibration must be a mapping, got {type(d).__name__}")
        missing = {"class_ids", "matched", "detected", "labelled", "area"} - set(d)
        if missing:
            raise ValueError(f"{where}: calibration lacks {sorted(missing)}")
        try:
            th = d.get("thresholds")
            return cls(d["class_ids"], d["matched"], d["detected"], d["labelled"], d["area"], float(d.get("iou", 0.5)),
                       None if th is None else {int(k): float(v) for k, v in th.items()}, str(d.get("source", "")))
        except (TypeError, ValueError) as e:
            raise ValueError(f"{where}: calibration: {e}") from None


def fit_count_calibration(truth: list, predictions: list[Detections], classes: ClassSet,
                          thresholds: dict | None = None, iou: float = 0.5, source: str = "") -> CountCalibration:
    """Measure the calibration on labelled VALIDATION crops (``truth``: Samples) and the
    detector's predictions on them, kept at ``thresholds`` (``{class_id: score}``; default: as
    they are). A class with no labelled defect there, or none of whose labelled defects was
    found, cannot be calibrated: ``ValueError`` naming it."""
    ids = list(classes.ids)
    col = {c: k for k, c in enumerate(ids)}
    if len(truth) != len(predictions):
        raise ValueError(f"count calibration: {len(predictions)} prediction sets for {len(truth)} crops")
    if thresholds is not None:
        predictions = [p.above_class_thresholds(thresholds) for p in predictions]
    n, C = len(truth), len(ids)
    # the paper's matching, as every metric does it: cms[i, true j, detected c] (last column: other classes)
    _, cms = per_image_counts(truth, predictions, iou, classes)
    matched = cms[:, :, :C].transpose(0, 2, 1)
    detected, labelled = np.zeros((n, C), np.int64), np.zeros((n, C), np.int64)
    for i, (gt, pred) in enumerate(zip(truth, predictions)):
        for lab in pred.labels:
            if int(lab) in col:
                detected[i, col[int(lab)]] += 1
        for g in gt.labels:
            if int(g) in col:
                labelled[i, col[int(g)]] += 1
    lab, found = labelled.sum(0), matched.sum((0, 1))
    for k, c in enumerate(ids):
        if lab[k] == 0:
            raise ValueError(f"count calibration: class {classes.display(c)!r} has no labelled defect on the {n} "
                             "validation crops; its counts cannot be calibrated (label some, or quantify without "
                             "calibration)")
        if found[k] == 0:
            raise ValueError(f"count calibration: none of the {lab[k]} labelled {classes.display(c)!r} defects on "
                             f"the {n} validation crops was found at IoU {iou}; its counts cannot be calibrated")
    area = [float(gt.shape[0] * gt.shape[1]) for gt in truth]
    return CountCalibration(ids, matched, detected, labelled, area, iou, thresholds, source)


def _solve(P: np.ndarray, f: np.ndarray, D: np.ndarray, area_px: float) -> np.ndarray:
    """``T >= 0`` with ``P T`` closest to ``D - f area`` (NaN where a class was never labelled)."""
    from scipy.optimize import nnls
    if not np.isfinite(P).all():
        return np.full(len(D), np.nan)
    return nnls(P, np.clip(D - f * area_px, 0, None))[0]


def add_calibrated(summary: pd.DataFrame, images: pd.DataFrame, calibration: CountCalibration, n_boot: int = 1000,
                   seed: int = 0) -> pd.DataFrame:
    """``summary`` (:func:`~tem_lib.quantify.measure.summary_table`) with the calibrated count
    and density of every image and class, and their intervals (``count_calibrated``,
    ``count_calibrated_ci_low``/``_high``, ``density_calibrated``, ...). ``images``: one row per
    image with ``image``, ``height_px``, ``width_px`` and ``model_scale`` (its resize factor to the
    detector's pixel size: false detections are counted per pixel the detector saw)."""
    area = dict(zip(images.image, images.height_px * images.width_px * images.model_scale ** 2))
    area["all"] = sum(area.values())
    parts = []
    for image, g in summary.groupby("image", sort=False):
        corr = calibration.correct(dict(zip(g.class_id, g["count"])), area[image], n_boot=n_boot,
                                   seed=seed).set_index("class_id")
        c = corr.loc[g.class_id]
        parts.append(g.assign(count_calibrated=c.calibrated.to_numpy(),
                              count_calibrated_ci_low=c.calibrated_ci_low.to_numpy(),
                              count_calibrated_ci_high=c.calibrated_ci_high.to_numpy()))
    out = pd.concat(parts).loc[summary.index]
    for k in ("", "_ci_low", "_ci_high"):
        out[f"density_calibrated{k}"] = out[f"count_calibrated{k}"] / out["area"]
    return out
