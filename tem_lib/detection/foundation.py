"""A foundation detector: Mask R-CNN pretrained once on a large, varied simulated set.

The paper's detector started from COCO weights; offline there are none, so every detector of
a profile starts from this one instead (``DetectorConfig(pretrained="foundation")``). It is
pretrained on ``n_crops`` simulated crops drawn from ``n_populations`` simulator
configurations that differ in magnification, noise, contrast stretch, blur, defect density,
grain boundaries and overlaps (:func:`population_configs`), so that what it learns (backbone,
FPN, RPN: where a defect is and how it is outlined) transfers to any micrograph; the class
heads transfer only to data with the simulator's class set and are re-initialised otherwise
(:func:`transfer_weights`).

It is trained once per machine and kept outside the work folder, in
``cache_dir()/foundation/<hash>``, keyed by the hash of everything that defines it (its
:class:`FoundationConfig` and the detector architecture), so every profile, notebook,
benchmark and test that asks for the same one reuses it. It is seeded: the same configuration
gives the same weights. Pretraining resumes from its checkpoint after an interruption, and a
file lock keeps two processes from training the same one.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from filelock import FileLock

from ..config import Config
from ..layout import DETECTOR_META, WEIGHTS
from ..utils import derive_seed, from_dict, read_json, stable_hash, write_json
from .config import DetectorConfig, DetTrainConfig
from .train import train_detector
from .weights import ARCHITECTURE, CLASS_HEADS, _architecture, register_init_source, transfer_weights  # noqa: F401


def cache_dir() -> Path:
    """Where trained-once artifacts live: ``$TEM_LIB_CACHE``, else ``$XDG_CACHE_HOME/tem_lib``,
    else ``~/.cache/tem_lib``."""
    if os.environ.get("TEM_LIB_CACHE"):
        return Path(os.environ["TEM_LIB_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "tem_lib"


@dataclass
class FoundationConfig(Config):
    """The simulated pretraining set and schedule of a foundation detector.

    Each of ``n_populations`` simulator configurations draws its settings from the ranges
    below (log-uniform for scales), and every population contributes an equal share of the
    ``n_crops`` crops of side ``crop_size``, tiled from micrographs of side ``image_size``.
    """
    _where = "foundation config"
    preset: str = "fecral"
    n_crops: int = 2048
    n_populations: int = 32
    image_size: int = 512
    crop_size: int = 256
    nm_per_px: tuple[float, float] = (0.3, 2.0)  # magnification: defects 0.5x to 3x their size at 1 nm/px
    density_scale: tuple[float, float] = (0.5, 2.5)
    noise_scale: tuple[float, float] = (0.5, 4.0)  # times the preset's noise sd
    psf_sigma_px: tuple[float, float] = (0.6, 2.4)
    stretch_low: tuple[float, float] = (5.0, 70.0)  # contrast: 8-bit level of the 0.5th percentile
    stretch_high: tuple[float, float] = (160.0, 250.0)
    grains_probability: float = 0.35  # a population in a nanocrystalline film (grain boundaries)
    overlap_fraction: tuple[float, float] = (0.0, 0.25)
    seed: int = 7
    # DetTrainConfig overrides (the seed is ``seed``): 600 iterations of batch 4, about 12 min
    # for the quick profile's ResNet-18 detector on 2 CPU cores
    training: dict = field(default_factory=lambda: {"epochs": 6, "iters_per_epoch": 100, "warmup_iters": 50,
                                                    "lr": 1e-3})

    def __post_init__(self):
        if self.n_crops < 1 or self.n_populations < 1:
            raise ValueError(f"foundation: n_crops and n_populations must be >= 1, got {self.n_crops}, "
                             f"{self.n_populations}")
        if self.image_size < self.crop_size:
            raise ValueError(f"foundation: image_size {self.image_size} is smaller than crop_size {self.crop_size}")
        for name in ("nm_per_px", "density_scale", "noise_scale", "psf_sigma_px", "stretch_low", "stretch_high",
                     "overlap_fraction"):
            lo, hi = getattr(self, name)
            if not (np.isfinite(lo) and np.isfinite(hi) and 0 <= lo <= hi):
                raise ValueError(f"foundation: {name} must be a range 0 <= low <= high, got {(lo, hi)}")
            setattr(self, name, (float(lo), float(hi)))
        if not 0 <= self.grains_probability <= 1:
            raise ValueError(f"foundation: grains_probability must be in [0, 1], got {self.grains_probability}")
        DetTrainConfig(**self.training)  # a typo in the schedule fails here, not after simulating


def pretraining_detector(detector: DetectorConfig) -> DetectorConfig:
    """The detector a foundation is pretrained as: ``detector``'s architecture, every other
    setting at its default, from scratch; so the cache key determines the weights."""
    return DetectorConfig(**{**_architecture(detector), "pretrained": "none"})


def foundation_key(fcfg: FoundationConfig, detector: DetectorConfig) -> str:
    """The cache key: the foundation settings and the detector architecture it is trained for."""
    return stable_hash({"foundation": dataclasses.asdict(fcfg), "architecture": _architecture(detector)})


def foundation_path(fcfg: FoundationConfig, detector: DetectorConfig) -> Path:
    return cache_dir() / "foundation" / foundation_key(fcfg, detector)


def population_configs(fcfg: FoundationConfig) -> list:
    """The ``n_populations`` simulator configurations (seeded by ``fcfg.seed``)."""
    from ..simulate import preset
    rng = np.random.default_rng(derive_seed(fcfg.seed, 0))

    def log_uniform(lo, hi):
        return float(np.exp(rng.uniform(np.log(lo), np.log(hi)))) if lo > 0 else float(rng.uniform(lo, hi))

    out = []
    for _ in range(fcfg.n_populations):
        grains = bool(rng.random() < fcfg.grains_probability)
        base = preset("fecral_grains" if grains else fcfg.preset, height=fcfg.image_size, width=fcfg.image_size)
        noise = log_uniform(*fcfg.noise_scale)
        density = log_uniform(*fcfg.density_scale)
        psf = sorted(rng.uniform(*fcfg.psf_sigma_px, size=2))
        low = float(rng.uniform(*fcfg.stretch_low))
        high = float(rng.uniform(max(fcfg.stretch_high[0], low + 60), max(fcfg.stretch_high[1], low + 61)))
        classes = {k: dataclasses.replace(v, density_per_um2=v.density_per_um2 * density)
                   for k, v in base.classes.items()}
        out.append(dataclasses.replace(
            base, classes=classes, nm_per_px=log_uniform(*fcfg.nm_per_px),
            noise_rel_sigma=tuple(s * noise for s in base.noise_rel_sigma),
            psf_sigma_px=(float(psf[0]), float(psf[1])), stretch_low=(low, low + 1.0), stretch_high=(high, high + 1.0),
            overlap_fraction=max(base.overlap_fraction, float(rng.uniform(*fcfg.overlap_fraction)))))
    return out


def simulated_set(fcfg: FoundationConfig):
    """The pretraining crops (a Dataset with the simulator's class set), in population order."""
    from ..data import Dataset, tile_dataset
    from ..simulate import simulate
    per_image = (fcfg.image_size // fcfg.crop_size) ** 2
    share = -(-fcfg.n_crops // fcfg.n_populations)
    crops, classes = [], None
    for k, sim in enumerate(population_configs(fcfg)):
        micrographs = simulate(sim, -(-share // per_image), seed=derive_seed(fcfg.seed, k + 1))
        tiles = tile_dataset(micrographs, fcfg.crop_size)
        for c in tiles[:share]:
            c.name = f"pop{k:02d}-{c.name}"
            crops.append(c)
        classes = micrographs.classes
    return Dataset(crops[:fcfg.n_crops], classes)


def ensure_foundation(fcfg: FoundationConfig | dict | None, detector: DetectorConfig, device="cpu",
                      progress: bool = True) -> Path:
    """The folder of the foundation detector for ``fcfg`` and this architecture: pretrained
    now if it is not in the cache yet (resumed if an earlier pretraining was interrupted),
    else reused as it is. Holds a file lock while it trains."""
    fcfg = fcfg if isinstance(fcfg, FoundationConfig) else from_dict(FoundationConfig, fcfg, "foundation config")
    out = foundation_path(fcfg, detector)
    if _complete(out):
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(out) + ".lock"):
        if _complete(out):  # another process finished it while we waited
            return out
        work = out.with_name(out.name + ".partial")
        data = simulated_set(fcfg)
        train_detector(data, work, pretraining_detector(detector), {**fcfg.training, "seed": fcfg.seed},
                       device=device, class_ids=data.classes.ids, class_names=data.classes.names, progress=progress)
        meta = read_json(work / DETECTOR_META)
        write_json(work / DETECTOR_META, {**meta, "foundation": {"config": dataclasses.asdict(fcfg),
                                                                   "key": out.name, "n_crops": len(data)}})
        os.replace(work, out)
    return out


def _complete(folder: Path) -> bool:
    return (folder / WEIGHTS).is_file() and (folder / DETECTOR_META).is_file()


def _foundation_source(cfg: DetectorConfig, device, progress: bool, n_proc: int) -> Path:
    """``pretrained="foundation"``: the cached foundation detector (pretrained now if missing)."""
    if n_proc > 1 and not foundation_path(from_dict(FoundationConfig, cfg.foundation, "foundation config"),
                                          cfg).is_dir():
        raise RuntimeError("the foundation detector is not cached yet: pretrain it in one process first "
                           "(python -m tem_lib.study --profile NAME --prepare), then launch the processes")
    return ensure_foundation(cfg.foundation, cfg, device, progress)


register_init_source("foundation", _foundation_source)
