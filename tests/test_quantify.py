"""quantify: sliced inference over whole micrographs counts a defect cut by tile borders once,
portable model folders, and the command on PNG, TIFF and DM3 files, with and without labels."""
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from tem_lib.classes import preset
from tem_lib.data import Instance, Sample, load_dataset
from tem_lib.metrics.detection import Detections
from tem_lib.quantify import (
    CARD,
    ModelCard,
    export_model,
    load_model,
    merge_tiles,
    poisson_interval,
    quantify,
    sliced_predict,
    tile_boxes,
)
from tem_lib.simulate import preset as sim_preset
from tem_lib.simulate import simulate

import userdata

FECRAL = preset("fecral")
TINY = {"fpn_channels": 16, "representation_size": 32, "mask_head_channels": 16, "pretrained": "none",
        "class_agnostic_nms": True}


def oracle(sample):
    """A perfect detector: in each tile, every labelled defect that reaches into it, cut to
    the tile (as a detector sees a defect that the tile border cuts), score 1."""
    def predict(tiles, offsets):
        out = []
        for tile, (x0, y0) in zip(tiles, offsets):
            h, w = tile.shape
            boxes, labels, insts = [], [], []
            for inst in sample.instances:
                full = np.zeros((h, w), bool)
                ys, xs = np.nonzero(inst.mask)
                ys, xs = ys + inst.y0 - y0, xs + inst.x0 - x0
                keep = (ys >= 0) & (ys < h) & (xs >= 0) & (xs < w)
                if not keep.any():
                    continue
                full[ys[keep], xs[keep]] = True
                r, c = np.nonzero(full)
                insts.append(Instance(full[r.min():r.max() + 1, c.min():c.max() + 1], int(c.min()), int(r.min()),
                                      inst.category_id))
                boxes.append([c.min(), r.min(), c.max() + 1, r.max() + 1])
                labels.append(inst.category_id)
            out.append(Detections(np.array(boxes, float).reshape(-1, 4), labels, np.ones(len(labels)), (h, w),
                                  "tile", insts))
        return out
    return predict


def _perfect_on(truth_by_name):
    def perfect(tiles, offsets):  # which image a tile is from: the one whose pixels it carries
        out = []
        for tile, off in zip(tiles, offsets):
            s = next(s for s in truth_by_name.values()
                     if np.array_equal(s.image[off[1]:off[1] + tile.shape[0], off[0]:off[0] + tile.shape[1]], tile))
            out += oracle(s)([tile], [off])
        return out
    return perfect


@pytest.fixture(scope="module")
def micrograph():
    """One simulated 1024-px micrograph with a few hundred defects of three classes."""
    return simulate(sim_preset(height=1024, width=1024, nm_per_px=1.6, overlap_fraction=0.1), 1, seed=21, workers=1)[0]


def test_tiles_cover_the_image_and_overlap():
    boxes = tile_boxes(1000, 700, 256, 0.25)
    cover = np.zeros((1000, 700), int)
    for x1, y1, x2, y2 in boxes:
        assert x2 - x1 == 256 and y2 - y1 == 256
        cover[y1:y2, x1:x2] += 1
    assert cover.min() >= 1 and cover.max() >= 2
    assert tile_boxes(200, 180, 256, 0.25) == [(0, 0, 180, 200)]
    with pytest.raises(ValueError, match="overlap"):
        tile_boxes(1000, 1000, 256, 1.0)


