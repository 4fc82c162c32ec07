"""One score threshold per class instead of one for all: do the per-class densities come right?

The detectors that ``detector_recipe.py`` trained (``--recipe``, every finished fold) predict their
fold's validation and test crops again; class-agnostic NMS as the profiles use it. On the test
crops, three ways of choosing what to keep, all chosen on the validation crops only:

* ``single``: one threshold, the best headline (what the study and quantify do by default);
* ``per-class headline``: one per class, coordinate ascent on the headline from ``single``;
* ``per-class count``: one per class, keeping as many of its detections as it has labelled
  defects on the validation crops (aimed at the densities a microscopist reports).

Writes the headline, detection and classification F1, and per-class density and size errors
(mean [min, max] over folds) to ``benchmarks/results/class_thresholds.{json,md}``.

    python benchmarks/class_thresholds.py [--recipe foundation] [--work runs/bench/detector_recipe]
"""
import argparse

import numpy as np
import pandas as pd

from tem_lib.classes import preset
from tem_lib.detection import evaluate, load_detector
from tem_lib.metrics.detection import (
    choose_class_thresholds,
    choose_score_threshold,
    evaluate_detections,
    size_density_table,
)
from tem_lib.utils import read_json

from _common import ROOT, markdown_table, real_crops_and_folds, write_results
from detector_recipe import IOU, fold_sets


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", default="runs/bench/detector_recipe")
    ap.add_argument("--recipe", default="foundation")
    args = ap.parse_args()
    classes = preset("fecral")
    rows, thresholds = [], []
    micrographs, crops, folds = real_crops_and_folds(0)
    for run in sorted((ROOT / args.work / args.recipe).glob("fold*/curve.json")):
        res = read_json(run)
        fold, n_val, seed = res["fold"], res["n_val"], res["settings"]["training"]["seed"]
        _, val, test = fold_sets(crops, folds, fold, seed, n_val)
        model = load_detector(run.parent / "detector", "cpu")
        vp = [p.class_agnostic_nms(IOU) for p in evaluate(model, val, "cpu", progress=False)]
        tp = [p.class_agnostic_nms(IOU) for p in evaluate(model, test, "cpu", progress=False)]
        single, _ = choose_score_threshold(val, vp, classes, iou=IOU)
        ways = {"single": dict.fromkeys(classes.ids, single)}
        for objective in ("headline", "count"):
            ways[f"per-class {objective}"], _ = choose_class_thresholds(val, vp, classes, iou=IOU, objective=objective)
        for way, th in ways.items():
            kept = [p.above_class_thresholds(th) for p in tp]
            t = evaluate_detections(test, kept, (IOU,), classes=classes).table.iloc[0]
            sizes = size_density_table(test, kept, classes).set_index("class_id")
            row = {"fold": fold, "way": way, "headline": float(t["harmonic"]), "det_f1": float(t["det_f1"]),
                   "cls_f1": float(t["cls_f1"]), "pred/true": sum(len(p) for p in kept) / sum(len(s.instances) for s in test)}
            for c in classes:
                row[f"density_err {c.display}"] = float(sizes.loc[c.id, "density_rel_error"])
                row[f"size_err {c.display}"] = float(sizes.loc[c.id, "size_rel_error"])
            rows.append(row)
            thresholds.append({"fold": fold, "way": way, **{c.display: th[c.id] for c in classes}})
        print(pd.DataFrame(rows[-3:]).round(3).to_string(), flush=True)
    df = pd.DataFrame(rows)

    def interval(v):
        v = v.dropna()
        return f"{v.mean():.3f} [{v.min():.3f}, {v.max():.3f}]" if len(v) else "n/a"
    cols = [c for c in df.columns if c not in ("fold", "way")]
    table = pd.DataFrame([{"way": w, "folds": len(g), **{c: interval(g[c]) for c in cols}}
                          for w, g in df.groupby("way", sort=False)])
    th = pd.DataFrame(thresholds)
    th_table = th.groupby("way", sort=False)[[c.display for c in classes]].agg(lambda v: f"{np.mean(v):.2f} "
                                                                                         f"[{min(v):.2f}, {max(v):.2f}]")
    notes = f"""
Recipe `{args.recipe}` of `detector_recipe.md` (the quick detector, 320 fine-tuning iterations), folds
{sorted(int(f) for f in df.fold.unique())} by micrograph; class-agnostic NMS; every threshold chosen on the fold's
validation crops, scored on its test crops. Values: mean [min, max] over folds. Density and size errors:
(predicted - true) / true.

Thresholds chosen, mean [min, max] over folds:

{markdown_table(th_table.reset_index())}
"""
    write_results("class_thresholds", {"rows": rows, "thresholds": thresholds, "recipe": args.recipe}, table, notes)


if __name__ == "__main__":
    main()
