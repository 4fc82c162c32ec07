"""The quantify run: inputs collected, every micrograph detected, measured and written."""
from __future__ import annotations

import os
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..classes import ClassSet
from ..data.sample import Sample
from ..layout import QUANTIFY_RECORD
from ..metrics.detection import Detections
from ..utils import atomic_dir, provenance, write_json, write_text
from .calibration import add_calibrated
from .card import ModelCard, read_card
from .detect import detect_item, make_predictor, n_tiles
from .measure import DEFECT_COLUMNS, comparison_table, confusion_table, defect_table, summary_table
from .outputs import coco_predictions, overlay, overlay_path

RUN_RECORD = QUANTIFY_RECORD  # what a quantify output folder holds: options, thresholds, the files it wrote


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
    confusion: pd.DataFrame | None = None  # labelled inputs: true class x detected class, misses and extras

    def overlay_path(self, image: str) -> Path:
        """The overlay PNG of ``image`` (its name as in ``images``)."""
        return overlay_path(self.out_dir, image)


def collect_inputs(inputs, nm_per_px: float | None = None,
                   classes: ClassSet | None = None) -> tuple[list[dict], ClassSet | None]:
    """Every image to quantify: ``{"path", "name", "image", "nm_per_px", "truth"}``. A folder
    that is a labelled dataset (tem_lib.data.load_dataset, read with the model's ``classes``:
    COCO and YOLO files must declare the same, ImageJ codes and gray levels are mapped with
    them) brings its labels; any other folder is read for images; files are images. Pixel
    size: ``nm_per_px`` if given, else the file's metadata (microscope files, calibrated
    TIFFs) or the dataset's."""
    from ..data.images import list_images, read_image_with_scale
    from ..data.io import check_pixel_size, detect_format, load_dataset
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


@dataclass
class QuantifyOptions:
    """How quantify runs (every field a keyword of :func:`quantify`)."""
    score: float | None = None  # one threshold for every class (None: the card's, see card_thresholds)
    per_class: bool = True  # the card's per-class thresholds when it has them (else its single one)
    calibrate: bool | None = None  # calibrated counts beside the raw ones (None: when the card has a calibration)
    device: str = "cpu"
    overlap: float = 0.25  # tile overlap, fraction of the tile
    match_threshold: float = 0.5  # IoS at which detections of two tiles are one defect
    n_boot: int = 1000  # bootstrap draws of the intervals
    seed: int = 0
    overlays: bool = True
    progress: bool = True
    max_megapixels: float = 256.0  # refuse a micrograph larger than this at the model's pixel size
    max_scale: float = 8.0  # refuse a pixel size this many times off the model's (or 1 / this)
    tta_views: int | None = None  # symmetries of the square per tile (None: the card's, which its thresholds fit)


def quantify(model_dir, inputs, out_dir, nm_per_px: float | None = None, predict=None, **options) -> QuantifyResult:
    """Quantify the defects of every image in ``inputs`` (files, image folders, labelled
    dataset folders) with the model folder ``model_dir``; write the outputs listed in the package
    docstring to ``out_dir`` and return them. ``options``: :class:`QuantifyOptions` (``score``:
    one score threshold for every class; default the model's per-class thresholds, chosen on its
    validation crops so each class keeps as many detections as it has labelled defects, or with
    ``per_class=False`` its single one). ``predict``: a stand-in for the detector,
    ``predict(tiles, offsets) -> [Detections]`` (tests); its card is still read from ``model_dir``."""
    card = read_card(model_dir)
    opts = QuantifyOptions(**options)
    items, data_classes = collect_inputs(inputs, nm_per_px, card.classes)
    return _quantify(model_dir, card, items, data_classes, out_dir, opts, predict)


def quantify_samples(model_dir, samples: list[Sample], out_dir, classes: ClassSet | None = None, predict=None,
                     **options) -> QuantifyResult:
    """:func:`quantify` on micrographs in memory (e.g. ``ws.test_micrographs(split)``); with
    ``classes`` (the samples' class set) their labels are compared with the detections."""
    opts = QuantifyOptions(**options)
    items = [{"path": s.name, "name": s.name, "image": s.image, "nm_per_px": s.nm_per_px,
              "truth": s if classes is not None else None} for s in samples]
    if not items:
        raise ValueError("no micrographs to quantify")
    return _quantify(model_dir, read_card(model_dir), items, classes, out_dir, opts, predict)


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


def check_out_dir(out_dir: Path) -> None:
    """``out_dir`` must be new, empty, or an earlier quantify output (which the run replaces
    whole); anything else (a file, a folder of other files) is refused before any work."""
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"{out_dir}: --out is a file; give a folder (new, or an earlier quantify output)")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not (out_dir / RUN_RECORD).is_file():
        raise ValueError(f"{out_dir}: the folder holds other files and is not a quantify output (no {RUN_RECORD}); "
                         "quantify replaces its output folder whole: give a new or empty folder")
    probe = out_dir.resolve().parent
    while not probe.exists():
        probe = probe.parent
    if not os.access(probe, os.W_OK | os.X_OK):
        raise ValueError(f"{out_dir}: cannot write in {probe} (permission denied)")


