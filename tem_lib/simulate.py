"""Physics-inspired simulator of bright-field (S)TEM micrographs of irradiated bcc alloys.

Every image comes with exact instance masks for the paper's three defect classes (and an
optional fourth, cavities), so it can stand in for the FeCrAl data that cannot be shipped.
The image formation, in order (PAPER_NOTES section 4):

1. Specimen transmission ``T = B * exp(-D)``: a mottled background ``B`` (thickness and
   strain variation, low-frequency random fields) attenuated by the diffraction-contrast
   "darkness" ``D`` of everything that scatters electrons out of the objective aperture:
   bend contours (broad dark bands), the dislocation network (curved dark lines, unlabelled
   distractors) and the labelled defects:
   - 1/2<111> loops: ellipses (axis ratio ~1.6, any orientation) with a sharp dark rim whose
     strength varies around the loop (g.b contrast), and a lighter centre;
   - <100> loops: mostly edge-on, short thick dark lines at 0 or 90 degrees to a per-image
     crystal frame; the rest face-on, near-circular rims;
   - black dots: compact, darkest blobs, axis ratio ~1;
   - cavities (optional): Fresnel contrast, bright core and dark rim (under-focus).
   Defect masks are the filled ellipses that a human annotator would fit; defects never
   overlap (a gap of ``min_gap_px``), so the gray-level class mask is exact too.
2. Detector blur: Gaussian point-spread function.
3. Noise: signal-dependent (variance proportional to intensity, Poisson-like), spatially
   correlated and anisotropic (scan direction), plus scan-line offsets.
4. 8-bit contrast stretch of the 0.5/99.5 percentiles to a random [low, high] range.
5. Optionally a JPEG round trip (on by default: the real FeCrAl micrographs are JPEGs).

All lengths are given in nm and densities per square micrometre, so changing ``nm_per_px``
changes the magnification, not the material. Randomness comes from one seed:
image ``i`` of a dataset uses ``numpy.random.default_rng([seed, i])``, so a dataset is
byte-identical for a seed whatever the number of worker processes.
"""
from __future__ import annotations

import dataclasses
import json
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import ndimage
from tqdm import tqdm

from .classes import ClassSet
from .classes import preset as class_preset
from .data.io import Dataset, write_dataset
from .data.sample import Instance, Sample
from .geometry import ellipse_frame, rasterize_ellipse
from .utils import provenance, read_json

Range = tuple[float, float]


@dataclass
class DefectSpec:
    """Population of one defect class. Sizes are full major-axis lengths in nm."""
    density_per_um2: float  # mean areal density
    major_median_nm: float  # log-normal major axis
    major_sigma_log: float
    major_range_nm: Range  # hard limits of the major axis
    ratio_median: float  # log-normal axis ratio (major / minor), >= 1
    ratio_sigma_log: float
    contrast: Range  # peak darkness D (T = B exp(-D)); negative = brighter
    rim_width_nm: float = 2.0  # loops and cavities: Gaussian rim half-width
    centre_fraction: float = 0.2  # loops: centre darkness relative to the rim


def _default_classes() -> dict[str, DefectSpec]:
    # Matched to ../shared/data/fecral-3class at ~1 nm/px (README "Facts worth knowing"):
    # major axis medians 19-24 / 37-54 / 31-53 px on the 1024-pixel images, axis ratio
    # medians 1.01 / 1.6 / 1.2, about 80 defects per square micrometre of which ~51 % black
    # dots, 29 % 1/2<111> loops and 20 % <100> loops.
    return {
        "black_dot": DefectSpec(41.0, 21.0, 0.35, (6.0, 80.0), 1.0, 0.12, (0.55, 1.0)),
        "loop_111": DefectSpec(23.0, 50.0, 0.45, (14.0, 220.0), 1.6, 0.18, (0.45, 0.85),
                               rim_width_nm=2.2, centre_fraction=0.25),
        "loop_100": DefectSpec(16.0, 48.0, 0.50, (12.0, 160.0), 3.0, 0.35, (0.5, 0.9),
                               rim_width_nm=2.2, centre_fraction=0.25),
        "cavity": DefectSpec(0.0, 12.0, 0.35, (4.0, 40.0), 1.0, 0.08, (-0.35, -0.15),
                             rim_width_nm=1.2),
    }


