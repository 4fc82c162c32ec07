"""The split-sensitivity sweep: K splits x N x condition x seed, one detector run each.

A *run* trains one Mask R-CNN on the N real training crops of a split plus ``amount``
synthetic pairs (0: EXP, the baseline; ``"5x"``: five times N; an integer: that many) and
scores it on the split's test crops (:func:`tem_lib.detection.experiment.run_condition`).
Synthetic pairs come from a generator (LDM) trained once per (split, N) on exactly those N
crops, as in the paper, and from one pool per (split, N) drawn with the mask prior of
notebook 02; a condition with k pairs uses the first k of the pool, so conditions of one
(split, N) are nested and their differences paired.

Every finished run writes one row (all metrics at every IoU threshold, parameters, package
versions, timings) to ``work_dir/sweep/rows/<run_id>.json``; a rerun skips runs whose row
exists for the same settings. Rows are separate files so that a cluster job array or several
GPUs can share one sweep: ``python -m tem_lib.study --profile paper --prepare`` trains the
generators and pools first, then ``--index $SLURM_ARRAY_TASK_ID`` (or ``--run ID``) runs
one run each. :func:`collect` gathers the rows into one table.
"""
from __future__ import annotations

import argparse
import itertools
import json
import re
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .utils import provenance, read_json, stable_hash, write_json

_AMOUNT = re.compile(r"^(\d+(?:\.\d+)?)x$")


@dataclass
class SweepConfig:
    """What the sweep covers and how each run is made (profiles set it: notebook 06's
    ``sweep`` parameter)."""
    splits: tuple[int, ...] = (0, 1)
    n_train: tuple[int, ...] = (10, 50, 100)
    amounts: tuple = (0, "1x", "5x")  # synthetic pairs per run: 0 (EXP), "Kx" (K x N) or a count
    seeds: tuple[int, ...] = (0,)
    prior: str = "parametric"  # mask prior of notebook 02: "parametric" or "bootstrap"
    sampler: str = "dpm++"
    steps: int = 25
    guidance_scale: float = 2.0
    eta: float = 1.0
    ldm_config: dict = field(default_factory=dict)  # tem_lib.ldm.LDMConfig overrides
    detector: dict = field(default_factory=dict)  # tem_lib.detection.DetectorConfig overrides
    training: dict = field(default_factory=dict)  # tem_lib.detection.DetTrainConfig overrides
    n_test: int | None = None  # score at most this many test crops per split (None: all)
    batch_size: int = 8  # generation batch

    @classmethod
    def from_dict(cls, d: dict | None) -> "SweepConfig":
        d = dict(d or {})
        names = set(cls.__dataclass_fields__)
        bad = set(d) - names
        if bad:
            raise ValueError(f"sweep config: unknown keys {sorted(bad)}; known: {sorted(names)}")
        for k in ("splits", "n_train", "amounts", "seeds"):
            if k in d:
                d[k] = tuple(d[k])
        cfg = cls(**d)
        for a in cfg.amounts:
            n_synthetic(a, 10)  # validates
        return cfg


def n_synthetic(amount, n: int) -> int:
    """Pairs for ``amount`` (0, an int count, or "Kx" = K times ``n``)."""
    if isinstance(amount, (int, np.integer)) and amount >= 0:
        return int(amount)
    m = _AMOUNT.match(str(amount))
    if not m:
        raise ValueError(f"synthetic amount must be a count >= 0 or 'Kx' (K times N), got {amount!r}")
    return int(round(float(m.group(1)) * n))


def run_id(split: int, n: int, amount, seed: int) -> str:
    return f"split{split}-n{n}-syn{amount}-seed{seed}"


def list_runs(cfg: SweepConfig, n_available: list[int] | None = None) -> list[dict]:
    """Every run of the sweep, in a fixed order (splits, N, amount, seed)."""
    runs = []
    for split, n, amount, seed in itertools.product(cfg.splits, cfg.n_train, cfg.amounts, cfg.seeds):
        if n_available is not None and n not in n_available:
            raise ValueError(f"N = {n} is not in the split file (it has {n_available}); rerun notebook 01 with it")
        runs.append({"id": run_id(split, n, amount, seed), "split": split, "n_train": n, "amount": amount,
                     "n_synthetic": n_synthetic(amount, n), "seed": seed})
    return runs


