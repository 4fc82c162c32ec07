"""The sweep: K splits x N x augmentation x amount x seed, one detector run each (see the
package docstring); the single source of the study's generators, pools and detectors."""
from __future__ import annotations

import time
import warnings
from pathlib import Path

import pandas as pd

from ..layout import (
    DATASET_META,
    DETECTOR_META,
    PREDICTIONS,
    VAL_PREDICTIONS,
    pool_folder,
    pretrain_folder,
    row_file,
    run_folder,
    shared_pool_folder,
)
from ..utils import derive_seed, provenance, read_json, stable_hash, write_json
from .config import Run, SweepConfig, n_synthetic
from .locks import run_lock
from .rows import VAL_PREFIX, collect, metric_columns, size_columns


class Sweep:
    """The sweep over a workspace of notebook 01 (a :class:`~tem_lib.workspace.Workspace` or
    its ``work_dir``): the single source of the study's trained generators and detectors.

    Notebook 03 shows the generator of one cell (:meth:`model`), 04 its synthetic pool
    (:meth:`prepare`), 05 the detectors of one cell (:meth:`result`), 06 runs the rest and 07
    reads it all: nothing is trained twice. Artifacts live where the workspace says
    (``ws.path``): ``synthetic/``, ``detector/``, ``rows/`` and each strategy's own folder
    (``ldm/`` for the paper's generators).
    """

    def __init__(self, workspace, config: SweepConfig | dict | None = None, device="cpu", progress: bool = True):
        from .. import workspace as _ws
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
        ns = sorted({n for _, n in cells})
        aug_n = set(ns if self.cfg.augment_n_train is None else self.cfg.augment_n_train)
        if missing := sorted(aug_n - set(ns)):
            raise ValueError(f"sweep augment_n_train: N {missing} not in the sweep's N {ns}")
        self.runs = [Run.make(s, n, a, seed, g) for s, n in cells for a in self.cfg.amounts
                     for g in (("none",) if n_synthetic(a, n) == 0 else augment if n in aug_n else ())
                     for seed in self.cfg.seeds]
        self._extra: dict = {}

    # ------------------------------------------------------------------ cells
    def cells(self) -> list[tuple[int, int]]:
        return list(dict.fromkeys((r["split"], r["n_train"]) for r in self.runs))

    def cell_runs(self, split: int, n: int, seed: int | None = None) -> list[dict]:
        return [r for r in self.runs if (r["split"], r["n_train"]) == (split, n) and seed in (None, r["seed"])]

    def pool_size(self, split: int, n: int, augment: str) -> int:
        return max([r["n_synthetic"] for r in self.cell_runs(split, n) if r["augment"] == augment] + [0])

    def strategy(self, name: str):
        """The augmentation strategy ``name``: what it takes from the sweep's settings
        (``Augmentation.sweep_defaults``, e.g. the detector training for a strategy that
        pretrains) under its ``augment_config[name]``."""
        from ..augment import get_strategy, strategies
        STRATEGIES = strategies()  # noqa: N806  (plugins' strategies included)
        if name not in STRATEGIES:
            return get_strategy(name)  # the error naming the known ones
        return get_strategy(name, {**STRATEGIES[name].sweep_defaults(self.cfg), **self.cfg.augment_config.get(name, {})})

    def cell(self, split: int, n: int, augment: str):
        """What strategy ``augment`` sees of the cell (:class:`tem_lib.augment.Cell`): its N real
        crops and its mask prior, never test crops; a folder of its own for what it trains."""
        from ..augment import Cell
        return Cell(self.ws.train(split, n), self.prior(split, n), self.classes, self.ws.crop_size,
                    self.ws.nm_per_px, seed=derive_seed(split, n), device=self.device,
                    cache_dir=self._cache_dir(split, n, augment), progress=self.progress,
                    extra=self._extra.setdefault((split, n), {}))

    def _cache_dir(self, split: int, n: int, augment: str) -> Path:
        folder = self.strategy(augment).cache_folder
        return self.ws.path(folder, split, n) if folder else self.ws.path("strategies", split, n, augment)

    def model_dir(self, split: int, n: int, augment: str) -> Path:
        """The folder of the model strategy ``augment`` trains for the cell (the paper's LDM:
        one per resolved configuration)."""
        return self.strategy(augment).model_dir(self.cell(split, n, augment))

    def pool_dir(self, split: int, n: int, augment: str) -> Path:
        s = self.strategy(augment)
        if s.shared:  # made once for the whole study (e.g. simulated micrographs to pretrain on)
            return self.ws.path("synthetic", None, None, "shared", shared_pool_folder(augment, s.key()))
        from ..priors.cells import cell_prior_hash  # a refitted prior: another pool
        return self.ws.path("synthetic", split, n, pool_folder(augment, self.cfg.prior, self.pool_size(split, n, augment),
                                                               s.key(), cell_prior_hash(self.ws, split, n, self.cfg.prior)))

    def model(self, split: int, n: int, augment: str):
        """The model strategy ``augment`` trains on exactly the cell's N crops (trained on the
        first call, resumed after an interruption, loaded once finished): for the paper's
        ``ldm``, ``(pipeline, summary)`` with the loss histories."""
        return self.strategy(augment).trained(self.cell(split, n, augment))

    def prior(self, split: int, n: int):
        """The cell's mask prior of notebook 02 (fitted here if notebook 02 did not run)."""
        from ..priors.cells import cell_prior
        return cell_prior(self.ws, split, n, self.cfg.prior)

    def prepare(self, split: int, n: int, augment: str) -> Path | None:
        """The cell's pool for ``augment`` (made by the strategy, or found finished): a dataset
        folder; None if no run of the cell needs it."""
        size = self.pool_size(split, n, augment)
        if size == 0:
            return None
        return self.strategy(augment).make(self.cell(split, n, augment), size, self.pool_dir(split, n, augment))

    def pools(self) -> list[dict]:
        """The finished pools of the strategies whose pairs are mixed into training: one record
        (split, n_train, augment, path) per cell and strategy."""
        out = []
        for split, n in self.cells():
            for g in (g for g in self.cfg.augment if g not in self.skipped):
                p = self.pool_dir(split, n, g)
                if self.strategy(g).use == "mix" and self.pool_size(split, n, g) and (p / DATASET_META).is_file():
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
        return self.ws.path("rows") / row_file(rid)

    def run_dir(self, run: dict) -> Path:
        """The run's detector folder, keyed by its settings as well as its id: a run redone with
        other settings (another generator, detector or strategy config) trains in a new folder
        instead of meeting the old run's checkpoint."""
        out = self.ws.path("detector", run["split"], run["n_train"], run_folder(run["id"], stable_hash(self._settings(run))))
        if not out.exists():  # a workspace from before folders carried the hash: its run, if its row
            legacy = out.with_name(run["id"])  # says it was made with these settings
            if (legacy / PREDICTIONS).is_file() and self.is_done(run):
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
        from ..detection.experiment import read_predictions
        run = self.get(run) if isinstance(run, str) else run
        return read_predictions(self.run_dir(run) / PREDICTIONS)

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
        from ..detection.experiment import load_synthetic, run_condition
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
        """The detector a ``use: "pretrain"`` strategy trains on its pool (``Augmentation.pretrain``),
        to fine-tune on the cell's real crops; once per (cell, strategy, seed), or per (strategy,
        seed) for a ``shared`` one. The study only says where it lives."""
        s = self.strategy(augment)
        name = pretrain_folder(augment, s.key(), seed)
        out = self.ws.path("detector", None, None, "shared", name) if s.shared else self.ws.path("detector", split, n, name)
        return s.pretrain(pool, out, self.cfg.detector, self.cfg.training, seed, self.device, self.progress)

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
        row.update(metric_columns(res.report.table, self.classes))
        row.update(size_columns(res.sizes, self.classes))
        if res.val_predictions is not None:
            from ..metrics.detection import above, choose_score_threshold, evaluate_detections, size_density_table
            thr, _ = choose_score_threshold(self.val_crops(run["split"]), res.val_predictions, self.classes)
            test = self.test_crops(run["split"])
            kept = above(res.predictions, thr)
            rescored = evaluate_detections(test, kept, classes=self.classes)
            row.update({"val_threshold": thr, **metric_columns(rescored.table, self.classes, VAL_PREFIX),
                        **size_columns(size_density_table(test, kept, self.classes), self.classes, VAL_PREFIX)})
        row.update(res.coco)
        write_json(self.row_path(run["id"]), row)
        return row

    @staticmethod
    def _pretrain_seconds(res) -> float | None:
        init = res.training.get("init_weights")
        return read_json(Path(init["path"]) / DETECTOR_META).get("seconds") if init else None

    def _prepare_seconds(self, run: dict) -> float | None:
        """Seconds the run's pool took to make (its strategy's cost; 0 pairs: None)."""
        if not run["n_synthetic"]:
            return None
        meta = self.pool_dir(run["split"], run["n_train"], run["augment"]) / DATASET_META
        return read_json(meta).get("prepare_seconds") if meta.is_file() else None

    def best_run(self) -> tuple[dict, float, float]:
        """``(run, validation headline, its score threshold)`` of the finished run whose
        detector scores best on its split's validation crops (never test crops); ties go to the
        earlier run. ``ValueError`` when no finished run has validation predictions."""
        from ..detection.experiment import read_predictions
        from ..metrics.detection import choose_score_threshold
        best = None
        for r in self.runs:
            vf = self.run_dir(r) / VAL_PREDICTIONS
            if not self.is_done(r) or not vf.is_file():
                continue
            thr, table = choose_score_threshold(self.val_crops(r["split"]), read_predictions(vf), self.classes)
            score = float(table["harmonic"].max())
            if best is None or score > best[1]:
                best = (r, score, thr)
        if best is None:
            raise ValueError(f"{self.ws.path('rows')}: no finished run with validation predictions (val_threshold on, "
                             "validation crops in the split file): run the sweep first")
        return best

    def export_best(self, calibrate: bool = False, tta_views: int = 8, view_score: float = 0.25) -> Path:
        """The best run's detector (:meth:`best_run`) as a portable model folder for
        :mod:`tem_lib.quantify`, in ``ws.path("models", None, None, "best")``, with its class set,
        crop size, pixel size, and score thresholds (one, the best headline; one per class,
        keeping as many of each class as are labelled there) chosen on its split's validation
        crops on predictions in ``tta_views`` symmetries, each view kept down to ``view_score``
        (:func:`tem_lib.quantify.export.export_for_quantify`). The default, 8 views kept down to
        0.25, measured best on the 4 real FeCrAl folds (``benchmarks/results/quantify_realdata.md``);
        ``tta_views=1`` is 4-5x faster to apply. With ``calibrate``, the count calibration at the
        per-class thresholds too (off by default: on those folds it did not lower the density
        errors). Rewritten only when another run has become the best or the settings changed."""
        from ..quantify import CARD
        from ..quantify.export import export_for_quantify
        run, score, _ = self.best_run()
        out = self.ws.path("models", None, None, "best")
        source = {"run": run["id"], "condition": run["condition"], "augment": run["augment"],
                  "validation_headline": round(score, 4), "work_dir": str(self.ws.work_dir),
                  "detector_dir": str(self.run_dir(run)), "calibrated": calibrate, "tta_views": tta_views,
                  "tta_view_score": view_score}
        if (out / CARD).is_file() and read_json(out / CARD).get("source") == source:
            return out
        val = self.val_crops(run["split"])
        return export_for_quantify(self.run_dir(run), out, self.classes, self.ws.crop_size, self.ws.nm_per_px, val,
                                   f"the {len(val)} validation crops of split {run['split']}", source,
                                   tta_views=tta_views, calibrate=calibrate, device=self.device, view_score=view_score)

    def run_locked(self, run: dict | str) -> dict:
        """:meth:`run` under the run's lock file, so that two jobs given one run never write it
        twice: the second gets :class:`RunLocked` (the one lock-and-run of the command line and
        the cluster's jobs)."""
        run = self.get(run) if isinstance(run, str) else run
        with run_lock(self.row_path(run["id"]).with_suffix(".lock")):
            return self.run(run)

    def run_all(self, log=print) -> pd.DataFrame:
        for k, r in enumerate(self.runs, 1):
            state = "done, skipped" if self.is_done(r) else "running"
            log(f"[{k}/{len(self.runs)}] {r['id']}: {state}")
            self.run(r)
        return self.collect()

    def collect(self) -> pd.DataFrame:
        """The rows of this sweep's finished runs, one per run (other sweeps' rows ignored)."""
        return collect(self.ws.path("rows"), [r["id"] for r in self.runs if self.is_done(r)])
