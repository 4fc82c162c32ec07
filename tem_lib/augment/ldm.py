"""The paper's augmentation, and DIAG's region-guided inpainting with the same generator.

``ldm``: a mask-conditioned LDM trained on exactly the cell's N crops generates a whole image
for each label map drawn from the cell's prior (Li et al. 2026).

``inpaint``: training-free with respect to the real crops (DIAG, seed 001): NEW defects drawn
from the prior are placed in real training crops where there is no labelled defect, and only
those regions are generated, by the same mask-conditioned LDM with known-region blending at
every step (``MaskToImagePipeline(known_image=, region=)``); every other pixel is the real
crop's. Labels: the crop's own plus the new ones.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np
from scipy import ndimage

from ..config import Config
from ..data import write_dataset
from ..data.sample import LabelMap, Sample
from ..layout import PIPELINE, generator_folder
from ..utils import declare_stream, derive_seed, stable_hash
from .base import Augmentation, Cell, register

LDM_TRAINING = declare_stream("ldm.quality_segmenter", 7)  # the quality filter's segmenter
PRIOR_MAPS = declare_stream("ldm.prior_maps", 13)  # label maps drawn from the cell's prior
SYNTHESIS = declare_stream("ldm.synthesis", 17)  # the generator's sampling noise
INPAINT_PLACES = declare_stream("inpaint.places", 19)  # where inpainting puts new defects
INPAINT_NOISE = declare_stream("inpaint.noise", 23)  # inpainting's noise (per batch: derive_seed(that, first index))


@dataclass
class LDMAugmentConfig(Config):
    ldm_config: dict = field(default_factory=dict)  # tem_lib.ldm.LDMConfig overrides
    sampler: str = "dpm++"
    steps: int = 25
    guidance_scale: float = 2.0
    eta: float = 1.0
    batch_size: int = 8
    # Quality filter (tem_lib.ldm.quality): drop pairs whose defects a segmenter trained on
    # the cell's real crops does not find under their masks.
    quality_filter: bool = False
    filter_min_found: float = 0.5
    filter_segmenter_steps: int = 600


def resolved_ldm_config(overrides: dict) -> dict:
    """The whole LDM configuration (library defaults included, training seeds fixed to 0)."""
    from ..ldm import LDMConfig
    c = dict(overrides or {})
    c = {**c, "autoencoder_training": {"seed": 0, **c.get("autoencoder_training", {})},
         "denoiser_training": {"seed": 0, **c.get("denoiser_training", {})}}
    return LDMConfig.from_dict(c).to_dict()


class _Generated(Augmentation):
    """Shared by the strategies that use the cell's mask-conditioned LDM."""
    Config = LDMAugmentConfig

    cache_folder = "ldm"  # one generator per cell, shared by ``ldm`` and ``inpaint``

    @classmethod
    def sweep_defaults(cls, sweep) -> dict:
        """The generator's settings of the sweep's ``augment_config.ldm`` (one LDM per cell,
        shared by ``ldm`` and ``inpaint``; ``inpaint``'s own entry overrides them)."""
        names = {f.name for f in fields(LDMAugmentConfig)}
        return {k: v for k, v in (sweep.augment_config.get("ldm") or {}).items() if k in names}

    def model_name(self) -> str:
        """The generator's folder name: one per resolved LDM configuration."""
        return generator_folder(stable_hash(resolved_ldm_config(self.config.ldm_config)))

    def model_dir(self, cell: Cell) -> Path:
        if cell.cache_dir is None:
            raise ValueError(f"augmentation {self.name!r} trains an LDM per cell: the cell needs a cache_dir")
        return Path(cell.cache_dir) / self.model_name()

    def describe(self) -> dict:
        """The config with ``ldm_config`` resolved (library defaults included): naming a default
        is the same pool; a changed default gives a new pool, never a stale one."""
        from dataclasses import asdict
        return {**asdict(self.config), "ldm_config": resolved_ldm_config(self.config.ldm_config)}

    def trained(self, cell: Cell):
        """``(pipeline, summary)`` of the cell's LDM: trained on its N crops on first use
        (resumed after an interruption), then loaded; shared through ``cell.extra`` by the
        strategies of one cell."""
        from ..ldm import train_ldm
        d = self.model_dir(cell)
        if str(d) not in cell.extra:
            cell.extra[str(d)] = train_ldm(cell.train, resolved_ldm_config(self.config.ldm_config), d,
                                           device=cell.device, sampler=self.config.sampler, classes=cell.classes)
        return cell.extra[str(d)]

    def generator(self, cell: Cell):
        return self.trained(cell)[0]

    def quality(self, cell: Cell):
        from functools import partial

        from ..ldm.quality import QualityFilter
        from ..segmentation import predict, train_segmenter
        c = self.config
        model = train_segmenter(cell.train, cell.classes.ids, steps=c.filter_segmenter_steps, device=cell.device,
                                seed=derive_seed(cell.seed, LDM_TRAINING), progress=cell.progress)
        return QualityFilter(partial(predict, model, device=cell.device), c.filter_min_found,
                             description=f"SmallUNet segmenter, {c.filter_segmenter_steps} steps on the cell's "
                                         f"{len(cell.train)} real crops")


