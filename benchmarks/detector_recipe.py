"""Which detector recipe learns on real FeCrAl: learning curves per recipe, cross-validated by micrograph.

The 8 micrographs of ``../shared/data/fecral-3class`` in 4 folds of 2 test micrographs (the
seeded folds of ``_common.real_crops_and_folds``). In each fold every 256-px crop of the 6
training micrographs trains the detector, except ``--n-val`` random ones kept to choose the
score threshold (never the test crops). Each recipe is the quick profile's detector (ResNet-18
FPN, ``tem_lib.detection.DetectorConfig`` defaults) with some settings changed (``RECIPES``);
after every epoch the detector is scored on the validation and test crops, so one training
gives a learning curve:

- the paper's headline (harmonic mean of detection and classification F1, IoU 0.5) at score
  0.1 (the paper's threshold) and at the threshold chosen on the validation crops;
- box and mask AP (pycocotools), AP50;
- per-class density and size errors (Jacobs et al.'s relative errors) at both thresholds;
- all of it also after a class-agnostic NMS of the same predictions (one defect, one class):
  recipes ``...`` + ``agnostic`` cost no training.

Finished runs are kept (``--work``) and reused; the table and figure are rebuilt from all the
runs found. Skips cleanly when the data is absent. One run at a time: two trainings side by
side slow each other several-fold.

    python benchmarks/detector_recipe.py [--recipes scratch foundation ...] [--folds 0 1 2 3] [--train RECIPE ...]
        [--epochs 5] [--iters 80]
"""
import argparse
import time

import matplotlib
import numpy as np
import pandas as pd

from tem_lib.detection import DetectorConfig, evaluate, train_detector
from tem_lib.detection.foundation import ensure_foundation
from tem_lib.metrics.detection import (
    above,
    choose_score_threshold,
    coco_ap,
    evaluate_detections,
    size_density_table,
)
from tem_lib.utils import read_json, write_json

from _common import RESULTS, ROOT, markdown_table, real_crops_and_folds, write_results

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

PHOTOMETRIC = {"contrast": 0.35, "brightness": 0.1, "gamma": 0.4, "blur": 1.5, "noise": 0.04, "p": 0.7}
# name: (DetectorConfig overrides, DetTrainConfig overrides)
RECIPES = {
    "scratch": ({"pretrained": "none"}, {}),
    "foundation": ({"pretrained": "foundation"}, {}),
    "foundation+photometric": ({"pretrained": "foundation"}, {"photometric": PHOTOMETRIC}),
    "foundation+upsampled": ({"pretrained": "foundation", "min_size": [512], "max_size": 512}, {}),
    "foundation+sgd": ({"pretrained": "foundation"}, {"optimizer": "sgd", "lr": 0.01}),
    "foundation+lr3e-4": ({"pretrained": "foundation"}, {"lr": 3e-4}),
    # anchors fitted to the FeCrAl labels (box side sqrt(w h): 5 % 14 px, median 36, 95 % 102, 99 %
    # 155; nothing under 10 px) instead of the paper's 4-256 px, two per level as before. Anchors
    # are architecture: this recipe's foundation is pretrained for them (its own cache key).
    "foundation+anchors": ({"pretrained": "foundation",
                            "anchor_sizes": [[12, 16], [20, 28], [36, 48], [64, 90], [128, 180]]}, {}),
    "scratch+photometric": ({"pretrained": "none"}, {"photometric": PHOTOMETRIC}),
    # the plateau: twice the iterations, scored every 80 (its own cosine schedule, so its curve at
    # 320 is not the 320-iteration recipe's end point)
    "foundation+640it": ({"pretrained": "foundation"}, {"epochs": 8}),
}
IOU = 0.5


