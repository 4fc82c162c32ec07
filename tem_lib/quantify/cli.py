"""``python -m tem_lib.quantify``: the command line."""
from __future__ import annotations

import argparse
import sys

from .run import quantify

DESCRIPTION = ("From a trained detector to the numbers a microscopist publishes: counts, sizes and areal "
               "densities of every defect class, per micrograph, on micrographs of any size.")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tem_lib.quantify", description=DESCRIPTION)
    ap.add_argument("model", help="a model folder (the study's WORK_DIR/models/best, or tem_lib.quantify.export_model)")
    ap.add_argument("inputs", nargs="+", help="micrographs (PNG, TIFF, DM3/DM4, EMD, SER), folders of them, or "
                                              "labelled dataset folders (then compared with the labels)")
    ap.add_argument("--out", required=True, help="output folder")
    ap.add_argument("--nm-per-px", type=float, default=None, help="pixel size (default: from each file or dataset)")
    ap.add_argument("--score", type=float, default=None, help="one score threshold for every class (default: the "
                                                              "model's per-class ones, chosen on its validation crops)")
    ap.add_argument("--single-threshold", action="store_true",
                    help="the model's single threshold (best headline on validation) instead of its per-class ones")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--overlap", type=float, default=0.25, help="tile overlap, fraction of the tile (default 0.25)")
    ap.add_argument("--no-calibration", action="store_true",
                    help="raw counts only, even when the model card holds a count calibration")
    ap.add_argument("--tta", type=int, default=None, choices=(1, 2, 4, 8), metavar="VIEWS",
                    help="predict each tile in 1, 2, 4 or 8 symmetries of the square and vote (default: the number the "
                         "model's thresholds were chosen with, its card's tta_views)")
    ap.add_argument("--no-overlays", action="store_true")
    args = ap.parse_args(argv)
    from ..utils import get_device
    try:
        res = quantify(args.model, args.inputs, args.out, args.nm_per_px, score=args.score,
                       device=get_device(args.device), overlap=args.overlap, overlays=not args.no_overlays,
                       per_class=not args.single_threshold, calibrate=False if args.no_calibration else None,
                       tta_views=args.tta)
    except (ValueError, OSError, MemoryError) as e:  # OSError: FileNotFoundError, PermissionError, a full disk
        print(f"error: {e}", file=sys.stderr)
        return 2
    allrows = res.summary[res.summary.image == "all"]
    cols = ["class", "count", "density", "density_ci_low", "density_ci_high", "size_mean", "size_median"]
    if "count_calibrated" in allrows:
        cols[2:2] = ["count_calibrated", "density_calibrated", "density_calibrated_ci_low", "density_calibrated_ci_high"]
    print(allrows[cols].round(4).to_string(index=False))
    print(f"{len(res.images)} images, {len(res.defects)} defects in {res.seconds:.1f} s -> {res.out_dir}")
    return 0

