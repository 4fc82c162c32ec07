"""What notebooks 06 and 07 compute from a finished sweep: gains with paired-bootstrap
intervals (per split and pooled), which metric improved, F1 against N, and the realism of
every synthetic pool next to the real-vs-real floor. Figures stay in the notebooks."""
from __future__ import annotations

import numpy as np
import pandas as pd

from .data import load_dataset
from .metrics import frechet_distance, kernel_distance, texture_features
from .metrics.detection import above, paired_bootstrap, summarize_gains
from .utils import Stream, derive_seed, read_json

METRICS = ("det_f1", "cls_f1", "harmonic")


def metric_order(classes) -> tuple[str, ...]:
    """:data:`METRICS` with the headline first (detection F1 when there is one class)."""
    from .metrics.detection import headline_metric
    head = headline_metric(classes)
    return (head, *[m for m in METRICS if m != head])


def comparison_pairs(sweep, over: str = "exp") -> list[tuple[dict, dict]]:
    """(base, other) runs to compare on the same test crops. ``over="exp"``: every augmented
    run against the EXP run of the same split, N and seed. ``over="n"``: every EXP run against
    the EXP run of the same split and seed at the split's smallest N (does more real data help?)."""
    if over == "exp":
        return [(sweep.baseline(r), r) for r in sweep.runs if r["n_synthetic"] != 0]
    if over != "n":
        raise ValueError(f"over must be 'exp' or 'n', got {over!r}")
    exp = [r for r in sweep.runs if r["n_synthetic"] == 0]
    smallest = {s: min(r["n_train"] for r in exp if r["split"] == s) for s in {r["split"] for r in exp}}
    by_key = {(r["split"], r["n_train"], r["seed"]): r for r in exp}
    return [(by_key[(r["split"], smallest[r["split"]], r["seed"])], r) for r in exp
            if r["n_train"] != smallest[r["split"]]]


def gain_table(sweep, iou: float = 0.5, n_boot: int = 1000, seed: int = 0, threshold: str = "paper",
               over: str = "exp") -> pd.DataFrame:
    """For every augmented run, its gain over the EXP run of the same split, N and seed, in
    detection F1, classification F1 and the headline, with a 95 % paired bootstrap over the
    test crops (each replicate rescores both detectors on the same resampled crops). The
    ``split == "pooled"`` rows average the splits replicate by replicate, per strategy
    (``augment``). ``threshold``: "paper" scores every detection kept by the detector (score
    >= 0.1); "val" keeps each run's detections above the score threshold chosen on the
    split's validation crops (``val_threshold`` of its row). ``over="n"``: instead, every EXP
    run's gain over the EXP run at the split's smallest N (column ``n_from``), the same way
    (:func:`comparison_pairs`)."""
    if threshold not in ("paper", "val"):
        raise ValueError(f"threshold must be 'paper' or 'val', got {threshold!r}")

    def preds(run):
        p = sweep.predictions(run)
        if threshold == "val":
            thr = read_json(sweep.row_path(run["id"])).get("val_threshold")
            if thr is None:
                raise ValueError(f"run {run['id']} has no validation threshold (no validation crops, or "
                                 "val_threshold off in the sweep)")
            p = above(p, thr)
        return p

    gains, reps = [], {}
    for base, r in comparison_pairs(sweep, over):
        summary, rep = paired_bootstrap(sweep.test_crops(r["split"]), preds(base), preds(r),
                                        iou=iou, n_boot=n_boot, seed=seed, classes=sweep.classes,
                                        return_replicates=True)
        reps[r["id"]] = rep
        gains.append(summary.assign(split=str(r["split"]), n_train=r["n_train"], amount=str(r["amount"]),
                                    augment=r["augment"], seed=r["seed"], run=r["id"], n_from=base["n_train"]))
    if not gains:
        raise ValueError("the sweep has no augmented runs (amounts other than 0): nothing to compare" if over == "exp"
                         else "the sweep's EXP runs have one N per split: nothing to compare over N")
    gains = pd.concat(gains, ignore_index=True)
    pooled = []
    for (g_, n, n_from, amount, s), g in gains.groupby(["augment", "n_train", "n_from", "amount", "seed"], sort=False):
        ids = g["run"].unique()
        rep = sum(reps[i] for i in ids) / len(ids)  # the mean over splits, replicate by replicate
        obs = g.groupby("metric")["gain"].mean().to_dict()
        pooled.append(summarize_gains(obs, rep).assign(split="pooled", n_train=n, n_from=n_from, amount=amount,
                                                       augment=g_, seed=s, run="pooled"))
    if gains["seed"].nunique() > 1:
        pooled += _pooled_over_seeds(gains, reps, n_boot, seed)
    return pd.concat([gains, *pooled], ignore_index=True).assign(threshold=threshold)


def gain_tables(sweep, over: str = "exp", **kwargs) -> pd.DataFrame:
    """:func:`gain_table` at the paper's score 0.1 and, when every finished run has one, at the
    validation-chosen threshold, in one table (column ``threshold``)."""
    thresholds = ("paper", "val") if has_val_thresholds(sweep) else ("paper",)
    return pd.concat([gain_table(sweep, threshold=t, over=over, **kwargs) for t in thresholds], ignore_index=True)


