"""Which augmentation helps a data-scarce detector? Every strategy on the same splits, N, seeds.

Runs the compare profile's sweep (``common.sweep`` of ``profiles/compare.yaml``: the detector, its
iterations and schedule, identical for every condition) with every strategy of
``tem_lib.augment`` (``--augment``), and writes the gains over EXP with 95 % paired-bootstrap
intervals (per split and pooled) at the paper's score threshold 0.1 and at the threshold
chosen per run on the split's validation crops, and the cost per strategy (seconds to make
its pool, seconds to train). Finished runs are reused (the sweep's rows).

* ``--data sim``: the quick profile's workspace (notebook 01; ``--work-dir``, default the
  profile's) -> ``augment_sim.{json,md}``;
* ``--data fecral``: the real FeCrAl micrographs (``../shared/data/fecral-3class``), crops of
  256 px, 2 splits by micrograph (2 of 8 held out), N 10/50 -> ``augment_realdata.{json,md}``.

    python benchmarks/augment_compare.py --data sim
    python benchmarks/augment_compare.py --data fecral
    python benchmarks/augment_compare.py --data fecral --n-train 10 --seeds 0 1 --best-ldm --augment ldm copy_paste
"""
import argparse
import time

import pandas as pd

from tem_lib import analysis, workspace
from tem_lib.running.profiles import load_profile, sweep_section
from tem_lib.study import Sweep

from _common import REAL_DATA, ROOT, fecral_workspace, markdown_table, write_results

