"""The specimen: background fields, dislocation lines, grain boundaries and the labelled defects."""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..classes import preset as class_preset
from ..data.sample import Instance
from ..geometry import ellipse_frame, rasterize_ellipse
from .config import DefectSpec, SimulatorConfig


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


