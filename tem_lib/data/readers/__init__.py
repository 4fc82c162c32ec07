"""Readers of labelled micrograph datasets; each returns (samples, class set).

- COCO instances (RLE or polygon segmentations), categories kept as declared;
- ImageJ "Results" ellipse tables ``labels/NAME_results.csv`` + ``images/NAME.*`` (the format
  of ``../shared/data/fecral-3class``), class codes from the class set's ``imagej`` codes;
- gray-level class masks ``masks/NAME.png`` + ``images/NAME.*``, gray levels from the class set;
  instances are the connected components of each class;
- YOLO segmentation labels ``labels/**/NAME.txt`` (``k x1 y1 x2 y2 ...``, normalised polygon
  vertices) + ``images/**/NAME.*``, class names from ``data.yaml`` or ``classes.txt``.

Images may be any format of :mod:`tem_lib.data.images`, microscope files included. Bad input
raises ``ValueError``/``FileNotFoundError`` naming the file (and line) and the problem.

Each module is one format: its reader, its ``detect(path)``, its ``read(path, classes,
images_dir) -> Dataset`` and its ``NAME``; :func:`register_builtin` registers them in detection
order (``tem_lib.data.formats``).
"""
from . import coco, graymask, imagej, yolo
from .coco import coco_image_dir, looks_like_coco, read_coco
from .common import COCO_IMAGE_DIRS, IMAGEJ_COLUMNS, instance_from_full
from .graymask import instances_from_gray, read_graymask
from .imagej import read_imagej, read_imagej_csv
from .yolo import read_yolo, read_yolo_labels, yolo_names

__all__ = ["COCO_IMAGE_DIRS", "IMAGEJ_COLUMNS", "coco_image_dir", "instance_from_full", "instances_from_gray",
           "looks_like_coco", "read_coco", "read_graymask", "read_imagej", "read_imagej_csv", "read_yolo",
           "read_yolo_labels", "yolo_names"]

BUILTIN = (coco, imagej, yolo, graymask)  # detection order: a COCO file first, gray masks last


def register_builtin() -> None:
    from ..formats import _REGISTRY, register_format
    for m in BUILTIN:
        if m.NAME not in _REGISTRY:
            register_format(m.NAME, m.detect, m.read, m.DESCRIPTION, needs_classes=m.NEEDS_CLASSES)
