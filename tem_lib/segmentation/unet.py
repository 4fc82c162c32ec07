"""U-Nets of the confidence study (seed 002): segmentation-models-pytorch U-Nets on grayscale
micrographs, with the three choices the seed varies.

* **Initialisation** (``SegConfig.init``): ``"scratch"``; ``"imagenet"`` (smp's weights from
  the Hugging Face cache, downloaded once with internet; offline and not cached it stops with
  :class:`PretrainedWeightsMissing`); or the path of an encoder saved by :func:`save_encoder`
  (e.g. pretrained on simulated micrographs).
* **Regularisation** (``SegConfig.regularization``), added to the loss (not decoupled weight
  decay, so that L2 and L2-SP are the same kind of term): ``"none"``; ``"l2"``:
  ``l2 / 2 * sum ||w||^2`` over every trained weight; ``"l2sp"`` (Li, Grandvalet & Davoine
  2018): ``l2sp / 2 * sum ||w - w0||^2`` over the transferred encoder weights (``w0``: where
  training started) plus ``l2 / 2 * sum ||w||^2`` over the new ones (decoder and head). Weights
  are the convolution and linear kernels; biases and norm parameters are not penalised.
* **Fine-tuning depth** (``SegConfig.freeze``): the first ``freeze`` encoder stages (from the
  input) keep their initial weights, their normalisation statistics included (they stay in
  eval mode while the rest trains); 0 fine-tunes everything, ``len(encoder_stages(...))``
  freezes the whole encoder.

Training (:func:`train_unet`) uses the LDM's resumable loop (``tem_lib.ldm.loop.fit``):
checkpoints every ``training.checkpoint_every`` steps, refused when made with another
configuration or data; the finished model is a folder with ``model.safetensors`` and
``seg_config.json`` (:func:`save_unet` / :func:`load_unet`).
"""
from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from safetensors.torch import load_file, save_file
from torch import nn
from torch.nn import functional as F

from ..config import Config
from ..data.torch_dataset import random_patches
from ..detection.model import PretrainedWeightsMissing
from ..layout import CHECKPOINT, HISTORY, SEG_CONFIG, WEIGHTS
from ..ldm.config import TrainConfig
from ..utils import atomic_dir, from_dict, read_json, write_json

__all__ = ["PretrainedWeightsMissing", "SegConfig", "SegUNet", "WeightPenalty", "build_unet", "encoder_stages",
           "imagenet_weights", "load_unet", "predict_proba", "save_encoder", "save_unet", "train_unet"]

REGULARIZATIONS = ("none", "l2", "l2sp")


def _default_training() -> TrainConfig:
    return TrainConfig(steps=400, batch_size=8, lr=1e-3, warmup_steps=20, patch_size=128, checkpoint_every=100,
                       ema_decay=0.0)


@dataclass
class SegConfig(Config):
    """One U-Net of the study (saved beside its weights as ``seg_config.json``)."""
    _where = "segmentation config"
    encoder: str = "resnet18"  # an smp encoder with known stages: resnet18/34/50, efficientnet-b0..b7
    n_classes: int = 2  # output channels, background (0) included
    init: str = "scratch"  # "scratch", "imagenet" or the path of an encoder saved by save_encoder
    regularization: str = "none"  # "none", "l2", "l2sp"
    l2: float = 1e-4  # "l2": on every weight; "l2sp": on the new (decoder, head) weights
    l2sp: float = 1e-2  # "l2sp": towards the starting weights, on the transferred encoder weights
    freeze: int = 0  # encoder stages (from the input) kept at their initial weights
    decoder_channels: tuple[int, ...] = (128, 64, 32, 16, 8)
    class_weights: bool = True  # cross-entropy weights 1 / sqrt(pixel frequency): thin boundaries count
    training: TrainConfig = field(default_factory=_default_training)

    def __post_init__(self):
        if isinstance(self.training, dict):
            self.training = from_dict(TrainConfig, {**asdict(_default_training()), **self.training}, "training")
        self.decoder_channels = tuple(int(c) for c in self.decoder_channels)
        if self.regularization not in REGULARIZATIONS:
            raise ValueError(f"regularization must be one of {REGULARIZATIONS}, got {self.regularization!r}")
        if self.regularization == "l2sp" and self.init == "scratch":
            raise ValueError("regularization 'l2sp' pulls towards pretrained weights; init is 'scratch' "
                             "(use 'l2', or init 'imagenet' / a saved encoder)")
        if self.freeze < 0 or self.n_classes < 2 or self.l2 < 0 or self.l2sp < 0:
            raise ValueError(f"SegConfig: freeze >= 0, n_classes >= 2, l2 >= 0, l2sp >= 0 needed, got "
                             f"freeze={self.freeze}, n_classes={self.n_classes}, l2={self.l2}, l2sp={self.l2sp}")
        if self.freeze and self.init == "scratch":
            raise ValueError("freezing encoder stages of a scratch encoder keeps random weights; use init "
                             "'imagenet' or a saved encoder")



