"""Sliced inference: overlapping tiles of a whole micrograph (sahi's slicing), predicted and
merged across tiles into one set of defects."""
from __future__ import annotations

import numpy as np

from ..data.sample import Instance
from ..metrics.detection import Detections, box_iou


def tile_boxes(height: int, width: int, tile: int, overlap: float) -> list[tuple[int, int, int, int]]:
    """(x1, y1, x2, y2) of overlapping tiles covering the image (sahi's slicing); tiles at the
    right and bottom edges are shifted inwards so every tile is whole when the image is."""
    from sahi.slicing import get_slice_bboxes
    if not 0 <= overlap < 1:
        raise ValueError(f"overlap must be in [0, 1), got {overlap}")
    if height <= tile and width <= tile:
        return [(0, 0, width, height)]
    boxes = get_slice_bboxes(image_height=height, image_width=width, slice_height=min(tile, height),
                             slice_width=min(tile, width), auto_slice_resolution=False,
                             overlap_height_ratio=overlap, overlap_width_ratio=overlap)
    return [tuple(int(v) for v in b) for b in boxes]


def model_predictor(model, device="cpu", batch_size: int = 4):
    """``predict(tiles, offsets) -> [Detections]`` of a detector (offsets are not needed by a
    detector; stand-ins for tests use them)."""
    from ..detection.engine import evaluate

    def predict(tiles, offsets):
        return evaluate(model, tiles, device, batch_size=batch_size, progress=False)
    return predict


