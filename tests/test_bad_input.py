"""A corpus of bad or awkward dataset files, made by the tests (no committed binaries): each is
refused with a ValueError/FileNotFoundError that names the file and what is wrong, or read with a
warning that says what was dropped, and nothing is written into the dataset folder. Property
tests (hypothesis) feed the COCO and YOLO readers random finite and non-finite coordinates."""
import copy
import json
import math
import re
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from tem_lib.data import load_dataset

SIZE = 32
SQUARE = [4.0, 4.0, 12.0, 4.0, 12.0, 12.0, 4.0, 12.0]
GOOD = {"images": [{"id": 1, "file_name": "a.png", "height": SIZE, "width": SIZE}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "segmentation": [SQUARE]}],
        "categories": [{"id": 1, "name": "loop"}]}


def coco_folder(root, doc=None, text=None, image=True):
    root.mkdir(parents=True, exist_ok=True)
    if image:
        (root / "images").mkdir(exist_ok=True)
        Image.fromarray(np.full((SIZE, SIZE), 128, np.uint8)).save(root / "images" / "a.png")
        Image.fromarray(np.full((SIZE, SIZE), 90, np.uint8)).save(root / "images" / "b.png")
    f = root / "annotations.json"
    if text is not None:
        f.write_bytes(text if isinstance(text, bytes) else text.encode())
    else:
        f.write_text(json.dumps(doc, allow_nan=True))
    return root


def edit(**changes):
    """GOOD with ``path=value`` changes (path like 'annotations.0.segmentation')."""
    doc = copy.deepcopy(GOOD)
    for path, value in changes.items():
        *head, last = path.split(".")
        node = doc
        for k in head:
            node = node[int(k)] if k.isdigit() else node[k]
        if value is DELETE:
            del node[int(last) if last.isdigit() else last]
        elif last.isdigit():
            node[int(last)] = value
        else:
            node[last] = value
    return doc


