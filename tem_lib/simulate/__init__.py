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
from .config import DefectSpec, SimulatorConfig, preset
from .image import default_dataset_dir, generate_dataset, simulate, simulate_micrograph

__all__ = ["DefectSpec", "SimulatorConfig", "default_dataset_dir", "generate_dataset", "preset", "simulate",
           "simulate_micrograph"]
