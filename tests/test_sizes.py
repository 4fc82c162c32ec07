"""Sizes measured as the labels measure them: a labelled ellipse, written in every format the
readers take, read back and measured (the moment ellipse quantify and the size errors use)
gives back its axes within 2 % (within the pixel lattice's 1 px for the smallest, an 11-px dot,
whose 100 pixels measure 12.2 x 10.4 px)."""
import numpy as np
import pytest
from PIL import Image

from tem_lib.classes import preset
from tem_lib.data import Instance, Sample, load_dataset
from tem_lib.geometry import rasterize_ellipse
from tem_lib.stats import instance_table

import userdata

FECRAL = preset("fecral")
# (cx, cy, major, minor, angle, class): the FeCrAl labels' range of sizes (5th-95th percentile
# 11-95 px major) and shapes (round dots, elongated <111> loops, edge-on <100> lines)
ELLIPSES = [(40, 40, 12, 11, 0, 1), (120, 40, 20, 18, 30, 1), (220, 60, 40, 24, 75, 2), (340, 70, 60, 30, 140, 2),
            (80, 200, 92, 50, 10, 3), (250, 220, 50, 12, 90, 3), (400, 220, 31, 30, 45, 1), (420, 400, 70, 42, 160, 2),
            (150, 380, 25, 8, 0, 3)]
SHAPE = (480, 480)


def _sample() -> Sample:
    insts = []
    for cx, cy, major, minor, angle, c in ELLIPSES:
        m, x0, y0 = rasterize_ellipse(cx, cy, major, minor, angle, SHAPE)
        insts.append(Instance(m, x0, y0, c, (cx, cy, major, minor, angle)))
    rng = np.random.default_rng(0)
    return Sample(rng.uniform(0.3, 0.7, SHAPE).astype(np.float32), insts, "ellipses", None, "ellipses")


def _write(fmt: str, root):
    s = _sample()
    samples = userdata.relabel([s], {1: 1, 2: 2, 3: 3})
    samples[0].instances = [Instance(i.mask, i.x0, i.y0, i.category_id, i.ellipse) for i in s.instances]
    if fmt == "imagej":
        userdata.write_images(samples, root / "images")
        (root / "labels").mkdir()
        codes = {2: 0, 1: 1, 3: 2}
        rows = [" ,X,Y,Major,Minor,Angle,class"] + [f"{k},{x},{y},{a},{b},{t},{codes[c]}"
                                                   for k, (x, y, a, b, t, c) in enumerate(ELLIPSES, 1)]
        (root / "labels" / "ellipses_results.csv").write_text("\n".join(rows) + "\n")
        return load_dataset(root, classes="fecral")
    if fmt in ("coco-rle", "coco-polygon"):
        userdata.coco(root, samples, FECRAL, "data.json", "images", polygons=fmt == "coco-polygon")
        return load_dataset(root)
    if fmt == "yolo":
        userdata.write_images(samples, root / "images" / "train")
        (root / "labels" / "train").mkdir(parents=True)
        lines = []
        for i in samples[0].instances:
            xy = np.array(userdata.polygon(i)).reshape(-1, 2) / [SHAPE[1], SHAPE[0]]
            lines.append(" ".join([str(i.category_id - 1), *(f"{v:.6f}" for v in xy.ravel())]))
        (root / "labels" / "train" / "ellipses.txt").write_text("\n".join(lines) + "\n")
        (root / "data.yaml").write_text("path: .\ntrain: images/train\nval: images/train\n"
                                        "names:\n  0: black dot\n  1: 111 loop\n  2: 100 loop\n")
        return load_dataset(root)
    if fmt == "graymask":
        userdata.write_images(samples, root / "images")
        (root / "masks").mkdir()
        Image.fromarray(samples[0].gray_mask(FECRAL)).save(root / "masks" / "ellipses.png")
        return load_dataset(root, classes="fecral")
    raise AssertionError(fmt)


@pytest.mark.parametrize("fmt", ["imagej", "coco-rle", "coco-polygon", "yolo", "graymask"])
def test_a_labelled_ellipse_measures_back_to_its_axes(fmt, tmp_path):
    ds = _write(fmt, tmp_path / fmt)
    tab = instance_table(list(ds)).sort_values(["cx", "cy"]).reset_index(drop=True)
    want = sorted(ELLIPSES)
    assert len(tab) == len(want), fmt
    for (cx, cy, major, minor, _, _), r in zip(want, tab.itertuples()):
        assert abs(r.cx - cx) <= 1 and abs(r.cy - cy) <= 1, (fmt, cx, cy, r.cx, r.cy)
        tol = {"rel": 0.02} if minor >= 12 else {"abs": 1.0}
        assert r.major == pytest.approx(major, **tol), (fmt, major, minor, r.major)
        assert r.minor == pytest.approx(minor, **tol), (fmt, major, minor, r.minor)
