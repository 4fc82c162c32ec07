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
from .formats import detect_format, formats, get_format, register_format
from .images import to_uint8
from .sample import LabelMap, Sample


class Dataset(list):
    """A list of :class:`Sample` that knows its class set (``classes``), where it was read
    from (``root``) and in which format (``format``). Slicing gives a plain list."""

    def __init__(self, samples=(), classes: ClassSet | None = None, root=None, format: str | None = None):
        super().__init__(samples)
        if classes is None:
            raise ValueError("a Dataset needs its class set")
        self.classes = classes
        self.root = Path(root) if root is not None else None
        self.format = format
        self.metadata: dict = {}  # the folder's metadata.json (e.g. how a synthetic pool was made)
        for s in self:
            classes.check_ids({i.category_id for i in s.instances}, f"{self.root or 'dataset'}: {s.name}")


def _metadata_classes(folder: Path) -> ClassSet | None:
    """The class set recorded in ``folder/metadata.json`` (what :func:`write_dataset` saves,
    and where a user declares gray levels or ImageJ codes for their own data)."""
    meta = folder / DATASET_META
    if not meta.is_file():
        return None
    d = read_json(meta)
    return ClassSet.from_dict(d["classes"], f"{meta} 'classes'") if d.get("classes") else None


def _coco_files(root: Path) -> list[Path]:
    cands = [root / "annotations.json"] if (root / "annotations.json").is_file() else []
    if not cands:
        cands = [p for d in (root, root / "annotations") if d.is_dir() for p in sorted(d.glob("*.json"))
                 if p.name != DATASET_META and readers.looks_like_coco(p)]
    return cands


def _is_coco(root: Path) -> bool:
    if root.is_file():
        return root.suffix.lower() == ".json"
    if (root / "annotations.json").is_file():  # what write_dataset writes (masks/ beside it)
        return True
    if (root / "labels").is_dir() or (root / "masks").is_dir():
        return False
    coco = _coco_files(root)
    if len(coco) > 1:
        raise ValueError(f"{root}: several COCO files ({', '.join(p.name for p in coco)}); pass the one to "
                         "read as the dataset path")
    return len(coco) == 1


def _is_imagej(root: Path) -> bool:
    return root.is_dir() and (root / "labels").is_dir() and any((root / "labels").glob("*_results.csv"))


def _is_yolo(root: Path) -> bool:
    if root.is_file():
        return root.suffix.lower() in (".yaml", ".yml")
    return (root / "labels").is_dir() and any((root / "labels").rglob("*.txt"))


def _is_graymask(root: Path) -> bool:
    return root.is_dir() and (root / "masks").is_dir()


def _needs_classes(root: Path, what: str, how: str) -> ValueError:
    return ValueError(
        f"{root}: {what} carry no class names, so the class set must be declared: classes='fecral' for the "
        f"paper's FeCrAl {how} (./run_all.sh --data DIR -p classes fecral), a list of names, or a "
        f"'classes' entry in {root / 'metadata.json'}")


def _read_coco(root: Path, classes=None, images_dir=None) -> Dataset:
    if root.is_file():
        ann = root
    else:
        files = [root / "annotations.json"] if (root / "annotations.json").is_file() else _coco_files(root)
        if len(files) != 1:
            raise ValueError(f"{root}: expected one COCO json, found {[p.name for p in files] or 'none'}")
        ann = files[0]
    samples, classes = readers.read_coco(ann, images_dir, classes)
    return Dataset(samples, classes, root, "coco")


def _read_yolo(root: Path, classes=None, images_dir=None) -> Dataset:
    folder = root.parent if root.is_file() else root
    samples, declared = readers.read_yolo(folder, images_dir)
    if classes is not None and not classes.matches(declared):
        raise ValueError(f"{folder}: YOLO names {list(declared.names)} (ids 1..) differ from the class set "
                         f"{classes.name!r} {[(c.id, c.name) for c in classes]}")
    return Dataset(samples, classes or declared, root, "yolo")


def _read_imagej(root: Path, classes=None, images_dir=None) -> Dataset:
    if classes is None:
        raise _needs_classes(root, "ImageJ tables (labels/*_results.csv) give class codes that",
                             "codes (0 = 1/2<111> loop, 1 = black dot, 2 = <100> loop)")
    return Dataset(readers.read_imagej(root, classes, images_dir), classes, root, "imagej")


def _read_graymask(root: Path, classes=None, images_dir=None) -> Dataset:
    if classes is None:
        raise _needs_classes(root, "gray-level masks (masks/*.png) give gray levels that",
                             "gray levels (85 <100> loop, 170 1/2<111> loop, 255 black dot)")
    return Dataset(readers.read_graymask(root, classes, images_dir), classes, root, "graymask")


register_format("coco", _is_coco, _read_coco, "a COCO .json, annotations.json or one COCO json in the folder "
                "or annotations/")
register_format("imagej", _is_imagej, _read_imagej, "labels/NAME_results.csv (ImageJ ellipses) + images/",
                needs_classes=True)
register_format("yolo", _is_yolo, _read_yolo, "a data.yaml, or labels/**/*.txt (YOLO segmentation) + images/")
register_format("graymask", _is_graymask, _read_graymask, "masks/NAME.png (gray-level class masks) + images/",
                needs_classes=True)
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
            rle = encode_rle(inst.full_mask((h, w)))
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
