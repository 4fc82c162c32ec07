"""Train/test splits by SOURCE micrograph: no crop of a test micrograph is ever trained on.

A split file (JSON) lists, for each of K seeded splits, the test micrographs, the test
crops and nested training sets of N crops (N in e.g. {10, 50, 100}; the 10 are among the
50, the 50 among the 100, so gains between N are paired). Every later notebook reads the
same file.
"""
from __future__ import annotations

import numpy as np

from ..utils import read_json, write_json
from .sample import Sample


def make_splits(crops: list[Sample], n_train=(10, 50, 100), k: int = 2, seed: int = 0,
                test_fraction: float = 0.25, min_test_sources: int = 1, n_val: int = 32) -> dict:
    """K random splits of ``crops`` by ``source_id``.

    For each split the sources are shuffled; about ``test_fraction`` of them (at least
    ``min_test_sources``, and at least one left for training) form the test set, all their
    crops included. Training sets are nested random draws from the crops of the other
    sources. Up to ``n_val`` further crops of the training micrographs, in no training set,
    form the split's validation part (for choices such as a score threshold; never trained
    on). Raises ValueError if the training pool is smaller than max(n_train).
    """
    names = [c.name for c in crops]
    if len(set(names)) != len(names):
        raise ValueError("crop names must be unique to be referenced in a split file")
    sources = sorted({c.source_id for c in crops})
    if len(sources) < 2:
        raise ValueError(f"need crops from at least 2 source micrographs to split by source, "
                         f"got {len(sources)}")
    n_train = sorted(int(n) for n in n_train)
    by_source: dict[str, list[str]] = {s: [] for s in sources}
    for c in crops:
        by_source[c.source_id].append(c.name)
    n_test = int(np.clip(round(test_fraction * len(sources)), min_test_sources, len(sources) - 1))
    splits = []
    for j in range(k):
        rng = np.random.default_rng([seed, j])
        order = [sources[i] for i in rng.permutation(len(sources))]
        test_src, train_src = sorted(order[:n_test]), sorted(order[n_test:])
        pool = [n for s in train_src for n in by_source[s]]
        if len(pool) < n_train[-1]:
            raise ValueError(f"split {j}: only {len(pool)} training crops in {len(train_src)} "
                             f"micrographs, fewer than N = {n_train[-1]}")
        order = rng.permutation(len(pool))
        drawn = [pool[i] for i in order[:n_train[-1]]]
        val = sorted(pool[i] for i in order[n_train[-1]:n_train[-1] + n_val])
        splits.append({"id": j, "seed": [seed, j], "test_sources": test_src,
                       "train_sources": train_src,
                       "test": [n for s in test_src for n in by_source[s]],
                       "train": {str(n): sorted(drawn[:n]) for n in n_train}, "val": val})
    return {"n_train": n_train, "k": k, "seed": seed, "test_fraction": test_fraction,
            "n_crops": len(crops), "splits": splits}


def save_splits(splits: dict, path) -> None:
    write_json(path, splits)


def load_splits(path) -> dict:
    d = read_json(path)
    if "splits" not in d:
        raise ValueError(f"{path}: not a split file (no 'splits' key)")
    return d


def select(crops: list[Sample], names: list[str], where: str = "split") -> list[Sample]:
    """The crops named in ``names``, in that order; a clear error for unknown names."""
    by_name = {c.name: c for c in crops}
    missing = [n for n in names if n not in by_name]
    if missing:
        raise ValueError(f"{where}: {len(missing)} crop(s) not in the dataset, e.g. {missing[:3]}"
                         " (was the split made for another dataset or crop size?)")
    return [by_name[n] for n in names]
