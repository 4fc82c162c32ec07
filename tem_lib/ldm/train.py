"""Train both stages on labelled crops and assemble a :class:`MaskToImagePipeline`.

``train_ldm(samples, config, out_dir)`` does everything notebook 03 needs:

1. the autoencoder on random patches of the crops (flips and 90-degree turns);
2. the latents of every crop in all 8 orientations, encoded ONCE and kept (posterior mean
   and std; each step draws ``z = mean + std * noise``), so the denoiser never runs the
   encoder (``cache_latents=False`` encodes every step instead, for the speed benchmark);
3. the denoiser on random latent patches with their mask patches, the mask replaced by the
   null mask with probability ``p_uncond`` (classifier-free guidance), EMA weights;
4. the pipeline saved with ``save_pretrained`` under ``out_dir/pipeline``.

Both stages checkpoint under ``out_dir/autoencoder`` and ``out_dir/denoiser`` and resume.
"""
from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

import pandas as pd
import torch

from ..data.torch_dataset import dihedral, random_patches, stack_crops
from ..layout import CHECKPOINT, CHECKPOINT_STATE, PIPELINE
from ..utils import atomic_dir, get_device, provenance, read_json, write_json
from .adversarial import PatchDiscriminator, adversarial_loss
from .autoencoder import reconstruct, reconstruction_loss
from .conditioning import one_hot
from .config import LDMConfig
from .loop import fit
from .models import build_autoencoder, build_mask_encoder, build_train_scheduler, build_unet
from .noise import ResidualNoise
from .pipeline import MaskToImagePipeline, load_pipeline


def train_autoencoder(samples, config: LDMConfig, out_dir, device="cpu"):
    """Train (or resume) the first stage; returns ``(vae, fit_result)``."""
    cfg, tcfg = config.autoencoder, config.autoencoder_training
    images, maps = stack_crops(samples)
    torch.manual_seed(tcfg.seed)
    vae = build_autoencoder(cfg)
    device = torch.device(device)
    modules = {"vae": vae}
    start = int(round(cfg.adversarial_start * tcfg.steps))
    if cfg.adversarial_weight > 0:
        modules["discriminator"] = PatchDiscriminator(cfg.disc_channels, cfg.disc_layers)

    def loss_fn(step, gen):
        x, m = random_patches(images, maps, tcfg.batch_size, tcfg.patch_size, gen)
        x = x.to(device)
        loss, rec = reconstruction_loss(vae, x, (m > 0)[:, None].to(device), cfg, gen, return_reconstruction=True)
        if cfg.adversarial_weight > 0 and step >= start:
            adv, _ = adversarial_loss(modules["discriminator"], x, rec, loss, vae.decoder.conv_out.weight,
                                      cfg.adversarial_weight)
            loss = loss + adv
        return loss

    res = fit(modules, loss_fn, tcfg, Path(out_dir) / "autoencoder",
              {"autoencoder": config.to_dict()["autoencoder"], "n_crops": len(samples),
               "crops": [s.name for s in samples]}, device, desc="autoencoder")
    return vae, res