def score_point(val, test, val_preds, test_preds, classes) -> dict:
    """Every metric of one evaluation point, per-class NMS and class-agnostic."""
    out = {}
    for nms, vp, tp in (("", val_preds, test_preds),
                        ("agnostic_", [p.class_agnostic_nms(IOU) for p in val_preds],
                         [p.class_agnostic_nms(IOU) for p in test_preds])):
        thr, _ = choose_score_threshold(val, vp, classes, iou=IOU)
        for label, t in (("s0.1", 0.1), ("val", thr)):
            kept = above(tp, t)
            table = evaluate_detections(test, kept, (IOU,), classes=classes).table.iloc[0]
            sizes = size_density_table(test, kept, classes)
            out.update({f"{nms}harmonic@{label}": float(table["harmonic"]), f"{nms}det_f1@{label}": float(table["det_f1"]),
                        f"{nms}cls_f1@{label}": float(table["cls_f1"]),
                        f"{nms}n_pred@{label}": int(sum(len(p) for p in kept)),
                        f"{nms}max_abs_density_err@{label}": float(sizes["density_rel_error"].abs().max()),
                        f"{nms}max_abs_size_err@{label}": float(sizes["size_rel_error"].abs().max()),
                        **{f"{nms}density_err_{r['class']}@{label}": float(r["density_rel_error"])
                           for _, r in sizes.iterrows()},
                        **{f"{nms}size_err_{r['class']}@{label}": float(r["size_rel_error"])
                           for _, r in sizes.iterrows()}})
        out[f"{nms}val_threshold"] = thr
        out.update({f"{nms}{k}": v for k, v in coco_ap(test, tp).items()})
    out["n_true"] = int(sum(len(s.instances) for s in test))
    return out


def fold_sets(crops, folds, fold: int, seed: int, n_val: int):
    """(train, val, test) crops of ``fold``: its 2 micrographs test; of the others' crops,
    ``n_val`` drawn (seeded by seed + fold) choose score thresholds, the rest train."""
    test_src = folds[fold]
    pool = [c for c in crops if c.source_id not in test_src]
    test = [c for c in crops if c.source_id in test_src]
    rng = np.random.default_rng(seed + fold)
    val_idx = set(rng.choice(len(pool), size=n_val, replace=False).tolist())
    return ([c for i, c in enumerate(pool) if i not in val_idx], [c for i, c in enumerate(pool) if i in val_idx], test)


def recipe_settings(name: str, fold: int, args) -> dict:
    """What a finished run of recipe ``name`` on ``fold`` must have been trained with to be reused."""
    if name == "yolo":  # the wall time of the same fold's foundation recipe
        ref = ROOT / args.work / "foundation" / f"fold{fold}" / "curve.json"
        seconds = args.yolo_seconds or (read_json(ref)["curve"][-1]["train_seconds"] if ref.is_file() else 500.0)
        return {"model": "yolov8n-seg.yaml (scratch)", "seconds": seconds, "imgsz": 256, "batch": 4,
                "n_val": args.n_val, "fold": fold}
    det, tr = RECIPES[name]
    training = {"epochs": args.epochs, "iters_per_epoch": args.iters, "batch_size": 4, "warmup_iters": 30,
                "seed": args.seed, **tr}
    return {"detector": det, "training": training, "n_val": args.n_val, "fold": fold}


def stored_run(name: str, fold: int, args, settings: dict | None = None) -> dict | None:
    """The finished run of recipe ``name`` on ``fold`` with these ``settings`` (default: the
    recipe's, :func:`recipe_settings`), or None."""
    done = ROOT / args.work / name / f"fold{fold}" / "curve.json"
    settings = recipe_settings(name, fold, args) if settings is None else settings
    if done.is_file() and (res := read_json(done)).get("settings") == settings:
        return res
    return None


