"""COCO AP through pycocotools (box and mask)."""
from __future__ import annotations

import contextlib
import io

import numpy as np

from ...data.sample import Sample
from .detections import Detections
from .matching import as_class_set


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

    from ...data.io import to_coco
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


