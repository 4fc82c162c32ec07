"""Shared by the benchmark scripts: where the real data is, how results are written."""
from __future__ import annotations

import platform
import sys
from pathlib import Path

import pandas as pd

from tem_lib.utils import provenance, write_json, write_text

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
REAL_DATA = ROOT.parent / "shared" / "data" / "fecral-3class"


def require_real_data(path=REAL_DATA) -> Path:
    if not Path(path).is_dir():
        print(f"skipped: real data folder {path} not found (benchmarks that compare with the "
              "real FeCrAl micrographs need it)")
        sys.exit(0)
    return Path(path)


def real_crops_and_folds(seed: int = 0, crop: int = 256):
    """The real FeCrAl micrographs, their ``crop``-px crops and 4 folds of 2 test micrographs
    (seeded order of the source ids); skips the script when the data is absent."""
    import numpy as np

    from tem_lib.data import load_dataset, tile_dataset
    require_real_data()
    micrographs = load_dataset(REAL_DATA, classes="fecral")  # ImageJ tables: the paper's class codes
    crops = tile_dataset(micrographs, crop, min_area=12)
    sources = sorted({m.source_id for m in micrographs})
    order = [sources[i] for i in np.random.default_rng(seed).permutation(len(sources))]
    return micrographs, crops, [order[i:i + 2] for i in range(0, len(order), 2)]


FECRAL_WORK = ROOT / "runs" / "bench" / "augment_realdata" / "work"


def fecral_workspace(work=None):
    """The workspace over the real FeCrAl micrographs shared by the benchmarks that run the
    study's code on them: 256-px crops, 2 splits by micrograph (2 of 8 held out), N 10/50,
    32 validation crops (prepared on first use)."""
    from tem_lib import workspace
    require_real_data()
    work = work or FECRAL_WORK
    try:
        return workspace.load(work)
    except FileNotFoundError:
        return workspace.prepare(work, REAL_DATA, crop_size=256, n_train=(10, 50), n_splits=2, seed=0, classes="fecral",
                                 test_fraction=0.25, n_val=32)


def machine() -> dict:
    import os

    import torch
    return {"python": platform.python_version(), "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "platform": platform.platform(),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}


def markdown_table(df: pd.DataFrame) -> str:
    def fmt(v):
        if isinstance(v, float):
            return f"{v:.3g}"
        return str(v)
    rows = [[str(c) for c in df.columns]] + [[fmt(v) for v in r] for r in df.itertuples(index=False)]
    return "\n".join(["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(df.columns)]
                     + ["| " + " | ".join(r) + " |" for r in rows[1:]])


def write_results(name: str, payload: dict, table: pd.DataFrame | None = None,
                  notes: str = "") -> None:
    """``results/<name>.json`` (numbers + machine + provenance) and ``results/<name>.md``."""
    payload = {**payload, "machine": machine(), **provenance()}
    write_json(RESULTS / f"{name}.json", payload)
    md = [f"# {name}", "", notes.strip(), ""]
    if table is not None:
        md += [markdown_table(table), ""]
    import shlex
    script = Path(sys.argv[0]).name if sys.argv and sys.argv[0].endswith(".py") else f"{name}.py"
    md += ["```", f"command: python benchmarks/{script} " + shlex.join(sys.argv[1:]), "```", ""]
    write_text(RESULTS / f"{name}.md", "\n".join(md))
    print("\n".join(md))
