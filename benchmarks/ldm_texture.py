"""Which first stage keeps the micrograph's texture? Options measured, simulated and real.

Options (``tem_lib.ldm.AutoencoderConfig``), each a full LDM trained on the same crops:

* ``L1 + gradient``: the loss of earlier versions (defect-weighted L1 + image gradients);
* ``+ discriminator``: a patch discriminator (hinge, adaptive weight 0.5, on after 30 % of
  the steps), as latent-diffusion first stages are trained;
* ``8 latent channels``: a wider latent at the same f = 4;

and, for each, with and without the fitted residual noise (``noise_model="fitted"``: the
training crops' own noise put back after decoding; it needs no training, so both rows come
from the same networks). Reported per option: the Frechet distance by feature group
(``tem_lib.metrics.frechet``, fixed texture features, standardised by the held-out crops)
of the reconstructions and of generated crops (DPM-Solver++ 25, guidance 2, the held-out
crops' masks), next to the real-vs-real floor; and defect survival per class of the
reconstructions. A 1:1-pixel mosaic per data set (``ldm_texture_<data>.png``): rows real
crop, reconstruction, reconstruction + noise, generated, generated + noise.

    python benchmarks/ldm_texture.py --data sim      # simulated (quick-profile micrographs)
    python benchmarks/ldm_texture.py --data fecral   # real FeCrAl, fold 0 (by micrograph)
"""
import argparse
import time

import numpy as np
import pandas as pd
from skimage.io import imsave

from tem_lib.data import tile_dataset
from tem_lib.data.images import to_uint8
from tem_lib.ldm import LDMConfig, train_ldm
from tem_lib.ldm.autoencoder import reconstruct, survival_table
from tem_lib.ldm.synthesis import generate
from tem_lib.ldm.train import fit_noise, train_autoencoder
from tem_lib.metrics.frechet import frechet_by_group, texture_features
from tem_lib.simulate import preset, simulate
from tem_lib.utils import get_device

from _common import REAL_DATA, RESULTS, ROOT, markdown_table, real_crops_and_folds, write_results

OPTIONS = {
    "L1 + gradient": {},
    "+ discriminator": {"adversarial_weight": 0.5, "adversarial_start": 0.3},
    "8 latent channels": {"latent_channels": 8},
}


