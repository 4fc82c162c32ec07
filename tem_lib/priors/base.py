"""What every mask prior shares: the training geometry, placement, sampling, JSON files.

A prior turns a labelled dataset into a generator of NEW label maps (instances with
classes, no image): ``prior = SomePrior.fit(samples)``, ``maps = prior.sample(n, 256, rng)``.
Subclasses only say how many defects of which class a map gets and what shape each has
(:meth:`MaskPrior._draw`); positions, overlap control and cropping are done here, the same
way for every prior.

Units. When every training sample knows its pixel size, lengths are fitted in nm and
densities per square micrometre, and maps can be drawn at any pixel size. Otherwise
lengths are in px and densities per megapixel (1e6 px^2), and maps come at the training
magnification. Either way the density is per unit AREA, so a prior fitted on 2048-pixel
micrographs gives 256-pixel maps with the same defects per area ("density preserved").
"""
from __future__ import annotations

import dataclasses
import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from ..classes import ClassSet
from ..data.sample import Instance, LabelMap, Sample
from ..geometry import bar_bbox, ellipse_bbox, rasterize_bar, rasterize_ellipse
from ..stats import instance_table
from ..utils import write_json

FORMAT = "tem_lib.mask_prior"
VERSION = 1
# A bar with the same second moments as an ellipse of full axes (major, minor) has
# sides sqrt(12)/4 times as long (var = L^2/12 for a segment, a^2/4 for an ellipse).
BAR_SCALE = np.sqrt(12.0) / 4.0


class PriorWarning(UserWarning):
    """A prior had to fall back (too little data for a class); the message says how."""


class PriorFileError(ValueError):
    """A prior JSON file that cannot be used; the message names the file and the problem."""


# ----------------------------------------------------------------------------- geometry
@dataclass
class TrainingGeometry:
    """What priors are fitted on, in the prior's units (see the module docstring).

    ``instances``: one row per instance (``stats.instance_table`` columns, lengths in
    ``unit``); ``images``: one row per image with its ``area`` (``area_unit``) and
    ``n_<class>`` counts; ``nm_per_px``: median pixel size of the data (None in px units).
    """
    instances: pd.DataFrame
    images: pd.DataFrame
    unit: str  # "nm" or "px"
    area_unit: str  # "um2" or "Mpx"
    nm_per_px: float | None
    class_ids: tuple[int, ...]


def training_geometry(samples: list, class_ids=None) -> TrainingGeometry:
    """Measure ``samples`` (micrographs, crops or label maps, any sizes): what priors are
    fitted on and what ``validate`` compares. ``class_ids``: the classes to count (the
    dataset's class set; those present are always counted)."""
    if not samples:
        raise ValueError("cannot measure an empty set of labelled images")
    px_sizes = [s.nm_per_px for s in samples]
    known = [p for p in px_sizes if p]
    if known and len(known) < len(px_sizes):
        warnings.warn(f"pixel size known for {len(known)} of {len(px_sizes)} images only: "
                      "measuring in pixels", PriorWarning, stacklevel=3)
    in_nm = len(known) == len(px_sizes)
    inst = instance_table(samples)
    if in_nm:
        for col in ("major", "minor", "cx", "cy"):
            inst[col] = inst[col] * inst["nm_per_px"]
    rows = []
    for s in samples:
        h, w = s.shape
        area = h * w * (s.nm_per_px / 1000.0) ** 2 if in_nm else h * w / 1e6
        rows.append({"name": s.name, "source_id": s.source_id, "height": h, "width": w, "area": area})
    present = {int(c) for c in inst["class_id"].unique()}
    ids = tuple(dict.fromkeys([*(class_ids or ()), *sorted(present - set(class_ids or ()))]))
    for row, s in zip(rows, samples):
        labels = s.labels
        for cid in ids:
            row[f"n_{cid}"] = int((labels == cid).sum())
    images = pd.DataFrame(rows)
    return TrainingGeometry(inst, images, "nm" if in_nm else "px", "um2" if in_nm else "Mpx",
                            float(np.median(known)) if in_nm else None, ids)


