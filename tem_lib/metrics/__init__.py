"""Measurements shared by notebooks and benchmarks: realism (Frechet distance in a fixed
feature space) and mask fidelity (a segmenter's agreement with conditioning masks)."""
from .fidelity import fidelity_table
from .frechet import frechet_by_group, frechet_distance, texture_features

__all__ = ["fidelity_table", "frechet_by_group", "frechet_distance", "texture_features"]
