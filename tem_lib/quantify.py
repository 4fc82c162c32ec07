"""From a trained detector to the numbers a microscopist publishes: counts, sizes and areal
densities of every defect class, per micrograph, on micrographs of any size.

    python -m tem_lib.quantify MODEL_DIR IMAGES_OR_FOLDERS... --out DIR [--nm-per-px X] [--score S]

A **model folder** (:func:`export_model`) is a trained detector that carries what applying it
needs: its weights (``model.safetensors``), its architecture (``detector.json``) and a card
(``model.json``: the class set, the pixel size and tile size it was trained at, the score
threshold chosen on its validation crops, the versions that made it). The study leaves its best
detector as one (:meth:`tem_lib.study.Sweep.export_best`; ``./run_all.sh`` and ``--data`` do).

**Sliced inference.** The detector trained on 256-px crops; a micrograph of 1024-4096 px is cut
into overlapping tiles of that size with sahi's slicing (``sahi.slicing.get_slice_bboxes``), each
tile is predicted, and a defect that two or more tiles saw (it lies in their overlap, or a tile
border cuts it) is merged into one: among detections of *different* tiles whose boxes overlap by
``match_threshold`` of the smaller box (IoS), the highest-scoring one absorbs the others (union of
the masks, union of the boxes). sahi's own merge step (``GreedyNMMPostprocess``) is not used, for
two reasons: it merges any overlapping pair, two defects of the same tile included (a black dot
on a loop has IoS 1 with it), and it carries masks as cv2 polygons, which cannot hold a mask of
one or two pixels (sahi raises "Invalid segmentation mask") and fill the open centre of a loop.
Here masks stay exact pixel masks.

**Outputs** (each written atomically) in ``--out``: ``defects.csv`` (one row per defect:
image, class, centroid, major and minor axis, area, orientation, in px and nm, score),
``summary.csv`` (per image and class, and over all images: count, areal density per µm² with a
95 % Poisson interval, size mean/median/quartiles with a bootstrap interval of the mean over
defects), ``overlays/<image>.png``, ``predictions_coco.json`` (a COCO file with a ``score`` per
annotation, readable by pycocotools and annotation tools) and, where the inputs carry labels
(a labelled dataset folder), ``comparison.csv``: per class the true and predicted counts, sizes
and densities with their relative errors (Jacobs et al.'s size and density errors) and the
paper's F1s at IoU 0.5.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .classes import ClassSet
from .data.sample import Instance, Sample
from .layout import DETECTOR_META, WEIGHTS
from .metrics.detection import Detections, box_iou
from .utils import Stream, atomic_path, derive_seed, provenance, read_json, write_json, write_text

CARD = "model.json"
CARD_FORMAT = "tem_lib-detector"
CARD_VERSION = 1


# ----------------------------------------------------------------------------- portable models
@dataclass
class ModelCard:
    """What applying a detector needs besides its weights."""
    classes: ClassSet
    tile: int  # px: the crop size it trained on, the tile size of sliced inference
    nm_per_px: float | None  # the pixel size of its training crops (None: unknown)
    score_threshold: float  # one threshold for every class: the best headline on validation crops
    threshold_source: str  # how it was chosen (e.g. "validation crops of split 0")
    class_agnostic: bool = True  # one defect per place whatever its class (merging across tiles too)
    # one threshold per class (class id -> threshold), chosen on the same validation crops so that each
    # class keeps as many detections as it has labelled defects (benchmarks/results/class_thresholds.md):
    # quantify's default when present, since densities per class are what it reports
    class_thresholds: dict | None = None
    source: dict = field(default_factory=dict)  # where it came from (study, run id, validation headline)
    versions: dict = field(default_factory=dict)  # package versions and git revision that made it

    def to_dict(self) -> dict:
        d = asdict(self)
        d["classes"] = self.classes.to_dict()
        if self.class_thresholds is not None:
            d["class_thresholds"] = {str(k): v for k, v in self.class_thresholds.items()}
        return {"format": CARD_FORMAT, "version": CARD_VERSION, **d}

    @classmethod
    def from_dict(cls, d: dict, where: str) -> "ModelCard":
        if not isinstance(d, dict) or d.get("format") != CARD_FORMAT:
            raise ValueError(f"{where}: not a tem_lib model card (format {d.get('format')!r} if it is a dict)")
        if int(d.get("version", 0)) > CARD_VERSION:
            raise ValueError(f"{where}: model card version {d['version']} is newer than this tem_lib reads "
                             f"({CARD_VERSION}); update tem_lib")
        known = set(cls.__dataclass_fields__)
        missing = {"classes", "tile", "score_threshold"} - set(d)
        if missing:
            raise ValueError(f"{where}: model card lacks {sorted(missing)}")
        kw = {k: v for k, v in d.items() if k in known}
        kw["classes"] = ClassSet.from_dict(d["classes"], where)
        if kw.get("class_thresholds") is not None:
            ct = kw["class_thresholds"]
            if not isinstance(ct, dict):
                raise ValueError(f"{where}: class_thresholds must map class ids to thresholds, got {ct!r}")
            try:
                ct = {int(k): float(v) for k, v in ct.items()}
            except (TypeError, ValueError):
                raise ValueError(f"{where}: class_thresholds must map class ids to thresholds, got {ct!r}") from None
            if sorted(ct) != sorted(kw["classes"].ids) or not all(0 <= v <= 1 for v in ct.values()):
                raise ValueError(f"{where}: class_thresholds {ct} must give every class id "
                                 f"{list(kw['classes'].ids)} a threshold in [0, 1]")
            kw["class_thresholds"] = ct
        card = cls(**kw)
        if not (isinstance(card.tile, int) and card.tile >= 32):
            raise ValueError(f"{where}: tile must be an integer >= 32 px, got {card.tile!r}")
        if not 0 <= float(card.score_threshold) <= 1:
            raise ValueError(f"{where}: score_threshold must be in [0, 1], got {card.score_threshold!r}")
        if card.nm_per_px is not None and not (np.isfinite(card.nm_per_px) and card.nm_per_px > 0):
            raise ValueError(f"{where}: nm_per_px must be a positive number or null, got {card.nm_per_px!r}")
        return card


def export_model(detector_dir, out_dir, classes: ClassSet, tile: int, nm_per_px: float | None,
                 score_threshold: float, threshold_source: str, source: dict | None = None,
                 class_thresholds: dict | None = None) -> Path:
    """A model folder (weights, ``detector.json``, card) in ``out_dir`` from a detector folder
    saved by :func:`tem_lib.detection.train_detector`; written whole or not at all."""
    from .utils import atomic_dir
    detector_dir, out_dir = Path(detector_dir), Path(out_dir)
    meta_path, weights = detector_dir / DETECTOR_META, detector_dir / WEIGHTS
    for p in (meta_path, weights):
        if not p.is_file():
            raise FileNotFoundError(f"{p}: not found; {detector_dir} is not a finished tem_lib detector")
    meta = read_json(meta_path)
    if list(meta.get("class_ids", [])) != list(classes.ids):
        raise ValueError(f"{meta_path}: the detector was trained for class ids {meta.get('class_ids')}, "
                         f"the class set {classes.name!r} has {list(classes.ids)}")
    card = ModelCard(classes=classes, tile=int(tile), nm_per_px=None if nm_per_px is None else float(nm_per_px),
                     score_threshold=float(score_threshold), threshold_source=threshold_source,
                     class_agnostic=bool(meta.get("detector", {}).get("class_agnostic_nms", True)),
                     class_thresholds=None if class_thresholds is None else {int(k): float(v)
                                                                             for k, v in class_thresholds.items()},
                     source=source or {},
                     versions={k: meta[k] for k in ("versions", "git") if k in meta} or provenance())
    with atomic_dir(out_dir) as tmp:
        try:
            (tmp / WEIGHTS).hardlink_to(weights)
        except OSError:  # another file system, or no hard links: a copy
            shutil.copy2(weights, tmp / WEIGHTS)
        shutil.copy2(meta_path, tmp / DETECTOR_META)
        write_json(tmp / CARD, card.to_dict())
    return out_dir


def read_card(model_dir) -> ModelCard:
    """The card of a model folder (``FileNotFoundError``/``ValueError`` naming it if none)."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise FileNotFoundError(f"{model_dir}: model folder not found")
    card_path = model_dir / CARD
    if not card_path.is_file():
        hint = (" (a detector folder of a run: export it with tem_lib.quantify.export_model, or use the study's "
                "models/best)") if (model_dir / DETECTOR_META).is_file() else ""
        raise FileNotFoundError(f"{model_dir}: no {CARD}; not a tem_lib model folder{hint}")
    return ModelCard.from_dict(read_json(card_path), str(card_path))


