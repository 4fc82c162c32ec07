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
    assert condition_name(0) == "EXP" and condition_name("2x", "ldm") == "EXP+GEN (2x)"


def test_runs_are_listed_in_a_fixed_order_with_stable_ids(small_ws):
    sweep = Sweep(small_ws, {"amounts": [0, "2x"], "seeds": [0]})
    assert sweep.cells() == [(0, 2), (0, 4), (1, 2), (1, 4)]  # None: every split and N of the split file
    runs = sweep.runs
    assert len(runs) == 8 and runs[0]["id"] == run_id(0, 2, 0, 0) == "split0-n2-syn0-seed0"
    assert runs[1] == {"id": "split0-n2-syn2x-seed0", "split": 0, "n_train": 2, "amount": "2x",
                       "n_synthetic": 4, "seed": 0, "augment": "ldm", "condition": "EXP+GEN (2x)"}
    assert runs[0]["augment"] == "none" and runs[0]["condition"] == "EXP"
    assert sweep.baseline(runs[1]) is runs[0] and sweep.pool_size(0, 4, "ldm") == 8
    with pytest.raises(ValueError, match=r"N = \[50\] not in the split file"):
        Sweep(small_ws, {"n_train": [2, 50]})
    with pytest.raises(ValueError, match="no split 7"):
        Sweep(small_ws, {"splits": [7]})
    # augmenting at some N only: EXP keeps every N, the generator of the other N is never needed
    some = Sweep(small_ws, {"amounts": [0, "2x"], "seeds": [0], "augment_n_train": [4]})
    assert [r["id"] for r in some.runs] == ["split0-n2-syn0-seed0", "split0-n4-syn0-seed0", "split0-n4-syn2x-seed0",
                                            "split1-n2-syn0-seed0", "split1-n4-syn0-seed0", "split1-n4-syn2x-seed0"]
    assert some.pool_size(0, 2, "ldm") == 0 and some.prepare(0, 2, "ldm") is None and some.pool_size(0, 4, "ldm") == 8
    with pytest.raises(ValueError, match=r"augment_n_train: N \[3\] not in the sweep's N \[2, 4\]"):
        Sweep(small_ws, {"augment_n_train": [3]})


def test_artifacts_go_where_the_workspace_says(small_ws):
    sweep = Sweep(small_ws, {"splits": [1], "n_train": [4]})
    run = sweep.runs[1]
    assert sweep.run_dir(run).parent == small_ws.work_dir / "detector" / "split1" / "n4"
    assert sweep.run_dir(run).name.startswith(run["id"] + "-")
    other = Sweep(small_ws, {"splits": [1], "n_train": [4], "training": {"lr": 1e-4}})
    assert other.run_dir(other.runs[1]) != sweep.run_dir(run)  # other settings: never the old checkpoint
    assert sweep.row_path(run["id"]) == small_ws.work_dir / "rows" / f"{run['id']}.json"
    assert sweep.model_dir(1, 4, "ldm").parent == small_ws.work_dir / "ldm" / "split1" / "n4"
    other = Sweep(small_ws, {"splits": [1], "n_train": [4],
                             "augment_config": {"ldm": {"ldm_config": {"denoiser_training": {"steps": 5}}}}})
    assert other.model_dir(1, 4, "ldm") != sweep.model_dir(1, 4, "ldm")  # another generator config never resumes this one
    assert sweep.pools() == []  # nothing generated yet