STRATEGIES = ["ldm", "inpaint", "copy_paste", "simulator"]
# The generator's best measured settings on real FeCrAl (benchmarks/results/ldm_realdata.md: the
# mask-weighted loss with guidance 4 found the most defects under their masks).
BEST_LDM = {"guidance_scale": 4.0, "quality_filter": True}
BEST_LDM_DENOISER = {"mask_weight": 4.0}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", choices=["sim", "fecral"], default="sim")
    ap.add_argument("--work-dir", default=None)
    ap.add_argument("--augment", nargs="*", default=STRATEGIES)
    ap.add_argument("--n-boot", type=int, default=1000)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--splits", type=int, nargs="*", default=None, help="only these splits (default: all)")
    ap.add_argument("--n-train", type=int, nargs="*", default=None, help="only these N (default: all)")
    ap.add_argument("--augment-n-train", type=int, nargs="*", default=None,
                    help="compare strategies only at these N; EXP runs at every N (default: all N)")
    ap.add_argument("--seeds", type=int, nargs="*", default=None,
                    help="training seeds per cell (default: the profile's); 2+ put training noise in the intervals")
    ap.add_argument("--best-ldm", action="store_true",
                    help="the generator at its best measured real-data settings (ldm_realdata.md): mask-weighted "
                         "loss (mask_weight 4), guidance 4, quality filter on; for ldm and inpaint")
    args = ap.parse_args()
    prof = load_profile("compare", ROOT)
    sweep_cfg = {**sweep_section(prof), "augment": args.augment}
    for key, value in (("splits", args.splits), ("n_train", args.n_train), ("seeds", args.seeds),
                       ("augment_n_train", args.augment_n_train)):
        if value:
            sweep_cfg[key] = value
    if args.best_ldm:  # the generator's settings: augment_config.ldm (inpaint shares them)
        gen = dict((sweep_cfg.get("augment_config") or {}).get("ldm", {}))
        ldm = dict(gen.get("ldm_config", {}))
        gen.update(BEST_LDM, ldm_config={**ldm, "denoiser": {**ldm.get("denoiser", {}), **BEST_LDM_DENOISER}})
        sweep_cfg["augment_config"] = {**(sweep_cfg.get("augment_config") or {}), "ldm": gen}
    if args.data == "sim":
        ws = workspace.load(args.work_dir or prof["common"]["work_dir"])
        name, what = "augment_sim", "simulated (quick-profile workspace)"
    else:
        ws = fecral_workspace(args.work_dir)
        name, what = "augment_realdata", f"real FeCrAl ({REAL_DATA.name}), a workspace of 2 splits by micrograph"
    if args.best_ldm:
        what += "; generator: mask_weight 4, guidance 4, quality filter on"
    sweep = Sweep(ws, sweep_cfg, device=args.device, progress=False)
    t0 = time.perf_counter()
    rows = sweep.run_all()
    gains = analysis.gain_tables(sweep, n_boot=args.n_boot)
    pooled = gains[(gains["split"] == "pooled") & (gains["metric"] == "harmonic")][
        ["threshold", "augment", "n_train", "seed", "gain", "ci_low", "ci_high", "p_gain_positive"]]
    verdicts = analysis.verdict_table(gains[gains["threshold"] == "paper"])
    cost = rows.groupby(rows["augment"].fillna("none"))[["prepare_seconds", "pretrain_seconds", "train_seconds"]]
    cost = cost.mean().reset_index()
    n_section = ""
    if rows["n_train"].nunique() > 1:  # does more real data help the baseline? EXP at each N over EXP at the smallest
        all_n = analysis.gain_tables(sweep, over="n", n_boot=args.n_boot)
        gains = pd.concat([gains, all_n], ignore_index=True)
        more_n = all_n[all_n["metric"] == "harmonic"][
            ["threshold", "split", "seed", "n_from", "n_train", "gain", "ci_low", "ci_high", "p_gain_positive"]]
        headline_by_n = rows[rows["n_synthetic"] == 0].pivot_table(
            index=["split", "seed"], columns="n_train", values=[c for c in ("harmonic@0.5", "valthr_harmonic@0.5")
                                                               if c in rows.columns]).round(3)
        headline_by_n.columns = [f"{metric} N={n}" for metric, n in headline_by_n.columns]
        n_section = f"""
More real data, no augmentation: EXP's headline by N (`harmonic@0.5` at score 0.1, `valthr_` at the validation
threshold), per split and training seed:

{markdown_table(headline_by_n.reset_index())}

and EXP at N = {sorted(int(x) for x in more_n.n_train.unique())} over EXP at N = {sorted(int(x) for x in more_n.n_from.unique())}
(same split and seed, paired bootstrap over the test crops; `split` pooled and `seed` all as above):

{markdown_table(more_n.round(3))}
"""
    gen = sweep.strategy("ldm").config
    notes = f"""
Data: {what}; the compare profile's sweep: splits {sorted(int(x) for x in rows.split.unique())},
N {sorted(int(x) for x in rows.n_train.unique())}, amounts {list(sweep.cfg.amounts)}, seeds {list(sweep.cfg.seeds)},
strategies {args.augment}; every detector: the same
architecture, initialisation, iterations and schedule (`detector` {sweep.cfg.detector}, `training` {sweep.cfg.training}).
Generator: guidance {gen.guidance_scale}, quality filter {gen.quality_filter},
`ldm_config` {gen.ldm_config}. Gains over EXP (same split, N, seed) in the headline
(harmonic mean of detection and classification F1, IoU 0.5), 95 % paired bootstrap over the test crops
({args.n_boot} replicates), pooled over splits replicate by replicate. `threshold`: `paper` = every detection with
score >= 0.1; `val` = above the score threshold chosen per run on the split's validation crops (never test). Wall time
of this invocation {time.perf_counter() - t0:.0f} s (finished runs reused), device {args.device}.

Pooled headline gains (per training seed; `seed` all: pooled over splits and seeds, the interval from a two-level
bootstrap over seeds and test crops, so it holds training noise too):

{markdown_table(pooled.round(3))}
{n_section}
Cost per strategy (mean seconds per run: `prepare`, making the pool, once per cell, or the simulated set, once
per study; `pretrain`, training the detector's start: the foundation detector once per machine, shared by every run
and read from the cache afterwards, or the `simulator` strategy's, once per study and seed; `train`, the detector):

{markdown_table(cost.round(1))}

Which metric went up or down per split (paper threshold; "n.s.": the interval includes 0):

{markdown_table(verdicts.reset_index())}
"""
    write_results(name, {"gains": gains.to_dict(orient="records"), "runs": rows.drop(
        columns=[c for c in rows.columns if "@" in c and not c.startswith(("harmonic", "valthr_harmonic"))]).to_dict(
        orient="records"), "augment": args.augment, "data": what}, None, notes)


if __name__ == "__main__":
    main()
