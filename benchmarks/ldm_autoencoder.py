"""Which first stage keeps small defects? Downsampling factor and loss, same training budget.

Trains the autoencoder on 100 simulated 256-px crops with the quick-profile budget in three
variants: f = 4 with our loss (defect pixels weighted 5x + image-gradient term; the default),
f = 8 with our loss, and f = 8 with plain L1 (closest to the authors' first stage, which was a
pretrained VQ-f8). Reports PSNR/SSIM and per-class defect survival on 32 held-out crops
(``tem_lib.ldm.reconstruction_report``: a defect survives when the reconstruction keeps at
least half of its contrast against a 3 px ring around it).

    python benchmarks/ldm_autoencoder.py [--steps 600]
"""
import argparse
import tempfile

import numpy as np
import pandas as pd

from tem_lib.data import tile_dataset
from tem_lib.ldm import LDMConfig, reconstruction_report
from tem_lib.ldm.train import train_autoencoder
from tem_lib.simulate import preset, simulate

from _common import write_results

VARIANTS = {
    "f=4, defect-weighted L1 + gradient (default)": {},
    "f=8, defect-weighted L1 + gradient": {"block_out_channels": [16, 32, 64, 64]},
    "f=8, plain L1": {"block_out_channels": [16, 32, 64, 64], "defect_weight": 1.0, "gradient_weight": 0.0},
}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    crops = tile_dataset(simulate(preset(height=1024, width=1024), 10, seed=2, workers=2), 256)
    classes = crops.classes
    order = np.random.default_rng(args.seed).permutation(len(crops))
    train, test = [crops[i] for i in order[:100]], [crops[i] for i in order[100:132]]
    rows = []
    for label, ae in VARIANTS.items():
        cfg = LDMConfig.from_dict({"autoencoder": ae, "autoencoder_training": {"steps": args.steps}})
        with tempfile.TemporaryDirectory() as tmp:
            vae, res = train_autoencoder(train, cfg, tmp, "cpu")
        summary, _, _ = reconstruction_report(vae.eval(), test, classes)
        for r in summary.itertuples():
            rows.append({"autoencoder": label, "class": r[1], "n_defects": r.n_defects, "survival": r.survival,
                         "contrast_kept": r.contrast_kept, "psnr_db": r.psnr_db, "ssim": r.ssim,
                         "train_s": res["seconds"]})
    table = pd.DataFrame(rows)
    wide = table.pivot(index="autoencoder", columns="class", values="survival").reset_index()
    notes = f"""
Autoencoders trained {args.steps} steps each (batch 8, 64-px patches) on 100 simulated crops;
measured on 32 held-out crops. Survival per class below; the long table (PSNR, SSIM, median
contrast kept, training seconds) is in `ldm_autoencoder.json`.

PSNR / SSIM: """ + "; ".join(f"{a}: {g.psnr_db.iloc[0]:.1f} dB / {g.ssim.iloc[0]:.3f}"
                            for a, g in table.groupby("autoencoder", sort=False)) + "\n"
    write_results("ldm_autoencoder", {"table": table.to_dict(orient="records"), "steps": args.steps},
                  wide.round(3), notes)


if __name__ == "__main__":
    main()
