"""The sweep on a cluster: one job per run id through submitit (SLURM job arrays, or local
processes to try it out), resubmission of failed runs, logs beside the rows.

    python -m tem_lib.study --profile paper --prepare                     # generators and pools first
    python -m tem_lib.study --profile paper --submit slurm --partition gpu --gpus 1 --timeout-min 240
    python -m tem_lib.study --profile paper --submit slurm --wait --max-retries 2   # and resubmit failures

A job runs :func:`tem_lib.study.job.run_one` (:meth:`~tem_lib.study.Sweep.run_locked`) for one id. Rows are written atomically
(``utils.write_json``) and a run holds a lock file (``rows/<id>.lock``, created exclusively)
while it trains, so two jobs given the same id never write the same row or checkpoint: the
second finds the row (done) or the lock (running elsewhere) and returns without training.
A lock left by a job that died is taken over after ``lock_hours``. Submitting again skips
finished runs, so a failed run is resubmitted by running the same command again
(``--wait --max-retries K`` does it automatically). submitit's logs and pickles go to
``rows/logs/`` (``<job id>_0_log.out`` / ``.err``), and ``rows/jobs/<id>.json`` names the last
job of each run.
"""
from __future__ import annotations

from pathlib import Path

from ..running.cluster import submit_array
from ..utils import read_json, write_json
from .job import run_one  # what one job runs
from .locks import RunLocked, run_lock  # noqa: F401  (kept importable here, beside the submitter)
from .sweep import Sweep


def submit(work_dir, sweep_config: dict, ids: list[str] | None = None, cluster: str = "slurm",
           device: str = "auto", wait: bool = False, max_retries: int = 0, log=print, **params) -> list[dict]:
    """Submit one job per unfinished run (all of the sweep, or ``ids``) as one array.

    ``cluster``: ``"slurm"``, or ``"local"`` (subprocesses on this machine) / ``"debug"`` (in
    this process) to try the path without a cluster. ``params``: submitit's executor
    parameters (``timeout_min``, ``slurm_partition``, ``gpus_per_node``, ``cpus_per_task``,
    ``slurm_array_parallelism``, ``mem_gb`` ...). ``wait``: wait for the jobs and resubmit the
    failed ones up to ``max_retries`` times. Returns one record per run: id, job id, state."""
    sweep = Sweep(work_dir, sweep_config, device="cpu", progress=False)
    todo = [r["id"] for r in sweep.runs if not sweep.is_done(r)] if ids is None else list(ids)
    unknown = set(todo) - {r["id"] for r in sweep.runs}
    if unknown:
        raise ValueError(f"not runs of this sweep: {sorted(unknown)}")
    logs = sweep.ws.path("rows", None, None, "logs")

    def record(rid, rec):
        write_json(_job_path(sweep, rid), {**rec, "cluster": cluster, "logs": str(logs)})
    return submit_array(run_one, [(str(sweep.ws.work_dir), sweep_config, rid, device) for rid in todo], todo, logs,
                        cluster, wait, max_retries, log, on_submit=record, name="tem-study", **params)


def _job_path(sweep, run_id: str) -> Path:
    return sweep.ws.path("rows", None, None, "jobs", f"{run_id}.json")


def job_record(sweep, run_id: str) -> dict | None:
    """The last job submitted for ``run_id`` (id, attempt, cluster, logs), or None."""
    p = _job_path(sweep, run_id)
    return read_json(p) if p.is_file() else None
