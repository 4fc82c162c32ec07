"""The study's command line (``python -m tem_lib.study``) and what one cluster job runs
(:func:`run_one`)."""
from __future__ import annotations

import argparse
import json
import sys

from .job import run_one  # noqa: F401  (what one job runs; kept importable here)
from .locks import RunLocked
from .sweep import Sweep

_DESCRIPTION = "The study: K splits x N x augmentation x amount x seed, one detector run each."


def _main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tem_lib.study", description=_DESCRIPTION)
    ap.add_argument("--profile", default="quick", help="profile whose common.sweep section defines the sweep")
    ap.add_argument("--work-dir", default=None, help="workspace of notebook 01 (default: the profile's)")
    ap.add_argument("--device", default=None)
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--list", action="store_true", help="print the run ids, one per line, with their state")
    g.add_argument("--prepare", action="store_true",
                   help="pretrain the foundation detector (if the detector starts from one), train every generator "
                        "and synthetic pool")
    g.add_argument("--run", default=None, help="run one run by id")
    g.add_argument("--index", type=int, default=None, help="run the run at this 0-based index (job arrays)")
    g.add_argument("--submit", choices=["slurm", "local", "debug"], default=None,
                   help="one job per unfinished run through submitit (local: subprocesses here)")
    c = ap.add_argument_group("--submit options")
    c.add_argument("--ids", nargs="*", default=None, help="only these run ids")
    c.add_argument("--partition", default=None)
    c.add_argument("--gpus", type=int, default=None, help="GPUs per job")
    c.add_argument("--cpus", type=int, default=None, help="CPUs per job")
    c.add_argument("--mem-gb", type=float, default=None)
    c.add_argument("--timeout-min", type=int, default=240)
    c.add_argument("--parallelism", type=int, default=None, help="at most this many jobs of the array at once")
    c.add_argument("--wait", action="store_true", help="wait for the jobs and report their results")
    c.add_argument("--max-retries", type=int, default=0, help="with --wait: resubmit failed runs this often")
    args = ap.parse_args(argv)
    from ..running.profiles import load_profile, sweep_section
    from ..utils import get_device
    from ..workspace import project_root
    prof = load_profile(args.profile, project_root())
    common = prof.get("common", {})
    if sweep_section(prof) is None:
        print(f"error: profile {args.profile!r} has no common.sweep section; the command line runs the sweep a "
              "profile defines", file=sys.stderr)
        return 2
    work_dir = args.work_dir or common.get("work_dir")
    device = get_device(args.device or common.get("device", "auto"))
    try:
        sweep = Sweep(work_dir, sweep_section(prof), device=device)
        if args.list:
            for r in sweep.runs:
                print(f"{r['id']}\t{'done' if sweep.is_done(r) else 'todo'}")
        elif args.prepare:
            from ..detection import DetectorConfig
            from ..detection.foundation import ensure_foundation
            from ..utils import from_dict
            det = from_dict(DetectorConfig, sweep.cfg.detector, "sweep detector")
            if det.pretrained == "foundation":  # before a job array, so no job pretrains it
                print(f"foundation detector: {ensure_foundation(det.foundation, det, device, sweep.progress)}")
            for split, n in sweep.cells():
                for g in (g for g in sweep.cfg.augment if g not in sweep.skipped):
                    print(f"split {split}, N {n}, {g}: {sweep.prepare(split, n, g)}")
        elif args.submit:
            from .cluster import submit
            params = {"timeout_min": args.timeout_min, "slurm_partition": args.partition, "gpus_per_node": args.gpus,
                      "cpus_per_task": args.cpus, "mem_gb": args.mem_gb, "slurm_array_parallelism": args.parallelism}
            params = {k: v for k, v in params.items() if v is not None}
            if args.submit != "slurm":  # local/debug executors know only the generic parameters
                params = {k: v for k, v in params.items() if not k.startswith("slurm_")}
            records = submit(work_dir, sweep_section(prof), args.ids, cluster=args.submit,
                             device=args.device or common.get("device", "auto"), wait=args.wait,
                             max_retries=args.max_retries, **params)
            for r in records:
                print(json.dumps(r))
            if any(r.get("state") == "failed" for r in records):
                return 1
        elif args.run or args.index is not None:
            run = sweep.get(args.run) if args.run else sweep.runs[args.index]
            try:  # two tasks given one run: the second leaves it to the first
                row = sweep.run_locked(run)
            except RunLocked as e:
                print(f"{e}; left to that job")
                return 0
            print(json.dumps({k: row[k] for k in ("id", "harmonic@0.5", "det_f1@0.5", "cls_f1@0.5")}))
        else:
            sweep.run_all()
    except (FileNotFoundError, ValueError, IndexError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(_main())
