"""Measurements of detected defects: one row per defect, per-class summaries with intervals,
and the comparison with labels where a micrograph has them."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..classes import ClassSet
from ..data.sample import Sample
from ..metrics.detection import Detections
from ..utils import Stream, derive_seed

DEFECT_COLUMNS = ["image", "class", "class_id", "score", "cx_px", "cy_px", "major_px", "minor_px", "area_px",
                  "angle_deg", "cx_nm", "cy_nm", "major_nm", "minor_nm", "area_nm2", "nm_per_px", "edge"]


def defect_table(det: Detections, classes: ClassSet, nm_per_px: float | None) -> pd.DataFrame:
    """One row per detected defect of one image (moment-ellipse geometry of its mask, as for
    labels: :func:`tem_lib.stats.instance_table`)."""
    from ..stats import instance_table
    if det.instances is None:
        raise ValueError(f"{det.name}: the detector gives no masks; sizes need masks")
    tab = instance_table([det.to_sample()])
    nm = nm_per_px if nm_per_px else np.nan
    out = pd.DataFrame({
        "image": det.name, "class": [classes.display(c) for c in tab.class_id], "class_id": tab.class_id,
        "score": det.scores, "cx_px": tab.cx, "cy_px": tab.cy, "major_px": tab.major, "minor_px": tab.minor,
        "area_px": tab.area, "angle_deg": tab.angle})
    out["cx_nm"], out["cy_nm"] = out.cx_px * nm, out.cy_px * nm
    out["major_nm"], out["minor_nm"], out["area_nm2"] = out.major_px * nm, out.minor_px * nm, out.area_px * nm * nm
    out["nm_per_px"] = nm
    out["edge"] = tab.edge.to_numpy()
    return out[DEFECT_COLUMNS]


def poisson_interval(count: int, level: float = 0.95) -> tuple[float, float]:
    """Exact (Garwood) interval of a Poisson mean from one ``count``."""
    from scipy.stats import chi2
    a = 1 - level
    lo = 0.0 if count == 0 else chi2.ppf(a / 2, 2 * count) / 2
    return float(lo), float(chi2.ppf(1 - a / 2, 2 * count + 2) / 2)


def summary_table(defects: pd.DataFrame, images: pd.DataFrame, classes: ClassSet, n_boot: int = 1000,
                  seed: int = 0) -> pd.DataFrame:
    """Per image and class, and over all images (``image == "all"``): count, areal density
    (per µm², or per megapixel without a pixel size) with a 95 % Poisson interval, and the
    major axis (nm, or px) mean with a 95 % bootstrap interval over defects, median and quartiles.
    ``images``: one row per image with ``image``, ``height_px``, ``width_px``, ``nm_per_px``."""
    rng = np.random.default_rng(derive_seed(seed, Stream.SIZE_BOOTSTRAP))
    known = images["nm_per_px"].notna().all() and len(images)
    size_col, unit_size = ("major_nm", "nm") if known else ("major_px", "px")
    rows = []
    groups = [(r.image, [r.image]) for r in images.itertuples()] + [("all", list(images.image))]
    for image, names in groups:
        im = images[images.image.isin(names)]
        area = float((im.height_px * im.width_px * ((im.nm_per_px / 1000) ** 2 if known else 1e-6)).sum())
        for c in classes:
            d = defects[defects.image.isin(names) & (defects.class_id == c.id)][size_col].to_numpy()
            lo, hi = poisson_interval(len(d))
            if len(d):
                boot = rng.choice(d, size=(n_boot, len(d)), replace=True).mean(1)
                m_lo, m_hi = np.quantile(boot, [0.025, 0.975])
            else:
                m_lo = m_hi = np.nan
            q = np.quantile(d, [0.25, 0.5, 0.75]) if len(d) else [np.nan] * 3
            rows.append({"image": image, "class": c.display, "class_id": c.id, "count": len(d),
                         "area": area, "area_unit": "um2" if known else "Mpx",
                         "density": len(d) / area, "density_ci_low": lo / area, "density_ci_high": hi / area,
                         "size_mean": float(d.mean()) if len(d) else np.nan, "size_mean_ci_low": m_lo,
                         "size_mean_ci_high": m_hi, "size_q25": q[0], "size_median": q[1], "size_q75": q[2],
                         "size": f"major axis ({unit_size})"})
    return pd.DataFrame(rows)


def comparison_table(truth: list[Sample], predictions: list[Detections], classes: ClassSet,
                     summary: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per class (and the paper's F1s over all classes): true and predicted counts, densities
    and mean sizes with their relative errors, (predicted - true) / true, on labelled images.
    With a calibrated ``summary`` (:func:`~tem_lib.quantify.calibration.add_calibrated`), the
    calibrated counts over all images and their relative errors too."""
    from ..metrics.detection import evaluate_detections, size_density_table
    sizes = size_density_table(truth, predictions, classes)
    report = evaluate_detections(truth, predictions, iou_thresholds=(0.5,), classes=classes)
    t = report.table.iloc[0]
    f1s = {k: float(t[k]) for k in ("det_f1", "cls_f1", "harmonic")}
    per_class = {f"f1_{c.name}": float(t[f"f1_{c.name}"]) for c in classes if f"f1_{c.name}" in t}
    # the class's classification F1 among the defects found (NaN: none of it found)
    sizes["class_f1_iou0.5"] = [per_class.get(f"f1_{classes[c].name}", np.nan) for c in sizes.class_id]
    if summary is not None and "count_calibrated" in summary:
        cal = summary[summary.image == "all"].set_index("class_id").loc[sizes.class_id]
        sizes["n_pred_calibrated"] = cal.count_calibrated.to_numpy()
        sizes["n_pred_calibrated_ci_low"] = cal.count_calibrated_ci_low.to_numpy()
        sizes["n_pred_calibrated_ci_high"] = cal.count_calibrated_ci_high.to_numpy()
        with np.errstate(invalid="ignore", divide="ignore"):
            sizes["density_calibrated_rel_error"] = (sizes.n_pred_calibrated - sizes.n_true) / sizes.n_true.where(
                sizes.n_true > 0)
    return sizes.assign(**{f"{k}_iou0.5": v for k, v in f1s.items()})


