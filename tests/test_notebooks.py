"""Every notebook runs headless under the smoke profile; assert on what it wrote."""
import json
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from tem_lib.data.splits import load_splits
from tem_lib.running.runner import NotebookFailed, list_notebooks, run_pipeline

ROOT = Path(__file__).resolve().parents[1]


def smoke_sweep() -> dict:
    import yaml
    return yaml.safe_load((ROOT / "profiles" / "smoke.yaml").read_text())["common"]["sweep"]


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("smoke")
    overrides = {"work_dir": str(out / "work"), "figures_dir": str(out / "figures"),
                 "data_dir": str(out / "data")}
    records = run_pipeline("smoke", overrides=overrides, runs_dir=out / "runs", root=ROOT,
                           log=lambda *a, **k: None)
    return out, overrides, records


def test_every_notebook_ran(smoke_run):
    out, _, records = smoke_run
    names = [nb.name for nb in list_notebooks(ROOT / "notebooks")]
    assert [r["notebook"] for r in records] == names and all(r["status"] == "ran" for r in records)
    for name in names:
        nb = nbformat.read(out / "runs" / name, as_version=4)
        assert not [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]


def test_01_wrote_dataset_splits_and_figures(smoke_run):
    out, _, _ = smoke_run
    info = json.loads((out / "work" / "dataset.json").read_text())
    assert info["n_micrographs"] == 6 and info["n_crops"] == 6 * 4 and info["crop_size"] == 256
    ds = Path(info["dataset_dir"])
    assert (ds / "annotations.json").is_file() and len(list((ds / "images").glob("*.png"))) == 6
    sp = load_splits(out / "work" / "splits.json")
    assert sp["n_train"] == [5, 10] and len(sp["splits"]) == 2
    figs = out / "figures"
    for name in ("01_examples", "01_class_counts", "01_size_shape", "01_defects_per_image",
                 "01_intensity"):
        assert (figs / f"{name}.png").stat().st_size > 5000, name
    counts = pd.read_csv(figs / "01_class_counts.csv")
    assert set(counts["class"]) == {"black dot", "1/2<111> loop", "<100> loop"}
    assert counts["fraction"].sum() == pytest.approx(1.0)
    per_image = pd.read_csv(figs / "01_defects_per_image.csv")
    assert len(per_image) == 6 and (per_image.n_defects > 0).all()


def test_02_fitted_priors_and_wrote_the_ks_table(smoke_run):
    from tem_lib import priors
    from tem_lib.data import load_dataset
    out, _, _ = smoke_run
    for sp in (0, 1):
        for n in (5, 10):
            for kind in ("bootstrap", "parametric"):
                prior = priors.load_prior(out / "work" / "priors" / f"split{sp}" / f"n{n}" / f"{kind}.json")
                assert prior.kind == kind
                maps = prior.sample(3, 256, generator=0)
                assert all(m.shape == (256, 256) for m in maps)
    figs = out / "figures"
    for name in ("02_ks_table", "02_distributions", "02_label_maps"):
        assert (figs / f"{name}.png").stat().st_size > 5000, name
    ks = pd.read_csv(figs / "02_ks_table.csv")
    assert set(ks["set"]) == {"bootstrap", "parametric", "real (train)"}
    assert set(ks["n_train"]) == {5, 10} and set(ks["split"]) == {0, 1}
    assert ks.loc[ks["class"] == "all", "ks"].between(0, 1).all()
    exported = load_dataset(out / "work" / "priors" / "split0" / "n10" / "parametric_maps")
    assert 0 < len(exported) <= 6 and all(s.instances for s in exported)


