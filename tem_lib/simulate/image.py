"""Image formation (transmission, blur, noise, contrast, JPEG) and datasets of simulated micrographs."""
from __future__ import annotations

import json
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from scipy import ndimage
from tqdm import tqdm

from ..data.io import Dataset, write_dataset
from ..data.sample import Sample
from ..layout import DATASET_META
from ..utils import provenance, read_json
from .config import SimulatorConfig, preset
from .scene import _dislocation_lines, _grain_boundaries, _place_defects, _smooth_field


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
        old = read_json(out_dir / DATASET_META) if (out_dir / DATASET_META).is_file() else {}
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
