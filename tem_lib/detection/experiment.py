"""One condition of the paper's experiment: train a detector, predict the test crops, measure.

``run_condition`` is what notebook 05 runs twice (EXP: N real crops; EXP+GEN: the same crops
plus synthetic pairs) and what the split-sensitivity sweep runs for every (split, N,
condition, seed). Its folder holds the trained detector, ``predictions.json`` (COCO results,
RLE masks) and ``metrics.json``; a finished condition is loaded instead of retrained.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..data import load_dataset
from ..data.sample import Instance
from ..layout import DATASET_META, DETECTOR_META, HISTORY, METRICS, PREDICTIONS, VAL_PREDICTIONS
from ..metrics.detection import (
    IOU_THRESHOLDS,
    DetectionReport,
    Detections,
    _coco_results,
    coco_ap,
    evaluate_detections,
    size_density_table,
)
from ..utils import atomic_path, provenance, read_json, stable_hash, write_json
from .engine import evaluate
from .train import train_detector


@dataclass
class ConditionResult:
    name: str
    out_dir: Path
    predictions: list[Detections]
    report: DetectionReport
    coco: dict
    sizes: pd.DataFrame
    training: dict = field(default_factory=dict)
    val_predictions: list[Detections] | None = None  # on the validation crops, when asked for

    @property
    def history(self) -> pd.DataFrame:
        """The detector's training history (one row per iteration: losses, learning rate)."""
        path = self.out_dir / HISTORY
        return pd.read_csv(path) if path.is_file() else pd.DataFrame(columns=["iteration", "loss"])


def write_predictions(predictions: list[Detections], path) -> None:
    """COCO results JSON (image ids 1.. in order; bbox x, y, w, h; RLE masks) plus the image
    names and shapes, so :func:`read_predictions` restores the exact Detections."""
    res = _coco_results(predictions, all(p.instances is not None for p in predictions))
    doc = {"images": [{"id": k, "name": p.name, "shape": list(p.shape)} for k, p in enumerate(predictions, 1)],
           "results": res}
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(doc))


def read_predictions(path) -> list[Detections]:
    from pycocotools import mask as mask_utils
    doc = read_json(path)
    if "images" not in doc or "results" not in doc:
        raise ValueError(f"{path}: not a predictions file (needs 'images' and 'results')")
    by_img: dict[int, list] = {im["id"]: [] for im in doc["images"]}
    for r in doc["results"]:
        by_img.setdefault(r["image_id"], []).append(r)
    out = []
    for im in doc["images"]:
        rs = by_img[im["id"]]
        boxes = np.array([[x, y, x + w, y + h] for x, y, w, h in (r["bbox"] for r in rs)], float).reshape(-1, 4)
        inst = None
        if all("segmentation" in r for r in rs):
            inst = []
            for r in rs:
                m = mask_utils.decode({"size": r["segmentation"]["size"],
                                       "counts": r["segmentation"]["counts"].encode("ascii")}).astype(bool)
                rows, cols = np.nonzero(m)
                y0, x0 = rows.min(), cols.min()
                inst.append(Instance(m[y0:rows.max() + 1, x0:cols.max() + 1], int(x0), int(y0), r["category_id"]))
        out.append(Detections(boxes, [r["category_id"] for r in rs], [r["score"] for r in rs],
                              tuple(im["shape"]), im["name"], inst))
    return out


def load_synthetic(folder, limit: int | None = None):
    """The pairs of a synthetic dataset folder (notebook 04), the first ``limit`` of them."""
    folder = Path(folder)
    if not (folder / DATASET_META).is_file():
        raise FileNotFoundError(f"{folder}: not a synthetic dataset folder (no metadata.json); run notebook 04")
    samples = load_dataset(folder)
    return samples[:limit] if limit is not None else samples


def run_condition(name: str, train, test, out_dir, classes, detector: dict | None = None, training: dict | None = None,
                  synthetic=None, device="cpu", iou_thresholds=IOU_THRESHOLDS, metric_options: dict | None = None,
                  progress: bool = True, val=None, init_weights=None) -> ConditionResult:
    """Train (or resume, or load when finished) a detector on ``train`` + ``synthetic``, predict
    ``test`` and measure it with the paper's metrics, COCO AP and size/density errors.
    ``classes``: the dataset's class set (detector heads, metric columns). ``val``: validation
    crops (never test) to predict too, e.g. to choose a score threshold. ``init_weights``: a
    saved detector to start from (pretraining, ``train_detector``)."""
    out_dir = Path(out_dir)
    synthetic = list(synthetic or [])
    key = stable_hash({"detector": detector or {}, "training": training or {}, "classes": list(classes.ids),
                       "train": [s.name for s in train],
                       "synthetic": [s.name for s in synthetic], "test": [s.name for s in test],
                       **({"init": str(init_weights)} if init_weights is not None else {})})
    done = out_dir / METRICS
    val_file = out_dir / VAL_PREDICTIONS
    model = None
    if done.is_file() and read_json(done).get("key") == key and (out_dir / PREDICTIONS).is_file():
        meta = read_json(out_dir / DETECTOR_META)
        training_info = read_json(done)["training"]
        preds = read_predictions(out_dir / PREDICTIONS)
    else:
        model, summary = train_detector(train, out_dir, detector, training, synthetic, device,
                                        class_ids=classes.ids, class_names=classes.names, progress=progress,
                                        init_weights=init_weights)
        preds = evaluate(model, test, device, progress=progress)
        write_predictions(preds, out_dir / PREDICTIONS)
        val_file.unlink(missing_ok=True)
        meta = read_json(out_dir / DETECTOR_META)
        training_info = {k: summary[k] for k in ("seconds", "resumed_from", "pretrained", "n_real", "n_synthetic",
                                                 "init_weights") if k in summary}
    if list(meta["class_ids"]) != list(classes.ids):
        raise ValueError(f"{out_dir / 'detector.json'}: detector trained for classes {meta['class_ids']}, "
                         f"the data has {list(classes.ids)}; delete the folder to retrain")
    val_preds = None
    if val:
        if val_file.is_file() and [p.name for p in read_predictions(val_file)] == [s.name for s in val]:
            val_preds = read_predictions(val_file)
        else:
            if model is None:
                from .train import load_detector
                model = load_detector(out_dir, device)
            val_preds = evaluate(model, val, device, progress=progress)
            write_predictions(val_preds, val_file)
    report = evaluate_detections(test, preds, iou_thresholds, classes=classes, **(metric_options or {}))
    coco = coco_ap(test, preds)
    sizes = size_density_table(test, preds, classes)
    write_json(done, {"key": key, "name": name, "table": report.table.to_dict(orient="records"),
                      "per_class": report.per_class.to_dict(orient="records"), "coco": coco,
                      "sizes": sizes.to_dict(orient="records"), "training": training_info,
                      "metric_options": report.options, "n_test": len(test), **provenance()})
    return ConditionResult(name, out_dir, preds, report, coco, sizes, training_info, val_preds)
