"""The result row of a sweep run: the one place where its metric column names are written
(``harmonic@0.5``, ``valthr_f1_loop@0.5``, ``density_err_loop``) and parsed back, and the
collection of rows into a table."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

# prefix of the columns scored at the score threshold chosen on validation crops
VAL_PREFIX = "valthr_"


def metric_column(metric: str, iou: float, prefix: str = "") -> str:
    """``harmonic@0.5``: ``metric`` at IoU ``iou`` (``prefix`` ``valthr_``: at the validation threshold)."""
    return f"{prefix}{metric}@{float(iou):g}"


def parse_metric_column(name: str) -> tuple[str, str, float] | None:
    """``(prefix, metric, iou)`` of a column written by :func:`metric_column`; None for others."""
    if "@" not in name:
        return None
    head, _, iou = name.rpartition("@")
    try:
        value = float(iou)
    except ValueError:
        return None
    prefix = VAL_PREFIX if head.startswith(VAL_PREFIX) else ""
    return prefix, head[len(prefix):], value


def metric_ious(columns, metric: str = "harmonic", prefix: str = "") -> list[float]:
    """The IoU thresholds at which ``metric`` has a column, ascending."""
    out = set()
    for c in columns:
        p = parse_metric_column(c)
        if p is not None and p[0] == prefix and p[1] == metric:
            out.add(p[2])
    return sorted(out)


def size_column(kind: str, class_name: str, prefix: str = "") -> str:
    """``density_err_<class>`` or ``size_err_<class>`` (``kind``: "density" or "size")."""
    if kind not in ("density", "size"):
        raise ValueError(f"kind must be 'density' or 'size', got {kind!r}")
    return f"{prefix}{kind}_err_{class_name}"


def metric_columns(table: pd.DataFrame, classes, prefix: str = "") -> dict:
    """The row's metric columns from an evaluation table (one row per IoU threshold)."""
    per_class = [f"f1_{c.name}" for c in classes]
    out = {}
    for r in table.to_dict(orient="records"):
        for k in ("det_f1", "cls_f1", "harmonic", "det_precision", "det_recall", "tp", "fp", "fn", *per_class):
            if k in r:
                out[metric_column(k, r["iou"], prefix)] = r[k]
    return out


def size_columns(sizes: pd.DataFrame, classes, prefix: str = "") -> dict:
    """Per-class relative density and size errors ((predicted - true) / true), the numbers a
    microscopist publishes (``metrics.detection.size_density_table``)."""
    out = {}
    for r in sizes.to_dict(orient="records"):
        name = classes[r["class_id"]].name
        out[size_column("density", name, prefix)] = r["density_rel_error"]
        out[size_column("size", name, prefix)] = r["size_rel_error"]
    return out


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