def data(which: str, seed: int):
    if which == "sim":
        crops = tile_dataset(simulate(preset(height=1024, width=1024), 12, seed=2, workers=2), 256)
        order = np.random.default_rng(seed).permutation(len(crops))
        train, test = [crops[i] for i in order[:100]], [crops[i] for i in order[100:164]]
        return train, test, crops.classes, "simulated (quick-profile preset), 100 training / 64 held-out crops"
    micrographs, crops, folds = real_crops_and_folds(seed)
    train = [c for c in crops if c.source_id not in folds[0]]
    test = [c for c in crops if c.source_id in folds[0]]
    return train, test, micrographs.classes, (f"real FeCrAl ({REAL_DATA.name}), {len(train)} crops of 6 micrographs "
                                              f"train, {len(test)} crops of {folds[0]} held out")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", choices=["sim", "fecral"], default="sim")
    ap.add_argument("--ae-steps", type=int, default=600)
    ap.add_argument("--denoiser-steps", type=int, default=1500, help="0: first stage only (no generated rows)")
    ap.add_argument("--options", nargs="*", default=list(OPTIONS), help=f"subset of {list(OPTIONS)}")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", default=str(ROOT / "runs" / "bench" / "ldm_texture"))
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--tag", default="", help="suffix of the result files (e.g. _gpu)")
    args = ap.parse_args()
    device = get_device(args.device)
    train, test, classes, what = data(args.data, args.seed)
    images = np.stack([s.image for s in test]).astype(np.float32)
    ref = texture_features(images)
    floor_set = [s.image for s in train[:len(test)]]
    rows = [{"option": "real training crops (floor)", "images": "real", "noise": "-",
             **frechet_by_group(texture_features(floor_set), ref, ref)}]
    survival, mosaic, timing = [], [], {}
    show = np.random.default_rng(args.seed).permutation(len(test))[:6]
    for name in args.options:
        cfg = {"autoencoder": OPTIONS[name], "autoencoder_training": {"steps": args.ae_steps},
               "denoiser_training": {"steps": args.denoiser_steps}}
        t0 = time.perf_counter()
        out = f"{args.work}/{args.data}{args.tag}/{name.replace(' ', '_')}"
        if args.denoiser_steps == 0:  # first stage only: reconstructions
            config = LDMConfig.from_dict(cfg)
            vae, res = train_autoencoder(train, config, out, device)
            vae.eval()
            noise = fit_noise(vae, train, config, device)
            timing[name] = {"autoencoder_s": res["seconds"], "denoiser_s": 0.0, "total_s": time.perf_counter() - t0}
            rec = reconstruct(vae, images, device)
            sets = {("reconstruction", "none"): rec, ("reconstruction", "fitted"): noise.add(rec, args.seed)}
        else:
            pipe, summary = train_ldm(train, cfg, out, device=device, classes=classes)
            timing[name] = {"autoencoder_s": summary["autoencoder_seconds"], "denoiser_s": summary["denoiser_seconds"],
                            "total_s": time.perf_counter() - t0}
            rec = reconstruct(pipe.vae, images, device)
            gen = generate(pipe, test, "dpm++", 25, guidance_scale=2.0, seed=args.seed, progress=False)
            noise, pipe.noise = pipe.noise, None  # the same latents, decoded without the noise model
            clean = generate(pipe, test, "dpm++", 25, guidance_scale=2.0, seed=args.seed, progress=False)
            pipe.noise = noise
            sets = {("reconstruction", "none"): rec, ("reconstruction", "fitted"): noise.add(rec, args.seed),
                    ("generated", "none"): clean, ("generated", "fitted"): gen}
        for (kind, added), imgs in sets.items():
            rows.append({"option": name, "images": kind, "noise": added,
                         **frechet_by_group(texture_features(imgs), ref, ref)})
            if kind == "reconstruction":
                per = survival_table(images, imgs, test, classes)
                for c, g in [("all", per), *per.groupby("class", sort=False)]:
                    survival.append({"option": name, "noise": added, "class": c, "survival": g["survives"].mean()})
        if not mosaic:
            mosaic.append(images[show])
        mosaic += [sets[k][show] for k in sets]
        report(args, rows, survival, mosaic, timing, what, str(device))  # after each option: a killed run keeps it


def report(args, rows, survival, mosaic, timing, what, device):
    table = pd.DataFrame(rows)
    surv = pd.DataFrame(survival).pivot_table(index=["option", "noise"], columns="class", values="survival",
                                              sort=False).reset_index()
    tiles = [np.concatenate(list(r), axis=1) for r in mosaic]
    imsave(RESULTS / f"ldm_texture_{args.data}{args.tag}.png", to_uint8(np.concatenate(tiles, axis=0)), check_contrast=False)
    floor = table.iloc[0]["all"]
    table["x_floor"] = table["all"] / floor
    notes = f"""
Data: {what}. Each option is a full LDM ({args.ae_steps} autoencoder + {args.denoiser_steps} denoiser steps, {device},
quick-profile sizes otherwise); generated crops: DPM-Solver++ 25, guidance 2, for the held-out crops' masks. Frechet
distance by feature group (fixed texture features, version 1, standardised by the held-out crops); `x_floor` = all /
the real-vs-real floor (first row). `noise`: the fitted residual noise model added after decoding or not (same
networks and seeds). Mosaic `ldm_texture_{args.data}{args.tag}.png` (1:1 pixels, 6 held-out crops per row): real; then per
option: reconstruction, reconstruction + noise, generated, generated + noise (options in the order
{args.options}).

Defect survival of the reconstructions (a defect keeps >= 50 % of its contrast against a 3 px ring):

{markdown_table(surv.round(3))}

Training seconds: {", ".join(f"{k}: {v['autoencoder_s']:.0f} + {v['denoiser_s']:.0f}" for k, v in timing.items())}.
"""
    write_results(f"ldm_texture_{args.data}{args.tag}", {"device": device, "table": table.to_dict(orient="records"),
                                               "survival": surv.to_dict(orient="records"), "timing": timing,
                                               "data": what, "ae_steps": args.ae_steps,
                                               "denoiser_steps": args.denoiser_steps},
                  table.round(2), notes)


if __name__ == "__main__":
    main()
