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
