"""Train a Mask R-CNN on real crops, optionally mixed with synthetic pairs; resumable.

``train_detector`` writes to ``out_dir``: ``checkpoint/`` after every epoch (an interruption
loses at most one epoch; rerun to resume; a checkpoint of another configuration or other
training data is refused), ``history.csv`` (losses per iteration) and, at the end, the model
as ``model.safetensors`` + ``detector.json`` (configurations, class ids, which pretrained
weights were used, data sizes, provenance), which :func:`load_detector` reads back. Once the
model is saved the checkpoint (weights + optimizer state, 3x the model) is removed; a rerun with
the same configuration and data loads the saved model instead of training again.
"""
from __future__ import annotations

import json
import math
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from safetensors.torch import load_file, save_file

from .. import parallel
from ..checkpoint import check_compatible, config_diff, load_checkpoint, save_checkpoint
from ..data.torch_dataset import DetectionDataset, collate
from ..layout import CHECKPOINT, DETECTOR_META, HISTORY, WEIGHTS
from ..utils import (
    atomic_path,
    derive_seed,
    from_dict,
    provenance,
    read_json,
    stable_hash,
    torch_generator,
    write_json,
    write_text,
)
from .config import DetectorConfig, DetTrainConfig, to_dict
from .engine import train_one_epoch
from .model import build_maskrcnn, resolve_pretrained
from .weights import init_source, transfer_weights


def mixed_indices(n_real: int, n_syn: int, count: int, synthetic_fraction: float | None,
                  generator: torch.Generator) -> list[int]:
    """``count`` indices into [real..., synthetic...] (the order of ``ConcatDataset``): each
    drawn from the synthetic part with probability ``synthetic_fraction`` (None: in proportion
    to the sizes), uniformly within its part, with replacement."""
    if n_real + n_syn == 0:
        raise ValueError("no training images")
    frac = n_syn / (n_real + n_syn) if synthetic_fraction is None else float(synthetic_fraction)
    if n_syn == 0:
        frac = 0.0
    elif n_real == 0:
        frac = 1.0
    syn = torch.rand(count, generator=generator) < frac
    r = torch.randint(max(n_real, 1), (count,), generator=generator)
    s = torch.randint(max(n_syn, 1), (count,), generator=generator) + n_real
    return torch.where(syn, s, r).tolist()


def _optimizer(model, tcfg: DetTrainConfig):
    params = [p for p in model.parameters() if p.requires_grad]
    if tcfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=tcfg.lr, momentum=0.9, weight_decay=tcfg.weight_decay)
    return torch.optim.AdamW(params, lr=tcfg.lr, weight_decay=tcfg.weight_decay)


def _scheduler(optimizer, tcfg: DetTrainConfig):
    """Linear warm-up, then cosine decay to 0 over all iterations."""
    total, warm = max(tcfg.total_iters, 1), min(tcfg.warmup_iters, max(tcfg.total_iters - 1, 0))

    def f(it):
        if it < warm:
            return (it + 1) / warm
        return 0.5 * (1 + math.cos(math.pi * (it - warm) / max(total - warm, 1)))  # a float: checkpoints stay weights_only
    return torch.optim.lr_scheduler.LambdaLR(optimizer, f)