def run_yolo_recipe(fold, crops, folds, args, classes) -> dict:
    """The peer line: YOLOv8n-seg from scratch for the wall time of the same fold's foundation
    recipe (``yolo_peer.py``; ultralytics is an optional benchmark extra)."""
    out = ROOT / args.work / "yolo" / f"fold{fold}"
    done = out / "curve.json"
    settings = recipe_settings("yolo", fold, args)
    seconds = settings["seconds"]
    if (res := stored_run("yolo", fold, args, settings)) is not None:
        return res
    from yolo_peer import run_yolo
    train, val, test = fold_sets(crops, folds, fold, args.seed, args.n_val)
    vp, tp, info = run_yolo(train, val, test, classes, out, seconds, seed=args.seed)
    point = {"iteration": info["iterations"], "train_seconds": info["train_seconds"],
             **score_point(val, test, vp, tp, classes)}
    print(f"yolo fold {fold}: {info}; headline@0.1 {point['harmonic@s0.1']:.3f} @val {point['harmonic@val']:.3f} "
          f"AP50 {point['bbox_AP50']:.3f}", flush=True)
    res = {"recipe": "yolo", "fold": fold, "settings": settings, "test_sources": folds[fold], "n_train": len(train),
           "n_val": len(val), "n_test": len(test), "init": None, "yolo": info, "curve": [point]}
    write_json(done, res)
    return res


def run_recipe(name, fold, crops, folds, args, classes) -> dict:
    if name == "yolo":
        return run_yolo_recipe(fold, crops, folds, args, classes)
    out = ROOT / args.work / name / f"fold{fold}"
    done = out / "curve.json"
    settings = recipe_settings(name, fold, args)
    det, training = settings["detector"], settings["training"]
    if (res := stored_run(name, fold, args, settings)) is not None:
        return res
    test_src = folds[fold]
    train, val, test = fold_sets(crops, folds, fold, args.seed, args.n_val)
    points = []
    t_train = [time.perf_counter(), 0.0]

    def on_epoch_end(model, epoch):
        t_train[1] += time.perf_counter() - t_train[0]
        vp, tp = evaluate(model, val, "cpu", progress=False), evaluate(model, test, "cpu", progress=False)
        points.append({"iteration": (epoch + 1) * args.iters, "train_seconds": round(t_train[1], 1),
                       **score_point(val, test, vp, tp, classes)})
        print(f"{name} fold {fold} it {points[-1]['iteration']}: headline@0.1 {points[-1]['harmonic@s0.1']:.3f} "
              f"@val {points[-1]['harmonic@val']:.3f} AP50 {points[-1]['bbox_AP50']:.3f}", flush=True)
        t_train[0] = time.perf_counter()

    _, summary = train_detector(train, out / "detector", DetectorConfig(**det), training, device="cpu",
                                class_ids=classes.ids, class_names=classes.names, progress=False,
                                on_epoch_end=on_epoch_end)
    if summary["resumed_from"]:  # resumed: the curve lacks the earlier epochs; redo it whole
        raise RuntimeError(f"{out}: a resumed run has no complete learning curve; delete the folder and rerun")
    res = {"recipe": name, "fold": fold, "settings": settings, "test_sources": test_src, "n_train": len(train),
           "n_val": len(val), "n_test": len(test), "init": summary.get("init_weights"), "curve": points}
    write_json(done, res)
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", default="runs/bench/detector_recipe")
    ap.add_argument("--recipes", nargs="+", default=["scratch", "foundation", "foundation+photometric"],
                    choices=sorted([*RECIPES, "yolo"]),
                    help="'yolo': the peer line (YOLOv8n-seg, ultralytics; pip install -e '.[peer]')")
    ap.add_argument("--yolo-seconds", type=float, default=None,
                    help="YOLO's training wall time (default: the same fold's foundation recipe's)")
    ap.add_argument("--folds", nargs="+", type=int, default=[0, 1, 2, 3],
                    help="folds to train (a recipe run on some folds only); the named recipes' finished runs on the "
                         "other folds are reported too")
    ap.add_argument("--train", nargs="+", default=None, metavar="RECIPE",
                    help="train only these of --recipes on --folds (default: all); the others are reported from "
                         "their finished runs on every fold")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--iters", type=int, default=80)
    ap.add_argument("--n-val", type=int, default=24)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    train = args.recipes if args.train is None else args.train
    if not set(train) <= set(args.recipes):
        ap.error(f"--train {sorted(set(train) - set(args.recipes))} must be among --recipes")
    micrographs, crops, folds = real_crops_and_folds(args.seed)
    classes = micrographs.classes
    t0 = time.perf_counter()
    found = ensure_foundation({}, DetectorConfig(), "cpu")
    found_meta = read_json(found / "detector.json")
    pretrain_s = time.perf_counter() - t0
    # a recipe that changes the architecture has its own foundation: pretrained here, before any
    # fold's clock starts, so no fold's train_seconds holds it
    other_foundations = {}
    for name in train:
        det = DetectorConfig(**RECIPES[name][0]) if name in RECIPES else None
        if det is not None and det.pretrained == "foundation":
            t1 = time.perf_counter()
            folder = ensure_foundation(det.foundation, det, "cpu")
            if folder != found:
                meta = read_json(folder / "detector.json")
                other_foundations[name] = {"key": meta.get("foundation", {}).get("key"), "seconds": meta.get("seconds"),
                                           "found_in_seconds": round(time.perf_counter() - t1, 1)}
    runs = []
    for fold in args.folds:  # fold-major: every recipe of a fold before the next fold
        for name in train:
            runs.append(run_recipe(name, fold, crops, folds, args, classes))
    runs += [r for fold in range(len(folds)) for name in args.recipes
             if not (fold in args.folds and name in train) and (r := stored_run(name, fold, args)) is not None]
    report(runs, args, found_meta, pretrain_s, other_foundations)


