"""The peer line of ``detector_recipe.py``: a YOLO segmentation detector (Ultralytics), what many
microscopists would pick instead of Mask R-CNN, on the same folds, crops and wall time.

Optional: ``pip install -e '.[peer]'`` (ultralytics is AGPL-3.0; tem_lib never imports it, only this
benchmark does). Offline there are no pretrained YOLO weights, so it trains from scratch (the
``yolov8n-seg.yaml`` architecture) for the wall time the Mask R-CNN of the same fold took (its
``train_seconds``), at the crops' native 256 px, and its predictions are scored by the same
function as every recipe (``detector_recipe.score_point``: the paper's metrics at score 0.1 and at
the validation-chosen threshold, COCO AP, density and size errors).
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
from skimage import measure

from tem_lib.data import Instance
from tem_lib.metrics.detection import Detections


def _polygon(inst: Instance, shape) -> list[float]:
    """The outline of a mask as a normalised polygon (YOLO segmentation); a mask too small for a
    contour becomes its bounding rectangle."""
    H, W = shape
    contours = measure.find_contours(np.pad(inst.mask, 1).astype(float), 0.5)
    if contours and len(max(contours, key=len)) >= 3:
        c = max(contours, key=len)
        xs, ys = c[:, 1] - 1 + inst.x0 + 0.5, c[:, 0] - 1 + inst.y0 + 0.5
    else:
        x1, y1, x2, y2 = inst.bbox
        xs, ys = np.array([x1, x2, x2, x1], float), np.array([y1, y1, y2, y2], float)
    pts = np.stack([np.clip(xs / W, 0, 1), np.clip(ys / H, 0, 1)], axis=1)
    return [round(float(v), 6) for v in pts.ravel()]


def write_yolo(samples, root: Path, split: str, classes) -> None:
    from PIL import Image
    index = {c: k for k, c in enumerate(classes.ids)}
    (root / "images" / split).mkdir(parents=True, exist_ok=True)
    (root / "labels" / split).mkdir(parents=True, exist_ok=True)
    for k, s in enumerate(samples):
        name = f"{split}{k:05d}"
        Image.fromarray(np.clip(np.rint(s.image * 255), 0, 255).astype(np.uint8)).save(root / "images" / split / f"{name}.png")
        lines = [f"{index[i.category_id]} " + " ".join(map(str, _polygon(i, s.shape))) for i in s.instances]
        (root / "labels" / split / f"{name}.txt").write_text("\n".join(lines) + ("\n" if lines else ""))


def _detections(result, shape, name: str, class_ids) -> Detections:
    boxes = result.boxes.xyxy.cpu().numpy() if result.boxes is not None else np.zeros((0, 4))
    labels = [class_ids[int(c)] for c in (result.boxes.cls.cpu().numpy() if result.boxes is not None else [])]
    scores = result.boxes.conf.cpu().numpy() if result.boxes is not None else np.zeros(0)
    insts = []
    masks = result.masks.data.cpu().numpy() > 0.5 if result.masks is not None else np.zeros((0, *shape), bool)
    for m, lab, b in zip(masks, labels, boxes):
        if m.shape != tuple(shape):  # retina_masks gives the image size; guard anyway
            from skimage.transform import resize
            m = resize(m.astype(float), shape, order=0) > 0.5
        if not m.any():  # keep one pixel at the box centre so every detection has a mask
            m = np.zeros(shape, bool)
            m[min(int((b[1] + b[3]) / 2), shape[0] - 1), min(int((b[0] + b[2]) / 2), shape[1] - 1)] = True
        r, c = np.nonzero(m)
        insts.append(Instance(m[r.min():r.max() + 1, c.min():c.max() + 1].copy(), int(c.min()), int(r.min()), lab))
    return Detections(boxes, labels, scores, tuple(shape), name, insts)


def predict(model, samples, class_ids, imgsz: int) -> list[Detections]:
    out = []
    for k in range(0, len(samples), 8):
        batch = samples[k:k + 8]
        imgs = [np.repeat(np.clip(np.rint(s.image * 255), 0, 255).astype(np.uint8)[..., None], 3, axis=2) for s in batch]
        for s, r in zip(batch, model.predict(imgs, imgsz=imgsz, conf=0.05, iou=0.5, max_det=500, retina_masks=True,
                                             device="cpu", verbose=False)):
            out.append(_detections(r, s.shape, s.name, class_ids))
    return out


def run_yolo(train, val, test, classes, out: Path, seconds: float, seed: int = 0, imgsz: int = 256,
             batch: int = 4) -> tuple[list[Detections], list[Detections], dict]:
    """Train a YOLOv8n-seg from scratch on ``train`` for ``seconds`` of wall time; return its
    predictions on ``val`` and ``test`` and what it did."""
    os.environ.setdefault("YOLO_OFFLINE", "1")
    try:
        from ultralytics import YOLO
    except ImportError:
        raise SystemExit("the yolo recipe needs ultralytics (AGPL-3.0, a benchmark extra): pip install -e '.[peer]'") \
            from None
    data = out / "yolo_data"
    write_yolo(train, data, "train", classes)
    write_yolo(val, data, "val", classes)
    (data / "data.yaml").write_text(f"path: {data}\ntrain: images/train\nval: images/val\n"
                                    f"names: {[c.name for c in classes]}\n")
    model = YOLO("yolov8n-seg.yaml")
    t0 = time.perf_counter()
    model.train(data=str(data / "data.yaml"), epochs=10_000, time=seconds / 3600, imgsz=imgsz, batch=batch,
                device="cpu", workers=0, plots=False, val=False, amp=False, pretrained=False, seed=seed,
                deterministic=True, project=str(out / "yolo_runs"), name="train", exist_ok=True, verbose=False,
                patience=0)
    train_s = time.perf_counter() - t0
    trained = YOLO(str(out / "yolo_runs" / "train" / "weights" / "last.pt"))
    ids = list(classes.ids)
    info = {"train_seconds": round(train_s, 1), "epochs": int(getattr(model.trainer, "epoch", -1)) + 1,
            "iterations": int(getattr(model.trainer, "epoch", -1) + 1) * -(-len(train) // batch)}
    return predict(trained, val, ids, imgsz), predict(trained, test, ids, imgsz), info
