import numpy as np
import pytest

from tem_lib.simulate import preset, simulate


@pytest.fixture(scope="session")
def small_cfg():
    return preset(height=256, width=320)


@pytest.fixture(scope="session")
def sim_samples(small_cfg):
    """Four small simulated micrographs (seeded)."""
    return simulate(small_cfg, 4, seed=3, workers=1)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture(scope="session")
def small_ws(tmp_path_factory, small_cfg):
    """A workspace over 4 simulated 512-px micrographs: 16 crops, 2 splits, N 2/4."""
    from tem_lib import workspace
    from tem_lib.simulate import generate_dataset
    root = tmp_path_factory.mktemp("ws")
    cfg = preset(height=512, width=512)
    data = generate_dataset(root / "data", cfg, n_images=4, seed=5, workers=1)
    return workspace.prepare(root / "work", data, n_train=(2, 4), n_splits=2, seed=0, n_val=3)


@pytest.fixture(scope="session", autouse=True)
def foundation_cache(tmp_path_factory):
    """One cache of trained-once artifacts (foundation detectors) for the whole session, out of
    the user's ~/.cache; notebooks run by papermill inherit it through the environment."""
    import os
    path = tmp_path_factory.mktemp("cache")
    old = os.environ.get("TEM_LIB_CACHE")
    os.environ["TEM_LIB_CACHE"] = str(path)
    yield path
    if old is None:
        os.environ.pop("TEM_LIB_CACHE", None)
    else:
        os.environ["TEM_LIB_CACHE"] = old
