"""Dataset formats behind one contract, registered by name (as augmentation strategies are).

A format is two functions:

* ``detect(path) -> bool``: does ``path`` (a folder, or a file such as a COCO json) hold a
  dataset of this format? It may raise ``ValueError`` when the path is this format but cannot
  be read as one (e.g. a folder with several COCO files);
* ``read(path, classes=None, images_dir=None) -> Dataset``: the samples and their class set.
  ``classes`` is the class set the caller declared (or the folder's ``metadata.json``); a format
  whose files name no classes (class codes, gray levels) and gets none raises a ``ValueError``
  that asks for one; nothing falls back to a preset.

:func:`detect_format` asks the registered formats in registration order; the built-in ones
(``coco``, ``imagej``, ``yolo``, ``graymask``), one module each under
:mod:`tem_lib.data.readers`, are registered first.
Adding a format is one new module with its two functions plus::

    from tem_lib.data import register_format
    register_format("myformat", detect, read, "what its folder looks like")
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable


@dataclass(frozen=True)
class DatasetFormat:
    name: str
    detect: Callable[[Path], bool]
    read: Callable  # read(path, classes=None, images_dir=None) -> Dataset
    description: str = ""
    needs_classes: bool = False  # its files name no classes: a class set must be declared


_REGISTRY: dict[str, DatasetFormat] = {}


def register_format(name: str, detect: Callable[[Path], bool], read: Callable, description: str = "",
                    needs_classes: bool = False, replace: bool = False) -> DatasetFormat:
    """Register a dataset format (see the module docstring); ``needs_classes`` when its files
    name no classes (its ``read`` then raises without a class set); ``replace`` to redefine one."""
    if not name or not isinstance(name, str) or name == "auto":
        raise ValueError(f"a format needs a name other than 'auto', got {name!r}")
    if name in _REGISTRY and not replace:
        raise ValueError(f"dataset format {name!r} is registered already (replace=True to redefine it)")
    fmt = DatasetFormat(name, detect, read, description, needs_classes)
    _REGISTRY[name] = fmt
    return fmt


def unregister_format(name: str) -> None:
    _REGISTRY.pop(name, None)


def _registry() -> dict[str, DatasetFormat]:
    from ..plugins import load_plugins
    load_plugins("tem_lib.formats")  # formats of installed packages (entry points), once
    return _REGISTRY


def formats() -> tuple[str, ...]:
    """The registered format names, in detection order (plugins' after the built-in ones)."""
    return tuple(_registry())


def get_format(name: str) -> DatasetFormat:
    if name not in _registry():
        raise ValueError(f"unknown dataset format {name!r}; use one of {formats()} or auto")
    return _REGISTRY[name]


def detect_format(root) -> str:
    """The first registered format whose ``detect`` accepts ``root`` (a folder or a file)."""
    root = Path(root)
    if not root.exists():
        raise FileNotFoundError(f"{root}: dataset folder not found")
    for fmt in _registry().values():
        if fmt.detect(root):
            return fmt.name
    known = "; ".join(f"{f.name}: {f.description}" for f in _REGISTRY.values() if f.description)
    what = "file" if root.is_file() else "folder"
    raise ValueError(f"{root}: not a dataset in a format tem_lib reads ({what}); formats: {known}")
