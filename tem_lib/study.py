"""The study: K splits x N x condition x seed, one detector run each.

A *run* trains one Mask R-CNN on the N real training crops of a split plus ``amount``
synthetic pairs (0: EXP, the baseline; ``"5x"``: five times N; an integer: that many) and
scores it on the split's test crops (:func:`tem_lib.detection.experiment.run_condition`).
Synthetic pairs come from a generator (LDM) trained once per (split, N) on exactly those N
crops, as in the paper, and from one pool per (split, N) drawn with the mask prior of
notebook 02; a condition with k pairs uses the first k of the pool, so conditions of one
(split, N) are nested and their differences paired.

Every finished run writes one row (all metrics at every IoU threshold, parameters, package
versions, timings) to ``work_dir/rows/<run_id>.json``; a rerun skips runs whose row
exists for the same settings. Rows are separate files so that a cluster job array or several
GPUs can share one sweep: ``python -m tem_lib.study --profile paper --prepare`` trains the
generators and pools first, then ``--index $SLURM_ARRAY_TASK_ID`` (or ``--run ID``) runs
one run each. :func:`collect` gathers the rows into one table.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .utils import derive_seed, from_dict, provenance, read_json, stable_hash, write_json

_AMOUNT = re.compile(r"^(\d+(?:\.\d+)?)x$")


@dataclass
class SweepConfig:
    """What the study covers and how each run is made (profiles set it in ``common.sweep``:
    the ``sweep`` parameter of notebooks 03-06)."""
    splits: tuple[int, ...] | None = None  # None: every split of the split file
    n_train: tuple[int, ...] | None = None  # None: every N of the split file
    amounts: tuple = (0, "2x")  # synthetic pairs per run: 0 (EXP), "Kx" (K x N) or a count
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
    # Quality filter (tem_lib.ldm.quality): drop generated pairs in which a segmenter trained on
    # the cell's N real crops finds fewer than `filter_min_found` of the mask's defects.
    quality_filter: bool = False
    filter_min_found: float = 0.5
    filter_segmenter_steps: int = 600

    def __post_init__(self):
        for a in self.amounts:
            n_synthetic(a, 10)  # validates

    @classmethod
    def from_dict(cls, d: dict | None) -> "SweepConfig":
        return from_dict(cls, d, "sweep config")


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


def condition_name(amount) -> str:
    """EXP (no synthetic pairs) or EXP+GEN (amount)."""
    return "EXP" if n_synthetic(amount, 10**6) == 0 else f"EXP+GEN ({amount})"


class Sweep:
    """The sweep over a workspace of notebook 01 (a :class:`~tem_lib.workspace.Workspace` or
    its ``work_dir``): the single source of the study's trained generators and detectors.

    Notebook 03 shows the generator of one cell (:meth:`generator`), 04 its synthetic pool
    (:meth:`prepare`), 05 the detectors of one cell (:meth:`result`), 06 runs the rest and 07
    reads it all: nothing is trained twice. Artifacts live where the workspace says
    (``ws.path``): ``ldm/``, ``synthetic/``, ``detector/`` and ``rows/``.
    """

    def __init__(self, workspace, config: SweepConfig | dict | None = None, device="cpu", progress: bool = True):
        from . import workspace as _ws
        self.cfg = config if isinstance(config, SweepConfig) else SweepConfig.from_dict(config)
        self.ws = workspace if isinstance(workspace, _ws.Workspace) else _ws.load(workspace)
        self.device = device
        self.progress = progress
        self.classes = self.ws.classes
        cells = self.ws.cells(self.cfg.splits, self.cfg.n_train)
        self.runs = [{"id": run_id(s, n, a, seed), "split": s, "n_train": n, "amount": a,
                      "n_synthetic": n_synthetic(a, n), "seed": seed, "condition": condition_name(a)}
                     for s, n in cells for a in self.cfg.amounts for seed in self.cfg.seeds]
        self._pipes: dict = {}

    # ------------------------------------------------------------------ cells
    def cells(self) -> list[tuple[int, int]]:
        return list(dict.fromkeys((r["split"], r["n_train"]) for r in self.runs))

    def cell_runs(self, split: int, n: int, seed: int | None = None) -> list[dict]:
        return [r for r in self.runs if (r["split"], r["n_train"]) == (split, n) and seed in (None, r["seed"])]

    def pool_size(self, split: int, n: int) -> int:
        return max([r["n_synthetic"] for r in self.cell_runs(split, n)] + [0])

    def _ldm_config(self) -> dict:
        c = self.cfg.ldm_config
        return {**c, "autoencoder_training": {"seed": 0, **c.get("autoencoder_training", {})},
                "denoiser_training": {"seed": 0, **c.get("denoiser_training", {})}}

    def _ldm_resolved(self) -> dict:
        """The whole LDM configuration, library defaults included: a changed default (e.g. the
        noise model) gives new generators, pools and rows, never stale ones."""
        from .ldm import LDMConfig
        return LDMConfig.from_dict(self._ldm_config()).to_dict()

    def ldm_dir(self, split: int, n: int) -> Path:
        """The (split, N) generator's folder; another LDM configuration gets another folder."""
        return self.ws.path("ldm", split, n, f"cfg-{stable_hash(self._ldm_resolved())[:8]}")

    def pool_dir(self, split: int, n: int) -> Path:
        c = self.cfg
        filt = (c.filter_min_found, c.filter_segmenter_steps) if c.quality_filter else None
        key = stable_hash({"ldm": self._ldm_resolved(), "eta": c.eta, **({"filter": filt} if filt else {})})[:8]
        return self.ws.path("synthetic", split, n, f"{c.prior}_{c.sampler}{c.steps}_g{c.guidance_scale:g}"
                                                   f"_{self.pool_size(split, n)}_cfg-{key}")

    def generator(self, split: int, n: int):
        """The (split, N) LDM trained on exactly those N crops, as in the paper (trained on the
        first call, resumed after an interruption, loaded once finished); returns
        ``(pipeline, summary)`` with the loss histories."""
        from . import ldm
        if (split, n) not in self._pipes:
            self._pipes[split, n] = ldm.train_ldm(self.ws.train(split, n), self._ldm_config(), self.ldm_dir(split, n),
                                                  device=self.device, sampler=self.cfg.sampler, classes=self.classes)
        return self._pipes[split, n]

    def prior(self, split: int, n: int):
        """The cell's mask prior of notebook 02 (fitted here if notebook 02 did not run)."""
        from . import priors
        path = self.ws.path("priors", split, n, f"{self.cfg.prior}.json")
        if path.is_file():
            return priors.load_prior(path)
        prior = priors.fit_prior(self.ws.train(split, n), self.cfg.prior, classes=self.classes)
        prior.save(path)
        return prior

    def prepare(self, split: int, n: int) -> Path | None:
        """The cell's synthetic pool (generator trained or loaded, maps drawn from its prior,
        images written as a dataset folder); None if no run of the cell needs synthetic pairs."""
        from .ldm.synthesis import synthesize
        size = self.pool_size(split, n)
        if size == 0:
            return None
        out = self.pool_dir(split, n)
        if (out / "metadata.json").is_file():
            return out
        pipe, _ = self.generator(split, n)
        maps = self.prior(split, n).sample(size, self.ws.crop_size, generator=np.random.default_rng([split, n]),
                                           name=f"syn{split}-{n}", nm_per_px=self.ws.nm_per_px)
        synthesize(pipe, maps, out, self.classes, sampler=self.cfg.sampler, steps=self.cfg.steps,
                   guidance_scale=self.cfg.guidance_scale, eta=self.cfg.eta, seed=1000 * split + n,
                   batch_size=self.cfg.batch_size, overwrite=True, progress=self.progress,
                   metadata={"model": str(self.ldm_dir(split, n) / "pipeline"), "prior_kind": self.cfg.prior,
                             "split": split, "n_train": n, "sweep": True},
                   quality=self.quality_filter(split, n) if self.cfg.quality_filter else None)
        return out

    def quality_filter(self, split: int, n: int):
        """The cell's quality filter: a segmenter trained on its N real crops."""
        from functools import partial

        from .ldm.quality import QualityFilter
        from .segmentation import predict, train_segmenter
        steps = self.cfg.filter_segmenter_steps
        model = train_segmenter(self.ws.train(split, n), self.classes.ids, steps=steps, device=self.device,
                                seed=derive_seed(split, n), progress=self.progress)
        return QualityFilter(partial(predict, model, device=self.device), self.cfg.filter_min_found,
                             description=f"SmallUNet segmenter, {steps} steps on the cell's {n} real crops")

    def pools(self) -> list[dict]:
        """The finished synthetic pools: one record (split, n_train, path) per cell."""
        out = []
        for split, n in self.cells():
            p = self.pool_dir(split, n)
            if self.pool_size(split, n) and (p / "metadata.json").is_file():
                out.append({"split": split, "n_train": n, "path": p})
        return out

    # ------------------------------------------------------------------ runs
    def _settings(self, run: dict) -> dict:
        c = asdict(self.cfg)
        keep = ("prior", "sampler", "steps", "guidance_scale", "eta", "ldm_config", "detector", "training", "n_test",
                *(("quality_filter", "filter_min_found", "filter_segmenter_steps") if c["quality_filter"] else ()))
        return {**{k: c[k] for k in keep}, **{k: run[k] for k in ("split", "n_train", "n_synthetic", "seed")},
                "ldm": self._ldm_resolved() if run["n_synthetic"] else None,
                "classes": self.classes.to_dict()}

    def row_path(self, rid: str) -> Path:
        return self.ws.path("rows") / f"{rid}.json"

    def run_dir(self, run: dict) -> Path:
        return self.ws.path("detector", run["split"], run["n_train"], run["id"])

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
        return read_predictions(self.run_dir(run) / "predictions.json")

    def test_crops(self, split: int):
        return self.ws.test(split, self.cfg.n_test)

    def baseline(self, run: dict) -> dict:
        """The EXP run with the same split, N and seed."""
        return next(b for b in self.runs if b["n_synthetic"] == 0 and
                    (b["split"], b["n_train"], b["seed"]) == (run["split"], run["n_train"], run["seed"]))

    def result(self, run: dict | str):
        """Train (or resume, or load once finished) the run's detector and score it:
        a :class:`~tem_lib.detection.experiment.ConditionResult`."""
        from .detection.experiment import load_synthetic, run_condition
        run = self.get(run) if isinstance(run, str) else run
        syn = load_synthetic(self.prepare(run["split"], run["n_train"]), run["n_synthetic"]) if run["n_synthetic"] else []
        training = {**self.cfg.training, "seed": run["seed"]}
        return run_condition(run["condition"], self.ws.train(run["split"], run["n_train"]), self.test_crops(run["split"]),
                             self.run_dir(run), self.classes, self.cfg.detector, training, synthetic=syn,
                             device=self.device, progress=self.progress)

    def run(self, run: dict | str) -> dict:
        """Run one run (by dict or id) unless its row exists; return its row."""
        run = self.get(run) if isinstance(run, str) else run
        if self.is_done(run):
            return read_json(self.row_path(run["id"]))
        t0 = time.perf_counter()
        res = self.result(run)
        row = {"key": stable_hash(self._settings(run)), **run, "amount": str(run["amount"]),
               "n_test": len(res.predictions), "n_synthetic_used": res.training.get("n_synthetic"),
               "seconds": round(time.perf_counter() - t0, 1),
               "train_seconds": res.training.get("seconds"), "pretrained": res.training.get("pretrained"),
               "settings": self._settings(run), **provenance()}
        per_class = [f"f1_{c.name}" for c in self.classes]
        for r in res.report.table.to_dict(orient="records"):
            t = f"{r['iou']:g}"
            for k in ("det_f1", "cls_f1", "harmonic", "det_precision", "det_recall", "tp", "fp", "fn", *per_class):
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
        return collect(self.ws.path("rows"), [r["id"] for r in self.runs if self.is_done(r)])


def collect(rows_dir, ids=None) -> pd.DataFrame:
    """All rows in ``rows_dir`` (``ws.path("rows")``; or those of ``ids``) as a DataFrame."""
    rows_dir = Path(rows_dir)
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
    ap.add_argument("--profile", default="quick", help="profile whose common.sweep section defines the sweep")
    ap.add_argument("--work-dir", default=None, help="workspace of notebook 01 (default: the profile's)")
    ap.add_argument("--device", default=None)
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--list", action="store_true", help="print the run ids, one per line, with their state")
    g.add_argument("--prepare", action="store_true", help="train every generator and synthetic pool")
    g.add_argument("--run", default=None, help="run one run by id")
    g.add_argument("--index", type=int, default=None, help="run the run at this 0-based index (job arrays)")
    args = ap.parse_args(argv)
    from .profiles import load_profile, sweep_section
    from .utils import get_device
    from .workspace import project_root
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
            for split, n in sweep.cells():
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