def load_model(model_dir, device="cpu"):
    """``(model, card)`` of a model folder, on ``device`` (CPU or GPU, whatever it trained
    on). A folder that is not a model folder, or whose card and weights disagree, raises a
    ``ValueError``/``FileNotFoundError`` naming it."""
    from .detection.train import load_detector
    model_dir = Path(model_dir)
    card = read_card(model_dir)
    meta = read_json(model_dir / DETECTOR_META) if (model_dir / DETECTOR_META).is_file() else {}
    if list(meta.get("class_ids", [])) != list(card.classes.ids):
        raise ValueError(f"{model_dir}: the card's classes {list(card.classes.ids)} do not match the detector's "
                         f"{meta.get('class_ids')} (detector.json); the folder mixes two models")
    return load_detector(model_dir, device), card


# ----------------------------------------------------------------------------- sliced inference
def tile_boxes(height: int, width: int, tile: int, overlap: float) -> list[tuple[int, int, int, int]]:
    """(x1, y1, x2, y2) of overlapping tiles covering the image (sahi's slicing); tiles at the
    right and bottom edges are shifted inwards so every tile is whole when the image is."""
    from sahi.slicing import get_slice_bboxes
    if not 0 <= overlap < 1:
        raise ValueError(f"overlap must be in [0, 1), got {overlap}")
    if height <= tile and width <= tile:
        return [(0, 0, width, height)]
    boxes = get_slice_bboxes(image_height=height, image_width=width, slice_height=min(tile, height),
                             slice_width=min(tile, width), auto_slice_resolution=False,
                             overlap_height_ratio=overlap, overlap_width_ratio=overlap)
    return [tuple(int(v) for v in b) for b in boxes]


