"""The sweep's bookkeeping: amounts, run ids and order, configuration checks."""
import pytest

from tem_lib.study import SweepConfig, list_runs, n_synthetic, run_id


def test_amounts():
    assert n_synthetic(0, 10) == 0 and n_synthetic(7, 10) == 7 and n_synthetic("5x", 10) == 50
    assert n_synthetic("0.5x", 50) == 25
    for bad in ("5", "x5", -1, "fivex"):
        with pytest.raises(ValueError, match="synthetic amount"):
            n_synthetic(bad, 10)


def test_runs_are_listed_in_a_fixed_order_with_stable_ids():
    cfg = SweepConfig.from_dict({"splits": [0, 1], "n_train": [10, 50], "amounts": [0, "2x"], "seeds": [0]})
    runs = list_runs(cfg)
    assert len(runs) == 8 and runs[0]["id"] == run_id(0, 10, 0, 0) == "split0-n10-syn0-seed0"
    assert runs[1] == {"id": "split0-n10-syn2x-seed0", "split": 0, "n_train": 10, "amount": "2x",
                       "n_synthetic": 20, "seed": 0}
    with pytest.raises(ValueError, match="N = 50 is not in the split file"):
        list_runs(cfg, n_available=[10, 100])


def test_config_is_checked():
    with pytest.raises(ValueError, match="unknown keys"):
        SweepConfig.from_dict({"split": [0]})
    with pytest.raises(ValueError, match="synthetic amount"):
        SweepConfig.from_dict({"amounts": [0, "lots"]})
