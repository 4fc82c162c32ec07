"""Other people's data: readers that keep the data's own class set, clear errors instead of
relabelling, and notebooks 01-07 and 09 run on user folders through ``--data`` (smoke profile;
the whole pipeline on every fixture is marked slow)."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tem_lib.classes import ClassSet, preset
from tem_lib.data import load_dataset
from tem_lib.running.runner import main as pipeline_main

import userdata

ROOT = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------- readers
def test_coco_categories_are_kept_as_declared(tmp_path):
    one = load_dataset(userdata.coco_one_class(tmp_path / "one"))
    assert one.format == "coco" and [(c.id, c.name) for c in one.classes] == [(1, "loop")]
    assert {i.category_id for s in one for i in s.instances} == {1} and len(one) == 4
    vp = load_dataset(userdata.coco_void_precipitate(tmp_path / "vp"))
    assert [(c.id, c.name) for c in vp.classes] == [(7, "void"), (9, "precipitate")]
    sim = userdata.simulated(seed=12)
    # polygon outlines rasterise back to the true masks, up to the outline pixels
    for s, b in zip(sim, vp):
        a, r = s.masks().any(0), b.masks().any(0)
        assert (a & r).sum() / (a | r).sum() > 0.85
    # the json file itself is a dataset path too, and a folder's single COCO json is found
    assert len(load_dataset(tmp_path / "vp" / "data.json")) == 4
    assert len(load_dataset(tmp_path / "one" / "annotations" / "instances_train.json")) == 4


def test_a_coco_file_is_never_relabelled(tmp_path):
    root = userdata.coco_one_class(tmp_path / "one")
    with pytest.raises(ValueError, match="differ from the class set 'fecral'.*does not relabel"):
        load_dataset(root, classes="fecral")
    ann = root / "annotations" / "instances_train.json"
    good = json.loads(ann.read_text())
    for cats, match in [([{"id": 0, "name": "bg"}], "ids must be integers in 1..255"),
                        ([{"id": 300, "name": "x"}], "ids must be integers in 1..255"),
                        ([{"id": 1, "name": "a"}, {"id": 1, "name": "b"}], "category id 1 declared twice"),
                        ([{"id": 1}], "needs an 'id' and a 'name'"),
                        ([{"id": 2, "name": "loop"}], "category_id 1, which the file does not declare")]:
        ann.write_text(json.dumps({**good, "categories": cats}))
        with pytest.raises(ValueError, match=match) as e:
            load_dataset(root)
        assert "instances_train.json" in str(e.value)
    ann.write_text(json.dumps(good))
    (root / "annotations" / "other.json").write_text(json.dumps(good))
    with pytest.raises(ValueError, match="several COCO files"):
        load_dataset(root)


def test_yolo_segmentation_labels(tmp_path):
    ds = load_dataset(userdata.yolo(tmp_path / "y"))
    assert ds.format == "yolo" and ds.classes.names == ("dot", "loop_a", "loop_b")
    assert [c.display for c in ds.classes] == ["dot", "loop a", "loop b"]
    sim = userdata.simulated(seed=13)
    assert [len(s.instances) for s in ds] == [len(s.instances) for s in sim]
    assert sorted(np.concatenate([s.labels for s in ds])) == sorted(np.concatenate([s.labels for s in sim]))
    lab = tmp_path / "y" / "labels" / "train" / f"{sim[0].name}.txt"
    for line, match in [("0 0.1 0.1 0.2 0.2", "bounding box"), ("5 0.1 0.1 0.2 0.2 0.3 0.1", "class index 5"),
                        ("0 0.1 0.1 0.2", "even number"), ("0 1.5 0.1 0.2 0.2 0.3 0.1", "normalised")]:
        lab.write_text(line + "\n")
        with pytest.raises(ValueError, match=match) as e:
            load_dataset(tmp_path / "y")
        assert f"{sim[0].name}.txt line 1" in str(e.value)


def test_imagej_graymask_and_microscope_files(tmp_path):
    # class codes and gray levels name no classes: the class set is asked for, never assumed
    for make, what in ((userdata.imagej, "ImageJ tables"), (userdata.graymask_tiff, "gray-level masks")):
        with pytest.raises(ValueError, match=f"{what} .*carry no class names.*classes='fecral'.*metadata.json"):
            load_dataset(make(tmp_path / f"ask-{make.__name__}"))
    ij = load_dataset(userdata.imagej(tmp_path / "ij"), classes="fecral")
    assert ij.format == "imagej" and ij.classes.name == "fecral"
    assert [len(s.instances) for s in ij] == [len(s.instances) for s in userdata.simulated(seed=14)]
    gm = load_dataset(userdata.graymask_tiff(tmp_path / "gm", nm_per_px=0.8), classes="fecral")
    assert gm.format == "graymask" and all(s.nm_per_px == pytest.approx(0.8) for s in gm)  # from the TIFF calibration
    # a user mapping declared in metadata.json: gray 255 -> "blob", nothing else
    (tmp_path / "gm" / "metadata.json").write_text(json.dumps(
        {"classes": {"classes": [{"id": 1, "name": "blob", "gray": 255}]}}))
    with pytest.raises(ValueError, match=r"unknown gray level\(s\) \[85, 170\]; class set 'custom'"):
        load_dataset(tmp_path / "gm")
    dm = load_dataset(userdata.graymask_dm3(tmp_path / "dm", nm_per_px=0.6), classes="fecral")
    assert [p.suffix for p in sorted((tmp_path / "dm" / "images").iterdir())] == [".dm3"] * 4
    assert all(s.nm_per_px == pytest.approx(0.6) for s in dm)  # from the DM calibration (rosettasciio)
    sim = userdata.simulated(seed=17)
    assert [len(s.instances) for s in dm] == [len(s.instances) for s in sim]
    assert np.allclose(dm[0].image, (sim[0].image - sim[0].image.min()) / np.ptp(sim[0].image), atol=1e-5)
    ours = load_dataset(userdata.ours(tmp_path / "ours"))
    assert ours.classes.name == "fecral" and ours.classes[1].gray == 255  # from its metadata.json


def test_microscope_file_errors_name_the_file(tmp_path):
    from tem_lib.data import read_image
    (tmp_path / "x.dm4").write_bytes(b"not a DM file")
    with pytest.raises(ValueError, match="x.dm4: unreadable microscope file"):
        read_image(tmp_path / "x.dm4")


def test_class_set_round_trip_and_checks():
    fec = preset("fecral_cavities")
    assert ClassSet.from_dict(fec.to_dict()) == fec
    with pytest.raises(ValueError, match="duplicate class ids"):
        ClassSet.from_names(["a", "b"], ids=[3, 3])
    with pytest.raises(ValueError, match="unknown class-set preset"):
        preset("nope")
    assert ClassSet.from_names(["one"]).classes[0].gray == 255


# ----------------------------------------------------------------------------- notebooks 01-07 and 09
def run_data(data: Path, name: str, tmp_path: Path, only=None, params=()) -> Path:
    """``./run_all.sh --data DATA --name NAME --profile smoke`` (in-process), runs/ under tmp."""
    args = ["--profile", "smoke", "--data", str(data), "--name", name, "--runs-dir", str(tmp_path / "nb"),
            "-p", "n_train", "[5, 10]", "-p", "work_dir", str(tmp_path / "work"),
            "-p", "figures_dir", str(tmp_path / "figures")]
    for k, v in params:
        args += ["-p", k, v]
    for o in only or ():
        args += ["--only", o]
    assert pipeline_main(args) == 0
    return tmp_path / "figures"


def smoke_sweep(**changes) -> str:
    import yaml
    sweep = yaml.safe_load((ROOT / "profiles" / "smoke.yaml").read_text())["common"]["sweep"]
    return json.dumps({**sweep, **changes})


def check_class_set_flows_through(tmp_path, names, n_detectors, strategies):
    """What a user's class set must reach: dataset.json, every table of 01/02/05/06, the
    detectors' heads (re-initialised from the foundation's), the figures."""
    classes = ClassSet.from_dict(json.loads((tmp_path / "work" / "dataset.json").read_text())["classes"])
    assert set(classes.names) == names
    figs = tmp_path / "figures"
    displays = {c.display for c in classes}
    assert set(pd.read_csv(figs / "01_class_counts.csv")["class"]) == displays
    assert set(pd.read_csv(figs / "02_ks_table.csv")["class"]) - {"all"} == names
    assert {f"f1_{n}" for n in names} <= set(pd.read_csv(figs / "05_metrics.csv").columns)
    assert set(pd.read_csv(figs / "05_confusion.csv")["true"]) <= displays
    metas = [json.loads(p.read_text()) for p in (tmp_path / "work" / "detector").rglob("detector.json")]
    ours = [m for m in metas if m.get("class_names") == list(classes.names)]
    assert len(ours) == n_detectors
    assert all(m["init_weights"]["heads"] == "reinitialised" for m in ours)
    assert {m["init_weights"]["from_classes"][0] for m in ours} == {"black_dot"}
    if (figs / "06_runs.csv").is_file():
        rows = pd.read_csv(figs / "06_runs.csv")
        assert {f"f1_{n}@0.5" for n in names} <= set(rows.columns)
        assert set(rows["augment"]) == strategies
    return classes


def test_a_users_class_set_reaches_priors_detector_heads_and_metrics(tmp_path):
    """Two classes with ids 7 and 9 (polygons): notebooks 01, 02 and 05, EXP only (fast; the
    whole pipeline with every strategy is the slow test below)."""
    run_data(userdata.coco_void_precipitate(tmp_path / "data"), "vp", tmp_path, only=["01", "02", "05"],
             params=[("sweep", smoke_sweep(amounts=[0]))])
    check_class_set_flows_through(tmp_path, {"void", "precipitate"}, n_detectors=1, strategies=set())


@pytest.mark.slow  # protects: notebooks 03-07 and 09 (every strategy, the sweep, figures, quantify) on user classes
@pytest.mark.parametrize("make, name, names", [
    (userdata.coco_one_class, "loop", {"loop"}),
    (userdata.coco_void_precipitate, "vp", {"void", "precipitate"}),
    (userdata.yolo, "yolo", {"dot", "loop_a", "loop_b"}),
])
def test_notebooks_run_on_user_data(tmp_path, make, name, names):
    figs = run_data(make(tmp_path / "data"), name, tmp_path)
    assert not (tmp_path / "nb" / "08_unet_confidence.ipynb").exists()  # --data runs 01-07 and 09, as the README says
    assert (tmp_path / "nb" / "09_quantify.ipynb").is_file()
    # N 5/10 x (EXP, ldm, inpaint, copy_paste, simulator): every strategy serves these classes, and every
    # detector of these classes started from the cached foundation (or the simulator pretraining on top of
    # it) with fresh class heads; the rest of the network transferred
    classes = check_class_set_flows_through(tmp_path, names, n_detectors=10,
                                            strategies={"none", "ldm", "inpaint", "copy_paste", "simulator"})
    assert len(pd.read_csv(figs / "06_runs.csv")) == 10
    assert (figs / "07_realism.png").is_file()
    comparison = pd.read_csv(figs / "09_comparison.csv")  # the best detector quantified the held-out micrographs
    assert set(comparison["class"]) == {c.display for c in classes}
    card = json.loads((tmp_path / "work" / "models" / "best" / "model.json").read_text())
    assert ClassSet.from_dict(card["classes"]).matches(classes)


@pytest.mark.parametrize("make", [
    userdata.graymask_dm3,
    pytest.param(userdata.imagej, marks=pytest.mark.slow),  # protects: notebook 01 on ImageJ tables
    pytest.param(userdata.graymask_tiff, marks=pytest.mark.slow),  # on calibrated 16-bit TIFFs
    pytest.param(userdata.ours, marks=pytest.mark.slow),  # on tem_lib's own folders
])
def test_01_reads_every_other_format(tmp_path, make):
    """Every reader is tested directly above; here notebook 01 runs on each format."""
    data = make(tmp_path / "data")
    params = [] if make is userdata.ours else [("classes", '"fecral"')]  # codes and gray levels: declared
    figs = run_data(data, "other", tmp_path, only=["01"], params=params)
    info = json.loads((tmp_path / "work" / "dataset.json").read_text())
    assert info["classes"]["name"] == "fecral" and info["n_crops"] == 16
    assert (figs / "01_examples.png").is_file()


def test_run_all_data_flag(tmp_path):
    """The shell entry point on a fresh folder: results under runs/NAME/, never figures/."""
    data = userdata.coco_one_class(tmp_path / "mine")
    name = f"pytest-{tmp_path.name}"
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "HOME": str(tmp_path)}
    try:
        r = subprocess.run(["./run_all.sh", "--profile", "smoke", "--only", "01", "--data", str(data),
                            "--name", name, "--nm-per-px", "0.7", "-p", "n_train", "[5, 10]"],
                           cwd=ROOT, capture_output=True, text=True, env=env, timeout=600)
        assert r.returncode == 0, r.stderr[-2000:]
        info = json.loads((ROOT / "runs" / name / "work" / "dataset.json").read_text())
        assert info["nm_per_px"] == 0.7 and info["dataset_dir"] == str(data)
        assert (ROOT / "runs" / name / "figures" / "01_class_counts.png").is_file()
        bad = subprocess.run(["./run_all.sh", "--data", str(tmp_path / "nope")], cwd=ROOT, capture_output=True,
                             text=True, env=env, timeout=600)
        assert bad.returncode == 2 and "no such dataset" in bad.stderr
    finally:
        import shutil
        shutil.rmtree(ROOT / "runs" / name, ignore_errors=True)
