"""How realistic is the default simulated dataset? Compared with ../shared/data/fecral-3class.

1. Statistics, measured the same way on both (tem_lib.stats): per-class major-axis
   percentiles (5/50/95, px) and axis-ratio medians, defects per megapixel, intensity
   percentiles (8-bit), noise sigma and neighbour-pixel correlation. Each statistic is
   computed per micrograph; the real range is [min, max] over the 8 real micrographs, the
   simulated value is the median over the simulated ones. Target: inside the real range.
2. Classifier two-sample test: a small CNN learns to tell real from simulated 256-pixel
   crops; its balanced accuracy on held-out micrographs (4 folds, grouped by micrograph)
   is reported. 0.5 = indistinguishable; target for now: below 0.9.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
import torch
from torch import nn

from tem_lib.data import load_dataset, tile_dataset
from tem_lib.simulate import preset, simulate
from tem_lib.stats import image_table, instance_table
from tem_lib.utils import seed_everything

from _common import require_real_data, write_results


def per_image_stats(samples) -> pd.DataFrame:
    img = image_table(samples, samples.classes).set_index("name")
    inst = instance_table(samples, samples.classes)
    out = img[["defects_per_mpx", "intensity_p1", "intensity_p50", "intensity_p99",
               "noise_sigma", "noise_corr"]].copy()
    for cid in (1, 2, 3):  # the paper's three classes (both sets carry the fecral class set)
        name = samples.classes[cid].name
        g = inst[inst.class_id == cid].groupby("name")
        for q in (5, 50, 95):
            out[f"{name}_major_p{q}"] = g.major.quantile(q / 100)
        out[f"{name}_ratio_p50"] = g.ratio.median()
    return out


def compare(real: pd.DataFrame, sim: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for col in real.columns:
        lo, hi = real[col].min(), real[col].max()
        v = sim[col].median()
        rows.append({"statistic": col, "real_min": lo, "real_median": real[col].median(),
                     "real_max": hi, "sim_median": v, "sim_min": sim[col].min(),
                     "sim_max": sim[col].max(), "inside_real_range": bool(lo <= v <= hi)})
    return pd.DataFrame(rows)


class SmallCNN(nn.Module):
    def __init__(self, width: int = 16):
        super().__init__()
        layers, c = [], 1
        for k in range(5):
            layers += [nn.Conv2d(c, width * 2 ** min(k, 2), 3, stride=2, padding=1),
                       nn.BatchNorm2d(width * 2 ** min(k, 2)), nn.ReLU()]
            c = width * 2 ** min(k, 2)
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(c, 1)

    def forward(self, x):
        return self.head(self.features(x).mean(dim=(2, 3))).squeeze(1)


def two_sample_test(real_crops, sim_crops, folds: int = 4, steps: int = 300, seed: int = 0):
    """Balanced held-out accuracy of a CNN telling real (1) from simulated (0) crops."""
    x = torch.from_numpy(np.stack([c.image for c in real_crops + sim_crops]))[:, None]
    y = torch.tensor([1.0] * len(real_crops) + [0.0] * len(sim_crops))
    groups = [c.source_id for c in real_crops + sim_crops]
    real_src = sorted({c.source_id for c in real_crops})
    sim_src = sorted({c.source_id for c in sim_crops})
    rng = np.random.default_rng(seed)
    real_src = list(rng.permutation(real_src))
    sim_src = list(rng.permutation(sim_src))
    accs = []
    for f in range(folds):
        held = set(real_src[f::folds]) | set(sim_src[f::folds])
        test = torch.tensor([g in held for g in groups])
        tr_idx, te_idx = torch.nonzero(~test)[:, 0], torch.nonzero(test)[:, 0]
        seed_everything(seed + f)
        model = SmallCNN()
        opt = torch.optim.AdamW(model.parameters(), 2e-3, weight_decay=1e-4)
        # balance the two classes in every batch
        w = torch.where(y[tr_idx] == 1, 1 / (y[tr_idx] == 1).sum(), 1 / (y[tr_idx] == 0).sum())
        g = torch.Generator().manual_seed(seed + f)
        model.train()
        for _ in range(steps):
            b = tr_idx[torch.multinomial(w, 32, replacement=True, generator=g)]
            xb = torch.rot90(x[b], int(torch.randint(0, 4, (1,), generator=g)), dims=(2, 3))
            loss = nn.functional.binary_cross_entropy_with_logits(model(xb), y[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
        model.eval()
        with torch.inference_mode():
            pred = torch.cat([model(x[te_idx[i:i + 64]]) for i in range(0, len(te_idx), 64)]) > 0
        yt = y[te_idx].bool()
        bal = 0.5 * ((pred & yt).sum() / yt.sum() + (~pred & ~yt).sum() / (~yt).sum())
        accs.append(float(bal))
        print(f"fold {f}: held-out balanced accuracy {accs[-1]:.3f} "
              f"({int(yt.sum())} real / {int((~yt).sum())} simulated crops)")
    return accs


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n-sim", type=int, default=16, help="simulated 1024-px micrographs")
    ap.add_argument("--steps", type=int, default=300, help="CNN training steps per fold")
    ap.add_argument("--folds", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    real = load_dataset(require_real_data(), classes="fecral")
    sim = simulate(preset(), args.n_sim, seed=args.seed)
    table = compare(per_image_stats(real), per_image_stats(sim))
    t0 = time.perf_counter()
    real_crops = tile_dataset(real, 256)
    sim_crops = tile_dataset(sim, 256)
    accs = two_sample_test(real_crops, sim_crops, args.folds, args.steps, args.seed)
    acc = float(np.mean(accs))
    n_in = int(table.inside_real_range.sum())
    notes = (f"Default simulator preset (`fecral`, {args.n_sim} micrographs of 1024 px, seed "
             f"{args.seed}) against the 8 real FeCrAl micrographs. {n_in} of {len(table)} "
             f"statistics inside the real range. Classifier two-sample test: held-out balanced "
             f"accuracy {acc:.3f} (folds: {', '.join(f'{a:.3f}' for a in accs)}; 0.5 = "
             f"indistinguishable, target < 0.9); {len(real_crops)} real and {len(sim_crops)} "
             f"simulated 256-px crops, {args.steps} steps per fold, "
             f"{time.perf_counter() - t0:.0f} s.")
    write_results("realism", {"statistics": table.to_dict(orient="records"),
                              "classifier_balanced_accuracy": acc, "fold_accuracies": accs,
                              "n_inside": n_in, "n_statistics": len(table),
                              "args": vars(args)}, table.round(3), notes)


if __name__ == "__main__":
    main()