def test_generators_and_pools_are_keyed_by_the_resolved_configuration(small_ws):
    """Keys hash the whole LDM configuration, library defaults included: naming a default
    explicitly is the same generator; a quality-filtered pool is another pool."""
    plain = Sweep(small_ws, {"splits": [1], "n_train": [4]})
    def ldm(**config):
        return Sweep(small_ws, {"splits": [1], "n_train": [4], "augment_config": {"ldm": config}})
    explicit = ldm(ldm_config={"autoencoder": {"noise_model": "fitted"}})
    assert explicit.model_dir(1, 4, "ldm") == plain.model_dir(1, 4, "ldm")
    assert explicit.pool_dir(1, 4, "ldm") == plain.pool_dir(1, 4, "ldm")
    no_noise = ldm(ldm_config={"autoencoder": {"noise_model": "none"}})
    assert no_noise.model_dir(1, 4, "ldm") != plain.model_dir(1, 4, "ldm")
    filtered = ldm(quality_filter=True, filter_segmenter_steps=2)
    assert filtered.model_dir(1, 4, "ldm") == plain.model_dir(1, 4, "ldm")
    assert filtered.pool_dir(1, 4, "ldm") != plain.pool_dir(1, 4, "ldm")
    run = filtered.runs[1]
    assert filtered._settings(run)["augment_config"]["quality_filter"]
    assert not plain._settings(plain.runs[1])["augment_config"]["quality_filter"]
    assert "augment_config" not in plain._settings(plain.runs[0])  # EXP rows do not depend on the generator
    qf = filtered.strategy("ldm").quality(filtered.cell(1, 4, "ldm"))
    crops = small_ws.train(1, 4)
    keep, record = qf(np.stack([c.image for c in crops]), crops)
    assert keep.shape == (4,) and record["n_generated"] == 4 and "4 real crops" in record["by"]


def test_profiles_written_before_the_generator_settings_moved_still_give_the_same_runs(small_ws):
    """The generator's settings live in ``augment_config.ldm`` (``inpaint`` shares them); a
    profile that sets them at the sweep's top level, as profiles did before, is read into that
    entry with a warning and gives the same run ids, row keys, folders and pools."""
    old = {"amounts": [0, 2], "splits": [0], "augment": ["ldm", "inpaint"], "steps": 3, "sampler": "ddim",
           "batch_size": 4, "ldm_config": {"denoiser_training": {"steps": 5}},
           "augment_config": {"inpaint": {"feather": 0.0}}}
    new = {"amounts": [0, 2], "splits": [0], "augment": ["ldm", "inpaint"],
           "augment_config": {"inpaint": {"feather": 0.0},
                              "ldm": {"steps": 3, "sampler": "ddim", "batch_size": 4,
                                      "ldm_config": {"denoiser_training": {"steps": 5}}}}}
    with pytest.warns(FutureWarning, match="belong to the strategies now"):
        before = Sweep(small_ws, SweepConfig.from_dict(old))
    after = Sweep(small_ws, new)
    assert [r.id for r in before.runs] == [r.id for r in after.runs]
    for a, b in zip(before.runs, after.runs):
        assert before._settings(a) == after._settings(b) and before.run_dir(a) == after.run_dir(b)
        if a.n_synthetic:
            assert before.pool_dir(0, a.n_train, a.augment) == after.pool_dir(0, b.n_train, b.augment)
    inpaint = after.strategy("inpaint").config
    assert (inpaint.steps, inpaint.sampler, inpaint.feather) == (3, "ddim", 0.0)  # the generator's, and its own
    assert after.model_dir(0, 2, "inpaint") == after.model_dir(0, 2, "ldm")  # one generator per cell
    with pytest.raises(TypeError, match="trains no model per cell"):
        after.model_dir(0, 2, "copy_paste")
    with pytest.raises(ValueError, match="name the strategy"):
        condition_name("2x")


def test_config_is_checked():
    with pytest.raises(ValueError, match="unknown keys"):
        SweepConfig.from_dict({"split": [0]})
    with pytest.raises(ValueError, match="synthetic amount"):
        SweepConfig.from_dict({"amounts": [0, "lots"]})


ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", sorted(p.stem for p in (ROOT / "profiles").glob("*.yaml")))
def test_every_profile_builds_its_sweep_models_and_detector(name):
    """A typo in a GPU profile must fail here, not an hour into a lent machine's run."""
    from tem_lib.augment import get_strategy, strategies
    from tem_lib.detection.config import DetectorConfig, DetTrainConfig
    from tem_lib.running.profiles import load_profile
    from tem_lib.study import SweepConfig
    from tem_lib.unet_study import UNetStudyConfig
    profile = load_profile(name, ROOT)
    cfg = SweepConfig.from_dict(profile["common"].get("sweep"))
    UNetStudyConfig.from_dict(profile.get("08_unet_confidence", {}).get("study"))
    for g in {*cfg.augment, *cfg.augment_config}:  # each strategy's config, the generator's LDMConfig resolved
        get_strategy(g, {**strategies()[g].sweep_defaults(cfg), **cfg.augment_config.get(g, {})}).describe()
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


