"""The sweep's bookkeeping: amounts, run ids and order, cells, where its artifacts go."""
from pathlib import Path

import numpy as np
import pytest

from tem_lib.study import Sweep, SweepConfig, condition_name, n_synthetic, run_id


def test_amounts():
    assert n_synthetic(0, 10) == 0 and n_synthetic(7, 10) == 7 and n_synthetic("5x", 10) == 50
    assert n_synthetic("0.5x", 50) == 25
    for bad in ("5", "x5", -1, "fivex"):
        with pytest.raises(ValueError, match="synthetic amount"):
            n_synthetic(bad, 10)
    assert condition_name(0) == "EXP" and condition_name("2x") == "EXP+GEN (2x)"


def test_runs_are_listed_in_a_fixed_order_with_stable_ids(small_ws):
    sweep = Sweep(small_ws, {"amounts": [0, "2x"], "seeds": [0]})
    assert sweep.cells() == [(0, 2), (0, 4), (1, 2), (1, 4)]  # None: every split and N of the split file
    runs = sweep.runs
    assert len(runs) == 8 and runs[0]["id"] == run_id(0, 2, 0, 0) == "split0-n2-syn0-seed0"
    assert runs[1] == {"id": "split0-n2-syn2x-seed0", "split": 0, "n_train": 2, "amount": "2x",
                       "n_synthetic": 4, "seed": 0, "augment": "ldm", "condition": "EXP+GEN (2x)"}
    assert runs[0]["augment"] == "none" and runs[0]["condition"] == "EXP"
    assert sweep.baseline(runs[1]) is runs[0] and sweep.pool_size(0, 4) == 8
    with pytest.raises(ValueError, match=r"N = \[50\] not in the split file"):
        Sweep(small_ws, {"n_train": [2, 50]})
    with pytest.raises(ValueError, match="no split 7"):
        Sweep(small_ws, {"splits": [7]})


def test_artifacts_go_where_the_workspace_says(small_ws):
    sweep = Sweep(small_ws, {"splits": [1], "n_train": [4]})
    run = sweep.runs[1]
    assert sweep.run_dir(run).parent == small_ws.work_dir / "detector" / "split1" / "n4"
    assert sweep.run_dir(run).name.startswith(run["id"] + "-")
    other = Sweep(small_ws, {"splits": [1], "n_train": [4], "training": {"lr": 1e-4}})
    assert other.run_dir(other.runs[1]) != sweep.run_dir(run)  # other settings: never the old checkpoint
    assert sweep.row_path(run["id"]) == small_ws.work_dir / "rows" / f"{run['id']}.json"
    assert sweep.ldm_dir(1, 4).parent == small_ws.work_dir / "ldm" / "split1" / "n4"
    other = Sweep(small_ws, {"splits": [1], "n_train": [4], "ldm_config": {"denoiser_training": {"steps": 5}}})
    assert other.ldm_dir(1, 4) != sweep.ldm_dir(1, 4)  # another generator config never resumes this one
    assert sweep.pools() == []  # nothing generated yet


def test_generators_and_pools_are_keyed_by_the_resolved_configuration(small_ws):
    """Keys hash the whole LDM configuration, library defaults included: naming a default
    explicitly is the same generator; a quality-filtered pool is another pool."""
    plain = Sweep(small_ws, {"splits": [1], "n_train": [4]})
    explicit = Sweep(small_ws, {"splits": [1], "n_train": [4], "ldm_config": {"autoencoder": {"noise_model": "fitted"}}})
    assert explicit.ldm_dir(1, 4) == plain.ldm_dir(1, 4) and explicit.pool_dir(1, 4) == plain.pool_dir(1, 4)
    no_noise = Sweep(small_ws, {"splits": [1], "n_train": [4], "ldm_config": {"autoencoder": {"noise_model": "none"}}})
    assert no_noise.ldm_dir(1, 4) != plain.ldm_dir(1, 4)
    filtered = Sweep(small_ws, {"splits": [1], "n_train": [4], "quality_filter": True, "filter_segmenter_steps": 2})
    assert filtered.ldm_dir(1, 4) == plain.ldm_dir(1, 4) and filtered.pool_dir(1, 4) != plain.pool_dir(1, 4)
    run = filtered.runs[1]
    assert filtered._settings(run)["augment_config"]["quality_filter"]
    assert not plain._settings(plain.runs[1])["augment_config"]["quality_filter"]
    assert "augment_config" not in plain._settings(plain.runs[0])  # EXP rows do not depend on the generator
    qf = filtered.strategy("ldm").quality(filtered.cell(1, 4))
    crops = small_ws.train(1, 4)
    keep, record = qf(np.stack([c.image for c in crops]), crops)
    assert keep.shape == (4,) and record["n_generated"] == 4 and "4 real crops" in record["by"]


def test_config_is_checked():
    with pytest.raises(ValueError, match="unknown keys"):
        SweepConfig.from_dict({"split": [0]})
    with pytest.raises(ValueError, match="synthetic amount"):
        SweepConfig.from_dict({"amounts": [0, "lots"]})


ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", sorted(p.stem for p in (ROOT / "profiles").glob("*.yaml")))
def test_every_profile_builds_its_sweep_models_and_detector(name):
    """A typo in a GPU profile must fail here, not an hour into a lent machine's run."""
    from tem_lib.detection.config import DetectorConfig, DetTrainConfig
    from tem_lib.ldm import LDMConfig
    from tem_lib.profiles import load_profile
    from tem_lib.study import SweepConfig
    cfg = SweepConfig.from_dict(load_profile(name, ROOT)["common"].get("sweep"))
    LDMConfig.from_dict(cfg.ldm_config)
    DetectorConfig(**cfg.detector)
    DetTrainConfig(**cfg.training)


def test_runs_finished_before_folders_carried_the_settings_hash_are_found(small_ws, tmp_path):
    from tem_lib.utils import stable_hash, write_json
    sweep = Sweep(small_ws, {"splits": [0], "n_train": [2], "seeds": [7]})
    run = sweep.runs[0]
    new = sweep.run_dir(run)
    legacy = new.with_name(run["id"])
    legacy.mkdir(parents=True)
    (legacy / "predictions.json").write_text("{}")
    assert sweep.run_dir(run) == new  # no row: the old folder is not trusted
    write_json(sweep.row_path(run["id"]), {"key": stable_hash(sweep._settings(run))})
    try:
        assert sweep.run_dir(run) == legacy  # its row has this run's settings: the old folder is its run
        other = Sweep(small_ws, {"splits": [0], "n_train": [2], "seeds": [7], "training": {"lr": 1e-4}})
        assert other.run_dir(other.runs[0]) != legacy  # other settings: a new folder
    finally:
        sweep.row_path(run["id"]).unlink()
