"""Priors for every (split, N) cell of a workspace: what notebook 02 fits and validates."""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from .base import PriorWarning
from .fit import fit_prior
from .validate import ks_table


def save_cell_prior(ws, split: int, n: int, kind: str, prior):
    """The one writer of a cell's prior: ``ws.path("priors", split, N, "<kind>.json")``."""
    return prior.save(ws.path("priors", split, n, f"{kind}.json"))


def cell_prior(ws, split: int, n: int, kind: str):
    """The cell's prior of ``kind`` as notebook 02 saved it; fitted (and saved) here if it
    did not run."""
    from .fit import load_prior
    path = ws.path("priors", split, n, f"{kind}.json")
    if path.is_file():
        return load_prior(path)
    prior = fit_prior(ws.train(split, n), kind, classes=ws.classes)
    save_cell_prior(ws, split, n, kind, prior)
    return prior


def cell_prior_hash(ws, split: int, n: int, kind: str) -> str:
    """Short hash of the saved prior file (fitted first if missing): what a pool drawn from it
    is keyed by, so a refitted prior never meets a pool of the old one."""
    import hashlib
    cell_prior(ws, split, n, kind)
    return hashlib.sha256(ws.path("priors", split, n, f"{kind}.json").read_bytes()).hexdigest()[:8]


def fit_cells(ws, kinds=("bootstrap", "parametric"), options: dict | None = None, log=print):
    """Fit each prior kind on the training crops of every (split, N) of ``ws`` and save it at
    ``ws.path("priors", split, N, "<kind>.json")``. ``options``: {kind: fit_prior keyword
    arguments}. Returns ``({(split, N, kind): prior}, described)``, ``described`` being the
    fitted parameters of all of them (``prior.describe()`` rows with split, n_train, prior).
    Fallback warnings are passed to ``log`` with their cell."""
    options = options or {}
    fitted, described = {}, []
    for split, n in ws.cells():
        train = ws.train(split, n)
        for kind in kinds:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", PriorWarning)
                prior = fit_prior(train, kind, classes=ws.classes, **options.get(kind, {}))
            for w in caught:
                log(f"split {split} N={n} {kind}: {w.message}")
            save_cell_prior(ws, split, n, kind, prior)
            fitted[split, n, kind] = prior
            described.append(prior.describe().assign(split=split, n_train=n, prior=kind))
    return fitted, pd.concat(described, ignore_index=True)


def ks_cells(ws, fitted: dict, n_maps: int = 500, generator=0):
    """KS of ``n_maps`` sampled maps per prior against the test crops of every (split, N),
    with the cell's real training crops as the floor (``"real (train)"``). Returns
    ``(table, sets)``: the KS rows of all cells and, per cell, the compared sets."""
    rng = generator if isinstance(generator, np.random.Generator) else np.random.default_rng(generator)
    kinds = list(dict.fromkeys(k for (_, _, k) in fitted))
    rows, sets_by_cell = [], {}
    for split, n in ws.cells():
        sets = {kind: fitted[split, n, kind].sample(n_maps, ws.crop_size, generator=rng) for kind in kinds}
        sets["real (train)"] = ws.train(split, n)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # KS on tiny sets in smoke runs
            rows.append(ks_table(ws.test(split), sets, ws.classes).assign(split=split, n_train=n))
        sets_by_cell[split, n] = sets
    return pd.concat(rows, ignore_index=True), sets_by_cell