def train_detector(train, out_dir, config: DetectorConfig | dict | None = None,
                   train_config: DetTrainConfig | dict | None = None, synthetic=None, device="cpu",
                   class_ids=None, progress: bool = True, init_weights=None, class_names=None,
                   on_epoch_end=None):
    """Train on ``train`` (real Samples) plus ``synthetic`` (Samples, e.g. a notebook-04
    folder); return ``(model, summary)``. ``summary``: history DataFrame, seconds, the epoch
    resumed from, pretrained weights used, image counts.

    ``init_weights``: a folder saved by this function (same detector architecture) to start
    from instead of the configured initialisation: fine-tuning after pretraining. With
    ``pretrained="foundation"`` and no ``init_weights`` the foundation detector is the start
    (pretrained first if it is not cached yet). Class heads are kept when the saved detector
    has the same classes (``class_ids``, and ``class_names`` where known) and re-initialised
    otherwise (:func:`~tem_lib.detection.weights.transfer_weights`).
    ``on_epoch_end(model, epoch)``: called after every epoch (e.g. learning curves); the
    model is back in training mode afterwards."""
    cfg = config if isinstance(config, DetectorConfig) else from_dict(DetectorConfig, config, "detector config")
    tcfg = (train_config if isinstance(train_config, DetTrainConfig)
            else from_dict(DetTrainConfig, train_config, "detector training config"))
    classes = getattr(train, "classes", None)
    if class_ids is None:
        if classes is None:
            raise ValueError("train_detector needs the dataset's class ids (class_ids=...)")
        class_ids = classes.ids
    if class_names is None and classes is not None and list(classes.ids) == list(class_ids):
        class_names = classes.names
    class_ids = tuple(int(c) for c in class_ids)
    class_names = [str(n) for n in class_names] if class_names is not None else None
    synthetic = list(synthetic or [])
    train = list(train)
    out_dir = Path(out_dir)
    rank, n_proc = parallel.world()  # several processes under `accelerate launch`: data parallel
    device = parallel.local_device(torch.device(device))
    if init_weights is None and resolve_pretrained(cfg) == "foundation":
        init_weights = init_source(cfg, device, progress and rank == 0, n_proc)
    torch.manual_seed(tcfg.seed)  # the initial weights (and those of re-initialised heads)
    model = build_maskrcnn(cfg, class_ids).to(device)
    info = dict(model.tem_info)
    if init_weights is not None:
        info["init_weights"] = transfer_weights(model, init_weights, cfg, class_ids, class_names)
    optimizer = _optimizer(model, tcfg)
    sched = _scheduler(optimizer, tcfg)
    use_scaler = device.type == "cuda" and tcfg.amp == "auto" and not torch.cuda.is_bf16_supported()
    scaler = torch.amp.GradScaler("cuda") if use_scaler else None
    full_config = {"detector": to_dict(cfg), "train": to_dict(tcfg), "class_ids": list(class_ids),
                   **({"init": {k: info["init_weights"][k] for k in ("detector_json_hash", "heads")}}
                      if init_weights is not None else {}),
                   "data": {"real": [s.name for s in train], "synthetic": [s.name for s in synthetic]}}
    key = stable_hash(full_config)
    ckpt = out_dir / CHECKPOINT
    finished = _finished(out_dir, key, full_config, device)
    if finished is not None:  # trained before with this configuration and data: its resume point was dropped
        return finished
    state = {"epoch": 0, "history": [], "seconds": 0.0}
    stateful = {"optimizer": optimizer, "lr_scheduler": sched, "scaler": scaler}
    if check_compatible(ckpt, key, full_config):
        state = load_checkpoint(ckpt, {"model": model}, stateful)
    resumed_from = state["epoch"]
    dataset = torch.utils.data.ConcatDataset([DetectionDataset(part, tcfg.augment, photometric=tcfg.photometric)
                                              for part in (train, synthetic)])
    t0 = time.perf_counter() - state["seconds"]
    for epoch in range(state["epoch"], tcfg.epochs):
        gen = torch_generator(tcfg.seed, epoch)
        # torchvision's proposal and ROI samplers draw from the global generator: seed it per
        # epoch so that a resumed run repeats what an uninterrupted one would have done
        torch.manual_seed(derive_seed(tcfg.seed, epoch))
        for part in dataset.datasets:  # the epoch's augmentations, reproducible on resume
            part.generator = gen
        idx = mixed_indices(len(train), len(synthetic), tcfg.iters_per_epoch * tcfg.batch_size * n_proc,
                            tcfg.synthetic_fraction, gen)[rank::n_proc]  # this process's share
        loader = torch.utils.data.DataLoader(dataset, batch_size=tcfg.batch_size, sampler=idx, collate_fn=collate,
                                             num_workers=tcfg.num_workers)
        records = train_one_epoch(model, optimizer, loader, device, epoch, sched, scaler, tcfg.amp,
                                  tcfg.grad_clip, progress and rank == 0,
                                  parallel.average_gradients if n_proc > 1 else None)
        if on_epoch_end is not None:
            on_epoch_end(model, epoch)
            model.train()
        state["history"] += records
        state.update(epoch=epoch + 1, seconds=time.perf_counter() - t0, key=key, full_config=full_config,
                     provenance=provenance())
        if rank == 0:
            save_checkpoint(ckpt, {"model": model}, stateful, state)
        parallel.barrier()
    model.eval()
    history = pd.DataFrame(state["history"])
    if len(history):
        history.insert(0, "iteration", np.arange(1, len(history) + 1))
    meta = {"key": key, "detector": to_dict(cfg), "train": to_dict(tcfg), "class_ids": list(class_ids),
            "class_names": class_names, **info,
            "n_real": len(train), "n_synthetic": len(synthetic), "seconds": round(state["seconds"], 1),
            "device": str(device), **provenance()}
    if rank == 0:
        write_text(out_dir / HISTORY, history.to_csv(index=False))
        save_detector(model, out_dir, meta)
        # inference and reuse need the model only: the resume point (weights + optimizer state,
        # 3x the model) goes once the model is saved
        shutil.rmtree(ckpt, ignore_errors=True)
    parallel.barrier()
    return model, {"history": history, "seconds": state["seconds"], "resumed_from": resumed_from, **info,
                   "n_real": len(train), "n_synthetic": len(synthetic)}


