"""Seconds per megapixel of ``tem_lib.quantify`` on whole micrographs (sliced inference, merging,
measurement, outputs), for the quick and the paper detector.

A simulated 2048 x 2048 micrograph (and a 1024 x 1024 one) is quantified end to end by
``tem_lib.quantify.quantify`` with:

* ``quick``: the quick profile's detector (ResNet-18 FPN, 256-px tiles at native size) with the
  foundation detector's weights (pretrained on first use, then read from the cache), so that the
  number of detections, which the mask head and the measurement pay for, is a trained detector's;
* ``paper``: the paper profile's architecture (R50-FPN, tiles upsampled to 800 px) with untrained
  weights (COCO weights cannot be downloaded here): the architecture's cost, not a trained
  detector's detection count.

Each is run ``--rounds`` times (overlays off, then once with overlays); the median is reported with
the seconds per megapixel, tiles per second and the split between inference and the rest (merging,
measurement, writing). Target (issue 25): a 2048 x 2048 micrograph in under 30 s on 2 CPU cores
with the quick detector.

    python benchmarks/quantify_speed.py [--rounds 3] [--device auto] [--detectors quick paper] [--paper-sizes 1024]
"""
import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image

from tem_lib.classes import preset as class_preset
from tem_lib.detection import DetectorConfig, build_maskrcnn
from tem_lib.detection.config import to_dict
from tem_lib.detection.foundation import ensure_foundation
from tem_lib.detection.train import save_detector
from tem_lib.quantify import export_model, load_model, model_predictor, quantify
from tem_lib.quantify.tta import tta_predictor
from tem_lib.running.profiles import load_profile, sweep_section
from tem_lib.simulate import preset, simulate
from tem_lib.utils import get_device, provenance

from _common import ROOT, write_results

PAPER = {"backbone": "resnet50", "fpn_channels": 256, "representation_size": 1024, "mask_head_channels": 256,
         "pretrained": "none", "trainable_layers": 3, "min_size": [800], "max_size": 1333}


def model_folder(kind: str, root: Path, device) -> Path:
    classes = class_preset("fecral")
    if kind == "quick":
        det = DetectorConfig(**sweep_section(load_profile("quick", ROOT))["detector"])
        src = ensure_foundation(det.foundation, det, device, progress=True)
    else:
        cfg = DetectorConfig(**PAPER)
        torch.manual_seed(0)
        model = build_maskrcnn(cfg, classes.ids)
        src = save_detector(model, root / "paper-src", {"detector": to_dict(cfg), "class_ids": list(classes.ids),
                                                        "class_names": list(classes.names), **model.tem_info,
                                                        **provenance()})
    return export_model(src, root / f"{kind}-model", classes, tile=256, nm_per_px=1.0, score_threshold=0.5,
                        threshold_source="benchmark (fixed)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--detectors", nargs="+", default=["quick", "paper"], choices=["quick", "paper"])
    ap.add_argument("--sizes", nargs="+", type=int, default=[1024, 2048])
    ap.add_argument("--tta", nargs="+", type=int, default=[1], choices=[1, 2, 4, 8],
                    help="views per tile (tem_lib.quantify.tta; 8 with views kept down to 0.25 is --data's default)")
    ap.add_argument("--name", default="quantify_speed", help="results file name")
    ap.add_argument("--paper-sizes", nargs="+", type=int, default=[1024],
                    help="sizes for the paper detector (R50 at 800 px per tile: minutes per 2048-px micrograph on a CPU)")
    args = ap.parse_args()
    device = get_device(args.device)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        images = {}
        for size in sorted(set(args.sizes) | set(args.paper_sizes if "paper" in args.detectors else [])):
            m = simulate(preset(height=size, width=size), 1, seed=5, workers=1)[0]
            path = tmp / f"sim{size}.png"
            Image.fromarray(np.clip(np.rint(m.image * 255), 0, 255).astype(np.uint8)).save(path)
            images[size] = (path, len(m.instances))
        for kind in args.detectors:
            folder = model_folder(kind, tmp, device)
            model, card = load_model(folder, device)
            sizes = args.sizes if kind == "quick" else args.paper_sizes
            for views, (size, (path, n_true)) in ((v, kv) for v in args.tta for kv in images.items() if kv[0] in sizes):
                base = (model_predictor(model, device) if views == 1
                        else tta_predictor(model, card.classes.ids, device, views=views, view_score=0.25))
                for overlays in (False, True):
                    for r in range(args.rounds if not overlays else 1):
                        infer = [0.0]

                        def timed(tiles, offsets, base=base, infer=infer):
                            t = time.perf_counter()
                            out = base(tiles, offsets)
                            infer[0] += time.perf_counter() - t
                            return out
                        t0 = time.perf_counter()
                        res = quantify(folder, [path], tmp / "out", device=device, overlays=overlays,
                                       progress=False, predict=timed, tta_views=views)
                        total = time.perf_counter() - t0
                        rows.append({"detector": kind, "views": views, "size": size, "overlays": overlays, "round": r,
                                     "seconds": total, "inference_seconds": infer[0],
                                     "tiles": int(res.images.n_tiles.iloc[0]), "defects": len(res.defects),
                                     "labelled": n_true})
                        print(rows[-1], flush=True)
    df = pd.DataFrame(rows)
    table = (df.groupby(["detector", "views", "size", "overlays"])
             .agg(seconds=("seconds", "median"), inference_seconds=("inference_seconds", "median"),
                  tiles=("tiles", "first"), defects=("defects", "median"), labelled=("labelled", "first"),
                  rounds=("round", "count")).reset_index())
    table["megapixels"] = table["size"] ** 2 / 1e6
    table["s_per_mpx"] = table.seconds / table.megapixels
    table["tiles_per_s"] = table.tiles / table.inference_seconds
    table["other_fraction"] = 1 - table.inference_seconds / table.seconds
    quick2k = table[(table.detector == "quick") & (table["size"] == 2048) & ~table.overlays & (table.views == 1)]
    verdict = ""
    if len(quick2k):
        s = float(quick2k.seconds.iloc[0])
        verdict = f"Quick detector, 2048 x 2048: **{s:.1f} s** (target < 30 s on 2 cores: {'met' if s < 30 else 'not met'})."
    notes = f"""
Device {device} ({torch.get_num_threads()} torch threads). Whole-micrograph quantification (`tem_lib.quantify.quantify`:
256-px tiles overlapping by 25 %, merging across tiles, moment-ellipse measurement, CSV/COCO outputs; one PNG overlay
where `overlays` is True) of simulated micrographs; median of {args.rounds} rounds without overlays, 1 with.
`quick`: the quick profile's detector with the foundation weights; `paper`: the paper profile's R50-FPN at 800 px with
untrained weights (its cost, not a trained detector's detection count). `inference_seconds`: in the detector;
`other_fraction`: the rest (tiling, merging, measurement, writing). {verdict}
"""
    write_results(args.name, {"rows": df.to_dict(orient="records"), "table": table.to_dict(orient="records")},
                  table.round(3), notes)


if __name__ == "__main__":
    main()
