"""torchvision Mask R-CNN for grayscale micrographs, from scratch or from local weights.

Nothing is downloaded unless ``DetectorConfig.download`` asks for it: pretrained weights are
looked up in the local torch cache (``torch.hub.get_dir()/checkpoints``, where torchvision
itself keeps them), so a machine with internet can fetch them once and an offline one can have
the file copied in. Which weights were used is recorded in ``model.tem_info``.

Grayscale: the first convolution takes one channel; pretrained RGB filters are summed over
their three input channels (equivalent to feeding the gray image as R = G = B).
"""
from __future__ import annotations

import warnings
from pathlib import Path

import torch
import torchvision
from torch import nn
from torchvision.models.detection import MaskRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
from torchvision.ops import FrozenBatchNorm2d
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

from .config import DetectorConfig

_IMAGENET = {"resnet18": "ResNet18_Weights", "resnet34": "ResNet34_Weights",
             "resnet50": "ResNet50_Weights", "resnet101": "ResNet101_Weights"}


class PretrainedWeightsMissing(FileNotFoundError):
    pass


def _coco_compatible(cfg: DetectorConfig) -> bool:
    return (cfg.backbone == "resnet50" and cfg.fpn_channels == 256 and cfg.representation_size == 1024
            and cfg.mask_head_channels == 256)


def _weights_url(kind: str, backbone: str) -> str:
    if kind == "coco":
        return torchvision.models.detection.MaskRCNN_ResNet50_FPN_Weights.COCO_V1.url
    return getattr(torchvision.models, _IMAGENET[backbone]).IMAGENET1K_V1.url


def cached_weights_path(kind: str, backbone: str = "resnet50") -> Path:
    """Where torchvision keeps (or would keep) these weights on this machine."""
    url = _weights_url(kind, backbone)
    return Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]


def _load_weights(kind: str, backbone: str, download: bool) -> dict:
    path = cached_weights_path(kind, backbone)
    if not path.is_file():
        if not download:
            raise PretrainedWeightsMissing(
                f"{path}: {kind} weights for {backbone} not found. Copy the file there, set "
                f"download=True (needs internet: {_weights_url(kind, backbone)}), or use pretrained='none'")
        try:
            torch.hub.load_state_dict_from_url(_weights_url(kind, backbone), progress=True, check_hash=True,
                                               weights_only=True)
        except Exception as e:  # noqa: BLE001 - URLError, HTTPError, hash mismatch ...
            raise PretrainedWeightsMissing(f"could not download {kind} weights from "
                                           f"{_weights_url(kind, backbone)} ({type(e).__name__}: {e}); "
                                           "offline, use pretrained='none'") from None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001
        raise ValueError(f"{path}: unreadable weights file ({type(e).__name__}: {e}); delete it") from None


def resolve_pretrained(cfg: DetectorConfig) -> str:
    """Which weights ``build_maskrcnn`` will start from: "coco", "imagenet" or "none"."""
    if cfg.pretrained != "auto":
        return cfg.pretrained
    if _coco_compatible(cfg) and cached_weights_path("coco").is_file():
        return "coco"
    if cached_weights_path("imagenet", cfg.backbone).is_file():
        return "imagenet"
    return "none"


def _norm_layer(norm: str):
    if norm == "frozen":
        return FrozenBatchNorm2d
    if norm == "batch":
        return nn.BatchNorm2d
    return lambda c: nn.GroupNorm(32, c)


def _gray(sd: dict, key: str) -> None:
    if key in sd and sd[key].shape[1] == 3:
        sd[key] = sd[key].sum(dim=1, keepdim=True)


