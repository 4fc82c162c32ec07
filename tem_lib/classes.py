"""Defect classes belong to a dataset: :class:`ClassSet` is its table of classes.

A class set maps each class id (COCO ``category_id`` and the ``labels`` of torchvision
detection targets; 0 is background) to a machine name, a plot label, a gray level (the
paper's gray-level masks), a colour and, where a dataset has one, its ImageJ class code.
Readers take it from the data (COCO categories as declared, YOLO names, ``metadata.json``),
writers save it with the data, and everything downstream (priors, LDM mask channels,
detector heads, metric columns, legends) asks the dataset's class set instead of a global.

The paper's FeCrAl table is a preset, a value like any other: ``preset("fecral")``.
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass

# Colours for classes that do not bring their own (matplotlib's tab10 without its grey).
PALETTE = ("#e41a1c", "#377eb8", "#4daf4a", "#ff7f00", "#984ea3", "#a65628", "#f781bf",
           "#17becf", "#bcbd22", "#1f77b4")
_NAME = re.compile(r"^[\w.\-]+$")  # \w: letters and digits of any script


@dataclass(frozen=True)
class DefectClass:
    id: int  # COCO category_id and detection label (1..255; 0 is background)
    name: str  # machine name: letters and digits of any script, '_', '-', '.' (used in column names)
    display: str  # plot label
    gray: int  # value in gray-level masks (1..255)
    color: str  # overlay colour (matplotlib)
    imagej: int | None = None  # code in the "class" column of ImageJ ellipse tables


def machine_name(text: str) -> str:
    """A name usable in column names and files: letters and digits of any script (``空洞``,
    ``Kavität`` stay as they are), '_', '-', '.'; runs of other characters become '_'."""
    name = re.sub(r"[^\w.\-]+", "_", str(text).strip()).strip("_")
    return name or "class"


def machine_names(labels, ids) -> list[str]:
    """:func:`machine_name` of each label, made distinct where two labels give the same one
    (``"loop a"``, ``"loop_a"``) or none (emoji only): the class id is appended to the later ones."""
    out, seen = [], set()
    for label, cid in zip(labels, ids):
        name = machine_name(label)
        if name in seen or name == "class":
            name = f"{name}_{cid}"
        seen.add(name)
        out.append(name)
    return out


@dataclass(frozen=True)
class ClassSet:
    """An ordered table of defect classes (order = mask channel and legend order)."""
    classes: tuple[DefectClass, ...]
    name: str = "custom"

    def __post_init__(self):
        object.__setattr__(self, "classes", tuple(self.classes))
        if not self.classes:
            raise ValueError("a class set needs at least one class")
        for field_, lo in (("id", 1), ("gray", 1)):
            vals = [getattr(c, field_) for c in self.classes]
            bad = [v for v in vals if not isinstance(v, int) or not lo <= v <= 255]
            if bad:
                raise ValueError(f"class set {self.name!r}: class {field_}s must be integers in 1..255 "
                                 f"(0 is background), got {bad}")
            if len(set(vals)) != len(vals):
                raise ValueError(f"class set {self.name!r}: duplicate class {field_}s {vals}")
        names = [c.name for c in self.classes]
        if len(set(names)) != len(names):
            raise ValueError(f"class set {self.name!r}: duplicate class names {names}")
        bad = [n for n in names if not _NAME.match(n)]
        if bad:
            raise ValueError(f"class set {self.name!r}: class names must use letters, digits (any script), "
                             f"'_', '-' or '.', got {bad}")
        codes = [c.imagej for c in self.classes if c.imagej is not None]
        if len(set(codes)) != len(codes):
            raise ValueError(f"class set {self.name!r}: duplicate ImageJ codes {codes}")

    # ------------------------------------------------------------------ look-ups
    def __len__(self) -> int:
        return len(self.classes)

    def __iter__(self):
        return iter(self.classes)

    def __contains__(self, class_id) -> bool:
        return int(class_id) in self.ids

    @property
    def ids(self) -> tuple[int, ...]:
        return tuple(c.id for c in self.classes)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.classes)

    def __getitem__(self, class_id: int) -> DefectClass:
        for c in self.classes:
            if c.id == int(class_id):
                return c
        raise ValueError(f"class id {class_id!r} is not in class set {self.name!r} "
                         f"(ids {list(self.ids)}: {', '.join(self.names)})")

    def by_name(self, name: str) -> DefectClass:
        for c in self.classes:
            if c.name == name:
                return c
        raise ValueError(f"no class named {name!r} in class set {self.name!r} ({', '.join(self.names)})")

    def display(self, class_id: int) -> str:
        return self[class_id].display

    def color(self, class_id: int) -> str:
        return self[class_id].color

    @property
    def gray_to_id(self) -> dict[int, int]:
        return {c.gray: c.id for c in self.classes}

    @property
    def imagej_to_id(self) -> dict[int, int]:
        return {c.imagej: c.id for c in self.classes if c.imagej is not None}

    def gray_lut(self):
        """uint8 [256] look-up table: class id -> gray level (0 stays 0)."""
        import numpy as np
        lut = np.zeros(256, dtype=np.uint8)
        for c in self.classes:
            lut[c.id] = c.gray
        return lut

    def check_ids(self, ids, where: str) -> None:
        """Raise ``ValueError`` naming ``where`` if any of ``ids`` is not a class of this set."""
        bad = sorted({int(i) for i in ids} - set(self.ids))
        if bad:
            raise ValueError(f"{where}: class id(s) {bad} not in class set {self.name!r} "
                             f"(ids {list(self.ids)}: {', '.join(self.names)})")

    def coco_categories(self) -> list[dict]:
        """COCO categories with the names as the data gave them: a class whose machine name was
        made from its label (``"⟨111⟩ loop"`` -> ``111_loop``) is written back as the label, so a
        COCO file read and written again keeps its names."""
        derived = machine_names([c.display for c in self.classes], self.ids)
        return [{"id": c.id, "name": c.display if d == c.name else c.name, "supercategory": "defect"}
                for c, d in zip(self.classes, derived)]

    def subset(self, ids) -> "ClassSet":
        keep = [self[i] for i in ids]
        return ClassSet(tuple(keep), self.name)

    # ------------------------------------------------------------------ (de)serialisation
    def to_dict(self) -> dict:
        return {"name": self.name, "classes": [asdict(c) for c in self.classes]}

    @classmethod
    def from_dict(cls, d: dict, where: str = "class set") -> "ClassSet":
        if not isinstance(d, dict) or not isinstance(d.get("classes"), list):
            raise ValueError(f"{where}: a class set needs a 'classes' list")
        keys = set(DefectClass.__dataclass_fields__)
        out = []
        for k, c in enumerate(d["classes"]):
            missing = {"id", "name"} - set(c)
            if missing:
                raise ValueError(f"{where}: class {k} lacks {sorted(missing)}")
            bad = set(c) - keys
            if bad:
                raise ValueError(f"{where}: class {k} has unknown keys {sorted(bad)}; known: {sorted(keys)}")
            out.append(c)
        auto = ClassSet.from_names([c["name"] for c in out], ids=[c["id"] for c in out])
        classes = tuple(DefectClass(**{**asdict(a), **c}) for a, c in zip(auto.classes, out))
        return cls(classes, d.get("name", "custom"))

    @classmethod
    def from_names(cls, names, ids=None, name: str = "custom") -> "ClassSet":
        """Classes named ``names`` (ids 1.. unless given), with gray levels spread over
        1..255 and palette colours."""
        names = [str(n) for n in names]
        ids = list(range(1, len(names) + 1)) if ids is None else [int(i) for i in ids]
        if len(ids) != len(names):
            raise ValueError(f"{len(names)} class names but {len(ids)} ids")
        k = len(names)
        classes = tuple(DefectClass(i, m, n, int(round(255 * (k - j) / k)) or 1, PALETTE[j % len(PALETTE)])
                        for j, (i, n, m) in enumerate(zip(ids, names, machine_names(names, ids))))
        return cls(classes, name)

    @classmethod
    def from_coco(cls, categories: list, where: str = "COCO file") -> "ClassSet":
        """The categories of a COCO file as declared: ids and names kept, in id order. A
        category that cannot be honoured (no id or name, id outside 1..255, duplicate id or
        name) raises ``ValueError`` naming ``where``; nothing is relabelled."""
        if not isinstance(categories, list) or not categories:
            raise ValueError(f"{where}: no categories declared")
        seen = {}
        for cat in categories:
            if not isinstance(cat, dict) or "id" not in cat or not cat.get("name"):
                raise ValueError(f"{where}: category {cat!r} needs an 'id' and a 'name'")
            cid = cat["id"]
            if not isinstance(cid, int) or isinstance(cid, bool) or not 1 <= cid <= 255:
                raise ValueError(f"{where}: category {cat!r}: ids must be integers in 1..255 (0 is "
                                 "background; class maps are 8-bit); renumber the categories")
            if cid in seen:
                raise ValueError(f"{where}: category id {cid} declared twice ({seen[cid]!r}, {cat['name']!r})")
            seen[cid] = str(cat["name"])
        ids = sorted(seen)
        names = [seen[i] for i in ids]
        if len(set(names)) != len(names):
            raise ValueError(f"{where}: category names {names} are not distinct")
        return cls.from_names(names, ids)

    def matches(self, other: "ClassSet") -> bool:
        """Same ids with the same names (display, colours and gray levels may differ)."""
        return [(c.id, c.name) for c in self] == [(c.id, c.name) for c in other]


# The paper's gray levels: 85 = <100> loop, 170 = <111> loop, 255 = black dot; ImageJ codes of
# the FeCrAl tables: 0 = 1/2<111>, 1 = black dot, 2 = <100> (PAPER_NOTES section 1,
# ../shared/data/fecral-3class/README.md). Cavities are our optional fourth class; 42 is our choice.
_FECRAL = (
    DefectClass(1, "black_dot", "black dot", 255, "#e41a1c", 1),
    DefectClass(2, "loop_111", "1/2<111> loop", 170, "#377eb8", 0),
    DefectClass(3, "loop_100", "<100> loop", 85, "#4daf4a", 2),
)
_CAVITY = DefectClass(4, "cavity", "cavity", 42, "#ff7f00")
PRESETS = {"fecral": ClassSet(_FECRAL, "fecral"), "fecral_cavities": ClassSet(_FECRAL + (_CAVITY,), "fecral_cavities")}


def preset(name: str) -> ClassSet:
    """A named class set: ``fecral`` (the paper's three classes) or ``fecral_cavities``."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown class-set preset {name!r}; known: {sorted(PRESETS)}") from None


def resolve_classes(classes) -> ClassSet | None:
    """None, a :class:`ClassSet`, a preset name, a dict (``to_dict`` form) or a list of names."""
    if classes is None or isinstance(classes, ClassSet):
        return classes
    if isinstance(classes, str):
        return preset(classes)
    if isinstance(classes, dict):
        return ClassSet.from_dict(classes)
    if isinstance(classes, (list, tuple)):
        return ClassSet.from_names(classes)
    raise ValueError(f"classes must be a ClassSet, preset name, dict or list of names, got {type(classes).__name__}")
