import filecmp
import json

import numpy as np
import pytest
from pycocotools.coco import COCO

from tem_lib.classes import preset as class_preset
from tem_lib.data import load_dataset, read_graymask
from tem_lib.simulate import SimulatorConfig, generate_dataset, preset, simulate
from tem_lib.stats import instance_table


def test_same_seed_gives_byte_identical_dataset(tmp_path, small_cfg):
    a = generate_dataset(tmp_path / "a", small_cfg, n_images=3, seed=7, workers=1)
    b = generate_dataset(tmp_path / "b", small_cfg, n_images=3, seed=7, workers=2)
    cmp = filecmp.dircmp(a, b)
    assert cmp.left_only == cmp.right_only == []
    for sub in ("images", "masks"):
        names = sorted(p.name for p in (a / sub).iterdir())
        match, mismatch, errors = filecmp.cmpfiles(a / sub, b / sub, names, shallow=False)
        assert mismatch == errors == [] and len(match) == 3
    assert (a / "annotations.json").read_bytes() == (b / "annotations.json").read_bytes()
    c = generate_dataset(tmp_path / "c", small_cfg, n_images=3, seed=8, workers=1)
    assert (a / "annotations.json").read_bytes() != (c / "annotations.json").read_bytes()


def test_coco_loads_in_pycocotools_and_matches_gray_masks(tmp_path, small_cfg):
    out = generate_dataset(tmp_path / "ds", small_cfg, n_images=2, seed=1)
    coco = COCO(str(out / "annotations.json"))
    assert len(coco.getAnnIds()) > 10
    fecral = class_preset("fecral")
    gray = {s.name: s for s in read_graymask(out, fecral)}
    for img in coco.loadImgs(coco.getImgIds()):
        from PIL import Image
        g = np.asarray(Image.open(out / "masks" / img["file_name"]))
        union = np.zeros_like(g, dtype=bool)
        for ann in coco.loadAnns(coco.getAnnIds(imgIds=img["id"])):
            m = coco.annToMask(ann).astype(bool)
            assert m.sum() == ann["area"] > 0
            # every pixel of the annotation carries its class's gray level
            assert np.all(g[m] == fecral[ann["category_id"]].gray)
            assert not (union & m).any(), "simulated instances must not overlap"
            union |= m
        assert np.array_equal(union, g > 0)
        # connected components of the gray mask recover the instances one to one
        assert len(gray[img["file_name"][:-4]].instances) == len(coco.getAnnIds(imgIds=img["id"]))


def test_default_preset_statistics_follow_the_config():
    cfg = preset(height=1024, width=1024)
    samples = simulate(cfg, 6, seed=0, workers=2)
    t = instance_table(samples, samples.classes)
    frac = t.class_name.value_counts(normalize=True)
    assert 0.4 < frac["black_dot"] < 0.62 and 0.18 < frac["loop_111"] < 0.4
    med = t.groupby("class_name").major.median()
    assert 15 < med["black_dot"] < 28 and 35 < med["loop_111"] < 65
    ratio = t.groupby("class_name").ratio.median()
    assert ratio["black_dot"] < 1.2 and 1.4 < ratio["loop_111"] < 1.9
    # edge-on <100> loops come in two perpendicular orientation families per image
    for name, g in t[(t.class_name == "loop_100") & (t.ratio > 2.5)].groupby("name"):
        a = np.deg2rad(g.angle.to_numpy()) * 4  # 0/90 degree families -> one direction
        if len(a) >= 3:
            assert np.hypot(np.cos(a).mean(), np.sin(a).mean()) > 0.6, name
    for s in samples:  # 8-bit contrast stretch to ~20-230
        lo, hi = np.percentile(s.image * 255, [0.5, 99.5])
        assert 15 <= lo <= 50 and 200 <= hi <= 235


def test_cavity_preset_adds_fourth_class():
    s = simulate(preset("fecral_cavities", height=512, width=512), 1, seed=0, workers=1)[0]
    assert 4 in set(s.labels)


def test_config_round_trip_and_bad_parameters():
    cfg = preset(nm_per_px=0.5)
    back = SimulatorConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert back == cfg
    with pytest.raises(ValueError, match="unknown simulator parameter"):
        SimulatorConfig.from_dict({"heigth": 10})
    with pytest.raises(ValueError, match="unknown simulator preset"):
        preset("steel")


def test_generate_dataset_reuses_or_refuses(tmp_path, small_cfg):
    out = generate_dataset(tmp_path / "ds", small_cfg, n_images=1, seed=0)
    stamp = (out / "annotations.json").stat().st_mtime_ns
    generate_dataset(tmp_path / "ds", small_cfg, n_images=1, seed=0)
    assert (out / "annotations.json").stat().st_mtime_ns == stamp
    with pytest.raises(FileExistsError, match="other parameters"):
        generate_dataset(tmp_path / "ds", small_cfg, n_images=1, seed=1)
    assert load_dataset(out)[0].nm_per_px == small_cfg.nm_per_px
    # a folder written before a simulator parameter existed (it counts as its default) is reused
    meta = json.loads((out / "metadata.json").read_text())
    for k in ("grains_per_um2", "overlap_fraction", "texture_amplitude"):
        meta["simulator"].pop(k)
    (out / "metadata.json").write_text(json.dumps(meta))
    generate_dataset(tmp_path / "ds", small_cfg, n_images=1, seed=0)
    assert (out / "annotations.json").stat().st_mtime_ns == stamp


def test_gray_levels_are_the_papers():
    assert class_preset("fecral_cavities").gray_to_id == {255: 1, 170: 2, 85: 3, 42: 4}
    assert class_preset("fecral").imagej_to_id == {0: 2, 1: 1, 2: 3}


def test_simulated_datasets_carry_their_class_set(tmp_path, small_cfg):
    three = load_dataset(generate_dataset(tmp_path / "three", small_cfg, n_images=1, seed=0))
    assert three.classes.names == ("black_dot", "loop_111", "loop_100") and three.format == "coco"
    cav = preset("fecral_cavities", height=256, width=320)
    four = load_dataset(generate_dataset(tmp_path / "four", cav, n_images=1, seed=0))
    assert four.classes.name == "fecral_cavities" and four.classes.ids == (1, 2, 3, 4)
