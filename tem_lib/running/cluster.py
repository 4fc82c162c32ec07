"""Job arrays through submitit: SLURM, or local processes / this process to try the path out.
The submitter knows nothing of what a job does: the caller gives the job function and its
arguments (the study's :func:`tem_lib.study.cluster.submit` gives one run id per job).
"""
from __future__ import annotations

from pathlib import Path


def submit_array(job, args: list[tuple], keys: list[str], folder, cluster: str = "slurm", wait: bool = False,
                 max_retries: int = 0, log=print, on_submit=None, name: str = "tem-job", **params) -> list[dict]:
    """Submit ``job(*a)`` for each ``a`` of ``args`` (``keys`` name them) as one submitit array.

    ``cluster``: ``"slurm"``, ``"local"`` (subprocesses) or ``"debug"`` (this process). ``params``:
    submitit's executor parameters (``timeout_min``, ``slurm_partition``, ``gpus_per_node`` ...).
    ``on_submit(key, record)``: called for every submitted job (e.g. to record it beside the
    job's output). ``wait``: wait for the jobs and resubmit the failed ones up to ``max_retries``
    times. Returns one record per key: key, job id, attempt, state (and the job's result, a dict,
    merged in, or ``why`` it failed)."""
    import submitit
    if len(args) != len(keys):
        raise ValueError(f"submit_array: {len(args)} argument tuples for {len(keys)} keys")
    folder = Path(folder)
    ex = submitit.AutoExecutor(folder=folder, cluster=None if cluster == "slurm" else cluster)
    if cluster == "slurm" and ex.cluster != "slurm":
        raise RuntimeError("submit: no SLURM here (sbatch not found); use cluster='local' to try the path")
    ex.update_parameters(name=name, **params)
    todo = dict(zip(keys, args))
    records: dict[str, dict] = {}
    for attempt in range(max_retries + 1):
        if not todo:
            break
        jobs = ex.map_array(job, *zip(*todo.values()))
        for key, j in zip(todo, jobs):
            records[key] = {"id": key, "job_id": j.job_id, "attempt": attempt, "state": "submitted"}
            if on_submit is not None:
                on_submit(key, records[key])
        log(f"submitted {len(jobs)} job(s) as array {jobs[0].job_id.split('_')[0]} ({cluster}); logs in {folder}")
        if not wait:
            break
        failed = {}
        for (key, a), j in zip(todo.items(), jobs):
            try:
                records[key].update(j.result())
            except Exception as e:  # noqa: BLE001 - a job's own exception, re-raised by submitit
                records[key].update(state="failed", why=f"{type(e).__name__}: {str(e)[-300:]}")
                failed[key] = a
        if failed and attempt < max_retries:
            log(f"{len(failed)} job(s) failed; resubmitting: {list(failed)}")
        todo = failed
    return list(records.values())
