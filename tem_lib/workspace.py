"""The work folder that ties the notebooks together: dataset, class set, crops, splits, and
where every artifact lives.

Notebook 01 decides the dataset, crops and splits (:func:`prepare`); every later notebook
reads them back with :func:`load` and asks the workspace for what it needs:

- data: ``ws.classes`` (the dataset's :class:`~tem_lib.classes.ClassSet`),
  ``ws.train(split, n)``, ``ws.test(split)``, ``ws.val(split)`` (a validation part of the
  training pool, never trained on, for choices such as score thresholds), ``ws.cells()``;
- places: ``ws.path(stage, split, n, *parts)``, the one path scheme of the project. Callers
  never assemble or parse artifact paths.

``work_dir/dataset.json`` records where the dataset is, how it was tiled and its class set;
``work_dir/splits.json`` holds the splits.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .classes import ClassSet, resolve_classes
from .data import load_dataset, load_splits, make_splits, save_splits, select, tile_dataset
from .data.sample import Sample
from .layout import STAGES, split_folder
from .utils import read_json, write_json


def project_root() -> Path:
    """The repository root (the folder holding ``run_all.sh``), found upwards from the
    current directory; the current directory if there is none (installed package)."""
    here = Path.cwd().resolve()
    for d in (here, *here.parents):
        if (d / "run_all.sh").is_file() and (d / "tem_lib").is_dir():
            return d
    return here


def resolve(path) -> Path:
    """Relative paths are taken from the project root, so a notebook behaves the same when
    run from ``notebooks/`` in JupyterLab and from the root by ``run_all.sh``."""
    p = Path(os.path.expanduser(str(path)))
    return p if p.is_absolute() else project_root() / p


@dataclass
class Workspace:
    work_dir: Path
    dataset_dir: Path
    micrographs: list[Sample]
    crops: list[Sample]
    splits: dict
    info: dict
    classes: ClassSet

    # ------------------------------------------------------------------ splits
    @property
    def split_ids(self) -> list[int]:
        return [int(sp["id"]) for sp in self.splits["splits"]]

    @property
    def n_train(self) -> list[int]:
        return [int(n) for n in self.splits["n_train"]]

    @property
    def crop_size(self) -> int:
        return int(self.info["crop_size"])

    @property
    def nm_per_px(self) -> float | None:
        return self.crops[0].nm_per_px if self.crops else None

    def cells(self, splits=None, n_train=None) -> list[tuple[int, int]]:
        """(split, N) pairs, splits outer; ``None`` means all of the split file's."""
        splits = self.split_ids if splits is None else [int(s) for s in splits]
        n_train = self.n_train if n_train is None else [int(n) for n in n_train]
        for s in splits:
            self._split(s)
        bad = sorted(set(n_train) - set(self.n_train))
        if bad:
            raise ValueError(f"{self.work_dir / 'splits.json'}: N = {bad} not in the split file "
                             f"(it has {self.n_train}); rerun notebook 01 with n_train including them")
        return [(s, n) for s in splits for n in n_train]

    def _split(self, split: int) -> dict:
        for sp in self.splits["splits"]:
            if int(sp["id"]) == int(split):
                return sp
        raise ValueError(f"{self.work_dir / 'splits.json'}: no split {split} (splits {self.split_ids})")

    def _select(self, names, what: str) -> list[Sample]:
        return select(self.crops, names, where=f"{self.work_dir / 'splits.json'} {what}")

    def default_n(self, n: int | None = None) -> int:
        """``n`` checked against the split file, or its largest N."""
        if n is None:
            return max(self.n_train)
        if int(n) not in self.n_train:
            raise ValueError(f"N = {n} is not in the split file (it has {self.n_train})")
        return int(n)

    def train(self, split: int, n: int | None = None) -> list[Sample]:
        """The N training crops of ``split`` (nested: the 10 are among the 50)."""
        n = self.default_n(n)
        return self._select(self._split(split)["train"][str(n)], f"split {split} train N={n}")

    def test(self, split: int, limit: int | None = None) -> list[Sample]:
        """The test crops of ``split`` (all crops of its held-out micrographs), the first
        ``limit`` of them if given."""
        return self._select(self._split(split)["test"], f"split {split} test")[:limit]

    def val(self, split: int) -> list[Sample]:
        """Validation crops of ``split``: from its training micrographs but in no training set
        (empty when the pool is used up, or for a split file older than this field)."""
        return self._select(self._split(split).get("val", []), f"split {split} val")

    def train_pool(self, split: int) -> list[Sample]:
        """Every crop of the training micrographs of ``split``."""
        src = set(self._split(split)["train_sources"])
        return [c for c in self.crops if c.source_id in src]

    def test_micrographs(self, split: int) -> list[Sample]:
        """The whole held-out micrographs of ``split`` (the test crops are tiles of these)."""
        src = set(self._split(split)["test_sources"])
        return [m for m in self.micrographs if m.source_id in src]

    # ------------------------------------------------------------------ places
    def path(self, stage: str, split: int | None = None, n: int | None = None, *parts) -> Path:
        """``work_dir/<stage>[/split<s>[/n<N>]]/<parts...>``; ``stage`` is one of ``STAGES``."""
        if stage not in STAGES:
            raise ValueError(f"unknown artifact stage {stage!r}; known: {sorted(STAGES)}")
        p = self.work_dir / stage
        if split is not None:
            p = p / split_folder(split)
        if n is not None:
            if split is None:
                raise ValueError("a path with N needs its split")
            p = p / f"n{int(n)}"
        return p.joinpath(*(str(x) for x in parts))