class ClassIdMaskRCNN(MaskRCNN):
    """torchvision's ``MaskRCNN`` with one head output per class of the dataset (plus
    background) while targets and outputs carry the dataset's own class ids: ids 7 and 9 use
    outputs 1 and 2, not a 10-way head whose unused classes could be predicted. For ids
    1..K the mapping is the identity."""

    def __init__(self, *args, class_ids, class_agnostic_nms: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        # torchvision's NMS is per class: one defect can be kept as a dot AND as a loop. With
        # this, a second NMS over all classes (same IoU threshold) keeps only the best-scoring.
        self.class_agnostic_nms = class_agnostic_nms
        ids = torch.tensor((0, *class_ids), dtype=torch.int64)
        lut = torch.zeros(int(ids.max()) + 1, dtype=torch.int64)
        lut[ids] = torch.arange(len(ids))
        # not persistent: the weights file holds weights only; the mapping is in detector.json
        self.register_buffer("id_to_index", lut, persistent=False)
        self.register_buffer("index_to_id", ids, persistent=False)

    def forward(self, images, targets=None):
        if targets is not None:
            bad = [int(v) for t in targets for v in t["labels"].unique()
                   if int(v) >= len(self.id_to_index) or (int(v) and not self.id_to_index[int(v)])]
            if bad:
                raise ValueError(f"target class ids {sorted(set(bad))} are not among the detector's "
                                 f"{self.index_to_id[1:].tolist()}")
            targets = [{**t, "labels": self.id_to_index.to(t["labels"].device)[t["labels"]]} for t in targets]
        out = super().forward(images, targets)
        if isinstance(out, list):  # predictions (eval mode)
            for o in out:
                o["labels"] = self.index_to_id.to(o["labels"].device)[o["labels"]]
                if self.class_agnostic_nms and len(o["boxes"]):
                    keep = torchvision.ops.nms(o["boxes"].float(), o["scores"].float(), self.roi_heads.nms_thresh)
                    for k in ("boxes", "labels", "scores", "masks"):
                        if k in o:
                            o[k] = o[k][keep]
        return out


def build_maskrcnn(cfg: DetectorConfig, class_ids) -> MaskRCNN:
    """A torchvision ``MaskRCNN`` for images float [1, H, W] in [0, 1] whose targets and
    predictions use the dataset's class ids (any ids in 1..255; 0 is background), with one head
    output per class (:class:`ClassIdMaskRCNN`).

    ``model.tem_info`` records the resolved weights (``pretrained``), the norm layer and how many
    pretrained tensors were loaded.
    """
    class_ids = tuple(int(c) for c in class_ids)
    if not class_ids or len(set(class_ids)) != len(class_ids) or min(class_ids) < 1:
        raise ValueError(f"detector class ids must be distinct ids >= 1 (0 is background), got {list(class_ids)}")
    weights = resolve_pretrained(cfg)
    if weights == "coco" and not _coco_compatible(cfg):
        raise ValueError("COCO Mask R-CNN weights need backbone resnet50 with fpn_channels 256, "
                         "representation_size 1024 and mask_head_channels 256")
    # the foundation is trained from scratch (GroupNorm); its weights are loaded by train_detector
    norm = cfg.norm if cfg.norm != "auto" else ("frozen" if weights in ("coco", "imagenet") else "group")
    body = getattr(torchvision.models, cfg.backbone)(weights=None, norm_layer=_norm_layer(norm))
    body.conv1 = nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3, bias=False)
    loaded = 0
    if weights == "imagenet":
        sd = _load_weights("imagenet", cfg.backbone, cfg.download)
        _gray(sd, "conv1.weight")
        sd = {k: v for k, v in sd.items() if not k.startswith("fc.")}
        body.load_state_dict(sd, strict=False)
        loaded = len(sd)
    layers = ["layer4", "layer3", "layer2", "layer1", "conv1"][:cfg.trainable_layers]
    if cfg.trainable_layers == 5:
        layers.append("bn1")
    for name, p in body.named_parameters():
        if not any(name.startswith(layer) for layer in layers):
            p.requires_grad_(False)
    c2 = body.inplanes // 8  # 64 (basic blocks) or 256 (bottlenecks)
    backbone = BackboneWithFPN(body, {f"layer{k}": str(k - 1) for k in (1, 2, 3, 4)},
                               [c2 * 2 ** i for i in range(4)], cfg.fpn_channels, extra_blocks=LastLevelMaxPool())
    anchors = AnchorGenerator(sizes=cfg.anchor_sizes, aspect_ratios=(tuple(cfg.aspect_ratios),) * 5)
    n_cls = len(class_ids) + 1
    ch, mch, rep = cfg.fpn_channels, cfg.mask_head_channels, cfg.representation_size
    model = ClassIdMaskRCNN(
        backbone, class_ids=class_ids, class_agnostic_nms=cfg.class_agnostic_nms, num_classes=None,
        min_size=cfg.min_size, max_size=cfg.max_size,
        image_mean=[cfg.image_mean], image_std=[cfg.image_std], rpn_anchor_generator=anchors,
        rpn_batch_size_per_image=cfg.rpn_batch_size_per_image,
        box_head=TwoMLPHead(ch * 7 * 7, rep), box_predictor=FastRCNNPredictor(rep, n_cls),
        box_score_thresh=cfg.box_score_thresh, box_nms_thresh=cfg.box_nms_thresh,
        box_detections_per_img=cfg.detections_per_img, box_batch_size_per_image=cfg.box_batch_size_per_image,
        mask_head=MaskRCNNHeads(ch, (mch,) * 4, 1), mask_predictor=MaskRCNNPredictor(mch, mch, n_cls))
    if weights == "coco":
        sd = _load_weights("coco", "resnet50", cfg.download)
        _gray(sd, "backbone.body.conv1.weight")
        own = model.state_dict()
        keep = {k: v for k, v in sd.items() if k in own and own[k].shape == v.shape}
        model.load_state_dict(keep, strict=False)
        loaded = len(keep)
        skipped = sorted(set(sd) - set(keep))
        if skipped:  # the class-specific predictors and, with other anchors, the RPN outputs
            warnings.warn(f"COCO weights: {len(skipped)} tensors of other shape not loaded, e.g. {skipped[:3]}",
                          stacklevel=2)
    model.tem_info = {"pretrained": weights, "norm": norm, "pretrained_tensors_loaded": loaded,
                      "class_ids": list(class_ids)}
    return model