# ----------------------------------------------------------------------------- model
def encoder_stages(encoder: nn.Module) -> list[list[nn.Module]]:
    """The encoder's stages from the input, one per output resolution (stem, then 4 more)."""
    name = type(encoder).__name__
    if name == "ResNetEncoder":
        return [[encoder.conv1, encoder.bn1], [encoder.layer1], [encoder.layer2], [encoder.layer3], [encoder.layer4]]
    if name == "EfficientNetEncoder":
        idx = [-1, *encoder._out_indexes]
        return [[encoder._conv_stem, encoder._bn0]] + [[encoder._blocks[a + 1:b + 1]] for a, b in zip(idx[:-1], idx[1:])]
    raise NotImplementedError(f"stages of {name} are not known; use a resnet or efficientnet-b* encoder")


class SegUNet(nn.Module):
    """An smp U-Net for grayscale input in [0, 1] ([B, 1, H, W], any H, W: padded to a multiple
    of 32 by reflection and cropped back) -> logits [B, n_classes, H, W]; frozen encoder stages
    stay in eval mode and out of the optimiser."""

    def __init__(self, net: nn.Module, config: SegConfig):
        super().__init__()
        self.net, self.config = net, config
        stages = encoder_stages(net.encoder)
        if config.freeze > len(stages):
            raise ValueError(f"freeze={config.freeze}, but {config.encoder} has {len(stages)} stages")
        self.frozen = [m for stage in stages[:config.freeze] for m in stage]
        for m in self.frozen:
            m.requires_grad_(False)

    def train(self, mode: bool = True):
        super().train(mode)
        for m in self.frozen:
            m.eval()
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        ph, pw = -h % 32, -w % 32
        x = x * 2 - 1
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph), mode="reflect")
        return self.net(x)[..., :h, :w]


def _smp():
    try:
        import segmentation_models_pytorch as smp
    except ImportError as e:  # pragma: no cover - it is a dependency
        raise ImportError("the U-Net study needs segmentation-models-pytorch (pip install "
                          "segmentation-models-pytorch)") from e
    return smp


def _file_sha1(path) -> str:
    return hashlib.sha1(Path(path).read_bytes()).hexdigest()


def imagenet_weights(encoder: str, download: bool = False) -> Path:
    """The local file of smp's ImageNet weights for ``encoder`` (the Hugging Face cache; fetched
    there first when ``download`` and online). Missing: :class:`PretrainedWeightsMissing`."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.constants import HF_HUB_CACHE
    settings = _smp().encoders.encoders.get(encoder, {}).get("pretrained_settings", {}).get("imagenet")
    if settings is None:
        raise ValueError(f"smp has no ImageNet weights for encoder {encoder!r}")
    try:
        return Path(hf_hub_download(settings["repo_id"], "model.safetensors", revision=settings["revision"],
                                    local_files_only=not download))
    except Exception as e:  # noqa: BLE001 - hub errors (offline, missing file, bad cache) vary
        how = ("could not be downloaded" if download else "are not cached (download=True fetches them, "
               "with internet)")
        raise PretrainedWeightsMissing(
            f"ImageNet weights for encoder {encoder!r} ({settings['repo_id']}) {how}; cache: {HF_HUB_CACHE} "
            f"({type(e).__name__}). Use init='scratch' or an encoder saved by save_encoder offline") from None


def build_unet(cfg: SegConfig, download: bool = False) -> SegUNet:
    """The U-Net of ``cfg`` at its initial weights (seeded by ``cfg.training.seed``);
    ``download``: fetch ImageNet weights that are not cached (needs internet)."""
    smp = _smp()
    weights = imagenet_weights(cfg.encoder, download) if cfg.init == "imagenet" else None
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.training.seed)
        net = smp.Unet(cfg.encoder, encoder_weights=None, in_channels=1 if weights is None else 3,
                       classes=cfg.n_classes, decoder_channels=cfg.decoder_channels)
    if weights is not None:  # as smp does it: RGB weights, then the first conv summed to one channel
        net.encoder.load_state_dict(load_file(weights))
        net.encoder.set_in_channels(1, pretrained=True)
    elif cfg.init != "scratch":
        _load_encoder(net, cfg)
    return SegUNet(net, cfg)


def save_encoder(model: SegUNet, path) -> Path:
    """The encoder's weights (safetensors, with its name) for ``SegConfig(init=path)``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    save_file({k: v.detach().contiguous().cpu() for k, v in model.net.encoder.state_dict().items()}, tmp,
              metadata={"encoder": model.config.encoder})
    os.replace(tmp, path)
    return path


