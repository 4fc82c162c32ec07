"""One way to load and save any trained artifact of tem_lib: what a folder holds is read from the
files in it (names from :mod:`tem_lib.layout`), so a user never needs to know which function
made it, and what was loaded saves back to a folder that loads the same.

    from tem_lib.pretrained import from_pretrained, kind_of, save_pretrained
    kind_of("runs/quick/work/models/best")          # 'quantify model'
    model, card = from_pretrained("runs/quick/work/models/best")
    save_pretrained((model, card), "my_model")      # the same weights, card and detector.json
    pipe = from_pretrained("runs/quick/work/ldm/split0/n50/ldm-244a8281")   # its pipeline/ inside

* quantify model: ``model.json`` + ``detector.json`` + ``model.safetensors``, made by
  ``quantify.export_model`` / ``Sweep.export_best``; loads as ``(model, ModelCard)``;
* detector: ``detector.json`` + ``model.safetensors`` (``detection.train_detector``); a
  torchvision ``MaskRCNN``;
* segmenter: ``seg_config.json`` + ``model.safetensors`` (``segmentation.train_unet`` /
  ``save_unet``); a ``SegUNet``;
* generator: ``model_index.json`` (diffusers), or a ``pipeline/`` folder holding it
  (``ldm.train_ldm``); a ``MaskToImagePipeline``.

The training code saves through the same writers (``detection.save_detector``,
``segmentation.save_unet``, ``ldm.train.save_pipeline``, ``quantify.export_model``);
:func:`save_pretrained` picks the one for the object given. Every saver writes its folder
atomically; folders written by earlier versions load through the same loaders (the ones above
read what they always read).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .layout import DETECTOR_META, MODEL_CARD, PIPELINE, SEG_CONFIG, WEIGHTS


@dataclass(frozen=True)
class Artifact:
    kind: str
    holds: str
    detect: Callable[[Path], bool]
    load: Callable  # load(path, device) -> the object


def _load_quantify(path, device):
    from .quantify.card import load_model
    return load_model(path, device)


def _load_detector(path, device):
    from .detection.train import load_detector
    return load_detector(path, device)


def _load_segmenter(path, device):
    from .segmentation.unet import load_unet
    return load_unet(path, device)


def _load_generator(path, device):
    from .ldm.pipeline import load_pipeline
    return load_pipeline(_pipeline_dir(path), device)


def _pipeline_dir(path: Path) -> Path:
    return path if (path / "model_index.json").is_file() else path / PIPELINE


ARTIFACTS = (  # the first that matches wins: a quantify model is also a detector folder
    Artifact("quantify model", f"{MODEL_CARD} + {DETECTOR_META} + {WEIGHTS}",
             lambda p: (p / MODEL_CARD).is_file() and (p / DETECTOR_META).is_file(), _load_quantify),
    Artifact("detector", f"{DETECTOR_META} + {WEIGHTS}", lambda p: (p / DETECTOR_META).is_file(), _load_detector),
    Artifact("segmenter", f"{SEG_CONFIG} + {WEIGHTS}", lambda p: (p / SEG_CONFIG).is_file(), _load_segmenter),
    Artifact("generator", f"model_index.json (diffusers), or {PIPELINE}/ holding it",
             lambda p: (_pipeline_dir(p) / "model_index.json").is_file(), _load_generator),
)


def kind_of(path) -> str:
    """Which kind of trained artifact the folder ``path`` is; ``FileNotFoundError`` /
    ``ValueError`` naming it (and what each kind holds) when it is none."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no such folder")
    for a in ARTIFACTS:
        if a.detect(path):
            return a.kind
    kinds = "; ".join(f"{a.kind}: {a.holds}" for a in ARTIFACTS)
    raise ValueError(f"{path}: not a tem_lib model folder (an unfinished training leaves only checkpoint/); "
                     f"folders hold {kinds}")


def from_pretrained(path, device="cpu"):
    """The trained artifact in ``path``, loaded on ``device`` (see the table above)."""
    kind = kind_of(path)
    return next(a for a in ARTIFACTS if a.kind == kind).load(Path(path), device)


def save_pretrained(obj, path) -> Path:
    """Write what :func:`from_pretrained` returned (a ``(model, ModelCard)`` pair, a detector, a
    segmenter or a generator) to the folder ``path``, whole or not at all, in the layout
    :func:`from_pretrained` reads back: the weights and the settings it was built from (kept on
    the object when it was loaded or trained), so the saved folder loads to the same model.
    Anything else is a ``TypeError`` naming what can be saved."""
    from .detection.train import save_detector
    from .ldm.pipeline import MaskToImagePipeline
    from .ldm.train import save_pipeline
    from .quantify.card import ModelCard
    from .segmentation.unet import SegUNet, save_unet
    from .utils import atomic_dir, write_json
    path = Path(path)
    if isinstance(obj, SegUNet):
        return save_unet(obj, obj.config, path, run=getattr(obj, "tem_run", None), seconds=getattr(obj, "tem_seconds", None))
    if isinstance(obj, MaskToImagePipeline):
        return save_pipeline(obj, path, getattr(obj, "tem_record", {}))
    model, card = obj if isinstance(obj, tuple) and len(obj) == 2 and isinstance(obj[1], ModelCard) else (obj, None)
    if not hasattr(model, "tem_meta"):  # a detector of this package carries its detector.json
        raise TypeError(f"save_pretrained: cannot save a {type(obj).__name__}; it saves what from_pretrained or the "
                        "training returns: (model, ModelCard), a detector, a SegUNet or a MaskToImagePipeline")
    meta = model.tem_meta
    if card is not None and list(meta.get("class_ids", [])) != list(card.classes.ids):
        raise ValueError(f"{path}: the card's classes {list(card.classes.ids)} are not the detector's "
                         f"{meta.get('class_ids')}")
    with atomic_dir(path) as tmp:
        save_detector(model, tmp, meta)
        if card is not None:
            write_json(tmp / MODEL_CARD, card.to_dict())
    return path
