"""Configuration of the Mask R-CNN detector and of its training, one dataclass each.

Defaults are the CPU-sized detector of the ``smoke`` and ``quick`` profiles (ResNet-18 FPN with
64 channels, trained from scratch at the crops' native 256 px). The ``paper`` profile sets the
authors' detectron2 settings (``PAPER_NOTES.md`` section 1): R50-FPN, COCO weights when
available, 2 frozen stages, input resized to 640-800 px, 128 ROIs per image, lr 2.5e-4,
batch 2, score threshold 0.1 at test time.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..config import Config

BACKBONES = ("resnet18", "resnet34", "resnet50", "resnet101")
PRETRAINED = ("auto", "none", "coco", "imagenet", "foundation")


@dataclass
class DetectorConfig(Config):
    """torchvision ``MaskRCNN`` on a ResNet-FPN backbone, grayscale input."""
    _where = "detector config"
    backbone: str = "resnet18"
    fpn_channels: int = 64  # torchvision / detectron2: 256 (the cost of the stride-4 level grows as its square)
    representation_size: int = 256  # box-head MLP width (torchvision: 1024)
    mask_head_channels: int = 64  # mask-head conv width (torchvision: 256)
    # "auto": COCO Mask R-CNN weights (R50 with torchvision's head sizes only), else ImageNet
    # backbone weights, whichever is found in the local torch cache; else from scratch.
    # "coco" / "imagenet": required (an error if missing); "none": from scratch.
    # "foundation": the detector pretrained once on varied simulated micrographs
    # (tem_lib.detection.foundation; trained on first use, then read from the cache).
    pretrained: str = "auto"
    foundation: dict = field(default_factory=dict)  # FoundationConfig overrides, with pretrained="foundation"
    download: bool = False  # fetch missing pretrained weights (needs internet)
    # "auto": frozen BatchNorm with pretrained weights (detectron2's), GroupNorm from scratch
    norm: str = "auto"
    trainable_layers: int = 5  # backbone stages trained (the paper: 3, i.e. 2 frozen, with pretrained weights)
    # Anchor sizes per FPN level (P2..P6), each with every aspect ratio: the paper's 4-256 px,
    # two per level (torchvision needs the same number at every level).
    anchor_sizes: tuple[tuple[int, ...], ...] = ((4, 8), (12, 16), (24, 32), (48, 64), (128, 256))
    aspect_ratios: tuple[float, ...] = (0.5, 1.0, 2.0)
    # Resize of the shorter side; several values: one drawn per training batch; tests use the last.
    min_size: tuple[int, ...] = (256,)
    max_size: int = 256
    image_mean: float = 0.5  # normalisation of the [0, 1] grayscale input
    image_std: float = 0.25
    rpn_batch_size_per_image: int = 256
    box_batch_size_per_image: int = 128  # the paper's 128 ROIs per image
    box_score_thresh: float = 0.1  # the paper's test-time score threshold
    box_nms_thresh: float = 0.5
    class_agnostic_nms: bool = False  # also suppress overlapping boxes of different classes
    detections_per_img: int = 500  # the paper's code allowed up to 500

    def __post_init__(self):
        if self.backbone not in BACKBONES:
            raise ValueError(f"backbone must be one of {BACKBONES}, got {self.backbone!r}")
        if self.pretrained not in PRETRAINED:
            raise ValueError(f"pretrained must be one of {PRETRAINED}, got {self.pretrained!r}")
        if self.norm not in ("auto", "frozen", "batch", "group"):
            raise ValueError(f"norm must be 'auto', 'frozen', 'batch' or 'group', got {self.norm!r}")
        if not 0 <= self.trainable_layers <= 5:
            raise ValueError(f"trainable_layers must be in [0, 5], got {self.trainable_layers}")
        if len({len(s) for s in self.anchor_sizes}) != 1 or len(self.anchor_sizes) != 5:
            raise ValueError(f"anchor_sizes: 5 levels with the same number of sizes each, got {self.anchor_sizes}")
        if isinstance(self.min_size, int):
            self.min_size = (self.min_size,)


@dataclass
class DetTrainConfig(Config):
    """One detector training run. An epoch is ``iters_per_epoch`` batches (the paper counts
    iterations); a checkpoint is written after each, so an interruption loses at most one."""
    _where = "detector training config"
    epochs: int = 10
    iters_per_epoch: int = 100
    batch_size: int = 4
    optimizer: str = "adamw"  # "sgd" (detectron2's, momentum 0.9) or "adamw" (steadier from scratch)
    lr: float = 1e-3  # the paper: 2.5e-4 with SGD, batch 2, COCO weights
    weight_decay: float = 1e-4
    warmup_iters: int = 100
    # Fraction of each batch drawn from the synthetic pairs; None: in proportion to the set
    # sizes (plain concatenation, what the paper did).
    synthetic_fraction: float | None = None
    augment: bool = True  # flips and 90-degree turns (the 8 symmetries of the square)
    # gray-level augmentation (tem_lib.data.torch_dataset.Photometric fields: contrast,
    # brightness, gamma, blur, noise, p); empty: none
    photometric: dict = field(default_factory=dict)
    grad_clip: float = 10.0
    amp: str = "auto"  # "auto": bf16/fp16 autocast on CUDA, off on CPU; "no"
    num_workers: int = 0
    seed: int = 0

    def __post_init__(self):
        if self.optimizer not in ("sgd", "adamw"):
            raise ValueError(f"optimizer must be 'sgd' or 'adamw', got {self.optimizer!r}")
        from ..data.torch_dataset import Photometric
        try:
            Photometric(**self.photometric)  # a bad name or value fails here, not in a data loader
        except TypeError as e:
            raise ValueError(f"photometric: {e} (known: contrast, brightness, gamma, blur, noise, p)") from None
        if self.synthetic_fraction is not None and not 0 <= self.synthetic_fraction <= 1:
            raise ValueError(f"synthetic_fraction must be in [0, 1] or None, got {self.synthetic_fraction}")

    @property
    def total_iters(self) -> int:
        return self.epochs * self.iters_per_epoch


def to_dict(cfg) -> dict:
    """``cfg.to_dict()`` (kept for the callers that name the function)."""
    return cfg.to_dict()
