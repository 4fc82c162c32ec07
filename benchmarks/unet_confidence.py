"""Do seed 002's three claims hold here? The U-Net confidence study at CPU scale.

Runs ``tem_lib.unet_study`` with the compare profile's ``08_unet_confidence`` settings (2 training
seeds; the quick profile's are the same with one seed and only the 4 conditions the claims compare; or
``--profile``): the grid on simulated
grain boundaries and defects labelled by the annotation model, scored against labels and truth,
and the label-free part on the real FeCrAl crops
(the workspace of ``benchmarks/augment_compare.py --data fecral``: split 0's training
micrographs, its held-out test micrographs), or on ``--work-dir`` when the real data is absent.
Writes ``unet_confidence.{json,md}``: the claims table (yes / no / unclear with 95 % paired
bootstrap intervals), the metric table (mean over seeds [min, max]), the real-crop table and
the wall time (a finished model is loaded, so time a first run).

    python benchmarks/unet_confidence.py [--profile compare] [--work-dir DIR]
"""
import argparse
import time

from tem_lib import workspace
from tem_lib.running.profiles import load_profile
from tem_lib.unet_study import UNetStudy, claims_table, metric_table

from _common import FECRAL_WORK, REAL_DATA, ROOT, fecral_workspace, markdown_table, write_results


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="compare")
    ap.add_argument("--work-dir", default=None, help="workspace for the label-free part (default: real FeCrAl)")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    prof = load_profile(args.profile, ROOT)
    cfg = prof.get("08_unet_confidence", {}).get("study", {})
    if args.work_dir:
        ws, data = workspace.load(args.work_dir), args.work_dir
    elif REAL_DATA.is_dir():
        ws, data = fecral_workspace(), f"real FeCrAl ({REAL_DATA.name}), workspace {FECRAL_WORK.relative_to(ROOT)}"
    else:
        ws, data = workspace.load(prof["common"]["work_dir"]), prof["common"]["work_dir"]
    study = UNetStudy(ws, cfg, device=args.device)
    t0 = time.perf_counter()
    rows = study.run_all()
    t_sim = time.perf_counter() - t0
    real = study.workspace_rows()
    t_all = time.perf_counter() - t0
    claims = claims_table(rows, n_boot=study.cfg.n_boot, seed=study.cfg.seed)
    table = metric_table(rows)
    cols = ["condition", "f1_labels", "count_ratio_labels", "mean_max_prob", "mean_entropy", "flip_agreement",
            "seed_agreement"]
    real_table = real.groupby("condition", sort=False)[cols[1:]].mean().reset_index() if not real.empty else real
    skipped = "; ".join(f"{k}: {v}" for k, v in study.skipped.items()) or "none"
    notes = f"""
Profile `{args.profile}` (`08_unet_confidence.study`: {cfg}); {len(study.conditions)} conditions x
{len(study.cfg.seeds)} seeds x tasks {list(study.cfg.tasks)}; encoder {study.cfg.encoder}; {study.cfg.n_train} training and
{study.cfg.n_test} test crops of {study.cfg.size} px per task, labels from the annotation model (defaults unless set:
`tem_lib.annotate.AnnotationConfig`). Left out: {skipped}. Wall time: simulated grid {t_sim / 60:.1f} min, with the
label-free part on {data} {t_all / 60:.1f} min (device {args.device}; finished models are loaded, so only a first run times
the training).

## The seed's claims

`holds`: yes = the 95 % paired bootstrap interval over test crops excludes 0 in the claimed direction; no = it excludes
0 in the other; unclear = it includes 0. Claim 2 needs a gain (claim 1) to hide.

{markdown_table(claims.round(3))}

## Metrics per task and condition (mean over seeds [min, max])

{markdown_table(table)}

## Label-free metrics on {data} (split 0; U-Nets trained on its training crops, defect vs background)

{markdown_table(real_table.round(3)) if not real.empty else "not run"}
"""
    keep = [c for c in rows.columns if not c.startswith("per_image")]
    write_results("unet_confidence", {"claims": claims.to_dict(orient="records"), "rows": rows[keep].to_dict(orient="records"),
                                      "workspace_rows": real.to_dict(orient="records"), "config": cfg,
                                      "skipped": study.skipped, "seconds": {"simulated": t_sim, "total": t_all},
                                      "data": data}, None, notes)
    print(notes)


if __name__ == "__main__":
    main()