def _pooled_over_seeds(gains: pd.DataFrame, reps: dict, n_boot: int, seed: int) -> list[pd.DataFrame]:
    """Rows with ``seed == "all"``: per split and pooled over splits, the gain averaged over the
    training seeds, with an interval that holds training noise as well as test-crop noise (a
    two-level bootstrap: each replicate resamples the seeds of every split with replacement,
    then the test crops, as the per-seed replicates already do, on the same crop resample)."""
    rng = np.random.default_rng(derive_seed(seed, Stream.TRAINING_NOISE_BOOTSTRAP))
    out = []
    for (g_, n, n_from, amount), g in gains.groupby(["augment", "n_train", "n_from", "amount"], sort=False):
        runs = g.drop_duplicates("run").groupby("split", sort=False)["run"].apply(list)
        drawn = {}
        for split, ids in runs.items():
            stack = np.stack([reps[i].to_numpy() for i in ids])  # (seeds, replicates, metrics)
            pick = rng.integers(0, len(ids), size=(len(ids), stack.shape[1]))
            drawn[split] = np.take_along_axis(stack, pick[:, :, None], axis=0).mean(0)
        columns = reps[runs.iloc[0][0]].columns
        for split, rep in [*drawn.items(), ("pooled", sum(drawn.values()) / len(drawn))]:
            sel = g if split == "pooled" else g[g["split"] == split]
            obs = sel.groupby("metric")["gain"].mean().to_dict()
            out.append(summarize_gains(obs, pd.DataFrame(rep, columns=columns)).assign(
                split=split, n_train=n, n_from=n_from, amount=amount, augment=g_, seed="all",
                run="pooled" if split == "pooled" else f"{g_}-n{n}-{amount}-split{split}-all-seeds"))
    return out


def one_per_cell(gains: pd.DataFrame) -> pd.DataFrame:
    """The rows of :func:`gain_table` to plot, one per (strategy, amount, N, split, metric): those
    pooled over training seeds (``seed == "all"``) when the sweep has several seeds, else all."""
    many = gains["seed"].astype(str).eq("all")
    return gains[many] if many.any() else gains


def verdict(row) -> str:
    if row.ci_low > 0:
        return "up"
    if row.ci_high < 0:
        return "down"
    return "up (n.s.)" if row.gain > 0 else ("down (n.s.)" if row.gain < 0 else "equal")


def verdict_table(gains: pd.DataFrame) -> pd.DataFrame:
    """Per amount, N and split: whether each metric went up or down (95 % interval
    excluding 0), or not significantly ("n.s.")."""
    return gains.assign(verdict=[verdict(r) for r in gains.itertuples()]).pivot_table(
        index=["augment", "amount", "n_train", "split"], columns="metric", values="verdict",
        aggfunc="first")[list(METRICS)]


def f1_long(rows: pd.DataFrame) -> pd.DataFrame:
    """Sweep rows in long form: one value per (run, metric, IoU), with ``setting`` the run's
    condition: EXP, EXP+GEN (amount) for the paper's LDM, EXP+<strategy> (amount)."""
    from .study.rows import metric_column, metric_ious, parse_metric_column
    ious = metric_ious(rows.columns, "harmonic")
    rows = rows.assign(setting=rows["condition"])
    long = rows.melt(id_vars=["id", "split", "n_train", "seed", "setting"],
                     value_vars=[metric_column(m, t) for m in METRICS for t in ious])
    parsed = [parse_metric_column(v) for v in long["variable"]]
    long["metric"] = [p[1] for p in parsed]
    long["iou"] = [f"{p[2]:g}" for p in parsed]
    return long.drop(columns="variable")


def realism_table(sweep, max_images: int = 200, seed: int = 0) -> pd.DataFrame:
    """Fréchet and kernel (KID) distance, in the fixed texture features of
    :mod:`tem_lib.metrics.frechet`, of every synthetic pool and of the floor (real training
    crops of the split) to the real test crops of its split."""
    rng = np.random.default_rng(seed)

    def sub(items):
        return [items[i] for i in sorted(rng.permutation(len(items))[:max_images])]

    pools = sweep.pools()
    out = []
    for split in sorted({p["split"] for p in pools}):
        ref = texture_features([s.image for s in sub(sweep.ws.test(split))])
        sets = [("real training crops (floor)", "-", [s.image for s in sub(sweep.ws.train_pool(split))])]
        for p in (p for p in pools if p["split"] == split):
            what = "generated" if p["augment"] == "ldm" else p["augment"]
            sets.append((f"{what}, N = {p['n_train']}", str(p["n_train"]),
                         [s.image for s in sub(load_dataset(p["path"]))]))
        for name, n, images in sets:
            if len(images) < 2:
                continue
            feats = texture_features(images)
            kid, kid_sd = kernel_distance(feats, ref, reference=ref, seed=seed)
            out.append({"split": split, "set": name, "n_train": n, "n_images": len(images),
                        "frechet": frechet_distance(feats, ref, reference=ref), "kid": kid, "kid_std": kid_sd})
    return pd.DataFrame(out)


def has_val_thresholds(sweep) -> bool:
    """Whether every finished run of ``sweep`` has a score threshold chosen on validation crops."""
    done = [r for r in sweep.runs if sweep.is_done(r)]
    return bool(done) and all(read_json(sweep.row_path(r["id"])).get("val_threshold") is not None for r in done)


def size_density_at_thresholds(test, results: dict, rows: dict, classes) -> pd.DataFrame:
    """Per condition and class, the size and density errors on the ``test`` crops at the paper's
    score 0.1 (the detector's own cut-off: ``results[name].sizes``) and at the threshold the
    study chose on validation crops (``rows[name]["val_threshold"]``, where the row has one)."""
    from .metrics.detection import size_density_table
    out = [r.sizes.assign(condition=name, threshold="0.1 (paper)") for name, r in results.items()]
    for name, r in results.items():
        thr = rows[name].get("val_threshold")
        if thr is not None:
            out.append(size_density_table(test, above(r.predictions, thr), classes)
                       .assign(condition=name, threshold=f"validation ({thr:.2f})"))
    return pd.concat(out, ignore_index=True)
