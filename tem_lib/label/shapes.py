"""The shapes a labeller sees and edits, and their masks.

A shape is a JSON-ready dict (what the widget draws and the journal stores):

``{"id": 3, "class_id": 2, "status": "proposed", "kind": "mask", "score": 0.81, "rle": {...},
"outline": [[x, y], ...]}``

``kind``: ``"mask"`` (a detector's proposal or an existing label: its exact mask as COCO RLE,
``outline`` only for display), ``"polygon"`` (``points``) or ``"ellipse"`` (``ellipse``: cx, cy,
major, minor, angle in degrees, the convention of :mod:`tem_lib.geometry` and ImageJ).
Coordinates are continuous image pixels: x right, y down, pixel (r, c) covers
[c, c + 1) x [r, r + 1), so its centre is (c + 0.5, r + 0.5). ``status``: ``"proposed"`` (a
detector's, not yet reviewed), ``"accepted"``, ``"rejected"``, ``"drawn"`` (by the user),
``"labelled"`` (an existing label), ``"deleted"`` (an existing label or drawn shape removed).
"""
from __future__ import annotations

import numpy as np

from ..data.sample import Instance
from ..geometry import rasterize_ellipse

STATUSES = ("proposed", "accepted", "rejected", "drawn", "labelled", "deleted")
KEPT = ("accepted", "drawn", "labelled")  # the statuses that are defects when saved
KINDS = ("mask", "polygon", "ellipse")


def outline(mask: np.ndarray, x0: int = 0, y0: int = 0, tolerance: float = 0.6) -> list[list[float]]:
    """The outer boundary of a cropped bool mask as a polygon in image coordinates (the
    largest contour, simplified to ``tolerance`` px), for display."""
    from skimage.measure import approximate_polygon, find_contours
    padded = np.pad(mask.astype(np.uint8), 1)
    contours = find_contours(padded, 0.5)
    if not contours:
        return []
    c = max(contours, key=len)
    c = approximate_polygon(c, tolerance) if len(c) > 8 else c
    # contour rows/cols index the padded array's pixel centres: pixel (r, c) is centred at (c + 0.5, r + 0.5)
    return [[round(float(col) - 1 + 0.5 + x0, 2), round(float(row) - 1 + 0.5 + y0, 2)] for row, col in c[:-1]]


def mask_shape(instance: Instance, shape_hw, sid: int, status: str, score: float | None = None) -> dict:
    """A shape holding ``instance``'s exact mask (a proposal or an existing label)."""
    from ..data.io import instance_rle
    out = {"id": int(sid), "class_id": int(instance.category_id), "status": status, "kind": "mask",
           "rle": instance_rle(instance, shape_hw),
           "outline": outline(instance.mask, instance.x0, instance.y0)}
    if score is not None:
        out["score"] = round(float(score), 5)
    if instance.ellipse is not None:
        out["ellipse"] = [round(float(v), 4) for v in instance.ellipse]
    return out


def check_shape(shape: dict, class_ids, image_hw, where: str) -> dict:
    """``shape`` if it is a shape this module can save (known kind, status and class, enough
    points, finite coordinates), else ``ValueError`` naming ``where``."""
    if not isinstance(shape, dict):
        raise ValueError(f"{where}: a shape must be an object, got {type(shape).__name__}")
    kind, status, cid = shape.get("kind"), shape.get("status"), shape.get("class_id")
    if kind not in KINDS:
        raise ValueError(f"{where}: shape {shape.get('id')!r} has kind {kind!r}; known: {list(KINDS)}")
    if status not in STATUSES:
        raise ValueError(f"{where}: shape {shape.get('id')!r} has status {status!r}; known: {list(STATUSES)}")
    if isinstance(cid, bool) or not isinstance(cid, int) or cid not in tuple(class_ids):
        raise ValueError(f"{where}: shape {shape.get('id')!r} has class {cid!r}; the class set has {list(class_ids)}")
    if kind == "polygon":
        pts = np.asarray(shape.get("points"), dtype=float)
        if pts.ndim != 2 or pts.shape[1] != 2 or len(pts) < 3 or not np.isfinite(pts).all():
            raise ValueError(f"{where}: polygon {shape.get('id')!r} needs 3 or more finite [x, y] points")
    elif kind == "ellipse":
        e = np.asarray(shape.get("ellipse"), dtype=float)
        if e.shape != (5,) or not np.isfinite(e).all() or e[2] <= 0 or e[3] <= 0:
            raise ValueError(f"{where}: ellipse {shape.get('id')!r} needs [cx, cy, major, minor, angle] with axes > 0")
    elif not isinstance(shape.get("rle"), dict) or list(shape["rle"].get("size", [])) != list(image_hw):
        raise ValueError(f"{where}: mask shape {shape.get('id')!r} needs an RLE of the image's size {list(image_hw)}")
    return shape


def to_instance(shape: dict, image_hw) -> Instance | None:
    """The defect a shape saves as (None when it covers no pixel centre of the image)."""
    h, w = image_hw
    kind, cid = shape["kind"], int(shape["class_id"])
    if kind == "ellipse":
        cx, cy, major, minor, angle = (float(v) for v in shape["ellipse"])
        r = rasterize_ellipse(cx, cy, major, minor, angle, (h, w))
        return None if r is None else Instance(r[0], r[1], r[2], cid, (cx, cy, major, minor, angle))
    if kind == "polygon":
        from skimage.draw import polygon
        pts = np.asarray(shape["points"], dtype=float)
        rr, cc = polygon(pts[:, 1] - 0.5, pts[:, 0] - 0.5, (h, w))  # pixel centres inside the polygon
        full = np.zeros((h, w), bool)
        full[rr, cc] = True
    else:
        from pycocotools import mask as mask_utils
        rle = dict(shape["rle"])
        rle["counts"] = rle["counts"].encode("ascii") if isinstance(rle["counts"], str) else rle["counts"]
        full = mask_utils.decode(rle).astype(bool)
    if not full.any():
        return None
    rows, cols = np.flatnonzero(full.any(1)), np.flatnonzero(full.any(0))
    m = full[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    ell = tuple(float(v) for v in shape["ellipse"]) if kind == "mask" and shape.get("ellipse") else None
    return Instance(m, int(cols[0]), int(rows[0]), cid, ell)
