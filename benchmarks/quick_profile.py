"""The quick profile end to end from a clean work folder: wall time per notebook, total wall
time and peak memory (target on the 2-core machine: under 60 minutes with the one-time foundation
pretraining, peak RSS under 8 GB).

Runs ``python -m tem_lib.running.runner --profile quick --force`` in-process with a fresh work folder
and a fresh simulated dataset (so notebook 01's simulation counts too) under
``runs/bench-quick/``; the figures go to ``figures/`` (the committed quick-profile figures),
unless ``--figures-dir`` says otherwise. The foundation detector is pretrained again in an empty
cache (``runs/bench-quick/cache``, ``$TEM_LIB_CACHE``), so the total is that of a user's first run;
``--reuse-foundation`` measures a later run instead (the machine's cache, as ``./run_all.sh`` uses it).
Memory is the resident set size of this process and all its children (the notebook kernels and
their workers) summed, sampled every 0.5 s by psutil. The load average before the run tells
whether another job shared the machine (the one after is mostly the run's own).

    python benchmarks/quick_profile.py [--figures-dir figures] [--keep] [--reuse-foundation]
"""
import argparse
import os
import shutil
import threading
import time
from pathlib import Path

import pandas as pd
import psutil

from tem_lib.layout import DETECTOR_META
from tem_lib.running.runner import run_pipeline
from tem_lib.utils import read_json

from _common import ROOT, write_results


class PeakRSS(threading.Thread):
    """Peak of the summed RSS of this process and its descendants, sampled every ``dt`` s."""

    def __init__(self, dt: float = 0.5):
        super().__init__(daemon=True)
        self.dt, self.peak, self.stop = dt, 0, threading.Event()
        self.per_notebook: dict[str, int] = {}
        self.current = None

    def run(self):
        me = psutil.Process()
        while not self.stop.is_set():
            total = 0
            for p in [me, *me.children(recursive=True)]:
                try:
                    total += p.memory_info().rss
                except psutil.Error:
                    pass
            self.peak = max(self.peak, total)
            if self.current:
                self.per_notebook[self.current] = max(self.per_notebook.get(self.current, 0), total)
            time.sleep(self.dt)


def foundation_seconds(cache) -> list[float]:
    """Training seconds of every foundation detector pretrained in ``cache`` (from its detector.json)."""
    return [round(float(read_json(meta).get("seconds", 0.0)), 1)
            for meta in sorted(Path(cache).glob(f"foundation/*/{DETECTOR_META}"))]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="quick")
    ap.add_argument("--figures-dir", default="figures")
    ap.add_argument("--keep", action="store_true", help="keep runs/bench-<profile>/ afterwards")
    ap.add_argument("--reuse-foundation", action="store_true",
                    help="use the machine's foundation cache instead of pretraining again in an empty one")
    ap.add_argument("--target-min", type=float, default=60.0)
    args = ap.parse_args()
    base = ROOT / "runs" / f"bench-{args.profile}"
    shutil.rmtree(base, ignore_errors=True)
    if not args.reuse_foundation:
        os.environ["TEM_LIB_CACHE"] = str(base / "cache")  # the notebook kernels inherit it
    overrides = {"work_dir": str(base / "work"), "data_dir": str(base / "data"),
                 "figures_dir": str(ROOT / args.figures_dir)}
    load_before = os.getloadavg()
    mon = PeakRSS()
    mon.start()
    rows = []

    def log(*a, **k):
        msg = " ".join(str(x) for x in a)
        print(msg, **k, flush=True)
        if " ... " in msg:  # "[k/n] NAME.ipynb (profile) ... ": a notebook starts
            mon.current = msg.split("] ", 1)[1].split(" ", 1)[0]

    t0 = time.perf_counter()
    records = run_pipeline(args.profile, force=True, overrides=overrides, runs_dir=base / "notebooks", root=ROOT,
                           log=log)
    total = time.perf_counter() - t0
    mon.stop.set()
    mon.join()
    load_after = os.getloadavg()
    for r in records:
        rows.append({"notebook": r["notebook"], "seconds": round(r["seconds"], 1),
                     "minutes": round(r["seconds"] / 60, 2),
                     "peak_rss_gb": round(mon.per_notebook.get(r["notebook"], 0) / 1e9, 2)})
    rows.append({"notebook": "total", "seconds": round(total, 1), "minutes": round(total / 60, 2),
                 "peak_rss_gb": round(mon.peak / 1e9, 2)})
    table = pd.DataFrame(rows)
    pretrained = foundation_seconds(base / "cache") if not args.reuse_foundation else []
    ok_time, ok_mem = total < args.target_min * 60, mon.peak < 8e9
    contended = load_before[0] > 0.5
    notes = (f"Profile `{args.profile}`, all notebooks from a clean work folder and a fresh simulated dataset, "
             f"{os.cpu_count()} CPU cores, "
             + (f"the foundation detector pretrained in an empty cache ({' + '.join(f'{x / 60:.1f}' for x in pretrained)}"
                " min of training, inside the notebook that first asked for it). " if pretrained else
                "the foundation detector read from the machine's cache. ")
             + f"Total **{total / 60:.1f} min** (target < {args.target_min:.0f} min: "
             f"{'met' if ok_time else 'NOT met'}); peak RSS of the process tree **{mon.peak / 1e9:.2f} GB** "
             f"(target < 8 GB: {'met' if ok_mem else 'NOT met'}). 1-minute load average before / after: "
             f"{load_before[0]:.2f} / {load_after[0]:.2f}"
             f" ({'another job was running when it started' if contended else 'nothing else running when it started'}).")
    if not args.keep:
        shutil.rmtree(base / "work" / "ldm", ignore_errors=True)  # the big part; rows and figures stay
    write_results(f"{args.profile}_profile", {"profile": args.profile, "total_seconds": round(total, 1),
                                              "foundation_training_seconds": pretrained,
                                              "peak_rss_bytes": mon.peak, "load_before": load_before,
                                              "load_after": load_after, "rows": rows,
                                              "target_met": {"time": ok_time, "memory": ok_mem}}, table, notes)


if __name__ == "__main__":
    main()
