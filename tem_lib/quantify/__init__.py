"""From a trained detector to the numbers a microscopist publishes: counts, sizes and areal
densities of every defect class, per micrograph, on micrographs of any size.

    python -m tem_lib.quantify MODEL_DIR IMAGES_OR_FOLDERS... --out DIR [--nm-per-px X] [--score S]

A **model folder** (:func:`export_model`) is a trained detector that carries what applying it
needs: its weights (``model.safetensors``), its architecture (``detector.json``) and a card
(``model.json``: the class set, the pixel size and tile size it was trained at, the score
threshold chosen on its validation crops, the versions that made it). The study leaves its best
detector as one (:meth:`tem_lib.study.Sweep.export_best`; ``./run_all.sh`` and ``--data`` do).

**Sliced inference.** The detector trained on 256-px crops; a micrograph of 1024-4096 px is cut
into overlapping tiles of that size with sahi's slicing (``sahi.slicing.get_slice_bboxes``), each
tile is predicted, and a defect that two or more tiles saw (it lies in their overlap, or a tile
border cuts it) is merged into one: among detections of *different* tiles whose boxes overlap by
``match_threshold`` of the smaller box (IoS), the highest-scoring one absorbs the others (union of
the masks, union of the boxes). sahi's own merge step (``GreedyNMMPostprocess``) is not used, for
two reasons: it merges any overlapping pair, two defects of the same tile included (a black dot
on a loop has IoS 1 with it), and it carries masks as cv2 polygons, which cannot hold a mask of
one or two pixels (sahi raises "Invalid segmentation mask") and fill the open centre of a loop.
Here masks stay exact pixel masks.

**Outputs** (each written atomically) in ``--out``: ``defects.csv`` (one row per defect:
image, class, centroid, major and minor axis, area, orientation, in px and nm, score),
``summary.csv`` (per image and class, and over all images: count, areal density per µm² with a
95 % Poisson interval, size mean/median/quartiles with a bootstrap interval of the mean over
defects), ``overlays/<image>.png``, ``predictions_coco.json`` (a COCO file with a ``score`` per
annotation, readable by pycocotools and annotation tools) and, where the inputs carry labels
(a labelled dataset folder), ``comparison.csv``: per class the true and predicted counts, sizes
and densities with their relative errors (Jacobs et al.'s size and density errors) and the
paper's F1s at IoU 0.5.
"""
from __future__ import annotations

from .calibration import CountCalibration, add_calibrated, fit_count_calibration
from .card import CARD, CARD_FORMAT, CARD_VERSION, ModelCard, export_model, load_model, read_card
from .measure import (
    DEFECT_COLUMNS,
    comparison_table,
    confusion_table,
    defect_table,
    labelled_densities,
    poisson_interval,
    summary_table,
)
from .outputs import coco_predictions, overlay, overlay_path
from .run import RUN_RECORD, QuantifyOptions, QuantifyResult, card_thresholds, collect_inputs, quantify, quantify_samples
from .tiles import merge_tiles, model_predictor, rescale_detections, sliced_predict, tile_boxes


def _main(argv=None) -> int:
    from .cli import main
    return main(argv)


__all__ = ["CARD", "CARD_FORMAT", "CARD_VERSION", "DEFECT_COLUMNS", "RUN_RECORD", "CountCalibration", "ModelCard",
           "QuantifyOptions", "QuantifyResult", "add_calibrated", "card_thresholds", "coco_predictions",
           "collect_inputs", "comparison_table", "confusion_table", "defect_table", "export_model",
           "fit_count_calibration", "labelled_densities", "load_model", "merge_tiles", "model_predictor", "overlay",
           "overlay_path", "poisson_interval", "quantify", "quantify_samples", "read_card", "rescale_detections",
           "sliced_predict",
           "summary_table", "tile_boxes"]