def test_a_defect_cut_by_tile_borders_is_counted_once(micrograph):
    truth = micrograph.instances
    det = sliced_predict(micrograph.image, oracle(micrograph), 256, "m", overlap=0.25)
    n_true = len(truth)
    assert n_true > 150
    assert abs(len(det) - n_true) <= 0.02 * n_true, (len(det), n_true)
    for c in FECRAL.ids:  # and per class
        t, p = sum(i.category_id == c for i in truth), int((det.labels == c).sum())
        assert abs(p - t) <= max(1, 0.02 * t), (c, p, t)
    # merged masks are the true masks again: the total defect area agrees within 2 %
    area_true = np.logical_or.reduce([i.full_mask(micrograph.shape) for i in truth]).sum()
    area_pred = np.logical_or.reduce([i.full_mask(micrograph.shape) for i in det.instances]).sum()
    assert abs(area_pred - area_true) <= 0.02 * area_true
    # without merging, the overlaps would count many defects twice
    assert sum(len(d) for d in oracle(micrograph)(*_all_tiles(micrograph))) > 1.2 * n_true


def _all_tiles(sample, tile=256, overlap=0.25):
    boxes = tile_boxes(*sample.shape, tile, overlap)
    return [sample.image[y1:y2, x1:x2] for x1, y1, x2, y2 in boxes], [(x1, y1) for x1, y1, _, _ in boxes]


def test_two_defects_of_one_tile_are_never_merged():
    """A black dot on a loop: the same tile found both; only detections of different tiles merge."""
    loop = Instance(np.ones((20, 20), bool), 10, 10, 2)
    dot = Instance(np.ones((3, 3), bool), 15, 15, 1)
    one = Detections([[10, 10, 30, 30], [15, 15, 18, 18]], [2, 1], [0.9, 0.8], (64, 64), "t", [loop, dot])
    again = Detections([[0, 0, 10, 20]], [2], [0.7], (64, 64), "t",  # the loop's right half, seen by a tile at x=20
                       [Instance(np.ones((20, 10), bool), 0, 0, 2)])
    merged = merge_tiles([(0, one, (0, 0)), (1, again, (20, 10))], (64, 64), "m")
    assert len(merged) == 2 and sorted(merged.labels.tolist()) == [1, 2]
    big = merged.instances[int(np.argmax(merged.labels))]
    assert big.mask.shape == (20, 20) and big.mask.all()


