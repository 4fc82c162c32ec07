"""Sampling speed of the mask priors: 10,000 label maps of 256 x 256 (target: < 60 s).

Both priors are fitted on 24 simulated 1024-pixel micrographs (the default preset), then
each draws 10,000 maps with a fixed seed. The timed part is ``prior.sample`` alone (counts,
shapes, placement with overlap rejection, rasterised instance masks). One process.

    python benchmarks/prior_speed.py [--n 10000]
"""
import argparse
import time

import numpy as np
import pandas as pd

from tem_lib import priors, simulate

from _common import write_results


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10000)
    ap.add_argument("--size", type=int, default=256)
    args = ap.parse_args()
    data = simulate.simulate(simulate.preset("fecral"), 24, seed=0, workers=2)
    rows = []
    for kind in ("bootstrap", "parametric"):
        t0 = time.perf_counter()
        prior = priors.fit_prior(data, kind, data.classes)
        fit_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        maps = prior.sample(args.n, args.size, generator=0)
        dt = time.perf_counter() - t0
        n_inst = np.array([len(m.instances) for m in maps])
        rows.append({"prior": kind, "maps": args.n, "size": args.size, "fit_s": round(fit_s, 2),
                     "sample_s": round(dt, 2), "maps_per_s": round(args.n / dt, 1),
                     "defects_per_map": round(float(n_inst.mean()), 2),
                     "target_s": 60, "pass": bool(dt < 60)})
        print(rows[-1])
    notes = (f"{args.n} label maps of {args.size}x{args.size} per prior, one process; priors "
             "fitted on 24 simulated 1024-px micrographs. Target: < 60 s for 10,000 maps.")
    write_results("prior_speed", {"rows": rows}, pd.DataFrame(rows), notes)


if __name__ == "__main__":
    main()
