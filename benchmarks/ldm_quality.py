"""Generated images on the simulated data: mask fidelity, realism and sampler cost.

Uses the quick profile's workspace (run ``./run_all.sh`` first) and the generator its sweep
trained for the cell, training it (resumably) when it is not there. For the first
``--n-images`` test crops of the split, images are generated for their (held-out) masks under
several sampler settings, and measured three ways:

* mask fidelity: a small U-Net segmenter (``tem_lib.segmentation``) trained on the same
  real training crops labels each generated image; per class, the fraction of mask
  instances found (>= 50 % of pixels predicted as a defect) and found with the right class,
  and the pixel IoU. References: the real test crops with their own masks (ceiling), and
  generated images scored against another crop's mask (what ignoring the mask scores).
* realism: Frechet distance in the fixed texture feature space (``tem_lib.metrics.frechet``,
  version 1) to the real test crops; the floor is real training crops vs the same test crops.
* cost: denoiser evaluations per image and wall time (images/s) on this machine.

    python benchmarks/ldm_quality.py [--work runs/quick/work] [--n-images 64]
"""
import argparse
import time

import numpy as np
import pandas as pd
import torch

from tem_lib import workspace
from tem_lib.ldm import reconstruction_report
from tem_lib.ldm.synthesis import generate
from tem_lib.metrics import fidelity_table, frechet_by_group, texture_features
from tem_lib.running.profiles import load_profile, sweep_section
from tem_lib.segmentation import predict, train_segmenter
from tem_lib.study import Sweep

from _common import ROOT, markdown_table, write_results

SETTINGS = [  # (label, sampler, steps, guidance, eta)
    ("DDIM-200, eta 1 (paper)", "ddim", 200, 1.0, 1.0),
    ("DPM-Solver++ 25", "dpm++", 25, 1.0, 1.0),
    ("DPM-Solver++ 25, guidance 2", "dpm++", 25, 2.0, 1.0),
    ("DPM-Solver++ 25, guidance 4", "dpm++", 25, 4.0, 1.0),
]


def score(name, images, maps, seg, test_feats, classes, extra=None, groups=None):
    fid = fidelity_table(predict(seg, images), maps, classes)
    by_group = frechet_by_group(texture_features(images), test_feats, reference=test_feats)
    if groups is not None:
        groups.append({"images": name, **by_group})
    row = {"images": name, **(extra or {}), "frechet": by_group["all"]}
    for r in fid.itertuples():
        short = {1: "dot", 2: "111", 3: "100"}.get(r.class_id, classes[r.class_id].name)
        row[f"found_{short}"] = r.found
        row[f"class_ok_{short}"] = r.found_class
        row[f"iou_{short}"] = r.pixel_iou
    return row


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="quick", help="profile whose sweep trained the generator")
    ap.add_argument("--work", default="runs/quick/work")
    ap.add_argument("--split", type=int, default=0)
    ap.add_argument("--n", default=None, help="N of the trained model (default: largest)")
    ap.add_argument("--n-images", type=int, default=64)
    ap.add_argument("--seg-steps", type=int, default=800)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    ws = workspace.load(args.work)
    classes = ws.classes
    n = ws.default_n(int(args.n) if args.n else None)
    train, test = ws.train(args.split, n), ws.test(args.split, args.n_images)
    sweep = Sweep(ws, sweep_section(load_profile(args.profile, ROOT)))
    pipe = sweep.model(args.split, n, "ldm")[0]  # the sweep's generator (trained here when missing)
    t0 = time.perf_counter()
    seg = train_segmenter(train, classes.ids, steps=args.seg_steps, seed=args.seed)
    seg_seconds = time.perf_counter() - t0
    test_images = np.stack([s.image for s in test])
    test_feats = texture_features(test_images)
    groups = []
    rows = [score("real test crops (ceiling)", test_images, test, seg, test_feats, classes)]
    floor = frechet_by_group(texture_features([s.image for s in train[:len(test)]]), test_feats, test_feats)
    groups.append({"images": "real training crops (floor)", **floor})
    rows[0]["frechet"] = floor["all"]
    rows[0]["images"] = "real: train crops' Frechet / test crops' fidelity (floor / ceiling)"
    _, _, recon = reconstruction_report(pipe.vae, test, classes)
    rows.append(score("autoencoder reconstructions of the test crops", recon, test, seg, test_feats, classes,
                      groups=groups))
    for label, sampler, steps, g, eta in SETTINGS:
        t0 = time.perf_counter()
        imgs = generate(pipe, test, sampler, steps, guidance_scale=g, eta=eta, seed=args.seed,
                        batch_size=8, progress=False)
        sec = time.perf_counter() - t0
        nfe = steps * (2 if g != 1 else 1)
        rows.append(score(label, imgs, test, seg, test_feats, classes,
                          {"denoiser_evals": nfe, "images_per_s": len(imgs) / sec}, groups))
        if sampler == "dpm++" and g == 1.0:
            shuffled = test[1:] + test[:1]
            rows.append(score("  same images, another crop's mask (ignore-the-mask level)", imgs,
                              shuffled, seg, test_feats, classes))
    table = pd.DataFrame(rows)
    ddim, fast = table.iloc[2], table.iloc[3]
    groups = pd.DataFrame(groups)
    notes = f"""
Simulated data, quick profile, split {args.split}, N = {n}: images generated for the masks of
{len(test)} held-out test crops. Segmenter: `tem_lib.segmentation.SmallUNet`, {args.seg_steps} steps on
the same {len(train)} real training crops ({seg_seconds:.0f} s). `found_*`: fraction of mask instances
with >= 50 % of their pixels segmented as a defect; `class_ok_*`: as their own class; `iou_*`: pixel
IoU of the class. `frechet`: Frechet distance to the real test crops in the fixed 64-d texture
feature space (`tem_lib.metrics.frechet`, version 1, features standardised by the test crops);
its floor is the first row (real training crops vs the test crops, same count).

Sampler cost: DPM-Solver++ 25 uses {ddim['denoiser_evals'] / fast['denoiser_evals']:.0f}x fewer denoiser
evaluations than DDIM-200 and runs {fast['images_per_s'] / ddim['images_per_s']:.1f}x faster in wall time
here; Frechet {fast['frechet']:.2f} vs {ddim['frechet']:.2f}.

Frechet distance by feature group (same standardisation; which aspect of the images differs):

""" + markdown_table(groups.round(1)) + "\n"
    write_results("ldm_quality", {"table": table.to_dict(orient="records"), "split": args.split,
                                  "n_train": int(n), "n_images": len(test), "seg_steps": args.seg_steps,
                                  "segmenter_seconds": seg_seconds, "frechet_by_group": groups.to_dict(orient="records")},
                  table.round(3), notes)


if __name__ == "__main__":
    main()