def test_poisson_interval():
    assert poisson_interval(0)[0] == 0 and poisson_interval(0)[1] == pytest.approx(3.689, abs=1e-3)
    lo, hi = poisson_interval(100)
    assert 80 < lo < 82 and 121 < hi < 123


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A tiny detector trained for two iterations on simulated crops, exported with a card."""
    from tem_lib.data import tile_dataset
    from tem_lib.detection import train_detector
    root = tmp_path_factory.mktemp("model")
    crops = tile_dataset(simulate(sim_preset(height=256, width=256), 2, seed=4, workers=1), 256)
    train_detector(crops, root / "run", TINY, {"epochs": 1, "iters_per_epoch": 2, "batch_size": 2, "warmup_iters": 1},
                   class_ids=FECRAL.ids, class_names=FECRAL.names, progress=False)
    return export_model(root / "run", root / "model", FECRAL, tile=256, nm_per_px=crops[0].nm_per_px,
                        score_threshold=0.3, threshold_source="test", class_thresholds={1: 0.3, 2: 0.4, 3: 0.2})


def test_model_folders_carry_their_card_and_refuse_a_mismatch(model_dir, tmp_path):
    model, card = load_model(model_dir)
    assert card.classes.matches(FECRAL) and card.tile == 256 and card.score_threshold == 0.3
    assert card.versions and not model.training
    with pytest.raises(FileNotFoundError, match="no model.json; not a tem_lib model folder.*export"):
        load_model(model_dir.parent / "run")
    with pytest.raises(FileNotFoundError, match="model folder not found"):
        load_model(tmp_path / "nope")
    import shutil
    bad = shutil.copytree(model_dir, tmp_path / "bad")
    doc = json.loads((bad / CARD).read_text())
    doc["classes"]["classes"] = doc["classes"]["classes"][:2]
    doc["class_thresholds"] = {"1": 0.3, "2": 0.4}
    (bad / CARD).write_text(json.dumps(doc))
    with pytest.raises(ValueError, match="do not match the detector's"):
        load_model(bad)
    (bad / CARD).write_text(json.dumps({**doc, "format": "yolo"}))
    with pytest.raises(ValueError, match="not a tem_lib model card"):
        load_model(bad)
    with pytest.raises(ValueError, match="trained for class ids"):
        export_model(model_dir.parent / "run", tmp_path / "x", preset("fecral_cavities"), 256, 0.5, 0.3, "t")
    assert not (tmp_path / "x").exists()
    assert ModelCard.from_dict(card.to_dict(), "card") == card and card.class_thresholds == {1: 0.3, 2: 0.4, 3: 0.2}
    for bad in ({"1": 0.3}, {"1": 0.3, "2": 0.4, "3": 1.5}, ["0.3"]):
        with pytest.raises(ValueError, match="class_thresholds"):
            ModelCard.from_dict({**card.to_dict(), "class_thresholds": bad}, "card")


def test_quantify_command_on_png_tiff_and_dm3(model_dir, tmp_path, micrograph):
    from tem_lib.quantify import _main
    folder = tmp_path / "mine"
    folder.mkdir()
    img8 = np.clip(np.rint(micrograph.image * 255), 0, 255).astype(np.uint8)
    Image.fromarray(img8[:512, :512]).save(folder / "a.png")
    Image.fromarray(img8[:300, :400]).save(folder / "b.tif")
    userdata.write_dm3(folder / "c.dm3", micrograph.image[:256, :256] * 1000 + 50, 0.6)
    out = tmp_path / "out"
    assert _main([str(model_dir), str(folder), "--out", str(out), "--nm-per-px", "0.6", "--device", "cpu"]) == 0
    images = pd.read_csv(out / "images.csv")
    assert list(images.image) == ["a", "b", "c"] and list(images.height_px) == [512, 300, 256]
    defects = pd.read_csv(out / "defects.csv")
    summary = pd.read_csv(out / "summary.csv")
    assert set(summary.image) == {"a", "b", "c", "all"} and len(summary) == 4 * 3
    allrows = summary[summary.image == "all"].set_index("class_id")
    assert allrows["count"].sum() == len(defects)
    assert (allrows.area_unit == "um2").all()
    assert allrows.area.iloc[0] == pytest.approx((512 * 512 + 300 * 400 + 256 * 256) * 0.6 ** 2 / 1e6)
    assert (defects.score >= 0.3).all()
    for name in "abc":
        assert (out / "overlays" / f"{name}.png").stat().st_size > 1000
    coco = json.loads((out / "predictions_coco.json").read_text())
    assert len(coco["annotations"]) == len(defects) and [c["id"] for c in coco["categories"]] == [1, 2, 3]
    from pycocotools.coco import COCO
    COCO(str(out / "predictions_coco.json"))  # readable by pycocotools
    # the DM3 file's own calibration is used without --nm-per-px
    out2 = tmp_path / "out2"
    res = quantify(model_dir, [folder / "c.dm3"], out2, overlays=False, progress=False)
    assert res.images.nm_per_px.iloc[0] == pytest.approx(0.6)
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    assert _main([str(model_dir), str(bad), "--out", str(tmp_path / "o3")]) == 2
    assert not (tmp_path / "o3").exists()


def test_labelled_inputs_are_compared_with_their_labels(model_dir, micrograph, tmp_path):
    """A perfect stand-in on a labelled dataset: every error 0, every F1 1."""
    data = userdata.ours(tmp_path / "ours")
    ds = load_dataset(data)
    perfect = _perfect_on({s.name: s for s in ds})
    model_nm = json.loads((model_dir / CARD).read_text())["nm_per_px"]
    res = quantify(model_dir, [data], tmp_path / "out", nm_per_px=model_nm, score=0.5, overlays=False,
                   progress=False, predict=perfect)
    comp = pd.read_csv(tmp_path / "out" / "comparison.csv")
    assert list(comp.class_id) == [1, 2, 3]
    assert (comp.n_true == comp.n_pred).all()
    assert np.allclose(comp.density_rel_error.fillna(0), 0) and np.allclose(comp.size_rel_error.fillna(0), 0, atol=1e-9)
    assert (comp["harmonic_iou0.5"] == 1).all()
    assert len(res.defects) == sum(len(s.instances) for s in ds)
    # labels that name no classes (ImageJ codes) are read with the model's class set
    from tem_lib.quantify import collect_inputs
    ij = userdata.imagej(tmp_path / "ij")
    items, classes = collect_inputs([ij], classes=FECRAL)
    assert classes.matches(FECRAL) and len(items) == 4 and all(i["truth"] is not None for i in items)
    # each item names the image file it was read from (with its suffix), not the folder + stem
    assert all(Path(i["path"]).is_file() and Path(i["path"]).stem == i["name"] for i in items)
    with pytest.raises(ValueError, match="declared"):
        collect_inputs([ij])


def test_micrographs_at_another_pixel_size_are_resized_to_the_models(model_dir, micrograph, tmp_path):
    model_nm = json.loads((model_dir / CARD).read_text())["nm_per_px"]
    Image.fromarray(np.clip(np.rint(micrograph.image[:512, :512] * 255), 0, 255).astype(np.uint8)).save(
        tmp_path / "m.png")
    seen = []

    def record(tiles, offsets):  # one 20-px square defect in the first tile, at (10, 10) of the resized image
        seen.extend(t.shape for t in tiles)
        return [Detections([[10, 10, 30, 30]], [2], [0.9], t.shape, "t", [Instance(np.ones((20, 20), bool), 10, 10, 2)])
                if o == (0, 0) else Detections(np.zeros((0, 4)), [], [], t.shape, "t", []) for t, o in zip(tiles, offsets)]
    res = quantify(model_dir, [tmp_path / "m.png"], tmp_path / "out", nm_per_px=model_nm * 2, overlays=True,
                   progress=False, predict=record)
    assert res.images.model_scale.iloc[0] == pytest.approx(2.0)
    assert res.images.n_tiles.iloc[0] == len(tile_boxes(1024, 1024, 256, 0.25)) and seen[0] == (256, 256)
    # reported in the micrograph's own pixels (half the resized ones) and in nm at its pixel size
    d = res.defects.iloc[0]
    assert len(res.defects) == 1 and d.cx_px == pytest.approx(10, abs=0.6) and d.area_px == 100
    assert d.major_nm == pytest.approx(d.major_px * model_nm * 2)
    assert res.predictions[0].shape == (512, 512) and np.allclose(res.predictions[0].boxes, [[5, 5, 15, 15]])


def test_per_class_thresholds_are_the_default_and_can_be_overridden(model_dir, tmp_path):
    """A <100> loop scored 0.25 is kept at its class's 0.2, not at the single 0.3 or at --score 0.5."""
    Image.fromarray(np.full((256, 256), 150, np.uint8)).save(tmp_path / "m.png")

    def loop_and_dot(tiles, offsets):
        return [Detections([[10, 10, 30, 20], [50, 50, 54, 54]], [3, 1], [0.25, 0.6], t.shape, "t",
                           [Instance(np.ones((10, 20), bool), 10, 10, 3), Instance(np.ones((4, 4), bool), 50, 50, 1)])
                for t in tiles]
    kept = {}
    for name, kw in (("per-class", {}), ("single", {"per_class": False}), ("score", {"score": 0.5})):
        res = quantify(model_dir, [tmp_path / "m.png"], tmp_path / name, overlays=False, progress=False,
                       predict=loop_and_dot, **kw)
        kept[name] = sorted(res.defects.class_id.tolist())
        assert json.loads((tmp_path / name / "run.json").read_text())["thresholds"]
    assert kept == {"per-class": [1, 3], "single": [1], "score": [1]}