def prepare(work_dir, dataset_dir, crop_size: int = 256, min_area: int = 12,
            n_train=(10, 50, 100), n_splits: int = 2, test_fraction: float = 0.25,
            seed: int = 0, nm_per_px: float | None = None, classes=None, n_val: int = 32) -> Workspace:
    """Load a dataset, tile it, draw the splits and record all of it in ``work_dir``.

    ``classes``: the dataset's class set when the files do not declare it (a preset name, a
    dict, a list of names); see :func:`tem_lib.data.load_dataset`."""
    work_dir, dataset_dir = resolve(work_dir), resolve(dataset_dir)
    _check_split_parameters(crop_size, min_area, n_train, n_splits, test_fraction, n_val)
    micrographs = load_dataset(dataset_dir, nm_per_px=nm_per_px, classes=resolve_classes(classes))
    crops = tile_dataset(micrographs, crop_size, min_area=min_area)
    try:
        splits = make_splits(crops, n_train, n_splits, seed, test_fraction, n_val=n_val)
    except ValueError as e:
        raise ValueError(f"{dataset_dir}: {e}; choose smaller training-set sizes (n_train, e.g. "
                         f"-p n_train '[5, 10]')") from None
    info = {"dataset_dir": str(dataset_dir), "crop_size": crop_size, "min_area": min_area,
            "nm_per_px": nm_per_px, "n_micrographs": len(micrographs), "n_crops": len(crops),
            "format": micrographs.format, "classes": micrographs.classes.to_dict()}
    save_splits(splits, work_dir / "splits.json")
    write_json(work_dir / "dataset.json", info)
    return Workspace(work_dir, dataset_dir, micrographs, crops, splits, info, micrographs.classes)


def _check_split_parameters(crop_size, min_area, n_train, n_splits, test_fraction, n_val) -> None:
    """Refuse values that would fail later with a bare error, or run and mean nothing."""
    import numbers

    def positive_int(name, v, low=1):
        if not isinstance(v, numbers.Integral) or isinstance(v, bool) or v < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {v!r}")
    positive_int("crop_size", crop_size, 8)
    positive_int("min_area", min_area, 0)
    positive_int("n_splits", n_splits)
    positive_int("n_val", n_val, 0)
    sizes = [n_train] if isinstance(n_train, int) else list(n_train)
    if not sizes:
        raise ValueError("n_train must name at least one training-set size, got []")
    for n in sizes:
        positive_int("every n_train", n)
    if not (isinstance(test_fraction, (int, float)) and 0 < test_fraction < 1):
        raise ValueError(f"test_fraction must be between 0 and 1, got {test_fraction!r}")


def load(work_dir) -> Workspace:
    """Read back what :func:`prepare` recorded (run notebook 01 first)."""
    work_dir = resolve(work_dir)
    if not (work_dir / "dataset.json").is_file():
        raise FileNotFoundError(f"{work_dir / 'dataset.json'}: not found; run notebook "
                                "01_data_exploration with the same work_dir first")
    info = read_json(work_dir / "dataset.json")
    classes = ClassSet.from_dict(info["classes"], f"{work_dir / 'dataset.json'}") if info.get("classes") else None
    micrographs = load_dataset(info["dataset_dir"], nm_per_px=info.get("nm_per_px"), classes=classes)
    crops = tile_dataset(micrographs, info["crop_size"], min_area=info["min_area"])
    return Workspace(work_dir, Path(info["dataset_dir"]), micrographs, crops,
                     load_splits(work_dir / "splits.json"), info, micrographs.classes)