@register
class LDMAugmentation(_Generated):
    """Whole images generated for label maps drawn from the cell's prior (the paper's)."""
    name = "ldm"
    label = "GEN"  # the paper's EXP+GEN
    id_prefix = "syn"
    legacy_sweep_keys = tuple(f.name for f in fields(LDMAugmentConfig))

    def _make(self, cell: Cell, n: int, out_dir: Path, meta: dict) -> None:
        from ..ldm.synthesis import synthesize
        c = self.config
        pipe = self.generator(cell)
        maps = cell.prior.sample(n, cell.crop_size, generator=np.random.default_rng(derive_seed(cell.seed, PRIOR_MAPS)),
                                 name="syn", nm_per_px=cell.nm_per_px)
        synthesize(pipe, maps, out_dir, cell.classes, sampler=c.sampler, steps=c.steps, guidance_scale=c.guidance_scale,
                   eta=c.eta, seed=derive_seed(cell.seed, SYNTHESIS), batch_size=c.batch_size, overwrite=True,
                   progress=cell.progress, metadata={"model": str(self.model_dir(cell) / PIPELINE)},
                   quality=self.quality(cell) if c.quality_filter else None)


@dataclass
class InpaintConfig(LDMAugmentConfig):
    dilate: int = 3  # px around each new defect that is generated too (its surroundings)
    feather: float = 1.5  # px, Gaussian sigma of the blend at the region's edge
    min_distance: int = 4  # px kept free between a new defect and a labelled one


def place_new_defects(base: Sample, proposal, min_distance: int):
    """The instances of ``proposal`` (a label map) that keep ``min_distance`` px from every
    labelled defect of ``base`` and from each other (earlier ones win)."""
    occupied = np.zeros(base.image.shape, bool)
    for inst in base.instances:
        occupied |= inst.full_mask(base.image.shape)
    grow = max(1, min_distance)
    occupied = ndimage.binary_dilation(occupied, iterations=grow)
    kept = []
    for inst in proposal.instances:
        m = inst.full_mask(base.image.shape)
        if (m & occupied).any():
            continue
        kept.append(inst)
        occupied |= ndimage.binary_dilation(m, iterations=grow)
    return kept


def new_defect_region(shape, instances, dilate: int) -> np.ndarray:
    """bool [H, W]: the masks of ``instances`` grown by ``dilate`` px (what an inpainting
    strategy regenerates; everything else stays the real crop's)."""
    region = np.zeros(shape, bool)
    for inst in instances:
        region |= inst.full_mask(shape)
    return ndimage.binary_dilation(region, iterations=dilate) if dilate and region.any() else region


@register
class RegionInpaint(_Generated):
    """DIAG-style: new defects inpainted into real crops; the rest of each crop stays real."""
    name = "inpaint"
    Config = InpaintConfig

    def _make(self, cell: Cell, n: int, out_dir: Path, meta: dict) -> None:
        import torch
        c = self.config
        pipe = self.generator(cell)
        rng = np.random.default_rng(derive_seed(cell.seed, INPAINT_PLACES))
        proposals = cell.prior.sample(n, cell.crop_size, generator=rng, name="inp", nm_per_px=cell.nm_per_px)
        samples, added = [], 0
        for lo in range(0, n, c.batch_size):
            batch = []
            for i in range(lo, min(n, lo + c.batch_size)):
                base = cell.train[int(rng.integers(len(cell.train)))]
                new = place_new_defects(base, proposals[i], c.min_distance)
                region = new_defect_region(base.image.shape, new, c.dilate)
                soft = np.maximum(ndimage.gaussian_filter(region.astype(np.float32), c.feather), region) \
                    if c.feather else region.astype(np.float32)
                batch.append((i, base, [*base.instances, *new], soft, len(new)))
            maps = np.stack([LabelMap(b[1].image.shape, b[2]).class_map() for b in batch])
            known = np.stack([b[1].image for b in batch]).astype(np.float32)
            regions = np.stack([b[3] for b in batch])
            gens = [torch.Generator().manual_seed(derive_seed(derive_seed(cell.seed, INPAINT_NOISE), b[0])) for b in batch]
            imgs = pipe(maps, num_inference_steps=c.steps, guidance_scale=c.guidance_scale, eta=c.eta,
                        generator=gens, known_image=known, region=regions)
            for (i, base, inst, _, k), img in zip(batch, imgs):
                added += k
                samples.append(Sample(img, inst, source_id=f"inpaint:{base.source_id}", nm_per_px=base.nm_per_px,
                                      name=f"inp_{i:05d}", meta={"base": base.name, "added": k}))
        write_dataset(samples, out_dir, cell.classes, metadata={"model": str(self.model_dir(cell) / PIPELINE)},
                      overwrite=True)
        meta.update({"n_images": len(samples), "defects_added": added,
                     "bases": {s.name: s.meta["base"] for s in samples}})  # image -> the real crop it started from

