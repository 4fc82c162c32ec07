"""Which proposals to show: edits to reach the true labels when the labelling widget hides the
proposals scoring below a value (its "score ≥" box, ``LabelWidget.min_score``).

``benchmarks/label_assist.py`` found that on real FeCrAl the proposals save 68 % of the drawings
but cost more edits than labelling from nothing (1228 vs 688), because 540 false proposals must
be rejected. A hidden proposal costs nothing when it is false and one drawing when it is true;
this measures the trade with ``tem_lib.label.min_score_table`` (the same careful labeller played
back) on the same micrographs and proposals as label_assist:

* real FeCrAl: the 8 held-out micrographs of the 4 folds, proposals of each fold's default
  quantify output (made by ``python benchmarks/quantify_realdata.py``);
* simulated: 3 micrographs, proposals of the detector label_assist trains on 6 others.

The per-score rows are summed over micrographs; the interval on the edits saved is a bootstrap
over micrographs (95 %, 2000 resamples). Writes ``benchmarks/results/label_min_score.{json,md,png}``.

    python benchmarks/label_min_score.py [--skip-sim]
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
from label_assist import real_projects, sim_project

from tem_lib.label import edits_table
from tem_lib.label.review import INPUTS, inputs

from _common import RESULTS, markdown_table, real_crops_and_folds, write_results

SCORES = (0.0, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


def per_image(project, truth, data: str, fold) -> pd.DataFrame:
    """Edits and inputs per micrograph and lowest score shown."""
    rows = [edits_table(project, truth, min_score=m).assign(min_score=m) for m in SCORES]
    table = pd.concat(rows, ignore_index=True).assign(data=data, fold=fold)
    table["inputs_assisted"] = inputs(table)
    table["inputs_from_nothing"] = INPUTS["draw"] * table.defects
    return table


def summarise(table: pd.DataFrame, n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Summed over micrographs per (data, min_score), with bootstrap intervals over micrographs
    (the same resamples for every score) on the fractions of edits and inputs saved against
    labelling from nothing."""
    cols = ["defects", "proposals", "hidden", "accept", "relabel", "reject", "draw", "edits_assisted",
            "edits_from_nothing", "inputs_assisted", "inputs_from_nothing"]
    out = []
    base = {d: g.sort_values(["fold", "image"]) for d, g in table[table.min_score == 0].groupby("data")}
    for (data, m), g in table.groupby(["data", "min_score"], sort=True):
        g = g.sort_values(["fold", "image"])
        row = {"data": data, "min_score": m, "micrographs": len(g), **g[cols].sum().astype(int).to_dict()}
        idx = np.random.default_rng(seed).integers(0, len(g), size=(n_boot, len(g)))
        for what in ("edits", "inputs"):
            a, b = g[f"{what}_assisted"].to_numpy(float), g[f"{what}_from_nothing"].to_numpy(float)
            row[f"{what}_saved"] = 1 - a.sum() / b.sum()
            row[f"{what}_lo"], row[f"{what}_hi"] = np.percentile(1 - a[idx].sum(1) / b[idx].sum(1), [2.5, 97.5])
        # inputs saved against every proposal shown, paired by micrograph
        a0 = base[data].inputs_assisted.to_numpy(float)
        a, b = g.inputs_assisted.to_numpy(float), g.inputs_from_nothing.to_numpy(float)
        row["vs_all_shown"] = (a0.sum() - a.sum()) / b.sum()
        row["vs_lo"], row["vs_hi"] = np.percentile((a0[idx].sum(1) - a[idx].sum(1)) / b[idx].sum(1), [2.5, 97.5])
        out.append(row)
    return pd.DataFrame(out)


def figure(summary: pd.DataFrame, path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    datas = list(dict.fromkeys(summary.data))
    fig, axes = plt.subplots(1, len(datas), figsize=(5.2 * len(datas), 3.6), squeeze=False)
    for ax, data in zip(axes[0], datas):
        g = summary[summary.data == data]
        ax.plot(g.min_score, g.inputs_assisted, "o-", color="k", label="inputs with proposals")
        ax.plot(g.min_score, g.edits_assisted, "o:", color="0.4", label="edits with proposals")
        ax.plot(g.min_score, g.reject, "s--", color="tab:red", label="rejects")
        ax.plot(g.min_score, g.draw, "^--", color="tab:blue", label="drawings")
        ax.axhline(g.inputs_from_nothing.iloc[0], color="k", lw=1, alpha=0.5, label="inputs from nothing")
        ax.axhline(g.edits_from_nothing.iloc[0], color="0.4", lw=1, ls=":", label="edits from nothing")
        ax.set(xlabel="lowest score shown (widget's score ≥ box)", ylabel="to reach the labels",
               title=f"{data}: {g.micrographs.iloc[0]} micrographs, {g.defects.iloc[0]} defects", ylim=(0, None))
        ax.legend(frameon=False, fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=130)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--skip-sim", action="store_true")
    args = ap.parse_args()
    t0 = time.perf_counter()
    micrographs, _, folds = real_crops_and_folds(0)
    parts = [per_image(p, t, "real FeCrAl", k) for k, p, t in real_projects(micrographs, folds)]
    if not args.skip_sim:
        parts.append(per_image(*sim_project(args.device), "simulated", "sim"))
    table = pd.concat(parts, ignore_index=True)
    summary = summarise(table)
    figure(summary, RESULTS / "label_min_score.png")
    best = summary.loc[summary.groupby("data").inputs_assisted.idxmin()]
    shown = ["data", "min_score", "inputs_assisted", "inputs_from_nothing", "inputs_saved", "inputs_lo", "inputs_hi",
             "vs_all_shown", "vs_lo", "vs_hi", "edits_assisted", "edits_from_nothing", "edits_saved"]
    seconds = round(time.perf_counter() - t0, 1)
    notes = f"""
Fewest inputs per data source, and every proposal shown (`min_score` 0, label_assist's measurement):

{markdown_table(pd.concat([best, summary[summary.min_score == 0]])[shown])}

`hidden`: proposals below the score, never seen; `reject`: false proposals shown; `draw`: true defects no shown
proposal found (the hidden ones' included). An edit is an accept, reject, relabel or drawing; inputs weigh them
by what they cost in the widget (`tem_lib.label.review.INPUTS`: accept and reject 1 key, relabel 2, a drawing 3
mouse actions; from nothing, 3 per defect). `*_saved` = 1 - with proposals / from nothing, with 95 % bootstrap
intervals over micrographs (`*_lo`, `*_hi`); `vs_all_shown`: the inputs saved against showing every proposal, as a
fraction of the inputs from nothing, bootstrapped paired by micrograph (`vs_lo`, `vs_hi`). The best score is chosen
on the same micrographs it is measured on, so its gain is an optimistic estimate for new ones.
Figure `label_min_score.png`. Wall time {seconds:.0f} s on {args.device} (detectors reused from runs/bench when
there).

## Per micrograph

{markdown_table(table)}
"""
    write_results("label_min_score", {"summary": summary.to_dict(orient="records"),
                                      "per_image": table.to_dict(orient="records"), "seconds": seconds},
                  summary, notes)
    print(markdown_table(summary))


if __name__ == "__main__":
    main()