def _finished(out_dir: Path, key: str, full_config: dict, device):
    """``(model, summary)`` of a training already finished in ``out_dir`` with this ``key``
    (configuration, classes, start and data); None if none finished there; ``ValueError`` if
    one of another configuration did (as for a checkpoint: never overwritten silently)."""
    meta_path = out_dir / DETECTOR_META
    if not (out_dir / WEIGHTS).is_file() or not meta_path.is_file():
        return None
    meta = read_json(meta_path)
    if meta.get("key") is None:  # saved before detectors recorded their key: train (or resume) as before
        return None
    if meta["key"] != key:
        ours = json.loads(json.dumps({k: full_config[k] for k in ("detector", "train", "class_ids")}))  # tuples as saved
        diff = config_diff({k: meta.get(k) for k in ("detector", "train", "class_ids")}, ours)
        raise ValueError(f"{meta_path}: a detector of another configuration was finished here "
                         f"({'; '.join(diff[:5]).replace('checkpoint ', 'saved ') or 'other start or training data'}); "
                         "use another out_dir or delete the folder")
    history = pd.read_csv(out_dir / HISTORY) if (out_dir / HISTORY).is_file() else pd.DataFrame()
    summary = {k: meta[k] for k in ("pretrained", "norm", "pretrained_tensors_loaded", "init_weights", "n_real",
                                    "n_synthetic") if k in meta}
    return load_detector(out_dir, device), {"history": history, "seconds": meta.get("seconds", 0.0),
                                            "resumed_from": meta["train"]["epochs"], **summary}


def save_detector(model, out_dir, meta: dict) -> Path:
    """``out_dir/model.safetensors`` and ``out_dir/detector.json`` (written atomically)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(out_dir / WEIGHTS) as tmp:
        save_file({k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}, str(tmp))
    write_json(out_dir / DETECTOR_META, meta)
    return out_dir


def load_detector(path, device="cpu"):
    """A detector saved by :func:`train_detector` (folder with ``detector.json`` and
    ``model.safetensors``), in eval mode. Weights never unpickle code (safetensors)."""
    path = Path(path)
    meta = read_json(path / DETECTOR_META)
    for k in ("detector", "class_ids"):
        if k not in meta:
            raise ValueError(f"{path / 'detector.json'}: not a tem_lib detector (no {k!r})")
    cfg = from_dict(DetectorConfig, {**meta["detector"], "pretrained": "none"}, f"{path / 'detector.json'}")
    if meta["detector"].get("norm", "auto") == "auto":
        cfg.norm = meta.get("norm", "group")
    model = build_maskrcnn(cfg, meta["class_ids"])
    weights = path / WEIGHTS
    if not weights.is_file():
        raise FileNotFoundError(f"{weights}: not found")
    try:
        model.load_state_dict(load_file(weights))
    except Exception as e:  # noqa: BLE001
        raise ValueError(f"{weights}: does not fit the configuration in detector.json or is corrupt "
                         f"({type(e).__name__}: {str(e)[:300]})") from None
    model.tem_info = {**model.tem_info, "pretrained": meta.get("pretrained"), "loaded_from": str(path)}
    model.tem_meta = meta  # what it was built from: pretrained.save_pretrained writes it back
    return model.to(device).eval()