class Sweep:
    """A sweep over the workspace of notebook 01 (``work_dir``)."""

    def __init__(self, work_dir, config: SweepConfig | dict | None = None, device="cpu", progress: bool = True):
        from . import workspace
        self.cfg = config if isinstance(config, SweepConfig) else SweepConfig.from_dict(config)
        self.ws = workspace.load(work_dir)
        self.device = device
        self.progress = progress
        self.root = self.ws.work_dir / "sweep"
        self.runs = list_runs(self.cfg, [int(n) for n in self.ws.splits["n_train"]])

    # ------------------------------------------------------------------ data of a (split, N)
    def _crops(self, split: int, n: int):
        from .data import select
        sp = self.ws.splits["splits"][split]
        train = select(self.ws.crops, sp["train"][str(n)], where=f"split {split}")
        test = select(self.ws.crops, sp["test"], where=f"split {split}")[:self.cfg.n_test]
        return train, test

    def pool_size(self, split: int, n: int) -> int:
        return max([r["n_synthetic"] for r in self.runs if r["split"] == split and r["n_train"] == n] + [0])

    def pool_dir(self, split: int, n: int) -> Path:
        c = self.cfg
        return (self.root / "synthetic" / f"split{split}" / f"n{n}"
                / f"{c.prior}_{c.sampler}{c.steps}_g{c.guidance_scale:g}_{self.pool_size(split, n)}")

    def prepare(self, split: int, n: int) -> Path | None:
        """Train (or load) the LDM of (split, N) and write its synthetic pool; None if no run
        of this (split, N) needs synthetic pairs."""
        from . import ldm, priors
        from .ldm.synthesis import synthesize
        size = self.pool_size(split, n)
        if size == 0:
            return None
        out = self.pool_dir(split, n)
        if (out / "metadata.json").is_file():
            return out
        train, _ = self._crops(split, n)
        ldm_cfg = {**self.cfg.ldm_config,
                   "autoencoder_training": {"seed": 0, **self.cfg.ldm_config.get("autoencoder_training", {})},
                   "denoiser_training": {"seed": 0, **self.cfg.ldm_config.get("denoiser_training", {})}}
        # the sweep's own generators (notebook 03's may have another configuration)
        model_dir = self.root / "ldm" / f"split{split}" / f"n{n}"
        pipe, _ = ldm.train_ldm(train, ldm_cfg, model_dir, device=self.device, sampler=self.cfg.sampler)
        prior_file = self.ws.work_dir / "priors" / f"split{split}" / f"n{n}" / f"{self.cfg.prior}.json"
        if prior_file.is_file():
            prior = priors.load_prior(prior_file)
        else:  # notebook 02 fits every split and N; fit here if it was not run
            prior = priors.fit_prior(train, self.cfg.prior)
            priors.save_prior(prior, prior_file)
        maps = prior.sample(size, self.ws.info["crop_size"], generator=np.random.default_rng([split, n]),
                            name=f"sweep{split}-{n}", nm_per_px=train[0].nm_per_px)
        synthesize(pipe, maps, out, sampler=self.cfg.sampler, steps=self.cfg.steps,
                   guidance_scale=self.cfg.guidance_scale, eta=self.cfg.eta, seed=1000 * split + n,
                   batch_size=self.cfg.batch_size, overwrite=True, progress=self.progress,
                   metadata={"model": str(model_dir / "pipeline"), "prior": str(prior_file),
                             "prior_kind": self.cfg.prior, "split": split, "n_train": n, "sweep": True})
        return out

    # ------------------------------------------------------------------ runs
    def _settings(self, run: dict) -> dict:
        c = asdict(self.cfg)
        keep = ("prior", "sampler", "steps", "guidance_scale", "eta", "ldm_config", "detector", "training", "n_test")
        return {**{k: c[k] for k in keep}, **{k: run[k] for k in ("split", "n_train", "n_synthetic", "seed")}}

    def row_path(self, rid: str) -> Path:
        return self.root / "rows" / f"{rid}.json"

    def is_done(self, run: dict) -> bool:
        p = self.row_path(run["id"])
        return p.is_file() and read_json(p).get("key") == stable_hash(self._settings(run))

    def get(self, rid: str) -> dict:
        for r in self.runs:
            if r["id"] == rid:
                return r
        raise ValueError(f"no run {rid!r} in this sweep; runs: {[r['id'] for r in self.runs[:4]]} ...")

    def predictions(self, run: dict | str):
        """The test predictions of a finished run (:class:`~tem_lib.metrics.detection.Detections`)."""
        from .detection.experiment import read_predictions
        run = self.get(run) if isinstance(run, str) else run
        return read_predictions(self.root / "runs" / run["id"] / "predictions.json")

    def test_crops(self, split: int):
        return self._crops(split, self.cfg.n_train[0])[1]

    def run(self, run: dict | str) -> dict:
        """Run one run (by dict or id) unless its row exists; return its row."""
        from .detection.experiment import load_synthetic, run_condition
        run = self.get(run) if isinstance(run, str) else run
        if self.is_done(run):
            return read_json(self.row_path(run["id"]))
        t0 = time.perf_counter()
        train, test = self._crops(run["split"], run["n_train"])
        syn = []
        if run["n_synthetic"]:
            syn = load_synthetic(self.prepare(run["split"], run["n_train"]), run["n_synthetic"])
        training = {**self.cfg.training, "seed": run["seed"]}
        res = run_condition("EXP+GEN" if syn else "EXP", train, test, self.root / "runs" / run["id"],
                            self.cfg.detector, training, synthetic=syn, device=self.device, progress=self.progress)
        row = {"key": stable_hash(self._settings(run)), **run, "amount": str(run["amount"]),
               "condition": res.name, "n_test": len(test), "seconds": round(time.perf_counter() - t0, 1),
               "train_seconds": res.training.get("seconds"), "pretrained": res.training.get("pretrained"),
               "settings": self._settings(run), **provenance()}
        for r in res.report.table.to_dict(orient="records"):
            t = f"{r['iou']:g}"
            for k in ("det_f1", "cls_f1", "harmonic", "det_precision", "det_recall", "tp", "fp", "fn",
                      "f1_black_dot", "f1_loop_111", "f1_loop_100"):
                if k in r:
                    row[f"{k}@{t}"] = r[k]
        row.update(res.coco)
        write_json(self.row_path(run["id"]), row)
        return row

    def run_all(self, log=print) -> pd.DataFrame:
        for k, r in enumerate(self.runs, 1):
            state = "done, skipped" if self.is_done(r) else "running"
            log(f"[{k}/{len(self.runs)}] {r['id']}: {state}")
            self.run(r)
        return self.collect()

    def collect(self) -> pd.DataFrame:
        """The rows of this sweep's finished runs, one per run (other sweeps' rows ignored)."""
        return collect(self.root, [r["id"] for r in self.runs if self.is_done(r)])


