"""Pretraining on simulated micrographs: the offline stand-in for the COCO weights the paper
started from.

The strategy writes a data set of simulated crops (``use: "pretrain"``); the study pretrains
a detector on it and fine-tunes that detector on the cell's N real crops
(``train_detector(init_weights=...)``). On simulated test data the pretraining population is
deliberately another one than the test distribution: by default another magnification
(1.4 nm/px instead of the preset's), 1.5x the defect density and 1.5-2x the noise.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from ..data import tile_dataset, write_dataset
from ..simulate import preset, simulate
from .base import Augmentation, Cell, register


@dataclass
class SimulatorAugmentConfig:
    preset: str = "fecral"
    # tem_lib.simulate.SimulatorConfig overrides: the pretraining population
    overrides: dict = field(default_factory=lambda: {"nm_per_px": 1.4, "noise_rel_sigma": [0.035, 0.06]})
    density_scale: float = 1.5  # every class's density multiplied by this
    image_size: int = 512
    n_crops: int = 128  # size of the pretraining set (the amount asked for is not used: one set serves every cell)
    seed: int = 101  # another population than the study's data (seed 0 there)
    pretrain: dict = field(default_factory=dict)  # tem_lib.detection.DetTrainConfig overrides for pretraining


def simulator_config(c: SimulatorAugmentConfig):
    cfg = preset(c.preset, height=c.image_size, width=c.image_size,
                 **{k: tuple(v) if isinstance(v, list) else v for k, v in c.overrides.items()})
    classes = {k: dataclasses.replace(v, density_per_um2=v.density_per_um2 * c.density_scale)
               for k, v in cfg.classes.items()}
    return dataclasses.replace(cfg, classes=classes)


@register
class SimulatorPretraining(Augmentation):
    """Simulated crops of another population, to pretrain the detector on. The set does not
    depend on the cell (``shared``): a study makes it, and pretrains on it, once per seed."""
    name = "simulator"
    use = "pretrain"
    shared = True
    Config = SimulatorAugmentConfig

    def unavailable(self, classes) -> str | None:
        sim = simulator_config(self.config).class_set()
        if list(sim.names) != list(classes.names) or list(sim.ids) != list(classes.ids):
            return (f"simulator pretraining draws the classes {list(sim.names)}, the data has {list(classes.names)}; "
                    "it only applies to data with the simulator's class set")
        return None

    def _make(self, cell: Cell, n: int, out_dir: Path, meta: dict) -> None:
        c = self.config
        cfg = simulator_config(c)
        why = self.unavailable(cell.classes)
        if why:
            raise ValueError(f"{out_dir}: {why}")
        want = c.n_crops
        per = (c.image_size // cell.crop_size) ** 2
        if per < 1:
            raise ValueError(f"{out_dir}: simulated image_size {c.image_size} is smaller than the crop {cell.crop_size}")
        micrographs = simulate(cfg, -(-want // per), seed=c.seed)
        crops = list(tile_dataset(micrographs, cell.crop_size))[:want]
        write_dataset(crops, out_dir, cell.classes, metadata={"simulator": cfg.to_dict()}, overwrite=True)
        meta.update({"n_images": len(crops), "n_micrographs": len(micrographs)})