def test_03_trained_saved_and_measured_the_ldm(smoke_run):
    from tem_lib import workspace
    from tem_lib.ldm import load_pipeline
    from tem_lib.study import Sweep
    out, _, _ = smoke_run
    ws = workspace.load(out / "work")
    model = Sweep(ws, smoke_sweep()).model_dir(0, 10, "ldm")  # the sweep's own generator of the cell shown
    assert model.parent == ws.path("ldm", 0, 10)
    pipe = load_pipeline(model / "pipeline")
    assert pipe.class_ids == (1, 2, 3) and pipe.factor == 4
    for stage in ("autoencoder", "denoiser"):
        hist = pd.read_csv(model / stage / "history.csv")
        assert len(hist) == 20 and hist["loss"].notna().all()
    figs = out / "figures"
    for name in ("03_losses", "03_reconstructions", "03_samples"):
        assert (figs / f"{name}.png").stat().st_size > 5000, name
    recon = pd.read_csv(figs / "03_reconstruction.csv")
    assert recon["class"].iloc[0] == "all" and recon["survival"].between(0, 1).all()
    assert recon["psnr_db"].iloc[0] > 5


def test_04_wrote_the_cells_synthetic_pool(smoke_run):
    from tem_lib.data import load_dataset
    out, _, _ = smoke_run
    folders = sorted((out / "work" / "synthetic" / "split0" / "n10").iterdir())
    # one pool per strategy that mixes pairs in (the simulator's set is shared by the study)
    assert [f.name[:f.name.index("_cfg-")] for f in folders] == [
        "copy_paste_parametric_2", "inpaint_parametric_2", "ldm_parametric_2"]
    assert len(list((out / "work" / "synthetic" / "shared").iterdir())) == 1
    for f in folders:
        syn = load_dataset(f)
        assert len(syn) == 2 and all(s.image.shape == (256, 256) for s in syn)
        assert syn.classes.names == ("black_dot", "loop_111", "loop_100")
        meta = json.loads((f / "metadata.json").read_text())
        assert meta["strategy"] == f.name.split("_parametric")[0] and meta["use"] == "mix" and meta["synthetic"]
        assert meta["prior_kind"] == "parametric" and meta["prepare_seconds"] >= 0
    meta = json.loads((folders[2] / "metadata.json").read_text())
    assert meta["sampler"] == "dpm++" and meta["steps"] == 3 and meta["model"].endswith("pipeline")
    timing = pd.read_csv(out / "figures" / "04_samplers.csv")
    assert list(timing["sampler"]) == ["ddim", "dpm++"] and (timing["seconds"] > 0).all()
    assert (out / "figures" / "04_pairs.png").stat().st_size > 5000


def test_05_trained_the_cells_conditions_and_wrote_the_metrics(smoke_run):
    from tem_lib.detection import load_detector
    out, _, _ = smoke_run
    root = out / "work" / "detector" / "split0" / "n10"
    dirs = {p.name.rsplit("-", 1)[0]: p.name for p in root.iterdir()}  # <run id>-<settings hash>
    assert sorted(dirs) == sorted(["split0-n10-syn0-seed0", "split0-n10-syn2-seed0", "split0-n10-inpaint2-seed0",
                                   "split0-n10-copy_paste2-seed0", "split0-n10-simulator2-seed0"])
    folders = sorted(dirs)
    for f in folders:
        m = json.loads((root / dirs[f] / "metrics.json").read_text())
        assert [r["iou"] for r in m["table"]] == [0.1, 0.3, 0.5, 0.7]
        assert all(0 <= r["harmonic"] <= 1 for r in m["table"]) and m["n_test"] == 4
        assert m["training"]["pretrained"] == "foundation"
        load_detector(root / dirs[f])
        assert (out / "work" / "rows" / f"{f}.json").is_file()  # notebook 06 collects, never retrains
    training = {f: json.loads((root / dirs[f] / "metrics.json").read_text())["training"] for f in folders}
    assert training["split0-n10-syn2-seed0"]["n_synthetic"] == 2
    assert training["split0-n10-simulator2-seed0"]["n_synthetic"] == 0  # pretrained on simulations instead
    assert "shared" in training["split0-n10-simulator2-seed0"]["init_weights"]["path"]
    # every other run starts from the one cached foundation, with its (same-class) heads kept
    inits = {f: t["init_weights"] for f, t in training.items() if "simulator" not in f}
    assert len({i["path"] for i in inits.values()}) == 1
    assert all("foundation" in i["path"] and i["heads"] == "kept" for i in inits.values())
    assert (root / dirs["split0-n10-syn0-seed0"] / "val_predictions.json").is_file()
    figs = out / "figures"
    table = pd.read_csv(figs / "05_metrics.csv")
    assert set(table["condition"]) == {"EXP", "EXP+GEN (2)", "EXP+inpaint (2)", "EXP+copy_paste (2)",
                                       "EXP+simulator (2)"} and len(table) == 20
    assert table[["det_f1", "cls_f1", "harmonic"]].notna().all().all()
    assert {"f1_black_dot", "f1_loop_111", "f1_loop_100"} <= set(table.columns)
    for name in ("05_losses", "05_metrics", "05_confusion", "05_predictions"):
        assert (figs / f"{name}.png").stat().st_size > 5000, name
    assert set(pd.read_csv(figs / "05_coco_ap.csv").columns) >= {"condition", "bbox_AP", "segm_AP"}
    sizes = pd.read_csv(figs / "05_size_density.csv")  # 5 conditions x 3 classes, at 0.1 and at the validation threshold
    assert len(sizes) == 30 and sizes["threshold"].str.startswith("validation").sum() == 15
    by_score = pd.read_csv(figs / "05_score_threshold.csv")
    assert len(by_score) == 5 * 9 and (by_score.groupby("condition")["fp"].diff().dropna() <= 0).all()


