"""COCO instances (RLE or polygon segmentations), categories kept as declared."""
from __future__ import annotations

import warnings
from pathlib import Path, PurePosixPath, PureWindowsPath

import numpy as np

from ...classes import ClassSet
from ...layout import DATASET_META
from ...utils import read_json
from ..dataset import Dataset
from ..images import read_image_with_scale
from ..sample import Sample
from .common import _FAR_OUTSIDE, COCO_IMAGE_DIRS, _number, _show, instance_from_full


def _rle_string_counts(counts: str) -> list[int] | None:
    """The run lengths of a compressed COCO RLE string (pycocotools' ``rleFrString``), or None
    when the string is not one: pycocotools decodes some garbage without complaint."""
    out, p = [], 0
    while p < len(counts):
        x, k, more = 0, 0, True
        while more:
            if p >= len(counts):
                return None
            c = ord(counts[p]) - 48
            if not 0 <= c < 64:
                return None
            x |= (c & 0x1F) << 5 * k
            more = bool(c & 0x20)
            p, k = p + 1, k + 1
            if not more and c & 0x10:
                x |= -1 << 5 * k
        if len(out) > 2:
            x += out[-2]
        out.append(x)
    return out


def _decode_segmentation(seg, h: int, w: int, where: str) -> np.ndarray:
    """A COCO segmentation (polygons, uncompressed or compressed RLE) as a bool [h, w] mask;
    anything malformed raises ``ValueError`` naming ``where``."""
    from pycocotools import mask as mask_utils
    if isinstance(seg, list):  # polygons
        polys = []
        for p in seg:
            if not isinstance(p, list) or not all(_number(v) for v in p):
                raise ValueError(f"{where}: a polygon must be a list of numbers, got {str(p)[:80]}")
            if len(p) % 2:
                raise ValueError(f"{where}: a polygon has an odd number of coordinates ({len(p)})")
            far = [v for v in p if not -_FAR_OUTSIDE * max(h, w) <= v <= (_FAR_OUTSIDE + 1) * max(h, w)]
            bad = [v for v in far if isinstance(v, float) and not np.isfinite(v)]
            if bad:
                raise ValueError(f"{where}: polygon coordinate {bad[0]} is not finite")
            if far:  # (a Python integer of any size lands here, never in numpy)
                raise ValueError(f"{where}: polygon coordinate {_show(far[0])} lies far outside the {w}x{h} image")
            if len(p) >= 6:
                polys.append(p)
        if not polys:
            raise ValueError(f"{where}: empty polygon segmentation (a polygon needs at least 3 points)")
        rle = mask_utils.merge(mask_utils.frPyObjects(polys, h, w))
    elif isinstance(seg, dict) and "counts" in seg:
        if list(seg.get("size", [h, w])) != [h, w]:
            raise ValueError(f"{where}: RLE size {seg.get('size')} != image size {[h, w]}")
        counts = seg["counts"]
        if isinstance(counts, list):
            if not all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in counts):
                raise ValueError(f"{where}: RLE counts must be non-negative integers")
            total = sum(counts)
        elif isinstance(counts, str):
            runs = _rle_string_counts(counts)
            if runs is None or any(c < 0 for c in runs):
                raise ValueError(f"{where}: RLE counts {counts[:40]!r} are not a compressed COCO RLE string")
            total = sum(runs)
        else:
            raise ValueError(f"{where}: RLE counts must be a list of integers or a string, got {type(counts).__name__}")
        if total != h * w:
            raise ValueError(f"{where}: RLE counts cover {total} pixels, the {w}x{h} image has {h * w}")
        rle = mask_utils.frPyObjects(seg, h, w) if isinstance(counts, list) else {**seg, "counts": counts.encode()}
    else:
        raise ValueError(f"{where}: unsupported segmentation {type(seg).__name__}")
    return mask_utils.decode(rle).astype(bool)



def coco_image_dir(annotation_file: Path, coco: dict) -> Path:
    """Where the images of a COCO file are: the folder holding its first image among
    ``images/``, ``imgs/``, ``JPEGImages/``, ``img/`` or the file's own folder, beside the file
    or one level up (``annotations/instances_val.json`` beside ``images/``)."""
    first = coco["images"][0].get("file_name") if coco.get("images") else None
    tried = []
    for base in (annotation_file.parent, annotation_file.parent.parent):
        for sub in COCO_IMAGE_DIRS:
            d = base / sub if sub else base
            if d in tried:
                continue
            tried.append(d)
            if first and (d / first).is_file():
                return d
    raise FileNotFoundError(f"{annotation_file}: image {first!r} not found in any of "
                            f"{[str(t) for t in tried]}; pass images_dir")


