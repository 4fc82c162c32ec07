"""Binder's requirements are the lock's pins (minus CUDA-only packages), kept in sync."""
from tem_lib.running import envfiles


def test_binder_requirements_follow_the_lock():
    assert envfiles.main(["--check"]) == 0, "run python -m tem_lib.running.envfiles"
    lock = envfiles.lock_pins((envfiles.root() / "requirements-lock.txt").read_text())
    binder = envfiles.lock_pins((envfiles.root() / "binder" / "requirements.txt").read_text())
    assert binder[0] == f"--extra-index-url {envfiles.CPU_INDEX}"
    assert set(binder[1:]) == {p for p in lock if not envfiles.CUDA_ONLY.match(p)}
    assert "torch==2.14.1" in binder and "torchvision==0.29.1" in binder
    assert not [p for p in binder if p.lower().startswith(("nvidia-", "triton"))]
    assert (envfiles.root() / "binder" / "postBuild").stat().st_mode & 0o111
