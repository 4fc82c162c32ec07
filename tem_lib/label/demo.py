"""A folder to try the labelling on without labels of one's own: held-out micrographs of the
workspace written as plain images (their labels stay in the workspace, to measure against)."""
from __future__ import annotations

from pathlib import Path

from PIL import Image


def demo_folder(ws, split: int, n: int | None = None) -> Path:
    """``ws.path("label", split)/micrographs``: the first ``n`` (None: all) held-out micrographs
    of ``split`` as 8-bit PNGs, no labels (written once; kept when they exist)."""
    from ..data.images import to_uint8
    out = ws.path("label", split, None, "micrographs")
    micrographs = ws.test_micrographs(split)[:n]
    out.mkdir(parents=True, exist_ok=True)
    for m in micrographs:
        f = out / f"{m.name}.png"
        if not f.is_file():
            tmp = f.with_name(f".{f.name}.tmp")
            Image.fromarray(to_uint8(m.image)).save(tmp, format="PNG")
            tmp.replace(f)
    return out
