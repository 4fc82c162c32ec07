"""``MaskToImagePipeline``: class-id mask in, grayscale micrograph out (a diffusers pipeline).

Saved with ``save_pretrained`` as safetensors plus JSON configs (``model_index.json``,
``vae/``, ``unet/``, ``mask_encoder/``, ``scheduler/``) and loaded by path with
:func:`load_pipeline`, which never unpickles code and turns a corrupt or mismatched folder into
a ``ValueError`` naming it.
"""
from __future__ import annotations

import inspect
import json
from pathlib import Path

import numpy as np
import torch
from diffusers import (
    AutoencoderKL,
    DDIMScheduler,
    DDPMScheduler,
    DiffusionPipeline,
    DPMSolverMultistepScheduler,
    UNet2DModel,
    UniPCMultistepScheduler,
)
from diffusers.utils.torch_utils import randn_tensor

from .conditioning import MaskEncoder, one_hot
from .noise import ResidualNoise

SAMPLERS = {
    # name: (scheduler class, extra config). "ddim" with eta=1 is the authors' sampler.
    "ddim": (DDIMScheduler, {}),
    "ddpm": (DDPMScheduler, {}),
    "dpm++": (DPMSolverMultistepScheduler, {"algorithm_type": "dpmsolver++", "solver_order": 2}),
    "unipc": (UniPCMultistepScheduler, {}),
}


