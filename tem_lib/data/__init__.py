"""Data layer: one in-memory representation, readers/writers, tiling, splits, torch Dataset."""
from .io import (detect_format, gray_mask, load_dataset, read_coco, read_graymask, read_image,
                 read_imagej, to_coco, write_dataset, write_png)
from .sample import Instance, LabelMap, Sample
from .splits import load_splits, make_splits, save_splits, select
from .tiling import tile_dataset, tile_sample

__all__ = ["Instance", "LabelMap", "Sample", "detect_format", "gray_mask", "load_dataset", "read_coco",
           "read_graymask", "read_image", "read_imagej", "to_coco", "write_dataset", "write_png",
           "load_splits", "make_splits", "save_splits", "select", "tile_dataset", "tile_sample"]
