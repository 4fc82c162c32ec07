"""The portable model folder: a detector's weights, architecture and card (what applying it needs)."""
from __future__ import annotations

import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..classes import ClassSet
from ..layout import DETECTOR_META, MODEL_CARD, WEIGHTS
from ..utils import provenance, read_json, write_json
from .calibration import CountCalibration

CARD = MODEL_CARD
CARD_FORMAT = "tem_lib-detector"
CARD_VERSION = 1


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
    # count calibration measured on the same validation crops (tem_lib.quantify.calibration): expected true
    # counts from detected ones; quantify reports them beside the raw counts when present
    calibration: CountCalibration | None = None
    # symmetries of the square each tile is predicted in (1: none; 4 or 8: test-time augmentation,
    # tem_lib.quantify.tta); the thresholds and the calibration were chosen on predictions made so
    tta_views: int = 1
    tta_view_score: float = 0.05  # with tta_views > 1: each view keeps its detections down to this score

    def to_dict(self) -> dict:
        d = asdict(self)
        d["classes"] = self.classes.to_dict()
        d["calibration"] = None if self.calibration is None else self.calibration.to_dict()
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
        if kw.get("calibration") is not None:
            cal = CountCalibration.from_dict(kw["calibration"], f"{where}: calibration")
            if cal.class_ids != list(kw["classes"].ids):
                raise ValueError(f"{where}: the calibration is for class ids {cal.class_ids}, the card's classes are "
                                 f"{list(kw['classes'].ids)}")
            kw["calibration"] = cal
        card = cls(**kw)
        if card.tta_views not in (1, 2, 4, 8):
            raise ValueError(f"{where}: tta_views must be 1, 2, 4 or 8 symmetries, got {card.tta_views!r}")
        if not (isinstance(card.tta_view_score, (int, float)) and 0 <= card.tta_view_score < 1):
            raise ValueError(f"{where}: tta_view_score must be in [0, 1), got {card.tta_view_score!r}")
        if not (isinstance(card.tile, int) and card.tile >= 32):
            raise ValueError(f"{where}: tile must be an integer >= 32 px, got {card.tile!r}")
        if not 0 <= float(card.score_threshold) <= 1:
            raise ValueError(f"{where}: score_threshold must be in [0, 1], got {card.score_threshold!r}")
        if card.nm_per_px is not None and not (np.isfinite(card.nm_per_px) and card.nm_per_px > 0):
            raise ValueError(f"{where}: nm_per_px must be a positive number or null, got {card.nm_per_px!r}")
        return card


def export_model(detector_dir, out_dir, classes: ClassSet, tile: int, nm_per_px: float | None,
                 score_threshold: float, threshold_source: str, source: dict | None = None,
                 class_thresholds: dict | None = None, calibration: CountCalibration | None = None,
                 tta_views: int = 1, tta_view_score: float = 0.05) -> Path:
    """A model folder (weights, ``detector.json``, card) in ``out_dir`` from a detector folder
    saved by :func:`tem_lib.detection.train_detector`; written whole or not at all."""
    from ..utils import atomic_dir
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
                     source=source or {}, calibration=calibration, tta_views=int(tta_views),
                     tta_view_score=float(tta_view_score),
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
    from ..detection.train import load_detector
    model_dir = Path(model_dir)
    card = read_card(model_dir)
    meta = read_json(model_dir / DETECTOR_META) if (model_dir / DETECTOR_META).is_file() else {}
    if list(meta.get("class_ids", [])) != list(card.classes.ids):
        raise ValueError(f"{model_dir}: the card's classes {list(card.classes.ids)} do not match the detector's "
                         f"{meta.get('class_ids')} (detector.json); the folder mixes two models")
    return load_detector(model_dir, device), card


