"""How fast the default dataset is made: 100 simulated 1024x1024 micrographs with masks.

Target (issue 2): under 60 s on a 2-core machine. Measures simulation alone and
simulation plus writing the dataset folder (PNG images, gray-level masks, COCO json).
"""
from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import pandas as pd

from tem_lib.simulate import generate_dataset, preset, simulate

from _common import write_results


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--workers", type=int, default=os.cpu_count())
    args = ap.parse_args()
    cfg = preset(height=args.size, width=args.size)
    rows = []
    t = time.perf_counter()
    samples = simulate(cfg, args.n, seed=0, workers=args.workers)
    rows.append({"step": "simulate (images + instance masks, in memory)",
                 "seconds": time.perf_counter() - t})
    n_inst = sum(len(s.instances) for s in samples)
    del samples
    tmp = Path(tempfile.mkdtemp())
    try:
        t = time.perf_counter()
        generate_dataset(tmp / "ds", cfg, args.n, seed=0, workers=args.workers)
        rows.append({"step": "simulate + write dataset (PNG, gray masks, COCO RLE)",
                     "seconds": time.perf_counter() - t})
    finally:
        shutil.rmtree(tmp)
    table = pd.DataFrame(rows)
    table["micrographs_per_s"] = args.n / table["seconds"]
    write_results("simulate_speed", {"n_images": args.n, "size": args.size,
                                     "workers": args.workers, "instances": n_inst,
                                     "target_seconds": 60, "rows": rows}, table,
                  notes=f"{args.n} simulated {args.size}x{args.size} micrographs "
                        f"({n_inst} labelled defects), {args.workers} worker processes. "
                        "Target: under 60 s on a 2-core machine.")


if __name__ == "__main__":
    main()
