"""The dataset-format registry: a newcomer's format is one module (detect + read) and one
registration line; formats that name no classes ask for them instead of assuming FeCrAl."""
import numpy as np
import pytest
from PIL import Image

from tem_lib.classes import ClassSet
from tem_lib.data import Dataset, Instance, Sample, detect_format, formats, load_dataset, register_format, unregister_format
from tem_lib.data.io import check_declared_classes


# ----------------------------------------------------------------------------- a toy format, as a newcomer writes it
def is_toy(path):
    """A folder with ``discs.txt`` (lines ``image x y radius class``) and ``images/``."""
    return path.is_dir() and (path / "discs.txt").is_file()


def read_toy(path, classes=None, images_dir=None):
    if classes is None:  # class codes only: the class set must be declared
        raise ValueError(f"{path}: discs.txt gives class codes, not names: declare the class set (classes=...)")
    images_dir = images_dir or path / "images"
    rows = [line.split() for line in (path / "discs.txt").read_text().splitlines() if line.strip()]
    samples = []
    for name in sorted({r[0] for r in rows}):
        img = np.asarray(Image.open(images_dir / f"{name}.png"), dtype=np.float32) / 255
        insts = []
        for _, x, y, r, c in (r for r in rows if r[0] == name):
            x, y, r = int(x), int(y), int(r)
            yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
            insts.append(Instance(xx ** 2 + yy ** 2 <= r * r, x - r, y - r, classes.classes[int(c)].id))
        samples.append(Sample(img, insts, name, name=name))
    return Dataset(samples, classes, path, "toy")


@pytest.fixture
def toy(tmp_path):
    register_format("toy", is_toy, read_toy, "discs.txt + images/", needs_classes=True)
    root = tmp_path / "toy"
    (root / "images").mkdir(parents=True)
    Image.fromarray(np.full((64, 64), 200, np.uint8)).save(root / "images" / "a.png")
    (root / "discs.txt").write_text("a 20 20 4 0\na 40 40 6 1\n")
    yield root
    unregister_format("toy")


def test_a_registered_format_is_detected_and_read(toy):
    assert "toy" in formats() and detect_format(toy) == "toy"
    classes = ClassSet.from_names(["void", "bubble"], ids=[3, 5])
    ds = load_dataset(toy, classes=classes, nm_per_px=0.5)
    assert ds.format == "toy" and ds.classes is classes and len(ds) == 1
    assert [i.category_id for i in ds[0].instances] == [3, 5] and ds[0].nm_per_px == 0.5
    # a format that names no classes asks for them, at load time and before a run starts
    with pytest.raises(ValueError, match="declare the class set"):
        load_dataset(toy)
    with pytest.raises(ValueError, match="declare the class set"):
        check_declared_classes(toy)
    assert check_declared_classes(toy, ["void", "bubble"]) == "toy"


def test_registry_errors_are_clear(toy, tmp_path):
    with pytest.raises(ValueError, match="registered already"):
        register_format("toy", is_toy, read_toy)
    with pytest.raises(ValueError, match="unknown dataset format 'nope'.*toy"):
        load_dataset(toy, fmt="nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="not a dataset in a format tem_lib reads.*toy: discs.txt"):
        detect_format(tmp_path / "empty")
    register_format("bad", lambda p: p.name == "bad", lambda p, classes=None, images_dir=None: [])
    try:
        (tmp_path / "bad").mkdir()
        with pytest.raises(TypeError, match="read\\(\\) must return a tem_lib.data.Dataset"):
            load_dataset(tmp_path / "bad")
    finally:
        unregister_format("bad")
    assert "bad" not in formats()


# ----------------------------------------------------------------------------- a toy strategy, as a newcomer writes it
def test_a_new_strategy_is_one_class_and_one_registration(small_ws):
    """The study never names a strategy: a registered one gets its config from augment_config,
    its run ids and condition names from its label, its pool from the sweep."""
    from dataclasses import dataclass

    from tem_lib.augment import STRATEGIES
    from tem_lib.augment.base import Augmentation, register
    from tem_lib.data import write_dataset
    from tem_lib.study import Sweep

    @dataclass
    class FlipConfig:
        axis: int = 1

    @register
    class Flip(Augmentation):
        """Mirrored copies of the cell's real crops."""
        name, label, id_prefix, Config = "flip_toy", "FLIP", "flip", FlipConfig

        def _make(self, cell, n, out_dir, meta):
            flipped = []
            for k in range(n):
                s = cell.train[k % len(cell.train)]
                W = s.shape[1]
                insts = [Instance(i.mask[:, ::-1].copy(), W - i.x0 - i.mask.shape[1], i.y0, i.category_id)
                         for i in s.instances]
                flipped.append(Sample(s.image[:, ::-1].copy(), insts, s.source_id, s.nm_per_px, f"flip{k}"))
            write_dataset(flipped, out_dir, cell.classes)
    try:
        sweep = Sweep(small_ws, {"splits": [0], "n_train": [2], "amounts": [0, 2], "augment": ["flip_toy"],
                                 "augment_config": {"flip_toy": {"axis": 1}}})
        assert [r["id"] for r in sweep.runs] == ["split0-n2-syn0-seed0", "split0-n2-flip2-seed0"]
        assert [r["condition"] for r in sweep.runs] == ["EXP", "EXP+FLIP (2)"]
        pool = load_dataset(sweep.prepare(0, 2, "flip_toy"))
        assert len(pool) == 2 and pool.metadata["strategy"] == "flip_toy" and pool.metadata["config"] == {"axis": 1}
        real = small_ws.train(0, 2)[0]
        assert np.array_equal(pool[0].image, real.image[:, ::-1])
        assert sorted(i.bbox for i in pool[0].instances) == sorted(
            (real.shape[1] - i.bbox[2], i.bbox[1], real.shape[1] - i.bbox[0], i.bbox[3]) for i in real.instances)
    finally:
        STRATEGIES.pop("flip_toy", None)