def test_06_ran_the_sweep_and_measured_paired_gains(smoke_run):
    out, _, _ = smoke_run
    runs = pd.read_csv(out / "figures" / "06_runs.csv")
    assert sorted(runs["id"]) == sorted(f"split0-n{n}-{a}-seed0" for n in (5, 10)
                                        for a in ("syn0", "syn2", "inpaint2", "copy_paste2", "simulator2"))
    assert (runs.loc[runs.augment == "ldm", "condition"] == "EXP+GEN (2)").all()
    assert runs["val_threshold"].between(0.05, 0.95).all() and runs["valthr_harmonic@0.5"].between(0, 1).all()
    assert {"f1_black_dot@0.5", "f1_loop_100@0.5"} <= set(runs.columns)
    assert runs["harmonic@0.5"].between(0, 1).all()
    # per-class density and size errors at score 0.1 and at the validation threshold
    for prefix in ("", "valthr_"):
        for c in ("black_dot", "loop_111", "loop_100"):  # NaN where a class has no test defect
            err = runs[f"{prefix}density_err_{c}"]
            assert (err.ge(-1) | err.isna()).all() and f"{prefix}size_err_{c}" in runs
        assert runs[f"{prefix}density_err_black_dot"].notna().all()
    gains = pd.read_csv(out / "figures" / "06_gains.csv")
    assert set(gains["split"].astype(str)) == {"0", "pooled"} and set(gains["metric"]) == {"det_f1", "cls_f1", "harmonic"}
    assert (gains["ci_low"] <= gains["ci_high"]).all() and gains["p_gain_positive"].between(0, 1).all()
    # the observed gain is the difference of the two runs' rows
    row = runs.set_index("id")
    g = gains[(gains.split.astype(str) == "0") & (gains.n_train == 10) & (gains.metric == "harmonic")
              & (gains.augment == "ldm")]["gain"].item()
    assert g == pytest.approx(row.loc["split0-n10-syn2-seed0", "harmonic@0.5"] - row.loc["split0-n10-syn0-seed0", "harmonic@0.5"])
    for name in ("06_split_sensitivity.png", "06_split_sensitivity.pdf", "06_strategies.png", "06_strategies.pdf"):
        assert (out / "figures" / name).stat().st_size > 5000, name
    val = pd.read_csv(out / "figures" / "06_gains_valthr.csv")
    assert set(val["threshold"]) == {"val"} and set(val["augment"]) == {"ldm", "inpaint", "copy_paste", "simulator"}
    which = pd.read_csv(out / "figures" / "06_which_improves.csv")
    assert len(which) == 4 * 4 and set(which[["det_f1", "cls_f1", "harmonic"]].stack()) <= {
        "up", "down", "up (n.s.)", "down (n.s.)", "equal"}


