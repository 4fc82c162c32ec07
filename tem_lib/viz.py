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
        from .analysis import one_per_cell
        g = one_per_cell(g)
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


METRIC_LABELS = {"det_f1": "detection F1", "cls_f1": "classification F1", "harmonic": "harmonic mean"}


def plot_split_sensitivity(gains, iou: float = 0.5):
    """Notebook 06: the gain over EXP per strategy and amount (rows) and split (columns, the
    pooled one last), bars per metric against N with 95 % intervals (several training seeds:
    the rows pooled over them, :func:`tem_lib.analysis.one_per_cell`)."""
    from .analysis import METRICS, one_per_cell
    shown = one_per_cell(gains)
    splits = sorted(gains["split"].unique(), key=lambda s: (s == "pooled", s))
    conditions = list(dict.fromkeys(zip(gains["augment"], gains["amount"])))
    ns = sorted(gains["n_train"].unique())
    fig, axes = plt.subplots(len(conditions), len(splits), figsize=(3.3 * len(splits), 3.0 * len(conditions)),
                             squeeze=False, sharey=True)
    for i, (aug, amount) in enumerate(conditions):
        for j, sp in enumerate(splits):
            ax = axes[i, j]
            g = shown[(shown["augment"] == aug) & (shown["amount"] == amount) & (shown["split"] == sp)]
            for k, m in enumerate(METRICS):
                gm = g[g["metric"] == m].set_index("n_train").reindex(ns)
                x = np.arange(len(ns)) + (k - 1) * 0.25
                ax.bar(x, gm["gain"], 0.25, color=f"C{k}", label=METRIC_LABELS[m])
                ax.errorbar(x, gm["gain"], yerr=[gm["gain"] - gm["ci_low"], gm["ci_high"] - gm["gain"]],
                            fmt="none", ecolor="k", lw=0.8, capsize=2)
            ax.axhline(0, color="0.3", lw=0.8)
            ax.set_xticks(range(len(ns)), [str(n) for n in ns])
            ax.set(title=f"{'pooled' if sp == 'pooled' else f'split {sp}'}, {aug} +{amount}",
                   xlabel="N real training crops")
        axes[i, 0].set_ylabel(f"gain over EXP (IoU {iou:g})")
    axes[0, 0].legend(frameon=False, fontsize=8)
    fig.tight_layout()
    return fig


def plot_f1_vs_n(long):
    """Notebook 07: detection F1, classification F1 and their harmonic mean (columns) at each
    IoU threshold (rows) against N, per setting (EXP first): the mean over splits as lines, the
    single splits as points (``long``: :func:`tem_lib.analysis.f1_long`)."""
    ious = sorted(long["iou"].astype(float).unique())
    ns = sorted(long["n_train"].unique())
    settings = sorted(long["setting"].unique(), key=lambda s: (s != "EXP", s))
    fig, axes = plt.subplots(len(ious), 3, figsize=(9.5, 2.3 * len(ious)), squeeze=False, sharex=True, sharey=True)
    for i, t in enumerate(ious):
        for j, m in enumerate(METRIC_LABELS):
            ax = axes[i, j]
            for k, setting in enumerate(settings):
                d = long[(long["iou"] == f"{t:g}") & (long["metric"] == m) & (long["setting"] == setting)]
                x = np.searchsorted(ns, d["n_train"]) + (k - (len(settings) - 1) / 2) * 0.08
                ax.scatter(x, d["value"], s=10, color=f"C{k}", alpha=0.4)  # single splits
                mean = d.groupby("n_train")["value"].mean().reindex(ns)
                ax.plot(np.arange(len(ns)), mean, "o-", color=f"C{k}", label=setting)  # mean over splits
            ax.set(ylim=(0, 1), xticks=range(len(ns)), xticklabels=[str(n) for n in ns])
            if i == 0:
                ax.set_title(METRIC_LABELS[m])
            if j == 0:
                ax.set_ylabel(f"IoU {t:g}")
            if i == len(ious) - 1:
                ax.set_xlabel("N real training crops")
    axes[0, -1].legend(frameon=False, fontsize=8)
    fig.tight_layout()
    return fig
