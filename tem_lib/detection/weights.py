"""Weights from one detector into another: what transfers between class sets, and where a
detector's starting weights come from when its config names a trained-once source
(``pretrained="foundation"``). A source registers itself here (:func:`register_init_source`,
as :mod:`tem_lib.detection.foundation` does), so training never imports what trains on it.
"""
from __future__ import annotations

from pathlib import Path

from ..layout import DETECTOR_META, WEIGHTS
from ..utils import read_json, stable_hash
from .config import DetectorConfig, to_dict

# the class-specific outputs: everything else transfers to any class set
CLASS_HEADS = ("roi_heads.box_predictor.", "roi_heads.mask_predictor.mask_fcn_logits.")
# The DetectorConfig fields that define the weights (their shapes and meaning); the rest (input
# scale, NMS, sampling, frozen stages, where weights come from) may differ between pretraining
# and fine-tuning.
ARCHITECTURE = ("backbone", "fpn_channels", "representation_size", "mask_head_channels", "norm", "anchor_sizes",
                "aspect_ratios", "image_mean", "image_std")


def _architecture(cfg: DetectorConfig | dict) -> dict:
    d = to_dict(cfg) if isinstance(cfg, DetectorConfig) else cfg
    return {k: d[k] for k in ARCHITECTURE if k in d}



_INIT_SOURCES: dict = {}


def register_init_source(name: str, resolve) -> None:
    """``resolve(cfg, device, progress, n_proc) -> folder`` of a saved detector to start from
    when ``DetectorConfig.pretrained == name``."""
    _INIT_SOURCES[name] = resolve


def init_source(cfg: DetectorConfig, device, progress: bool = True, n_proc: int = 1) -> Path | None:
    """The folder a detector of ``cfg`` starts from, if its ``pretrained`` names a registered
    source (None otherwise: torchvision's weights or none, :func:`~tem_lib.detection.model.build_maskrcnn`)."""
    resolve = _INIT_SOURCES.get(cfg.pretrained)
    return None if resolve is None else resolve(cfg, device, progress, n_proc)


def transfer_weights(model, folder, detector: DetectorConfig, class_ids, class_names=None) -> dict:
    """Load a saved detector's weights into ``model`` (built for ``detector`` and ``class_ids``).

    The architecture must match. When the saved detector's classes are the same (ids, and
    names where both are known) every tensor is loaded; otherwise the class heads
    (:data:`CLASS_HEADS`) keep their fresh initialisation and only the backbone, FPN, RPN and
    the class-agnostic parts of the box and mask heads are loaded. Returns what was done.
    """
    from safetensors.torch import load_file
    folder = Path(folder)
    meta = read_json(folder / DETECTOR_META)
    theirs, ours = _architecture(meta.get("detector", {})), _architecture(detector)
    if stable_hash(theirs) != stable_hash(ours):
        diff = sorted(k for k in ARCHITECTURE if theirs.get(k) != ours.get(k))
        raise ValueError(f"{folder / 'detector.json'}: another detector architecture than the one configured "
                         f"here (differs in {diff}); weights transfer only between identical architectures")
    same = list(meta.get("class_ids", [])) == list(class_ids)
    if same and class_names is not None and meta.get("class_names") is not None:
        same = list(meta["class_names"]) == list(class_names)
    try:
        sd = load_file(folder / WEIGHTS)
    except Exception as e:  # noqa: BLE001 - missing, truncated or foreign file
        raise ValueError(f"{folder / 'model.safetensors'}: could not load ({type(e).__name__}: {e})") from None
    if not same:
        sd = {k: v for k, v in sd.items() if not k.startswith(CLASS_HEADS)}
    missing, unexpected = model.load_state_dict(sd, strict=same)
    if unexpected or (missing and not all(k.startswith(CLASS_HEADS) for k in missing)):
        raise ValueError(f"{folder / 'model.safetensors'}: does not fit the configured detector "
                         f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
    return {"path": str(folder), "heads": "kept" if same else "reinitialised",
            "from_classes": meta.get("class_names") or meta.get("class_ids"), "n_tensors": len(sd),
            "n_real": meta.get("n_real"), "n_synthetic": meta.get("n_synthetic"),
            "detector_json_hash": stable_hash(meta)[:12]}