def read_coco(annotation_file, image_dir=None, classes: ClassSet | None = None) -> tuple[list[Sample], ClassSet]:
    """Read a COCO instance-segmentation file and its images.

    The class set is the file's categories as declared (ids and names kept). With
    ``classes`` (e.g. from the dataset's ``metadata.json`` or a preset) the declared categories
    must be exactly its ids and names, and its display names, colours and gray levels are
    used; anything else raises ``ValueError``: categories are never relabelled.
    """
    annotation_file = Path(annotation_file)
    coco = read_json(annotation_file)
    if not isinstance(coco, dict):
        raise ValueError(f"{annotation_file}: not a COCO instances file (not a JSON object)")
    for key in ("images", "annotations", "categories"):
        if key not in coco:
            raise ValueError(f"{annotation_file}: not a COCO instances file (no {key!r} key)")
    declared = ClassSet.from_coco(coco["categories"], str(annotation_file))
    if classes is not None and not classes.matches(declared):
        raise ValueError(f"{annotation_file}: categories {[(c.id, c.name) for c in declared]} differ from the "
                         f"class set {classes.name!r} {[(c.id, c.name) for c in classes]}; "
                         "tem_lib does not relabel: fix the file or the class set")
    classes = classes or declared
    for key in ("images", "annotations"):
        if not isinstance(coco[key], list):
            raise ValueError(f"{annotation_file}: {key!r} must be a list of objects, got {type(coco[key]).__name__}")
    if not coco["images"]:
        raise ValueError(f"{annotation_file}: empty dataset (no images)")
    _check_coco_images(annotation_file, coco["images"])
    image_dir = Path(image_dir) if image_dir is not None else coco_image_dir(annotation_file, coco)
    by_image: dict[int, list] = {img["id"]: [] for img in coco["images"]}
    seen_ids, repeated, reused = {}, [], []
    for k, ann in enumerate(coco["annotations"]):
        if not isinstance(ann, dict):
            raise ValueError(f"{annotation_file}: annotations[{k}] is not an object ({type(ann).__name__})")
        if ann.get("iscrowd"):
            # COCO evaluation treats crowd regions as "ignore"; tem_lib has no ignore regions in
            # training or in the paper's metrics, so it refuses them rather than count a crowd as one defect
            raise ValueError(f"{annotation_file}: annotation {ann.get('id')} is a crowd region (iscrowd: 1); "
                             "tem_lib trains and scores individual defects only: label them one by one or "
                             "remove the crowd annotation")
        for key in ("image_id", "category_id"):
            v = ann.get(key)
            if not (isinstance(v, int) and not isinstance(v, bool)):
                what = "missing" if v is None else f"{_show(v)} ({type(v).__name__})"
                raise ValueError(f"{annotation_file}: annotation {_show(ann.get('id'))} has {key} {what}; it must "
                                 "be an integer id (a fraction or text is never rounded to a class or image)")
        if ann.get("image_id") not in by_image:
            raise ValueError(f"{annotation_file}: annotation {_show(ann.get('id'))} refers to unknown "
                             f"image_id {_show(ann.get('image_id'))}")
        if ann.get("category_id") not in classes:
            raise ValueError(f"{annotation_file}: annotation {_show(ann.get('id'))} has category_id "
                             f"{_show(ann.get('category_id'))}, which the file does not declare "
                             f"(categories {[(c.id, c.name) for c in classes]})")
        if not ann.get("segmentation"):
            raise ValueError(f"{annotation_file}: annotation {ann.get('id')} has no segmentation "
                             "(boxes alone are not enough for Mask R-CNN or the mask prior)")
        key = _show(ann.get("id"))
        if key in seen_ids:
            if seen_ids[key] == ann:  # the same annotation listed twice: one defect
                repeated.append(key)
                continue
            reused.append(key)
        seen_ids[key] = ann
        by_image[ann["image_id"]].append(ann)
    if repeated:
        warnings.warn(f"{annotation_file}: {len(repeated)} annotation(s) listed twice, identical, were read once "
                      f"(ids {repeated[:10]}{' ...' if len(repeated) > 10 else ''})", stacklevel=2)
    if reused:
        warnings.warn(f"{annotation_file}: {len(reused)} annotation id(s) used by two different annotations "
                      f"({reused[:10]}{' ...' if len(reused) > 10 else ''}); both read, as different defects",
                      stacklevel=2)
    samples, empty = [], []
    for img in coco["images"]:
        path = image_dir / img["file_name"]
        image, scale = read_image_with_scale(path)
        h, w = image.shape
        if (img.get("height", h), img.get("width", w)) != (h, w):
            raise ValueError(f"{path}: image is {w}x{h} but {annotation_file} says "
                             f"{img.get('width')}x{img.get('height')}")
        instances = []
        for ann in by_image[img["id"]]:
            where = f"{annotation_file} annotation {ann.get('id')}"
            m = _decode_segmentation(ann["segmentation"], h, w, where)
            inst = instance_from_full(m, ann["category_id"], _ellipse(ann.get("ellipse"), where))
            if inst is not None:
                instances.append(inst)
            else:
                empty.append(ann.get("id"))
        stem = Path(img["file_name"]).with_suffix("").as_posix().replace("/", "__")
        source = img.get("source_id", stem)
        if isinstance(source, bool) or not isinstance(source, (str, int)):
            raise ValueError(f"{annotation_file}: image {_show(img['id'])} has source_id {_show(source)} "
                             f"({type(source).__name__}); it must be a text (or integer) naming its micrograph")
        samples.append(Sample(image, instances, source_id=str(source),
                              nm_per_px=img.get("nm_per_px", scale), name=stem,
                              origin=tuple(img.get("origin", (0, 0))), meta={"file": str(path)}))
    if empty:
        warnings.warn(f"{annotation_file}: {len(empty)} annotation(s) with no pixel inside their image were "
                      f"dropped (ids {empty[:10]}{' ...' if len(empty) > 10 else ''})", stacklevel=2)
    return samples, classes


