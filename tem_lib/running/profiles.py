"""Run profiles: papermill parameter files ``profiles/<name>.yaml``.

A profile has a ``common`` section (parameters every notebook that declares them receives,
the sweep included) and one section per notebook, keyed by its name (``01_data_exploration``).
Both the notebook runner (:mod:`tem_lib.running.runner`) and the sweep's command line
(:mod:`tem_lib.study`) read profiles through this module.
"""
from __future__ import annotations

import functools
from pathlib import Path

import yaml


def load_profile(profile: str, root: Path) -> dict:
    path = root / "profiles" / f"{profile}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in (root / "profiles").glob("*.yaml"))
        raise FileNotFoundError(f"{path}: no such profile; known profiles: {known}")
    with open(path) as f:
        d = yaml.safe_load(f) or {}
    if not isinstance(d, dict):
        raise ValueError(f"{path}: expected a mapping of sections")
    return d


def declared_parameters(nb_path: Path) -> dict:
    """The parameters a notebook declares in its ``parameters`` cell (papermill's inspection,
    read once per notebook version)."""
    nb_path = Path(nb_path)
    return _inspect(str(nb_path), nb_path.stat().st_mtime_ns)


@functools.lru_cache(maxsize=64)
def _inspect(path: str, mtime_ns: int) -> dict:
    import papermill
    return papermill.inspect_notebook(path)


def notebook_parameters(nb_path: Path, profile: dict, overrides: dict) -> dict:
    """Profile values (common, then the notebook's section, then overrides) for the
    parameters this notebook declares in its ``parameters`` cell."""
    declared = declared_parameters(nb_path)
    merged = {**profile.get("common", {}), **profile.get(nb_path.stem, {}), **overrides}
    unknown = set(profile.get(nb_path.stem, {})) - set(declared)
    if unknown:
        raise ValueError(f"profile section {nb_path.stem!r} sets {sorted(unknown)}, which "
                         f"{nb_path.name} does not declare")
    return {k: v for k, v in merged.items() if k in declared}


def sweep_section(prof: dict) -> dict | None:
    """The sweep a profile defines: ``common.sweep`` (what notebooks 03-07 share)."""
    return prof.get("common", {}).get("sweep")
