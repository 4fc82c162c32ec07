"""What a simulated micrograph is made of: defect classes, densities, sizes, imaging settings."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from ..classes import ClassSet
from ..classes import preset as class_preset
from ..config import Config

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
class SimulatorConfig(Config):
    """Everything that defines a simulated micrograph population (saved with each dataset)."""
    _where = "simulator config"
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


