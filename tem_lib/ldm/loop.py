"""A small, resumable training loop shared by both LDM stages.

``fit`` owns what every run needs: Accelerate (mixed precision on a GPU, plain fp32 on a CPU),
AdamW with warm-up and cosine decay, gradient clipping, optional EMA weights, a progress bar, a
loss history, and a checkpoint every ``checkpoint_every`` steps written atomically to
``out_dir/checkpoint/``. Rerun with the same configuration and it resumes from there; a
checkpoint made with another configuration is refused.

Each step's batch and noise come from a generator seeded by ``(seed, step)``, so a resumed
run draws the same batches as an uninterrupted one.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import pandas as pd
import torch
from tqdm import tqdm

from ..checkpoint import NonFiniteLoss, check_compatible, load_checkpoint, save_checkpoint, step_generator
from ..layout import CHECKPOINT, HISTORY
from ..parallel import average_gradients, barrier, world
from ..utils import derive_seed, provenance, stable_hash, write_text
from .config import TrainConfig

__all__ = ["NonFiniteLoss", "fit", "step_generator"]


def _mixed_precision(cfg: TrainConfig, device: torch.device) -> str:
    if cfg.mixed_precision != "auto":
        return cfg.mixed_precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "no"


def fit(modules: dict[str, torch.nn.Module], loss_fn: Callable[[int, torch.Generator], torch.Tensor],
        cfg: TrainConfig, out_dir, config: dict, device, ema_module: str | None = None,
        desc: str = "train") -> dict:
    """Train ``modules`` to minimise ``loss_fn(step, generator)`` for ``cfg.steps`` steps.

    ``config`` (JSON-able, everything that defines the run) is stored with each checkpoint and
    compared on resume. ``ema_module`` names the module whose weights get an EMA copy; at the
    end the EMA weights are copied into it. Returns ``{"history": [...], "seconds": ...,
    "resumed_from": step}``; the history is also written to ``out_dir/history.csv``.
    """
    from accelerate import Accelerator
    from diffusers.optimization import get_cosine_schedule_with_warmup
    from diffusers.training_utils import EMAModel

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    device = torch.device(device)
    accelerator = Accelerator(mixed_precision=_mixed_precision(cfg, device), cpu=device.type == "cpu")
    params = [p for m in modules.values() for p in m.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.0)
    lr_sched = get_cosine_schedule_with_warmup(optimizer, cfg.warmup_steps, max(cfg.steps, 1))
    for m in modules.values():
        m.to(accelerator.device).train()
    ema = None
    if ema_module and cfg.ema_decay > 0:
        ema = EMAModel(modules[ema_module].parameters(), decay=cfg.ema_decay, use_ema_warmup=True)
        ema.to(accelerator.device)
    stateful = {"optimizer": optimizer, "lr_scheduler": lr_sched, "ema": ema}

    full_config = {"config": config, "train": cfg.__dict__ | {}}
    key = stable_hash(full_config)
    ckpt = out_dir / CHECKPOINT
    state = {"step": 0, "history": [], "seconds": 0.0}
    if check_compatible(ckpt, key, full_config):
        state = load_checkpoint(ckpt, modules, stateful)
    resumed_from = state["step"]
    # the optimizer only: the modules are called as they are (loss_fn holds them), and in a
    # launched job with several processes the gradients are averaged explicitly (parallel.py)
    optimizer = accelerator.prepare(optimizer)
    rank, _ = world()

    t0 = time.perf_counter() - state["seconds"]
    bar = tqdm(range(state["step"], cfg.steps), initial=state["step"], total=cfg.steps, desc=desc,
               mininterval=2.0, disable=cfg.steps == 0 or rank > 0)
    running = None
    for step in bar:
        # each process its own batches; the first draws what a single process draws
        gen = step_generator(cfg.seed if rank == 0 else derive_seed(cfg.seed, 10_000 + rank), step)
        with accelerator.autocast():
            loss = loss_fn(step, gen)
        if not torch.isfinite(loss):
            raise NonFiniteLoss(f"{desc}: loss is {loss.item()} at step {step}; lower the learning rate "
                                f"(now {cfg.lr}) or check the data (the last good checkpoint is in {ckpt})")
        optimizer.zero_grad(set_to_none=True)
        accelerator.backward(loss)
        average_gradients(params)
        if cfg.grad_clip:
            accelerator.clip_grad_norm_(params, cfg.grad_clip)
        optimizer.step()
        lr_sched.step()
        if ema is not None:
            ema.step(modules[ema_module].parameters())
        value = float(loss.detach())
        running = value if running is None else 0.98 * running + 0.02 * value
        state["history"].append([step + 1, value, lr_sched.get_last_lr()[0]])
        bar.set_postfix(loss=f"{running:.4f}", refresh=False)
        done = step + 1
        if done % cfg.checkpoint_every == 0 or done == cfg.steps:
            state.update(step=done, seconds=time.perf_counter() - t0, key=key, full_config=full_config,
                         provenance=provenance())
            if rank == 0:
                save_checkpoint(ckpt, modules, stateful, state)
            barrier()
    bar.close()
    if ema is not None:
        ema.copy_to(modules[ema_module].parameters())
    for m in modules.values():
        m.eval()
    hist = pd.DataFrame(state["history"], columns=["step", "loss", "lr"])
    if rank == 0:
        write_text(out_dir / HISTORY, hist.to_csv(index=False))
    return {"history": hist, "seconds": state.get("seconds", time.perf_counter() - t0),
            "resumed_from": resumed_from}