def _scales(items, card: ModelCard, opts: QuantifyOptions) -> None:
    """Each item's resize factor to the model's pixel size (within 5 %: as it is), refused when
    it is implausible or the resized micrograph would not fit in memory."""
    for it in items:
        nm = it["nm_per_px"]
        it["scale"] = nm / card.nm_per_px if nm and card.nm_per_px and abs(nm / card.nm_per_px - 1) > 0.05 else 1.0
        s = it["scale"]
        if not 1 / opts.max_scale <= s <= opts.max_scale:
            raise ValueError(f"{it['path']}: pixel size {nm:g} nm/px is {s:.3g} times the model's {card.nm_per_px:g}; "
                             f"a factor beyond {opts.max_scale:g} is almost always a unit mistake (um or pm given as "
                             "nm, or a wrong --nm-per-px); check the pixel size")
        mpx = it["image"].shape[0] * it["image"].shape[1] * s * s / 1e6
        if mpx > opts.max_megapixels:
            raise ValueError(f"{it['path']}: {it['image'].shape[1]} x {it['image'].shape[0]} px at x{s:.3g} is "
                             f"{mpx:.0f} megapixels to detect on, over the limit of {opts.max_megapixels:g} "
                             "(max_megapixels); crop it or check the pixel size")


def _quantify(model_dir, card, items, data_classes, out_dir, opts: QuantifyOptions, predict) -> QuantifyResult:
    from tqdm import tqdm
    t0 = time.perf_counter()
    out_dir = Path(out_dir)
    check_out_dir(out_dir)
    thresholds = card_thresholds(card, opts.score, opts.per_class)
    classes = card.classes
    if data_classes is not None and not data_classes.matches(classes):
        raise ValueError(f"the labelled inputs have classes {list(zip(data_classes.ids, data_classes.names))}, the "
                         f"model {list(zip(classes.ids, classes.names))}; compare like with like")
    calibration = card.calibration if opts.calibrate is not False else None
    if opts.calibrate and calibration is None:
        raise ValueError(f"{model_dir}: calibrated counts asked for, but the model card has no count calibration "
                         "(export the model with one, or quantify without calibration)")
    if calibration is not None and calibration.thresholds is not None and calibration.thresholds != thresholds:
        if opts.calibrate:  # measured at other thresholds: its rates do not hold at these
            raise ValueError(f"{model_dir}: the count calibration was measured at the thresholds "
                             f"{calibration.thresholds}, this run keeps detections at {thresholds}; calibrated "
                             "counts hold only at the calibration's thresholds")
        calibration = None
    _scales(items, card, opts)
    views = card.tta_views if opts.tta_views is None else int(opts.tta_views)
    if views != card.tta_views:
        warnings.warn(f"{model_dir}: predicting in {views} view(s) of each tile, but the card's thresholds"
                      f"{' and calibration' if calibration is not None else ''} were chosen on predictions in "
                      f"{card.tta_views}; scores differ between the two, so counts may be off", stacklevel=3)
        if calibration is not None:
            calibration = None  # its rates were measured on the other predictions
    if predict is None:
        predict = make_predictor(model_dir, card, views, min(thresholds.values()), opts.device)
    with atomic_dir(out_dir) as tmp:  # the whole output set, or nothing (an earlier run's files never stay)
        preds, defects, image_rows, truths = [], [], [], []
        for it in tqdm(items, desc="micrographs", disable=not opts.progress):
            nm, scale = it["nm_per_px"], it["scale"]
            det = detect_item(it, predict, card, opts.overlap, opts.match_threshold, opts.progress
                              ).above_class_thresholds(thresholds)
            preds.append(det)
            defects.append(defect_table(det, classes, nm))
            image_rows.append({"image": it["name"], "file": str(it["path"]), "height_px": it["image"].shape[0],
                               "width_px": it["image"].shape[1], "nm_per_px": nm if nm else np.nan,
                               "model_scale": scale, "n_tiles": n_tiles(it, card, opts.overlap)})
            if it["truth"] is not None:
                truths.append((it["truth"], det))
            if opts.overlays:
                overlay(it["image"], det, classes, overlay_path(tmp, it["name"]),
                        title=f"{it['name']}: {len(det)} defects, {_describe(thresholds, classes)}"
                              + (f" (detected at x{scale:.2f}, the model's pixel size)" if scale != 1 else ""))
        images = pd.DataFrame(image_rows)
        defects = pd.concat(defects, ignore_index=True) if defects else pd.DataFrame(columns=DEFECT_COLUMNS)
        summary = summary_table(defects, images, classes, opts.n_boot, opts.seed)
        if calibration is not None:
            summary = add_calibrated(summary, images, calibration, opts.n_boot, opts.seed)
        comparison = confusion = None
        if truths:
            truth, det = [t for t, _ in truths], [d for _, d in truths]
            comparison = comparison_table(truth, det, classes, summary if calibration is not None else None)
            confusion = confusion_table(truth, det, classes)
            write_text(tmp / "comparison.csv", comparison.to_csv(index=False))
            write_text(tmp / "confusion.csv", confusion.to_csv())
        write_text(tmp / "defects.csv", defects.to_csv(index=False))
        write_text(tmp / "summary.csv", summary.to_csv(index=False))
        write_text(tmp / "images.csv", images.to_csv(index=False))
        write_json(tmp / "predictions_coco.json", coco_predictions(preds, classes, images))
        seconds = time.perf_counter() - t0
        write_json(tmp / RUN_RECORD, {"model": str(model_dir), "thresholds": {str(k): v for k, v in thresholds.items()},
                                      "calibrated": calibration is not None, "tta_views": views,
                                      "options": {**asdict(opts), "device": str(opts.device)},
                                      "tile": card.tile, "n_images": len(items), "n_defects": int(len(defects)),
                                      "files": sorted(str(p.relative_to(tmp)) for p in tmp.rglob("*") if p.is_file())
                                      + [RUN_RECORD],
                                      "seconds": round(seconds, 2), **provenance()})
    return QuantifyResult(out_dir, defects, summary, images, preds, comparison, card, seconds, confusion)
