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
"""
from __future__ import annotations

import warnings
from pathlib import Path, PurePosixPath, PureWindowsPath

import numpy as np

from ..classes import ClassSet
from ..geometry import rasterize_ellipse
from ..utils import read_json
from .images import find_image, list_images, read_image_with_scale
from .sample import Instance, Sample

IMAGEJ_COLUMNS = ("X", "Y", "Major", "Minor", "Angle", "class")
COCO_IMAGE_DIRS = ("images", "imgs", "JPEGImages", "img", "")


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not UTF-8 text (byte {e.start}); save it as UTF-8") from None


# ----------------------------------------------------------------------------- COCO
# a polygon vertex further than this many image sides outside the image is an error, not a shape
# (pycocotools rasterises the whole bounding box: 1e300 would exhaust memory)
_FAR_OUTSIDE = 4


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


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
            if not np.isfinite(p).all():
                raise ValueError(f"{where}: polygon coordinate {next(v for v in p if not np.isfinite(v))} is not finite")
            far = [v for v in p if not -_FAR_OUTSIDE * max(h, w) <= v <= (_FAR_OUTSIDE + 1) * max(h, w)]
            if far:
                raise ValueError(f"{where}: polygon coordinate {far[0]} lies far outside the {w}x{h} image")
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


def instance_from_full(mask: np.ndarray, category_id: int, ellipse=None) -> Instance | None:
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    r0, r1, c0, c1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    return Instance(mask[r0:r1, c0:c1].copy(), int(c0), int(r0), int(category_id), ellipse)


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
    for k, ann in enumerate(coco["annotations"]):
        if not isinstance(ann, dict):
            raise ValueError(f"{annotation_file}: annotations[{k}] is not an object ({type(ann).__name__})")
        if ann.get("iscrowd"):
            # COCO evaluation treats crowd regions as "ignore"; tem_lib has no ignore regions in
            # training or in the paper's metrics, so it refuses them rather than count a crowd as one defect
            raise ValueError(f"{annotation_file}: annotation {ann.get('id')} is a crowd region (iscrowd: 1); "
                             "tem_lib trains and scores individual defects only: label them one by one or "
                             "remove the crowd annotation")
        if ann.get("image_id") not in by_image:
            raise ValueError(f"{annotation_file}: annotation {ann.get('id')} refers to unknown "
                             f"image_id {ann.get('image_id')}")
        if ann.get("category_id") not in classes:
            raise ValueError(f"{annotation_file}: annotation {ann.get('id')} has category_id "
                             f"{ann.get('category_id')!r}, which the file does not declare "
                             f"(categories {[(c.id, c.name) for c in classes]})")
        if not ann.get("segmentation"):
            raise ValueError(f"{annotation_file}: annotation {ann.get('id')} has no segmentation "
                             "(boxes alone are not enough for Mask R-CNN or the mask prior)")
        by_image[ann["image_id"]].append(ann)
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
            inst = instance_from_full(m, ann["category_id"], tuple(ann["ellipse"]) if ann.get("ellipse") else None)
            if inst is not None:
                instances.append(inst)
            else:
                empty.append(ann.get("id"))
        stem = Path(img["file_name"]).with_suffix("").as_posix().replace("/", "__")
        samples.append(Sample(image, instances, source_id=img.get("source_id", stem),
                              nm_per_px=img.get("nm_per_px", scale), name=stem,
                              origin=tuple(img.get("origin", (0, 0))), meta={"file": str(path)}))
    if empty:
        warnings.warn(f"{annotation_file}: {len(empty)} annotation(s) with no pixel inside their image were "
                      f"dropped (ids {empty[:10]}{' ...' if len(empty) > 10 else ''})", stacklevel=2)
    return samples, classes


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


# ----------------------------------------------------------------------------- ImageJ
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
        if r is None:
            continue
        m, x0, y0 = r
        instances.append(Instance(m, x0, y0, codes[int(cls)], (x, y, major, minor, angle)))
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


# ----------------------------------------------------------------------------- gray masks
def instances_from_gray(gray: np.ndarray, classes: ClassSet, where: str = "mask",
                        connectivity: int = 2) -> list[Instance]:
    """Instances of a gray-level class mask: connected components of each class value."""
    from scipy import ndimage
    g2id = classes.gray_to_id
    values = np.unique(gray)
    unknown = [int(v) for v in values if v != 0 and v not in g2id]
    if unknown:
        raise ValueError(f"{where}: unknown gray level(s) {unknown}; class set {classes.name!r} expects 0 or "
                         f"{sorted(g2id)} ({', '.join(f'{g}={classes[c].name}' for g, c in sorted(g2id.items()))})")
    structure = ndimage.generate_binary_structure(2, connectivity)
    instances = []
    for v in values:
        if v == 0:
            continue
        lab, n = ndimage.label(gray == v, structure=structure)
        for k, sl in enumerate(ndimage.find_objects(lab), start=1):
            m = lab[sl] == k
            instances.append(Instance(m, sl[1].start, sl[0].start, g2id[int(v)]))
    instances.sort(key=lambda i: (i.y0, i.x0))
    return instances


def read_graymask(root, classes: ClassSet, images_dir=None, masks_dir=None, connectivity: int = 2) -> list[Sample]:
    from PIL import Image
    root = Path(root)
    images_dir = Path(images_dir) if images_dir else root / "images"
    masks_dir = Path(masks_dir) if masks_dir else root / "masks"
    samples = []
    for img_path in list_images(images_dir):
        mask_path = find_image(masks_dir, img_path.stem)
        image, scale = read_image_with_scale(img_path)
        with Image.open(mask_path) as im:
            gray = np.asarray(im.convert("L"))
        if gray.shape != image.shape:
            raise ValueError(f"{mask_path}: mask is {gray.shape[1]}x{gray.shape[0]} but image "
                             f"{img_path.name} is {image.shape[1]}x{image.shape[0]}")
        samples.append(Sample(image, instances_from_gray(gray, classes, str(mask_path), connectivity),
                              source_id=img_path.stem, nm_per_px=scale, name=img_path.stem,
                              meta={"file": str(img_path)}))
    return samples


# ----------------------------------------------------------------------------- YOLO
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
                keys = sorted(int(k) for k in names)
                if keys != list(range(len(keys))):
                    raise ValueError(f"{f}: 'names' indices must be 0..{len(keys) - 1}, got {keys}")
                names = [names[k] if k in names else names[str(k)] for k in keys]
            if not isinstance(names, list) or not names:
                raise ValueError(f"{f}: no 'names' list of classes")
            names = [str(n) for n in names]
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
        return names, f
    raise FileNotFoundError(f"{root}: YOLO labels need class names: data.yaml with 'names' or classes.txt")


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
    if not any(s.instances for s in samples):
        raise ValueError(f"{labels_dir}: no label file matches an image under {images_dir} "
                         "(labels/<same relative path>.txt expected)")
    return samples, classes