def shape_pool(inst: pd.DataFrame, class_id: int, exclude_edge: bool = True) -> pd.DataFrame:
    """Instances of one class usable for shape statistics: those touching the image border
    (possibly truncated) are left out unless nothing else is left."""
    rows = inst[inst["class_id"] == class_id]
    if exclude_edge and (~rows["edge"]).any():
        rows = rows[~rows["edge"]]
    return rows


def frame_residuals(inst: pd.DataFrame, min_ratio: float = 1.5, by=("name", "class_id")) -> pd.Series:
    """Orientation of each elongated instance relative to its image's crystal frame.

    Edge-on <100> loops lie at 0 or 90 degrees to a frame that differs between images.
    For each group (image and class) the frame is the 4-fold circular mean of the OTHER
    elongated instances' angles (leave-one-out, so an instance never defines its own
    frame), and the residual is the angle minus that frame, wrapped to [-45, 45) degrees.
    NaN for round instances (ratio < ``min_ratio``) and instances without a partner.
    """
    out = pd.Series(np.nan, index=inst.index, dtype=float)
    elong = inst[inst["ratio"] >= min_ratio]
    for _, g in elong.groupby(list(by)):
        if len(g) < 2:
            continue
        a = np.deg2rad(g["angle"].to_numpy())
        z = np.exp(4j * a)
        frame = np.angle(z.sum() - z) / 4.0
        res = np.rad2deg(a - frame)
        out.loc[g.index] = (res + 45.0) % 90.0 - 45.0
    return out


def image_frames(inst: pd.DataFrame, class_id: int, min_ratio: float = 1.5,
                 min_count: int = 3) -> list[float]:
    """Per-micrograph (``source_id``) frame angles in [0, 90) degrees, from micrographs with
    at least ``min_count`` elongated instances of the class."""
    frames = []
    rows = inst[(inst["class_id"] == class_id) & (inst["ratio"] >= min_ratio)]
    for _, g in rows.groupby("source_id"):
        if len(g) >= min_count:
            z = np.exp(4j * np.deg2rad(g["angle"].to_numpy())).sum()
            frames.append(float(np.rad2deg(np.angle(z) / 4.0) % 90.0))
    return frames


