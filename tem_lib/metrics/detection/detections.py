"""A detector's output for one image (:class:`Detections`) and the IoU thresholds scored."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...data.sample import Instance, Sample

IOU_THRESHOLDS = (0.1, 0.3, 0.5, 0.7)


@dataclass
class Detections:
    """A detector's output for one image, as numpy arrays.

    ``boxes`` float [N, 4] (x1, y1, x2, y2, pixel edges; from the box head, which the paper's
    matching uses), ``labels`` int64 [N] class ids, ``scores`` float [N] in [0, 1],
    ``instances`` the predicted masks (binarised, cropped to their bounding box; same order)
    or None when the detector gives none; ``shape`` (H, W) of the image.
    """
    boxes: np.ndarray
    labels: np.ndarray
    scores: np.ndarray
    shape: tuple[int, int]
    name: str = "image"
    instances: list[Instance] | None = None

    def __post_init__(self):
        self.boxes = np.asarray(self.boxes, dtype=np.float64).reshape(-1, 4)
        self.labels = np.asarray(self.labels, dtype=np.int64).reshape(-1)
        self.scores = np.asarray(self.scores, dtype=np.float64).reshape(-1)
        n = len(self.boxes)
        if len(self.labels) != n or len(self.scores) != n or (self.instances is not None and len(self.instances) != n):
            raise ValueError(f"{self.name}: {n} boxes, {len(self.labels)} labels, {len(self.scores)} scores"
                             + (f", {len(self.instances)} masks" if self.instances is not None else "")
                             + ": lengths must agree")

    def __len__(self) -> int:
        return len(self.boxes)

    def top(self, k: int | None = None, min_score: float | None = None) -> "Detections":
        """The ``k`` highest-scoring detections with score >= ``min_score``, by decreasing score."""
        order = np.argsort(-self.scores, kind="stable")
        if min_score is not None:
            order = order[self.scores[order] >= min_score]
        if k is not None:
            order = order[:k]
        inst = None if self.instances is None else [self.instances[i] for i in order]
        return Detections(self.boxes[order], self.labels[order], self.scores[order], self.shape, self.name, inst)

    def subset(self, indices) -> "Detections":
        """The detections at ``indices``, in that order."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        inst = None if self.instances is None else [self.instances[i] for i in idx]
        return Detections(self.boxes[idx], self.labels[idx], self.scores[idx], self.shape, self.name, inst)

    def above_class_thresholds(self, thresholds: dict) -> "Detections":
        """The detections scoring at least their class's threshold (``{class_id: threshold}``;
        a class not in it keeps every detection), by decreasing score."""
        t = np.array([thresholds.get(int(lab), 0.0) for lab in self.labels], dtype=np.float64)
        order = np.argsort(-self.scores, kind="stable")
        return self.subset(order[self.scores[order] >= t[order]])

    def class_agnostic_nms(self, iou: float = 0.5) -> "Detections":
        """Keep, among boxes overlapping more than ``iou`` whatever their class, only the
        highest-scoring (what ``DetectorConfig.class_agnostic_nms`` does inside the model),
        by decreasing score."""
        import torch
        import torchvision
        keep = torchvision.ops.nms(torch.as_tensor(self.boxes), torch.as_tensor(self.scores), iou).numpy()
        inst = None if self.instances is None else [self.instances[i] for i in keep]
        return Detections(self.boxes[keep], self.labels[keep], self.scores[keep], self.shape, self.name, inst)

    def to_sample(self) -> Sample:
        """The predicted masks as a :class:`Sample` (placeholder image), for geometry tables."""
        if self.instances is None:
            raise ValueError(f"{self.name}: these detections carry no masks")
        return Sample(np.zeros(self.shape, np.float32), list(self.instances), self.name, name=self.name)


