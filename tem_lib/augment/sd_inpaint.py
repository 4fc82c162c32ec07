"""DIAG's own path (seed 001): a pretrained text-to-image INPAINTING model, no training.

Girella et al. fill a region given by a defect mask, placed on a defect-free image, with SDXL
inpainting (30 steps, guidance 20, strength 0.99) guided by a prompt a domain expert wrote.
Here: NEW defects drawn from the cell's mask prior are placed in real training crops away from
the labelled ones (as in :class:`~tem_lib.augment.ldm.RegionInpaint`) and each class's regions
are inpainted with that class's prompt. The model is a diffusers inpainting pipeline loaded
from a local folder or a Hub id (``AutoPipelineForInpainting``); nothing is downloaded unless
``download`` is true, and a model that is not there raises an error that says so. It needs
``transformers`` (the text encoder).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..config import Config
from ..data import write_dataset
from ..data.sample import Sample
from ..utils import declare_stream, derive_seed
from .base import Augmentation, Cell, register
from .ldm import new_defect_region, place_new_defects

SD_PLACES = declare_stream("sd_inpaint.places", 29)  # where new defects go
SD_NOISE = declare_stream("sd_inpaint.noise", 31)  # Stable Diffusion's noise, per image


EXPERT_PROMPTS = {  # written for bright-field (S)TEM of irradiated FeCrAl; override per data set
    "black_dot": "bright-field TEM micrograph of irradiated steel, small compact dark black dot defect, "
                 "grainy grayscale background",
    "loop_111": "bright-field TEM micrograph of irradiated steel, elliptical dislocation loop with a sharp dark "
                "outline and lighter centre, grainy grayscale background",
    "loop_100": "bright-field TEM micrograph of irradiated steel, edge-on <100> dislocation loop, short thick "
                "dark straight line, grainy grayscale background",
}


@dataclass
class SDInpaintConfig(Config):
    model: str = "diffusers/stable-diffusion-xl-1.0-inpainting-0.1"  # Hub id or local folder
    download: bool = False  # fetch the model when it is not in the local Hugging Face cache
    prompts: dict = field(default_factory=dict)  # class name -> prompt (default: EXPERT_PROMPTS)
    negative_prompt: str = "color, text, watermark, blurry"
    steps: int = 30
    guidance_scale: float = 20.0
    strength: float = 0.99
    resolution: int | None = 1024  # crops are resized to this for the model (SDXL: 1024); None: as they are
    dilate: int = 3
    min_distance: int = 4
    dtype: str = "auto"  # "auto": float16 on CUDA, float32 otherwise


def load_inpainting_pipeline(model: str, download: bool = False, dtype: str = "auto", device="cpu"):
    """A diffusers inpainting pipeline from ``model`` (folder or Hub id); offline and absent:
    ``FileNotFoundError`` saying what to do."""
    import torch
    try:
        import transformers  # noqa: F401  - the text encoder
        from diffusers import AutoPipelineForInpainting
    except ImportError as e:
        raise ImportError(f"the Stable Diffusion inpainting path needs transformers ({e}); "
                          "pip install transformers") from None
    torch_dtype = (torch.float16 if torch.device(device).type == "cuda" else torch.float32) if dtype == "auto" \
        else getattr(torch, dtype)
    local = Path(model).expanduser()
    try:
        pipe = AutoPipelineForInpainting.from_pretrained(str(local) if local.is_dir() else model,
                                                         torch_dtype=torch_dtype,
                                                         local_files_only=not download and not local.is_dir())
    except (OSError, ValueError, EnvironmentError) as e:
        where = "that folder" if local.is_dir() else "the local Hugging Face cache"
        raise FileNotFoundError(
            f"inpainting model {model!r} could not be loaded from {where} ({type(e).__name__}: "
            f"{str(e).splitlines()[0][:200]}). Nothing is downloaded unless the config says download: true "
            "(needs internet); or set model to a local folder saved with save_pretrained.") from None
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device)


@register
class SDInpaint(Augmentation):
    """DIAG: new defects inpainted into real crops by a pretrained text-guided inpainting model."""
    name = "sd_inpaint"
    Config = SDInpaintConfig

    def _make(self, cell: Cell, n: int, out_dir: Path, meta: dict) -> None:
        import torch
        from PIL import Image
        c = self.config
        pipe = load_inpainting_pipeline(c.model, c.download, c.dtype, cell.device)
        prompts = {**EXPERT_PROMPTS, **c.prompts}
        missing = [k.name for k in cell.classes if k.name not in prompts]
        if missing:
            raise ValueError(f"{out_dir}: no inpainting prompt for the classes {missing}; set prompts: {{name: text}}")
        rng = np.random.default_rng(derive_seed(cell.seed, SD_PLACES))
        proposals = cell.prior.sample(n, cell.crop_size, generator=rng, name="sd", nm_per_px=cell.nm_per_px)
        samples, added = [], 0
        for i, proposal in enumerate(proposals):
            base = cell.train[int(rng.integers(len(cell.train)))]
            new = place_new_defects(base, proposal, c.min_distance)
            h, w = base.image.shape
            size = (c.resolution or w, c.resolution or h)
            image = base.image.astype(np.float32)
            for cls in cell.classes:
                region = new_defect_region((h, w), [d for d in new if d.category_id == cls.id], c.dilate)
                if not region.any():
                    continue
                init = Image.fromarray((image * 255).round().astype(np.uint8)).convert("RGB").resize(size)
                mask = Image.fromarray(region.astype(np.uint8) * 255).resize(size, Image.NEAREST)
                g = torch.Generator().manual_seed(derive_seed(derive_seed(cell.seed, SD_NOISE), i))
                out = pipe(prompt=prompts[cls.name], negative_prompt=c.negative_prompt, image=init, mask_image=mask,
                           num_inference_steps=c.steps, guidance_scale=c.guidance_scale, strength=c.strength,
                           height=size[1], width=size[0], generator=g).images[0]
                gen = np.asarray(out.convert("L").resize((w, h), Image.BILINEAR), dtype=np.float32) / 255.0
                image = np.where(region, gen, image)  # outside the region: the real crop, exactly
            added += len(new)
            samples.append(Sample(image, [*base.instances, *new], source_id=f"sd_inpaint:{base.source_id}",
                                  nm_per_px=base.nm_per_px, name=f"sd_{i:05d}", meta={"base": base.name}))
        write_dataset(samples, out_dir, cell.classes, metadata={"model": c.model}, overwrite=True)
        meta.update({"n_images": len(samples), "defects_added": added,
                     "bases": {s.name: s.meta["base"] for s in samples}})  # image -> the real crop it started from
