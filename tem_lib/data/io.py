"""Readers and writers for labelled micrograph datasets.

Formats (all read into :class:`~tem_lib.data.sample.Sample`):

- ``coco``: ``annotations.json`` (COCO instances; RLE or polygon segmentations) + images.
  This is the format we write: ``images/*.png``, ``annotations.json``, the paper's gray-level
  class masks ``masks/*.png`` (0 / 85 / 170 / 255) and ``metadata.json``.
- ``imagej``: ImageJ "Results" ellipse tables ``labels/NAME_results.csv`` + ``images/NAME.*``
  (the format of ``../shared/data/fecral-3class``).
- ``graymask``: gray-level class masks ``masks/NAME.png`` + ``images/NAME.*``; instances are
  the connected components of each class.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..classes import BY_ID, GRAY_TO_ID, IMAGEJ_TO_ID, PAPER_CLASS_IDS, coco_categories
from ..geometry import rasterize_ellipse
from ..utils import atomic_path, read_json, write_json
from .sample import Instance, LabelMap, Sample

IMAGE_SUFFIXES = (".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp")
IMAGEJ_COLUMNS = ("X", "Y", "Major", "Minor", "Angle", "class")


# ----------------------------------------------------------------------------- images
def read_image(path) -> np.ndarray:
    """Grayscale image as float32 [H, W] in [0, 1].

    8-bit images are divided by 255 (contrast kept as recorded); 16-bit and float images
    (TIFF) are min-max normalised. RGB images of a grayscale micrograph are reduced to gray.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: image not found")
    try:
        if path.suffix.lower() in (".tif", ".tiff"):
            import tifffile
            arr = tifffile.imread(path)
        else:
            with Image.open(path) as im:
                im.load()
                arr = np.asarray(im.convert("L") if im.mode in ("RGB", "RGBA", "P", "LA") else im)
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise ValueError(f"{path}: unreadable image ({e})") from None
    if arr.ndim == 3:
        if arr.shape[-1] in (3, 4):
            arr = arr[..., :3].astype(np.float64) @ np.array([0.299, 0.587, 0.114])
        elif arr.shape[0] == 1:
            arr = arr[0]
        else:
            raise ValueError(f"{path}: expected a 2-D grayscale image, got shape {arr.shape}")
    if arr.ndim != 2 or arr.size == 0:
        raise ValueError(f"{path}: expected a 2-D grayscale image, got shape {arr.shape}")
    if arr.dtype == np.uint8:
        return arr.astype(np.float32) / 255.0
    if arr.dtype == bool:
        return arr.astype(np.float32)
    arr = arr.astype(np.float32)
    bad = int((~np.isfinite(arr)).sum())
    if bad:  # NaN would reach training as a NaN loss, far from its cause
        raise ValueError(f"{path}: image has {bad} non-finite pixel(s) (NaN or inf); fill or crop them first")
    lo, hi = float(arr.min()), float(arr.max())
    return (arr - lo) / (hi - lo) if hi > lo else np.zeros_like(arr)


def to_uint8(image: np.ndarray) -> np.ndarray:
    if image.dtype == np.uint8:
        return image
    return np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)


def write_png(path, array: np.ndarray) -> None:
    """Write a 2-D uint8 (or [0, 1] float) array as an 8-bit PNG, atomically."""
    with atomic_path(path) as tmp:
        Image.fromarray(to_uint8(array)).save(tmp, format="PNG")


def _find_image(images_dir: Path, stem: str) -> Path:
    for suf in IMAGE_SUFFIXES:
        for cand in (images_dir / f"{stem}{suf}", images_dir / f"{stem}{suf.upper()}"):
            if cand.is_file():
                return cand
    raise FileNotFoundError(f"{images_dir}: no image named {stem!r} with suffix {IMAGE_SUFFIXES}")


