"""The paper's detection and classification metrics, plus COCO AP and size/density errors.

Definitions follow the authors' analysis code (``PAPER_NOTES.md`` section 1), all on the test
set:

* **matching** (``matching="gt"``, the paper's): for each ground-truth defect in turn (the order
  of the annotations), take the not-yet-matched prediction with the highest **box** IoU; the
  defect is *found* if that IoU >= the threshold, and only then is the prediction used up.
  One-to-one, greedy in ground-truth order, class ignored. ``matching="score"`` is the COCO
  order instead: predictions by decreasing score, each taking the unmatched ground truth of
  highest IoU (pycocotools' rule, here class-agnostic).
* **detection F1**: pooled over all test images. TP = found, FP = predictions - found,
  FN = ground truth - found; F1 = 2 TP / (2 TP + FP + FN) (the harmonic mean of precision and
  recall, written so that it is defined everywhere: no prediction and no defect at all scores 1).
* **classification F1**: 3 x 3 confusion matrix (rows true class, columns predicted class) over
  the found pairs only; per class F1 = 2 C[c, c] / (row_c + column_c); classification F1 is
  the unweighted mean over the classes that occur among the found pairs (as truth or as
  prediction). A class that never occurs there is left out of the mean and listed in
  ``absent_classes``; with no found pair at all classification F1 is 0 (1 when the test set
  has neither defects nor predictions).
* **headline**: harmonic mean of detection F1 and classification F1 (0 if both are 0).

The authors' quirks are options, off by default: ``skip_images_without_predictions`` (their
code skipped such images, so their defects never counted as misses) and ``detections_cap``
(at most 100 detections for the first image and 500 for the others).

Boxes everywhere are float [N, 4] ``(x1, y1, x2, y2)`` in pixel-edge coordinates (x2 - x1 is
the width in pixels), the convention of :meth:`tem_lib.data.Sample.boxes` and of torchvision.
"""
from .coco import _coco_results, coco_ap, coco_eval
from .detections import IOU_THRESHOLDS, Detections
from .intervals import paired_bootstrap, summarize_gains
from .matching import (
    DetectionReport,
    as_class_set,
    box_iou,
    classification_scores,
    evaluate_detections,
    f1,
    harmonic,
    headline_metric,
    match_greedy,
    per_image_counts,
    scores_from_counts,
)
from .sizes import size_density_table
from .thresholds import above, choose_class_thresholds, choose_score_threshold, score_threshold_sweep

__all__ = ["IOU_THRESHOLDS", "DetectionReport", "Detections", "above", "as_class_set", "box_iou",
           "choose_class_thresholds", "choose_score_threshold", "classification_scores", "coco_ap", "coco_eval",
           "evaluate_detections", "f1", "harmonic", "headline_metric", "match_greedy", "paired_bootstrap",
           "per_image_counts", "score_threshold_sweep", "scores_from_counts", "size_density_table",
           "summarize_gains", "_coco_results"]