def test_07_drew_f1_and_realism_from_artifacts(smoke_run):
    out, _, _ = smoke_run
    long = pd.read_csv(out / "figures" / "07_f1_vs_n.csv")
    assert set(long["setting"]) == {"EXP", "EXP+GEN (2)", "EXP+inpaint (2)", "EXP+copy_paste (2)", "EXP+simulator (2)"}
    assert set(long["metric"]) == {"det_f1", "cls_f1", "harmonic"}
    realism = pd.read_csv(out / "figures" / "07_realism.csv")
    assert "real training crops (floor)" in set(realism["set"]) and len(realism) >= 3
    assert (realism["frechet"] >= 0).all() and realism["kid"].notna().all()
    for name in ("07_f1_vs_n", "07_realism"):
        for ext in ("png", "pdf"):
            assert (out / "figures" / f"{name}.{ext}").stat().st_size > 1000


def test_08_tested_the_seeds_claims_on_both_tasks(smoke_run):
    out, _, _ = smoke_run
    figs = out / "figures"
    claims = pd.read_csv(figs / "08_claims.csv")
    assert set(claims["task"]) == {"grain_boundary", "defects"} and len(claims) == 6
    assert claims["holds"].str.split().str[0].isin(["yes", "no", "unclear"]).all()
    metrics = pd.read_csv(figs / "08_metrics.csv")
    assert len(metrics) == 2 * 6 and {"f1_labels", "f1_truth", "flip_agreement", "seed_agreement"} <= set(metrics)
    real = pd.read_csv(figs / "08_workspace_label_free.csv")
    assert list(real["condition"]) == ["scratch-none-freeze0", "simulator-l2-freeze0"]
    for name in ("08_annotation", "08_f1_labels_vs_truth", "08_confidence_maps", "08_claims", "08_workspace_label_free"):
        assert (figs / f"{name}.png").stat().st_size > 5000, name
    assert (out / "work" / "unet" / "pretrain" / "resnet18-encoder.safetensors").is_file()


def test_09_quantified_the_held_out_micrographs_with_the_best_detector(smoke_run):
    out, _, _ = smoke_run
    from tem_lib.quantify import load_model
    _, card = load_model(out / "work" / "models" / "best")  # portable: loads from its folder alone
    assert card.source["run"].startswith("split0-") and 0 < card.score_threshold < 1
    assert sorted(card.class_thresholds) == [1, 2, 3]  # and one per class, chosen on the same validation crops
    assert card.tile == 256 and card.nm_per_px > 0 and "validation crops" in card.threshold_source
    q = out / "work" / "quantify" / "split0"
    for name in ("defects.csv", "summary.csv", "images.csv", "predictions_coco.json", "comparison.csv"):
        assert (q / name).is_file(), name
    images = pd.read_csv(q / "images.csv")
    assert len(images) == 2 and (images.height_px == 512).all()  # the whole held-out micrographs, not crops
    assert sorted((q / "overlays").glob("*.png"))
    comparison = pd.read_csv(out / "figures" / "09_comparison.csv")
    assert list(comparison.class_id) == [1, 2, 3] and comparison.n_true.sum() > 0
    for name in ("09_overlays", "09_sizes", "09_densities"):
        assert (out / "figures" / f"{name}.png").stat().st_size > 5000, name


def test_10_made_a_labelling_project_of_held_out_micrographs(smoke_run):
    out, _, _ = smoke_run
    from tem_lib.data.images import list_images
    from tem_lib.label import LabelProject
    folder = out / "work" / "label" / "split0" / "micrographs"
    assert len(list_images(folder)) == 1  # the profile's n_demo, as plain images: no labels
    journals = sorted((folder / "label_assist" / "journal").glob("*.json"))
    assert len(journals) == 1  # the widget opened the top-ranked micrograph (its journal, no edits yet)
    project = LabelProject(folder, model=out / "work" / "models" / "best")
    assert project.open(journals[0].stem).edits == [] and not project.is_done(journals[0].stem)
    edits = pd.read_csv(out / "figures" / "10_edits.csv")
    assert (edits.edits_from_nothing == edits.defects).all() and (edits.edits_assisted > 0).all()
    assert (out / "figures" / "10_edits.png").stat().st_size > 5000


