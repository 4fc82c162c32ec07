"""Defect classes and their encodings in the formats we read and write.

One table is the single source of truth for class ids (COCO ``category_id`` and the
``labels`` of torchvision detection targets), the paper's gray-level mask values and the
class column of the FeCrAl ImageJ tables (``../shared/data/fecral-3class/README.md``).
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DefectClass:
    id: int  # COCO category_id and detection label (0 is background)
    name: str  # short machine name
    display: str  # plot label
    gray: int  # value in the paper's gray-level masks
    color: str  # overlay colour (matplotlib)


# Gray levels follow the authors' files: 85 = <100> loop, 170 = <111> loop, 255 = black dot
# (PAPER_NOTES section 1). Cavities are our optional fourth class; 42 is our choice.
CLASSES: tuple[DefectClass, ...] = (
    DefectClass(1, "black_dot", "black dot", 255, "#e41a1c"),
    DefectClass(2, "loop_111", "1/2<111> loop", 170, "#377eb8"),
    DefectClass(3, "loop_100", "<100> loop", 85, "#4daf4a"),
    DefectClass(4, "cavity", "cavity", 42, "#ff7f00"),
)
PAPER_CLASS_IDS: tuple[int, ...] = (1, 2, 3)

BY_ID = {c.id: c for c in CLASSES}
BY_NAME = {c.name: c for c in CLASSES}
GRAY_TO_ID = {c.gray: c.id for c in CLASSES}
# ImageJ "class" column of the FeCrAl tables: 0 = 1/2<111>, 1 = black dot, 2 = <100>.
IMAGEJ_TO_ID = {0: 2, 1: 1, 2: 3}


def class_by_id(class_id: int) -> DefectClass:
    try:
        return BY_ID[int(class_id)]
    except KeyError:
        raise ValueError(f"unknown defect class id {class_id!r}; known ids: {sorted(BY_ID)}") from None


def coco_categories(class_ids=PAPER_CLASS_IDS) -> list[dict]:
    return [{"id": c, "name": BY_ID[c].name, "supercategory": "defect"} for c in class_ids]
