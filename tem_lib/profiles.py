"""Run profiles: papermill parameter files ``profiles/<name>.yaml``.

A profile has a ``common`` section (parameters every notebook that declares them receives,
the sweep included) and one section per notebook, keyed by its name (``01_data_exploration``).
Both the notebook runner (:mod:`tem_lib.pipeline`) and the sweep's command line
(:mod:`tem_lib.study`) read profiles through this module.
"""
from __future__ import annotations

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


def notebook_parameters(nb_path: Path, profile: dict, overrides: dict) -> dict:
    """Profile values (common, then the notebook's section, then overrides) for the
    parameters this notebook declares in its ``parameters`` cell."""
    import papermill
    declared = papermill.inspect_notebook(str(nb_path))
    merged = {**profile.get("common", {}), **profile.get(nb_path.stem, {}), **overrides}
    unknown = set(profile.get(nb_path.stem, {})) - set(declared)
    if unknown:
        raise ValueError(f"profile section {nb_path.stem!r} sets {sorted(unknown)}, which "
                         f"{nb_path.name} does not declare")
    return {k: v for k, v in merged.items() if k in declared}


def sweep_section(prof: dict) -> dict | None:
    """The sweep a profile defines: ``common.sweep`` (what notebooks 03-07 share)."""
    return prof.get("common", {}).get("sweep")
