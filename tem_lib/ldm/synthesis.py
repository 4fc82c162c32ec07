"""Turn label maps (from a mask prior) into a labelled synthetic dataset folder.

The folder is an ordinary ``tem_lib`` dataset (``images/``, ``masks/``, ``annotations.json``,
``metadata.json``) that :func:`tem_lib.data.load_dataset` reads like any other. Generation
runs in chunks saved beside the folder, so an interrupted run resumes where it stopped; the
dataset itself appears only when complete.

Image ``i`` is drawn with its own generator seeded ``seed * 1_000_003 + i``, so it does not
depend on the batch size or on which chunk it fell in.
"""
from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..data import LabelMap, write_dataset
from ..data.images import to_uint8
from ..utils import stable_hash, torch_generator
from .pipeline import MaskToImagePipeline
from .quality import QualityFilter


def generate(pipe: MaskToImagePipeline, label_maps, sampler: str = "dpm++", steps: int = 25,
             guidance_scale: float = 1.0, eta: float = 1.0, seed: int = 0, batch_size: int = 8,
             first_index: int = 0, progress: bool = True) -> np.ndarray:
    """float32 [N, H, W] images in [0, 1] for ``label_maps`` (one size), in batches."""
    pipe.set_sampler(sampler)
    device = pipe._execution_device
    out = []
    for i in tqdm(range(0, len(label_maps), batch_size), desc=f"{sampler} x{steps}", disable=not progress,
                  mininterval=2.0):
        batch = label_maps[i:i + batch_size]
        gens = [torch_generator(seed, first_index + i + j, device) for j in range(len(batch))]
        out.append(pipe(batch, num_inference_steps=steps, guidance_scale=guidance_scale, eta=eta, generator=gens))
    return np.concatenate(out)


def time_samplers(pipe: MaskToImagePipeline, label_maps, settings, eta: float = 1.0, seed: int = 0,
                  batch_size: int = 8) -> tuple:
    """Images of the same ``label_maps`` drawn with each ``(sampler, steps, guidance_scale)`` of
    ``settings``, same seeds, and a table of what each cost (seconds, images per second).
    Returns ``({(sampler, steps): images [N, H, W]}, table)``."""
    import pandas as pd
    images, rows = {}, []
    for name, k, g in settings:
        t0 = time.perf_counter()
        images[name, k] = generate(pipe, label_maps, name, k, guidance_scale=g, eta=eta, seed=seed,
                                   batch_size=batch_size, progress=False)
        sec = time.perf_counter() - t0
        rows.append({"sampler": name, "steps": k, "guidance_scale": g, "seconds": sec,
                     "images_per_second": len(label_maps) / sec})
    return images, pd.DataFrame(rows)


def synthesize(pipe: MaskToImagePipeline, label_maps: list[LabelMap], out_dir, classes, sampler: str = "dpm++",
               steps: int = 25, guidance_scale: float = 1.0, eta: float = 1.0, seed: int = 0,
               batch_size: int = 8, chunk: int = 64, metadata: dict | None = None,
               overwrite: bool = False, progress: bool = True, quality: QualityFilter | None = None) -> Path:
    """Generate an image for every label map and write the pairs to ``out_dir`` (a dataset
    folder with ``classes``, the training data's class set).

    ``metadata`` (e.g. the pipeline path, the prior) is stored with the sampler settings,
    the seed rule and the timing in ``out_dir/metadata.json``. ``quality``: drop the pairs
    whose image does not show its mask's defects (:class:`~tem_lib.ldm.quality.QualityFilter`);
    how many were dropped and why is recorded under ``quality_filter`` in the metadata.
    """
    out_dir = Path(out_dir)
    if not label_maps:
        raise ValueError(f"{out_dir}: no label maps to synthesise")
    if out_dir.exists() and not overwrite:
        raise FileExistsError(f"{out_dir}: already exists (pass overwrite=True to replace it)")
    settings = {"sampler": sampler, "steps": steps, "guidance_scale": guidance_scale,
                "eta": eta if sampler in ("ddim", "ddpm") else None, "seed": seed,
                "seed_rule": "image i: torch.Generator().manual_seed(seed * 1000003 + i)",
                "n_images": len(label_maps)}
    key = stable_hash({**settings, "maps": [m.name for m in label_maps], "model": (metadata or {}).get("model")})
    parts = out_dir.with_name(f".{out_dir.name}.parts-{key}")
    parts.mkdir(parents=True, exist_ok=True)
    t0, generated = time.perf_counter(), 0
    n_chunks = (len(label_maps) + chunk - 1) // chunk
    for c in tqdm(range(n_chunks), desc="synthesis chunks", disable=not progress or n_chunks == 1):
        path = parts / f"chunk{c:05d}.npy"
        if path.is_file():
            continue
        lo = c * chunk
        imgs = generate(pipe, label_maps[lo:lo + chunk], sampler, steps, guidance_scale, eta, seed,
                        batch_size, first_index=lo, progress=progress and n_chunks == 1)
        tmp = path.with_name(f".{path.name}.tmp.npy")
        np.save(tmp, to_uint8(imgs))
        tmp.replace(path)
        generated += len(imgs)
    seconds = time.perf_counter() - t0
    images = np.concatenate([np.load(parts / f"chunk{c:05d}.npy") for c in range(n_chunks)])
    floats = images.astype(np.float32) / 255.0
    keep, record = quality(floats, label_maps) if quality is not None else (np.ones(len(floats), bool), None)
    samples = [m.to_sample(img) for m, img, k in zip(label_maps, floats, keep) if k]
    if not samples:
        raise ValueError(f"{out_dir}: the quality filter dropped all {len(keep)} generated pairs "
                         f"({record['dropped'][0]['reason']}, ...); lower min_found or check the generator")
    meta = {**(metadata or {}), **settings, "quality_filter": record,
            "generated_this_run": generated, "seconds_this_run": round(seconds, 2),
            "images_per_second": round(generated / seconds, 4) if generated else None,
            "nm_per_px": label_maps[0].nm_per_px, "synthetic": True}
    write_dataset(samples, out_dir, classes, metadata=meta, overwrite=overwrite)
    shutil.rmtree(parts, ignore_errors=True)
    return out_dir
