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
(:mod:`tem_lib.study.cluster`, on
the job arrays of :mod:`tem_lib.running.cluster`). :func:`collect` gathers the rows into one table.

Modules: :mod:`~tem_lib.study.config` (what a sweep covers, run ids), :mod:`~tem_lib.study.sweep`
(:class:`Sweep`), :mod:`~tem_lib.study.rows` (the result row's columns, written and parsed in one
place), :mod:`~tem_lib.study.locks` (one run, one writer) and :mod:`~tem_lib.study.cli` (the
command line and the cluster's job).
"""
from .cli import _main, run_one  # noqa: F401  (_main: python -m tem_lib.study, and tests)
from .config import Run, SweepConfig, condition_name, n_synthetic, run_id
from .locks import RunLocked, run_lock
from .rows import collect, metric_column, parse_metric_column
from .sweep import Sweep

__all__ = ["Run", "Sweep", "SweepConfig", "RunLocked", "collect", "condition_name", "metric_column", "n_synthetic",
           "parse_metric_column", "run_id", "run_lock", "run_one"]