def _load_encoder(net: nn.Module, cfg: SegConfig) -> None:
    path = Path(cfg.init)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such encoder file (init must be 'scratch', 'imagenet' or the path "
                                "of an encoder saved by tem_lib.segmentation.save_encoder)")
    from safetensors import safe_open
    try:
        with safe_open(str(path), "pt") as f:
            meta = f.metadata() or {}
        state = load_file(path)
    except Exception as e:  # noqa: BLE001
        raise ValueError(f"{path}: not a readable safetensors encoder file ({type(e).__name__}: {e})") from None
    if meta.get("encoder") != cfg.encoder:
        raise ValueError(f"{path}: holds a {meta.get('encoder')!r} encoder, the config asks for {cfg.encoder!r}")
    net.encoder.load_state_dict(state)


# ----------------------------------------------------------------------------- regularisation
def _penalised(name: str, p: torch.Tensor) -> bool:
    return p.requires_grad and p.ndim > 1


class WeightPenalty:
    """The configuration's regularisation term for ``model`` at its starting weights (call it
    during training: a scalar tensor to add to the loss)."""

    def __init__(self, model: SegUNet):
        cfg = model.config
        self.kind, self.l2, self.l2sp = cfg.regularization, cfg.l2, cfg.l2sp
        params = [(n, p) for n, p in model.named_parameters() if _penalised(n, p)]
        transferred = cfg.init != "scratch"
        self.anchored = [(p, p.detach().clone()) for n, p in params if transferred and n.startswith("net.encoder.")]
        anchored = {id(p) for p, _ in self.anchored}
        self.new = [p for _, p in params if id(p) not in anchored]
        self.all = [p for _, p in params]

    def __call__(self) -> torch.Tensor:
        if self.kind == "none":
            return torch.zeros(())
        if self.kind == "l2":
            return 0.5 * self.l2 * sum((p ** 2).sum() for p in self.all)
        sp = sum(((p - p0.to(p.device)) ** 2).sum() for p, p0 in self.anchored)
        return 0.5 * self.l2sp * sp + 0.5 * self.l2 * sum((p ** 2).sum() for p in self.new)


