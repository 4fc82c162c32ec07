"""One training epoch and one evaluation pass, in the shape of torchvision's
``references/detection/engine.py``; both run on any device."""
from __future__ import annotations

import contextlib
import math

import numpy as np
import torch
from tqdm import tqdm

from ..checkpoint import NonFiniteLoss
from ..data.sample import Instance
from ..metrics.detection import Detections


def autocast(device: torch.device, amp: str = "auto"):
    """bf16 (or fp16) autocast on CUDA when ``amp`` is "auto"; a no-op otherwise."""
    device = torch.device(device)
    if amp == "auto" and device.type == "cuda":
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.autocast("cuda", dtype=dtype)
    return contextlib.nullcontext()


def train_one_epoch(model, optimizer, loader, device, epoch: int, lr_scheduler=None, scaler=None,
                    amp: str = "auto", grad_clip: float | None = None, progress: bool = True,
                    after_backward=None) -> list[dict]:
    """Train on every batch of ``loader`` once; return one record per iteration (the losses,
    their sum and the learning rate). A non-finite loss stops with :class:`NonFiniteLoss`.

    ``loader`` yields (images, targets) as :func:`tem_lib.data.torch_dataset.collate` makes
    them; ``lr_scheduler`` steps every iteration; ``scaler`` (a ``torch.amp.GradScaler``) is
    only needed with fp16. ``after_backward(params)``: called on the (unscaled) gradients
    before clipping and the step, e.g. to average them over processes (``tem_lib.running.parallel``).
    """
    model.train()
    records = []
    bar = tqdm(loader, desc=f"epoch {epoch}", disable=not progress, mininterval=2.0, leave=False)
    for images, targets in bar:
        images = [im.to(device, non_blocking=True) for im in images]
        targets = [{k: (v.to(device) if torch.is_tensor(v) else v) for k, v in t.items()} for t in targets]
        with autocast(device, amp):
            loss_dict = model(images, targets)
        loss = sum(loss_dict.values())
        value = float(loss.detach())
        if not math.isfinite(value):
            parts = {k: float(v.detach()) for k, v in loss_dict.items()}
            raise NonFiniteLoss(f"epoch {epoch}, iteration {len(records)}: loss is {value} ({parts}); "
                                "lower the learning rate or check the training data")
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
        else:
            loss.backward()
        if after_backward is not None:
            after_backward([p for g in optimizer.param_groups for p in g["params"]])
        if grad_clip:
            torch.nn.utils.clip_grad_norm_([p for g in optimizer.param_groups for p in g["params"]], grad_clip)
        if scaler is not None:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        if lr_scheduler is not None:
            lr_scheduler.step()
        rec = {"epoch": epoch, "loss": value, **{k: float(v.detach()) for k, v in loss_dict.items()},
               "lr": optimizer.param_groups[0]["lr"]}
        records.append(rec)
        bar.set_postfix(loss=f"{value:.3f}", refresh=False)
    return records


def _to_detections(out: dict, shape, name: str, mask_threshold: float = 0.5) -> Detections:
    boxes = out["boxes"].float().cpu().numpy()
    probs = out["masks"][:, 0].float().cpu().numpy() if "masks" in out else None
    labels = out["labels"].cpu().numpy()
    instances = None
    if probs is not None:
        instances = []
        for p, lab in zip(probs, labels):
            m = p >= mask_threshold
            if not m.any():  # keep one pixel (the most confident) so every detection has a mask
                m = np.zeros_like(m)
                m[np.unravel_index(np.argmax(p), p.shape)] = True
            rows, cols = np.nonzero(m)
            y0, x0 = rows.min(), cols.min()
            instances.append(Instance(m[y0:rows.max() + 1, x0:cols.max() + 1].copy(), int(x0), int(y0), int(lab)))
    return Detections(boxes, labels, out["scores"].float().cpu().numpy(), tuple(shape),
                      name, instances)


@torch.inference_mode()
def evaluate(model, samples, device, batch_size: int = 4, amp: str = "auto", progress: bool = True) -> list[Detections]:
    """The model's :class:`~tem_lib.metrics.detection.Detections` for each sample (Samples, or
    float [H, W] images in [0, 1]), in order. Masks are binarised at probability 0.5."""
    model.eval()
    out = []
    for i in tqdm(range(0, len(samples), batch_size), desc="predict", disable=not progress, mininterval=2.0,
                  leave=False):
        batch = samples[i:i + batch_size]
        imgs = [getattr(s, "image", s) for s in batch]
        x = [torch.as_tensor(np.asarray(im, dtype=np.float32))[None].to(device) for im in imgs]
        with autocast(device, amp):
            res = model(x)
        for k, (r, im) in enumerate(zip(res, imgs)):
            out.append(_to_detections(r, im.shape, getattr(batch[k], "name", f"image{i + k}")))
    return out