@dataclass
class SimulatorConfig:
    """Everything that defines a simulated micrograph population (saved with each dataset)."""
    height: int = 1024
    width: int = 1024
    nm_per_px: float = 1.0
    classes: dict[str, DefectSpec] = field(default_factory=_default_classes)
    density_log_sd: float = 0.5  # per-image density multiplier (log-normal): real images vary 5x
    loop_100_edge_on: float = 0.4  # fraction of <100> loops seen edge-on (dark lines)
    loop_100_width_nm: Range = (4.0, 14.0)  # edge-on loops: thickness of the dark line
    orientation_jitter_deg: float = 4.0  # edge-on <100> loops around the 0/90 degree frame
    min_gap_px: int = 2  # empty pixels between defect masks
    placement_tries: int = 40
    # background and distractors
    background_level: Range = (0.45, 0.75)
    mottle_amplitude: Range = (0.04, 0.12)  # relative, two octaves of low-frequency noise
    mottle_scale_nm: float = 60.0
    lines_per_um2: Range = (3.0, 12.0)  # dislocation-network segments
    line_length_nm: Range = (100.0, 700.0)
    line_width_nm: Range = (1.3, 3.0)  # Gaussian sigma of the line profile
    line_contrast: Range = (0.35, 0.9)
    line_curvature: float = 0.05  # sd of the direction change per nm (rad)
    bend_contour_probability: float = 0.6
    bend_contour_width: Range = (0.04, 0.1)  # in units of the underlying field's sd
    bend_contour_contrast: Range = (0.15, 0.4)
    bend_contour_scale_nm: float = 400.0
    # imaging
    psf_sigma_px: Range = (0.8, 1.6)
    noise_rel_sigma: Range = (0.015, 0.035)  # noise sd / mean intensity
    noise_corr_sigma_px: Range = (0.3, 1.1)  # correlation length along x (fast scan)
    noise_anisotropy: Range = (0.3, 1.0)  # correlation length along y / along x
    scanline_rel_sigma: Range = (0.0, 0.02)
    stretch_low: Range = (18.0, 45.0)  # 8-bit value of the 0.5th percentile
    stretch_high: Range = (205.0, 232.0)  # 8-bit value of the 99.5th percentile
    jpeg_quality: Range | None = (75.0, 95.0)  # JPEG round trip as in the exported FeCrAl
    # micrographs (None: lossless); masks are unaffected
    # Off by default (preset "fecral_grains" turns them on; images of the other presets are
    # unchanged): grain boundaries, partly overlapping defects, grainier texture.
    grains_per_um2: float = 0.0  # Voronoi grains (warped): a contrast step between grains, dark
    # boundaries with thickness fringes, exact boundary masks as the label layer "grain_boundary"
    grain_contrast: Range = (0.04, 0.12)  # sd of the per-grain log brightness
    boundary_width_nm: Range = (1.5, 3.0)  # labelled width of a boundary
    boundary_contrast: Range = (0.3, 0.7)  # darkness at the boundary
    boundary_fringe_nm: Range = (3.0, 6.0)  # period of the thickness fringes beside it
    boundary_fringe_contrast: Range = (0.05, 0.2)
    boundary_wiggle_nm: float = 8.0  # boundaries are curved by a smooth warp of this amplitude
    overlap_fraction: float = 0.0  # defects placed without the no-overlap check (partly overlapping)
    texture_amplitude: Range = (0.0, 0.0)  # grainy low-frequency texture (relative), at texture_scale_nm
    texture_scale_nm: float = 12.0

    def class_set(self) -> ClassSet:
        """The classes this configuration draws: the paper's ``fecral`` class set, plus
        cavities (``fecral_cavities``) when their density is positive."""
        cav = self.classes.get("cavity")
        unknown = set(self.classes) - set(class_preset("fecral_cavities").names)
        if unknown:
            raise ValueError(f"simulator classes {sorted(unknown)} have no class-set entry; known: "
                             f"{list(class_preset('fecral_cavities').names)}")
        return class_preset("fecral_cavities" if cav is not None and cav.density_per_um2 > 0 else "fecral")

    @property
    def area_um2(self) -> float:
        return self.height * self.width * (self.nm_per_px / 1000.0) ** 2

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "SimulatorConfig":
        d = dict(d)
        classes = {k: DefectSpec(**{f: tuple(v) if isinstance(v, list) else v
                                    for f, v in spec.items()})
                   for k, spec in d.pop("classes", {}).items()}
        unknown = set(d) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"unknown simulator parameter(s): {sorted(unknown)}")
        d = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}
        return cls(classes=classes or _default_classes(), **d)


