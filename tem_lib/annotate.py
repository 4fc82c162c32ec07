"""An annotation model: human-like labels from the simulator's true masks.

Seed 002's argument is that F1 against human labels hides real gains because the labels
contain errors. On simulated micrographs we know the truth, so the errors can be put in on
purpose and measured against. :func:`annotate` turns a :class:`~tem_lib.data.Sample` with true
instances (and layers) into the one a hurried human would have drawn:

* **faint defects missed**: a defect is dropped with probability ``miss_faint`` x its
  faintness, 1 for the faintest defect of the image falling linearly to 0 at the image's
  ``miss_below`` contrast quantile (contrast: ``tem_lib.stats.defect_contrast``);
* **outlines biased and jittered**: each kept outline grows by ``outline_bias_px`` (negative:
  shrinks) and its centre and axes move by normal noise of sd ``outline_jitter_px`` (redrawn
  from the instance's ellipse when it has one, else dilated/eroded and shifted);
* **class confusions**: with probability ``confusion`` a defect gets another class of the
  dataset, drawn uniformly;
* **boundary segments missed or offset**: discs of radius ``segment_px`` centred on boundary
  pixels are erased until about ``boundary_miss`` of the boundary is gone, and in others of
  the same size the boundary is moved by ``boundary_offset_px`` in a random direction, about
  ``boundary_offset`` of it;
* **spurious labels**: a Poisson number (mean ``spurious_per_image``) of defects drawn where
  there is none, with the size and class of a random true defect of the image, and as many
  short spurious boundary strokes (mean ``spurious_strokes``).

Everything is seeded: image ``i`` uses ``default_rng([seed, i])``; the same seed gives the
same labels. Each annotated sample records what was done in ``meta["annotation"]``.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np
from scipy import ndimage

from .config import Config
from .data.sample import Instance, Sample
from .geometry import rasterize_ellipse
from .stats import defect_contrast


@dataclass
class AnnotationConfig(Config):
    _where = "annotation model"
    miss_faint: float = 0.5  # probability of missing the faintest defect of an image
    miss_below: float = 0.5  # contrast quantile (per image) above which nothing is missed
    outline_bias_px: float = 1.0  # outlines drawn this much larger (negative: smaller)
    outline_jitter_px: float = 1.0  # sd of the centre and axis errors
    confusion: float = 0.1  # probability of another class
    boundary_miss: float = 0.15  # fraction of the boundary left out
    boundary_offset: float = 0.15  # fraction of the boundary drawn beside the true one
    boundary_offset_px: float = 3.0
    segment_px: float = 12.0  # radius of a missed or offset boundary stretch
    spurious_per_image: float = 1.0  # defects drawn where there is none
    spurious_strokes: float = 0.5  # boundary strokes drawn where there is none
    seed: int = 0

    def __post_init__(self):
        probs = {k: getattr(self, k) for k in ("miss_faint", "miss_below", "confusion", "boundary_miss", "boundary_offset")}
        bad = {k: v for k, v in probs.items() if not 0 <= v <= 1}
        if bad:
            raise ValueError(f"annotation model: {bad} must lie in [0, 1]")
        if self.outline_jitter_px < 0 or self.spurious_per_image < 0 or self.spurious_strokes < 0 or self.segment_px <= 0:
            raise ValueError("annotation model: outline_jitter_px, spurious_per_image, spurious_strokes >= 0 and "
                             "segment_px > 0 needed")

    @classmethod
    def perfect(cls, seed: int = 0) -> "AnnotationConfig":
        """No errors at all (labels = truth)."""
        return cls(0.0, 0.5, 0.0, 0.0, 0.0, 0.0, 0.0, 3.0, 12.0, 0.0, 0.0, seed)


def annotate(samples, config: AnnotationConfig | dict | None = None, class_ids=None) -> list[Sample]:
    """Human-like labels for ``samples`` (their instances and layers are the truth); the
    images are shared, labels new. ``class_ids``: the classes a confusion may pick (default:
    those present in ``samples``)."""
    cfg = config if isinstance(config, AnnotationConfig) else AnnotationConfig.from_dict(config)
    samples = list(samples)
    ids = sorted(class_ids or {i.category_id for s in samples for i in s.instances})
    return [_annotate_one(s, cfg, np.random.default_rng([cfg.seed, k]), ids) for k, s in enumerate(samples)]


def _annotate_one(s: Sample, cfg: AnnotationConfig, rng, ids) -> Sample:
    record = {"true_defects": len(s.instances), "missed": 0, "relabelled": 0, "spurious": 0}
    contrast = np.array([defect_contrast(s.image, i.full_mask(s.shape)) for i in s.instances])
    contrast = np.nan_to_num(contrast, nan=0.0)
    keep = np.ones(len(s.instances), bool)
    if len(contrast) and cfg.miss_faint > 0:
        lo, hi = contrast.min(), np.quantile(contrast, cfg.miss_below)
        faint = np.clip((hi - contrast) / max(hi - lo, 1e-9), 0, 1)
        keep = rng.random(len(contrast)) >= cfg.miss_faint * faint
    record["missed"] = int((~keep).sum())
    out = []
    for inst, k in zip(s.instances, keep):
        if not k:
            continue
        new = _redraw(inst, s.shape, cfg, rng)
        if new is None:
            continue
        if cfg.confusion > 0 and len(ids) > 1 and rng.random() < cfg.confusion:
            new = replace(new, category_id=int(rng.choice([c for c in ids if c != inst.category_id])))
            record["relabelled"] += 1
        out.append(new)
    n_spurious = rng.poisson(cfg.spurious_per_image) if cfg.spurious_per_image > 0 and s.instances else 0
    occupied = s.class_map() > 0
    for _ in range(n_spurious):
        src = s.instances[rng.integers(len(s.instances))]
        h, w = src.mask.shape
        y0, x0 = rng.integers(0, max(s.shape[0] - h, 1)), rng.integers(0, max(s.shape[1] - w, 1))
        if (occupied[y0:y0 + h, x0:x0 + w] & src.mask[:s.shape[0] - y0, :s.shape[1] - x0]).any():
            continue  # only where there is no defect
        out.append(Instance(src.mask[:s.shape[0] - y0, :s.shape[1] - x0].copy(), int(x0), int(y0), src.category_id))
        record["spurious"] += 1
    layers = {}
    for name, truth in s.layers.items():
        layers[name], rec = _annotate_layer(np.asarray(truth, bool), cfg, rng)
        record.update({f"{name}_{k}": v for k, v in rec.items()})
    return Sample(s.image, out, s.source_id, s.nm_per_px, s.name, s.origin,
                  meta={**s.meta, "annotation": {**record, "config": asdict(cfg)}}, layers=layers)


def _redraw(inst: Instance, shape, cfg: AnnotationConfig, rng) -> Instance | None:
    """The outline as drawn: grown by the bias, centre and axes jittered."""
    j = cfg.outline_jitter_px
    dy, dx, da, db = rng.normal(0, j, 4) if j > 0 else np.zeros(4)
    if inst.ellipse is not None:
        cx, cy, major, minor, angle = inst.ellipse
        major = max(major + 2 * cfg.outline_bias_px + da, 2.0)
        minor = max(minor + 2 * cfg.outline_bias_px + db, 2.0)
        rast = rasterize_ellipse(cx + dx, cy + dy, major, minor, angle, shape)
        if rast is None:
            return None
        m, x0, y0 = rast
        return Instance(m, x0, y0, inst.category_id, (cx + dx, cy + dy, major, minor, angle))
    full = inst.full_mask(shape)
    b = int(round(cfg.outline_bias_px))
    if b > 0:
        full = ndimage.binary_dilation(full, iterations=b)
    elif b < 0:
        full = ndimage.binary_erosion(full, iterations=-b)
    full = ndimage.shift(full.astype(np.uint8), (round(dy), round(dx)), order=0, mode="constant") > 0
    if not full.any():
        return None
    rows, cols = np.nonzero(full)
    y0, x0 = rows.min(), cols.min()
    return Instance(full[y0:rows.max() + 1, x0:cols.max() + 1], int(x0), int(y0), inst.category_id)


def _discs(mask: np.ndarray, fraction: float, radius: float, rng) -> np.ndarray:
    """Discs of ``radius`` centred on random ``mask`` pixels until about ``fraction`` of the
    mask lies under them."""
    out = np.zeros(mask.shape, bool)
    total = mask.sum()
    if fraction <= 0 or total == 0:
        return out
    pts = np.argwhere(mask)
    yy, xx = np.ogrid[:mask.shape[0], :mask.shape[1]]
    for _ in range(10_000):
        if (out & mask).sum() >= fraction * total:
            break
        cy, cx = pts[rng.integers(len(pts))]
        out |= (yy - cy) ** 2 + (xx - cx) ** 2 <= radius ** 2
    return out


def _annotate_layer(truth: np.ndarray, cfg: AnnotationConfig, rng) -> tuple[np.ndarray, dict]:
    """A boundary layer as drawn: stretches missed, stretches offset, spurious strokes."""
    missed = _discs(truth, cfg.boundary_miss, cfg.segment_px, rng)
    drawn = truth & ~missed
    moved = _discs(drawn, cfg.boundary_offset, cfg.segment_px, rng) & drawn
    if moved.any():
        ang = rng.uniform(0, 2 * np.pi)
        shift = (round(cfg.boundary_offset_px * np.sin(ang)), round(cfg.boundary_offset_px * np.cos(ang)))
        drawn = (drawn & ~moved) | (ndimage.shift(moved.astype(np.uint8), shift, order=0, mode="constant") > 0)
    strokes = rng.poisson(cfg.spurious_strokes) if cfg.spurious_strokes > 0 else 0
    H, W = truth.shape
    width = 1  # strokes as wide as the true boundary: its area over its centre-line length
    if truth.any():
        from skimage.morphology import skeletonize
        width = max(int(round(truth.sum() / max(skeletonize(truth).sum(), 1))), 1)
    for _ in range(strokes):
        y, x = rng.uniform(0, H), rng.uniform(0, W)
        ang, length = rng.uniform(0, np.pi), rng.uniform(2, 4) * cfg.segment_px
        t = np.linspace(-length / 2, length / 2, int(length * 2))
        ys, xs = np.rint(y + t * np.sin(ang)).astype(int), np.rint(x + t * np.cos(ang)).astype(int)
        ok = (ys >= 0) & (ys < H) & (xs >= 0) & (xs < W)
        line = np.zeros_like(truth)
        line[ys[ok], xs[ok]] = True
        drawn |= ndimage.binary_dilation(line, iterations=max(width // 2, 0)) if width > 2 else line
    n = max(int(truth.sum()), 1)
    return drawn, {"missed_fraction": float((truth & missed).sum() / n), "offset_fraction": float((truth & moved).sum() / n),
                   "strokes": int(strokes)}