PLATEAU_TOL = 0.01


def plateau_table(curves: pd.DataFrame, end: int, metric: str = "harmonic@val") -> pd.DataFrame:
    """Per recipe with a curve (more than one point per fold): the iteration of its best
    fold-mean ``metric``, the first iteration within ``PLATEAU_TOL`` of that best, and its value
    at ``end`` (the default schedule's last iteration)."""
    out = []
    for rec, g in curves.groupby("recipe", sort=False):
        if g.groupby("fold").size().max() < 2:
            continue
        mean = g.groupby("iteration")[metric].mean()
        best = mean.max()
        out.append({"recipe": rec, "points": len(mean), "best_iteration": int(mean.idxmax()), "best": round(best, 3),
                    "plateau_iteration": int(mean.index[(mean >= best - PLATEAU_TOL).to_numpy()].min()),
                    f"at_{end}": round(float(mean.get(end, np.nan)), 3), "last": round(float(mean.iloc[-1]), 3)})
    return pd.DataFrame(out)


def _interval(values) -> str:
    v = np.asarray(values, float)
    return f"{v.mean():.3f} [{v.min():.3f}, {v.max():.3f}]" if len(v) > 1 else f"{v.mean():.3f}"


def report(runs, args, found_meta, pretrain_s, other_foundations=None):
    rows = [{"recipe": r["recipe"], "fold": r["fold"], **p} for r in runs for p in r["curve"]]
    curves = pd.DataFrame(rows)
    final = curves.sort_values("iteration").groupby(["recipe", "fold"]).tail(1)
    cols = ["harmonic@s0.1", "harmonic@val", "det_f1@val", "cls_f1@val", "bbox_AP", "bbox_AP50", "segm_AP50",
            "max_abs_density_err@val", "max_abs_size_err@val", "agnostic_harmonic@s0.1", "agnostic_harmonic@val",
            "agnostic_max_abs_density_err@val", "train_seconds"]
    table = pd.DataFrame([{"recipe": rec, "folds": len(g), "iterations": _interval(g["iteration"]),
                           **{c: _interval(g[c]) for c in cols},
                           "pred/true@s0.1": _interval(g["n_pred@s0.1"] / g["n_true"]),
                           "pred/true@val": _interval(g["n_pred@val"] / g["n_true"])}
                          for rec, g in final.groupby("recipe", sort=False)])
    metrics = [("harmonic@s0.1", "headline at score 0.1"), ("harmonic@val", "headline at the validation threshold"),
               ("bbox_AP50", "box AP50"), ("max_abs_density_err@val", "max |density error| (validation thr.)")]
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.6))
    for ax, (m, title) in zip(axes, metrics):
        for rec, g in curves.groupby("recipe", sort=False):
            if g.groupby("fold").size().max() == 1:  # one point per fold at its own iteration (yolo's wall-time
                v = g[m]                               # budget): one marker, not a line across folds
                ax.errorbar([g.iteration.mean()], [v.mean()], yerr=[[v.mean() - v.min()], [v.max() - v.mean()]],
                            xerr=[[g.iteration.mean() - g.iteration.min()], [g.iteration.max() - g.iteration.mean()]],
                            fmt="s", ms=4, capsize=2, label=f"{rec} (end of its run)")
                continue
            mean = g.groupby("iteration")[m].agg(["mean", "min", "max"])
            some = g.fold.nunique() < curves.fold.nunique()  # run on some folds only: not the others' mean
            line, = ax.plot(mean.index, mean["mean"], marker="o", ms=3, ls="--" if some else "-",
                            label=f"{rec} (folds {', '.join(map(str, sorted(g.fold.unique())))} only)" if some else rec)
            ax.fill_between(mean.index, mean["min"], mean["max"], color=line.get_color(), alpha=0.15)
        ax.set(title=title, xlabel="fine-tuning iteration (batch 4)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle(f"Real FeCrAl, {curves.fold.nunique()} folds by micrograph: mean over folds (band: min-max)",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(RESULTS / "detector_recipe.png", dpi=120)
    fc = found_meta.get("foundation", {})
    plateau_md = markdown_table(plateau_table(curves, args.epochs * args.iters))
    per_class_md = markdown_table(pd.DataFrame(
        [{"recipe": rec, "class @ threshold": c.replace("_err_", " error, ").replace("@s0.1", " @ 0.1").replace("@val", " @ val"),
          "mean [min, max]": _interval(g[c])}
         for rec, g in final.groupby("recipe", sort=False)
         for c in sorted(g.filter(regex=r"^(density|size)_err_").columns)]))
    notes = f"""
Real FeCrAl, cross-validated by micrograph: folds {sorted(set(curves.fold))} (2 test micrographs each), every
256-px crop of the 6 training micrographs trains the detector except {args.n_val} kept to choose the score
threshold. The quick profile's detector (ResNet-18 FPN) fine-tuned {args.epochs} x {args.iters} iterations of
batch 4 per recipe unless the recipe sets its own (column `iterations`), scored after each epoch (curves:
`detector_recipe.png`). Values: mean [min, max] over folds at the last point. Headline: harmonic mean of
detection and classification F1 at IoU {IOU}. `agnostic_`: the same predictions after a class-agnostic NMS.
Density/size errors: (predicted - true) / true per class, the largest absolute value over the three classes.
The labels are incomplete (ambiguous features and dislocation lines
unlabelled), so precision is pessimistic.

Where the curves stop rising (mean over the recipe's folds of the headline at the validation threshold; `plateau`:
the first iteration within {PLATEAU_TOL} of the recipe's best point; a plateau at the last point means still rising):

{plateau_md}

Per-class density and size errors, mean [min, max] over folds by recipe, at the last point:

{per_class_md}

Foundation: `{fc.get('key')}`, {fc.get('n_crops')} simulated crops of {fc.get('config', {}).get('n_populations')}
populations, {found_meta.get('train', {}).get('epochs', 0) * found_meta.get('train', {}).get('iters_per_epoch', 0)}
iterations, pretrained in {found_meta.get('seconds')} s on this CPU (this run found it in {pretrain_s:.0f} s:
{'cached' if pretrain_s < 60 else 'trained now'}).
""" + "".join(f"""Recipe `{name}`: its own foundation `{f['key']}` (same simulated set and schedule, its architecture),
pretrained in {f['seconds']} s on this CPU (this run found it in {f['found_in_seconds']:.0f} s).
""" for name, f in (other_foundations or {}).items())
    write_results("detector_recipe", {"final": final.to_dict(orient="records"), "curves": rows,
                                      "foundation": fc, "foundation_seconds": found_meta.get("seconds"),
                                      "other_foundations": other_foundations, "args": vars(args)}, table, notes)


if __name__ == "__main__":
    main()
