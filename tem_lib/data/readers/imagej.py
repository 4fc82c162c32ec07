"""ImageJ "Results" ellipse tables ``labels/NAME_results.csv`` + ``images/NAME.*``."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ...classes import ClassSet
from ...geometry import rasterize_ellipse
from ..dataset import Dataset
from ..images import find_image, read_image_with_scale
from ..sample import Instance, Sample
from .common import IMAGEJ_COLUMNS, needs_classes


def read_imagej_csv(csv_path, shape, classes: ClassSet) -> list[Instance]:
    """Ellipses of an ImageJ "Results" table (columns X, Y, Major, Minor, Angle, class)
    rasterised as filled ellipses on an image of ``shape`` (H, W); class codes are mapped
    by ``classes``' ImageJ codes."""
    import pandas as pd
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise FileNotFoundError(f"{csv_path}: label table not found")
    codes = classes.imagej_to_id
    if not codes:
        raise ValueError(f"{csv_path}: class set {classes.name!r} has no ImageJ codes; declare them "
                         "(DefectClass.imagej) in the dataset's metadata.json 'classes'")
    try:
        df = pd.read_csv(csv_path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise ValueError(f"{csv_path}: unreadable CSV ({e})") from None
    missing = [c for c in IMAGEJ_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"{csv_path}: missing column(s) {missing}; need {list(IMAGEJ_COLUMNS)}")
    H, W = shape
    instances = []
    table = df[list(IMAGEJ_COLUMNS)].apply(pd.to_numeric, errors="coerce").to_numpy(float)
    for row_no, vals in enumerate(table, start=2):  # line 1 is the header
        if not np.isfinite(vals).all():
            raise ValueError(f"{csv_path} line {row_no}: non-numeric or missing value in "
                             f"{dict(zip(IMAGEJ_COLUMNS, df.iloc[row_no - 2][list(IMAGEJ_COLUMNS)]))}")
        x, y, major, minor, angle, cls = vals
        if int(cls) != cls or int(cls) not in codes:
            known = ", ".join(f"{k}={classes[v].name}" for k, v in sorted(codes.items()))
            raise ValueError(f"{csv_path} line {row_no}: unknown class {cls:g}; class set {classes.name!r} "
                             f"has codes {sorted(codes)} ({known})")
        if not (0 <= x <= W and 0 <= y <= H):
            raise ValueError(f"{csv_path} line {row_no}: ellipse centre ({x}, {y}) outside the "
                             f"{W}x{H} image (image/label size mismatch?)")
        if major <= 0 or minor <= 0:
            raise ValueError(f"{csv_path} line {row_no}: non-positive axis ({major}, {minor})")
        r = rasterize_ellipse(x, y, major, minor, angle, shape)
        if r is None:  # a pixel-sized defect whose centre is at a pixel corner: the pixel the centre is in
            px, py = min(int(x), W - 1), min(int(y), H - 1)
            r = (np.ones((1, 1), bool), px, py)
        m, x0, y0 = r
        instances.append(Instance(m, x0, y0, codes[int(cls)], (x, y, major, minor, angle)))
    if len(table) and np.nanmax(table[:, 2]) < 1.5:
        raise ValueError(f"{csv_path}: every ellipse is under 1.5 px long (largest major axis "
                         f"{np.nanmax(table[:, 2]):.3g}): the table looks measured in calibrated units (um or nm, "
                         "ImageJ's Analyze > Set Scale) instead of pixels; re-measure with 'pixel' units "
                         "(Set Scale > Click to Remove Scale)")
    return instances


def read_imagej(root, classes: ClassSet, images_dir=None, labels_dir=None) -> list[Sample]:
    """Read ``labels/NAME_results.csv`` + ``images/NAME.*`` pairs under ``root``."""
    root = Path(root)
    images_dir = Path(images_dir) if images_dir else root / "images"
    labels_dir = Path(labels_dir) if labels_dir else root / "labels"
    if not labels_dir.is_dir():
        raise FileNotFoundError(f"{labels_dir}: label folder not found")
    tables = sorted(labels_dir.glob("*_results.csv"))
    if not tables:
        raise ValueError(f"{labels_dir}: empty dataset (no *_results.csv tables)")
    samples = []
    for t in tables:
        stem = t.name[: -len("_results.csv")]
        path = find_image(images_dir, stem)
        image, scale = read_image_with_scale(path)
        samples.append(Sample(image, read_imagej_csv(t, image.shape, classes), source_id=stem,
                              nm_per_px=scale, name=stem, meta={"file": str(path)}))
    return samples


# ----------------------------------------------------------------------------- the format
NAME, NEEDS_CLASSES = "imagej", True
DESCRIPTION = "labels/NAME_results.csv (ImageJ ellipses) + images/"


def detect(root: Path) -> bool:
    return root.is_dir() and (root / "labels").is_dir() and any((root / "labels").glob("*_results.csv"))


def read(root: Path, classes=None, images_dir=None) -> Dataset:
    if classes is None:
        raise needs_classes(root, "ImageJ tables (labels/*_results.csv) give class codes that",
                            "codes (0 = 1/2<111> loop, 1 = black dot, 2 = <100> loop)")
    return Dataset(read_imagej(root, classes, images_dir), classes, root, NAME)
