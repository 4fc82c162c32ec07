"""The sweep through submitit: a smoke sweep end to end with the local executor, failed runs
resubmitted, rows safe against two jobs on the same run."""
import json
import time

import pytest

from tem_lib.study import Sweep, cluster

TINY = {"splits": [0], "n_train": [2], "amounts": [0, 2], "augment": ["copy_paste"], "n_test": 2, "n_val": 2,
        "detector": {"fpn_channels": 16, "representation_size": 32, "mask_head_channels": 16},
        "training": {"epochs": 1, "iters_per_epoch": 2, "batch_size": 2, "warmup_iters": 1}}


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    from tem_lib import workspace
    from tem_lib.simulate import generate_dataset, preset
    root = tmp_path_factory.mktemp("cluster")
    data = generate_dataset(root / "data", preset(height=512, width=512), n_images=4, seed=5, workers=1)
    return workspace.prepare(root / "work", data, n_train=(2, 4), n_splits=2, seed=0, n_val=3)


def test_local_executor_runs_a_smoke_sweep_end_to_end(ws):
    records = cluster.submit(ws.work_dir, TINY, cluster="local", device="cpu", wait=True, timeout_min=20,
                             log=lambda *a: None)
    assert sorted(r["id"] for r in records) == ["split0-n2-copy_paste2-seed0", "split0-n2-syn0-seed0"]
    assert all(r["state"] == "ran" for r in records), records
    sweep = Sweep(ws, TINY)
    assert all(sweep.is_done(r) for r in sweep.runs) and len(sweep.collect()) == 2
    job = cluster.job_record(sweep, "split0-n2-syn0-seed0")
    logs = list((ws.work_dir / "rows" / "logs").glob(f"{job['job_id']}*_log.out"))
    assert logs, "submitit's log lies beside the rows"
    assert not list((ws.work_dir / "rows").glob("*.lock"))
    # again: everything is done, nothing is submitted
    assert cluster.submit(ws.work_dir, TINY, cluster="local", wait=True, log=lambda *a: None) == []


@pytest.mark.slow  # protects: --wait --max-retries resubmits a failed run (the end-to-end test above covers submit)
def test_failed_runs_are_resubmitted(ws, monkeypatch):
    cfg = {**TINY, "seeds": [1]}
    calls = {}
    real_run = Sweep.run

    def flaky(self, run):
        calls[run["id"]] = calls.get(run["id"], 0) + 1
        if calls[run["id"]] == 1:
            raise RuntimeError("node died")
        return real_run(self, run)
    monkeypatch.setattr(Sweep, "run", flaky)
    records = cluster.submit(ws.work_dir, cfg, cluster="debug", device="cpu", wait=True, max_retries=1,
                             log=lambda *a: None)
    assert {r["state"] for r in records} == {"ran"} and {r["attempt"] for r in records} == {1}
    assert set(calls.values()) == {2}


def test_two_jobs_never_write_one_run(ws, tmp_path):
    lock = tmp_path / "r.lock"
    with cluster.run_lock(lock):
        with pytest.raises(cluster.RunLocked, match="running elsewhere"):
            with cluster.run_lock(lock):
                pass
    assert not lock.exists()
    lock.write_text(json.dumps({"host": "gone", "pid": 1, "since": time.time() - 72 * 3600}))
    with cluster.run_lock(lock):  # a dead job's lock is taken over
        assert json.loads(lock.read_text())["pid"] != 1
    # a job given a run that another job holds returns without training
    cfg = {**TINY, "seeds": [2]}
    sweep = Sweep(ws, cfg)
    rid = sweep.runs[0]["id"]
    with cluster.run_lock(sweep.row_path(rid).with_suffix(".lock")):
        out = cluster.run_one(str(ws.work_dir), cfg, rid, "cpu")
    assert out["state"] == "locked" and not sweep.is_done(sweep.runs[0])
    with pytest.raises(ValueError, match="not runs of this sweep"):
        cluster.submit(ws.work_dir, cfg, ["nope"], cluster="debug", log=lambda *a: None)


def test_slurm_needs_sbatch(ws, capsys):
    from tem_lib.study import _main
    with pytest.raises(RuntimeError, match="no SLURM here"):
        cluster.submit(ws.work_dir, TINY, cluster="slurm", log=lambda *a: None)
    assert _main(["--profile", "smoke", "--work-dir", str(ws.work_dir), "--submit", "slurm"]) == 2
    assert "no SLURM here" in capsys.readouterr().err
