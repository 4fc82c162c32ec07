"""What the labelling tool saves, and whether its ranking picks better micrographs to label.

1. **Edits to reach the true labels** (``tem_lib.label.edits_table``: a careful labeller played
   back against known labels; each accept, reject, relabel and drawing is one edit) from the
   detector's proposals versus from nothing (one drawing per defect):
   * real FeCrAl: the 8 micrographs of ``../shared/data/fecral-3class`` in the 4 folds of
     ``quantify_realdata.py``; each fold's held-out micrographs written as plain images, the
     proposals being that fold's default quantify output (8-view TTA; reused from
     ``runs/bench/quantify_realdata``, made there by ``python benchmarks/quantify_realdata.py``);
   * simulated micrographs with exact truth: a detector trained by the ``--data`` recipe (the
     quick profile's) on 6 simulated micrographs, exported as ``--data`` exports it, proposing
     on 3 held-out ones.
2. **Ranked versus random** (real FeCrAl, fold 0's 2 micrographs held out): one labelled
   micrograph to start, 5 unlabelled; the detector trained on the start ranks the 5
   (``LabelProject.rank``: its score entropy, 1 view); detectors trained (same recipe and seed)
   after adding the top 1, 2, 4 by the ranking and the first 1, 2, 4 of 2 random orders, scored
   on the held-out micrographs' crops at the per-class thresholds chosen on validation crops of
   their own labelled micrographs (the paper's headline, IoU 0.5).

Writes ``benchmarks/results/label_assist.{json,md,png}``; finished detectors are reused from
``--work``. Every training uses the CPU fully: run it alone.

    python benchmarks/label_assist.py [--skip-curve] [--skip-sim]
    python benchmarks/label_assist.py --from-results   # tables and figure again from the JSON
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from PIL import Image

from tem_lib.classes import preset
from tem_lib.data import tile_dataset
from tem_lib.data.images import to_uint8
from tem_lib.label import LabelProject, edits_table
from tem_lib.label.review import INPUTS, inputs
from tem_lib.utils import read_json, stable_hash, write_json

from _common import RESULTS, ROOT, markdown_table, real_crops_and_folds, write_results

WORK = ROOT / "runs" / "bench" / "label_assist"
QUANTIFY_REAL = ROOT / "runs" / "bench" / "quantify_realdata"
DEFAULT_OUTPUT = "per-class_TTA-8_views_ge_0.25"  # quantify_realdata's default way
FECRAL = preset("fecral")


def recipe() -> tuple[dict, dict]:
    sweep = yaml.safe_load((ROOT / "profiles" / "quick.yaml").read_text())["common"]["sweep"]
    return dict(sweep["detector"]), dict(sweep["training"])


def image_folder(samples, out: Path) -> Path:
    """The micrographs as plain 8-bit PNGs (no labels): what a user would have."""
    out.mkdir(parents=True, exist_ok=True)
    for s in samples:
        f = out / f"{s.name}.png"
        if not f.is_file():
            Image.fromarray(to_uint8(s.image)).save(f)
    return out


def real_projects(micrographs, folds):
    """``(fold, project, truth)`` per fold whose quantify output exists: the held-out
    micrographs as plain images, the fold's default quantify detections as the proposals."""
    for k, held in enumerate(folds):
        out = QUANTIFY_REAL / f"fold{k}" / "quantify" / DEFAULT_OUTPUT
        if not (out / "predictions_coco.json").is_file():
            print(f"fold {k}: no {out}; run benchmarks/quantify_realdata.py first")
            continue
        truth = [m for m in micrographs if m.source_id in held]
        folder = image_folder(truth, WORK / "real" / f"fold{k}")
        yield k, LabelProject(folder, proposals=out, out_dir=WORK / "real" / f"fold{k}-label"), truth


