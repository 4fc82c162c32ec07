"""Strategies and dataset formats from other packages, found without editing ``tem_lib``.

A package declares an entry point in the group ``tem_lib.augment`` or ``tem_lib.formats``
(``pyproject.toml``)::

    [project.entry-points."tem_lib.augment"]
    mystrategy = "my_package.my_strategy"      # a module whose import registers it (@register)

    [project.entry-points."tem_lib.formats"]
    myformat = "my_package.my_format"          # a module that calls register_format(...)

and ``pip install``-ing it is enough: the first lookup of a strategy or a format imports every
entry point of its group once. For a module that is not a package (a file beside your notebook),
``TEM_LIB_PLUGINS=my_strategy,my_format`` (module names on ``sys.path``) does the same. A plugin
that fails to import is named in a warning, never silently skipped.
"""
from __future__ import annotations

import importlib
import os
import warnings
from importlib.metadata import entry_points

GROUPS = ("tem_lib.augment", "tem_lib.formats")
_loaded: set[str] = set()


def load_plugins(group: str) -> None:
    """Import the entry points of ``group`` and the modules of ``$TEM_LIB_PLUGINS`` (once each)."""
    if group not in GROUPS:
        raise ValueError(f"unknown plugin group {group!r}; known: {GROUPS}")
    targets = [(f"{group}:{ep.name}", ep.load) for ep in entry_points(group=group)]
    targets += [(f"env:{m}", lambda m=m: importlib.import_module(m))
                for m in filter(None, (s.strip() for s in os.environ.get("TEM_LIB_PLUGINS", "").split(",")))]
    for key, load in targets:
        if key in _loaded:
            continue
        _loaded.add(key)
        try:
            load()
        except Exception as e:  # noqa: BLE001 - a broken plugin must not break tem_lib; it is named
            warnings.warn(f"tem_lib plugin {key.split(':', 1)[1]!r} ({key.split(':')[0]}) failed to load: "
                          f"{type(e).__name__}: {e}", stacklevel=3)
