"""The samples of a dataset together with its class set (what every format's reader returns)."""
from __future__ import annotations

from pathlib import Path

from ..classes import ClassSet


class Dataset(list):
    """A list of :class:`Sample` that knows its class set (``classes``), where it was read
    from (``root``) and in which format (``format``). Slicing gives a plain list."""

    def __init__(self, samples=(), classes: ClassSet | None = None, root=None, format: str | None = None):
        super().__init__(samples)
        if classes is None:
            raise ValueError("a Dataset needs its class set")
        self.classes = classes
        self.root = Path(root) if root is not None else None
        self.format = format
        self.metadata: dict = {}  # the folder's metadata.json (e.g. how a synthetic pool was made)
        for s in self:
            classes.check_ids({i.category_id for i in s.instances}, f"{self.root or 'dataset'}: {s.name}")