# ----------------------------------------------------------------------------- placement
@dataclass
class Placement:
    """Where the drawn defects go in a map, and how overlaps are avoided.

    ``overlap``: ``"mask"`` rejects a position where the new mask comes within ``gap`` px
    of an existing one; ``"bbox"`` (the authors') rejects bounding boxes that intersect
    after growing them by ``gap`` px; ``"none"`` accepts anything. After ``tries`` rejected
    positions the defect is dropped (``on_failure="drop"``) or placed at the last position
    anyway (``"accept"``, the authors' choice, so their masks can overlap).
    ``margin``: centres are drawn on a canvas ``margin`` px wider than the map on every
    side and the map is then cut out of it, so defects cut by the map border appear as in
    a crop of a larger micrograph (``0``: centres inside the map, as the authors did;
    ``None``: half the 99th-percentile major axis of the prior's defects). Defects that
    land wholly outside the map still take their place on the canvas (otherwise rejected
    defects would drift out of the crowded map into the empty margin).
    ``min_area``: cut instances smaller than this (px) are dropped, as in
    ``data.tile_sample``.
    """
    overlap: str = "mask"
    gap: float = 2.0
    tries: int = 80
    on_failure: str = "drop"
    margin: float | None = None
    min_area: int = 12

    def __post_init__(self):
        if self.overlap not in ("mask", "bbox", "none"):
            raise ValueError(f"placement overlap must be 'mask', 'bbox' or 'none', got {self.overlap!r}")
        if self.on_failure not in ("drop", "accept"):
            raise ValueError(f"placement on_failure must be 'drop' or 'accept', got {self.on_failure!r}")

    def place(self, rng: np.random.Generator, defects, size: tuple[int, int],
              margin: float | None = None) -> list[Instance]:
        """``defects``: (class_id, major_px, minor_px, angle_deg, bar) tuples. Returns the
        instances inside the ``size`` map (coordinates of the map). ``margin``: the canvas
        margin in px as resolved by the prior (default: ``self.margin``, None meaning 0)."""
        H, W = size
        m = int(np.ceil(margin if margin is not None else (self.margin or 0.0)))
        canvas = (H + 2 * m, W + 2 * m)
        occupied = np.zeros(canvas, bool) if self.overlap == "mask" else None
        boxes = np.zeros((0, 4))
        g = self.gap
        out = []
        order = sorted(range(len(defects)), key=lambda k: -defects[k][1]) if self.overlap == "mask" \
            else range(len(defects))  # large first: they are the hardest to fit in
        for k in order:
            cid, major, minor, angle, bar = defects[k]
            draw, bounds = (rasterize_bar, bar_bbox) if bar else (rasterize_ellipse, ellipse_bbox)
            placed = None
            for _ in range(max(self.tries, 1)):
                cx, cy = rng.uniform(0, canvas[1]), rng.uniform(0, canvas[0])
                rast = draw(cx, cy, major, minor, angle, canvas)
                if rast is None:
                    continue
                placed = (cx, cy, rast)
                mk, x0, y0 = rast
                if self.overlap == "mask":
                    if not (occupied[y0:y0 + mk.shape[0], x0:x0 + mk.shape[1]] & mk).any():
                        break
                elif self.overlap == "bbox":  # the new box grown by the gap vs the old boxes
                    b = np.array(bounds(cx, cy, major, minor, angle)) + np.array([-g, -g, g, g])
                    if not ((b[0] < boxes[:, 2]) & (boxes[:, 0] < b[2]) &
                            (b[1] < boxes[:, 3]) & (boxes[:, 1] < b[3])).any():
                        break
                else:
                    break
            else:  # every try rejected
                if self.on_failure == "drop" or placed is None:
                    continue
            cx, cy, (mk, x0, y0) = placed
            if self.overlap == "mask":
                grown = draw(cx, cy, major + 2 * g, minor + 2 * g, angle, canvas)
                if grown is not None:
                    fm, fx, fy = grown
                    occupied[fy:fy + fm.shape[0], fx:fx + fm.shape[1]] |= fm
            elif self.overlap == "bbox":
                boxes = np.vstack([boxes, bounds(cx, cy, major, minor, angle)])
            inst = Instance(mk, x0, y0, cid, (cx, cy, major, minor, angle)).crop(m, m, m + W, m + H)
            if inst is None:
                continue
            if inst.area < self.min_area and inst.area < mk.sum():
                continue  # a sliver cut off by the map border
            out.append(inst)
        return out