def test_the_output_folder_is_written_whole_and_never_keeps_an_earlier_runs_files(model_dir, tmp_path):
    data = userdata.ours(tmp_path / "ours")
    ds = load_dataset(data)
    perfect = _perfect_on({s.name: s for s in ds})
    model_nm = json.loads((model_dir / CARD).read_text())["nm_per_px"]
    out = tmp_path / "out"
    quantify(model_dir, [data], out, nm_per_px=model_nm, score=0.5, progress=False, predict=perfect)
    first = json.loads((out / "run.json").read_text())
    assert "confusion.csv" in first["files"] and "overlays/" + ds[0].name + ".png" in first["files"]
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()) == sorted(first["files"])
    # the confusion of a perfect detector: everything on the diagonal, nothing missed or extra
    conf = pd.read_csv(out / "confusion.csv", index_col=0)
    assert conf.loc["unlabelled"].sum() == 0 and conf["missed"].sum() == 0
    assert np.trace(conf.to_numpy()[:3, :3]) == sum(len(s.instances) for s in ds)
    # a second run into the same folder, of one image, without labels: no stale comparison or overlays
    one = tmp_path / "one.png"
    Image.fromarray(np.clip(np.rint(ds[0].image * 255), 0, 255).astype(np.uint8)).save(one)
    quantify(model_dir, [one], out, nm_per_px=model_nm, score=0.5, overlays=False, progress=False,
             predict=_perfect_on({"one": ds[0]}))
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert files == sorted(json.loads((out / "run.json").read_text())["files"])
    assert "comparison.csv" not in files and not (out / "overlays").exists()
    # an error on the second micrograph leaves the earlier output as it was, and no partial one
    bad = tmp_path / "bad"
    bad.mkdir()
    Image.fromarray(np.full((64, 64), 100, np.uint8)).save(bad / "a.png")
    (bad / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    with pytest.raises(ValueError, match="b.png"):
        quantify(model_dir, [bad], out, overlays=False, progress=False, predict=perfect)
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()) == files

    def boom(tiles, offsets):
        raise RuntimeError("detector failed")
    with pytest.raises(RuntimeError, match="detector failed"):
        quantify(model_dir, [one], out, overlays=False, progress=False, predict=boom)
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()) == files
    assert not list(tmp_path.glob(".out.*"))


