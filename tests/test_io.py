import json

import numpy as np
import pytest
import tifffile
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from tem_lib.classes import preset
from tem_lib.data import load_dataset, read_coco, read_graymask, read_image, read_imagej, write_dataset
from tem_lib.data.sample import Instance, Sample
from tem_lib.geometry import rasterize_ellipse
from tem_lib.stats import instance_table

HEADER = " ,Area,X,Y,Major,Minor,Angle,class\n"
FECRAL = preset("fecral")


def _imagej_folder(tmp_path, rows, size=(64, 80), header=HEADER, name="img, 1 (2)"):
    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    Image.fromarray(np.full(size, 128, np.uint8)).save(tmp_path / "images" / f"{name}.jpg")
    (tmp_path / "labels" / f"{name}_results.csv").write_text(header + "".join(rows))
    return tmp_path


def test_imagej_reader_rasterises_ellipses_with_imagej_angles(tmp_path):
    # angle 30 deg counter-clockwise on screen: major axis along (cos 30, -sin 30) in (x, y-down)
    root = _imagej_folder(tmp_path, ["1,0,40,32,30,10,30,0\n", "2,0,10,10,6,6,0,1\n",
                                     "3,0,60,50,20,4,90,2\n"])
    (s,) = read_imagej(root, FECRAL)
    assert s.name == "img, 1 (2)" and list(s.labels) == [2, 1, 3]  # <111>, dot, <100>
    loop = s.instances[0].full_mask(s.shape)
    c, d = np.cos(np.deg2rad(30)), -np.sin(np.deg2rad(30))
    # pixel centres along the major axis are inside up to 15 px, along the minor only to 5
    assert loop[int(32 + 13 * d), int(40 + 13 * c)] and loop[int(32 - 13 * d), int(40 - 13 * c)]
    assert not loop[int(32 + 8 * c), int(40 - 8 * d)]
    t = instance_table([s], FECRAL)
    assert t.angle[0] == pytest.approx(30, abs=3) and t.major[0] == pytest.approx(30, abs=1.5)
    assert t.angle[2] == pytest.approx(90, abs=3)  # vertical bar
    bar = s.instances[2]
    assert bar.mask.shape[0] > 4 * bar.mask.shape[1]


@pytest.mark.parametrize("rows, header, match", [
    (["1,0,40,32,30,10,30,7\n"], HEADER, "unknown class 7"),
    (["1,0,400,32,30,10,30,0\n"], HEADER, "outside the 80x64 image"),
    (["1,0,40,32,30,10,30,0\n"], " ,Area,X,Y,Major,Angle,class\n", r"missing column\(s\) \['Minor'\]"),
    (["1,0,40,,30,10,30,0\n"], HEADER, "line 2: non-numeric or missing"),
    (["1,0,40,32,-3,10,30,0\n"], HEADER, "non-positive axis"),
])
def test_imagej_bad_tables_name_file_and_problem(tmp_path, rows, header, match):
    root = _imagej_folder(tmp_path, rows, header=header)
    with pytest.raises(ValueError, match=match) as e:
        read_imagej(root, FECRAL)
    assert "_results.csv" in str(e.value)


def test_imagej_missing_image_and_empty_folder(tmp_path):
    root = _imagej_folder(tmp_path, ["1,0,40,32,30,10,30,0\n"])
    (root / "images" / "img, 1 (2).jpg").unlink()
    with pytest.raises(FileNotFoundError, match="no image named 'img, 1 \\(2\\)'"):
        read_imagej(root, FECRAL)
    (tmp_path / "empty" / "labels").mkdir(parents=True)
    with pytest.raises(ValueError, match="empty dataset"):
        read_imagej(tmp_path / "empty", FECRAL)


