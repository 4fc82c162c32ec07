"""One micrograph through the detector, as quantify sees it: at the model's pixel size, in tiles
merged into one set of defects, in the card's test-time views; shared by :mod:`.run` and the
labelling tool (:mod:`tem_lib.label`), which shows the same detections as proposals."""
from __future__ import annotations

import numpy as np

from ..metrics.detection import Detections
from .card import ModelCard, load_model
from .tiles import model_predictor, rescale_detections, sliced_predict, tile_boxes
from .tta import tta_predictor


def make_predictor(model_dir, card: ModelCard, views: int, low: float, device="cpu"):
    """``predict(tiles, offsets) -> [Detections]`` of the model folder: in ``views`` symmetries
    (each view keeping its detections down to the card's ``tta_view_score``, as when the card
    was made), or one view keeping detections down to ``low``."""
    model, _ = load_model(model_dir, device)
    if views > 1:
        return tta_predictor(model, card.classes.ids, device, views=views, view_score=card.tta_view_score)
    if low < model.roi_heads.score_thresh:  # the detector's own cut-off is above the one asked for
        model.roi_heads.score_thresh = low
    return model_predictor(model, device)


def detect_item(item: dict, predict, card: ModelCard, overlap: float = 0.25, match_threshold: float = 0.5,
                progress: bool = False) -> Detections:
    """Every detection ``predict`` makes on ``item`` (``{"image", "name", "scale"}``: the factor
    to the model's pixel size), tiled and merged, in the micrograph's own pixels; no threshold."""
    from skimage.transform import rescale
    image, scale = item["image"], item.get("scale", 1.0)
    if scale != 1:
        image = rescale(image, scale, order=1, anti_aliasing=scale < 1, preserve_range=True).astype(np.float32)
    det = sliced_predict(image, predict, card.tile, item["name"], overlap, match_threshold, card.class_agnostic,
                         progress=progress)
    if scale != 1:  # back to the micrograph's own pixels
        det = rescale_detections(det, 1 / scale, item["image"].shape)
    return det


def n_tiles(item: dict, card: ModelCard, overlap: float) -> int:
    h, w = item["image"].shape
    s = item.get("scale", 1.0)
    return len(tile_boxes(int(round(h * s)) if s != 1 else h, int(round(w * s)) if s != 1 else w, card.tile, overlap))