def test_output_folders_pixel_sizes_and_sizes_that_would_lose_something_are_refused(model_dir, tmp_path):
    from tem_lib.quantify import _main
    Image.fromarray(np.full((256, 256), 150, np.uint8)).save(tmp_path / "m.png")
    (tmp_path / "afile").write_text("x")
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    model_nm = json.loads((model_dir / CARD).read_text())["nm_per_px"]
    cases = [(["--out", str(tmp_path / "afile")], "is a file"),
             (["--out", str(mine)], "not a quantify output"),
             (["--out", str(tmp_path / "o"), "--nm-per-px", str(model_nm / 1000)], "unit mistake"),
             (["--out", str(tmp_path / "o"), "--device", "nosuch"], "not a device"),
             (["--out", str(tmp_path / "o"), "--device", "cuda:7"], "device")]
    for args, message in cases:
        import contextlib
        import io
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            code = _main([str(model_dir), str(tmp_path / "m.png"), *args])
        if "cuda" in args and "cuda" not in err.getvalue() and code == 0:
            continue  # a machine with that GPU
        assert code == 2 and message in err.getvalue(), (args, err.getvalue())
    assert (mine / "notes.txt").read_text() == "keep me" and (tmp_path / "afile").read_text() == "x"
    assert not (tmp_path / "o").exists()
    with pytest.raises(ValueError, match="megapixels"):
        quantify(model_dir, [tmp_path / "m.png"], tmp_path / "o", nm_per_px=model_nm * 4, max_megapixels=0.5,
                 progress=False, predict=lambda t, o: [])


