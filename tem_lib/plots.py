"""Figures of the study's results (notebooks 06 and 07): gains per strategy, split sensitivity,
F1 against the number of real crops. Above :mod:`tem_lib.analysis`, whose tables they draw;
:mod:`tem_lib.viz` holds the drawing helpers every floor may use."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np


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
