"""One run, one writer: a lock file per run, so that two jobs (or two array tasks, or a job
and a rerun) never train and write the same run twice."""
from __future__ import annotations

import json
import os
import socket
import time
from contextlib import contextmanager
from pathlib import Path


class RunLocked(RuntimeError):
    """Another job holds the run."""


@contextmanager
def run_lock(path: Path, lock_hours: float = 48.0):
    """Hold ``path`` (created exclusively) while the block runs; a lock older than
    ``lock_hours`` (its job died) is taken over. Raises :class:`RunLocked` otherwise."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    me = {"host": socket.gethostname(), "pid": os.getpid(), "since": time.time(),
          "job": os.environ.get("SLURM_JOB_ID") or os.environ.get("SUBMITIT_JOB_ID")}
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            try:
                held = json.loads(path.read_text() or "{}")
            except (OSError, json.JSONDecodeError):
                held = {}
            age_h = (time.time() - held.get("since", path.stat().st_mtime)) / 3600
            if age_h < lock_hours:
                raise RunLocked(f"{path.stem}: running elsewhere ({held.get('host')}, pid {held.get('pid')}, "
                                f"job {held.get('job')}, {age_h:.1f} h); lock {path}") from None
            path.unlink(missing_ok=True)  # stale: its job died
            continue
        with os.fdopen(fd, "w") as f:
            json.dump(me, f)
        break
    try:
        yield
    finally:
        path.unlink(missing_ok=True)
