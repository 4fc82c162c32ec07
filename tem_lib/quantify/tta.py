"""Test-time augmentation over the 8 symmetries of the square, with voting.

A defect's class in a TEM micrograph does not change when the micrograph is turned by 90°
or mirrored (the dihedral group D4; the detector trains with the same symmetries). Each tile
is predicted in its 8 views; the detections, mapped back, are grouped across views (box IoU
>= ``iou``, at most one per view), and a group seen in at least ``min_votes`` views is one
defect: its class the one with the highest summed score over the views, its score the mean
over all views (0 where a view missed it), its mask the pixels at least half of its members
cover, its box the score-weighted mean box. ``views`` times the detector's work (8, 4: the
quarter turns, 2: the tile and its mirror). Each view keeps its detections down to
``VIEW_SCORE`` whatever threshold is applied to the fused scores, so that thresholds chosen on
validation crops hold on micrographs.
"""
from __future__ import annotations

import numpy as np

from ..data.sample import Instance
from ..metrics.detection import Detections, box_iou

VIEWS = {1: (0,), 2: (0, 4), 4: (0, 1, 2, 3), 8: tuple(range(8))}  # which symmetries (see view)
VIEW_SCORE = 0.05  # the detector's own cut-off in each view


def view(image: np.ndarray, k: int) -> np.ndarray:
    """The ``k``-th symmetry (0-7) of ``image``: ``k % 4`` quarter turns, then a mirror if ``k >= 4``."""
    out = np.rot90(image, k % 4)
    return np.ascontiguousarray(out[:, ::-1] if k >= 4 else out)


def unview(array: np.ndarray, k: int) -> np.ndarray:
    """The inverse of :func:`view`."""
    a = array[:, ::-1] if k >= 4 else array
    return np.ascontiguousarray(np.rot90(a, -(k % 4)))


def undo(det: Detections, k: int, shape: tuple[int, int]) -> Detections:
    """Detections made on ``view(tile, k)`` in the pixels of the tile (``shape``)."""
    H, W = shape
    if len(det) == 0:
        return Detections(np.zeros((0, 4)), [], [], (H, W), det.name, [] if det.instances is not None else None)
    ys, xs = np.mgrid[0:H, 0:W]
    vy, vx = view(ys, k), view(xs, k)  # the tile coordinates of each view pixel
    hv, wv = vy.shape
    boxes, insts = [], []
    for j in range(len(det)):
        x1, y1, x2, y2 = det.boxes[j]
        c1, r1 = int(np.clip(np.floor(x1), 0, wv - 1)), int(np.clip(np.floor(y1), 0, hv - 1))
        c2, r2 = int(np.clip(np.ceil(x2), c1 + 1, wv)), int(np.clip(np.ceil(y2), r1 + 1, hv))
        py, px = vy[r1:r2, c1:c2], vx[r1:r2, c1:c2]
        boxes.append([px.min(), py.min(), px.max() + 1, py.max() + 1])
        if det.instances is not None:
            inst = det.instances[j]
            full = np.zeros((hv, wv), bool)
            full[inst.y0:inst.y0 + inst.mask.shape[0], inst.x0:inst.x0 + inst.mask.shape[1]] = inst.mask
            back = unview(full, k)
            r, c = np.nonzero(back)
            if len(r) == 0:
                r, c = np.array([int(py.min())]), np.array([int(px.min())])
                back[r[0], c[0]] = True
            insts.append(Instance(back[r.min():r.max() + 1, c.min():c.max() + 1], int(c.min()), int(r.min()),
                                  int(det.labels[j])))
    return Detections(np.array(boxes, float), det.labels, det.scores, (H, W), det.name,
                      insts if det.instances is not None else None)


