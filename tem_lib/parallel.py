"""Data-parallel training over the processes that ``accelerate launch`` (or ``torchrun``) starts.

The LDM's two stages (``tem_lib.ldm.loop.fit``) and the detector
(``tem_lib.detection.train_detector``) train the same way in one process or in several:

* every process builds the same model (seeded), draws its own batches (the step's generator
  is seeded by the step and, from the second process on, by the process index), and the
  gradients are averaged over the processes before each optimiser step (an all-reduce, as
  DistributedDataParallel does), so the weights stay identical everywhere;
* the effective batch is ``batch_size`` x the number of processes; iterations and schedule
  are those of the config (scale the learning rate yourself if you want to);
* only the main process writes checkpoints and results, the others wait for it.

In a plain ``python`` process (or ``accelerate launch --num_processes 1``) nothing of this
does anything: one process draws exactly the batches it drew before.

    accelerate launch --multi_gpu --num_processes 4 -m tem_lib.study --profile paper --run split0-n10-syn2x-seed0
"""
from __future__ import annotations

from functools import lru_cache

import torch


@lru_cache(maxsize=1)
def _state():
    from accelerate import PartialState
    return PartialState()


def world() -> tuple[int, int]:
    """(process index, number of processes); (0, 1) outside a launched job."""
    import os
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return 0, 1
    s = _state()
    return s.process_index, s.num_processes


def is_main() -> bool:
    return world()[0] == 0


def local_device(device: torch.device) -> torch.device:
    """The device of this process: ``cuda`` becomes ``cuda:<local rank>`` in a launched job."""
    if world()[1] > 1 and device.type == "cuda":
        return _state().device
    return device


def average_gradients(params) -> None:
    """Mean of each gradient over the processes (no-op in one process)."""
    rank, n = world()
    if n == 1:
        return
    for p in params:
        if p.grad is not None:
            torch.distributed.all_reduce(p.grad, op=torch.distributed.ReduceOp.SUM)
            p.grad /= n


def barrier() -> None:
    if world()[1] > 1:
        _state().wait_for_everyone()
