"""Is a prior faithful? Compare sampled label maps with held-out real crops.

The same measurements on both sides (``stats.instance_table``): per class the major axis,
axis ratio, orientation and orientation relative to the image's crystal frame (the <100>
loops' 0/90-degree preference; ``base.frame_residuals``), and the count per crop; over all
classes the count per crop and the centre-to-centre nearest-neighbour distance. Each pair of
distributions gets a two-sample Kolmogorov-Smirnov statistic (0 = identical, 1 = disjoint).
The real-vs-real value (training crops against test crops) is the floor a prior can hope
for with this much data.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.colors import ListedColormap
from matplotlib.ticker import NullFormatter
from scipy import stats as sps

from ..classes import ClassSet
from ..viz import class_legend
from .base import frame_residuals, training_geometry

CLASS_QUANTITIES = ("major", "ratio", "angle", "angle_vs_frame", "count_per_crop")
ALL_QUANTITIES = ("count_per_crop", "nn_distance")
LABELS = {"major": "major axis", "ratio": "axis ratio", "angle": "orientation (deg)",
          "angle_vs_frame": "|angle - frame| (deg)", "count_per_crop": "defects per crop",
          "nn_distance": "nearest-neighbour distance"}


def geometry_table(maps, class_ids=()) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """Per-instance and per-map measurements of labelled maps or crops.

    Returns (instances, per_map_counts, unit): lengths in nm when every item knows its
    pixel size, else in px (``unit``); counts in columns ``n_<class id>`` and ``n_all``."""
    geo = training_geometry(list(maps), class_ids)
    inst, counts = geo.instances, geo.images
    inst["angle_vs_frame"] = frame_residuals(inst).abs()
    inst["nn_distance"] = np.nan
    for _, g in inst.groupby("name"):
        if len(g) < 2:
            continue
        xy = g[["cx", "cy"]].to_numpy()
        d = np.sqrt(((xy[:, None, :] - xy[None, :, :]) ** 2).sum(-1))
        np.fill_diagonal(d, np.inf)
        inst.loc[g.index, "nn_distance"] = d.min(1)
    counts["n_all"] = counts[[f"n_{c}" for c in geo.class_ids]].sum(axis=1)
    return inst, counts, geo.unit


def _values(inst, counts, cid, quantity):
    if quantity == "count_per_crop":
        return counts[f"n_{cid}"].to_numpy(float)
    rows = inst if cid == "all" else inst[inst["class_id"] == cid]
    return rows[quantity].dropna().to_numpy(float)


def ks_table(real, sampled: dict, classes: ClassSet) -> pd.DataFrame:
    """KS statistics of every sampled set in ``sampled`` ({name: maps}) against ``real``.

    One row per (set, class, quantity): ks, p_value, n_real, n_sampled and both medians.
    Quantities with fewer than 2 values on a side get ks = NaN (and their n says why).
    """
    ids = list(classes.ids)
    ref = geometry_table(real, ids)
    tabs = {name: geometry_table(maps, ids) for name, maps in sampled.items()}
    units = {ref[2], *(t[2] for t in tabs.values())}
    if len(units) > 1:
        raise ValueError(f"cannot compare sets measured in different units: {sorted(units)}")
    rows = []
    for name, tab in tabs.items():
        for cid in [*ids, "all"]:
            for q in (ALL_QUANTITIES if cid == "all" else CLASS_QUANTITIES):
                a, b = _values(ref[0], ref[1], cid, q), _values(tab[0], tab[1], cid, q)
                ks = p = np.nan
                if len(a) >= 2 and len(b) >= 2:
                    res = sps.ks_2samp(a, b)
                    ks, p = float(res.statistic), float(res.pvalue)
                rows.append({"set": name, "class_id": cid,
                             "class": "all" if cid == "all" else classes[cid].name,
                             "quantity": q, "ks": ks, "p_value": p, "n_real": len(a),
                             "n_sampled": len(b),
                             "median_real": float(np.median(a)) if len(a) else np.nan,
                             "median_sampled": float(np.median(b)) if len(b) else np.nan,
                             "unit": ref[2]})
    return pd.DataFrame(rows)


def plot_distributions(real, sampled: dict, classes: ClassSet, real_label: str = "real (test)"):
    """ECDFs of real vs sampled, rows = classes (+ all), columns = quantities.

    Returns (figure, DataFrame of each plotted distribution's percentiles 0, 1, ..., 100)."""
    ids = list(classes.ids)
    ref = geometry_table(real, ids)
    tabs = {name: geometry_table(maps, ids) for name, maps in sampled.items()}
    quantities = list(dict.fromkeys(CLASS_QUANTITIES + ALL_QUANTITIES))
    rows_ids = [*ids, "all"]
    fig, axes = plt.subplots(len(rows_ids), len(quantities),
                             figsize=(2.6 * len(quantities), 2.2 * len(rows_ids)), squeeze=False)
    data = []
    sets = {real_label: ref, **tabs}
    colors = ["k", "#d95f02", "#7570b3", "#1b9e77", "#e7298a"]
    for r, cid in enumerate(rows_ids):
        valid = ALL_QUANTITIES if cid == "all" else CLASS_QUANTITIES
        for c, q in enumerate(quantities):
            ax = axes[r, c]
            if q not in valid:
                ax.axis("off")
                continue
            for k, (name, tab) in enumerate(sets.items()):
                v = np.sort(_values(tab[0], tab[1], cid, q))
                if len(v):
                    ax.step(v, np.arange(1, len(v) + 1) / len(v), where="post",
                            color=colors[k % len(colors)], lw=1.6 if k == 0 else 1.2, label=name)
                if len(v):
                    qs = np.percentile(v, np.arange(101))
                    data += [{"set": name, "class": "all" if cid == "all" else classes[cid].name,
                              "quantity": q, "n": len(v), "percentile": i, "value": round(float(x), 4)}
                             for i, x in enumerate(qs)]
            if q in ("major", "nn_distance"):
                ax.set_xscale("log")
                ax.xaxis.set_minor_formatter(NullFormatter())
            if r == 0 or (cid == "all"):
                ax.set_title(LABELS[q] + (f" ({ref[2]})" if q in ("major", "nn_distance") else ""),
                             fontsize=8)
            if c == 0 or (cid == "all" and c == quantities.index("count_per_crop")):
                ax.set_ylabel(("all classes" if cid == "all" else classes.display(cid)) + "\nECDF",
                              fontsize=8)
            ax.tick_params(labelsize=7)
    axes[0, 0].legend(fontsize=7, frameon=False)
    fig.tight_layout()
    return fig, pd.DataFrame(data)


def plot_label_maps(maps, classes: ClassSet, ncols: int = 6, size: float = 2.0):
    """Grid of label maps (or labelled crops) coloured by class (white background)."""
    n = len(maps)
    nrows = int(np.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows), squeeze=False)
    top = max(classes.ids)
    cmap = ListedColormap(["white"] + [classes.color(c) if c in classes else "k" for c in range(1, top + 1)])
    for ax in axes.ravel():
        ax.axis("off")
    for ax, m in zip(axes.ravel(), maps):
        ax.imshow(m.class_map(), cmap=cmap, vmin=0, vmax=top, interpolation="nearest")
        ax.set_title(f"{m.name} ({len(m.instances)})", fontsize=7)
        ax.axis("on")
        ax.set_xticks([])
        ax.set_yticks([])
    class_legend(fig, maps, classes, bottom=0.04)
    return fig


def plot_ks_heatmap(ks: pd.DataFrame, sets, title: str = ""):
    """The KS statistics of one cell (``ks_table`` rows: class, quantity, set, ks) as a heatmap:
    rows class · quantity, columns the sets in the order of ``sets`` (those present)."""
    t = ks.assign(row=ks["class"] + " · " + ks["quantity"]).pivot(index="row", columns="set", values="ks")
    t = t[[c for c in sets if c in t.columns]]
    fig, ax = plt.subplots(figsize=(1.6 + 1.3 * t.shape[1], 0.32 * len(t) + 1))
    im = ax.imshow(t.to_numpy(float), cmap="viridis_r", vmin=0, vmax=0.6, aspect="auto")
    for (i, j), v in np.ndenumerate(t.to_numpy(float)):
        ax.text(j, i, "–" if np.isnan(v) else f"{v:.2f}", ha="center", va="center", fontsize=7,
                color="w" if v > 0.3 else "k")
    ax.set_xticks(range(t.shape[1]), t.columns, fontsize=8)
    ax.set_yticks(range(len(t)), t.index, fontsize=7)
    fig.colorbar(im, ax=ax, label="KS statistic vs test crops")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig
