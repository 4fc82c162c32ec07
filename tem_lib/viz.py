"""Plotting helpers shared by the notebooks: overlays and figure saving with data."""
from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import to_rgb

from .classes import ClassSet
from .data.sample import Sample
from .utils import atomic_path, write_json


def overlay(sample: Sample, classes: ClassSet, alpha: float = 0.35, outline: bool = True) -> np.ndarray:
    """RGB float [H, W, 3] of the image with instance masks in ``classes``' colours."""
    from scipy import ndimage
    rgb = np.repeat(sample.image[..., None], 3, axis=2).astype(np.float32)
    for inst in sample.instances:
        h, w = inst.mask.shape
        view = rgb[inst.y0:inst.y0 + h, inst.x0:inst.x0 + w]
        color = np.array(to_rgb(classes.color(inst.category_id)), np.float32)
        m = inst.mask
        if outline:
            m = m & ~ndimage.binary_erosion(m, border_value=0)
            view[m] = color
        else:
            view[m] = (1 - alpha) * view[m] + alpha * color
    return rgb


def show_samples(samples: list[Sample], classes: ClassSet, ncols: int = 4, size: float = 3.0, titles=True):
    """Grid of image / overlay pairs (two rows per row of samples)."""
    n = len(samples)
    nrows = 2 * int(np.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for k, s in enumerate(samples):
        r, c = 2 * (k // ncols), k % ncols
        axes[r, c].imshow(s.image, cmap="gray", vmin=0, vmax=1)
        axes[r + 1, c].imshow(overlay(s, classes))
        if titles:
            axes[r, c].set_title(s.name if len(s.name) < 32 else s.name[:29] + "...", fontsize=7)
    class_legend(fig, samples, classes)
    return fig


def class_legend(fig, samples, classes: ClassSet, bottom: float = 0.03) -> None:
    """A legend of the classes present in ``samples`` below the panels, then tight layout."""
    present = {i.category_id for s in samples for i in s.instances}
    handles = [plt.Line2D([], [], color=c.color, lw=3, label=c.display) for c in classes if c.id in present]
    if handles:
        fig.legend(handles=handles, loc="lower center", ncol=len(handles), frameon=False)
    fig.tight_layout(rect=(0, bottom, 1, 1))


def save_figure(fig, figures_dir, name: str, data=None, params: dict | None = None,
                formats=("png",)) -> Path:
    """Save ``fig`` as ``figures_dir/name.{png,...}`` with the data behind it
    (``name.csv``, from a DataFrame) and the parameters that made it (``name.json``).
    ``fig=None`` saves a table alone (CSV + JSON)."""
    figures_dir = Path(figures_dir)
    figures_dir.mkdir(parents=True, exist_ok=True)
    for fmt in formats if fig is not None else ():
        with atomic_path(figures_dir / f"{name}.{fmt}") as tmp:
            fig.savefig(tmp, format=fmt, dpi=150, bbox_inches="tight")
    if data is not None:
        with atomic_path(figures_dir / f"{name}.csv") as tmp:
            data.to_csv(tmp, index=False)
    if params is not None:
        write_json(figures_dir / f"{name}.json", params)
    return figures_dir / (f"{name}.{formats[0]}" if fig is not None else f"{name}.csv")


def draw_detections(ax, sample: Sample, detections, classes: ClassSet, title: str | None = None,
                    min_score: float = 0.0) -> None:
    """The image with the true masks as class-coloured outlines and the predicted boxes as
    dashed class-coloured rectangles (scores >= ``min_score``)."""
    from matplotlib.patches import Rectangle
    ax.imshow(overlay(sample, classes, alpha=0.0))
    for (x1, y1, x2, y2), lab, sc in zip(detections.boxes, detections.labels, detections.scores):
        if sc < min_score:
            continue
        color = classes.color(int(lab)) if int(lab) in classes else "w"
        ax.add_patch(Rectangle((x1 - 0.5, y1 - 0.5), x2 - x1, y2 - y1, fill=False, ls="--", lw=0.8, ec=color))
    ax.set(xticks=[], yticks=[])
    if title:
        ax.set_title(title, fontsize=8)


def running_mean(y, k: int = 25) -> tuple[np.ndarray, np.ndarray]:
    """``(index, mean)``: the running mean of ``y`` over ``k`` values (fewer for a short
    series), and the positions in ``y`` of its values (its last ``len(mean)`` ones)."""
    y = np.asarray(y, float)
    k = max(1, min(k, len(y) // 5 or 1))
    mean = np.convolve(y, np.ones(k) / k, mode="valid")
    return np.arange(len(y) - len(mean), len(y)), mean
