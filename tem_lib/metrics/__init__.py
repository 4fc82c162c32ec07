"""Measurements shared by notebooks and benchmarks: the paper's detection/classification
metrics, realism (Frechet distance in a fixed feature space) and mask fidelity (a segmenter's
agreement with conditioning masks)."""
from .detection import (
                        DetectionReport,
                        Detections,
                        box_iou,
                        coco_ap,
                        evaluate_detections,
                        match_greedy,
                        paired_bootstrap,
                        size_density_table,
)
from .fidelity import fidelity_table
from .frechet import frechet_by_group, frechet_distance, kernel_distance, texture_features

__all__ = ["DetectionReport", "Detections", "box_iou", "coco_ap", "evaluate_detections", "fidelity_table",
           "frechet_by_group", "frechet_distance", "kernel_distance", "match_greedy", "paired_bootstrap",
           "size_density_table", "texture_features"]
