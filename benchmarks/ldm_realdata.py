"""The LDM on the real FeCrAl micrographs: trained on crops of 6, sampled for masks of 2.

The 8 micrographs of ``../shared/data/fecral-3class`` are split by micrograph (seeded): the
256-px crops of 6 train the quick-profile LDM; images are generated for the masks of the
other 2 micrographs' crops and shown next to the real crops (``ldm_realdata.png``). The
Frechet distance (texture features) to the held-out crops is reported with its floor (real
training crops vs held-out crops). Skips cleanly when the real data is absent.

    python benchmarks/ldm_realdata.py [--work runs/bench/ldm_realdata]
"""
import argparse
import dataclasses

import matplotlib
import numpy as np
import pandas as pd

from _common import REAL_DATA, RESULTS, ROOT, real_crops_and_folds, write_results
from tem_lib import viz
from tem_lib.ldm import train_ldm
from tem_lib.ldm.synthesis import generate
from tem_lib.metrics import frechet_distance, texture_features

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", default=str(ROOT / "runs" / "bench" / "ldm_realdata"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n-show", type=int, default=6)
    args = ap.parse_args()
    micrographs, crops, folds = real_crops_and_folds(args.seed)
    test_src = folds[0]
    train = [c for c in crops if c.source_id not in test_src]
    test = [c for c in crops if c.source_id in test_src]
    classes = micrographs.classes
    pipe, summary = train_ldm(train, {}, args.work, device="cpu", classes=classes)
    rows = []
    test_feats = texture_features([s.image for s in test])
    rows.append({"images": "real training crops (floor)", "n": len(train),
                 "frechet": frechet_distance(texture_features([s.image for s in train]), test_feats,
                                             reference=test_feats)})
    idx = [int(i) for i in np.random.default_rng(args.seed).permutation(len(test))[:args.n_show]]
    shown = [test[i] for i in idx]
    results = {}
    for label, sampler, steps, g in [("DPM-Solver++ 25", "dpm++", 25, 1.0),
                                     ("DPM-Solver++ 25, guidance 2", "dpm++", 25, 2.0)]:
        imgs = generate(pipe, test, sampler, steps, guidance_scale=g, seed=args.seed, progress=False)
        results[label] = imgs
        rows.append({"images": f"generated, {label}", "n": len(imgs),
                     "frechet": frechet_distance(texture_features(imgs), test_feats, reference=test_feats)})
    table = pd.DataFrame(rows)
    fig, axes = plt.subplots(1 + len(results), len(shown), figsize=(2.3 * len(shown), 2.4 * (1 + len(results))),
                             squeeze=False)
    for j, s in enumerate(shown):
        axes[0, j].imshow(viz.overlay(s, classes, alpha=0.0))
        for i, (label, imgs) in enumerate(results.items(), start=1):
            axes[i, j].imshow(viz.overlay(dataclasses.replace(s, image=imgs[idx[j]]), classes, alpha=0.0))
    for ax, t in zip(axes[:, 0], ["real (held out)", *results]):
        ax.set_ylabel(t, fontsize=8)
    for ax in axes.ravel():
        ax.set(xticks=[], yticks=[])
    viz.class_legend(fig, shown, classes)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    fig.savefig(RESULTS / "ldm_realdata.png", dpi=120)
    notes = f"""
Real FeCrAl micrographs ({REAL_DATA.name}), split by micrograph: {len(train)} crops of
{len(micrographs) - 2} micrographs train the quick-profile LDM (autoencoder {summary['autoencoder_seconds']:.0f} s,
denoiser {summary['denoiser_seconds']:.0f} s on this CPU); images are generated for the masks of the
{len(test)} crops of micrographs {test_src}. Grid: `ldm_realdata.png` (outlines = the conditioning
masks). Frechet distance in the fixed texture space (version 1) to the held-out crops.
"""
    write_results("ldm_realdata", {"table": table.to_dict(orient="records"), "test_sources": test_src,
                                   "n_train_crops": len(train), "n_test_crops": len(test),
                                   "training": {k: v for k, v in summary.items() if "history" not in k}},
                  table.round(3), notes)


if __name__ == "__main__":
    main()
