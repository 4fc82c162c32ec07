"""A toy dataset format and a toy augmentation strategy in their own files outside tem_lib,
declared as entry points of an installed package, are found by load_dataset and by a sweep
without editing tem_lib; a broken plugin is named in a warning."""
import json
import sys
import textwrap

import numpy as np
import pytest
from PIL import Image

TOY_FORMAT = '''
"""A toy format: squares.txt lists "x y size class" squares of images/*.png."""
from pathlib import Path

import numpy as np

from tem_lib.classes import ClassSet
from tem_lib.data import Dataset, Instance, Sample, read_image, register_format


def detect(path):
    return Path(path).is_dir() and (Path(path) / "squares.txt").is_file()


def read(path, classes=None, images_dir=None):
    path = Path(path)
    classes = classes or ClassSet.from_names(["square"])
    by_image = {}
    for line in (path / "squares.txt").read_text().splitlines():
        name, x, y, size, c = line.split()
        by_image.setdefault(name, []).append(Instance(np.ones((int(size), int(size)), bool), int(x), int(y), int(c)))
    samples = [Sample(read_image(path / "images" / f"{n}.png"), insts, n) for n, insts in sorted(by_image.items())]
    return Dataset(samples, classes, path, "toy")


register_format("toy", detect, read, "squares.txt + images/")
'''

TOY_STRATEGY = '''
"""A toy strategy: the cell's real crops, flipped left-right, as synthetic pairs."""
from dataclasses import dataclass

import numpy as np

from tem_lib.augment import Augmentation, register
from tem_lib.data import Instance, Sample, write_dataset


@dataclass
class ToyConfig:
    note: str = "flip"


@register
class Toy(Augmentation):
    name = "toy"
    Config = ToyConfig

    def _make(self, cell, n, out_dir, meta):
        pairs = []
        for k in range(n):
            s = cell.train[k % len(cell.train)]
            W = s.shape[1]
            insts = [Instance(i.mask[:, ::-1].copy(), W - i.x0 - i.mask.shape[1], i.y0, i.category_id)
                     for i in s.instances]
            pairs.append(Sample(np.ascontiguousarray(s.image[:, ::-1]), insts, f"toy{k}", s.nm_per_px, f"toy{k}"))
        write_dataset(pairs, out_dir, cell.classes)
        meta["flipped"] = n
'''


@pytest.fixture
def plugin_package(tmp_path, monkeypatch):
    """``toy_plugins`` installed as pip would leave it: modules plus a dist-info with entry points."""
    site = tmp_path / "site"
    (site / "toy_plugins").mkdir(parents=True)
    (site / "toy_plugins" / "__init__.py").write_text("")
    (site / "toy_plugins" / "squares.py").write_text(textwrap.dedent(TOY_FORMAT))
    (site / "toy_plugins" / "flip.py").write_text(textwrap.dedent(TOY_STRATEGY))
    (site / "toy_plugins" / "broken.py").write_text("raise ImportError('missing dependency')\n")
    info = site / "toy_plugins-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-plugins\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[tem_lib.formats]\nsquares = toy_plugins.squares\n\n"
                                           "[tem_lib.augment]\nflip = toy_plugins.flip\nbroken = toy_plugins.broken\n")
    monkeypatch.syspath_prepend(str(site))
    import importlib

    from tem_lib import plugins
    from tem_lib.augment import base
    formats = importlib.import_module("tem_lib.data.formats")  # the module (the package exports a function of its name)
    monkeypatch.setattr(plugins, "_loaded", set())
    monkeypatch.setattr(formats, "_REGISTRY", dict(formats._REGISTRY))
    monkeypatch.setattr(base, "STRATEGIES", dict(base.STRATEGIES))
    yield site
    for m in [m for m in sys.modules if m.startswith("toy_plugins")]:
        del sys.modules[m]


def test_a_format_of_another_package_is_read_by_load_dataset(plugin_package, tmp_path):
    from tem_lib.data import formats, load_dataset
    root = tmp_path / "squares"
    (root / "images").mkdir(parents=True)
    Image.fromarray(np.full((32, 32), 100, np.uint8)).save(root / "images" / "a.png")
    (root / "squares.txt").write_text("a 2 2 4 1\na 10 12 6 1\n")
    ds = load_dataset(root)
    assert ds.format == "toy" and "toy" in formats()
    assert [len(s.instances) for s in ds] == [2] and ds.classes.names == ("square",)


def test_a_strategy_of_another_package_runs_in_a_sweep(plugin_package, tmp_path):
    from tem_lib import workspace
    from tem_lib.augment import get_strategy, strategies
    from tem_lib.simulate import generate_dataset, preset
    from tem_lib.study import Sweep
    with pytest.warns(UserWarning, match=r"plugin 'broken' \(tem_lib.augment\) failed to load: ImportError"):
        assert "toy" in strategies()
    assert get_strategy("toy", {"note": "x"}).config.note == "x"
    data = generate_dataset(tmp_path / "data", preset(height=256, width=256), n_images=4, seed=5, workers=1)
    ws = workspace.prepare(tmp_path / "work", data, n_train=(2,), n_splits=1, seed=0, n_val=2)
    cfg = {"splits": [0], "n_train": [2], "amounts": [2], "augment": ["toy"], "n_test": 2, "n_val": 2,
           "detector": {"fpn_channels": 16, "representation_size": 32, "mask_head_channels": 16},
           "training": {"epochs": 1, "iters_per_epoch": 1, "batch_size": 2, "warmup_iters": 1}}
    sweep = Sweep(ws, cfg, progress=False)
    (run,) = [r for r in sweep.runs if r["augment"] == "toy"]
    row = sweep.run(run)
    assert row["augment"] == "toy"
    pool = json.loads((sweep.pool_dir(0, 2, "toy") / "metadata.json").read_text())
    assert pool["strategy"] == "toy" and pool["flipped"] >= 2

