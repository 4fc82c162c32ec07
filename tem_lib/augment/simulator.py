"""Pretraining on one population of simulated micrographs, between the detector's own start and
the real crops.

Every profile's detector already starts from the foundation detector (many varied simulated
populations, ``tem_lib.detection.foundation``), the offline stand-in for the COCO weights the
paper started from. This strategy adds one more pretraining on a single simulated population
(``use: "pretrain"``): the study pretrains the configured detector on it (from the foundation
when that is the configured start) and fine-tunes the result on the cell's N real crops
(``train_detector(init_weights=...)``). The crops carry the simulator's classes; for data with
other classes the class heads are re-initialised before fine-tuning, so it serves any class
set. On simulated test data the pretraining population is deliberately another one than the
test distribution: by default another magnification (1.4 nm/px instead of the preset's), 1.5x
the defect density and 1.5-2x the noise.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from ..config import Config
from ..data import tile_dataset, write_dataset
from ..simulate import preset, simulate
from .base import Augmentation, Cell, register


@dataclass
class SimulatorAugmentConfig(Config):
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
    """Simulated crops of another population (with the simulator's classes), to pretrain the
    detector on. The set does not depend on the cell (``shared``): a study makes it, and
    pretrains on it, once per seed."""
    name = "simulator"
    use = "pretrain"
    shared = True
    Config = SimulatorAugmentConfig

    @classmethod
    def sweep_defaults(cls, sweep) -> dict:
        """Pretraining follows the sweep's detector training unless ``pretrain`` says otherwise."""
        return {"pretrain": dict(sweep.training)}

    def _make(self, cell: Cell, n: int, out_dir: Path, meta: dict) -> None:
        c = self.config
        cfg = simulator_config(c)
        want = c.n_crops
        per = (c.image_size // cell.crop_size) ** 2
        if per < 1:
            raise ValueError(f"{out_dir}: simulated image_size {c.image_size} is smaller than the crop {cell.crop_size}")
        micrographs = simulate(cfg, -(-want // per), seed=c.seed)
        crops = list(tile_dataset(micrographs, cell.crop_size))[:want]
        # the simulator's own classes: pretraining learns them, fine-tuning on data with other
        # classes re-initialises the class heads (tem_lib.detection.foundation.transfer_weights)
        write_dataset(crops, out_dir, cfg.class_set(), metadata={"simulator": cfg.to_dict()}, overwrite=True)
        meta.update({"n_images": len(crops), "n_micrographs": len(micrographs)})