def edits_real(micrographs, folds) -> pd.DataFrame:
    rows = []
    for k, project, truth in real_projects(micrographs, folds):
        t = edits_table(project, truth)
        t.insert(0, "fold", k)
        rows.append(t)
    return pd.concat(rows, ignore_index=True)


def train(train_crops, val, out: Path, device: str, what: str) -> Path:
    """A detector by the ``--data`` recipe on ``train_crops``, exported with thresholds chosen on
    ``val`` (1 view); reused when finished with the same crops."""
    from tem_lib.detection import DetectorConfig, train_detector
    from tem_lib.quantify import CARD
    from tem_lib.quantify.export import export_for_quantify
    det, training = recipe()
    key = {"train": sorted(c.name for c in train_crops), "val": sorted(c.name for c in val), "det": det, "tr": training}
    model = out / "model"
    if (model / CARD).is_file() and (out / "key.json").is_file() and read_json(out / "key.json") == key:
        return model
    t0 = time.perf_counter()
    train_detector(train_crops, out / "detector", DetectorConfig(**det), {**training, "seed": 0}, device=device,
                   class_ids=FECRAL.ids, class_names=FECRAL.names, progress=False)
    export_for_quantify(out / "detector", model, FECRAL, 256, None, val, what, tta_views=1, calibrate=False,
                        device=device)
    write_json(out / "key.json", key)
    write_json(out / "seconds.json", {"train_and_export": round(time.perf_counter() - t0, 1)})
    print(f"{out.name}: trained on {len(train_crops)} crops in {time.perf_counter() - t0:.0f} s", flush=True)
    return model


def score(model: Path, test, device: str) -> dict:
    """The paper's headline (IoU 0.5) on ``test`` crops, detections kept at the model's
    per-class thresholds (what quantify keeps, one view)."""
    from tem_lib.detection import evaluate
    from tem_lib.metrics.detection import evaluate_detections
    from tem_lib.quantify import load_model
    from tem_lib.quantify.run import card_thresholds
    net, card = load_model(model, device)
    net.roi_heads.score_thresh = min(0.05, *card_thresholds(card).values())
    preds = [d.above_class_thresholds(card_thresholds(card)) for d in evaluate(net, test, device, progress=False)]
    rep = evaluate_detections(test, preds, classes=FECRAL)
    n_true = sum(len(t.instances) for t in test)
    return {**rep.headline(0.5), "count_ratio": round(sum(len(p) for p in preds) / max(n_true, 1), 3)}


