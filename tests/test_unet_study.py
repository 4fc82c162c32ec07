"""The U-Net confidence study end to end at toy scale: grid, skipped ImageNet, rows, claims."""
import numpy as np
import pytest

from tem_lib.unet_study import UNetStudy, UNetStudyConfig, claims_table, metric_table

TINY = {"n_train": 4, "n_test": 3, "size": 64, "seeds": [0, 1], "regularizations": ["none", "l2"],
        "freezes": [0, 5], "training": {"steps": 2, "batch_size": 2, "patch_size": 64, "warmup_steps": 1},
        "pretrain_images": 4, "pretrain_steps": 2, "workspace_crops": 3, "n_boot": 50}


@pytest.mark.slow  # protects: the U-Net grid and its claims beyond what notebook 08 checks in the smoke run
def test_unet_study_runs_and_tests_the_claims(small_ws, monkeypatch, tmp_path):
    import huggingface_hub.constants as hub
    monkeypatch.setattr(hub, "HF_HUB_CACHE", str(tmp_path / "hub"))  # no ImageNet weights here
    study = UNetStudy(small_ws, TINY)
    assert "imagenet" in study.skipped and "not cached" in study.skipped["imagenet"]
    names = [c["condition"] for c in study.conditions]
    assert names == ["scratch-none-freeze0", "scratch-l2-freeze0", "simulator-none-freeze0", "simulator-none-freeze5",
                     "simulator-l2-freeze0", "simulator-l2-freeze5"]
    d = study.data("grain_boundary")
    assert d["train_images"].shape == (4, 64, 64) and d["test_truth"].any()
    assert (d["test_labels"] != d["test_truth"]).any()  # the labels carry the annotation model's errors
    rows = study.run_all(progress=False)
    assert len(rows) == 2 * 6 * 2 and (small_ws.path("unet", None, None, "rows.csv")).is_file()
    assert rows[["f1_truth", "mean_max_prob", "flip_agreement", "seed_agreement"]].notna().all().all()
    assert all(len(v) == 3 for v in rows["per_image_recall_truth"])
    claims = claims_table(rows, n_boot=50)
    assert len(claims) == 2 * 3 and set(claims["holds"].str.split().str[0]) <= {"yes", "no", "unclear"}
    table = metric_table(rows)
    assert len(table) == 12 and "[" in table.loc[0, "f1_truth"]  # seed ranges
    ws_rows = study.workspace_rows()
    assert len(ws_rows) == 6 * 2 and ws_rows["mean_max_prob"].between(0.5, 1).all()
    some = UNetStudy(small_ws, {**TINY, "workspace_conditions": ["scratch-none-freeze0"]}).workspace_rows()
    assert list(some.condition) == ["scratch-none-freeze0"] * 2
    with pytest.raises(ValueError, match="not in the grid"):
        UNetStudy(small_ws, {**TINY, "workspace_conditions": ["simulator-l2sp-freeze0"]}).workspace_rows()
    # rerun: every model is loaded, not retrained
    again = UNetStudy(small_ws, TINY).run_all(progress=False)
    np.testing.assert_allclose(again["f1_truth"], rows["f1_truth"])


def test_unet_study_config_is_checked():
    with pytest.raises(ValueError, match="unknown tasks"):
        UNetStudyConfig(tasks=("cells",))
    with pytest.raises(ValueError, match="must lie in"):
        UNetStudyConfig(annotation={"confusion": 2})
    with pytest.raises(ValueError, match=r"conditions \['simulator-l2-freeze3'\] are not in the grid"):
        UNetStudyConfig(conditions=("simulator-l2-freeze3",))


def test_unet_study_trains_only_the_conditions_asked_for(small_ws, monkeypatch, tmp_path):
    import huggingface_hub.constants as hub
    monkeypatch.setattr(hub, "HF_HUB_CACHE", str(tmp_path / "hub"))  # no ImageNet weights here
    claims = ["scratch-none-freeze0", "simulator-none-freeze0", "simulator-l2-freeze0", "simulator-none-freeze5"]
    # an ImageNet condition is left out offline like the whole ImageNet row, not refused
    study = UNetStudy(small_ws, {**TINY, "conditions": [*claims, "imagenet-l2-freeze0"]})
    assert [c["condition"] for c in study.conditions] == [
        "scratch-none-freeze0", "simulator-none-freeze0", "simulator-none-freeze5", "simulator-l2-freeze0"]
    assert len(UNetStudy(small_ws, TINY).conditions) == 6  # None: the whole grid
    with pytest.raises(ValueError, match=r"conditions \['simulator-l2sp-freeze0'\] are not in the grid"):
        UNetStudy(small_ws, {**TINY, "conditions": ["simulator-l2sp-freeze0"]})