def test_calibrated_counts_from_the_card(model_dir, tmp_path):
    """The card's calibration (a detector that finds half of each class) doubles the counts,
    only at the thresholds it was measured at; without one, asking for it is refused."""
    import shutil

    from tem_lib.quantify import CountCalibration, read_card
    cal = CountCalibration([1, 2, 3], [np.diag([50, 50, 50])], [[50, 50, 50]], [[100, 100, 100]], [256 * 256 * 10],
                           thresholds={1: 0.3, 2: 0.4, 3: 0.2})
    with_cal = shutil.copytree(model_dir, tmp_path / "cal")
    doc = json.loads((with_cal / CARD).read_text())
    (with_cal / CARD).write_text(json.dumps({**doc, "calibration": cal.to_dict()}))
    assert read_card(with_cal).calibration == cal
    Image.fromarray(np.full((256, 256), 150, np.uint8)).save(tmp_path / "m.png")

    def three(tiles, offsets):
        return [Detections([[10, 10, 30, 20], [50, 50, 54, 54], [80, 80, 90, 90]], [3, 1, 2], [0.9, 0.9, 0.9],
                           t.shape, "t", [Instance(np.ones((10, 20), bool), 10, 10, 3),
                                          Instance(np.ones((4, 4), bool), 50, 50, 1),
                                          Instance(np.ones((10, 10), bool), 80, 80, 2)]) for t in tiles]
    res = quantify(with_cal, [tmp_path / "m.png"], tmp_path / "o", overlays=False, progress=False, predict=three,
                   n_boot=50)
    allrows = res.summary[res.summary.image == "all"]
    assert list(allrows["count"]) == [1, 1, 1]
    np.testing.assert_allclose(allrows.count_calibrated, [2, 2, 2])
    assert (allrows.count_calibrated_ci_high >= 2).all()
    # at other thresholds the calibration does not hold: left out, or refused when asked for
    res = quantify(with_cal, [tmp_path / "m.png"], tmp_path / "o2", score=0.5, overlays=False, progress=False,
                   predict=three)
    assert "count_calibrated" not in res.summary
    with pytest.raises(ValueError, match="measured at the thresholds"):
        quantify(with_cal, [tmp_path / "m.png"], tmp_path / "o3", score=0.5, calibrate=True, progress=False,
                 predict=three)
    with pytest.raises(ValueError, match="no count calibration"):
        quantify(model_dir, [tmp_path / "m.png"], tmp_path / "o4", calibrate=True, progress=False, predict=three)


def test_tta_maps_every_view_back_and_votes(micrograph):
    """A perfect detector seen through the 8 symmetries: the fused detections are the truth
    again; a detection seen in too few views is dropped, and a class is the vote's."""
    from tem_lib.quantify.tta import fuse, undo, view
    tile = micrograph.image[:256, :256]
    truth = oracle(micrograph)([tile], [(0, 0)])[0]
    views = []
    for k in range(8):
        seen = view(tile, k)  # what the oracle sees in view k: the truth's masks turned the same way
        insts, boxes = [], []
        for inst in truth.instances:
            m = view(inst.full_mask(tile.shape), k)
            r, c = np.nonzero(m)
            insts.append(Instance(m[r.min():r.max() + 1, c.min():c.max() + 1], int(c.min()), int(r.min()),
                                  inst.category_id))
            boxes.append([c.min(), r.min(), c.max() + 1, r.max() + 1])
        det = Detections(np.array(boxes, float), truth.labels, np.full(len(insts), 0.8), seen.shape, "v", insts)
        back = undo(det, k, tile.shape)
        np.testing.assert_allclose(back.boxes, truth.boxes)
        views.append(back)
    fused = fuse(views, tile.shape, FECRAL.ids)
    assert len(fused) == len(truth) and np.allclose(fused.scores, 0.8)
    order = np.lexsort((fused.boxes[:, 1], fused.boxes[:, 0]))
    ref = np.lexsort((truth.boxes[:, 1], truth.boxes[:, 0]))
    np.testing.assert_allclose(fused.boxes[order], truth.boxes[ref])
    assert [i.area for i in np.array(fused.instances)[order]] == [i.area for i in np.array(truth.instances)[ref]]
    # three views call the first defect a <100> loop (3), five a <111> loop (2): the vote is 2;
    # a defect in 3 of 8 views only is dropped
    one = truth.subset([0])
    votes = [Detections(one.boxes, [3 if k < 3 else 2], [0.9], tile.shape, "v", one.instances) for k in range(8)]
    extra = Detections([[200, 200, 210, 210]], [1], [0.9], tile.shape, "v", [Instance(np.ones((10, 10), bool), 200,
                                                                                       200, 1)])
    mixed = [Detections(np.concatenate([v.boxes, extra.boxes]), [*v.labels, 1], [0.9, 0.9], tile.shape, "v",
                        [*v.instances, *extra.instances]) if k < 3 else v for k, v in enumerate(votes)]
    fused = fuse(mixed, tile.shape, FECRAL.ids)
    assert fused.labels.tolist() == [2]


