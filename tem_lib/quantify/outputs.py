"""What quantify writes besides tables: overlays to check by eye, a COCO file of the predictions."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..classes import ClassSet
from ..metrics.detection import Detections
from ..utils import atomic_path, provenance


def overlay(image: np.ndarray, det: Detections, classes: ClassSet, path, title: str = "") -> None:
    """The micrograph with each detected defect's outline in its class colour and a legend."""
    import matplotlib
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch
    from scipy import ndimage
    rgb = np.repeat(np.clip(image, 0, 1)[..., None], 3, axis=2)
    for inst in det.instances or []:
        m = inst.mask
        edge = m & ~ndimage.binary_erosion(m)
        ys, xs = np.nonzero(edge)
        rgb[ys + inst.y0, xs + inst.x0] = matplotlib.colors.to_rgb(classes.color(inst.category_id))
    H, W = image.shape
    scale = min(1.0, 12.0 / max(H / 100, W / 100))  # at most 12 inches a side at 100 dpi
    fig, ax = plt.subplots(figsize=(W / 100 * scale, H / 100 * scale + 0.5), dpi=100)
    ax.imshow(rgb, interpolation="nearest")
    ax.set_axis_off()
    counts = pd.Series(det.labels).value_counts()
    ax.legend(handles=[Patch(color=c.color, label=f"{c.display} ({int(counts.get(c.id, 0))})") for c in classes],
              loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=len(classes), frameon=False, fontsize=8)
    ax.set_title(title or det.name, fontsize=9)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def coco_predictions(predictions: list[Detections], classes: ClassSet, images: pd.DataFrame) -> dict:
    """A COCO file (images, categories, annotations with RLE masks and a ``score``)."""
    from ..data.io import instance_rle
    out_images, anns = [], []
    for k, (det, im) in enumerate(zip(predictions, images.itertuples()), start=1):
        out_images.append({"id": k, "file_name": im.file, "height": int(det.shape[0]), "width": int(det.shape[1]),
                           **({"nm_per_px": float(im.nm_per_px)} if pd.notna(im.nm_per_px) else {})})
        for j in range(len(det)):
            x1, y1, x2, y2 = (float(v) for v in det.boxes[j])
            ann = {"id": len(anns) + 1, "image_id": k, "category_id": int(det.labels[j]),
                   "bbox": [x1, y1, x2 - x1, y2 - y1], "score": round(float(det.scores[j]), 5), "iscrowd": 0}
            if det.instances is not None:
                inst = det.instances[j]
                ann["segmentation"] = instance_rle(inst, det.shape)
                ann["area"] = int(inst.area)
            anns.append(ann)
    return {"images": out_images, "annotations": anns, "categories": classes.coco_categories(),
            "info": {"description": "tem_lib.quantify predictions", **provenance()}}


def overlay_path(out_dir, image: str) -> Path:
    return Path(out_dir) / "overlays" / f"{image}.png"