def split_val(crops, n_val: int, seed: int):
    rng = np.random.default_rng(seed)
    idx = set(rng.choice(len(crops), size=min(n_val, len(crops) // 4), replace=False).tolist())
    return [c for i, c in enumerate(crops) if i not in idx], [c for i, c in enumerate(crops) if i in idx]


def sim_project(device: str):
    """``(project, truth)``: 3 simulated micrographs, proposals of a detector trained on 6 others."""
    from tem_lib.simulate import preset as sim_preset
    from tem_lib.simulate import simulate
    sims = simulate(sim_preset(height=1024, width=1024, nm_per_px=1.6), 9, seed=31, workers=1)
    crops = tile_dataset(sims[:6], 256, min_area=12)
    tr, val = split_val(crops, 24, 0)
    train(tr, val, WORK / "sim", device, "24 validation crops of 6 simulated micrographs")
    tta = WORK / "sim" / "model_tta8"  # the default export's 8 views (views kept from 0.25), as --data's model
    if not (tta / "model.json").is_file():
        from tem_lib.quantify.export import export_for_quantify
        export_for_quantify(WORK / "sim" / "detector", tta, FECRAL, 256, 1.6, val,
                            "24 validation crops of 6 simulated micrographs", tta_views=8, view_score=0.25,
                            calibrate=False, device=device)
    folder = image_folder(sims[6:], WORK / "sim" / "micrographs")
    return LabelProject(folder, model=tta, out_dir=WORK / "sim" / "label", device=device), sims[6:]


def edits_sim(device: str) -> pd.DataFrame:
    t = edits_table(*sim_project(device))
    t.insert(0, "fold", "sim")
    return t


def curve(micrographs, crops, folds, device: str, n_random: int = 2) -> pd.DataFrame:
    held = folds[0]
    order0 = [s for f in folds[1:] for s in f]  # the seeded order of the other 6 micrographs
    start, pool = order0[:1], order0[1:]
    by_src = {m.source_id: m for m in micrographs}
    test = [c for c in crops if c.source_id in held]

    def detector(sources, tag):
        cr = [c for c in crops if c.source_id in sources]
        tr, val = split_val(cr, 32, 0)
        name = f"n{len(sources)}-" + stable_hash(sorted(sources))[:10]
        return train(tr, val, WORK / "curve" / name, device, f"{len(val)} validation crops of {tag}")

    base = detector(start, "the start micrograph")
    folder = image_folder([by_src[s] for s in pool], WORK / "curve" / "pool")
    project = LabelProject(folder, model=base, out_dir=WORK / "curve" / "pool-label", device=device)
    ranking = project.rank()
    name_to_src = {by_src[s].name: s for s in pool}
    ranked = [name_to_src[n] for n in ranking["image"]]
    orders = {"ranked": ranked}
    rng = np.random.default_rng(0)
    for r in range(n_random):
        orders[f"random {r + 1}"] = [pool[i] for i in rng.permutation(len(pool))]
    rows = [{"order": "start", "k": 0, "added": "", **score(base, test, device)}]
    for name, order in orders.items():
        for k in (1, 2, 4):
            added = order[:k]
            model = detector(start + added, f"{1 + k} micrographs")
            rows.append({"order": name, "k": k, "added": "; ".join(added), **score(model, test, device)})
            print(rows[-1], flush=True)
    table = pd.DataFrame(rows)
    table.attrs["ranking"] = ranking.assign(source=ranked).to_dict(orient="records")
    table.attrs["start"], table.attrs["held_out"] = start, held
    return table


def figure(edits: pd.DataFrame, curve_table: pd.DataFrame | None, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    n = 2 if curve_table is not None else 1
    fig, axes = plt.subplots(1, n, figsize=(6.2 * n, 3.8), squeeze=False)
    ax = axes[0, 0]
    groups = edits.assign(data=np.where(edits.fold.astype(str) == "sim", "simulated", "real FeCrAl"))
    x = np.arange(len(groups))
    bottom = np.zeros(len(groups))
    for action, colour in (("accept", "tab:green"), ("relabel", "tab:orange"), ("reject", "tab:red"), ("draw", "tab:blue")):
        ax.bar(x - 0.2, groups[action], 0.38, bottom=bottom, color=colour, label=action)
        bottom += groups[action].to_numpy()
    ax.bar(x + 0.2, groups.edits_from_nothing, 0.38, color="0.6", label="from nothing (draw)")
    ax.set_xticks(x)
    ax.set_xticklabels([f"{d[:4]} {str(f)[:4]}\n{str(i)[:14]}" for d, f, i in zip(groups.data, groups.fold, groups.image)],
                       rotation=60, ha="right", fontsize=6)
    ax.set(ylabel="edits to reach the labels", title="edits per micrograph: proposals (left) vs nothing (right)")
    ax.legend(frameon=False, fontsize=7, ncol=2)
    if curve_table is not None:
        ax = axes[0, 1]
        start = curve_table[curve_table.order == "start"].harmonic.iloc[0]
        for name, g in curve_table[curve_table.order != "start"].groupby("order", sort=False):
            ax.plot([0, *g.k], [start, *g.harmonic], "o-" if name == "ranked" else "s--", label=name,
                    color="tab:purple" if name == "ranked" else None, alpha=1 if name == "ranked" else 0.6)
        ax.set(xlabel="micrographs added to the 1 labelled", ylabel="headline on held-out crops",
               title="ranked by the detector's uncertainty vs random", xticks=[0, 1, 2, 4])
        ax.legend(frameon=False, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=130)


def summarise(edits: pd.DataFrame) -> pd.DataFrame:
    """Edits per data source, and what they cost at the keyboard and mouse in the widget."""
    summary = (edits.assign(data=np.where(edits.fold.astype(str) == "sim", "simulated", "real FeCrAl"))
               .groupby("data")[["defects", "proposals", "accept", "relabel", "reject", "draw", "edits_assisted",
                                 "edits_from_nothing"]].sum())
    summary["edits_saved"] = 1 - summary.edits_assisted / summary.edits_from_nothing
    summary["drawings_saved"] = 1 - summary.draw / summary.defects
    summary["inputs_assisted"] = inputs(summary)  # keys and mouse actions (tem_lib.label.review.INPUTS)
    summary["inputs_from_nothing"] = INPUTS["draw"] * summary.defects
    summary["inputs_saved"] = 1 - summary.inputs_assisted / summary.inputs_from_nothing
    return summary


def report(edits: pd.DataFrame, curve_table: pd.DataFrame | None, seconds: float, device: str,
           extra: dict | None = None) -> None:
    summary = summarise(edits)
    figure(edits, curve_table, RESULTS / "label_assist.png")
    payload = {"edits": edits.to_dict(orient="records"), "summary": summary.reset_index().to_dict(orient="records"),
               "seconds": seconds, **(extra or {})}
    notes = f"""
## Edits to reach the labels, per micrograph

{markdown_table(edits)}
"""
    if curve_table is not None:
        payload.update(curve=curve_table.to_dict(orient="records"), ranking=curve_table.attrs["ranking"],
                       start=curve_table.attrs["start"], held_out=curve_table.attrs["held_out"])
        notes += f"""
## Ranked versus random (fold 0 held out: {', '.join(curve_table.attrs['held_out'])}; start:
{curve_table.attrs['start'][0]})

{markdown_table(curve_table)}

Ranking of the 5 unlabelled micrographs by the start detector (uncertainty in bits):

{markdown_table(pd.DataFrame(curve_table.attrs['ranking'])[['source', 'uncertainty', 'n_proposals']])}
"""
    notes += f"\nWall time {seconds:.0f} s on {device}; figure `label_assist.png`.\n"
    if extra and "measured_at" in extra:
        notes += (f"\nTables rebuilt with `--from-results` from the measurements taken at commit "
                  f"{extra['measured_at']['git_revision']}.\n")
    write_results("label_assist", payload, summary.reset_index(), notes)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--skip-curve", action="store_true")
    ap.add_argument("--skip-sim", action="store_true")
    ap.add_argument("--from-results", action="store_true",
                    help="rebuild the summary, tables and figure from results/label_assist.json (no training)")
    args = ap.parse_args()
    if args.from_results:
        old = read_json(RESULTS / "label_assist.json")
        curve_table = None
        if "curve" in old:
            curve_table = pd.DataFrame(old["curve"]).fillna({"added": ""})
            curve_table.attrs.update(ranking=old["ranking"], start=old["start"], held_out=old["held_out"])
        measured = old.get("measured_at") or {k: old[k] for k in ("git_revision", "machine", "versions") if k in old}
        report(pd.DataFrame(old["edits"]), curve_table, old["seconds"], args.device, {"measured_at": measured})
        return
    t0 = time.perf_counter()
    micrographs, crops, folds = real_crops_and_folds(0)
    edits = edits_real(micrographs, folds)
    if not args.skip_sim:
        edits = pd.concat([edits, edits_sim(args.device)], ignore_index=True)
    curve_table = None if args.skip_curve else curve(micrographs, crops, folds, args.device)
    report(edits, curve_table, round(time.perf_counter() - t0, 1), args.device)


if __name__ == "__main__":
    main()
