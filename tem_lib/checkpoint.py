"""Resumable training state shared by the trainers (LDM stages, detector).

A checkpoint is a folder: one safetensors file per model (weights only, never pickled code),
``training_state.pt`` with the optimizer / scheduler / EMA / scaler state (plain tensors and
numbers, loaded with ``weights_only=True``) and ``state.json`` (step or epoch, history, the
configuration key and provenance). It is written beside the old one and swapped in with a
rename, so an interruption leaves the previous checkpoint intact.
"""
from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from .layout import CHECKPOINT_STATE
from .utils import atomic_dir, read_json, torch_generator, write_json


class NonFiniteLoss(RuntimeError):
    """Training produced a NaN or infinite loss."""


def step_generator(seed: int, step: int) -> torch.Generator:
    """The generator of one training step: a resumed run draws what an uninterrupted one did."""
    return torch_generator(seed, step)


def config_diff(a: dict, b: dict, prefix: str = "") -> list[str]:
    """Human-readable differences between two nested configurations."""
    out = []
    for k in sorted(set(a) | set(b)):
        va, vb = a.get(k), b.get(k)
        if isinstance(va, dict) and isinstance(vb, dict):
            out += config_diff(va, vb, f"{prefix}{k}.")
        elif va != vb and not (isinstance(va, (list, tuple)) and isinstance(vb, (list, tuple)) and list(va) == list(vb)):
            out.append(f"{prefix}{k}: checkpoint {va!r} != now {vb!r}")
    return out


def check_compatible(ckpt: Path, key: str, full_config: dict) -> bool:
    """True if ``ckpt`` holds a checkpoint of this configuration, False if there is none;
    ``ValueError`` naming the differences if it was made with another configuration."""
    if not (Path(ckpt) / CHECKPOINT_STATE).is_file():
        return False
    saved = read_json(Path(ckpt) / CHECKPOINT_STATE)
    if saved.get("key") != key:
        diff = config_diff(saved.get("full_config", {}), full_config)
        raise ValueError(f"{ckpt}: checkpoint of another configuration ({'; '.join(diff[:5]) or 'different'}); "
                         "use another out_dir or delete the checkpoint")
    return True


def save_checkpoint(ckpt, modules: dict, stateful: dict, state: dict) -> None:
    """Write ``modules`` (name -> nn.Module), ``stateful`` (name -> object with
    ``state_dict``, None entries skipped) and ``state`` (JSON) to the folder ``ckpt``."""
    with atomic_dir(ckpt) as tmp:
        for name, m in modules.items():
            save_file({k: v.detach().contiguous().cpu() for k, v in m.state_dict().items()},
                      tmp / f"{name}.safetensors")
        torch.save({k: v.state_dict() for k, v in stateful.items() if v is not None}, tmp / "training_state.pt")
        write_json(tmp / CHECKPOINT_STATE, state)


def load_checkpoint(ckpt, modules: dict, stateful: dict) -> dict:
    """Load what :func:`save_checkpoint` wrote into ``modules`` and ``stateful``; return the
    JSON state. A damaged checkpoint raises ``ValueError`` naming the folder."""
    ckpt = Path(ckpt)
    try:
        for name, m in modules.items():
            m.load_state_dict(load_file(ckpt / f"{name}.safetensors"))
        # weights_only: plain tensors and numbers, never pickled code
        extra = torch.load(ckpt / "training_state.pt", map_location="cpu", weights_only=True)
        for name, obj in stateful.items():
            if obj is not None:
                obj.load_state_dict(extra[name])
    except Exception as e:  # noqa: BLE001 - safetensors/torch raise many types for a bad file
        raise ValueError(f"{ckpt}: corrupt or incomplete checkpoint ({type(e).__name__}: {e}); "
                         "delete the folder to start this stage again") from e
    return read_json(ckpt / CHECKPOINT_STATE)
