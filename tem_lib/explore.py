"""Figures of notebook 01: what a labelled dataset contains. Each returns (figure, table).
Classes are named and coloured by the dataset's class set."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from .classes import ClassSet
from .data.sample import Sample


def _palette(classes: ClassSet) -> dict:
    return {c.display: c.color for c in classes}


def _with_display(instances: pd.DataFrame, classes: ClassSet) -> pd.DataFrame:
    return instances.assign(**{"class": instances["class_id"].map(classes.display)})


def class_counts(instances: pd.DataFrame, classes: ClassSet):
    order = [c.display for c in classes]
    t = (_with_display(instances, classes).groupby("class").size().reindex(order, fill_value=0)
         .rename("count").reset_index())
    t["fraction"] = t["count"] / t["count"].sum()
    fig, ax = plt.subplots(figsize=(4.5, 3))
    sns.barplot(t, x="class", y="count", hue="class", palette=_palette(classes), ax=ax, legend=False)
    for i, row in t.iterrows():
        ax.annotate(f"{row['fraction']:.0%}", (i, row["count"]), ha="center", va="bottom")
    ax.set(xlabel="", ylabel="instances", title=f"{int(t['count'].sum())} labelled defects")
    fig.tight_layout()
    return fig, t


def size_and_shape(instances: pd.DataFrame, classes: ClassSet):
    """Major axis (px, and nm when known), axis ratio and orientation per class."""
    d = _with_display(instances, classes)
    # the orientation of a near-circle is noise: leave it out of that panel
    d["angle"] = d["angle"].where(d["ratio"] >= 1.2)
    has_nm = d["major_nm"].notna().any()
    cols = [("major", "major axis (px)"), ("ratio", "axis ratio major/minor"),
            ("angle", "orientation (deg from +x)")]
    if has_nm:
        cols.insert(1, ("major_nm", "major axis (nm)"))
    fig, axes = plt.subplots(1, len(cols), figsize=(4 * len(cols), 3.2))
    for ax, (col, label) in zip(axes, cols):
        kw = dict(log_scale=True) if col in ("major", "major_nm") else {}
        sns.histplot(d, x=col, hue="class", palette=_palette(classes), element="step", stat="density",
                     common_norm=False, ax=ax, bins=30, **kw)
        ax.set(xlabel=label)
    fig.tight_layout()
    summary = d.groupby("class")[[c for c, _ in cols]].describe(percentiles=[0.05, 0.5, 0.95])
    summary.columns = ["_".join(c) for c in summary.columns]
    return fig, summary.reset_index()


def defects_per_image(images: pd.DataFrame, classes: ClassSet):
    present = [c for c in classes if images[f"n_{c.name}"].sum() > 0]
    cols = [f"n_{c.name}" for c in present]
    t = images[["name"] + cols + ["n_defects", "defects_per_mpx"]]
    fig, ax = plt.subplots(figsize=(max(4.5, 0.35 * len(t)), 3.2))
    bottom = np.zeros(len(t))
    for c, cls in zip(cols, present):
        ax.bar(range(len(t)), t[c], bottom=bottom, color=cls.color, label=cls.display)
        bottom += t[c].to_numpy()
    ax.set(xlabel="micrograph", ylabel="defects", xticks=range(len(t)))
    ax.set_xticklabels([str(i) for i in range(len(t))], fontsize=7)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig, t


def intensity_histograms(samples: list[Sample], classes: ClassSet, max_images: int = 12):
    """Gray-level histograms (8-bit) of the micrographs, background and defect pixels apart."""
    rows = []
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    bins = np.arange(257)
    for s in samples[:max_images]:
        img = np.clip(np.rint(s.image * 255), 0, 255).astype(int)
        h_all = np.bincount(img.ravel(), minlength=256)
        axes[0].plot(bins[:-1], h_all / h_all.sum(), lw=0.8, alpha=0.8)
        cmap = s.class_map()
        for cid in np.unique(cmap):
            vals = img[cmap == cid]
            rows.append({"name": s.name, "class_id": int(cid),
                         **{f"p{q}": float(np.percentile(vals, q)) for q in (1, 5, 50, 95, 99)}})
    t = pd.DataFrame(rows)
    t["region"] = t["class_id"].map(lambda c: "background" if c == 0 else classes.display(c))
    axes[0].set(xlabel="gray level", ylabel="fraction of pixels", title="whole micrographs")
    sns.boxplot(t, x="region", y="p50", hue="region",
                palette={**_palette(classes), "background": "0.6"}, ax=axes[1], legend=False)
    axes[1].set(xlabel="", ylabel="median gray level", title="per region, per micrograph")
    axes[1].tick_params(axis="x", labelsize=7)
    fig.tight_layout()
    return fig, t
