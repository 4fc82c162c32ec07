"""Mask priors on the real FeCrAl labels: fitted on 6 micrographs, tested on the other 2.

The 8 micrographs of ``../shared/data/fecral-3class`` are split into 4 folds of 2 test
micrographs (seeded). For each fold both priors are fitted on the 256-px crops of the 6
training micrographs, each draws ``--maps`` maps, and ``priors.ks_table`` compares them with
the test micrographs' crops. "real (train)" compares the training crops themselves with the
test crops: the floor for a prior fitted on them. Pixel sizes are unknown, so lengths are
in px. Skips cleanly when the real data is absent.

    python benchmarks/prior_realdata.py [--maps 2000]
"""
import argparse
import warnings

import numpy as np
import pandas as pd

from tem_lib import priors

from _common import real_crops_and_folds, write_results


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--maps", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    micrographs, crops, folds = real_crops_and_folds(args.seed)
    classes = micrographs.classes
    rows, notes = [], []
    for f, test_src in enumerate(folds):
        train = [c for c in crops if c.source_id not in test_src]
        test = [c for c in crops if c.source_id in test_src]
        sets = {}
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", priors.PriorWarning)
            fitted = {"bootstrap": priors.fit_prior(train, "bootstrap", classes),
                      "bootstrap (<100> x2)": priors.fit_prior(train, "bootstrap", classes,
                                                               class_weights={"loop_100": 2.0}),
                      "parametric": priors.fit_prior(train, "parametric", classes)}
        notes += [f"fold {f}: {w.message}" for w in caught]
        for name, prior in fitted.items():
            sets[name] = prior.sample(args.maps, 256, generator=np.random.default_rng([args.seed, f]))
        sets["real (train)"] = train
        t = priors.ks_table(test, sets, classes).assign(fold=f, test=" + ".join(test_src),
                                                n_train_crops=len(train), n_test_crops=len(test))
        rows.append(t)
        d = fitted["parametric"].describe()
        print(f"fold {f}: test {test_src}: {len(train)} train / {len(test)} test crops")
        print(d.round(3).to_string())
    ks = pd.concat(rows, ignore_index=True)
    mean = (ks.groupby(["class", "quantity", "set"])["ks"].mean().unstack("set").reset_index())
    order_cols = ["class", "quantity", "bootstrap", "bootstrap (<100> x2)", "parametric", "real (train)"]
    mean = mean[order_cols]
    overall = ks.groupby("set")["ks"].mean()
    total = pd.DataFrame([{"class": "mean", "quantity": "all", **overall.to_dict()}])[order_cols]
    table = pd.concat([mean, total], ignore_index=True).round(3)
    text = ("KS statistic (0 = identical) between sampled maps and the crops of the 2 held-out "
            f"micrographs, mean over {len(folds)} folds; {args.maps} maps per prior and fold. "
            "Lengths in px (pixel size unknown). 'real (train)': the training crops themselves, "
            "the floor for priors fitted on them.\n\nFit warnings:\n"
            + ("\n".join(f"- {n}" for n in notes) or "none"))
    write_results("prior_realdata", {"ks": ks.to_dict("records"), "mean": table.to_dict("records"),
                                     "warnings": notes, "folds": folds}, table, text)


if __name__ == "__main__":
    main()