def _ellipse(value, where: str):
    """tem_lib's optional ``ellipse`` field (cx, cy, major, minor, angle), checked."""
    if value is None:
        return None
    if not (isinstance(value, list) and len(value) == 5 and all(_number(v) for v in value)
            and all(np.isfinite(float(v)) for v in value)):
        raise ValueError(f"{where}: 'ellipse' must be 5 finite numbers (cx, cy, major, minor, angle), "
                         f"got {_show(value)}")
    return tuple(float(v) for v in value)


def _check_coco_images(annotation_file: Path, images: list) -> None:
    """Every image record an object with a unique integer ``id``, a relative ``file_name``
    inside the dataset folder, integer sizes and a positive pixel size where given."""
    seen: dict[int, int] = {}
    for k, img in enumerate(images):
        where = f"{annotation_file}: images[{k}]"
        if not isinstance(img, dict):
            raise ValueError(f"{where} is not an object ({type(img).__name__})")
        for key in ("id", "file_name"):
            if key not in img:
                raise ValueError(f"{where} has no {key!r}")
        iid, name = img["id"], img["file_name"]
        where = f"{annotation_file}: image {iid!r} ({name!r})"
        if not isinstance(iid, int) or isinstance(iid, bool):
            raise ValueError(f"{where}: its id must be an integer, got {type(iid).__name__}")
        if iid in seen:
            raise ValueError(f"{annotation_file}: image id {iid} is used twice (images[{seen[iid]}] "
                             f"{images[seen[iid]]['file_name']!r} and images[{k}] {name!r}); annotations would "
                             "go to both: give every image its own id")
        seen[iid] = k
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"{where}: file_name must be a non-empty string")
        parts = PurePosixPath(name.replace("\\", "/")).parts
        if PurePosixPath(name).is_absolute() or PureWindowsPath(name).is_absolute() or ".." in parts:
            raise ValueError(f"{where}: file_name points outside the dataset folder; give a path relative to "
                             "the images folder")
        for key in ("height", "width"):
            v = img.get(key)
            if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 1):
                raise ValueError(f"{where}: {key} must be a positive integer, got {v!r} ({type(v).__name__})")
        nm = img.get("nm_per_px")
        if nm is not None and not (_number(nm) and np.isfinite(nm) and nm > 0):
            raise ValueError(f"{where}: nm_per_px must be a positive number, got {nm!r}")


def looks_like_coco(path: Path) -> bool:
    """A JSON file with images, annotations and categories (read cheaply: the keys only)."""
    try:
        d = read_json(path)
    except (ValueError, OSError):
        return False
    return isinstance(d, dict) and all(k in d for k in ("images", "annotations", "categories"))


# ----------------------------------------------------------------------------- the format
NAME, NEEDS_CLASSES = "coco", False
DESCRIPTION = "a COCO .json, annotations.json or one COCO json in the folder or annotations/"


def coco_files(root: Path) -> list[Path]:
    cands = [root / "annotations.json"] if (root / "annotations.json").is_file() else []
    if not cands:
        cands = [p for d in (root, root / "annotations") if d.is_dir() for p in sorted(d.glob("*.json"))
                 if p.name != DATASET_META and looks_like_coco(p)]
    return cands


def detect(root: Path) -> bool:
    if root.is_file():
        return root.suffix.lower() == ".json"
    if (root / "annotations.json").is_file():  # what write_dataset writes (masks/ beside it)
        return True
    if (root / "labels").is_dir() or (root / "masks").is_dir():
        return False
    coco = coco_files(root)
    if len(coco) > 1:
        raise ValueError(f"{root}: several COCO files ({', '.join(p.name for p in coco)}); pass the one to "
                         "read as the dataset path")
    return len(coco) == 1


def read(root: Path, classes=None, images_dir=None) -> Dataset:
    if root.is_file():
        ann = root
    else:
        files = [root / "annotations.json"] if (root / "annotations.json").is_file() else coco_files(root)
        if len(files) != 1:
            raise ValueError(f"{root}: expected one COCO json, found {[p.name for p in files] or 'none'}")
        ann = files[0]
    samples, classes = read_coco(ann, images_dir, classes)
    return Dataset(samples, classes, root, NAME)
