"""YOLO segmentation labels ``labels/**/NAME.txt`` + ``images/**/NAME.*``."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from ...classes import ClassSet
from ..dataset import Dataset
from ..images import list_images, read_image_with_scale
from ..sample import Instance, Sample
from .common import _read_text, instance_from_full


def yolo_names(root: Path) -> tuple[list[str], Path]:
    """Class names of a YOLO dataset: ``data.yaml``/``dataset.yaml`` ``names`` (list, or dict
    index -> name) or ``classes.txt`` (one per line), in index order."""
    import yaml
    for fname in ("data.yaml", "dataset.yaml", "data.yml"):
        f = root / fname
        if f.is_file():
            try:
                d = yaml.safe_load(_read_text(f))
            except yaml.YAMLError as e:
                raise ValueError(f"{f}: unreadable YAML ({e})") from None
            names = (d or {}).get("names") if isinstance(d, dict) else None
            if isinstance(names, dict):
                try:
                    keys = sorted(int(k) for k in names)
                except (TypeError, ValueError):
                    raise ValueError(f"{f}: 'names' keys must be class indices 0, 1, ..., got "
                                     f"{[str(k)[:20] for k in list(names)[:5]]}") from None
                if keys != list(range(len(keys))):
                    raise ValueError(f"{f}: 'names' indices must be 0..{len(keys) - 1}, got {keys}")
                names = [names[k] if k in names else names[str(k)] for k in keys]
            if not isinstance(names, list) or not names:
                raise ValueError(f"{f}: no 'names' list of classes")
            names = _check_names([str(n) for n in names], f)
            txt = root / "classes.txt"
            if txt.is_file():  # two sources of the class names: they must agree, neither wins silently
                other = [ln.strip() for ln in _read_text(txt).splitlines() if ln.strip()]
                if other != names:
                    raise ValueError(f"{f} names the classes {names} but {txt} names {other}; keep one, or make "
                                     "them agree")
            return names, f
    f = root / "classes.txt"
    if f.is_file():
        names = [ln.strip() for ln in _read_text(f).splitlines() if ln.strip()]
        if not names:
            raise ValueError(f"{f}: no class names")
        return _check_names(names, f), f
    raise FileNotFoundError(f"{root}: YOLO labels need class names: data.yaml with 'names' or classes.txt")


def _check_names(names: list[str], f: Path) -> list[str]:
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"{f}: class name(s) {dup[:5]} given twice; each class needs its own name")
    if len(names) > 255:
        raise ValueError(f"{f}: {len(names)} classes; tem_lib keeps at most 255 (class ids are 8-bit gray levels "
                         "of the masks, 0 the background)")
    return names


def read_yolo_labels(txt: Path, shape, n_classes: int, first_id: int = 1) -> list[Instance]:
    """Polygon instances of one YOLO-seg label file on an image of ``shape`` (H, W);
    YOLO class k becomes class id ``first_id + k``."""
    from pycocotools import mask as mask_utils
    H, W = shape
    instances = []
    for line_no, line in enumerate(_read_text(txt).splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        try:
            k = int(parts[0])
            xy = np.array([float(v) for v in parts[1:]])
        except ValueError:
            raise ValueError(f"{txt} line {line_no}: non-numeric value in {line.strip()!r}") from None
        if not 0 <= k < n_classes:
            raise ValueError(f"{txt} line {line_no}: class index {k} outside 0..{n_classes - 1} (the names declared)")
        if len(xy) == 4:
            raise ValueError(f"{txt} line {line_no}: a bounding box (YOLO detection format); tem_lib needs "
                             "segmentation polygons (k x1 y1 x2 y2 ...)")
        if len(xy) < 6 or len(xy) % 2:
            raise ValueError(f"{txt} line {line_no}: a polygon needs an even number (>= 6) of coordinates, got {len(xy)}")
        if not np.isfinite(xy).all() or xy.min() < -0.01 or xy.max() > 1.01:
            raise ValueError(f"{txt} line {line_no}: coordinates must be normalised to [0, 1]")
        poly = (np.clip(xy, 0, 1) * np.tile([W, H], len(xy) // 2)).tolist()
        m = mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects([poly], H, W))).astype(bool)
        inst = instance_from_full(m, first_id + k)
        if inst is not None:
            instances.append(inst)
    return instances


def read_yolo(root, images_dir=None, labels_dir=None) -> tuple[list[Sample], ClassSet]:
    """Images under ``images/`` (sub-folders such as ``train/``, ``val/`` included) with the
    label file of the same relative path under ``labels/``; an image without a label file
    has no defects (YOLO's convention)."""
    root = Path(root)
    names, names_file = yolo_names(root)
    classes = ClassSet.from_names(names)
    images_dir = Path(images_dir) if images_dir else root / "images"
    labels_dir = Path(labels_dir) if labels_dir else root / "labels"
    if not labels_dir.is_dir():
        raise FileNotFoundError(f"{labels_dir}: label folder not found")
    images = list_images(images_dir, recursive=True)
    stems = [p.stem for p in images]
    unique = len(set(stems)) == len(stems)
    samples = []
    for p in images:
        rel = p.relative_to(images_dir).with_suffix("")
        image, scale = read_image_with_scale(p)
        txt = labels_dir / rel.with_suffix(".txt")
        inst = read_yolo_labels(txt, image.shape, len(names)) if txt.is_file() else []
        name = p.stem if unique else rel.as_posix().replace("/", "__")
        samples.append(Sample(image, inst, source_id=name, nm_per_px=scale, name=name, meta={"file": str(p)}))
    seen = {(labels_dir / p.relative_to(images_dir).with_suffix(".txt")).resolve() for p in images}
    orphans = sorted(str(t.relative_to(labels_dir)) for t in labels_dir.rglob("*.txt")
                     if t.resolve() not in seen and t.name != "classes.txt")
    if orphans:
        warnings.warn(f"{labels_dir}: {len(orphans)} label file(s) with no image of the same relative path under "
                      f"{images_dir} were not read ({orphans[:5]}{' ...' if len(orphans) > 5 else ''})", stacklevel=2)
    if not any(s.instances for s in samples):
        matched = len(images) - sum(1 for p in images
                                    if not (labels_dir / p.relative_to(images_dir).with_suffix(".txt")).is_file())
        if matched:
            raise ValueError(f"{labels_dir}: the {matched} label file(s) of the images under {images_dir} are all "
                             "empty: no defect is labelled")
        raise ValueError(f"{labels_dir}: no label file matches an image under {images_dir} "
                         "(labels/<same relative path>.txt expected)")
    return samples, classes


# ----------------------------------------------------------------------------- the format
NAME, NEEDS_CLASSES = "yolo", False
DESCRIPTION = "a data.yaml, or labels/**/*.txt (YOLO segmentation) + images/"


def detect(root: Path) -> bool:
    if root.is_file():
        return root.suffix.lower() in (".yaml", ".yml")
    return (root / "labels").is_dir() and any((root / "labels").rglob("*.txt"))


def read(root: Path, classes=None, images_dir=None) -> Dataset:
    folder = root.parent if root.is_file() else root
    samples, declared = read_yolo(folder, images_dir)
    if classes is not None and not classes.matches(declared):
        raise ValueError(f"{folder}: YOLO names {list(declared.names)} (ids 1..) differ from the class set "
                         f"{classes.name!r} {[(c.id, c.name) for c in classes]}")
    return Dataset(samples, classes or declared, root, NAME)
