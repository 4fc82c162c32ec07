"""A trained detector made into a model folder with everything quantify needs chosen on
labelled validation crops: one score threshold (the best headline), one per class (as many kept
as labelled), the count calibration at those, all on predictions made the way quantify will
make them (in ``tta_views`` symmetries of each crop)."""
from __future__ import annotations

import warnings
from pathlib import Path

from ..classes import ClassSet
from ..layout import VAL_PREDICTIONS, tta_predictions_file
from .calibration import fit_count_calibration
from .card import export_model
from .tta import VIEW_SCORE


def validation_predictions(detector_dir, val: list, classes: ClassSet, tta_views: int = 1, device="cpu",
                           view_score: float = VIEW_SCORE) -> list:
    """The detector's predictions on the validation crops ``val``: the run's stored ones
    (``val_predictions.json``) for one view, else made now in ``tta_views`` views and stored
    beside them (``val_predictions_tta<views>.json``)."""
    from ..detection import evaluate, load_detector
    from ..detection.experiment import read_predictions, write_predictions
    detector_dir = Path(detector_dir)
    path = detector_dir / (VAL_PREDICTIONS if tta_views == 1 else tta_predictions_file(tta_views, view_score))
    if path.is_file():
        preds = read_predictions(path)
        if [p.name for p in preds] == [s.name for s in val]:
            return preds
    model = load_detector(detector_dir, device)
    if tta_views == 1:
        preds = evaluate(model, val, device, progress=False)
    else:
        from .tta import tta_predictor
        predict = tta_predictor(model, classes.ids, device, views=tta_views, view_score=view_score)
        preds = [predict([s.image], [(0, 0)])[0] for s in val]
        for p, s in zip(preds, val):
            p.name = s.name
    write_predictions(preds, path)
    return preds


def export_for_quantify(detector_dir, out_dir, classes: ClassSet, tile: int, nm_per_px: float | None, val: list,
                        what: str, source: dict | None = None, tta_views: int = 1, calibrate: bool = True,
                        device="cpu", iou: float = 0.5, view_score: float = VIEW_SCORE) -> Path:
    """``detector_dir`` (a finished detector of :func:`~tem_lib.detection.train_detector`) as a
    model folder in ``out_dir``, its thresholds and calibration chosen on the labelled crops
    ``val`` (``what`` says which, for the card). A class that cannot be calibrated (none of it
    labelled there, or none found) leaves the calibration out, with a warning."""
    from ..metrics.detection import choose_class_thresholds, choose_score_threshold
    if not val:
        raise ValueError(f"{detector_dir}: no validation crops to choose thresholds on")
    preds = validation_predictions(detector_dir, val, classes, tta_views, device, view_score)
    single, _ = choose_score_threshold(val, preds, classes, iou=iou)
    per_class, _ = choose_class_thresholds(val, preds, classes, iou=iou, objective="count")
    calibration = None
    if calibrate:
        try:
            calibration = fit_count_calibration(val, preds, classes, per_class, iou, what)
        except ValueError as e:  # e.g. a class with no labelled defect there: raw counts only, said once
            warnings.warn(f"{out_dir}: exported without count calibration: {e}", stacklevel=2)
    views = f" ({tta_views}-view TTA, views kept down to {view_score:g})" if tta_views > 1 else ""
    return export_model(detector_dir, out_dir, classes, tile, nm_per_px, single,
                        f"best headline on {what}{views}; per class: as many kept as labelled there", source,
                        class_thresholds=per_class, calibration=calibration, tta_views=tta_views,
                        tta_view_score=view_score)
