"""Score thresholds chosen on validation crops: one for all classes, or one per class."""
from __future__ import annotations

import numpy as np
import pandas as pd

from .detections import Detections
from .matching import as_class_set, evaluate_detections, per_image_counts, scores_from_counts


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
