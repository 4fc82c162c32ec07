"""What a sweep covers and how its runs are named: :class:`SweepConfig`, run ids, condition names."""
from __future__ import annotations

import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field, fields

import numpy as np

from ..config import Config

_AMOUNT = re.compile(r"^(\d+(?:\.\d+)?)x$")


@dataclass
class SweepConfig(Config):
    """What the study covers and how each run is made (profiles set it in ``common.sweep``:
    the ``sweep`` parameter of notebooks 03-06)."""
    _where = "sweep config"
    splits: tuple[int, ...] | None = None  # None: every split of the split file
    n_train: tuple[int, ...] | None = None  # None: every N of the split file
    amounts: tuple = (0, "2x")  # synthetic pairs per run: 0 (EXP), "Kx" (K x N) or a count
    seeds: tuple[int, ...] = (0,)
    prior: str = "parametric"  # mask prior of notebook 02: "parametric" or "bootstrap"
    detector: dict = field(default_factory=dict)  # tem_lib.detection.DetectorConfig overrides
    training: dict = field(default_factory=dict)  # tem_lib.detection.DetTrainConfig overrides
    n_test: int | None = None  # score at most this many test crops per split (None: all)
    # Augmentation strategies compared at every amount > 0 (tem_lib.augment): "ldm" (the
    # paper's), "inpaint", "copy_paste", "simulator", "sd_inpaint"; their configs by name (the
    # generator's sampler, steps, ldm_config ... under augment_config.ldm; inpaint shares them).
    augment: tuple[str, ...] = ("ldm",)
    # N at which the strategies are compared (None: every N of the sweep); EXP runs at every N. A
    # profile that cannot afford a generator per N keeps the EXP curve over N and augments fewer.
    augment_n_train: tuple[int, ...] | None = None
    augment_config: dict = field(default_factory=dict)
    val_threshold: bool = True  # also score at the score threshold that is best on the validation crops
    n_val: int | None = None  # choose it on at most this many validation crops per split (None: all)

    def __post_init__(self):
        from ..augment import strategies
        STRATEGIES = strategies()  # noqa: N806  (plugins' strategies included)
        for a in self.amounts:
            n_synthetic(a, 10)  # validates
        if isinstance(self.augment, str):
            self.augment = (self.augment,)
        unknown = [a for a in (*self.augment, *self.augment_config) if a not in STRATEGIES]
        if unknown:
            raise ValueError(f"sweep augment: unknown strategies {unknown}; known: {sorted(STRATEGIES)}")

    @classmethod
    def from_dict(cls, d: dict | None) -> "SweepConfig":
        """From a profile's ``sweep`` section. Keys a strategy used to take from the sweep's top
        level (``Augmentation.legacy_sweep_keys``: the generator's ``steps``, ``sampler``, ...
        in profiles written before they moved) go to its ``augment_config`` entry, with a
        warning; the entry's own value wins."""
        d = dict(d or {})
        names = {f.name for f in fields(cls)}
        moved: dict[str, dict] = {}
        if set(d) - names:
            from ..augment import strategies
            for name, klass in strategies().items():
                for k in klass.legacy_sweep_keys:
                    if k in d and k not in names:
                        moved.setdefault(name, {})[k] = d.pop(k)
        if moved:
            warnings.warn(f"sweep config: {sorted(k for m in moved.values() for k in m)} belong to the strategies now; "
                          f"read as augment_config {moved} (write them there)", FutureWarning, stacklevel=2)
            config = dict(d.get("augment_config") or {})
            d["augment_config"] = {**config, **{g: {**m, **config.get(g, {})} for g, m in moved.items()}}
        return super().from_dict(d)


def n_synthetic(amount, n: int) -> int:
    """Pairs for ``amount`` (0, an int count, or "Kx" = K times ``n``)."""
    if isinstance(amount, (int, np.integer)) and amount >= 0:
        return int(amount)
    m = _AMOUNT.match(str(amount))
    if not m:
        raise ValueError(f"synthetic amount must be a count >= 0 or 'Kx' (K times N), got {amount!r}")
    return int(round(float(m.group(1)) * n))


def _augmented(amount, augment: str):
    """The strategy class of an augmented run (None for a name no strategy has)."""
    if augment == "none":
        raise ValueError(f"amount {amount!r} adds synthetic pairs: name the strategy that makes them (augment=...)")
    from ..augment import strategies
    return strategies().get(augment)


@dataclass(frozen=True, eq=False)
class Run(Mapping):
    """One run of a sweep: one detector trained on a cell's real crops plus ``n_synthetic``
    pairs of ``augment``. Read its fields as attributes (``run.split``) or by key (``run["split"]``,
    ``{**run}``: a row starts from it); equal to a dict of the same fields."""
    id: str
    split: int
    n_train: int
    amount: int | str
    n_synthetic: int
    seed: int
    augment: str
    condition: str

    @classmethod
    def make(cls, split: int, n: int, amount, seed: int, augment: str) -> "Run":
        return cls(run_id(split, n, amount, seed, augment), split, n, amount, n_synthetic(amount, n), seed, augment,
                   condition_name(amount, augment))

    def __getitem__(self, key):
        if key not in _RUN_FIELDS:
            raise KeyError(key)
        return getattr(self, key)

    def __iter__(self):
        return iter(_RUN_FIELDS)

    def __len__(self) -> int:
        return len(_RUN_FIELDS)


_RUN_FIELDS = tuple(f.name for f in fields(Run))


def run_id(split: int, n: int, amount, seed: int, augment: str = "none") -> str:
    """``split0-n10-syn2x-seed0`` (EXP: ``syn0``; a strategy by its ``id_prefix``: the paper's
    LDM ``syn``, the others their name, e.g. ``copy_paste2x``)."""
    if n_synthetic(amount, 10**6) == 0:
        prefix = "syn"  # the paper's name for its EXP runs, kept for every strategy
    else:
        s = _augmented(amount, augment)
        prefix = (s.id_prefix or s.name) if s is not None else augment
    return f"split{split}-n{n}-{prefix}{amount}-seed{seed}"


def condition_name(amount, augment: str = "none") -> str:
    """EXP (no added pairs), else EXP+<strategy label> (amount): EXP+GEN for the paper's LDM."""
    if n_synthetic(amount, 10**6) == 0:
        return "EXP"
    s = _augmented(amount, augment)
    return f"EXP+{(s.label or s.name) if s is not None else augment} ({amount})"