class MaskToImagePipeline(DiffusionPipeline):
    """Generate micrographs whose defects sit where a class-id mask puts them.

    Components: ``vae`` (grayscale ``AutoencoderKL``; its ``scaling_factor`` normalises the
    latents), ``unet`` (``UNet2DModel`` on [latent, mask encoding]), ``mask_encoder``
    (:class:`MaskEncoder`), a diffusers ``scheduler`` (swap with :meth:`set_sampler`) and,
    optionally, ``noise`` (:class:`~tem_lib.ldm.noise.ResidualNoise`: the training crops' noise
    that the decoder cannot draw, added after decoding; pipelines saved without it load with
    ``noise=None``).
    """
    model_cpu_offload_seq = "mask_encoder->unet->vae"
    _optional_components = ["noise"]

    def __init__(self, vae: AutoencoderKL, unet: UNet2DModel, mask_encoder: MaskEncoder, scheduler,
                 noise: ResidualNoise | None = None):
        super().__init__()
        self.register_modules(vae=vae, unet=unet, mask_encoder=mask_encoder, scheduler=scheduler, noise=noise)

    # ------------------------------------------------------------------ properties
    @property
    def factor(self) -> int:
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    @property
    def class_ids(self) -> tuple[int, ...]:
        return tuple(int(c) for c in self.mask_encoder.config.class_ids)

    @property
    def size_multiple(self) -> int:
        """Masks must be a multiple of this many pixels on each side."""
        return self.factor * 2 ** (len(self.unet.config.block_out_channels) - 1)

    def check_compatible(self, where: str = "pipeline") -> None:
        """Raise ``ValueError`` if the components were not made for each other."""
        lat = self.vae.config.latent_channels
        enc = self.mask_encoder.config
        problems = []
        if self.unet.config.in_channels != lat + enc.out_channels:
            problems.append(f"unet in_channels {self.unet.config.in_channels} != latent channels "
                            f"{lat} + mask channels {enc.out_channels}")
        if self.unet.config.out_channels != lat:
            problems.append(f"unet out_channels {self.unet.config.out_channels} != latent channels {lat}")
        if enc.factor != self.factor:
            problems.append(f"mask encoder factor {enc.factor} != autoencoder factor {self.factor}")
        if problems:
            raise ValueError(f"{where}: components do not fit together: " + "; ".join(problems))

    def set_sampler(self, name: str) -> "MaskToImagePipeline":
        """Swap the scheduler, keeping the training noise schedule and prediction type."""
        if name not in SAMPLERS:
            raise ValueError(f"unknown sampler {name!r}; known: {sorted(SAMPLERS)}")
        klass, extra = SAMPLERS[name]
        self.scheduler = klass.from_config(self.scheduler.config, **extra)
        return self

    # ------------------------------------------------------------------ sampling
    def prepare_masks(self, masks) -> torch.Tensor:
        """uint8 class-id maps [B, H, W] from LabelMaps/Samples, arrays or a tensor; checks size."""
        if isinstance(masks, (list, tuple)) and masks and hasattr(masks[0], "class_map"):
            masks = np.stack([m.class_map() for m in masks])
        maps = torch.as_tensor(np.asarray(masks)) if not torch.is_tensor(masks) else masks
        if maps.ndim == 2:
            maps = maps[None]
        if maps.ndim != 3:
            raise ValueError(f"masks must be [B, H, W] class-id maps, got shape {tuple(maps.shape)}")
        h, w = maps.shape[-2:]
        m = self.size_multiple
        if h % m or w % m or h == 0:
            raise ValueError(f"mask size {h}x{w} is not a multiple of {m} px (autoencoder factor "
                             f"{self.factor} x UNet downsampling); crop or pad the masks")
        return maps

    @torch.no_grad()
    def __call__(self, masks, num_inference_steps: int = 50, guidance_scale: float = 1.0,
                 eta: float = 0.0, generator=None, output_type: str = "np",
                 return_latents: bool = False, add_noise: bool = True, known_image=None, region=None):
        """Images for ``masks`` (class-id maps, uint8 [B, H, W]; ids 0 and ``class_ids``).

        ``guidance_scale`` 1 means no guidance (one denoiser call per step, as in the paper);
        s > 1 extrapolates from the null-mask prediction: eps_u + s (eps_c - eps_u).
        ``generator``: a ``torch.Generator`` or one per mask (then each image depends only on
        its own generator, whatever the batch). ``eta`` is used by DDIM/DDPM (1 = the paper's).
        ``add_noise``: add the fitted residual noise (when the pipeline has one) after decoding.
        ``known_image`` (float [B, H, W] in [0, 1]) and ``region`` (bool or float [B, H, W], 1 =
        generate): inpainting by known-region blending (RePaint without resampling, as diffusers'
        inpainting pipelines blend for plain UNets): after every step the latents outside the
        region are replaced by the known image's latents noised to the same timestep, and the
        decoded image is blended with the known image by ``region``, so pixels where it is 0
        are returned unchanged.
        Returns float32 numpy [B, H, W] in [0, 1] (``output_type="np"``) or a tensor in [-1, 1]
        (``"pt"``).
        """
        maps = self.prepare_masks(masks)
        device = self._execution_device
        b, h, w = maps.shape
        cond = self.mask_encoder(one_hot(maps, self.class_ids).to(device, self.mask_encoder.dtype))
        guided = guidance_scale != 1.0
        if guided:
            cond = torch.cat([self.mask_encoder(torch.zeros_like(one_hot(maps[:1], self.class_ids))
                                                .to(device, self.mask_encoder.dtype)).expand_as(cond), cond])
        shape = (b, self.vae.config.latent_channels, h // self.factor, w // self.factor)
        latents = randn_tensor(shape, generator=generator, device=device, dtype=self.unet.dtype)
        if (known_image is None) != (region is None):
            raise ValueError("inpainting needs both known_image and region")
        if known_image is not None:
            known, keep, region_px = self._known(known_image, region, maps.shape, device)
            known_noise = randn_tensor(shape, generator=generator, device=device, dtype=self.unet.dtype)
        self.scheduler.set_timesteps(num_inference_steps, device=device)
        latents = latents * self.scheduler.init_noise_sigma
        step_kwargs = {}
        accepted = inspect.signature(self.scheduler.step).parameters
        if "eta" in accepted:
            step_kwargs["eta"] = eta
        if "generator" in accepted:
            step_kwargs["generator"] = generator
        for t in self.progress_bar(self.scheduler.timesteps):
            x = torch.cat([latents] * 2) if guided else latents
            x = self.scheduler.scale_model_input(x, t)
            out = self.unet(torch.cat([x, cond.to(x.dtype)], dim=1), t).sample
            if guided:
                out_u, out_c = out.chunk(2)
                out = out_u + guidance_scale * (out_c - out_u)
            latents = self.scheduler.step(out, t, latents, **step_kwargs).prev_sample
            if known_image is not None:  # outside the region: the known latents at the next noise level
                i = int((self.scheduler.timesteps == t).nonzero()[0, 0])
                nxt = self.scheduler.timesteps[i + 1:i + 2]
                noisy = self.scheduler.add_noise(known, known_noise, nxt.expand(b)) if len(nxt) else known
                latents = keep * noisy.to(latents.dtype) + (1 - keep) * latents
        if return_latents:
            return latents
        image = self.vae.decode(latents / self.vae.config.scaling_factor).sample.clamp(-1, 1)
        if add_noise and getattr(self, "noise", None) is not None:
            image = self.noise(image, generator)
        if known_image is not None:
            image = region_px * image + (1 - region_px) * (torch.as_tensor(np.asarray(known_image), device=device,
                                                                          dtype=image.dtype)[:, None] * 2 - 1)
        if output_type == "pt":
            return image
        return ((image[:, 0].float().cpu().numpy() + 1) / 2).astype(np.float32)


    def _known(self, known_image, region, shape, device):
        """Latents of the known images (posterior mean, scaled), the latent-resolution weight of
        the known part (1 where no latent pixel touches the region) and the pixel region."""
        img = torch.as_tensor(np.asarray(known_image), dtype=torch.float32)
        reg = torch.as_tensor(np.asarray(region), dtype=torch.float32)
        if img.ndim == 2:
            img, reg = img[None], reg[None] if reg.ndim == 2 else reg
        if tuple(img.shape) != tuple(shape) or tuple(reg.shape) != tuple(shape):
            raise ValueError(f"known_image {tuple(img.shape)} and region {tuple(reg.shape)} must match the masks "
                             f"{tuple(shape)}")
        x = (img[:, None] * 2 - 1).to(device, self.vae.dtype)
        known = self.vae.encode(x).latent_dist.mean * self.vae.config.scaling_factor
        touched = torch.nn.functional.max_pool2d(reg[:, None], self.factor)
        keep = (1 - (touched > 0).float()).to(device, known.dtype)
        return known, keep, reg[:, None].to(device)


def load_pipeline(path, device="cpu", torch_dtype=None) -> MaskToImagePipeline:
    """Load a saved pipeline folder; a missing, corrupt or mismatched one raises an error naming it."""
    path = Path(path)
    if not (path / "model_index.json").is_file():
        raise FileNotFoundError(f"{path}: no model_index.json; not a saved MaskToImagePipeline "
                                "(run notebook 03 or pass the folder save_pretrained wrote)")
    try:
        index = json.loads((path / "model_index.json").read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path / 'model_index.json'}: not valid JSON ({e})") from None
    if index.get("_class_name") != MaskToImagePipeline.__name__:
        raise ValueError(f"{path}: holds a {index.get('_class_name')!r}, not a MaskToImagePipeline")
    for part in ("vae", "unet", "mask_encoder"):
        if not (path / part / "diffusion_pytorch_model.safetensors").is_file():
            raise FileNotFoundError(f"{path / part}: no diffusion_pytorch_model.safetensors "
                                    "(weights are only read from safetensors)")
    try:
        pipe = MaskToImagePipeline.from_pretrained(path, use_safetensors=True, torch_dtype=torch_dtype)
    except Exception as e:  # noqa: BLE001 - safetensors/diffusers raise many types for a bad file
        raise ValueError(f"{path}: could not load the pipeline ({type(e).__name__}: {e})") from e
    pipe.check_compatible(str(path))
    pipe.set_progress_bar_config(disable=True)
    record = path / "tem_lib.json"  # config and training summary: saved back by pretrained.save_pretrained
    pipe.tem_record = json.loads(record.read_text()) if record.is_file() else {}
    return pipe.to(device)