def fuse(views: list[Detections], shape: tuple[int, int], class_ids, iou: float = 0.55,
         min_votes: int | None = None) -> Detections:
    """One set of detections from the same tile's detections in ``len(views)`` views (already
    mapped back by :func:`undo`); see the module docstring."""
    n_views = len(views)
    min_votes = (n_views + 1) // 2 if min_votes is None else min_votes
    boxes = np.concatenate([v.boxes for v in views]) if n_views else np.zeros((0, 4))
    if len(boxes) == 0:
        return Detections(np.zeros((0, 4)), [], [], shape, views[0].name if views else "tile", [])
    labels = np.concatenate([v.labels for v in views])
    scores = np.concatenate([v.scores for v in views])
    src = np.concatenate([np.full(len(v), k) for k, v in enumerate(views)])
    has_masks = all(v.instances is not None for v in views)
    insts = [i for v in views for i in v.instances] if has_masks else None
    ious = box_iou(boxes, boxes)
    alive = np.ones(len(boxes), bool)
    col = {c: k for k, c in enumerate(class_ids)}
    out_b, out_l, out_s, out_i = [], [], [], []
    for i in np.argsort(-scores, kind="stable"):
        if not alive[i]:
            continue
        group, seen = [i], {src[i]}
        alive[i] = False
        for j in np.argsort(-ious[i], kind="stable"):
            if ious[i, j] < iou:
                break
            if alive[j] and src[j] not in seen:
                group.append(j)
                seen.add(src[j])
                alive[j] = False
        if len(group) < min_votes:
            continue
        g = np.array(group)
        per_class = np.zeros(len(class_ids))
        np.add.at(per_class, [col.get(int(c), 0) for c in labels[g]], scores[g])
        w = scores[g] / scores[g].sum()
        out_b.append((boxes[g] * w[:, None]).sum(0))
        out_l.append(class_ids[int(np.argmax(per_class))])
        out_s.append(float(scores[g].sum() / n_views))
        if has_masks:
            out_i.append(_vote([insts[j] for j in g], out_l[-1]))
    return Detections(np.array(out_b).reshape(-1, 4), out_l, out_s, shape, views[0].name, out_i if has_masks else None)


def _vote(instances: list[Instance], label: int) -> Instance:
    """The pixels at least half of ``instances`` cover (the largest member's if none)."""
    x0, y0 = min(i.x0 for i in instances), min(i.y0 for i in instances)
    x1 = max(i.x0 + i.mask.shape[1] for i in instances)
    y1 = max(i.y0 + i.mask.shape[0] for i in instances)
    count = np.zeros((y1 - y0, x1 - x0), np.int32)
    for i in instances:
        count[i.y0 - y0:i.y0 - y0 + i.mask.shape[0], i.x0 - x0:i.x0 - x0 + i.mask.shape[1]] += i.mask
    m = count * 2 >= len(instances)
    if not m.any():
        big = max(instances, key=lambda i: i.mask.sum())
        return Instance(big.mask, big.x0, big.y0, int(label))
    r, c = np.nonzero(m)
    return Instance(m[r.min():r.max() + 1, c.min():c.max() + 1], x0 + int(c.min()), y0 + int(r.min()), int(label))


def tta_predictor(model, class_ids, device="cpu", batch_size: int = 8, views: int = 8,
                  view_score: float = VIEW_SCORE):
    """``predict(tiles, offsets) -> [Detections]`` (:func:`~tem_lib.quantify.tiles.sliced_predict`'s
    contract) that predicts each tile in ``views`` symmetries and fuses them: 2 = the tile and
    its mirror, 4 = the four quarter turns, 8 = all of them. Sets the model's own score cut-off
    to ``view_score``."""
    from ..detection.engine import evaluate
    if views not in (1, 2, 4, 8):
        raise ValueError(f"views must be 1, 2, 4 or 8 symmetries of the square, got {views}")
    class_ids = [int(c) for c in class_ids]
    model.roi_heads.score_thresh = view_score

    def predict(tiles, offsets):
        out = []
        for tile in tiles:
            ks = VIEWS[views]
            dets = evaluate(model, [view(tile, k) for k in ks], device, batch_size=batch_size, progress=False)
            out.append(fuse([undo(d, k, tile.shape) for k, d in zip(ks, dets)], tile.shape, class_ids))
        return out
    return predict
