"""Data layer: one in-memory representation, readers/writers, tiling, splits, torch Dataset."""
from .formats import DatasetFormat, formats, get_format, register_format, unregister_format
from .images import read_image, read_image_with_scale, write_png
from .io import Dataset, detect_format, load_dataset, to_coco, write_dataset
from .readers import read_coco, read_graymask, read_imagej, read_yolo
from .sample import Instance, LabelMap, Sample
from .splits import load_splits, make_splits, save_splits, select
from .tiling import tile_dataset, tile_sample

__all__ = ["Dataset", "DatasetFormat", "formats", "get_format", "register_format", "unregister_format",
           "Instance", "LabelMap", "Sample", "detect_format", "load_dataset", "read_coco",
           "read_graymask", "read_image", "read_image_with_scale", "read_imagej", "read_yolo", "to_coco",
           "write_dataset", "write_png", "load_splits", "make_splits", "save_splits", "select",
           "tile_dataset", "tile_sample"]
