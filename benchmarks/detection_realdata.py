"""Mask R-CNN on the real FeCrAl micrographs: trained on crops of 6, tested on the other 2.

The 8 micrographs of ``../shared/data/fecral-3class`` are split by micrograph (the seeded
folds of ``_common.real_crops_and_folds``; ``--fold`` picks the test pair). The quick-profile
detector (ResNet-18 FPN from scratch; ``--epochs``/``--iters`` set its length) trains on the
256-px crops of the 6 training micrographs and is scored on every crop of the 2 held-out ones
with the paper's metrics at IoU 0.1/0.3/0.5/0.7, COCO AP and per-class size/density errors
(pixel units: the pixel size of these images is not recorded). The labels are incomplete
(ambiguous and overlapping features were skipped, dislocation lines are deliberately
unlabelled), so precision here is pessimistic. Skips cleanly when the data is absent.

    python benchmarks/detection_realdata.py [--fold 0] [--epochs 10] [--iters 50]
"""
import argparse

import matplotlib
import numpy as np

from tem_lib import viz
from tem_lib.detection.experiment import run_condition

from _common import REAL_DATA, RESULTS, ROOT, markdown_table, real_crops_and_folds, write_results

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", default=str(ROOT / "runs" / "bench" / "detection_realdata"))
    ap.add_argument("--fold", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--iters", type=int, default=50)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    micrographs, crops, folds = real_crops_and_folds(args.seed)
    test_src = folds[args.fold]
    train = [c for c in crops if c.source_id not in test_src]
    test = [c for c in crops if c.source_id in test_src]
    training = {"epochs": args.epochs, "iters_per_epoch": args.iters, "seed": args.seed}
    classes = micrographs.classes
    res = run_condition("EXP (real)", train, test, f"{args.work}/fold{args.fold}", classes, {}, training, device="cpu")
    table = res.report.table
    cols = ["iou", "tp", "fp", "fn", "det_precision", "det_recall", "det_f1", "cls_f1", "harmonic",
            *[f"f1_{c.name}" for c in classes]]
    sizes = res.sizes[["class", "n_true", "n_pred", "density_rel_error", "size_true", "size_pred", "size_rel_error"]]
    cm = res.report.confusion[0.5]
    rng = np.random.default_rng(args.seed)
    busy = sorted(range(len(test)), key=lambda i: -len(test[i].instances))[:12]
    shown = sorted(rng.choice(busy, size=min(4, len(busy)), replace=False))
    fig, axes = plt.subplots(1, len(shown), figsize=(3.2 * len(shown), 3.4), squeeze=False)
    for ax, i in zip(axes[0], shown):
        viz.draw_detections(ax, test[i], res.predictions[i], classes, title=test[i].name[-22:])
    viz.class_legend(fig, [test[i] for i in shown], classes)
    fig.savefig(RESULTS / "detection_realdata.png", dpi=120)
    notes = f"""
Real FeCrAl micrographs ({REAL_DATA.name}), split by micrograph (fold {args.fold}): {len(train)} crops of
{len(micrographs) - len(test_src)} micrographs train the quick-profile detector from scratch
({args.epochs} x {args.iters} iterations of batch 4, {res.training['seconds']:.0f} s on this CPU; weights:
{res.training['pretrained']}); scored on the {len(test)} crops of {test_src}
({sum(len(s.instances) for s in test)} labelled defects). The labels are incomplete, so precision is
pessimistic. Predictions: `detection_realdata.png` (outlines: labels; dashed boxes: predictions).

COCO AP (pycocotools, class-aware): {', '.join(f'{k} {v:.3f}' for k, v in res.coco.items())}

Confusion of the found pairs at IoU 0.5 (rows true, columns predicted):

{markdown_table(cm.reset_index())}

Per-class size (major axis, px) and density errors, all test crops:

{markdown_table(sizes.round(3))}

The paper's metrics:
"""
    write_results("detection_realdata", {"table": table.to_dict(orient="records"), "coco": res.coco,
                                         "sizes": res.sizes.to_dict(orient="records"),
                                         "confusion_iou_0.5": cm.to_dict(), "test_sources": test_src,
                                         "n_train_crops": len(train), "n_test_crops": len(test),
                                         "training": res.training},
                  table[cols].round(3), notes)


if __name__ == "__main__":
    main()
