"""The U-Net confidence study (seed 002, notebook 08): does a pretrained encoder with L2 / L2-SP
find more of the true objects, does F1 against human-like labels hide it, and does
self-confidence need transfer learning plus deep fine-tuning?

Simulated part (the truth is known): micrographs of the ``fecral_grains`` preset, labelled by
the annotation model (``tem_lib.annotate``: faint defects missed, outlines off, boundary
stretches missed or moved, spurious labels). U-Nets (``tem_lib.segmentation.unet``) learn
from those labels; every model is scored against the test crops' labels (what a study without
a simulator can do) AND against their truth, and with metrics that need no labels
(``tem_lib.metrics.confidence``). Two tasks: ``grain_boundary`` (the seed's case) and
``defects`` (ours, defect vs background).

The grid (:class:`UNetStudyConfig`): initialisation (``scratch``; ``simulator``: an encoder
pretrained on another simulated population with exact masks, the offline stand-in for
ImageNet; ``imagenet`` when its weights are cached, else left out with the reason) x
regularisation (``none``, ``l2``, ``l2sp``) x frozen encoder stages x seeds.

Workspace part: U-Nets trained on the workspace's own crops (notebook 01's dataset, the real
FeCrAl crops in ``benchmarks/unet_confidence.py``) judged by the label-free metrics only.

Artifacts live under the workspace's ``unet/`` stage.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from .annotate import AnnotationConfig, annotate
from .config import Config
from .layout import split_folder
from .metrics import confidence as cm
from .segmentation.unet import PretrainedWeightsMissing, SegConfig, imagenet_weights, predict_proba, save_encoder, train_unet
from .simulate import preset as sim_preset
from .simulate import simulate

TASKS = ("grain_boundary", "defects")


@dataclass
class UNetStudyConfig(Config):
    _where = "unet study config"
    tasks: tuple[str, ...] = TASKS
    n_train: int = 24  # simulated training crops (labelled by the annotation model)
    n_test: int = 16  # simulated test crops (labels and truth)
    size: int = 128  # crop side (px)
    nm_per_px: float = 1.4
    preset: str = "fecral_grains"
    annotation: dict = field(default_factory=dict)  # tem_lib.annotate.AnnotationConfig overrides
    encoder: str = "resnet18"
    inits: tuple[str, ...] = ("scratch", "simulator", "imagenet")
    regularizations: tuple[str, ...] = ("none", "l2", "l2sp")
    freezes: tuple[int, ...] = (0, 5)  # encoder stages frozen: 0 = fine-tune all, 5 = whole resnet encoder
    seeds: tuple[int, ...] = (0, 1)
    training: dict = field(default_factory=dict)  # TrainConfig overrides for every U-Net
    l2: float = 1e-4
    l2sp: float = 1e-2
    # the "simulator" encoder: a U-Net trained with exact masks on another population
    pretrain_preset: str = "fecral"
    pretrain_nm_per_px: float = 1.0
    pretrain_images: int = 48
    pretrain_steps: int = 400
    workspace_crops: int = 32  # crops of the workspace's dataset for the label-free part (0: skip)
    workspace_conditions: tuple[str, ...] | None = None  # conditions trained there (None: all)
    # conditions of the grid trained on the simulated tasks (None: all); the seed's three claims
    # need scratch-none-freeze0, {init}-l2-freeze0, {init}-none-freeze0 and {init}-none-freeze5
    conditions: tuple[str, ...] | None = None
    n_boot: int = 1000
    seed: int = 0

    def __post_init__(self):
        bad = [t for t in self.tasks if t not in TASKS]
        if bad:
            raise ValueError(f"unet study: unknown tasks {bad}; known: {list(TASKS)}")
        AnnotationConfig.from_dict(self.annotation)  # validates
        names = {condition_name(i, r, f) for i in self.inits for r in self.regularizations for f in self.freezes}
        for key in ("conditions", "workspace_conditions"):
            typo = [c for c in (getattr(self, key) or ()) if c not in names]
            if typo:
                raise ValueError(f"unet study: {key} {typo} are not in the grid of inits x regularizations x freezes "
                                 f"{sorted(names)}")



def condition_name(init: str, reg: str, freeze: int) -> str:
    return f"{init}-{reg}-freeze{freeze}"


class UNetStudy:
    """The grid on one workspace (for where artifacts go and the label-free part)."""

    def __init__(self, workspace, config: UNetStudyConfig | dict | None = None, device="cpu"):
        from . import workspace as _ws
        self.cfg = config if isinstance(config, UNetStudyConfig) else UNetStudyConfig.from_dict(config)
        self.ws = workspace if isinstance(workspace, _ws.Workspace) else _ws.load(workspace)
        self.device = device
        self.skipped: dict[str, str] = {}
        self._data: dict = {}
        if "imagenet" in self.cfg.inits:
            try:
                imagenet_weights(self.cfg.encoder)
            except PretrainedWeightsMissing as e:
                self.skipped["imagenet"] = str(e)
        grid = [
            {"init": i, "regularization": r, "freeze": f, "condition": condition_name(i, r, f)}
            for i in self.cfg.inits if i not in self.skipped for r in self.cfg.regularizations for f in self.cfg.freezes
            if not (i == "scratch" and (r == "l2sp" or f > 0))]
        wanted = self.cfg.conditions
        unknown = [w for w in (wanted or ()) if w not in {x["condition"] for x in grid}
                   and w.split("-")[0] not in self.skipped]  # a skipped init's conditions: left out, said above
        if unknown:
            raise ValueError(f"unet study: conditions {unknown} are not in the grid {[x['condition'] for x in grid]}")
        self.conditions = [x for x in grid if wanted is None or x["condition"] in wanted]

    # ------------------------------------------------------------------ data
    def data(self, task: str) -> dict:
        """Simulated crops of the task: train images + labels (annotated), test images +
        labels + truth (bool masks [N, H, W])."""
        if task not in self._data:
            c = self.cfg
            sim = sim_preset(c.preset, height=c.size, width=c.size, nm_per_px=c.nm_per_px)
            train = list(simulate(sim, c.n_train, seed=1000 + c.seed, workers=1))
            test = list(simulate(sim, c.n_test, seed=2000 + c.seed, workers=1))
            ann = AnnotationConfig.from_dict({**c.annotation, "seed": c.seed})
            train_l = annotate(train, ann, class_ids=sim.class_set().ids)
            test_l = annotate(test, replace(ann, seed=c.seed + 1), class_ids=sim.class_set().ids)
            self._data[task] = {
                "train_images": np.stack([s.image for s in train]), "train_labels": _target(train_l, task),
                "train_truth": _target(train, task), "test_images": np.stack([s.image for s in test]),
                "test_labels": _target(test_l, task), "test_truth": _target(test, task),
                "annotation": [s.meta["annotation"] for s in train_l]}
        return self._data[task]

    def seg_config(self, cond: dict, seed: int) -> SegConfig:
        init = str(self.pretrained_encoder()) if cond["init"] == "simulator" else cond["init"]
        return SegConfig(encoder=self.cfg.encoder, init=init, regularization=cond["regularization"],
                         freeze=cond["freeze"], l2=self.cfg.l2, l2sp=self.cfg.l2sp,
                         training={**self.cfg.training, "seed": seed})

    def pretrained_encoder(self):
        """The ``simulator`` encoder: a scratch U-Net trained with exact defect masks on another
        simulated population (``pretrain_preset`` at ``pretrain_nm_per_px``), trained once."""
        c = self.cfg
        path = self.ws.path("unet", None, None, "pretrain", f"{c.encoder}-encoder.safetensors")
        if path.is_file():
            return path
        sim = sim_preset(c.pretrain_preset, height=c.size, width=c.size, nm_per_px=c.pretrain_nm_per_px)
        samples = list(simulate(sim, c.pretrain_images, seed=3000 + c.seed, workers=1))
        cfg = SegConfig(encoder=c.encoder, training={**c.training, "steps": c.pretrain_steps, "seed": c.seed})
        model, _ = train_unet(np.stack([s.image for s in samples]), _target(samples, "defects"), cfg,
                              path.parent / "run", self.device)
        return save_encoder(model, path)

    def model(self, task: str, cond: dict, seed: int):
        d = self.data(task)
        out = self.ws.path("unet", None, None, task, cond["condition"], f"seed{seed}")
        model, _ = train_unet(d["train_images"], d["train_labels"], self.seg_config(cond, seed), out, self.device)
        return model

    # ------------------------------------------------------------------ evaluation
    def predict(self, model, images) -> tuple[np.ndarray, np.ndarray]:
        probs = predict_proba(model, images, self.device)
        return probs, probs.argmax(1) == 1

    def evaluate(self, task: str, cond: dict, seed: int) -> dict:
        """One row: scores against labels and truth (pooled and per test image) and the
        label-free metrics."""
        d = self.data(task)
        model = self.model(task, cond, seed)
        probs, pred = self.predict(model, d["test_images"])
        kind = "grains" if task == "grain_boundary" else "defects"
        row = {"task": task, **cond, "seed": seed}
        for ref in ("labels", "truth"):
            r = d[f"test_{ref}"]
            row[f"f1_{ref}"] = _f1(pred, r, task)
            row[f"recall_{ref}"] = cm.object_recall(pred, r, kind)
            row[f"per_image_f1_{ref}"] = [_f1(p[None], t[None], task) for p, t in zip(pred, r)]
            row[f"per_image_recall_{ref}"] = [cm.object_recall(p[None], t[None], kind) for p, t in zip(pred, r)]
        conf = cm.confidence_stats(probs, labels=d["test_truth"].astype(int))
        row.update(conf)
        row["per_image_max_prob"] = [float(p.max(0).mean()) for p in probs]
        n_labelled = max(cm.object_counts(d["test_labels"], kind).sum(), 1)
        row["count_ratio_labels"] = float(cm.object_counts(pred, kind).sum() / n_labelled)
        row["flip_agreement"] = cm.flip_agreement(lambda x: self.predict(model, x)[1], d["test_images"])
        row["_pred"] = pred
        return row

    def run_all(self, progress: bool = True) -> pd.DataFrame:
        """Every (task, condition, seed): the rows, with the agreement between seeds added per
        condition; also written to ``unet/rows.csv``."""
        from tqdm import tqdm
        jobs = [(t, c, s) for t in self.cfg.tasks for c in self.conditions for s in self.cfg.seeds]
        rows = [self.evaluate(*j) for j in tqdm(jobs, desc="U-Nets", disable=not progress)]
        df = pd.DataFrame(rows)
        agree = df.groupby(["task", "condition"])["_pred"].apply(lambda p: cm.seed_agreement(list(p)))
        df["seed_agreement"] = [agree[(t, c)] for t, c in zip(df.task, df.condition)]
        df = df.drop(columns="_pred")
        path = self.ws.path("unet", None, None, "rows.csv")
        path.parent.mkdir(parents=True, exist_ok=True)
        df.to_csv(path, index=False)
        return df

    # ------------------------------------------------------------------ label-free part on the workspace
    def workspace_rows(self, split: int = 0) -> pd.DataFrame:
        """U-Nets (every condition, every seed) trained on the workspace's training crops of
        ``split`` (defect vs background, its own labels), judged on its test crops without
        trusting their labels: objects found per labelled object, confidence, agreement under
        turns/flips and between seeds."""
        c = self.cfg
        if c.workspace_crops <= 0:
            return pd.DataFrame()
        train = self.ws.train_pool(split)[:c.workspace_crops]
        test = self.ws.test(split, limit=c.workspace_crops)
        x, y = np.stack([s.image for s in train]), _target(train, "defects")
        xt, yt = np.stack([s.image for s in test]), _target(test, "defects")
        rows, preds = [], {}
        wanted = c.workspace_conditions
        unknown = set(wanted or ()) - {x["condition"] for x in self.conditions}
        if unknown:
            raise ValueError(f"unet study: workspace_conditions {sorted(unknown)} are not in the grid "
                             f"{[x['condition'] for x in self.conditions]}")
        for cond in (x for x in self.conditions if wanted is None or x["condition"] in wanted):
            for seed in c.seeds:
                out = self.ws.path("unet", None, None, "workspace", split_folder(split), cond["condition"], f"seed{seed}")
                model, _ = train_unet(x, y, self.seg_config(cond, seed), out, self.device)
                probs, pred = self.predict(model, xt)
                preds.setdefault(cond["condition"], []).append(pred)
                n_labelled = max(cm.object_counts(yt.astype(bool)).sum(), 1)
                rows.append({**cond, "seed": seed, **cm.confidence_stats(probs),
                             "count_ratio_labels": float(cm.object_counts(pred).sum() / n_labelled),
                             "f1_labels": cm.pixel_scores(pred, yt)["f1"],
                             "flip_agreement": cm.flip_agreement(lambda im, m=model: self.predict(m, im)[1], xt)})
        df = pd.DataFrame(rows)
        df["seed_agreement"] = [cm.seed_agreement(preds[k]) for k in df.condition]
        return df


def _target(samples, task: str) -> np.ndarray:
    if task == "grain_boundary":
        return np.stack([s.layers["grain_boundary"] for s in samples]).astype(np.uint8)
    return (np.stack([s.class_map() for s in samples]) > 0).astype(np.uint8)


def _f1(pred, ref, task: str) -> float:
    ref = np.asarray(ref, bool)
    if task == "grain_boundary":
        return cm.boundary_f1(pred, ref, 2.0)["f1"]
    return cm.pixel_scores(pred, ref)["f1"]


# ----------------------------------------------------------------------------- claims
def _paired(rows: pd.DataFrame, task: str, a: str, b: str, metric: str, n_boot: int, seed: int) -> dict:
    """Mean of ``metric`` (per test image, averaged over seeds) of condition ``b`` minus ``a``,
    with a 95 % paired bootstrap interval over the test images."""
    def per_image(cond):
        sel = rows[(rows.task == task) & (rows.condition == cond)]
        if sel.empty:
            return None
        with warnings.catch_warnings():  # images without objects give NaN recalls
            warnings.simplefilter("ignore", RuntimeWarning)
            return np.nanmean(np.array(sel[metric].tolist(), float), axis=0)
    va, vb = per_image(a), per_image(b)
    if va is None or vb is None:
        return {"gain": np.nan, "ci_low": np.nan, "ci_high": np.nan}
    diff = vb - va
    diff = diff[np.isfinite(diff)]
    rng = np.random.default_rng(seed)
    reps = [diff[rng.integers(0, len(diff), len(diff))].mean() for _ in range(n_boot)] if len(diff) else [np.nan]
    return {"gain": float(diff.mean()) if len(diff) else np.nan, "ci_low": float(np.percentile(reps, 2.5)),
            "ci_high": float(np.percentile(reps, 97.5))}


def claims_table(rows: pd.DataFrame, init: str = "simulator", n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """The seed's three claims, per task, tested on the rows of :meth:`UNetStudy.run_all`
    (``init``: the pretrained initialisation standing in for the seed's ImageNet encoder).

    1. A pretrained encoder with L2 finds more of the true objects than a scratch U-Net
       (``{init}-l2-freeze0`` vs ``scratch-none-freeze0``: object recall against the truth).
    2. F1 against the labels hides that gain: it grows less (or not at all) than the truth
       says (gain in F1 vs labels against gain in recall vs truth).
    3. Self-confidence (mean max probability) comes only with transfer plus deep fine-tuning:
       ``{init}-none-freeze0`` above both ``scratch-none-freeze0`` and the frozen encoder
       ``{init}-none-freeze<max>``.
    Verdict "yes" when the interval excludes 0 in the claimed direction, "no" when it
    excludes 0 in the other, else "unclear"."""
    out = []
    freezes = sorted({int(f) for f in rows["freeze"]})
    frozen = f"{init}-none-freeze{freezes[-1]}" if freezes[-1] > 0 else None
    base, tl2, tft = "scratch-none-freeze0", f"{init}-l2-freeze0", f"{init}-none-freeze0"

    def verdict(g):
        return "yes" if g["ci_low"] > 0 else "no" if g["ci_high"] < 0 else "unclear"
    for task in rows.task.unique():
        r1 = _paired(rows, task, base, tl2, "per_image_recall_truth", n_boot, seed)
        out.append({"task": task, "claim": "1: pretrained + L2 finds more true objects", "comparison": f"{tl2} - {base}",
                    "metric": "object recall vs truth", **r1, "holds": verdict(r1), "note": ""})
        f_lab = _paired(rows, task, base, tl2, "per_image_f1_labels", n_boot, seed)
        f_tru = _paired(rows, task, base, tl2, "per_image_f1_truth", n_boot, seed)
        hides = {"gain": r1["gain"] - f_lab["gain"], "ci_low": np.nan, "ci_high": np.nan}
        holds = ("yes" if r1["ci_low"] > 0 and f_lab["ci_low"] <= 0 else
                 "no" if r1["ci_low"] > 0 and f_lab["ci_low"] > 0 else "unclear (no gain to hide)")
        out.append({"task": task, "claim": "2: F1 vs labels hides the gain", "comparison": f"{tl2} - {base}",
                    "metric": "F1 vs labels", **f_lab, "holds": holds,
                    "note": f"F1 vs truth {f_tru['gain']:+.3f} [{f_tru['ci_low']:+.3f}, {f_tru['ci_high']:+.3f}]; "
                            f"recall gain minus F1-vs-labels gain {hides['gain']:+.3f}"})
        c_s = _paired(rows, task, base, tft, "per_image_max_prob", n_boot, seed)
        c_f = (_paired(rows, task, frozen, tft, "per_image_max_prob", n_boot, seed) if frozen
               else {"ci_low": np.nan, "ci_high": np.nan, "gain": np.nan})
        both = "yes" if c_s["ci_low"] > 0 and (frozen is None or c_f["ci_low"] > 0) else (
            "no" if c_s["ci_high"] < 0 or c_f["ci_high"] < 0 else "unclear")
        out.append({"task": task, "claim": "3: confidence needs transfer + deep fine-tuning", "comparison": f"{tft} - {base}",
                    "metric": "mean max probability", **c_s, "holds": both,
                    "note": f"vs frozen encoder ({frozen}): {c_f['gain']:+.3f} [{c_f['ci_low']:+.3f}, {c_f['ci_high']:+.3f}]"})
    return pd.DataFrame(out)


def metric_table(rows: pd.DataFrame) -> pd.DataFrame:
    """Per task and condition: mean and range over seeds of the pooled metrics."""
    cols = ["f1_labels", "f1_truth", "recall_labels", "recall_truth", "mean_max_prob", "mean_entropy", "ece",
            "count_ratio_labels", "flip_agreement", "seed_agreement"]
    cols = [c for c in cols if c in rows]
    g = rows.groupby(["task", "condition"], sort=False)[cols]
    mean, lo, hi = g.mean(), g.min(), g.max()
    out = mean.round(3).astype(str)
    if rows["seed"].nunique() > 1:
        for c in cols:
            if c != "seed_agreement":
                out[c] = [f"{m:.3f} [{a:.3f}, {b:.3f}]" for m, a, b in zip(mean[c], lo[c], hi[c])]
    return out.reset_index()