def _ios(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over the smaller box area, box ``a`` [4] against boxes ``b`` [n, 4]."""
    ix = np.clip(np.minimum(a[2], b[:, 2]) - np.maximum(a[0], b[:, 0]), 0, None)
    iy = np.clip(np.minimum(a[3], b[:, 3]) - np.maximum(a[1], b[:, 1]), 0, None)
    area = lambda x: np.clip(x[..., 2] - x[..., 0], 0, None) * np.clip(x[..., 3] - x[..., 1], 0, None)  # noqa: E731
    return ix * iy / np.maximum(np.minimum(area(a), area(b)), 1e-9)


def merge_tiles(parts: list[tuple[int, Detections, tuple[int, int]]], shape, name: str,
                match_threshold: float = 0.5, class_agnostic: bool = True) -> Detections:
    """One :class:`Detections` for the whole image from per-tile detections ``(tile index,
    detections, (x0, y0) of the tile)``: detections of different tiles whose boxes overlap by
    ``match_threshold`` of the smaller one (IoS) are one defect (the best-scoring keeps its
    class and score; masks and boxes are united, and the united box is matched again, so the
    pieces of a defect that no tile saw whole come together); detections of one tile are never
    merged (the detector's own NMS has already decided between them)."""
    boxes, labels, scores, tiles, insts = [], [], [], [], []
    for t, det, (x0, y0) in parts:
        for k in range(len(det)):
            boxes.append(det.boxes[k] + [x0, y0, x0, y0])
            labels.append(int(det.labels[k]))
            scores.append(float(det.scores[k]))
            tiles.append(t)
            i = det.instances[k] if det.instances is not None else None
            insts.append(None if i is None else Instance(i.mask, i.x0 + x0, i.y0 + y0, i.category_id))
    n = len(boxes)
    if n == 0:
        return Detections(np.zeros((0, 4)), [], [], tuple(shape), name, [])
    boxes, labels, scores, tiles = np.array(boxes, float), np.array(labels), np.array(scores), np.array(tiles)
    alive = np.ones(n, bool)
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    out_b, out_l, out_s, out_i = [], [], [], []
    for i in np.lexsort((-area, -scores)):  # best score first; among equals the most complete view
        if not alive[i]:
            continue
        group, box = [i], boxes[i].copy()
        alive[i] = False
        while True:  # grow the defect: pieces of other tiles overlapping what it has become
            cand = np.nonzero(alive & ~np.isin(tiles, tiles[group]) & (class_agnostic | (labels == labels[i])))[0]
            if not len(cand):
                break
            ios = _ios(box, boxes[cand])
            hit = ios >= match_threshold
            if not hit.any():
                break
            cand, ios = cand[hit], ios[hit]
            iou = box_iou(box[None], boxes[cand])[0]
            best = {}  # at most one detection per other tile: the one overlapping most
            for j, v, u in zip(cand, ios, iou):
                if tiles[j] not in best or (v, u) > best[tiles[j]][1:]:
                    best[tiles[j]] = (j, v, u)
            new = [j for j, _, _ in best.values()]
            group += new
            alive[new] = False
            b = boxes[group]
            box = np.array([b[:, 0].min(), b[:, 1].min(), b[:, 2].max(), b[:, 3].max()])
        out_b.append(box)
        out_l.append(labels[i])
        out_s.append(scores[i])
        out_i.append(_union([insts[j] for j in group], labels[i]))
    has_masks = all(m is not None for m in out_i)
    return Detections(np.array(out_b), out_l, out_s, tuple(shape), name, out_i if has_masks else None)


def _union(instances: list, label: int):
    if any(i is None for i in instances):
        return None
    if len(instances) == 1:
        i = instances[0]
        return Instance(i.mask, i.x0, i.y0, int(label))
    x0 = min(i.x0 for i in instances)
    y0 = min(i.y0 for i in instances)
    x1 = max(i.x0 + i.mask.shape[1] for i in instances)
    y1 = max(i.y0 + i.mask.shape[0] for i in instances)
    m = np.zeros((y1 - y0, x1 - x0), bool)
    for i in instances:
        m[i.y0 - y0:i.y0 - y0 + i.mask.shape[0], i.x0 - x0:i.x0 - x0 + i.mask.shape[1]] |= i.mask
    return Instance(m, x0, y0, int(label))


def sliced_predict(image: np.ndarray, predict, tile: int, name: str = "image", overlap: float = 0.25,
                   match_threshold: float = 0.5, class_agnostic: bool = True, batch_size: int = 4,
                   progress: bool = False) -> Detections:
    """The detections of a whole image of any size: ``predict(tiles, offsets)`` on overlapping
    ``tile`` x ``tile`` tiles, merged across tiles (:func:`merge_tiles`)."""
    from tqdm import tqdm
    H, W = image.shape
    boxes = tile_boxes(H, W, tile, overlap)
    parts = []
    bar = tqdm(total=len(boxes), desc=f"{name}: tiles", disable=not progress, leave=False, mininterval=1.0)
    for k in range(0, len(boxes), batch_size):
        chunk = boxes[k:k + batch_size]
        tiles = [np.ascontiguousarray(image[y1:y2, x1:x2]) for x1, y1, x2, y2 in chunk]
        offsets = [(x1, y1) for x1, y1, _, _ in chunk]
        for t, (det, off) in enumerate(zip(predict(tiles, offsets), offsets)):
            parts.append((k + t, det, off))
        bar.update(len(chunk))
    bar.close()
    return merge_tiles(parts, (H, W), name, match_threshold, class_agnostic)


def rescale_detections(det: Detections, factor: float, shape) -> Detections:
    """``det`` in the pixels of an image ``factor`` times as large (``shape``): boxes scaled,
    masks resampled (nearest neighbour; at least one pixel each)."""
    from skimage.transform import resize
    insts = None
    if det.instances is not None:
        insts = []
        for i in det.instances:
            x0, y0 = int(np.floor(i.x0 * factor)), int(np.floor(i.y0 * factor))
            h = max(1, min(int(round(i.mask.shape[0] * factor)), shape[0] - y0))
            w = max(1, min(int(round(i.mask.shape[1] * factor)), shape[1] - x0))
            m = resize(i.mask.astype(float), (h, w), order=0, anti_aliasing=False) > 0.5
            if not m.any():
                m[h // 2, w // 2] = True
            insts.append(Instance(m, x0, y0, i.category_id))
    return Detections(det.boxes * factor, det.labels, det.scores, tuple(shape), det.name, insts)


