"""The contract every augmentation strategy keeps, and the registry that picks one by name.

A strategy gets a cell of the study (its N real training crops, its mask prior, the dataset's
class set; :class:`Cell`) and a number of pairs, and writes a synthetic dataset folder that
:func:`tem_lib.data.load_dataset` reads, with ``metadata.json`` saying how it was made
(strategy, config, seconds, and ``use``: ``"mix"`` = pairs mixed into the detector's
training set, ``"pretrain"`` = a data set to pretrain the detector on before the real crops).

    strategy = get_strategy("copy_paste", {"scale_jitter": 0.2})
    folder = strategy.make(cell, 100, "work/synthetic/...")

Strategies are registered by name, like diffusers' schedulers: :data:`STRATEGIES`.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from ..classes import ClassSet
from ..layout import DATASET_META, DETECTOR_META, WEIGHTS
from ..utils import from_dict, stable_hash

STRATEGIES: dict[str, type["Augmentation"]] = {}


def register(klass: type["Augmentation"]) -> type["Augmentation"]:
    """Class decorator: make a strategy available to :func:`get_strategy` under ``klass.name``."""
    STRATEGIES[klass.name] = klass
    return klass


@dataclass
class Cell:
    """What a strategy may use: the cell's real training crops and its mask prior, never test data.

    ``cache_dir``: where the strategy keeps what it trains for this cell (an LDM, a detector),
    so that a rerun loads it. ``seed``: the cell's seed; a strategy derives its own from it.
    """
    train: list
    prior: Any
    classes: ClassSet
    crop_size: int
    nm_per_px: float | None = None
    seed: int = 0
    device: Any = "cpu"
    cache_dir: Path | None = None
    progress: bool = False
    extra: dict = field(default_factory=dict)  # e.g. {"ldm": (pipeline, summary)} shared by strategies

    def __post_init__(self):
        if not self.train:
            raise ValueError("a cell needs at least one real training crop")


class Augmentation:
    """One way of making training data for a cell. Subclasses set ``name``, ``Config`` (a
    dataclass; unknown keys raise), ``use`` and implement :meth:`_make`."""
    name: ClassVar[str] = ""
    use: ClassVar[str] = "mix"  # "mix" or "pretrain"
    shared: ClassVar[bool] = False  # True: the output does not depend on the cell (made once per study)
    Config: ClassVar[type] = None
    label: ClassVar[str] = ""  # in condition names and legends: EXP+<label> (amount); default: the name
    id_prefix: ClassVar[str] = ""  # in run ids: split0-n10-<id_prefix><amount>-seed0; default: the name
    # The work-folder stage where a study keeps what the strategy trains per cell
    # (``<work>/<cache_folder>/split*/n*``; tem_lib.layout.STAGES); default:
    # ``strategies/split*/n*/<name>``. Strategies sharing one model per cell share it.
    cache_folder: ClassVar[str] = ""
    # Keys of this strategy's config that profiles once set at the sweep's top level (read from
    # there into its augment_config entry, with a warning: old profiles keep working).
    legacy_sweep_keys: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def sweep_defaults(cls, sweep) -> dict:
        """What this strategy takes from the sweep's own settings (a
        :class:`~tem_lib.study.SweepConfig`) before its ``augment_config`` entry: nothing,
        unless a strategy says otherwise (the generator's settings, the detector's training)."""
        return {}

    def model_dir(self, cell: Cell) -> Path:
        """The folder of the model this strategy trains for ``cell`` (strategies that train one)."""
        raise TypeError(f"augmentation {self.name!r} trains no model per cell")

    def trained(self, cell: Cell):
        """The model this strategy trains for ``cell``: trained on first use, then loaded."""
        raise TypeError(f"augmentation {self.name!r} trains no model per cell")

    def __init__(self, config=None):
        self.config = config if isinstance(config, self.Config) else from_dict(
            self.Config, dict(config or {}), f"augmentation {self.name!r} config")

    def unavailable(self, classes: ClassSet) -> str | None:
        """Why this strategy cannot serve data with ``classes`` (None: it can)."""
        return None

    def describe(self) -> dict:
        """The config as it is used (what the key hashes and a result row records)."""
        return asdict(self.config)

    def key(self) -> str:
        """Short hash of the strategy and its config (a changed config: another folder)."""
        return stable_hash({"strategy": self.name, **self.describe()})[:8]

    def make(self, cell: Cell, n: int, out_dir) -> Path:
        """Write ``n`` synthetic pairs for ``cell`` to ``out_dir`` (a dataset folder, written
        atomically; an existing finished folder is returned as it is)."""
        out_dir = Path(out_dir)
        if (out_dir / DATASET_META).is_file():
            return out_dir
        if n < 1:
            raise ValueError(f"{out_dir}: an augmentation needs n >= 1 pairs, got {n}")
        t0 = time.perf_counter()
        meta = {"strategy": self.name, "use": self.use, "config": self.describe(), "n_requested": n,
                "n_real": len(cell.train), "prior_kind": getattr(cell.prior, "kind", None), "synthetic": True}
        self._make(cell, n, out_dir, meta)
        from ..utils import read_json, write_json
        written = read_json(out_dir / DATASET_META)
        write_json(out_dir / DATASET_META, {**written, **meta, "prepare_seconds": round(time.perf_counter() - t0, 2)})
        return out_dir

    def _make(self, cell: Cell, n: int, out_dir: Path, meta: dict) -> None:
        """Write the dataset folder (``tem_lib.data.write_dataset``); add facts to ``meta``."""
        raise NotImplementedError

    def pretrain(self, pool, out_dir, detector: dict, training: dict, seed: int, device="cpu",
                 progress: bool = False) -> Path:
        """For ``use = "pretrain"``: a detector trained on ``pool`` (with the pool's own classes)
        in ``out_dir``, to fine-tune on the cell's real crops; trained once (a finished one is
        found). ``training``: the sweep's detector training, under the strategy's own
        ``pretrain`` settings where its config has them."""
        if self.use != "pretrain":
            raise TypeError(f"augmentation {self.name!r} mixes its pairs into training; it does not pretrain")
        from ..data import load_dataset
        from ..detection import train_detector
        out_dir = Path(out_dir)
        if not (out_dir / WEIGHTS).is_file() or not (out_dir / DETECTOR_META).is_file():
            train_detector(load_dataset(pool), out_dir, detector,
                           {**training, **getattr(self.config, "pretrain", {}), "seed": seed}, device=device,
                           progress=progress)
        return out_dir


def strategies() -> dict[str, type["Augmentation"]]:
    """Every registered strategy, those of installed plugins included (:mod:`tem_lib.plugins`)."""
    from ..plugins import load_plugins
    load_plugins("tem_lib.augment")
    return STRATEGIES


def get_strategy(name: str, config: dict | None = None) -> Augmentation:
    """The strategy registered as ``name`` with ``config`` (a plugin's too); an unknown name
    raises ``ValueError``."""
    if name not in strategies():
        raise ValueError(f"unknown augmentation {name!r}; known: {sorted(STRATEGIES)}")
    return STRATEGIES[name](config)