def confusion_table(truth: list[Sample], predictions: list[Detections], classes: ClassSet,
                    iou: float = 0.5) -> pd.DataFrame:
    """Labelled class (rows, plus ``unlabelled``: detections matching no label) against
    detected class (columns, plus ``missed``: labels no detection matches), pooled over the
    images; the paper's greedy matching at ``iou``."""
    from ..metrics.detection import match_greedy
    names = [c.display for c in classes]
    col = {c: k for k, c in enumerate(classes.ids)}
    C = len(names)
    cm = np.zeros((C + 1, C + 1), np.int64)
    for gt, pred in zip(truth, predictions):
        pairs = match_greedy(gt.boxes(), pred.boxes, iou, "gt", pred.scores)
        gl = gt.labels
        for g, p, _ in pairs:
            cm[col.get(int(gl[g]), C), col.get(int(pred.labels[p]), C)] += 1
        hit_g, hit_p = {g for g, _, _ in pairs}, {p for _, p, _ in pairs}
        for g in set(range(len(gl))) - hit_g:
            cm[col.get(int(gl[g]), C), C] += 1
        for p in set(range(len(pred))) - hit_p:
            cm[C, col.get(int(pred.labels[p]), C)] += 1
    return pd.DataFrame(cm, index=pd.Index(names + ["unlabelled"], name="labelled"),
                        columns=pd.Index(names + ["missed"], name="detected"))


def labelled_densities(summary: pd.DataFrame, truth: list[Sample]) -> pd.DataFrame:
    """``summary``'s per-image rows (not ``all``) with the labelled count and density of the
    same image and class beside the detected ones (``n_labelled``, ``density_labelled``):
    images are matched by name."""
    rows = [{"image": s.name, "class_id": i.category_id} for s in truth for i in s.instances]
    labelled = (pd.DataFrame(rows, columns=["image", "class_id"]).groupby(["image", "class_id"]).size()
                .rename("n_labelled").reset_index())
    per = summary[summary.image != "all"].merge(labelled, on=["image", "class_id"], how="left")
    per["n_labelled"] = per.n_labelled.fillna(0).astype(int)
    per["density_labelled"] = per.n_labelled / per.area
    return per