DELETE = object()
SEG = "annotations.0.segmentation"
IMG = "images.0"
# (case id, the COCO document, the words the message must contain)
COCO_CASES = [
    ("nan-vertex", edit(**{SEG: [[4.0, float("nan"), 12.0, 4.0, 12.0, 12.0]]}), "not finite"),
    ("inf-vertex", edit(**{SEG: [[4.0, float("inf"), 12.0, 4.0, 12.0, 12.0]]}), "not finite"),
    ("null-vertex", edit(**{SEG: [[4.0, None, 12.0, 4.0, 12.0, 12.0]]}), "list of numbers"),
    ("huge-vertex", edit(**{SEG: [[4.0, 1e300, 12.0, 4.0, 12.0, 12.0]]}), "far outside"),
    ("string-vertex", edit(**{SEG: [[4.0, "4", 12.0, 4.0, 12.0, 12.0]]}), "list of numbers"),
    ("bool-vertex", edit(**{SEG: [[4.0, True, 12.0, 4.0, 12.0, 12.0]]}), "list of numbers"),
    ("odd-polygon", edit(**{SEG: [[4.0, 4.0, 12.0, 4.0, 12.0, 12.0, 4.0]]}), "odd number"),
    ("two-point-polygon", edit(**{SEG: [[4.0, 4.0, 12.0, 4.0]]}), "at least 3 points"),
    ("polygon-not-list", edit(**{SEG: [{"x": 1}]}), "list of numbers"),
    ("segmentation-int", edit(**{SEG: 5}), "unsupported segmentation"),
    ("no-segmentation", edit(**{SEG: DELETE}), "no segmentation"),
    ("rle-garbage", edit(**{SEG: {"size": [SIZE, SIZE], "counts": "garbage!!"}}), "not a compressed COCO RLE"),
    ("rle-empty-string", edit(**{SEG: {"size": [SIZE, SIZE], "counts": ""}}), "cover 0 pixels"),
    ("rle-zero-string", edit(**{SEG: {"size": [SIZE, SIZE], "counts": "0"}}), "cover 0 pixels"),
    ("rle-short-list", edit(**{SEG: {"size": [SIZE, SIZE], "counts": [3, 100]}}), "cover 103 pixels"),
    ("rle-negative", edit(**{SEG: {"size": [SIZE, SIZE], "counts": [3, -3, 1024]}}), "non-negative integers"),
    ("rle-counts-int", edit(**{SEG: {"size": [SIZE, SIZE], "counts": 5}}), "list of integers or a string"),
    ("rle-wrong-size", edit(**{SEG: {"size": [8, 8], "counts": [64]}}), "RLE size"),
    ("crowd", edit(**{"annotations.0.iscrowd": 1}), "crowd region"),
    ("annotation-not-object", edit(**{"annotations.0": "loop"}), "annotations[0] is not an object"),
    ("annotations-dict", edit(annotations={"1": GOOD["annotations"][0]}), "'annotations' must be a list"),
    ("images-dict", edit(images={"1": GOOD["images"][0]}), "'images' must be a list"),
    ("unknown-image", edit(**{"annotations.0.image_id": 9}), "unknown image_id 9"),
    ("undeclared-category", edit(**{"annotations.0.category_id": 5}), "category_id 5"),
    ("image-not-object", edit(**{IMG: "a.png"}), "images[0] is not an object"),
    ("image-no-file-name", edit(**{f"{IMG}.file_name": DELETE}), "images[0] has no 'file_name'"),
    ("image-no-id", edit(**{f"{IMG}.id": DELETE}), "images[0] has no 'id'"),
    ("image-id-string", edit(**{f"{IMG}.id": "1", "annotations.0.image_id": "1"}), "id must be an integer"),
    ("duplicate-image-id", edit(images=[GOOD["images"][0], {**GOOD["images"][0], "file_name": "b.png"}]),
     "image id 1 is used twice"),
    ("height-string", edit(**{f"{IMG}.height": "32"}), "height must be a positive integer, got '32' (str)"),
    ("width-zero", edit(**{f"{IMG}.width": 0}), "width must be a positive integer"),
    ("wrong-size", edit(**{f"{IMG}.height": 33}), "says 32x33"),
    ("nm-negative", edit(**{f"{IMG}.nm_per_px": -1}), "nm_per_px must be a positive number"),
    ("nm-string", edit(**{f"{IMG}.nm_per_px": "abc"}), "nm_per_px must be a positive number"),
    ("nm-nan", edit(**{f"{IMG}.nm_per_px": float("nan")}), "nm_per_px must be a positive number"),
    ("file-name-parent", edit(**{f"{IMG}.file_name": "../a.png"}), "outside the dataset folder"),
    ("file-name-absolute", edit(**{f"{IMG}.file_name": "/etc/passwd"}), "outside the dataset folder"),
    ("file-name-empty", edit(**{f"{IMG}.file_name": ""}), "non-empty string"),
    ("file-name-missing-image", edit(**{f"{IMG}.file_name": "nope.png"}), "not found"),
    ("category-id-zero", edit(categories=[{"id": 0, "name": "loop"}]), "annotations.json"),
    ("duplicate-category", edit(categories=[{"id": 1, "name": "loop"}, {"id": 1, "name": "dot"}]), "annotations.json"),
    ("no-categories-key", {k: v for k, v in GOOD.items() if k != "categories"}, "no 'categories' key"),
    ("no-images", edit(images=[], annotations=[]), "empty dataset"),
]


