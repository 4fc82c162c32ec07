"""The study: K splits x N x augmentation x amount x seed, one detector run each.

A *run* trains one Mask R-CNN on the N real training crops of a split plus ``amount``
training pairs made by an augmentation strategy (0: EXP, the baseline; ``"5x"``: five times
N; an integer: that many) and scores it on the split's test crops
(:func:`tem_lib.detection.experiment.run_condition`). The strategies (``augment``:
:mod:`tem_lib.augment`) are the paper's LDM (``ldm``: a generator trained once per (split, N)
on exactly those N crops), DIAG-style inpainting with the same generator (``inpaint``),
copy-paste (``copy_paste``) and pretraining on simulated micrographs (``simulator``). Each
makes one pool per (split, N) with the mask prior of notebook 02; a condition with k pairs
uses the first k of the pool, so conditions of one (split, N) are nested and their
differences paired. Every run is also scored at a score threshold chosen on the split's
validation crops (never on test), next to the paper's 0.1.

Every finished run writes one row (all metrics at every IoU threshold, parameters, package
versions, timings) to ``work_dir/rows/<run_id>.json``; a rerun skips runs whose row
exists for the same settings. Rows are separate files so that a cluster job array or several
GPUs can share one sweep: ``python -m tem_lib.study --profile paper --prepare`` trains the
generators and pools first, then ``--index $SLURM_ARRAY_TASK_ID`` (or ``--run ID``) runs
one run each, or ``--submit slurm`` submits one job per unfinished run through submitit
(:mod:`tem_lib.cluster`). :func:`collect` gathers the rows into one table.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import time
import warnings
from dataclasses import dataclass, field
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
    # Augmentation strategies compared at every amount > 0 (tem_lib.augment): "ldm" (the
    # paper's), "inpaint", "copy_paste", "simulator", "sd_inpaint"; their configs by name.
    augment: tuple[str, ...] = ("ldm",)
    augment_config: dict = field(default_factory=dict)
    val_threshold: bool = True  # also score at the score threshold that is best on the validation crops
    n_val: int | None = None  # choose it on at most this many validation crops per split (None: all)
    # Quality filter (tem_lib.ldm.quality): drop generated pairs in which a segmenter trained on
    # the cell's N real crops finds fewer than `filter_min_found` of the mask's defects.
    quality_filter: bool = False
    filter_min_found: float = 0.5
    filter_segmenter_steps: int = 600

    def __post_init__(self):
        from .augment import STRATEGIES
        for a in self.amounts:
            n_synthetic(a, 10)  # validates
        if isinstance(self.augment, str):
            self.augment = (self.augment,)
        unknown = [a for a in (*self.augment, *self.augment_config) if a not in STRATEGIES]
        if unknown:
            raise ValueError(f"sweep augment: unknown strategies {unknown}; known: {sorted(STRATEGIES)}")

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


def run_id(split: int, n: int, amount, seed: int, augment: str = "ldm") -> str:
    """``split0-n10-syn2x-seed0`` (EXP: ``syn0``; the paper's LDM: ``syn``; other strategies
    by name, e.g. ``copy_paste2x``)."""
    prefix = "syn" if augment in ("ldm", "none") or n_synthetic(amount, 10**6) == 0 else augment
    return f"split{split}-n{n}-{prefix}{amount}-seed{seed}"


def condition_name(amount, augment: str = "ldm") -> str:
    """EXP (no added pairs), EXP+GEN (amount) for the paper's LDM, EXP+<strategy> (amount)."""
    if n_synthetic(amount, 10**6) == 0:
        return "EXP"
    return f"EXP+GEN ({amount})" if augment == "ldm" else f"EXP+{augment} ({amount})"


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
        self.skipped = {}  # strategy -> why it cannot serve this dataset
        for g in self.cfg.augment:
            why = self.strategy(g).unavailable(self.classes)
            if why:
                self.skipped[g] = why
                warnings.warn(f"sweep: augmentation {g!r} left out: {why}", stacklevel=2)
        augment = [g for g in self.cfg.augment if g not in self.skipped]
        self.runs = [{"id": run_id(s, n, a, seed, g), "split": s, "n_train": n, "amount": a,
                      "n_synthetic": n_synthetic(a, n), "seed": seed, "augment": g, "condition": condition_name(a, g)}
                     for s, n in cells for a in self.cfg.amounts
                     for g in (("none",) if n_synthetic(a, n) == 0 else augment) for seed in self.cfg.seeds]
        self._extra: dict = {}

    # ------------------------------------------------------------------ cells
    def cells(self) -> list[tuple[int, int]]:
        return list(dict.fromkeys((r["split"], r["n_train"]) for r in self.runs))

    def cell_runs(self, split: int, n: int, seed: int | None = None) -> list[dict]:
        return [r for r in self.runs if (r["split"], r["n_train"]) == (split, n) and seed in (None, r["seed"])]

    def pool_size(self, split: int, n: int, augment: str = "ldm") -> int:
        return max([r["n_synthetic"] for r in self.cell_runs(split, n) if r["augment"] == augment] + [0])

    def strategy(self, name: str = "ldm"):
        """The augmentation strategy ``name`` with this sweep's config: the generator settings of
        the sweep (``ldm_config``, sampler, steps, guidance, quality filter) for ``ldm`` and
        ``inpaint``, the detector training for ``simulator`` pretraining, then
        ``augment_config[name]``."""
        from .augment import get_strategy
        c = self.cfg
        base = {}
        if name in ("ldm", "inpaint"):
            base = {"ldm_config": c.ldm_config, "sampler": c.sampler, "steps": c.steps,
                    "guidance_scale": c.guidance_scale, "eta": c.eta, "batch_size": c.batch_size,
                    "quality_filter": c.quality_filter, "filter_min_found": c.filter_min_found,
                    "filter_segmenter_steps": c.filter_segmenter_steps}
        elif name == "simulator":
            base = {"pretrain": dict(c.training)}
        return get_strategy(name, {**base, **c.augment_config.get(name, {})})

    def cell(self, split: int, n: int):
        """What a strategy sees of the cell (:class:`tem_lib.augment.Cell`): its N real crops and
        its mask prior, never test crops."""
        from .augment import Cell
        return Cell(self.ws.train(split, n), self.prior(split, n), self.classes, self.ws.crop_size,
                    self.ws.nm_per_px, seed=derive_seed(split, n), device=self.device,
                    cache_dir=self.ws.path("ldm", split, n), progress=self.progress,
                    extra=self._extra.setdefault((split, n), {}))

    def _ldm_resolved(self) -> dict:
        """The whole LDM configuration, library defaults included: a changed default (e.g. the
        noise model) gives new generators, pools and rows, never stale ones."""
        from .augment.ldm import resolved_ldm_config
        return resolved_ldm_config(self.cfg.ldm_config)

    def ldm_dir(self, split: int, n: int) -> Path:
        """The (split, N) generator's folder; another LDM configuration gets another folder."""
        return self.ws.path("ldm", split, n) / self.strategy("ldm").model_name()

    def pool_dir(self, split: int, n: int, augment: str = "ldm") -> Path:
        s = self.strategy(augment)
        if s.shared:  # made once for the whole study (e.g. simulated micrographs to pretrain on)
            return self.ws.path("synthetic", None, None, "shared", f"{augment}_cfg-{s.key()}")
        return self.ws.path("synthetic", split, n, f"{augment}_{self.cfg.prior}_{self.pool_size(split, n, augment)}"
                                                   f"_cfg-{s.key()}")

    def generator(self, split: int, n: int):
        """The (split, N) LDM trained on exactly those N crops, as in the paper (trained on the
        first call, resumed after an interruption, loaded once finished); returns
        ``(pipeline, summary)`` with the loss histories."""
        return self.strategy("ldm").trained(self.cell(split, n))

    def prior(self, split: int, n: int):
        """The cell's mask prior of notebook 02 (fitted here if notebook 02 did not run)."""
        from . import priors
        path = self.ws.path("priors", split, n, f"{self.cfg.prior}.json")
        if path.is_file():
            return priors.load_prior(path)
        prior = priors.fit_prior(self.ws.train(split, n), self.cfg.prior, classes=self.classes)
        prior.save(path)
        return prior

    def prepare(self, split: int, n: int, augment: str = "ldm") -> Path | None:
        """The cell's pool for ``augment`` (made by the strategy, or found finished): a dataset
        folder; None if no run of the cell needs it."""
        size = self.pool_size(split, n, augment)
        if size == 0:
            return None
        return self.strategy(augment).make(self.cell(split, n), size, self.pool_dir(split, n, augment))

    def pools(self) -> list[dict]:
        """The finished pools of the strategies whose pairs are mixed into training: one record
        (split, n_train, augment, path) per cell and strategy."""
        out = []
        for split, n in self.cells():
            for g in (g for g in self.cfg.augment if g not in self.skipped):
                p = self.pool_dir(split, n, g)
                if self.strategy(g).use == "mix" and self.pool_size(split, n, g) and (p / "metadata.json").is_file():
                    out.append({"split": split, "n_train": n, "augment": g, "path": p})
        return out

    # ------------------------------------------------------------------ runs
    def _settings(self, run: dict) -> dict:
        """What a run's row depends on (its hash is the row's key): the detector and its
        training always; the strategy, its config and the prior for augmented runs."""
        c = self.cfg
        out = {"detector": c.detector, "training": c.training, "n_test": c.n_test,
               "val_threshold": c.val_threshold, "n_val": c.n_val, "classes": self.classes.to_dict(),
               **{k: run[k] for k in ("split", "n_train", "n_synthetic", "seed")}}
        if run["n_synthetic"]:
            s = self.strategy(run["augment"])
            out.update(augment=run["augment"], prior=c.prior, augment_config=s.describe())
        return out

    def row_path(self, rid: str) -> Path:
        return self.ws.path("rows") / f"{rid}.json"

    def run_dir(self, run: dict) -> Path:
        """The run's detector folder, keyed by its settings as well as its id: a run redone with
        other settings (another generator, detector or strategy config) trains in a new folder
        instead of meeting the old run's checkpoint."""
        out = self.ws.path("detector", run["split"], run["n_train"], f"{run['id']}-{stable_hash(self._settings(run))[:8]}")
        if not out.exists():  # a workspace from before folders carried the hash: its run, if its row
            legacy = out.with_name(run["id"])  # says it was made with these settings
            if (legacy / "predictions.json").is_file() and self.is_done(run):
                return legacy
        return out

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

    def val_crops(self, split: int):
        """The split's validation crops (from its training micrographs, in no training set)."""
        v = self.ws.val(split)
        return v[:self.cfg.n_val] if self.cfg.n_val is not None else v

    def baseline(self, run: dict) -> dict:
        """The EXP run with the same split, N and seed."""
        return next(b for b in self.runs if b["n_synthetic"] == 0 and
                    (b["split"], b["n_train"], b["seed"]) == (run["split"], run["n_train"], run["seed"]))

    def result(self, run: dict | str):
        """Train (or resume, or load once finished) the run's detector and score it:
        a :class:`~tem_lib.detection.experiment.ConditionResult`."""
        from .detection.experiment import load_synthetic, run_condition
        run = self.get(run) if isinstance(run, str) else run
        split, n = run["split"], run["n_train"]
        syn, init = [], None
        if run["n_synthetic"]:
            pool = self.prepare(split, n, run["augment"])
            if self.strategy(run["augment"]).use == "pretrain":
                init = self.pretrained(split, n, run["augment"], pool, run["seed"])
            else:
                syn = load_synthetic(pool, run["n_synthetic"])
        training = {**self.cfg.training, "seed": run["seed"]}
        return run_condition(run["condition"], self.ws.train(split, n), self.test_crops(split),
                             self.run_dir(run), self.classes, self.cfg.detector, training, synthetic=syn,
                             device=self.device, progress=self.progress, init_weights=init,
                             val=self.val_crops(split) if self.cfg.val_threshold else None)

    def pretrained(self, split: int, n: int, augment: str, pool: Path, seed: int) -> Path:
        """A detector trained on a ``use: "pretrain"`` pool (e.g. simulated micrographs), to
        fine-tune on the cell's real crops; trained once per (cell, strategy, seed)."""
        from .data import load_dataset
        from .detection import train_detector
        s = self.strategy(augment)
        name = f"pretrain-{augment}-{s.key()}-seed{seed}"
        out = self.ws.path("detector", None, None, "shared", name) if s.shared else self.ws.path("detector", split, n, name)
        if not (out / "model.safetensors").is_file() or not (out / "detector.json").is_file():
            train_detector(load_dataset(pool), out, self.cfg.detector,  # with the pool's own classes
                           {**self.cfg.training, **s.config.pretrain, "seed": seed}, device=self.device,
                           progress=self.progress)
        return out

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
               "init_weights": res.training.get("init_weights"), "pretrain_seconds": self._pretrain_seconds(res),
               "prepare_seconds": self._prepare_seconds(run), "settings": self._settings(run), **provenance()}
        row.update(self._metric_columns(res.report.table))
        row.update(self._size_columns(res.sizes))
        if res.val_predictions is not None:
            from .metrics.detection import above, choose_score_threshold, evaluate_detections, size_density_table
            thr, _ = choose_score_threshold(self.val_crops(run["split"]), res.val_predictions, self.classes)
            test = self.test_crops(run["split"])
            kept = above(res.predictions, thr)
            rescored = evaluate_detections(test, kept, classes=self.classes)
            row.update({"val_threshold": thr, **self._metric_columns(rescored.table, prefix="valthr_"),
                        **self._size_columns(size_density_table(test, kept, self.classes), prefix="valthr_")})
        row.update(res.coco)
        write_json(self.row_path(run["id"]), row)
        return row

    def _metric_columns(self, table: pd.DataFrame, prefix: str = "") -> dict:
        per_class = [f"f1_{c.name}" for c in self.classes]
        out = {}
        for r in table.to_dict(orient="records"):
            t = f"{r['iou']:g}"
            for k in ("det_f1", "cls_f1", "harmonic", "det_precision", "det_recall", "tp", "fp", "fn", *per_class):
                if k in r:
                    out[f"{prefix}{k}@{t}"] = r[k]
        return out

    def _size_columns(self, sizes: pd.DataFrame, prefix: str = "") -> dict:
        """Per-class relative density and size errors ((predicted - true) / true), the numbers a
        microscopist publishes (``size_density_table``)."""
        out = {}
        for r in sizes.to_dict(orient="records"):
            name = self.classes[r["class_id"]].name
            out[f"{prefix}density_err_{name}"] = r["density_rel_error"]
            out[f"{prefix}size_err_{name}"] = r["size_rel_error"]
        return out

    @staticmethod
    def _pretrain_seconds(res) -> float | None:
        init = res.training.get("init_weights")
        return read_json(Path(init["path"]) / "detector.json").get("seconds") if init else None

    def _prepare_seconds(self, run: dict) -> float | None:
        """Seconds the run's pool took to make (its strategy's cost; 0 pairs: None)."""
        if not run["n_synthetic"]:
            return None
        meta = self.pool_dir(run["split"], run["n_train"], run["augment"]) / "metadata.json"
        return read_json(meta).get("prepare_seconds") if meta.is_file() else None

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
            from .detection import DetectorConfig
            from .detection.foundation import ensure_foundation
            from .utils import from_dict
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
            from .cluster import RunLocked, run_lock
            run = sweep.get(args.run) if args.run else sweep.runs[args.index]
            try:  # two tasks given one run: the second leaves it to the first
                with run_lock(sweep.row_path(run["id"]).with_suffix(".lock")):
                    row = sweep.run(run)
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