def test_labelled_densities_sit_beside_the_detected_ones():
    from tem_lib.quantify import labelled_densities
    summary = pd.DataFrame([{"image": im, "class_id": c, "count": n, "area": 2.0, "density": n / 2.0}
                            for im, c, n in [("a", 1, 3), ("a", 2, 0), ("b", 1, 1), ("b", 2, 5), ("all", 1, 4),
                                             ("all", 2, 5)]])
    dot = Instance(np.ones((2, 2), bool), 0, 0, 1)
    truth = [Sample(np.zeros((8, 8), np.float32), [dot, dot], "a", name="a"),
             Sample(np.zeros((8, 8), np.float32), [Instance(np.ones((2, 2), bool), 4, 4, 2)], "b", name="b")]
    per = labelled_densities(summary, truth).set_index(["image", "class_id"])
    assert "all" not in per.index.get_level_values(0)
    assert per.n_labelled.to_dict() == {("a", 1): 2, ("a", 2): 0, ("b", 1): 0, ("b", 2): 1}
    assert per.loc[("a", 1), "density_labelled"] == 1.0 and per.loc[("b", 2), "density"] == 2.5


def test_predicting_in_other_views_than_the_card_was_made_for_is_said(model_dir, tmp_path):
    import shutil

    from tem_lib.quantify import read_card
    Image.fromarray(np.full((64, 64), 150, np.uint8)).save(tmp_path / "m.png")
    empty = lambda tiles, offsets: [Detections(np.zeros((0, 4)), [], [], t.shape, "t", []) for t in tiles]  # noqa: E731
    with pytest.warns(UserWarning, match="predicting in 8 view.*chosen on predictions in 1"):
        res = quantify(model_dir, [tmp_path / "m.png"], tmp_path / "o", tta_views=8, overlays=False, progress=False,
                       predict=empty)
    assert json.loads((tmp_path / "o" / "run.json").read_text())["tta_views"] == 8 and len(res.defects) == 0
    tta = shutil.copytree(model_dir, tmp_path / "tta")
    doc = json.loads((tta / CARD).read_text())
    (tta / CARD).write_text(json.dumps({**doc, "tta_views": 4}))
    assert read_card(tta).tta_views == 4
    quantify(tta, [tmp_path / "m.png"], tmp_path / "o2", overlays=False, progress=False, predict=empty)
    assert json.loads((tmp_path / "o2" / "run.json").read_text())["tta_views"] == 4  # the card's, by default
    (tta / CARD).write_text(json.dumps({**doc, "tta_views": 3}))
    with pytest.raises(ValueError, match="tta_views must be 1, 2, 4 or 8"):
        read_card(tta)
