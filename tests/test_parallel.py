"""Data-parallel training under `accelerate launch` / torchrun, on the CPU (gloo): one process
trains exactly as a plain run; two processes end with identical weights on both."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
JOB = ROOT / "tests" / "parallel_job.py"
BIN = Path(sys.executable).parent


def _env():
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}


def _launch(cmd, tmp_path, name):
    out = tmp_path / name
    r = subprocess.run([*cmd, str(JOB), str(out)], cwd=ROOT, env=_env(), capture_output=True, text=True,
                       timeout=600, check=False)
    assert r.returncode == 0, r.stderr[-3000:]
    return out, [json.loads(p.read_text()) for p in sorted(out.glob("rank*.json"))]


@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    """The same job in a plain python process."""
    out = tmp_path_factory.mktemp("plain") / "run"
    r = subprocess.run([sys.executable, str(JOB), str(out)], cwd=ROOT, env=_env(), capture_output=True, text=True,
                       timeout=600, check=False)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads((out / "rank0.json").read_text())


@pytest.mark.slow  # protects: `accelerate launch` gives the plain run (torchrun with 2 processes is tested below)
def test_accelerate_launch_one_process_is_the_plain_run(plain, tmp_path):
    out, ranks = _launch([str(BIN / "accelerate"), "launch", "--cpu", "--num_processes", "1", "--num_machines", "1",
                          "--mixed_precision", "no", "--dynamo_backend", "no"], tmp_path, "one")
    assert len(ranks) == 1 and ranks[0] == plain
    assert (out / "detector" / "model.safetensors").is_file() and (out / "fit" / "checkpoint" / "state.json").is_file()


def test_two_processes_average_gradients_and_stay_identical(plain, tmp_path):
    out, ranks = _launch([str(BIN / "torchrun"), "--nproc_per_node", "2", "--master_port", "29613"], tmp_path, "two")
    assert [r["n"] for r in ranks] == [2, 2]
    assert ranks[0] == ranks[1]  # one model: the gradients were averaged every step
    assert ranks[0]["fit"] != plain["fit"]  # from twice the data per step
    state = json.loads((out / "fit" / "checkpoint" / "state.json").read_text())
    assert state["step"] == 6 and (out / "detector" / "detector.json").is_file()
