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


def plot_strategies(tables: dict, iou: float = 0.5, metrics=("harmonic", "det_f1", "cls_f1")):
    """Pooled gains over EXP per augmentation strategy, amount and N (rows), one panel per
    table of :func:`tem_lib.analysis.gain_table` (e.g. at the paper's score threshold and at
    the validation-chosen one): bars with 95 % intervals, 0 marked."""
    labels = {"harmonic": "headline", "det_f1": "detection F1", "cls_f1": "classification F1"}
    first = next(iter(tables.values()))
    keys = list(dict.fromkeys(zip(first["augment"], first["amount"], first["n_train"])))
    fig, axes = plt.subplots(1, len(tables), figsize=(4.2 * len(tables), 0.9 + 0.55 * len(keys)), squeeze=False,
                             sharey=True)
    for ax, (title, g) in zip(axes[0], tables.items()):
        g = g[g["split"] == "pooled"]
        for k, m in enumerate(metrics):
            gm = g[g["metric"] == m].set_index(["augment", "amount", "n_train"]).reindex(keys)
            y = np.arange(len(keys)) + (k - 1) * 0.25
            ax.barh(y, gm["gain"], 0.25, color=f"C{k}", label=labels.get(m, m))
            ax.errorbar(gm["gain"], y, xerr=[gm["gain"] - gm["ci_low"], gm["ci_high"] - gm["gain"]], fmt="none",
                        ecolor="k", lw=0.8, capsize=2)
        ax.axvline(0, color="0.3", lw=0.8)
        ax.set(title=title, xlabel=f"pooled gain over EXP (IoU {iou:g})")
    axes[0, 0].set_yticks(range(len(keys)), [f"{a} +{m}, N = {n}" for a, m, n in keys])
    axes[0, 0].invert_yaxis()
    handles, labels = axes[0, -1].get_legend_handles_labels()
    fig.legend(handles, labels, frameon=False, fontsize=8, loc="lower center", ncol=len(labels),
               bbox_to_anchor=(0.5, 0.0))  # below the panels, never over a bar
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    return fig