def _listing(root):
    return sorted((p.relative_to(root).as_posix(), p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*"))


@pytest.mark.parametrize("case, doc, words", COCO_CASES, ids=[c[0] for c in COCO_CASES])
def test_bad_coco_is_refused_naming_file_and_problem(tmp_path, case, doc, words):
    root = coco_folder(tmp_path / case, doc)
    before = _listing(root)
    t0 = time.perf_counter()
    with pytest.raises((ValueError, FileNotFoundError)) as e:
        load_dataset(root)
    assert time.perf_counter() - t0 < 20  # no hang on hostile numbers
    msg = str(e.value)
    assert words in msg, msg
    assert "annotations.json" in msg or "a.png" in msg or "nope.png" in msg, msg
    assert _listing(root) == before  # nothing written, nothing half-written


@pytest.mark.parametrize("case, text, words", [
    ("not-json", "{images: [", "not valid JSON"),
    ("not-utf8", b'{"images": "\xff\xfe"}', "not UTF-8"),
    ("json-list", "[1, 2]", "not a COCO instances file"),
])
def test_unreadable_coco_files_name_the_file(tmp_path, case, text, words):
    root = coco_folder(tmp_path / case, text=text)
    with pytest.raises(ValueError, match=words) as e:
        from tem_lib.data import read_coco
        read_coco(root / "annotations.json")
    assert "annotations.json" in str(e.value)


def test_annotation_wholly_outside_the_image_is_dropped_with_a_warning(tmp_path):
    outside = [40.0, 40.0, 50.0, 40.0, 50.0, 50.0]  # inside the "far" bound, but off the 32x32 image
    doc = edit(annotations=[GOOD["annotations"][0], {"id": 2, "image_id": 1, "category_id": 1, "segmentation": [outside]}])
    with pytest.warns(UserWarning, match=r"1 annotation\(s\) with no pixel inside their image were dropped \(ids \[2\]\)"):
        (s,) = load_dataset(coco_folder(tmp_path / "c", doc))
    assert len(s.instances) == 1


def test_valid_rle_strings_still_read(tmp_path):
    from pycocotools import mask as mask_utils
    m = np.zeros((SIZE, SIZE), np.uint8, order="F")
    m[3:9, 5:20] = 1
    rle = mask_utils.encode(m)
    doc = edit(**{SEG: {"size": [SIZE, SIZE], "counts": rle["counts"].decode()}})
    (s,) = load_dataset(coco_folder(tmp_path / "rle", doc))
    assert s.instances[0].full_mask((SIZE, SIZE)).sum() == 6 * 15


# ----------------------------------------------------------------------------- YOLO
def yolo_folder(root, lines, names="names: [dot, loop]\n"):
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    Image.fromarray(np.full((SIZE, SIZE), 128, np.uint8)).save(root / "images" / "a.png")
    (root / "labels" / "a.txt").write_bytes(lines if isinstance(lines, bytes) else lines.encode())
    (root / "data.yaml").write_bytes(names if isinstance(names, bytes) else names.encode())
    return root


@pytest.mark.parametrize("case, lines, names, words", [
    ("nan", "0 0.1 nan 0.5 0.1 0.5 0.5\n", None, "normalised to [0, 1]"),
    ("inf", "0 0.1 inf 0.5 0.1 0.5 0.5\n", None, "normalised to [0, 1]"),
    ("out-of-range", "0 0.1 0.1 1.5 0.1 0.5 0.5\n", None, "normalised to [0, 1]"),
    ("box-only", "0 0.5 0.5 0.2 0.2\n", None, "a bounding box"),
    ("odd", "0 0.1 0.1 0.5 0.1 0.5\n", None, "even number"),
    ("class-index", "5 0.1 0.1 0.5 0.1 0.5 0.5\n", None, "class index 5"),
    ("text", "dot 0.1 0.1 0.5 0.1 0.5 0.5\n", None, "non-numeric"),
    ("label-not-utf8", b"0 0.1 0.1 \xff 0.1 0.5 0.5\n", None, "not UTF-8"),
    ("yaml-not-utf8", "0 0.1 0.1 0.5 0.1 0.5 0.5\n", b"names: [\xff]\n", "not UTF-8"),
])
def test_bad_yolo_is_refused_naming_file_and_line(tmp_path, case, lines, names, words):
    root = yolo_folder(tmp_path / case, lines, names or "names: [dot, loop]\n")
    before = _listing(root)
    with pytest.raises(ValueError, match=re.escape(words)) as e:
        load_dataset(root)
    msg = str(e.value)
    assert ("a.txt line 1" in msg or "a.txt: not UTF-8" in msg) if case != "yaml-not-utf8" else "data.yaml" in msg
    assert _listing(root) == before


# ----------------------------------------------------------------------------- properties
coordinate = st.one_of(st.floats(allow_nan=True, allow_infinity=True, width=64),
                       st.floats(-2 * SIZE, 3 * SIZE), st.integers(-10**6, 10**6))


@settings(max_examples=40, deadline=5000, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(coordinate, min_size=0, max_size=16))
def test_coco_reader_reads_or_refuses_any_polygon(tmp_path_factory, poly):
    root = coco_folder(tmp_path_factory.mktemp("p"), edit(**{SEG: [poly]}))
    t0 = time.perf_counter()
    try:
        (s,) = load_dataset(root)
    except ValueError as e:
        assert "annotations.json" in str(e)
    else:
        ok = [v for v in poly if isinstance(v, (int, float)) and math.isfinite(v)]
        assert len(ok) == len(poly) >= 6 and len(poly) % 2 == 0
        assert all(i.mask.any() for i in s.instances)
    assert time.perf_counter() - t0 < 5


@settings(max_examples=40, deadline=5000, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.integers(-2, 3), st.lists(coordinate, min_size=0, max_size=12))
def test_yolo_reader_reads_or_refuses_any_line(tmp_path_factory, k, coords):
    line = " ".join([str(k), *map(str, coords)]) + "\n"
    root = yolo_folder(tmp_path_factory.mktemp("y"), line)
    try:
        (s,) = load_dataset(root)
    except ValueError as e:
        assert "a.txt line 1" in str(e)
    else:
        assert 0 <= k < 2 and len(coords) >= 6 and len(coords) % 2 == 0
        assert all(math.isfinite(v) and -0.01 <= v <= 1.01 for v in coords)
        assert {i.category_id for i in s.instances} <= {k + 1}


# ----------------------------------------------------------------------------- parameters
def test_misspelt_parameter_is_refused_with_the_known_ones(tmp_path, capsys):
    from tem_lib.running.runner import main
    assert main(["--profile", "smoke", "--only", "01", "-p", "n_trian", "[5]", "--runs-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "-p n_trian: no notebook of this run declares it" in err and "'n_train'" in err
    assert not any(tmp_path.iterdir())  # nothing ran


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf"])
def test_bad_pixel_size_is_refused(tmp_path, capsys, value):
    from tem_lib.running.runner import main
    data = coco_folder(tmp_path / "d", GOOD)
    assert main(["--data", str(data), "--nm-per-px", value, "--only", "01", "--runs-dir", str(tmp_path / "r")]) == 2
    assert "--nm-per-px must be a positive number" in capsys.readouterr().err
    with pytest.raises(ValueError, match="nm_per_px must be a positive number"):
        load_dataset(data, nm_per_px=float(value))


@pytest.mark.parametrize("kw, words", [
    ({"crop_size": 0}, "crop_size must be an integer >= 8"),
    ({"n_splits": 0}, "n_splits must be an integer >= 1"),
    ({"n_train": []}, "at least one training-set size"),
    ({"n_train": (5, -1)}, "every n_train must be an integer >= 1"),
    ({"test_fraction": 1.5}, "test_fraction must be between 0 and 1"),
])
def test_bad_split_parameters_are_refused_before_reading(tmp_path, kw, words):
    from tem_lib import workspace
    with pytest.raises(ValueError, match=re.escape(words)):
        workspace.prepare(tmp_path / "work", tmp_path / "no-data-needed", **kw)
    assert not (tmp_path / "work").exists()


def test_dataset_fingerprint_follows_the_content(tmp_path):
    import os

    from tem_lib.running.runner import dataset_fingerprint
    root = coco_folder(tmp_path / "d", GOOD)
    a = dataset_fingerprint(root)
    assert dataset_fingerprint(root) == a
    f = root / "annotations.json"
    f.write_text(json.dumps(edit(categories=[{"id": 1, "name": "void"}])))
    st_ = f.stat()
    os.utime(f, ns=(st_.st_atime_ns, st_.st_mtime_ns + 10**9))
    assert dataset_fingerprint(root) != a


def test_run_all_help_answers_without_installing(tmp_path):
    import shutil
    import subprocess
    from pathlib import Path
    script = tmp_path / "run_all.sh"
    shutil.copy(Path(__file__).resolve().parents[1] / "run_all.sh", script)
    r = subprocess.run(["bash", str(script), "--help"], capture_output=True, text=True, timeout=30,
                       env={"PATH": "/usr/bin:/bin", "PYTHON": "python3"})
    assert r.returncode == 0 and "./run_all.sh --test" in r.stdout and "--data DIR" in r.stdout
    assert not (tmp_path / ".venv").exists()  # nothing created, nothing installed


def test_class_names_of_any_script_are_kept_and_distinct(tmp_path):
    from tem_lib.classes import ClassSet
    from tem_lib.data import read_coco, write_dataset
    doc = edit(categories=[{"id": 1, "name": "空洞"}, {"id": 2, "name": "析出物"}])
    (s,), classes = read_coco(coco_folder(tmp_path / "cjk", doc) / "annotations.json")
    assert classes.names == ("空洞", "析出物")
    out = write_dataset([s], tmp_path / "out", classes)
    assert load_dataset(out).classes.names == ("空洞", "析出物")  # written back unchanged
    # display names keep every character; machine names drop only punctuation and spaces
    loop = ClassSet.from_names(["⟨111⟩ loop"])
    assert loop.names == ("111_loop",) and loop[1].display == "⟨111⟩ loop"
    # and a COCO file written from it names the class as its data did, not by the machine name
    from tem_lib.data import to_coco
    assert to_coco([s], loop)["categories"][0]["name"] == "⟨111⟩ loop"
    doc = edit(categories=[{"id": 1, "name": "⟨111⟩ loop"}, {"id": 2, "name": "void"}])
    (s2,), classes2 = read_coco(coco_folder(tmp_path / "loop", doc) / "annotations.json")
    written = json.loads((write_dataset([s2], tmp_path / "out2", classes2) / "annotations.json").read_text())
    assert [c["name"] for c in written["categories"]] == ["⟨111⟩ loop", "void"]
    assert [c.display for c in load_dataset(tmp_path / "out2").classes] == ["⟨111⟩ loop", "void"]


def test_yolo_class_names_from_two_files_must_agree(tmp_path):
    root = yolo_folder(tmp_path / "y", "0 0.1 0.1 0.5 0.1 0.5 0.5\n")
    (root / "classes.txt").write_text("dot\nloop\n")
    assert load_dataset(root).classes.names == ("dot", "loop")  # agreeing: fine
    (root / "classes.txt").write_text("loop\ndot\n")
    with pytest.raises(ValueError, match=r"data.yaml names the classes \['dot', 'loop'\] but .*classes.txt names"):
        load_dataset(root)


def test_decompression_bomb_header_names_the_file(tmp_path, monkeypatch):
    from PIL import Image as PILImage

    from tem_lib.data import read_image
    Image.fromarray(np.zeros((64, 64), np.uint8)).save(tmp_path / "bomb.png")
    monkeypatch.setattr(PILImage, "MAX_IMAGE_PIXELS", 100)  # a 64x64 header now "claims" too many pixels
    with pytest.raises(ValueError, match="bomb.png: the image header claims more pixels"):
        read_image(tmp_path / "bomb.png")


# ----------------------------------------------------------------------------- round three
@pytest.mark.parametrize("value", [1.7, 2.9, 1.0, True, "1", None, [1], 10 ** 400])
@pytest.mark.parametrize("key", ["category_id", "image_id"])
def test_ids_of_every_json_type_but_integers_are_refused(tmp_path, key, value):
    root = coco_folder(tmp_path / "d", edit(**{f"annotations.0.{key}": value}))
    with pytest.raises(ValueError, match=f"annotations.json: annotation 1 (has|refers to unknown) {key} ") as e:
        load_dataset(root)
    assert len(str(e.value)) < 400  # a 400-digit id is shown short


@given(st.one_of(st.none(), st.booleans(), st.floats(allow_nan=True), st.text(max_size=5),
                 st.lists(st.integers(), max_size=2), st.integers(min_value=-3, max_value=3),
                 st.dictionaries(st.text(max_size=2), st.integers(), max_size=1)))
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_coco_reader_reads_or_refuses_any_id(tmp_path_factory, value):
    root = coco_folder(tmp_path_factory.mktemp("ids"), edit(**{"annotations.0.category_id": value,
                                                               "annotations.0.id": value}))
    try:
        (s,) = load_dataset(root)
    except ValueError as e:
        assert "annotations.json" in str(e)
    else:
        assert value == 1 and type(value) is int and [i.category_id for i in s.instances] == [1]


def test_an_annotation_listed_twice_is_read_once_with_a_warning(tmp_path):
    ann = GOOD["annotations"][0]
    root = coco_folder(tmp_path / "d", edit(annotations=[ann, dict(ann)]))
    with pytest.warns(UserWarning, match="1 annotation.s. listed twice, identical, were read once"):
        (s,) = load_dataset(root)
    assert len(s.instances) == 1
    other = {**ann, "segmentation": [[20.0, 20.0, 28.0, 20.0, 28.0, 28.0]]}
    root = coco_folder(tmp_path / "e", edit(annotations=[ann, other]))
    with pytest.warns(UserWarning, match="annotation id.s. used by two different annotations"):
        (s,) = load_dataset(root)
    assert len(s.instances) == 2


def test_a_16_bit_gray_mask_of_8_bit_levels_keeps_its_classes(tmp_path):
    root = tmp_path / "g"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    Image.fromarray(np.full((32, 32), 120, np.uint8)).save(root / "images" / "a.png")
    gray = np.zeros((32, 32), np.uint16)
    gray[2:6, 2:6], gray[10:14, 10:14], gray[20:26, 20:26] = 85 * 257, 170 * 257, 255 * 257
    Image.fromarray(gray).save(root / "masks" / "a.png")
    classes = {"classes": {"classes": [{"id": 1, "name": "a", "gray": 85}, {"id": 2, "name": "b", "gray": 170},
                                       {"id": 3, "name": "c", "gray": 255}]}}
    (root / "metadata.json").write_text(json.dumps(classes))
    with pytest.warns(UserWarning, match="257 times 8-bit levels"):
        ds = load_dataset(root, fmt="graymask")
    assert sorted(i.category_id for i in ds[0].instances) == [1, 2, 3]
    gray[0, 0] = 300
    Image.fromarray(gray).save(root / "masks" / "a.png")
    with pytest.raises(ValueError, match=r"masks/a.png: gray levels above 255 \(\[300, "):
        load_dataset(root, fmt="graymask")


def _imagej(root, rows):
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    Image.fromarray(np.full((64, 64), 120, np.uint8)).save(root / "images" / "a.png")
    (root / "labels" / "a_results.csv").write_text(" ,X,Y,Major,Minor,Angle,class\n" + "\n".join(
        f"{k},{r}" for k, r in enumerate(rows, 1)) + "\n")
    return root


def test_imagej_tables_in_calibrated_units_are_refused_and_one_pixel_dots_kept(tmp_path):
    root = _imagej(tmp_path / "um", ["0.010,0.012,0.004,0.003,10,1", "0.02,0.03,0.006,0.005,0,0"])
    with pytest.raises(ValueError, match="a_results.csv: every ellipse is under 1.5 px.*calibrated units"):
        load_dataset(root, classes="fecral")
    root = _imagej(tmp_path / "px", ["10,10,1,1,0,1", "30.5,30.5,1,1,0,1", "50,20,8,6,0,0"])
    (s,) = load_dataset(root, classes="fecral")
    assert len(s.instances) == 3  # the 1-px dot at an integer centre (a pixel corner) is kept
    dot = s.instances[0]
    assert dot.area == 1 and (dot.x0, dot.y0) == (10, 10)


def test_images_read_wrongly_are_refused_or_read_right(tmp_path):
    import struct
    import zlib

    from tem_lib.data import read_image

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    w = h = 11000  # the header claims 121 megapixels, the data hold one row
    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(b"\x00" + bytes(w))) + chunk(b"IEND", b""))
    (tmp_path / "short.png").write_bytes(png)
    with pytest.warns(Warning), pytest.raises(ValueError, match="short.png: truncated PNG.*1 of the 11000 rows"):
        read_image(tmp_path / "short.png")
    a = (np.random.default_rng(0).random((40, 60)) * 255).astype(np.uint8)
    Image.fromarray(a).save(tmp_path / "ok.png")
    whole = (tmp_path / "ok.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(ValueError, match="cut.png"):
        read_image(tmp_path / "cut.png")
    Image.fromarray(a).convert("CMYK").save(tmp_path / "cmyk.jpg", quality=95)
    img = read_image(tmp_path / "cmyk.jpg")  # not a blank image: the gray levels come back
    assert abs(img.mean() - a.mean() / 255) < 0.02 and np.corrcoef(img.ravel(), a.ravel())[0, 1] > 0.95


def test_the_fingerprint_of_a_dataset_named_by_a_file_covers_its_images_and_labels(tmp_path):
    import os

    from tem_lib.running.runner import dataset_fingerprint
    root = coco_folder(tmp_path / "d", GOOD)
    f = root / "annotations.json"
    a = dataset_fingerprint(f)
    img = root / "images" / "a.png"
    Image.fromarray(np.full((SIZE, SIZE), 7, np.uint8)).save(img)
    st_ = img.stat()
    os.utime(img, ns=(st_.st_atime_ns, st_.st_mtime_ns + 10**9))
    assert dataset_fingerprint(f) != a  # an edited image of a COCO file given by name
    y = yolo_folder(tmp_path / "y", "0 0.1 0.1 0.5 0.1 0.5 0.5\n")
    b = dataset_fingerprint(y / "data.yaml")
    label = next((y / "labels").rglob("*.txt"))
    label.write_text("0 0.2 0.2 0.6 0.2 0.6 0.6\n")
    os.utime(label, ns=(label.stat().st_atime_ns, label.stat().st_mtime_ns + 10**9))
    assert dataset_fingerprint(y / "data.yaml") != b  # an edited label of a YOLO data.yaml given by name


@pytest.mark.parametrize("case, names, words", [
    ("duplicate-names", "names: [dot, dot]\n", "data.yaml: class name(s) ['dot'] given twice"),
    ("text-keys", "names:\n  a: dot\n  b: loop\n", "data.yaml: 'names' keys must be class indices"),
    ("300-names", "names: [" + ", ".join(f"c{i}" for i in range(300)) + "]\n", "data.yaml: 300 classes"),
])
def test_yolo_class_names_that_cannot_be_a_class_set_name_the_file(tmp_path, case, names, words):
    with pytest.raises(ValueError) as e:
        load_dataset(yolo_folder(tmp_path / case, "0 0.1 0.1 0.5 0.1 0.5 0.5\n", names))
    assert words in str(e.value)


def test_yolo_label_files_without_images_and_all_empty_are_said(tmp_path):
    root = yolo_folder(tmp_path / "orphan", "0 0.1 0.1 0.5 0.1 0.5 0.5\n")
    (root / "labels" / "zz.txt").write_text("0 0.1 0.1 0.5 0.1 0.5 0.5\n")
    with pytest.warns(UserWarning, match=r"1 label file\(s\) with no image .* were not read \(\['zz.txt'\]\)"):
        assert len(load_dataset(root)) == 1
    with pytest.raises(ValueError, match="are all empty: no defect is labelled"):
        load_dataset(yolo_folder(tmp_path / "empty", ""))


def test_tiffs_that_are_not_tiffs(tmp_path):
    from tem_lib.data import read_image
    (tmp_path / "zero.tif").write_bytes(b"")
    with pytest.raises(ValueError, match="zero.tif: empty file"):
        read_image(tmp_path / "zero.tif")
    Image.fromarray(np.full((8, 8), 51, np.uint8)).save(tmp_path / "p.png")
    (tmp_path / "p.tif").write_bytes((tmp_path / "p.png").read_bytes())
    with pytest.warns(UserWarning, match="p.tif: named .tif but is a PNG file"):
        assert read_image(tmp_path / "p.tif").max() == pytest.approx(51 / 255)
    (tmp_path / "junk.tif").write_bytes(b"II*\x00junk")
    with pytest.raises(ValueError, match="junk.tif"):
        read_image(tmp_path / "junk.tif")


@pytest.mark.parametrize("case, doc, text, words", [
    ("huge-integer-vertex", edit(**{SEG: [[4, 4, 12, 4, 12, 10 ** 400, 4, 12]]}), None, "lies far outside"),
    ("ellipse-text", edit(**{"annotations.0.ellipse": "abc"}), None, "'ellipse' must be 5 finite numbers"),
    ("ellipse-short", edit(**{"annotations.0.ellipse": [1, 2, 3]}), None, "'ellipse' must be 5 finite numbers"),
    ("source-id-list", edit(images=[{**GOOD["images"][0], "source_id": [1]}]), None, "source_id [1] (list)"),
    ("5000-digits", None, json.dumps(GOOD).replace('"category_id": 1', '"category_id": ' + "9" * 5000),
     "unreadable JSON"),
    ("nested", None, json.dumps(GOOD)[:-1] + ', "x": ' + "[" * 100000 + "]" * 100000 + "}", "nested too deeply"),
])
def test_hostile_numbers_and_shapes_in_coco_name_the_file(tmp_path, case, doc, text, words):
    root = coco_folder(tmp_path / case, doc, text=text)
    with pytest.raises(ValueError) as e:
        load_dataset(root)
    assert words in str(e.value) and "annotations.json" in str(e.value) and len(str(e.value)) < 500


def test_class_names_that_collide_only_as_machine_names_are_kept(tmp_path):
    from tem_lib.data import write_dataset
    for names in (["🔴", "🔵"], ["loop a", "loop_a"]):
        doc = edit(categories=[{"id": 1, "name": names[0]}, {"id": 2, "name": names[1]}])
        ds = load_dataset(coco_folder(tmp_path / names[1], doc))
        assert [c.display for c in ds.classes] == names and len(set(ds.classes.names)) == 2
        back = load_dataset(write_dataset(list(ds), tmp_path / f"out{names[1]}", ds.classes))
        assert [c.display for c in back.classes] == names and back.classes.matches(ds.classes)
    with pytest.raises(ValueError, match="not distinct"):
        load_dataset(coco_folder(tmp_path / "same", edit(categories=[{"id": 1, "name": "a"}, {"id": 2, "name": "a"}])))
    # a numeric source id is read as text, so 5 and "5" are one micrograph
    (s,) = load_dataset(coco_folder(tmp_path / "num", edit(images=[{**GOOD["images"][0], "source_id": 5}])))
    assert s.source_id == "5"