def _list_images(images_dir: Path) -> list[Path]:
    if not images_dir.is_dir():
        raise FileNotFoundError(f"{images_dir}: image folder not found")
    files = sorted(p for p in images_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ValueError(f"{images_dir}: empty dataset (no image with suffix {IMAGE_SUFFIXES})")
    return files


# ----------------------------------------------------------------------------- COCO
def _decode_segmentation(seg, h: int, w: int, where: str) -> np.ndarray:
    from pycocotools import mask as mask_utils
    if isinstance(seg, list):  # polygons
        if not seg:
            raise ValueError(f"{where}: empty polygon segmentation")
        rle = mask_utils.merge(mask_utils.frPyObjects(seg, h, w))
    elif isinstance(seg, dict) and "counts" in seg:
        if list(seg.get("size", [h, w])) != [h, w]:
            raise ValueError(f"{where}: RLE size {seg.get('size')} != image size {[h, w]}")
        rle = mask_utils.frPyObjects(seg, h, w) if isinstance(seg["counts"], list) else seg
    else:
        raise ValueError(f"{where}: unsupported segmentation {type(seg).__name__}")
    return mask_utils.decode(rle).astype(bool)


def _instance_from_full(mask: np.ndarray, category_id: int, ellipse=None) -> Instance | None:
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    r0, r1, c0, c1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    return Instance(mask[r0:r1, c0:c1].copy(), int(c0), int(r0), int(category_id), ellipse)


def read_coco(annotation_file, image_dir=None) -> list[Sample]:
    """Read a COCO instance-segmentation file and its images (``image_dir`` defaults to
    ``images/`` beside the file, or the file's folder)."""
    annotation_file = Path(annotation_file)
    coco = read_json(annotation_file)
    for key in ("images", "annotations", "categories"):
        if key not in coco:
            raise ValueError(f"{annotation_file}: not a COCO instances file (no {key!r} key)")
    if image_dir is None:
        image_dir = annotation_file.parent / "images"
        if not image_dir.is_dir():
            image_dir = annotation_file.parent
    image_dir = Path(image_dir)
    # Map the file's categories onto ours by name when they are named like ours, else by id.
    cat_map = {}
    for cat in coco["categories"]:
        ours = next((c.id for c in BY_ID.values() if c.name == cat.get("name")), cat["id"])
        if ours not in BY_ID:
            raise ValueError(f"{annotation_file}: unknown category {cat!r}; known: "
                             f"{[(c.id, c.name) for c in BY_ID.values()]}")
        cat_map[cat["id"]] = ours
    by_image: dict[int, list] = {img["id"]: [] for img in coco["images"]}
    for ann in coco["annotations"]:
        if ann.get("image_id") not in by_image:
            raise ValueError(f"{annotation_file}: annotation {ann.get('id')} refers to unknown "
                             f"image_id {ann.get('image_id')}")
        if ann.get("category_id") not in cat_map:
            raise ValueError(f"{annotation_file}: annotation {ann.get('id')} has unknown "
                             f"category_id {ann.get('category_id')}")
        by_image[ann["image_id"]].append(ann)
    if not coco["images"]:
        raise ValueError(f"{annotation_file}: empty dataset (no images)")
    samples = []
    for img in coco["images"]:
        path = image_dir / img["file_name"]
        image = read_image(path)
        h, w = image.shape
        if (img.get("height", h), img.get("width", w)) != (h, w):
            raise ValueError(f"{path}: image is {w}x{h} but {annotation_file} says "
                             f"{img.get('width')}x{img.get('height')}")
        instances = []
        for ann in by_image[img["id"]]:
            where = f"{annotation_file} annotation {ann.get('id')}"
            m = _decode_segmentation(ann["segmentation"], h, w, where)
            inst = _instance_from_full(m, cat_map[ann["category_id"]],
                                       tuple(ann["ellipse"]) if ann.get("ellipse") else None)
            if inst is not None:
                instances.append(inst)
        stem = Path(img["file_name"]).stem
        samples.append(Sample(image, instances, source_id=img.get("source_id", stem),
                              nm_per_px=img.get("nm_per_px"), name=stem,
                              origin=tuple(img.get("origin", (0, 0)))))
    return samples


def to_coco(samples: list[Sample], class_ids=None) -> dict:
    """COCO dict with compressed-RLE segmentations (exact masks, pycocotools-readable)."""
    from pycocotools import mask as mask_utils
    if class_ids is None:
        used = {i.category_id for s in samples for i in s.instances}
        class_ids = tuple(sorted(set(PAPER_CLASS_IDS) | used))
    images, anns = [], []
    for k, s in enumerate(samples, start=1):
        h, w = s.shape
        images.append({"id": k, "file_name": f"{s.name}.png", "height": h, "width": w,
                       "source_id": s.source_id, "nm_per_px": s.nm_per_px,
                       "origin": list(s.origin)})
        for inst in s.instances:
            full = np.asfortranarray(inst.full_mask((h, w)).astype(np.uint8))
            rle = mask_utils.encode(full)
            rle["counts"] = rle["counts"].decode("ascii")
            x1, y1, x2, y2 = inst.bbox
            ann = {"id": len(anns) + 1, "image_id": k, "category_id": inst.category_id,
                   "segmentation": rle, "area": inst.area, "bbox": [x1, y1, x2 - x1, y2 - y1],
                   "iscrowd": 0}
            if inst.ellipse is not None:
                ann["ellipse"] = [round(float(v), 4) for v in inst.ellipse]
            anns.append(ann)
    return {"info": {"description": "tem_lib dataset"}, "images": images,
            "annotations": anns, "categories": coco_categories(class_ids)}


def gray_mask(sample: Sample) -> np.ndarray:
    """The paper's gray-level class mask, uint8 [H, W] (0 background)."""
    return sample.gray_mask()


def write_dataset(samples: list[Sample], out_dir, metadata: dict | None = None,
                  overwrite: bool = False) -> Path:
    """Write ``images/``, ``masks/``, ``annotations.json`` and ``metadata.json``.

    ``samples`` may include :class:`LabelMap` s (sampled masks without an image): their
    gray-level mask is written as a placeholder image, so the folder still loads.

    The folder appears complete or not at all: it is built beside ``out_dir`` and renamed
    into place, so an interrupted write never leaves a half-written dataset.
    """
    out_dir = Path(out_dir)
    if not samples:
        raise ValueError(f"{out_dir}: refusing to write an empty dataset")
    samples = [s.to_sample() if isinstance(s, LabelMap) else s for s in samples]
    names = [s.name for s in samples]
    if len(set(names)) != len(names):
        raise ValueError(f"{out_dir}: sample names must be unique")
    if out_dir.exists() and not overwrite:
        raise FileExistsError(f"{out_dir}: already exists (pass overwrite=True to replace it)")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        (tmp / "images").mkdir()
        (tmp / "masks").mkdir()

        def save(s):  # PNG compression releases the GIL: threads help
            Image.fromarray(to_uint8(s.image)).save(tmp / "images" / f"{s.name}.png", compress_level=4)
            Image.fromarray(gray_mask(s)).save(tmp / "masks" / f"{s.name}.png")

        with ThreadPoolExecutor(min(4, os.cpu_count() or 1)) as pool:
            list(pool.map(save, samples))
        (tmp / "annotations.json").write_text(json.dumps(to_coco(samples), sort_keys=True) + "\n")
        write_json(tmp / "metadata.json", metadata or {})
        if out_dir.exists():
            old = out_dir.with_name(f".{out_dir.name}.old")
            os.replace(out_dir, old)
            os.replace(tmp, out_dir)
            shutil.rmtree(old)
        else:
            os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


# ----------------------------------------------------------------------------- ImageJ
def read_imagej_csv(csv_path, shape) -> list[Instance]:
    """Ellipses of an ImageJ "Results" table (columns X, Y, Major, Minor, Angle, class)
    rasterised as filled ellipses on an image of ``shape`` (H, W)."""
    import pandas as pd
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise FileNotFoundError(f"{csv_path}: label table not found")
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
        if int(cls) != cls or int(cls) not in IMAGEJ_TO_ID:
            raise ValueError(f"{csv_path} line {row_no}: unknown class {cls:g}; "
                             f"expected one of {sorted(IMAGEJ_TO_ID)}")
        if not (0 <= x <= W and 0 <= y <= H):
            raise ValueError(f"{csv_path} line {row_no}: ellipse centre ({x}, {y}) outside the "
                             f"{W}x{H} image (image/label size mismatch?)")
        if major <= 0 or minor <= 0:
            raise ValueError(f"{csv_path} line {row_no}: non-positive axis ({major}, {minor})")
        r = rasterize_ellipse(x, y, major, minor, angle, shape)
        if r is None:
            continue
        m, x0, y0 = r
        instances.append(Instance(m, x0, y0, IMAGEJ_TO_ID[int(cls)], (x, y, major, minor, angle)))
    return instances


def read_imagej(root, images_dir=None, labels_dir=None, nm_per_px=None) -> list[Sample]:
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
        img_path = _find_image(images_dir, stem)
        image = read_image(img_path)
        samples.append(Sample(image, read_imagej_csv(t, image.shape), source_id=stem,
                              nm_per_px=nm_per_px, name=stem))
    return samples


# ----------------------------------------------------------------------------- gray masks
def instances_from_gray(gray: np.ndarray, where: str = "mask", connectivity: int = 2) -> list[Instance]:
    """Instances of a gray-level class mask: connected components of each class value."""
    from scipy import ndimage
    values = np.unique(gray)
    unknown = [int(v) for v in values if v != 0 and v not in GRAY_TO_ID]
    if unknown:
        raise ValueError(f"{where}: unknown gray level(s) {unknown}; expected 0 or "
                         f"{sorted(GRAY_TO_ID)} ({', '.join(f'{g}={BY_ID[c].name}' for g, c in sorted(GRAY_TO_ID.items()))})")
    structure = ndimage.generate_binary_structure(2, connectivity)
    instances = []
    for v in values:
        if v == 0:
            continue
        lab, n = ndimage.label(gray == v, structure=structure)
        for k, sl in enumerate(ndimage.find_objects(lab), start=1):
            m = lab[sl] == k
            instances.append(Instance(m, sl[1].start, sl[0].start, GRAY_TO_ID[int(v)]))
    instances.sort(key=lambda i: (i.y0, i.x0))
    return instances


def read_graymask(root, images_dir=None, masks_dir=None, nm_per_px=None,
                  connectivity: int = 2) -> list[Sample]:
    root = Path(root)
    images_dir = Path(images_dir) if images_dir else root / "images"
    masks_dir = Path(masks_dir) if masks_dir else root / "masks"
    samples = []
    for img_path in _list_images(images_dir):
        mask_path = _find_image(masks_dir, img_path.stem)
        image = read_image(img_path)
        with Image.open(mask_path) as im:
            gray = np.asarray(im.convert("L"))
        if gray.shape != image.shape:
            raise ValueError(f"{mask_path}: mask is {gray.shape[1]}x{gray.shape[0]} but image "
                             f"{img_path.name} is {image.shape[1]}x{image.shape[0]}")
        samples.append(Sample(image, instances_from_gray(gray, str(mask_path), connectivity),
                              source_id=img_path.stem, nm_per_px=nm_per_px, name=img_path.stem))
    return samples


# ----------------------------------------------------------------------------- any
def detect_format(root) -> str:
    root = Path(root)
    if root.is_file() and root.suffix == ".json":
        return "coco"
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: dataset folder not found")
    if (root / "annotations.json").is_file():
        return "coco"
    if (root / "labels").is_dir() and any((root / "labels").glob("*_results.csv")):
        return "imagej"
    if (root / "masks").is_dir():
        return "graymask"
    raise ValueError(f"{root}: no annotations.json, labels/*_results.csv or masks/ folder: "
                     "not a dataset in a format tem_lib reads")


def load_dataset(root, fmt: str = "auto", nm_per_px: float | None = None) -> list[Sample]:
    """Read any supported dataset folder; ``nm_per_px`` overrides the stored pixel size.
    The folder's ``metadata.json`` (if any) supplies ``nm_per_px`` when the labels do not."""
    root = Path(root)
    fmt = detect_format(root) if fmt == "auto" else fmt
    if fmt == "coco":
        ann = root if root.is_file() else root / "annotations.json"
        samples = read_coco(ann)
    elif fmt == "imagej":
        samples = read_imagej(root)
    elif fmt == "graymask":
        samples = read_graymask(root)
    else:
        raise ValueError(f"unknown dataset format {fmt!r}; use coco, imagej, graymask or auto")
    meta_path = (root.parent if root.is_file() else root) / "metadata.json"
    meta_nm = read_json(meta_path).get("nm_per_px") if meta_path.is_file() else None
    for s in samples:
        if nm_per_px is not None:
            s.nm_per_px = float(nm_per_px)
        elif s.nm_per_px is None and meta_nm is not None:
            s.nm_per_px = float(meta_nm)
    return samples
