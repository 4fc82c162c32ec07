"""What the format readers share: constants, hostile-value helpers, masks to instances."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..sample import Instance

IMAGEJ_COLUMNS = ("X", "Y", "Major", "Minor", "Angle", "class")
COCO_IMAGE_DIRS = ("images", "imgs", "JPEGImages", "img", "")


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not UTF-8 text (byte {e.start}); save it as UTF-8") from None



# a polygon vertex further than this many image sides outside the image is an error, not a shape
# (pycocotools rasterises the whole bounding box: 1e300 would exhaust memory)
_FAR_OUTSIDE = 4


def _show(v, limit: int = 40) -> str:
    """A value from a hostile file, short enough for a message (a 5000-digit number included)."""
    try:
        text = repr(v)
    except ValueError:  # an integer too long for str()
        text = f"<an integer of about {int(v.bit_length() * 0.30103)} digits>"
    return text if len(text) <= limit else text[:limit] + "..."


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)



def instance_from_full(mask: np.ndarray, category_id: int, ellipse=None) -> Instance | None:
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    r0, r1, c0, c1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    return Instance(mask[r0:r1, c0:c1].copy(), int(c0), int(r0), int(category_id), ellipse)




def needs_classes(root: Path, what: str, how: str) -> ValueError:
    """The error of a format whose files name no classes, read without a class set."""
    return ValueError(
        f"{root}: {what} carry no class names, so the class set must be declared: classes='fecral' for the "
        f"paper's FeCrAl {how} (./run_all.sh --data DIR -p classes fecral), a list of names, or a "
        f"'classes' entry in {root / 'metadata.json'}")