# ----------------------------------------------------------------------------- training
def _check_data(images, labels, n_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    images = np.asarray(images, np.float32)
    labels = np.asarray(labels)
    if images.ndim != 3 or images.shape != labels.shape:
        raise ValueError(f"images and labels must be [N, H, W] of one shape, got {images.shape} and {labels.shape}")
    if labels.min() < 0 or labels.max() >= n_classes:
        raise ValueError(f"labels must be class indices in [0, {n_classes - 1}], got values "
                         f"{sorted(int(v) for v in np.unique(labels))[:10]}")
    return torch.from_numpy(images)[:, None], torch.from_numpy(labels.astype(np.uint8))


def _data_hash(x: torch.Tensor, m: torch.Tensor) -> str:
    h = hashlib.sha1(x.numpy().tobytes())
    h.update(m.numpy().tobytes())
    return h.hexdigest()


def train_unet(images, labels, config: SegConfig | dict | None = None, out_dir="runs/unet", device="cpu",
               download: bool = False) -> tuple[SegUNet, dict]:
    """Train a U-Net on ``images`` (float [N, H, W] in [0, 1]) and ``labels`` (class indices
    [N, H, W]), on random patches in random orientations; cross-entropy (weights 1/sqrt of the
    pixel frequency when ``class_weights``) plus the configuration's penalty. Resumes from
    ``out_dir/checkpoint``; a finished run (``out_dir/model``) is loaded. Returns the model
    (eval mode) and ``{"history", "seconds", "resumed_from"}``."""
    from ..ldm.loop import fit
    cfg = config if isinstance(config, SegConfig) else SegConfig.from_dict(config)
    out_dir = Path(out_dir)
    x, m = _check_data(images, labels, cfg.n_classes)
    run = {"seg": cfg.to_dict(), "data": _data_hash(x, m),
           "init_sha1": _file_sha1(cfg.init) if cfg.init not in ("scratch", "imagenet") else cfg.init}
    done = out_dir / "model"
    if (done / SEG_CONFIG).is_file() and read_json(done / SEG_CONFIG).get("run") == run:
        model = load_unet(done, device)
        hist = out_dir / HISTORY
        return model, {"history": pd.read_csv(hist) if hist.is_file() else pd.DataFrame(columns=["step", "loss", "lr"]),
                       "seconds": read_json(done / SEG_CONFIG).get("seconds"),
                       "resumed_from": cfg.training.steps}
    model = build_unet(cfg, download).to(device)
    penalty = WeightPenalty(model)
    weight = None
    if cfg.class_weights:
        freq = torch.bincount(m.ravel().long(), minlength=cfg.n_classes).float() + 1
        weight = (freq.sum() / freq).sqrt()
        weight = (weight / weight.mean()).to(device)
    tc = cfg.training
    x = x * 2 - 1  # random_patches' convention ([-1, 1]); SegUNet takes [0, 1]

    def loss_fn(step, gen):
        xb, mb = random_patches(x, m, tc.batch_size, tc.patch_size, gen)
        logits = model((xb.to(device) + 1) / 2)
        return F.cross_entropy(logits, mb.long().to(device), weight=weight) + penalty().to(device)

    res = fit({"unet": model}, loss_fn, tc, out_dir, run, device, desc=f"unet {cfg.encoder}")
    save_unet(model, cfg, done, run=run, seconds=res["seconds"])
    # the checkpoint (weights + optimizer state, 4x the model) only serves an interrupted run
    shutil.rmtree(out_dir / CHECKPOINT, ignore_errors=True)
    return model.eval(), res


def save_unet(model: SegUNet, config: SegConfig, path, run: dict | None = None, seconds: float | None = None) -> Path:
    """A folder with ``model.safetensors`` and ``seg_config.json`` (config, the run that made it,
    its training seconds), written beside and renamed."""
    with atomic_dir(path) as tmp:
        save_file({k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}, tmp / WEIGHTS)
        write_json(tmp / SEG_CONFIG, {"config": config.to_dict(), "run": run, "seconds": seconds})
    return Path(path)


def load_unet(path, device="cpu") -> SegUNet:
    """A U-Net saved by :func:`save_unet` (built from scratch, then its saved weights)."""
    path = Path(path)
    if not (path / SEG_CONFIG).is_file() or not (path / WEIGHTS).is_file():
        raise FileNotFoundError(f"{path}: not a saved U-Net (needs seg_config.json and model.safetensors)")
    saved = read_json(path / SEG_CONFIG)
    cfg = SegConfig.from_dict(saved["config"])
    model = build_unet(replace(cfg, init="scratch", freeze=0, regularization="none"))
    try:
        model.load_state_dict(load_file(path / WEIGHTS))
    except Exception as e:  # noqa: BLE001
        raise ValueError(f"{path / 'model.safetensors'}: does not fit the saved config ({type(e).__name__}: {e})") from None
    model.config = cfg
    model.tem_run, model.tem_seconds = saved.get("run"), saved.get("seconds")  # saved back by save_pretrained
    return model.to(device).eval()


@torch.inference_mode()
def predict_proba(model: nn.Module, images, device="cpu", batch_size: int = 8) -> np.ndarray:
    """Class probabilities float32 [N, K, H, W] for images float [N, H, W] in [0, 1]."""
    model.eval()
    out = []
    for i in range(0, len(images), batch_size):
        x = torch.as_tensor(np.stack(images[i:i + batch_size]), dtype=torch.float32)[:, None]
        out.append(torch.softmax(model(x.to(device)).float(), 1).cpu().numpy())
    return np.concatenate(out)
