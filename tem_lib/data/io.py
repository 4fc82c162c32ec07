"""Load any supported labelled dataset; write the format we write.

:func:`load_dataset` detects the format (:mod:`tem_lib.data.readers`) and returns a
:class:`Dataset`: the samples plus the dataset's :class:`~tem_lib.classes.ClassSet`.
:func:`write_dataset` writes ``images/*.png``, ``annotations.json`` (COCO, RLE masks,
categories = the class set), gray-level class masks ``masks/*.png`` and ``metadata.json``
(holding the class set, so gray levels, colours and display names travel with the data).
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from ..classes import ClassSet, resolve_classes
from ..layout import DATASET_META
from ..utils import read_json, write_json
from . import readers
from .dataset import Dataset
from .formats import detect_format, formats, get_format
from .images import to_uint8
from .sample import Instance, LabelMap, Sample


def _metadata_classes(folder: Path) -> ClassSet | None:
    """The class set recorded in ``folder/metadata.json`` (what :func:`write_dataset` saves,
    and where a user declares gray levels or ImageJ codes for their own data)."""
    meta = folder / DATASET_META
    if not meta.is_file():
        return None
    d = read_json(meta)
    return ClassSet.from_dict(d["classes"], f"{meta} 'classes'") if d.get("classes") else None


readers.register_builtin()  # coco, imagej, yolo, graymask: each in its module of tem_lib.data.readers
FORMATS = formats()  # the built-in formats (more may be registered: tem_lib.data.register_format)


def check_declared_classes(root, classes=None) -> str:
    """The format of the dataset at ``root``; ``ValueError`` (asking for a class set) when its
    files name no classes and neither ``classes`` nor the folder's ``metadata.json`` declares
    them: the check a run makes before it starts, instead of failing in notebook 01."""
    root = Path(root)
    fmt = detect_format(root)
    if get_format(fmt).needs_classes and classes is None:
        folder = root.parent if root.is_file() else root
        if _metadata_classes(folder) is None:
            get_format(fmt).read(root, None)  # raises the format's own request for a class set
            raise ValueError(f"{root}: {fmt} data name no classes: declare the class set")
    return fmt


def check_pixel_size(value, name: str = "nm_per_px") -> float:
    """``value`` as a pixel size in nm: a finite number > 0, else ``ValueError``."""
    import math
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a positive number of nm per pixel, got {value!r}") from None
    if isinstance(value, bool) or not math.isfinite(v) or v <= 0:
        raise ValueError(f"{name} must be a positive number of nm per pixel, got {value!r}")
    return v


def load_dataset(root, fmt: str = "auto", nm_per_px: float | None = None, classes=None,
                 images_dir=None) -> Dataset:
    """Read a dataset: a folder, a COCO json file or a YOLO ``data.yaml``.

    ``classes`` (a :class:`ClassSet`, preset name, dict or list of names): COCO files must
    declare exactly these categories (else ``ValueError``); ImageJ and gray-mask datasets map
    codes and gray levels with it. Default: the folder's ``metadata.json`` class set, else what
    the file declares (COCO, YOLO); ImageJ tables and gray masks declare none, and without a
    class set they raise a ``ValueError`` asking for one (``classes="fecral"`` for the paper's).
    The format is detected among the registered ones (:mod:`tem_lib.data.formats`) unless
    ``fmt`` names one.
    ``nm_per_px`` overrides the pixel size; otherwise it comes from the labels, the image files'
    calibration (microscope files, calibrated TIFFs) or ``metadata.json``.
    """
    root = Path(root)
    if nm_per_px is not None:
        nm_per_px = check_pixel_size(nm_per_px, "nm_per_px")
    fmt = detect_format(root) if fmt == "auto" else fmt
    reader = get_format(fmt).read
    folder = root.parent if root.is_file() else root
    classes = resolve_classes(classes) or _metadata_classes(folder)
    ds = reader(root, classes, images_dir)
    if not isinstance(ds, Dataset):
        raise TypeError(f"dataset format {fmt!r}: read() must return a tem_lib.data.Dataset, got {type(ds).__name__}")
    samples = ds
    meta_path = folder / DATASET_META
    meta_nm = read_json(meta_path).get("nm_per_px") if meta_path.is_file() else None
    for s in samples:
        if nm_per_px is not None:
            s.nm_per_px = float(nm_per_px)
        elif s.nm_per_px is None and meta_nm is not None:
            s.nm_per_px = check_pixel_size(meta_nm, f"{meta_path}: nm_per_px")
    ds.format = ds.format or fmt
    ds.metadata = read_json(meta_path) if meta_path.is_file() else {}
    return ds


# ----------------------------------------------------------------------------- writing
def encode_rle(mask: np.ndarray) -> dict:
    """A full-image boolean mask as COCO RLE (``counts`` as text, JSON-ready)."""
    from pycocotools import mask as mask_utils
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


def instance_rle(inst: Instance, image_hw) -> dict:
    """``encode_rle(inst.full_mask(image_hw))`` from the instance's own box: its runs are found
    in the crop and placed in the image's column-major order, so a small defect on a 2048²
    micrograph costs its box, not four million pixels (the same RLE, tested)."""
    from pycocotools import mask as mask_utils
    H, W = (int(v) for v in image_hw)
    m = np.asarray(inst.mask, bool)
    if inst.x0 < 0 or inst.y0 < 0 or inst.x0 + m.shape[1] > W or inst.y0 + m.shape[0] > H:
        raise ValueError(f"an instance's box {inst.bbox} runs past the {H}x{W} image")
    edges = np.diff(np.pad(m.T.astype(np.int8), ((0, 0), (1, 1))), axis=1)  # per image column: +1 starts, -1 ends
    col, row = np.nonzero(edges)  # column by column, top to bottom: the image's column-major order
    pos = (inst.x0 + col) * H + inst.y0 + row
    joined = np.flatnonzero(np.diff(pos) == 0)  # a run down to the bottom going on at the next column's top
    pos = np.delete(pos, np.concatenate([joined, joined + 1]))
    counts = np.diff(np.concatenate([[0], pos, [H * W]]))
    if len(counts) > 1 and counts[-1] == 0:  # a run to the image's last pixel: pycocotools writes no empty tail
        counts = counts[:-1]
    rle = mask_utils.frPyObjects({"counts": counts.tolist(), "size": [H, W]}, H, W)
    return {"size": [H, W], "counts": rle["counts"].decode("ascii")}


def to_coco(samples: list[Sample], classes: ClassSet) -> dict:
    """COCO dict with compressed-RLE segmentations (exact masks, pycocotools-readable);
    categories are ``classes``."""
    images, anns = [], []
    for k, s in enumerate(samples, start=1):
        h, w = s.shape
        classes.check_ids({i.category_id for i in s.instances}, str(s.name))
        images.append({"id": k, "file_name": f"{s.name}.png", "height": h, "width": w,
                       "source_id": s.source_id, "nm_per_px": s.nm_per_px,
                       "origin": list(s.origin)})
        for inst in s.instances:
            rle = instance_rle(inst, (h, w))
            x1, y1, x2, y2 = inst.bbox
            ann = {"id": len(anns) + 1, "image_id": k, "category_id": inst.category_id,
                   "segmentation": rle, "area": inst.area, "bbox": [x1, y1, x2 - x1, y2 - y1],
                   "iscrowd": 0}
            if inst.ellipse is not None:
                ann["ellipse"] = [round(float(v), 4) for v in inst.ellipse]
            anns.append(ann)
    return {"info": {"description": "tem_lib dataset"}, "images": images,
            "annotations": anns, "categories": classes.coco_categories()}


def write_dataset(samples: list[Sample], out_dir, classes: ClassSet, metadata: dict | None = None,
                  overwrite: bool = False) -> Path:
    """Write ``images/``, ``masks/``, ``annotations.json`` and ``metadata.json`` (with
    ``classes``).

    ``samples`` may include :class:`LabelMap` s (sampled masks without an image): their
    gray-level mask is written as a placeholder image, so the folder still loads.

    The folder appears complete or not at all: it is built beside ``out_dir`` and renamed
    into place, so an interrupted write never leaves a half-written dataset.
    """
    out_dir = Path(out_dir)
    if not isinstance(classes, ClassSet):
        raise ValueError(f"{out_dir}: write_dataset needs the dataset's ClassSet, got {type(classes).__name__}")
    if not samples:
        raise ValueError(f"{out_dir}: refusing to write an empty dataset")
    samples = [s.to_sample(classes=classes) if isinstance(s, LabelMap) else s for s in samples]
    names = [s.name for s in samples]
    if len(set(names)) != len(names):
        raise ValueError(f"{out_dir}: sample names must be unique")
    if out_dir.exists() and not overwrite:
        raise FileExistsError(f"{out_dir}: already exists (pass overwrite=True to replace it)")
    coco = to_coco(samples, classes)  # checks the class ids before anything is written
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        (tmp / "images").mkdir()
        (tmp / "masks").mkdir()

        def save(s):  # PNG compression releases the GIL: threads help
            Image.fromarray(to_uint8(s.image)).save(tmp / "images" / f"{s.name}.png", compress_level=4)
            Image.fromarray(s.gray_mask(classes)).save(tmp / "masks" / f"{s.name}.png")

        with ThreadPoolExecutor(min(4, os.cpu_count() or 1)) as pool:
            list(pool.map(save, samples))
        (tmp / "annotations.json").write_text(json.dumps(coco, sort_keys=True) + "\n")
        write_json(tmp / DATASET_META, {**(metadata or {}), "classes": classes.to_dict()})
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