# ----------------------------------------------------------------------------- priors
class MaskPrior:
    """Base class: fitted parameters live in ``params`` (JSON-able), see subclasses."""
    kind = "base"

    def __init__(self, params: dict, unit: str, area_unit: str, nm_per_px: float | None,
                 placement: Placement, fit_info: dict | None = None, classes: ClassSet | None = None):
        self.params = params
        self.classes = classes  # the dataset's class set (names in describe(), saved in the file)
        self.unit, self.area_unit, self.nm_per_px = unit, area_unit, nm_per_px
        self.placement = placement
        self.fit_info = fit_info or {}

    # subclasses ---------------------------------------------------------------------
    @classmethod
    def fit(cls, samples: list[Sample], **options) -> "MaskPrior":
        raise NotImplementedError

    def _draw(self, rng: np.random.Generator, area: float, scale: float) -> list[tuple]:
        """Defects for one canvas of ``area`` (area units): (class_id, major_px, minor_px,
        angle_deg, bar) tuples; ``scale`` converts the prior's length unit to px."""
        raise NotImplementedError

    def describe(self) -> pd.DataFrame:
        """The fitted parameters as a table (one row per class)."""
        raise NotImplementedError

    def auto_margin(self, scale: float) -> float:
        """Canvas margin (px) used when ``placement.margin`` is None: half the 99th
        percentile of the training majors."""
        return 0.5 * float(self.params.get("major_p99", 0.0)) * scale

    # shared -------------------------------------------------------------------------
    def sample(self, n: int, size: int | tuple[int, int] = 256, generator=None,
               nm_per_px: float | None = None, name: str | None = None,
               progress: bool = False) -> list[LabelMap]:
        """Draw ``n`` label maps of ``size`` px.

        ``generator``: a ``numpy.random.Generator`` or a seed. ``nm_per_px``: pixel size of
        the maps (priors fitted in nm only; default: the training data's median).
        """
        rng = generator if isinstance(generator, np.random.Generator) else np.random.default_rng(generator)
        H, W = (size, size) if np.isscalar(size) else tuple(size)
        if self.unit == "nm":
            nm = float(nm_per_px or self.nm_per_px)
            scale = 1.0 / nm
        else:
            if nm_per_px is not None:
                raise ValueError("this prior was fitted in pixels (the training data had no pixel "
                                 "size), so it cannot draw maps at another nm_per_px")
            nm, scale = None, 1.0
        margin = self.placement.margin
        m = int(np.ceil(self.auto_margin(scale) if margin is None else margin))
        canvas_px = (H + 2 * m) * (W + 2 * m)
        area = canvas_px * ((nm / 1000.0) ** 2 if nm else 1e-6)
        stem = name or self.kind
        maps = []
        for i in tqdm(range(n), desc=f"sampling {self.kind} maps", disable=not progress):
            defects = self._draw(rng, area, scale)
            inst = self.placement.place(rng, defects, (H, W), margin=m)
            maps.append(LabelMap((H, W), inst, name=f"{stem}_{i:05d}", nm_per_px=nm,
                                 meta={"prior": self.kind}))
        return maps

    def to_dict(self) -> dict:
        return {"format": FORMAT, "version": VERSION, "kind": self.kind, "unit": self.unit,
                "area_unit": self.area_unit, "nm_per_px": self.nm_per_px,
                "placement": dataclasses.asdict(self.placement), "params": self.params,
                "fit_info": self.fit_info, "classes": self.classes.to_dict() if self.classes else None}

    def save(self, path) -> Path:
        """Write the prior as JSON (atomically)."""
        write_json(path, self.to_dict())
        return Path(path)

    @classmethod
    def from_dict(cls, d: dict, where: str = "prior") -> "MaskPrior":
        try:
            placement = Placement(**d["placement"])
            classes = ClassSet.from_dict(d["classes"], f"{where} 'classes'") if d.get("classes") else None
            return cls(d["params"], d["unit"], d["area_unit"], d["nm_per_px"], placement,
                       d.get("fit_info"), classes)
        except KeyError as e:
            raise PriorFileError(f"{where}: missing key {e} in a {cls.kind} prior") from None
        except TypeError as e:
            raise PriorFileError(f"{where}: bad placement section ({e})") from None

    def class_name(self, class_id) -> str:
        return self.classes[int(class_id)].name if self.classes else str(class_id)

    def __repr__(self):
        n = self.fit_info.get("n_instances", "?")
        return (f"{type(self).__name__}(fitted on {self.fit_info.get('n_images', '?')} images / "
                f"{n} instances, unit={self.unit})")


def read_prior_file(path) -> dict:
    """The JSON of a prior file, checked for format and version (clear errors)."""
    path = Path(path)
    try:
        d = json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such prior file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise PriorFileError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(d, dict) or d.get("format") != FORMAT:
        raise PriorFileError(f"{path}: not a tem_lib mask prior (no \"format\": \"{FORMAT}\")")
    if d.get("version") != VERSION:
        raise PriorFileError(f"{path}: prior file version {d.get('version')!r}; this tem_lib "
                             f"reads version {VERSION}")
    return d