def test_sweep_resumes_reruns_on_change_and_runs_by_id(smoke_run, monkeypatch, capsys):
    import tem_lib.detection.experiment as experiment
    from tem_lib import study
    out, _, _ = smoke_run
    cfg = smoke_sweep()
    sweep = study.Sweep(out / "work", cfg, progress=False)
    assert all(sweep.is_done(r) for r in sweep.runs)

    def no_training(*a, **k):
        raise AssertionError("a finished run was trained again")
    monkeypatch.setattr(experiment, "run_condition", no_training)
    assert len(sweep.run_all(log=lambda *a: None)) == 10
    # another training seed is another run: not done
    other = study.Sweep(out / "work", {**cfg, "training": {**cfg["training"], "lr": 5e-4}}, progress=False)
    assert not any(other.is_done(r) for r in other.runs)
    # the command line: list, and one run by id (done: its row comes back without training)
    assert study._main(["--profile", "smoke", "--work-dir", str(out / "work"), "--list"]) == 0
    listed = capsys.readouterr().out.split("\n")
    assert "split0-n5-syn0-seed0\tdone" in listed
    assert study._main(["--profile", "smoke", "--work-dir", str(out / "work"), "--run", "split0-n10-syn2-seed0"]) == 0
    assert '"id": "split0-n10-syn2-seed0"' in capsys.readouterr().out
    assert study._main(["--profile", "smoke", "--work-dir", str(out / "work"), "--run", "nope"]) == 2


def test_rerun_skips_up_to_date_notebooks(smoke_run):
    out, overrides, _ = smoke_run
    records = run_pipeline("smoke", overrides=overrides, runs_dir=out / "runs",
                           root=ROOT, log=lambda *a, **k: None)
    assert {r["status"] for r in records} == {"skipped"}


def test_failure_names_notebook_and_cell(tmp_path):
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "smoke.yaml").write_text("common:\n  x: 2\n")
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    p = nbformat.v4.new_code_cell("x = 1")
    p.metadata["tags"] = ["parameters"]
    nb.cells = [p, nbformat.v4.new_code_cell("y = x + 1"), nbformat.v4.new_code_cell("1 / (x - 2)")]
    nbformat.write(nb, tmp_path / "notebooks" / "01_broken.ipynb")
    with pytest.raises(NotebookFailed, match=r"01_broken.ipynb failed in cell .*ZeroDivisionError"):
        run_pipeline("smoke", root=tmp_path, runs_dir=tmp_path / "runs", log=lambda *a, **k: None)
    assert (tmp_path / "runs" / "01_broken.failed.ipynb").is_file()
    assert not (tmp_path / "runs" / "01_broken.ipynb").exists()
    with pytest.raises(FileNotFoundError, match="no such profile"):
        run_pipeline("nope", root=tmp_path)


def test_notebooks_are_committed_clean():
    for nb_path in list_notebooks(ROOT / "notebooks"):
        nb = nbformat.read(nb_path, as_version=4)
        tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
        assert len(tagged) == 1, f"{nb_path.name}: needs exactly one 'parameters' cell"
        for c in nb.cells:
            if c.cell_type == "code":
                assert not c.outputs and c.execution_count is None, f"{nb_path.name} has outputs"


def test_profile_parameters_are_checked_and_filtered(tmp_path):
    from tem_lib.running.runner import main, notebook_parameters
    nb_path = ROOT / "notebooks" / "01_data_exploration.ipynb"
    prof = {"common": {"seed": 3, "device": "cpu"}, "01_data_exploration": {"n_micrographs": 2}}
    params = notebook_parameters(nb_path, prof, {"seed": 4})
    assert params["seed"] == 4 and params["n_micrographs"] == 2 and "device" not in params
    with pytest.raises(ValueError, match=r"sets \['n_micrograph'\], which 01_data_exploration"):
        notebook_parameters(nb_path, {"01_data_exploration": {"n_micrograph": 2}}, {})
    assert main(["--profile", "smoke", "--only", "99"]) == 2  # clear error, no traceback