def test_read_image_formats(tmp_path):
    a16 = (np.arange(64 * 32).reshape(32, 64) * 7 + 1000).astype(np.uint16)
    tifffile.imwrite(tmp_path / "a.tif", a16)
    img = read_image(tmp_path / "a.tif")
    assert img.dtype == np.float32 and img.min() == 0.0 and img.max() == 1.0
    rgb = np.zeros((8, 8, 3), np.uint8) + 51
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    assert read_image(tmp_path / "rgb.png") == pytest.approx(0.2, abs=1e-3)
    (tmp_path / "bad.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="bad.png: unreadable image"):
        read_image(tmp_path / "bad.png")
    with pytest.raises(FileNotFoundError, match="nope.png: image not found"):
        read_image(tmp_path / "nope.png")
    f = np.ones((8, 8), np.float32)
    f[2, 3] = np.nan
    tifffile.imwrite(tmp_path / "nan.tif", f)
    with pytest.raises(ValueError, match="nan.tif: image has 1 non-finite pixel"):
        read_image(tmp_path / "nan.tif")


def _sample(name="s0", shape=(40, 50)):
    m, x0, y0 = rasterize_ellipse(20, 15, 12, 6, 20, shape)
    m2, x2, y2 = rasterize_ellipse(40, 30, 5, 5, 0, shape)
    img = np.linspace(0, 1, shape[0] * shape[1], dtype=np.float32).reshape(shape)
    img = np.round(img * 255) / 255
    return Sample(img, [Instance(m, x0, y0, 2), Instance(m2, x2, y2, 1)], source_id="src",
                  nm_per_px=0.5, name=name)


def test_write_then_read_all_formats(tmp_path):
    samples = [_sample("a"), _sample("b")]
    out = write_dataset(samples, tmp_path / "ds", FECRAL, {"nm_per_px": 0.5})
    for back in (read_coco(out / "annotations.json")[0], load_dataset(out)):
        for s, b in zip(samples, back):
            assert np.array_equal(s.masks(), b.masks()) and list(s.labels) == list(b.labels)
            assert np.allclose(s.image, b.image) and b.nm_per_px == 0.5
    g = read_graymask(out, FECRAL)
    assert [sorted(x.labels) for x in g] == [[1, 2], [1, 2]]
    assert load_dataset(out, fmt="graymask")[0].nm_per_px == 0.5  # from metadata.json


def test_write_dataset_is_atomic(tmp_path):
    class Boom(Sample):
        @property
        def shape(self):
            raise RuntimeError("disk full")
    good = _sample("a")
    with pytest.raises(RuntimeError):
        write_dataset([good, Boom(good.image, [], "x", name="z")], tmp_path / "ds", FECRAL)
    assert list(tmp_path.iterdir()) == []  # nothing half-written left behind
    with pytest.raises(ValueError, match="empty dataset"):
        write_dataset([], tmp_path / "ds", FECRAL)


def test_coco_errors_name_file_and_problem(tmp_path):
    out = write_dataset([_sample()], tmp_path / "ds", FECRAL)
    coco = json.loads((out / "annotations.json").read_text())
    coco["annotations"][0]["category_id"] = 99
    (out / "bad.json").write_text(json.dumps(coco))
    with pytest.raises(ValueError, match="bad.json: annotation 1 has category_id 99, which the file does not declare"):
        read_coco(out / "bad.json", out / "images")
    coco = json.loads((out / "annotations.json").read_text())
    coco["images"][0]["width"] = 999
    (out / "size.json").write_text(json.dumps(coco))
    with pytest.raises(ValueError, match="image is 50x40 but .*size.json says 999x40"):
        read_coco(out / "size.json", out / "images")
    (out / "trunc.json").write_text('{"images": [')
    with pytest.raises(ValueError, match="trunc.json: not valid JSON"):
        read_coco(out / "trunc.json")


def test_graymask_errors(tmp_path):
    out = write_dataset([_sample()], tmp_path / "ds", FECRAL)
    Image.fromarray(np.full((40, 50), 100, np.uint8)).save(out / "masks" / "s0.png")
    with pytest.raises(ValueError, match=r"s0.png: unknown gray level\(s\) \[100\]"):
        read_graymask(out, FECRAL)
    Image.fromarray(np.zeros((41, 50), np.uint8)).save(out / "masks" / "s0.png")
    with pytest.raises(ValueError, match="s0.png: mask is 50x41 but image s0.png is 50x40"):
        read_graymask(out, FECRAL)
    with pytest.raises(ValueError, match="not a dataset in a format"):
        load_dataset(tmp_path)


@settings(max_examples=200, deadline=None)
@given(h=st.integers(1, 12), w=st.integers(1, 12), dh=st.integers(0, 6), dw=st.integers(0, 6),
       at_x=st.floats(0, 1), at_y=st.floats(0, 1), seed=st.integers(0, 2**16), fill=st.floats(0, 1))
def test_instance_rle_is_the_full_masks_rle(h, w, dh, dw, at_x, at_y, seed, fill):
    """The RLE made from an instance's box alone is pycocotools' RLE of its full-image mask, for
    any box in the image: touching its bottom (runs going on in the next column), its corners,
    filling it; a box past the image's edge is an error naming it."""
    from pycocotools import mask as mask_utils

    from tem_lib.data.io import encode_rle, instance_rle
    H, W = h + dh, w + dw
    x0, y0 = round(at_x * dw), round(at_y * dh)
    mask = np.random.default_rng(seed).random((h, w)) < fill
    inst = Instance(mask=mask, category_id=1, x0=x0, y0=y0)
    full = inst.full_mask((H, W))
    got = instance_rle(inst, (H, W))
    assert got == encode_rle(full)
    assert np.array_equal(mask_utils.decode({"size": got["size"], "counts": got["counts"].encode()}), full)
    with pytest.raises(ValueError, match="runs past"):
        instance_rle(Instance(mask=mask, category_id=1, x0=dw + 1, y0=y0), (H, W))