@torch.inference_mode()
def encode_latents(vae, images: torch.Tensor, maps: torch.Tensor, device="cpu", batch_size: int = 16,
                   orientations: int = 8):
    """Posterior mean and std of every crop in ``orientations`` (1 or 8) orientations, and the
    matching class maps: ``(mean [M, C, h, w], std [M, C, h, w], maps [M, H, W])`` on the CPU."""
    xs, ms = [], []
    for g in range(orientations):
        xs.append(dihedral(images, g // 2, bool(g % 2)))
        ms.append(dihedral(maps, g // 2, bool(g % 2)))
    x, m = torch.cat(xs), torch.cat(ms)
    means, stds = [], []
    for i in range(0, len(x), batch_size):
        post = vae.encode(x[i:i + batch_size].to(device)).latent_dist
        means.append(post.mean.float().cpu())
        stds.append(post.std.float().cpu())
    return torch.cat(means), torch.cat(stds), m


def snr_weights(sched, prediction_type: str, gamma: float | None) -> torch.Tensor:
    """Per-timestep loss weights [T]: min(SNR, gamma) / SNR for epsilon, / (SNR + 1) for v,
    min(SNR, gamma) for sample prediction (Min-SNR, Hang et al. 2023); ones when gamma is None."""
    a = sched.alphas_cumprod.double()
    if gamma is None:
        return torch.ones_like(a).float()
    snr = a / (1 - a)
    capped = snr.clamp(max=gamma)
    w = {"epsilon": capped / snr, "v_prediction": capped / (snr + 1), "sample": capped}[prediction_type]
    return w.float()


def defect_weight_map(maps: torch.Tensor, f: int, weight: float) -> torch.Tensor:
    """[B, 1, H/f, W/f] loss weights for class maps [B, H, W]: 1 + ``weight`` x the defect
    fraction of each latent pixel, divided by its mean over the sample (mean weight 1)."""
    frac = torch.nn.functional.avg_pool2d((maps > 0).float()[:, None], f)
    w = 1.0 + weight * frac
    return w / w.mean(dim=(1, 2, 3), keepdim=True)


def train_denoiser(samples, vae, config: LDMConfig, out_dir, device="cpu", cache_latents: bool = True,
                   steps: int | None = None):
    """Train (or resume) the second stage on ``samples``; returns ``(unet, mask_encoder, result)``.

    ``vae.config.scaling_factor`` must already be set (``train_ldm`` sets it to 1 / std of the
    cached latents). ``steps`` overrides the configured number (benchmarks).
    """
    cfg, tcfg = config.denoiser, config.denoiser_training
    if steps is not None:
        tcfg = replace(tcfg, steps=steps)
    f = 2 ** (len(vae.config.block_out_channels) - 1)
    images, maps = stack_crops(samples)
    device = torch.device(device)
    vae.to(device).eval().requires_grad_(False)
    torch.manual_seed(tcfg.seed + 1)
    unet = build_unet(cfg, vae.config.latent_channels, images.shape[-1] // f)
    encoder = build_mask_encoder(cfg, f)
    sched = build_train_scheduler(cfg)
    scale = float(vae.config.scaling_factor)
    unet_div = 2 ** (len(cfg.block_out_channels) - 1)
    patch = tcfg.patch_size
    if patch is not None and patch % (f * unet_div):
        raise ValueError(f"denoiser patch_size {patch} must be a multiple of {f * unet_div} px")
    weights = snr_weights(sched, cfg.prediction_type, cfg.snr_gamma)
    if cache_latents:
        mean, std, lat_maps = encode_latents(vae, images, maps, device)
        moments = torch.cat([mean, std], 1)

    def loss_fn(step, gen):
        b = tcfg.batch_size
        if cache_latents:
            zs, m = random_patches(moments, lat_maps, b, None if patch is None else patch // f, gen, scale=f,
                                   augment=False)
            z_mu, z_sd = zs.chunk(2, dim=1)
            z = z_mu + z_sd * torch.randn(z_mu.shape, generator=gen)
        else:
            x, m = random_patches(images, maps, b, patch, gen)
            with torch.no_grad():
                post = vae.encode(x.to(device)).latent_dist
            z = (post.mean + post.std * torch.randn(post.mean.shape, generator=gen).to(device)).float().cpu()
        z = z * scale
        oh = one_hot(m, cfg.class_ids)
        drop = torch.rand(b, generator=gen) < cfg.p_uncond
        oh[drop] = 0.0
        noise = torch.randn(z.shape, generator=gen)
        t = torch.randint(cfg.num_train_timesteps, (b,), generator=gen)
        noisy = sched.add_noise(z, noise, t)
        target = {"epsilon": noise, "sample": z}.get(cfg.prediction_type)
        if target is None:
            target = sched.get_velocity(z, noise, t)
        noisy, target, oh, t = noisy.to(device), target.to(device), oh.to(device), t.to(device)
        pred = unet(torch.cat([noisy, encoder(oh)], dim=1), t).sample
        err = (pred.float() - target.float())
        err = err ** 2 if cfg.loss == "mse" else err.abs()
        if cfg.mask_weight > 0:
            err = err * defect_weight_map(m, f, cfg.mask_weight).to(err.device)
        err = err.mean(dim=(1, 2, 3))
        return (err * weights[t.cpu()].to(err.device)).mean()

    res = fit({"unet": unet, "mask_encoder": encoder}, loss_fn, tcfg, Path(out_dir) / "denoiser",
              {"denoiser": config.to_dict()["denoiser"], "scaling_factor": scale,
               "cache_latents": cache_latents, "crops": [s.name for s in samples]},
              device, ema_module="unet", desc="denoiser")
    return unet, encoder, res


def fit_noise(vae, samples, config: LDMConfig, device="cpu") -> ResidualNoise | None:
    """The first stage's residual noise on the training crops (``autoencoder.noise_model``
    "fitted"), or None ("none")."""
    cfg = config.autoencoder
    if cfg.noise_model == "none":
        return None
    images, _ = stack_crops(samples)
    x = images[:, 0].numpy() * 0.5 + 0.5  # stack_crops gives [-1, 1]
    tile = min(cfg.noise_tile, x.shape[-1])
    return ResidualNoise(size=tile).fit(x, reconstruct(vae, x, device))


def save_pipeline(pipe: MaskToImagePipeline, path, record: dict) -> Path:
    """``save_pretrained`` into a temporary folder beside ``path``, then rename: a pipeline
    folder is complete or absent. ``record`` (config, training summary) goes to
    ``tem_lib.json`` with package versions and git revision."""
    with atomic_dir(path) as tmp:
        pipe.save_pretrained(tmp, safe_serialization=True)
        write_json(tmp / "tem_lib.json", {**record, **provenance()})
    return Path(path)


def _finished(out_dir: Path, config: LDMConfig, samples, device, sampler: str):
    """``(pipeline, summary)`` if ``out_dir`` holds the finished pipeline of this configuration
    and these crops (loaded as saved: no re-encoding, no noise refit), else None."""
    record_path = out_dir / PIPELINE / "tem_lib.json"
    if not record_path.is_file():
        return None
    record = read_json(record_path)
    if record.get("config") != json.loads(json.dumps(config.to_dict())) or \
            record.get("crops") != [s.name for s in samples]:
        return None  # another run's folder: train_autoencoder/fit refuse it with the differences
    pipe = load_pipeline(out_dir / PIPELINE, device=device)
    pipe.set_sampler(sampler)
    histories = {}
    for stage in ("autoencoder", "denoiser"):
        state = out_dir / stage / CHECKPOINT / CHECKPOINT_STATE
        rows = read_json(state).get("history", []) if state.is_file() else []
        histories[f"{stage}_history"] = pd.DataFrame(rows, columns=["step", "loss", "lr"])
    return pipe, {**record.get("training", {}), "loaded": True, **histories}


def train_ldm(samples, config: LDMConfig | dict | None = None, out_dir="runs/ldm", device="auto",
              sampler: str = "ddim", classes=None) -> tuple[MaskToImagePipeline, dict]:
    """Train the autoencoder, cache latents, train the denoiser, save the pipeline.

    ``samples``: training crops (:class:`~tem_lib.data.Sample`, one size, side a multiple of
    the pipeline's ``size_multiple``). Returns the pipeline (EMA weights, ``sampler`` set) and a
    summary with both loss histories and timings. Rerunning resumes from the checkpoints.
    ``classes``: the dataset's class set (default ``samples.classes``); the mask channels are
    background + its classes unless the config names ``denoiser.class_ids``.
    """
    config = config if isinstance(config, LDMConfig) else LDMConfig.from_dict(config)
    classes = classes if classes is not None else getattr(samples, "classes", None)
    if not config.denoiser.class_ids:
        if classes is None:
            raise ValueError("train_ldm needs the dataset's class set (classes=...) for the mask channels")
        config = replace(config, denoiser=replace(config.denoiser, class_ids=tuple(classes.ids)))
    device = get_device(device) if isinstance(device, str) else device
    out_dir = Path(out_dir)
    finished = _finished(out_dir, config, samples, device, sampler)
    if finished is not None:
        return finished
    vae, ae_res = train_autoencoder(samples, config, out_dir, device)
    vae.eval().requires_grad_(False)
    t0 = time.perf_counter()
    images, maps = stack_crops(samples)
    mean, _, _ = encode_latents(vae, images, maps, device, orientations=1)
    # Stable Diffusion's recipe: scale latents to unit variance for the noise schedule
    # rounded: the last digits of the std depend on the thread count, and the factor is part of
    # the denoiser's checkpoint key (a resume on another machine must not be refused)
    vae.register_to_config(scaling_factor=float(f"{1.0 / float(mean.std()):.4g}"))
    noise = fit_noise(vae, samples, config, device)
    unet, encoder, dn_res = train_denoiser(samples, vae, config, out_dir, device)
    pipe = MaskToImagePipeline(vae=vae, unet=unet, mask_encoder=encoder,
                               scheduler=build_train_scheduler(config.denoiser), noise=noise)
    pipe.set_sampler(sampler)
    pipe.check_compatible()
    summary = {"autoencoder_seconds": ae_res["seconds"], "denoiser_seconds": dn_res["seconds"],
               "scaling_factor": float(vae.config.scaling_factor), "n_crops": len(samples),
               "crop_size": int(images.shape[-1]), "encode_seconds": time.perf_counter() - t0 - dn_res["seconds"],
               "autoencoder_resumed_from": ae_res["resumed_from"], "denoiser_resumed_from": dn_res["resumed_from"]}
    save_pipeline(pipe, out_dir / PIPELINE, {"config": config.to_dict(), "training": summary,
                                               "crops": [s.name for s in samples]})
    pipe.set_progress_bar_config(disable=True)
    return pipe, {**summary, "autoencoder_history": ae_res["history"], "denoiser_history": dn_res["history"]}
