"""The artifacts that tie the notebooks together, in one work folder per profile.

Notebook 01 decides the dataset, crops and splits (``prepare``); every later notebook
reads them back with ``load`` so they all see the same crops and the same splits.
``work_dir/dataset.json`` records where the dataset is and how it was tiled;
``work_dir/splits.json`` holds the splits.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .data import load_dataset, load_splits, make_splits, save_splits, tile_dataset
from .data.sample import Sample
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


def prepare(work_dir, dataset_dir, crop_size: int = 256, min_area: int = 12,
            n_train=(10, 50, 100), n_splits: int = 2, test_fraction: float = 0.25,
            seed: int = 0, nm_per_px: float | None = None) -> Workspace:
    """Load a dataset, tile it, draw the splits and record all of it in ``work_dir``."""
    work_dir, dataset_dir = resolve(work_dir), resolve(dataset_dir)
    micrographs = load_dataset(dataset_dir, nm_per_px=nm_per_px)
    crops = tile_dataset(micrographs, crop_size, min_area=min_area)
    splits = make_splits(crops, n_train, n_splits, seed, test_fraction)
    info = {"dataset_dir": str(dataset_dir), "crop_size": crop_size, "min_area": min_area,
            "nm_per_px": nm_per_px, "n_micrographs": len(micrographs), "n_crops": len(crops)}
    save_splits(splits, work_dir / "splits.json")
    write_json(work_dir / "dataset.json", info)
    return Workspace(work_dir, dataset_dir, micrographs, crops, splits, info)


def load(work_dir) -> Workspace:
    """Read back what :func:`prepare` recorded (run notebook 01 first)."""
    work_dir = resolve(work_dir)
    if not (work_dir / "dataset.json").is_file():
        raise FileNotFoundError(f"{work_dir / 'dataset.json'}: not found; run notebook "
                                "01_data_exploration with the same work_dir first")
    info = read_json(work_dir / "dataset.json")
    micrographs = load_dataset(info["dataset_dir"], nm_per_px=info.get("nm_per_px"))
    crops = tile_dataset(micrographs, info["crop_size"], min_area=info["min_area"])
    return Workspace(work_dir, Path(info["dataset_dir"]), micrographs, crops,
                     load_splits(work_dir / "splits.json"), info)
