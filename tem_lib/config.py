"""The one base of the configuration dataclasses (detector, training, LDM, segmenter, sweep,
strategies, simulator, annotation model): read from a (partial) dict and written to a dict the
same way everywhere.

    @dataclass
    class MyConfig(Config):
        steps: int = 100
        _where = "my config"          # names the section in messages

    MyConfig.from_dict({"steps": 5})  # unknown keys raise ValueError naming them; lists -> tuples
    MyConfig().to_dict()              # JSON-ready (tuples as lists): equal to what a file holds
"""
from __future__ import annotations

import dataclasses
import json
import typing
from typing import ClassVar


class Config:
    """Mixin for a configuration dataclass. A field typed as another :class:`Config` is a
    section: its dict is read over the section's default (so a profile names only what it
    changes)."""
    _where: ClassVar[str] = "config"

    @classmethod
    def from_dict(cls, d: dict | None = None, where: str | None = None):
        from .utils import from_dict
        where = where or cls._where
        d = dict(d or {})
        sections = _sections(cls)
        if sections:
            default = cls()
            for name, klass in sections.items():
                if name in d and not isinstance(d[name], klass):
                    from_dict(klass, d[name], f"{where} section {name!r}")  # names the section's unknown keys
                    d[name] = from_dict(klass, {**dataclasses.asdict(getattr(default, name)), **dict(d[name] or {})})
        return from_dict(cls, d, where)

    def to_dict(self) -> dict:
        """The fields as JSON would hold them (nested sections as dicts, tuples as lists)."""
        return json.loads(json.dumps(dataclasses.asdict(self)))


def _sections(cls) -> dict:
    try:
        hints = typing.get_type_hints(cls)
    except (NameError, TypeError):
        return {}
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)
            if isinstance(hints.get(f.name), type) and issubclass(hints[f.name], Config)}