def preset(name: str = "fecral", **overrides) -> SimulatorConfig:
    """Named configurations. ``fecral``: the paper's three classes matched to the real
    FeCrAl statistics; ``fecral_cavities``: the same plus cavities (fourth class);
    ``fecral_grains``: ``fecral`` in a nanocrystalline film (grain boundaries as a label
    layer, for the U-Net study of notebook 08), with partly overlapping defects and grainier
    texture."""
    cfg = SimulatorConfig()
    if name == "fecral_cavities":
        cfg.classes["cavity"].density_per_um2 = 12.0
    elif name == "fecral_grains":  # nanocrystalline grains, some overlapping defects, grainier texture
        cfg = dataclasses.replace(cfg, grains_per_um2=60.0, overlap_fraction=0.15, texture_amplitude=(0.02, 0.06))
    elif name != "fecral":
        raise ValueError(f"unknown simulator preset {name!r}; known: fecral, fecral_cavities, fecral_grains")
    return dataclasses.replace(cfg, **overrides)


# ----------------------------------------------------------------------------- fields
def _smooth_field(rng, shape, scale_px: float) -> np.ndarray:
    """Zero-mean, unit-sd Gaussian random field with correlation length ~``scale_px``:
    white noise smoothed on a grid ``scale_px / 4`` times coarser, upsampled bilinearly
    (the field is smooth on that grid, so interpolation adds no visible structure)."""
    H, W = shape
    f = int(np.clip(scale_px // 4, 1, 32))
    coarse = rng.standard_normal((H // f + 2, W // f + 2)).astype(np.float32)
    coarse = ndimage.gaussian_filter(coarse, scale_px / f, mode="wrap")
    out = ndimage.zoom(coarse, f, order=1, grid_mode=False)[:H, :W]
    return (out - out.mean()) / (out.std() + 1e-6)


def _dislocation_lines(rng, cfg: SimulatorConfig, shape) -> np.ndarray:
    """Darkness of the dislocation network: smooth random curves, Gaussian cross-section."""
    H, W = shape
    nm = cfg.nm_per_px
    n = rng.poisson(rng.uniform(*cfg.lines_per_um2) * cfg.area_um2)
    acc = np.zeros(shape, np.float32)
    step = 0.5  # px between points, so lines have no gaps
    sigma = rng.uniform(*cfg.line_width_nm) / nm
    for _ in range(n):
        length = rng.uniform(*cfg.line_length_nm) / nm
        k = max(int(length / step), 2)
        theta = rng.uniform(0, 2 * np.pi) + np.cumsum(
            rng.normal(0, cfg.line_curvature * np.sqrt(step * nm), k))
        x = rng.uniform(-0.1 * W, 1.1 * W) + np.cumsum(step * np.cos(theta))
        y = rng.uniform(-0.1 * H, 1.1 * H) + np.cumsum(step * np.sin(theta))
        # contrast varies along the line (it bends in and out of the diffracting condition)
        c = rng.uniform(*cfg.line_contrast) * (0.7 + 0.3 * np.sin(
            np.linspace(0, rng.uniform(1, 6), k) + rng.uniform(0, 6.3)))
        xi, yi = np.rint(x - 0.5).astype(int), np.rint(y - 0.5).astype(int)
        ok = (xi >= 0) & (xi < W) & (yi >= 0) & (yi < H)
        np.add.at(acc, (yi[ok], xi[ok]), c[ok].astype(np.float32))
    if n == 0:
        return acc
    # a straight line of unit weight per 'step' px has peak 1 / (step sqrt(2 pi) sigma)
    return ndimage.gaussian_filter(acc, sigma) * (step * np.sqrt(2 * np.pi) * sigma)


def _grain_boundaries(rng, cfg: SimulatorConfig, shape):
    """Warped Voronoi grains: (darkness of the boundaries and their fringes, boundary mask,
    per-pixel grain brightness factor)."""
    from scipy.spatial import cKDTree
    H, W = shape
    nm = cfg.nm_per_px
    n = max(2, rng.poisson(cfg.grains_per_um2 * cfg.area_um2 * 1.44))  # seeds over a 1.2x larger frame
    seeds = np.column_stack([rng.uniform(-0.1 * H, 1.1 * H, n), rng.uniform(-0.1 * W, 1.1 * W, n)])
    wiggle = cfg.boundary_wiggle_nm / nm
    scale = max(8.0 * wiggle, 16.0)
    yy, xx = np.mgrid[:H, :W].astype(np.float32)
    yy += wiggle * _smooth_field(rng, shape, scale)
    xx += wiggle * _smooth_field(rng, shape, scale)
    pts = np.column_stack([yy.ravel(), xx.ravel()])
    d, idx = cKDTree(seeds).query(pts, k=2)
    a, b = seeds[idx[:, 0]], seeds[idx[:, 1]]
    # distance to the bisector of the two nearest seeds (the boundary between their grains)
    dist = ((d[:, 1] ** 2 - d[:, 0] ** 2) / (2 * np.linalg.norm(a - b, axis=1) + 1e-9)).reshape(shape)
    width = rng.uniform(*cfg.boundary_width_nm) / nm
    mask = dist <= max(width / 2, 0.5)
    period = rng.uniform(*cfg.boundary_fringe_nm) / nm
    dark = rng.uniform(*cfg.boundary_contrast) * np.exp(-0.5 * (dist / max(width / 2, 0.5)) ** 2)
    dark += rng.uniform(*cfg.boundary_fringe_contrast) * np.cos(2 * np.pi * dist / period) * np.exp(-dist / (2 * period))
    bright = np.exp(rng.normal(0, rng.uniform(*cfg.grain_contrast), n))[idx[:, 0]].reshape(shape)
    return dark.astype(np.float32), mask, bright.astype(np.float32)


# ----------------------------------------------------------------------------- defects
def _sample_geometry(rng, spec: DefectSpec, name: str, cfg: SimulatorConfig, frame_deg: float):
    nm = cfg.nm_per_px
    major_nm = np.clip(spec.major_median_nm * np.exp(rng.normal(0, spec.major_sigma_log)),
                       *spec.major_range_nm)
    kind = name
    if name == "loop_100" and rng.random() < cfg.loop_100_edge_on:
        kind = "loop_100_edge"
        ratio = max(spec.ratio_median * np.exp(rng.normal(0, spec.ratio_sigma_log)), 2.0)
        minor_nm = np.clip(major_nm / ratio, *cfg.loop_100_width_nm)
        angle = frame_deg + 90.0 * rng.integers(0, 2) + rng.normal(0, cfg.orientation_jitter_deg)
    else:
        if name == "loop_100":  # face-on: near-circular (square-ish) loops
            ratio = np.exp(abs(rng.normal(0, 0.12)))
        elif name == "loop_111":
            ratio = max(spec.ratio_median * np.exp(rng.normal(0, spec.ratio_sigma_log)), 1.0)
        else:  # black dots and cavities: half-normal log ratio around 1
            ratio = np.exp(abs(rng.normal(0, spec.ratio_sigma_log)))
        minor_nm = major_nm / ratio
        angle = rng.uniform(0, 180)
    return kind, major_nm / nm, max(minor_nm / nm, 1.0), float(angle % 180.0)


def _defect_darkness(rng, kind: str, spec: DefectSpec, r: np.ndarray, phi: np.ndarray,
                     minor: float, nm: float) -> np.ndarray:
    """Darkness profile of one defect on its frame: ``r`` is the normalised elliptical
    radius, ``phi`` the angle around the ellipse, ``minor`` the minor axis (px)."""
    c = rng.uniform(*spec.contrast)
    b = minor / 2.0
    if kind != "loop_100_edge":  # real loops are not perfect ellipses; annotators fit one
        r = r * (1.0 + 0.04 * rng.standard_normal() * np.sin(2 * phi + rng.uniform(0, 6.3))
                 + 0.03 * rng.standard_normal() * np.sin(3 * phi + rng.uniform(0, 6.3)))
    d = (r - 1.0) * b  # approximate signed distance to the outline (px), exact on the minor axis
    if kind in ("loop_111", "loop_100"):
        w = max(spec.rim_width_nm / nm, 0.7)
        rim = np.exp(-0.5 * ((d + w) / w) ** 2)
        # g.b contrast: the rim fades on two opposite sides of the loop
        rim *= 1.0 - rng.uniform(0.0, 0.6) * np.cos(phi - rng.uniform(0, np.pi)) ** 2
        centre = spec.centre_fraction * (1.0 / (1.0 + np.exp(d / 0.8)))
        return c * (rim + centre)
    if kind == "loop_100_edge":
        return c * (1.0 / (1.0 + np.exp((r - 0.8) / 0.1)))
    if kind == "black_dot":
        core = 1.0 / (1.0 + np.exp((r - 0.75) / 0.12))
        return c * core * (1.0 - 0.25 * r ** 2)
    if kind == "cavity":  # bright core (c < 0), dark Fresnel fringe just outside
        w = max(spec.rim_width_nm / nm, 0.7)
        core = 1.0 / (1.0 + np.exp((r - 0.9) / 0.06))
        return c * core + abs(c) * 1.5 * np.exp(-0.5 * ((d - w) / w) ** 2)
    raise ValueError(f"unknown defect kind {kind!r}")


def _place_defects(rng, cfg: SimulatorConfig, shape):
    """Draw counts, shapes and non-overlapping positions; return instances and darkness."""
    H, W = shape
    mult = np.exp(rng.normal(0, cfg.density_log_sd) - cfg.density_log_sd ** 2 / 2)
    frame_deg = rng.uniform(0, 90)  # crystal frame of the <100> loops in this image
    todo = []
    for name, spec in cfg.classes.items():
        n = rng.poisson(spec.density_per_um2 * cfg.area_um2 * mult) if spec.density_per_um2 > 0 else 0
        todo += [(name, _sample_geometry(rng, spec, name, cfg, frame_deg)) for _ in range(n)]
    todo.sort(key=lambda t: -t[1][1])  # large first: they are the hardest to place
    occupied = np.zeros(shape, bool)
    darkness = np.zeros(shape, np.float32)
    instances = []
    g = cfg.min_gap_px
    for name, (kind, major, minor, angle) in todo:
        spec = cfg.classes[name]
        for _ in range(cfg.placement_tries):
            cx, cy = rng.uniform(0, W), rng.uniform(0, H)
            rast = rasterize_ellipse(cx, cy, major, minor, angle, shape)
            if rast is None:
                continue
            m, x0, y0 = rast
            free = cfg.overlap_fraction > 0 and rng.random() < cfg.overlap_fraction
            if not free and (occupied[y0:y0 + m.shape[0], x0:x0 + m.shape[1]] & m).any():
                continue
            # reserve the ellipse grown by the gap, so the next defect keeps its distance
            fm, fx, fy = rasterize_ellipse(cx, cy, major + 2 * g, minor + 2 * g, angle, shape)
            occupied[fy:fy + fm.shape[0], fx:fx + fm.shape[1]] |= fm
            pad = 3.0 * max(spec.rim_width_nm / cfg.nm_per_px, 1.0) + 2
            fx0, fy0, r, phi = ellipse_frame(cx, cy, major, minor, angle, shape, pad=pad)
            darkness[fy0:fy0 + r.shape[0], fx0:fx0 + r.shape[1]] += _defect_darkness(
                rng, kind, spec, r, phi, minor, cfg.nm_per_px)
            instances.append(Instance(m, x0, y0, _CLASS_IDS[name], (cx, cy, major, minor, angle)))
            break
    return instances, darkness


_CLASS_IDS = {c.name: c.id for c in class_preset("fecral_cavities")}


# ----------------------------------------------------------------------------- image
def simulate_micrograph(cfg: SimulatorConfig, rng: np.random.Generator,
                        name: str = "sim") -> Sample:
    """One simulated micrograph (float image in [0, 1] holding 8-bit levels) with labels."""
    shape = (cfg.height, cfg.width)
    nm = cfg.nm_per_px
    instances, darkness = _place_defects(rng, cfg, shape)
    darkness += _dislocation_lines(rng, cfg, shape)
    if rng.random() < cfg.bend_contour_probability:
        f = _smooth_field(rng, shape, cfg.bend_contour_scale_nm / nm)
        level, width = rng.normal(0, 0.7), rng.uniform(*cfg.bend_contour_width)
        darkness += rng.uniform(*cfg.bend_contour_contrast) * np.exp(-0.5 * ((f - level) / (width * 4)) ** 2)
    scale = cfg.mottle_scale_nm / nm
    mottle = _smooth_field(rng, shape, scale) + 0.5 * _smooth_field(rng, shape, scale / 4)
    background = rng.uniform(*cfg.background_level) * (1 + rng.uniform(*cfg.mottle_amplitude) / 1.12 * mottle)
    layers = {}
    if cfg.texture_amplitude[1] > 0:
        background = background * (1 + rng.uniform(*cfg.texture_amplitude)
                                    * _smooth_field(rng, shape, cfg.texture_scale_nm / nm))
    if cfg.grains_per_um2 > 0:
        gb_dark, layers["grain_boundary"], bright = _grain_boundaries(rng, cfg, shape)
        darkness = darkness + gb_dark
        background = background * bright
    t = background * np.exp(-darkness)
    t = ndimage.gaussian_filter(t, rng.uniform(*cfg.psf_sigma_px))
    # noise: variance proportional to the signal, correlated mostly along the scan (x)
    sx = rng.uniform(*cfg.noise_corr_sigma_px)
    sy = sx * rng.uniform(*cfg.noise_anisotropy)
    white = rng.standard_normal(shape).astype(np.float32)
    corr = ndimage.gaussian_filter(white, (sy, sx))
    corr /= corr.std() + 1e-6
    mean = float(t.mean())
    t = t + rng.uniform(*cfg.noise_rel_sigma) * np.sqrt(mean * np.clip(t, 0, None)) * corr
    rows = ndimage.gaussian_filter1d(rng.standard_normal(shape[0]), 1.0)
    t = t + rng.uniform(*cfg.scanline_rel_sigma) * mean * rows[:, None]
    lo, hi = np.percentile(t, [0.5, 99.5])
    out_lo, out_hi = rng.uniform(*cfg.stretch_low), rng.uniform(*cfg.stretch_high)
    img8 = np.clip(np.rint(out_lo + (t - lo) * (out_hi - out_lo) / (hi - lo + 1e-9)), 0, 255)
    img8 = img8.astype(np.uint8)
    if cfg.jpeg_quality is not None:
        img8 = _jpeg_round_trip(img8, int(rng.uniform(*cfg.jpeg_quality)))
    return Sample((img8 / 255.0).astype(np.float32), instances, source_id=name, nm_per_px=nm,
                  name=name, layers=layers)


def _jpeg_round_trip(img8: np.ndarray, quality: int) -> np.ndarray:
    import io

    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray(img8).save(buf, format="JPEG", quality=quality)
    buf.seek(0)
    with Image.open(buf) as im:
        return np.asarray(im.convert("L"))


def _simulate_one(args) -> Sample:
    cfg, seed, i = args
    return simulate_micrograph(cfg, np.random.default_rng([seed, i]), name=f"sim_{seed}_{i:05d}")


def simulate(cfg: SimulatorConfig, n_images: int, seed: int = 0, workers: int | None = None,
             progress: bool = False) -> Dataset:
    """``n_images`` micrographs (a :class:`~tem_lib.data.Dataset` with the configuration's
    class set); identical for a seed whatever ``workers`` is."""
    if n_images < 1:
        raise ValueError(f"n_images must be >= 1, got {n_images}")
    workers = workers or min(os.cpu_count() or 1, n_images, 8)
    jobs = [(cfg, seed, i) for i in range(n_images)]
    if workers <= 1:
        it = map(_simulate_one, jobs)
        pool = None
    else:
        pool = ProcessPoolExecutor(workers)
        it = pool.map(_simulate_one, jobs, chunksize=max(1, n_images // (4 * workers)))
    if progress:
        it = tqdm(it, total=n_images, desc="simulating micrographs")
    try:
        return Dataset(list(it), cfg.class_set(), format="simulated")
    finally:
        if pool is not None:
            pool.shutdown()


def default_dataset_dir(data_dir, preset_name: str, image_size: int, n_images: int, seed: int) -> Path:
    """Where notebook 01 writes a simulated dataset of these parameters (under ``data_dir``)."""
    return Path(data_dir) / "simulated" / f"{preset_name}_{image_size}px_n{n_images}_seed{seed}"


def generate_dataset(out_dir, cfg: SimulatorConfig | None = None, n_images: int = 16,
                     seed: int = 0, workers: int | None = None, overwrite: bool = False,
                     progress: bool = False) -> Path:
    """Simulate and write a dataset folder (images, COCO, gray-level masks, metadata).

    An existing folder made with the same configuration and seed is reused as it is; one
    made otherwise is replaced if ``overwrite``, else a FileExistsError.
    """
    cfg = cfg or preset()
    out_dir = Path(out_dir)
    meta = {"generator": "tem_lib.simulate", "simulator": cfg.to_dict(), "seed": seed,
            "n_images": n_images, "nm_per_px": cfg.nm_per_px}
    if out_dir.exists():
        old = read_json(out_dir / "metadata.json") if (out_dir / "metadata.json").is_file() else {}
        if _same_parameters(old, meta):
            return out_dir
        if not overwrite:
            raise FileExistsError(f"{out_dir}: exists with other parameters (pass overwrite=True)")
    samples = simulate(cfg, n_images, seed, workers, progress)
    return write_dataset(samples, out_dir, cfg.class_set(), {**meta, "provenance": provenance()}, overwrite=True)


def _same_parameters(old: dict, meta: dict) -> bool:
    """Whether a folder's metadata describes the dataset ``meta`` asks for; simulator
    parameters added since the folder was written count as their defaults."""
    try:
        sim = _jsonable(SimulatorConfig.from_dict(old["simulator"]).to_dict())
    except (KeyError, TypeError, ValueError):
        return False
    return {**{k: old.get(k) for k in meta}, "simulator": sim} == _jsonable(meta)


def _jsonable(obj):
    return json.loads(json.dumps(obj))
