"""What one job of a sweep runs (a cluster array task, or ``python -m tem_lib.study --run ID``)."""
from __future__ import annotations

from .locks import RunLocked
from .sweep import Sweep


def run_one(work_dir: str, sweep_config: dict, run_id: str, device: str = "auto") -> dict:
    """What one job does: run ``run_id`` of the sweep unless it is done or running elsewhere.
    Returns ``{"id", "state": "done" | "ran" | "locked", ...}``."""
    from ..utils import get_device
    sweep = Sweep(work_dir, sweep_config, device=get_device(device), progress=False)
    run = sweep.get(run_id)
    if sweep.is_done(run):
        return {"id": run_id, "state": "done"}
    try:
        row = sweep.run_locked(run)
    except RunLocked as e:
        return {"id": run_id, "state": "locked", "why": str(e)}
    return {"id": run_id, "state": "ran", "harmonic@0.5": row.get("harmonic@0.5")}
