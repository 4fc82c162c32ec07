"""Where the proposals come from: a model folder of :mod:`tem_lib.quantify` (run here, once per
micrograph and model, cached) or the output of a quantify run (its ``predictions_coco.json``).
Either way they are quantify's merged whole-micrograph detections with their scores."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..metrics.detection import Detections
from ..utils import read_json, stable_hash, write_json
from .shapes import mask_shape


def uncertainty(scores) -> float:
    """Summed binary entropy (bits) of detection scores: 0 for a detector sure of everything,
    1 per detection scored 0.5."""
    p = np.clip(np.asarray(scores, dtype=np.float64), 1e-6, 1 - 1e-6)
    return float(-(p * np.log2(p) + (1 - p) * np.log2(1 - p)).sum())


def _to_json(det: Detections) -> dict:
    from ..data.io import instance_rle
    return {"shape": list(det.shape), "scores": [round(float(s), 5) for s in det.scores],
            "labels": [int(v) for v in det.labels],
            "masks": [instance_rle(i, det.shape) for i in det.instances]}


def _from_json(d: dict, name: str) -> Detections:
    from pycocotools import mask as mask_utils

    from ..data.readers import instance_from_full
    shape = tuple(d["shape"])
    instances = []
    for rle, label in zip(d["masks"], d["labels"]):
        r = {"size": rle["size"], "counts": rle["counts"].encode("ascii")}
        instances.append(instance_from_full(mask_utils.decode(r).astype(bool), int(label)))
    keep = [i for i, inst in enumerate(instances) if inst is not None]
    kept = [instances[i] for i in keep]
    return Detections(np.array([inst.bbox for inst in kept], np.float32).reshape(-1, 4),
                      np.array([inst.category_id for inst in kept], np.int64),
                      np.asarray(d["scores"], np.float32)[keep].reshape(-1), shape, name, kept)


class ProposalSource:
    """The detector's proposals per micrograph: ``classes``, ``where`` (for messages),
    ``proposals(...) -> Detections`` (every detection the detector makes; ``kept`` marks those
    at the model's thresholds, the ones shown)."""

    def __init__(self, classes, where: str, thresholds: dict):
        self.classes, self.where, self.thresholds = classes, where, thresholds

    @staticmethod
    def make(model, proposals, device="cpu", predict=None) -> "ProposalSource":
        if model is not None and proposals is not None:
            raise ValueError("give model= (run the detector here) or proposals= (a quantify output), not both")
        return ModelProposals(model, device, predict) if model is not None else QuantifyOutputProposals(proposals)

    def kept(self, det: Detections) -> np.ndarray:
        return np.array([det.scores[i] >= self.thresholds.get(int(det.labels[i]), 0.0) for i in range(len(det))], bool)

    def to_shapes(self, det: Detections, image_hw, labelled=None, start: int = 0, match_iou: float = 0.5) -> list[dict]:
        """The kept detections as proposed shapes; on a labelled micrograph only those matching
        no label (IoU < ``match_iou``)."""
        kept = self.kept(det)
        boxes = labelled.boxes() if labelled is not None and labelled.instances else np.zeros((0, 4))
        out = []
        for i in np.flatnonzero(kept):
            inst = det.instances[i]
            if len(boxes) and _matches(inst, labelled.instances, boxes, match_iou):
                continue
            out.append(mask_shape(inst, image_hw, start + len(out), "proposed", float(det.scores[i])))
        return out

    def proposals(self, name, file, image, nm_per_px, out_dir) -> Detections:
        raise NotImplementedError


def _matches(inst, labels, boxes, iou: float) -> bool:
    x1, y1, x2, y2 = inst.bbox
    near = np.flatnonzero((boxes[:, 0] < x2) & (boxes[:, 2] > x1) & (boxes[:, 1] < y2) & (boxes[:, 3] > y1))
    for j in near:
        lab = labels[j]
        X1, Y1 = min(x1, lab.x0), min(y1, lab.y0)
        X2, Y2 = max(x2, lab.bbox[2]), max(y2, lab.bbox[3])
        a = np.zeros((Y2 - Y1, X2 - X1), bool)
        b = np.zeros_like(a)
        a[inst.y0 - Y1:inst.y0 - Y1 + inst.mask.shape[0], inst.x0 - X1:inst.x0 - X1 + inst.mask.shape[1]] = inst.mask
        b[lab.y0 - Y1:lab.y0 - Y1 + lab.mask.shape[0], lab.x0 - X1:lab.x0 - X1 + lab.mask.shape[1]] = lab.mask
        if (a & b).sum() / max((a | b).sum(), 1) >= iou:
            return True
    return False


class ModelProposals(ProposalSource):
    """A quantify model folder, run here on each micrograph as ``python -m tem_lib.quantify``
    runs it (same tiles, pixel size, views); the detections are cached in
    ``<out>/proposals/<image>-<model key>.json``. ``predict``: a stand-in for the detector,
    ``predict(tiles, offsets) -> [Detections]``, as quantify takes (tests)."""

    def __init__(self, model_dir, device="cpu", predict=None):
        from ..quantify.card import read_card
        from ..quantify.run import card_thresholds
        self.model_dir = Path(model_dir)
        self.card = read_card(self.model_dir)
        super().__init__(self.card.classes, str(self.model_dir), card_thresholds(self.card))
        self.device = device
        self._predict = predict
        weights = sorted(p for p in self.model_dir.iterdir() if p.is_file())
        self.key = stable_hash([self.card.to_dict(), [(p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in weights]])[:10]

    def proposals(self, name, file, image, nm_per_px, out_dir) -> Detections:
        cache = Path(out_dir) / "proposals" / f"{name}-{self.key}.json"
        if cache.is_file():
            return _from_json(read_json(cache), name)
        from ..quantify.detect import detect_item, make_predictor
        from ..quantify.run import QuantifyOptions, _scales
        item = {"path": file, "name": name, "image": image, "nm_per_px": nm_per_px}
        _scales([item], self.card, QuantifyOptions())  # the pixel-size checks quantify makes
        if self._predict is None:
            self._predict = make_predictor(self.model_dir, self.card, self.card.tta_views,
                                           min(self.thresholds.values()), self.device)
        det = detect_item(item, self._predict, self.card)
        write_json(cache, _to_json(det), indent=None)
        return det


class QuantifyOutputProposals(ProposalSource):
    """The detections of a finished quantify run (``predictions_coco.json``: already at the
    model's thresholds, so every one is shown)."""

    def __init__(self, out_dir):
        from ..classes import ClassSet
        from ..quantify.run import RUN_RECORD
        out_dir = Path(out_dir)
        preds = out_dir / "predictions_coco.json"
        if not (out_dir / RUN_RECORD).is_file() or not preds.is_file():
            raise ValueError(f"{out_dir}: not a quantify output (no {RUN_RECORD} or predictions_coco.json)")
        coco = read_json(preds)
        classes = ClassSet.from_coco(coco["categories"], str(preds))
        super().__init__(classes, str(out_dir), {})
        self.coco = coco
        self.by_file = {}
        for img in coco["images"]:
            self.by_file[Path(img["file_name"]).name] = img
            self.by_file.setdefault(Path(img["file_name"]).stem, img)

    def proposals(self, name, file, image, nm_per_px, out_dir) -> Detections:
        img = self.by_file.get(Path(file).name) or self.by_file.get(name)
        if img is None:
            raise ValueError(f"{self.where}: the quantify run has no micrograph {Path(file).name!r}; quantify it "
                             "(python -m tem_lib.quantify ... this folder) or open the project with model=")
        if (img["height"], img["width"]) != image.shape:
            raise ValueError(f"{self.where}: its {img['file_name']!r} is {img['width']} x {img['height']}, {file} is "
                             f"{image.shape[1]} x {image.shape[0]}: not the same micrograph")
        anns = [a for a in self.coco["annotations"] if a["image_id"] == img["id"] and "segmentation" in a]
        return _from_json({"shape": [img["height"], img["width"]], "scores": [a["score"] for a in anns],
                           "labels": [a["category_id"] for a in anns], "masks": [a["segmentation"] for a in anns]}, name)