def collect(sweep_dir, ids=None) -> pd.DataFrame:
    """All rows under ``sweep_dir/rows`` (or those of ``ids``) as a DataFrame."""
    rows_dir = Path(sweep_dir) / "rows"
    files = sorted(rows_dir.glob("*.json")) if ids is None else [rows_dir / f"{i}.json" for i in ids]
    rows = []
    for f in files:
        try:
            rows.append(json.loads(f.read_text()))
        except json.JSONDecodeError as e:
            raise ValueError(f"{f}: damaged result row ({e}); delete it to rerun that run") from None
    df = pd.DataFrame(rows)
    return df.drop(columns=["settings", "versions"], errors="ignore")


def _main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tem_lib.study", description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", default="quick", help="profile whose 06_split_sensitivity section defines the sweep")
    ap.add_argument("--work-dir", default=None, help="workspace of notebook 01 (default: the profile's)")
    ap.add_argument("--device", default=None)
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--list", action="store_true", help="print the run ids, one per line, with their state")
    g.add_argument("--prepare", action="store_true", help="train every generator and synthetic pool")
    g.add_argument("--run", default=None, help="run one run by id")
    g.add_argument("--index", type=int, default=None, help="run the run at this 0-based index (job arrays)")
    args = ap.parse_args(argv)
    from .pipeline import load_profile
    from .utils import get_device
    from .workspace import project_root
    prof = load_profile(args.profile, project_root())
    common, section = prof.get("common", {}), prof.get("06_split_sensitivity", {})
    if "sweep" not in section:
        print(f"error: profile {args.profile!r} has no 06_split_sensitivity.sweep section; the command line "
              "runs the sweep a profile defines", file=sys.stderr)
        return 2
    work_dir = args.work_dir or section.get("work_dir") or common.get("work_dir")
    device = get_device(args.device or section.get("device") or common.get("device", "auto"))
    try:
        sweep = Sweep(work_dir, section.get("sweep", {}), device=device)
        if args.list:
            for r in sweep.runs:
                print(f"{r['id']}\t{'done' if sweep.is_done(r) else 'todo'}")
        elif args.prepare:
            for split, n in dict.fromkeys((r["split"], r["n_train"]) for r in sweep.runs):
                print(f"split {split}, N {n}: {sweep.prepare(split, n)}")
        elif args.run or args.index is not None:
            run = sweep.get(args.run) if args.run else sweep.runs[args.index]
            row = sweep.run(run)
            print(json.dumps({k: row[k] for k in ("id", "harmonic@0.5", "det_f1@0.5", "cls_f1@0.5")}))
        else:
            sweep.run_all()
    except (FileNotFoundError, ValueError, IndexError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(_main())
