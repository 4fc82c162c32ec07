"""The sweep on a cluster: one job per run id through submitit (SLURM job arrays, or local
processes to try it out), resubmission of failed runs, logs beside the rows.

    python -m tem_lib.study --profile paper --prepare                     # generators and pools first
    python -m tem_lib.study --profile paper --submit slurm --partition gpu --gpus 1 --timeout-min 240
    python -m tem_lib.study --profile paper --submit slurm --wait --max-retries 2   # and resubmit failures

A job runs :func:`tem_lib.study.cli.run_one` (:meth:`~tem_lib.study.Sweep.run_locked`) for one id. Rows are written atomically
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

from ..study.cli import run_one  # what one job runs
from ..study.locks import RunLocked, run_lock  # noqa: F401  (the lock lives with the study; kept importable here)
from ..utils import read_json, write_json


def submit(work_dir, sweep_config: dict, ids: list[str] | None = None, cluster: str = "slurm",
           device: str = "auto", wait: bool = False, max_retries: int = 0, log=print, **params) -> list[dict]:
    """Submit one job per unfinished run (all of the sweep, or ``ids``) as one array.

    ``cluster``: ``"slurm"``, or ``"local"`` (subprocesses on this machine) / ``"debug"`` (in
    this process) to try the path without a cluster. ``params``: submitit's executor
    parameters (``timeout_min``, ``slurm_partition``, ``gpus_per_node``, ``cpus_per_task``,
    ``slurm_array_parallelism``, ``mem_gb`` ...). ``wait``: wait for the jobs and resubmit the
    failed ones up to ``max_retries`` times. Returns one record per run: id, job id, state."""
    import submitit

    from ..study import Sweep
    sweep = Sweep(work_dir, sweep_config, device="cpu", progress=False)
    todo = [r["id"] for r in sweep.runs if not sweep.is_done(r)] if ids is None else list(ids)
    unknown = set(todo) - {r["id"] for r in sweep.runs}
    if unknown:
        raise ValueError(f"not runs of this sweep: {sorted(unknown)}")
    logs = sweep.ws.path("rows", None, None, "logs")
    ex = submitit.AutoExecutor(folder=logs, cluster=None if cluster == "slurm" else cluster)
    if cluster == "slurm" and ex.cluster != "slurm":
        raise RuntimeError("submit: no SLURM here (sbatch not found); use cluster='local' to try the path")
    ex.update_parameters(name="tem-study", **params)
    records: dict[str, dict] = {}
    for attempt in range(max_retries + 1):
        if not todo:
            break
        jobs = ex.map_array(run_one, [str(sweep.ws.work_dir)] * len(todo), [sweep_config] * len(todo), todo,
                            [device] * len(todo))
        for rid, job in zip(todo, jobs):
            records[rid] = {"id": rid, "job_id": job.job_id, "attempt": attempt, "state": "submitted"}
            write_json(_job_path(sweep, rid), {**records[rid], "cluster": cluster, "logs": str(logs)})
        log(f"submitted {len(jobs)} run(s) as array {jobs[0].job_id.split('_')[0]} ({cluster}); logs in {logs}")
        if not wait:
            break
        failed = []
        for rid, job in zip(todo, jobs):
            try:
                records[rid].update(job.result())
            except Exception as e:  # noqa: BLE001 - a job's own exception, re-raised by submitit
                records[rid].update(state="failed", why=f"{type(e).__name__}: {str(e)[-300:]}")
                failed.append(rid)
        if failed and attempt < max_retries:
            log(f"{len(failed)} run(s) failed; resubmitting: {failed}")
        todo = failed
    return list(records.values())


def _job_path(sweep, run_id: str) -> Path:
    return sweep.ws.path("rows", None, None, "jobs", f"{run_id}.json")


def job_record(sweep, run_id: str) -> dict | None:
    """The last job submitted for ``run_id`` (id, attempt, cluster, logs), or None."""
    p = _job_path(sweep, run_id)
    return read_json(p) if p.is_file() else None