def test_gains_pooled_over_seeds_hold_the_training_noise():
    """Two training seeds that disagree widen the pooled interval; seeds that agree do not."""
    import pandas as pd

    from tem_lib.analysis import _pooled_over_seeds
    metrics = ["det_f1", "cls_f1", "harmonic"]

    def table(seed_gains):
        rows, reps = [], {}
        for (split, seed), g in seed_gains.items():
            rid = f"split{split}-seed{seed}"
            reps[rid] = pd.DataFrame(np.full((200, 3), g) + np.random.default_rng(seed).normal(0, 1e-3, (200, 3)),
                                     columns=metrics)
            rows += [{"metric": m, "gain": g, "split": str(split), "n_train": 10, "n_from": 10, "amount": "2x",
                      "augment": "ldm", "seed": seed, "run": rid} for m in metrics]
        return pd.DataFrame(rows), reps

    agree = _pooled_over_seeds(*table({(0, 0): 0.05, (0, 1): 0.05, (1, 0): 0.05, (1, 1): 0.05}), 200, 0)
    assert [g["split"].iloc[0] for g in agree] == ["0", "1", "pooled"]
    agree = agree[-1]
    h = agree.set_index("metric").loc["harmonic"]
    assert h.gain == pytest.approx(0.05) and h.ci_high - h.ci_low < 0.01 and agree["seed"].eq("all").all()
    assert agree["n_from"].eq(10).all()  # the baseline's N (gain_table: EXP's own N, or the smallest with over="n")
    split0, _, split = _pooled_over_seeds(*table({(0, 0): 0.2, (0, 1): -0.2, (1, 0): 0.0, (1, 1): 0.0}), 200, 0)
    assert split0.set_index("metric").loc["harmonic", "ci_low"] == pytest.approx(-0.2, abs=0.01)
    h = split.set_index("metric").loc["harmonic"]
    # split 0's seeds resampled: its mean is -0.2, 0 or +0.2; pooled with split 1 that is -0.1..+0.1
    assert h.gain == pytest.approx(0.0) and h.ci_low == pytest.approx(-0.1, abs=0.01)
    assert h.ci_high == pytest.approx(0.1, abs=0.01) and 0.3 < h.p_gain_positive < 0.7


def test_row_columns_are_written_and_parsed_in_one_place():
    from tem_lib.study.rows import VAL_PREFIX, metric_column, metric_ious, parse_metric_column, size_column
    assert metric_column("harmonic", 0.5) == "harmonic@0.5" and metric_column("f1_loop", 0.1, VAL_PREFIX) == \
        "valthr_f1_loop@0.1"
    for prefix in ("", VAL_PREFIX):
        for metric in ("det_f1", "f1_空洞", "f1_loop_111"):
            assert parse_metric_column(metric_column(metric, 0.7, prefix)) == (prefix, metric, 0.7)
    assert parse_metric_column("val_threshold") is None and parse_metric_column("a@b") is None
    cols = ["harmonic@0.5", "harmonic@0.1", "valthr_harmonic@0.3", "det_f1@0.7", "id"]
    assert metric_ious(cols) == [0.1, 0.5] and metric_ious(cols, prefix=VAL_PREFIX) == [0.3]
    assert size_column("density", "loop") == "density_err_loop"
    with pytest.raises(ValueError):
        size_column("count", "loop")


def test_a_refitted_prior_gets_a_new_pool(small_ws):
    """Pools are keyed by the prior itself, not only its kind: a refitted prior never meets an old pool."""
    from tem_lib.priors import fit_prior
    from tem_lib.priors.cells import cell_prior, save_cell_prior
    sweep = Sweep(small_ws, {"splits": [0], "n_train": [2], "amounts": [0, 2]})
    original = cell_prior(small_ws, 0, 2, "parametric")
    before = sweep.pool_dir(0, 2, "ldm")
    try:
        save_cell_prior(small_ws, 0, 2, "parametric", fit_prior(small_ws.train(0, 4), "parametric",
                                                                 classes=small_ws.classes))
        assert sweep.pool_dir(0, 2, "ldm") != before and sweep.pool_dir(0, 2, "ldm").parent == before.parent
    finally:
        save_cell_prior(small_ws, 0, 2, "parametric", original)
    assert sweep.pool_dir(0, 2, "ldm") == before