def model_predictor(model, device="cpu", batch_size: int = 4):
    """``predict(tiles, offsets) -> [Detections]`` of a detector (offsets are not needed by a
    detector; stand-ins for tests use them)."""
    from .detection.engine import evaluate

    def predict(tiles, offsets):
        return evaluate(model, tiles, device, batch_size=batch_size, progress=False)
    return predict


def _ios(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over the smaller box area, box ``a`` [4] against boxes ``b`` [n, 4]."""
    ix = np.clip(np.minimum(a[2], b[:, 2]) - np.maximum(a[0], b[:, 0]), 0, None)
    iy = np.clip(np.minimum(a[3], b[:, 3]) - np.maximum(a[1], b[:, 1]), 0, None)
    area = lambda x: np.clip(x[..., 2] - x[..., 0], 0, None) * np.clip(x[..., 3] - x[..., 1], 0, None)  # noqa: E731
    return ix * iy / np.maximum(np.minimum(area(a), area(b)), 1e-9)


def merge_tiles(parts: list[tuple[int, Detections, tuple[int, int]]], shape, name: str,
                match_threshold: float = 0.5, class_agnostic: bool = True) -> Detections:
    """One :class:`Detections` for the whole image from per-tile detections ``(tile index,
    detections, (x0, y0) of the tile)``: detections of different tiles whose boxes overlap by
    ``match_threshold`` of the smaller one (IoS) are one defect (the best-scoring keeps its
    class and score; masks and boxes are united, and the united box is matched again, so the
    pieces of a defect that no tile saw whole come together); detections of one tile are never
    merged (the detector's own NMS has already decided between them)."""
    boxes, labels, scores, tiles, insts = [], [], [], [], []
    for t, det, (x0, y0) in parts:
        for k in range(len(det)):
            boxes.append(det.boxes[k] + [x0, y0, x0, y0])
            labels.append(int(det.labels[k]))
            scores.append(float(det.scores[k]))
            tiles.append(t)
            i = det.instances[k] if det.instances is not None else None
            insts.append(None if i is None else Instance(i.mask, i.x0 + x0, i.y0 + y0, i.category_id))
    n = len(boxes)
    if n == 0:
        return Detections(np.zeros((0, 4)), [], [], tuple(shape), name, [])
    boxes, labels, scores, tiles = np.array(boxes, float), np.array(labels), np.array(scores), np.array(tiles)
    alive = np.ones(n, bool)
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    out_b, out_l, out_s, out_i = [], [], [], []
    for i in np.lexsort((-area, -scores)):  # best score first; among equals the most complete view
        if not alive[i]:
            continue
        group, box = [i], boxes[i].copy()
        alive[i] = False
        while True:  # grow the defect: pieces of other tiles overlapping what it has become
            cand = np.nonzero(alive & ~np.isin(tiles, tiles[group]) & (class_agnostic | (labels == labels[i])))[0]
            if not len(cand):
                break
            ios = _ios(box, boxes[cand])
            hit = ios >= match_threshold
            if not hit.any():
                break
            cand, ios = cand[hit], ios[hit]
            iou = box_iou(box[None], boxes[cand])[0]
            best = {}  # at most one detection per other tile: the one overlapping most
            for j, v, u in zip(cand, ios, iou):
                if tiles[j] not in best or (v, u) > best[tiles[j]][1:]:
                    best[tiles[j]] = (j, v, u)
            new = [j for j, _, _ in best.values()]
            group += new
            alive[new] = False
            b = boxes[group]
            box = np.array([b[:, 0].min(), b[:, 1].min(), b[:, 2].max(), b[:, 3].max()])
        out_b.append(box)
        out_l.append(labels[i])
        out_s.append(scores[i])
        out_i.append(_union([insts[j] for j in group], labels[i]))
    has_masks = all(m is not None for m in out_i)
    return Detections(np.array(out_b), out_l, out_s, tuple(shape), name, out_i if has_masks else None)


def _union(instances: list, label: int):
    if any(i is None for i in instances):
        return None
    if len(instances) == 1:
        i = instances[0]
        return Instance(i.mask, i.x0, i.y0, int(label))
    x0 = min(i.x0 for i in instances)
    y0 = min(i.y0 for i in instances)
    x1 = max(i.x0 + i.mask.shape[1] for i in instances)
    y1 = max(i.y0 + i.mask.shape[0] for i in instances)
    m = np.zeros((y1 - y0, x1 - x0), bool)
    for i in instances:
        m[i.y0 - y0:i.y0 - y0 + i.mask.shape[0], i.x0 - x0:i.x0 - x0 + i.mask.shape[1]] |= i.mask
    return Instance(m, x0, y0, int(label))


def sliced_predict(image: np.ndarray, predict, tile: int, name: str = "image", overlap: float = 0.25,
                   match_threshold: float = 0.5, class_agnostic: bool = True, batch_size: int = 4,
                   progress: bool = False) -> Detections:
    """The detections of a whole image of any size: ``predict(tiles, offsets)`` on overlapping
    ``tile`` x ``tile`` tiles, merged across tiles (:func:`merge_tiles`)."""
    from tqdm import tqdm
    H, W = image.shape
    boxes = tile_boxes(H, W, tile, overlap)
    parts = []
    bar = tqdm(total=len(boxes), desc=f"{name}: tiles", disable=not progress, leave=False, mininterval=1.0)
    for k in range(0, len(boxes), batch_size):
        chunk = boxes[k:k + batch_size]
        tiles = [np.ascontiguousarray(image[y1:y2, x1:x2]) for x1, y1, x2, y2 in chunk]
        offsets = [(x1, y1) for x1, y1, _, _ in chunk]
        for t, (det, off) in enumerate(zip(predict(tiles, offsets), offsets)):
            parts.append((k + t, det, off))
        bar.update(len(chunk))
    bar.close()
    return merge_tiles(parts, (H, W), name, match_threshold, class_agnostic)


def rescale_detections(det: Detections, factor: float, shape) -> Detections:
    """``det`` in the pixels of an image ``factor`` times as large (``shape``): boxes scaled,
    masks resampled (nearest neighbour; at least one pixel each)."""
    from skimage.transform import resize
    insts = None
    if det.instances is not None:
        insts = []
        for i in det.instances:
            x0, y0 = int(np.floor(i.x0 * factor)), int(np.floor(i.y0 * factor))
            h = max(1, min(int(round(i.mask.shape[0] * factor)), shape[0] - y0))
            w = max(1, min(int(round(i.mask.shape[1] * factor)), shape[1] - x0))
            m = resize(i.mask.astype(float), (h, w), order=0, anti_aliasing=False) > 0.5
            if not m.any():
                m[h // 2, w // 2] = True
            insts.append(Instance(m, x0, y0, i.category_id))
    return Detections(det.boxes * factor, det.labels, det.scores, tuple(shape), det.name, insts)


# ----------------------------------------------------------------------------- measurements
DEFECT_COLUMNS = ["image", "class", "class_id", "score", "cx_px", "cy_px", "major_px", "minor_px", "area_px",
                  "angle_deg", "cx_nm", "cy_nm", "major_nm", "minor_nm", "area_nm2", "nm_per_px", "edge"]


def defect_table(det: Detections, classes: ClassSet, nm_per_px: float | None) -> pd.DataFrame:
    """One row per detected defect of one image (moment-ellipse geometry of its mask, as for
    labels: :func:`tem_lib.stats.instance_table`)."""
    from .stats import instance_table
    if det.instances is None:
        raise ValueError(f"{det.name}: the detector gives no masks; sizes need masks")
    tab = instance_table([det.to_sample()])
    nm = nm_per_px if nm_per_px else np.nan
    out = pd.DataFrame({
        "image": det.name, "class": [classes.display(c) for c in tab.class_id], "class_id": tab.class_id,
        "score": det.scores, "cx_px": tab.cx, "cy_px": tab.cy, "major_px": tab.major, "minor_px": tab.minor,
        "area_px": tab.area, "angle_deg": tab.angle})
    out["cx_nm"], out["cy_nm"] = out.cx_px * nm, out.cy_px * nm
    out["major_nm"], out["minor_nm"], out["area_nm2"] = out.major_px * nm, out.minor_px * nm, out.area_px * nm * nm
    out["nm_per_px"] = nm
    out["edge"] = tab.edge.to_numpy()
    return out[DEFECT_COLUMNS]


def poisson_interval(count: int, level: float = 0.95) -> tuple[float, float]:
    """Exact (Garwood) interval of a Poisson mean from one ``count``."""
    from scipy.stats import chi2
    a = 1 - level
    lo = 0.0 if count == 0 else chi2.ppf(a / 2, 2 * count) / 2
    return float(lo), float(chi2.ppf(1 - a / 2, 2 * count + 2) / 2)


def summary_table(defects: pd.DataFrame, images: pd.DataFrame, classes: ClassSet, n_boot: int = 1000,
                  seed: int = 0) -> pd.DataFrame:
    """Per image and class, and over all images (``image == "all"``): count, areal density
    (per µm², or per megapixel without a pixel size) with a 95 % Poisson interval, and the
    major axis (nm, or px) mean with a 95 % bootstrap interval over defects, median and quartiles.
    ``images``: one row per image with ``image``, ``height_px``, ``width_px``, ``nm_per_px``."""
    rng = np.random.default_rng(derive_seed(seed, Stream.SIZE_BOOTSTRAP))
    known = images["nm_per_px"].notna().all() and len(images)
    size_col, unit_size = ("major_nm", "nm") if known else ("major_px", "px")
    rows = []
    groups = [(r.image, [r.image]) for r in images.itertuples()] + [("all", list(images.image))]
    for image, names in groups:
        im = images[images.image.isin(names)]
        area = float((im.height_px * im.width_px * ((im.nm_per_px / 1000) ** 2 if known else 1e-6)).sum())
        for c in classes:
            d = defects[defects.image.isin(names) & (defects.class_id == c.id)][size_col].to_numpy()
            lo, hi = poisson_interval(len(d))
            if len(d):
                boot = rng.choice(d, size=(n_boot, len(d)), replace=True).mean(1)
                m_lo, m_hi = np.quantile(boot, [0.025, 0.975])
            else:
                m_lo = m_hi = np.nan
            q = np.quantile(d, [0.25, 0.5, 0.75]) if len(d) else [np.nan] * 3
            rows.append({"image": image, "class": c.display, "class_id": c.id, "count": len(d),
                         "area": area, "area_unit": "um2" if known else "Mpx",
                         "density": len(d) / area, "density_ci_low": lo / area, "density_ci_high": hi / area,
                         "size_mean": float(d.mean()) if len(d) else np.nan, "size_mean_ci_low": m_lo,
                         "size_mean_ci_high": m_hi, "size_q25": q[0], "size_median": q[1], "size_q75": q[2],
                         "size": f"major axis ({unit_size})"})
    return pd.DataFrame(rows)


def comparison_table(truth: list[Sample], predictions: list[Detections], classes: ClassSet) -> pd.DataFrame:
    """Per class (and the paper's F1s over all classes): true and predicted counts, densities
    and mean sizes with their relative errors, (predicted - true) / true, on labelled images."""
    from .metrics.detection import evaluate_detections, size_density_table
    sizes = size_density_table(truth, predictions, classes)
    report = evaluate_detections(truth, predictions, iou_thresholds=(0.5,), classes=classes)
    t = report.table.iloc[0]
    f1s = {k: float(t[k]) for k in ("det_f1", "cls_f1", "harmonic")}
    per_class = {f"f1_{c.name}": float(t[f"f1_{c.name}"]) for c in classes if f"f1_{c.name}" in t}
    # the class's classification F1 among the defects found (NaN: none of it found)
    sizes["class_f1_iou0.5"] = [per_class.get(f"f1_{classes[c].name}", np.nan) for c in sizes.class_id]
    return sizes.assign(**{f"{k}_iou0.5": v for k, v in f1s.items()})


# ----------------------------------------------------------------------------- overlays and COCO
def overlay(image: np.ndarray, det: Detections, classes: ClassSet, path, title: str = "") -> None:
    """The micrograph with each detected defect's outline in its class colour and a legend."""
    import matplotlib
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch
    from scipy import ndimage
    rgb = np.repeat(np.clip(image, 0, 1)[..., None], 3, axis=2)
    for inst in det.instances or []:
        m = inst.mask
        edge = m & ~ndimage.binary_erosion(m)
        ys, xs = np.nonzero(edge)
        rgb[ys + inst.y0, xs + inst.x0] = matplotlib.colors.to_rgb(classes.color(inst.category_id))
    H, W = image.shape
    scale = min(1.0, 12.0 / max(H / 100, W / 100))  # at most 12 inches a side at 100 dpi
    fig, ax = plt.subplots(figsize=(W / 100 * scale, H / 100 * scale + 0.5), dpi=100)
    ax.imshow(rgb, interpolation="nearest")
    ax.set_axis_off()
    counts = pd.Series(det.labels).value_counts()
    ax.legend(handles=[Patch(color=c.color, label=f"{c.display} ({int(counts.get(c.id, 0))})") for c in classes],
              loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=len(classes), frameon=False, fontsize=8)
    ax.set_title(title or det.name, fontsize=9)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def coco_predictions(predictions: list[Detections], classes: ClassSet, images: pd.DataFrame) -> dict:
    """A COCO file (images, categories, annotations with RLE masks and a ``score``)."""
    from .data.io import encode_rle
    out_images, anns = [], []
    for k, (det, im) in enumerate(zip(predictions, images.itertuples()), start=1):
        out_images.append({"id": k, "file_name": im.file, "height": int(det.shape[0]), "width": int(det.shape[1]),
                           **({"nm_per_px": float(im.nm_per_px)} if pd.notna(im.nm_per_px) else {})})
        for j in range(len(det)):
            x1, y1, x2, y2 = (float(v) for v in det.boxes[j])
            ann = {"id": len(anns) + 1, "image_id": k, "category_id": int(det.labels[j]),
                   "bbox": [x1, y1, x2 - x1, y2 - y1], "score": round(float(det.scores[j]), 5), "iscrowd": 0}
            if det.instances is not None:
                inst = det.instances[j]
                ann["segmentation"] = encode_rle(inst.full_mask(det.shape))
                ann["area"] = int(inst.area)
            anns.append(ann)
    return {"images": out_images, "annotations": anns, "categories": classes.coco_categories(),
            "info": {"description": "tem_lib.quantify predictions", **provenance()}}


# ----------------------------------------------------------------------------- the command
@dataclass
class QuantifyResult:
    out_dir: Path
    defects: pd.DataFrame
    summary: pd.DataFrame
    images: pd.DataFrame
    predictions: list[Detections]
    comparison: pd.DataFrame | None
    card: ModelCard
    seconds: float

    def overlay_path(self, image: str) -> Path:
        """The overlay PNG of ``image`` (its name as in ``images``)."""
        return overlay_path(self.out_dir, image)


def overlay_path(out_dir, image: str) -> Path:
    return Path(out_dir) / "overlays" / f"{image}.png"


def collect_inputs(inputs, nm_per_px: float | None = None,
                   classes: ClassSet | None = None) -> tuple[list[dict], ClassSet | None]:
    """Every image to quantify: ``{"path", "name", "image", "nm_per_px", "truth"}``. A folder
    that is a labelled dataset (tem_lib.data.load_dataset, read with the model's ``classes``:
    COCO and YOLO files must declare the same, ImageJ codes and gray levels are mapped with
    them) brings its labels; any other folder is read for images; files are images. Pixel
    size: ``nm_per_px`` if given, else the file's metadata (microscope files, calibrated
    TIFFs) or the dataset's."""
    from .data.images import list_images, read_image_with_scale
    from .data.io import check_pixel_size, detect_format, load_dataset
    if nm_per_px is not None:
        nm_per_px = check_pixel_size(nm_per_px, "--nm-per-px")
    items, data_classes = [], None
    for inp in inputs:
        inp = Path(inp)
        if inp.is_dir():
            try:
                detect_format(inp)
                labelled = True
            except ValueError:
                labelled = False
            if labelled:
                ds = load_dataset(inp, nm_per_px=nm_per_px, classes=classes)
                data_classes = ds.classes
                for s in ds:  # the readers record the file each image came from
                    items.append({"path": Path(s.meta.get("file", inp / s.name)), "name": s.name, "image": s.image,
                                  "nm_per_px": s.nm_per_px, "truth": s})
                continue
            files = list_images(inp)  # none: ValueError naming the folder
        elif inp.is_file():
            files = [inp]
        else:
            raise FileNotFoundError(f"{inp}: no such image or folder")
        for f in files:
            image, scale = read_image_with_scale(f)
            items.append({"path": f, "name": f.stem, "image": image, "nm_per_px": nm_per_px or scale, "truth": None})
    names = [i["name"] for i in items]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"two inputs share the image name(s) {dup[:5]}; outputs are named by image: rename them")
    if not items:
        raise ValueError("no images to quantify")
    return items, data_classes


def quantify(model_dir, inputs, out_dir, nm_per_px: float | None = None, score: float | None = None,
             device="cpu", overlap: float = 0.25, match_threshold: float = 0.5, n_boot: int = 1000, seed: int = 0,
             overlays: bool = True, progress: bool = True, predict=None, per_class: bool = True) -> QuantifyResult:
    """Quantify the defects of every image in ``inputs`` (files, image folders, labelled
    dataset folders) with the model folder ``model_dir``; write the outputs listed in the module
    docstring to ``out_dir`` and return them. ``score``: one score threshold for every class
    (default: the model's per-class thresholds, chosen on its validation crops so each class keeps
    as many detections as it has labelled defects, or with ``per_class=False`` its single one).
    ``predict``: a stand-in for the detector, ``predict(tiles, offsets) -> [Detections]``
    (tests); its card is still read from ``model_dir``."""
    card = read_card(model_dir)
    items, data_classes = collect_inputs(inputs, nm_per_px, card.classes)
    return _quantify(model_dir, card, items, data_classes, out_dir, score, device, overlap, match_threshold, n_boot,
                     seed, overlays, progress, predict, per_class)


def quantify_samples(model_dir, samples: list[Sample], out_dir, classes: ClassSet | None = None,
                     score: float | None = None, device="cpu", overlap: float = 0.25, match_threshold: float = 0.5,
                     n_boot: int = 1000, seed: int = 0, overlays: bool = True, progress: bool = True, predict=None,
                     per_class: bool = True) -> QuantifyResult:
    """:func:`quantify` on micrographs in memory (e.g. ``ws.test_micrographs(split)``); with
    ``classes`` (the samples' class set) their labels are compared with the detections."""
    items = [{"path": s.name, "name": s.name, "image": s.image, "nm_per_px": s.nm_per_px,
              "truth": s if classes is not None else None} for s in samples]
    if not items:
        raise ValueError("no micrographs to quantify")
    return _quantify(model_dir, read_card(model_dir), items, classes, out_dir, score, device, overlap,
                     match_threshold, n_boot, seed, overlays, progress, predict, per_class)


def card_thresholds(card: ModelCard, score: float | None = None, per_class: bool = True) -> dict:
    """``{class_id: threshold}`` quantify keeps detections at: ``score`` for every class if
    given, else the card's per-class thresholds (``per_class`` and the card has them), else its
    single one."""
    if score is not None:
        if not 0 <= float(score) <= 1:
            raise ValueError(f"score threshold must be in [0, 1], got {score}")
        return dict.fromkeys(card.classes.ids, float(score))
    if per_class and card.class_thresholds:
        return dict(card.class_thresholds)
    return dict.fromkeys(card.classes.ids, float(card.score_threshold))


def _describe(thresholds: dict, classes: ClassSet) -> str:
    values = set(thresholds.values())
    if len(values) == 1:
        return f"score >= {values.pop():g}"
    return "score >= " + ", ".join(f"{thresholds[c.id]:g} ({c.display})" for c in classes)


def _quantify(model_dir, card, items, data_classes, out_dir, score, device, overlap, match_threshold, n_boot, seed,
              overlays, progress, predict, per_class) -> QuantifyResult:
    from skimage.transform import rescale
    from tqdm import tqdm
    t0 = time.perf_counter()
    out_dir = Path(out_dir)
    thresholds = card_thresholds(card, score, per_class)
    if predict is None:
        model, _ = load_model(model_dir, device)
        low = min(thresholds.values())
        if low < model.roi_heads.score_thresh:  # the detector's own cut-off is above the one asked for
            model.roi_heads.score_thresh = low
        predict = model_predictor(model, device)
    classes = card.classes
    if data_classes is not None and not data_classes.matches(classes):
        raise ValueError(f"the labelled inputs have classes {list(zip(data_classes.ids, data_classes.names))}, the "
                         f"model {list(zip(classes.ids, classes.names))}; compare like with like")
    for it in items:  # to the model's pixel size (within 5 %: as it is)
        nm = it["nm_per_px"]
        it["scale"] = nm / card.nm_per_px if nm and card.nm_per_px and abs(nm / card.nm_per_px - 1) > 0.05 else 1.0
    preds, defects, image_rows, truths = [], [], [], []
    for it in tqdm(items, desc="micrographs", disable=not progress):
        image, nm, scale = it["image"], it["nm_per_px"], it["scale"]
        if scale != 1:
            image = rescale(image, scale, order=1, anti_aliasing=scale < 1, preserve_range=True).astype(np.float32)
        det = sliced_predict(image, predict, card.tile, it["name"], overlap, match_threshold, card.class_agnostic,
                             progress=progress).above_class_thresholds(thresholds)
        if scale != 1:  # back to the micrograph's own pixels
            det = rescale_detections(det, 1 / scale, it["image"].shape)
        preds.append(det)
        defects.append(defect_table(det, classes, nm))
        image_rows.append({"image": it["name"], "file": str(it["path"]), "height_px": it["image"].shape[0],
                           "width_px": it["image"].shape[1], "nm_per_px": nm if nm else np.nan,
                           "model_scale": scale, "n_tiles": len(tile_boxes(*image.shape, card.tile, overlap))})
        if it["truth"] is not None:
            truths.append((it["truth"], det))
        if overlays:
            overlay(it["image"], det, classes, overlay_path(out_dir, it["name"]),
                    title=f"{it['name']}: {len(det)} defects, {_describe(thresholds, classes)}"
                          + (f" (detected at x{scale:.2f}, the model's pixel size)" if scale != 1 else ""))
    images = pd.DataFrame(image_rows)
    defects = pd.concat(defects, ignore_index=True) if defects else pd.DataFrame(columns=DEFECT_COLUMNS)
    summary = summary_table(defects, images, classes, n_boot, seed)
    comparison = None
    if truths:
        comparison = comparison_table([t for t, _ in truths], [d for _, d in truths], classes)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_text(out_dir / "defects.csv", defects.to_csv(index=False))
    write_text(out_dir / "summary.csv", summary.to_csv(index=False))
    write_text(out_dir / "images.csv", images.to_csv(index=False))
    write_json(out_dir / "predictions_coco.json", coco_predictions(preds, classes, images))
    if comparison is not None:
        write_text(out_dir / "comparison.csv", comparison.to_csv(index=False))
    seconds = time.perf_counter() - t0
    write_json(out_dir / "run.json", {"model": str(model_dir), "thresholds": {str(k): v for k, v in thresholds.items()},
                                      "overlap": overlap,
                                      "match_threshold": match_threshold, "tile": card.tile,
                                      "n_images": len(items), "n_defects": int(len(defects)),
                                      "seconds": round(seconds, 2), "device": str(device), **provenance()})
    return QuantifyResult(out_dir, defects, summary, images, preds, comparison, card, seconds)


def _main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tem_lib.quantify", description=__doc__.split("\n\n")[0])
    ap.add_argument("model", help="a model folder (the study's WORK_DIR/models/best, or tem_lib.quantify.export_model)")
    ap.add_argument("inputs", nargs="+", help="micrographs (PNG, TIFF, DM3/DM4, EMD, SER), folders of them, or "
                                              "labelled dataset folders (then compared with the labels)")
    ap.add_argument("--out", required=True, help="output folder")
    ap.add_argument("--nm-per-px", type=float, default=None, help="pixel size (default: from each file or dataset)")
    ap.add_argument("--score", type=float, default=None, help="one score threshold for every class (default: the "
                                                              "model's per-class ones, chosen on its validation crops)")
    ap.add_argument("--single-threshold", action="store_true",
                    help="the model's single threshold (best headline on validation) instead of its per-class ones")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--overlap", type=float, default=0.25, help="tile overlap, fraction of the tile (default 0.25)")
    ap.add_argument("--no-overlays", action="store_true")
    args = ap.parse_args(argv)
    from .utils import get_device
    try:
        res = quantify(args.model, args.inputs, args.out, args.nm_per_px, args.score, get_device(args.device),
                       args.overlap, overlays=not args.no_overlays, per_class=not args.single_threshold)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    allrows = res.summary[res.summary.image == "all"]
    print(allrows[["class", "count", "density", "density_ci_low", "density_ci_high", "size_mean", "size_median"]]
          .round(4).to_string(index=False))
    print(f"{len(res.images)} images, {len(res.defects)} defects in {res.seconds:.1f} s -> {res.out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(_main())
