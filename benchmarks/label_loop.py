"""The loop label -> train -> quantify, end to end with the commands a user types, on simulated
micrographs whose true defects are known: a folder of a few labelled micrographs and a few
unlabelled ones; ``./run_all.sh --data`` trains on the labelled ones; ``tem_lib.label`` labels
the rest from that detector's proposals (``review`` stands in for the person, editing until the
true defects are reached, each edit counted); ``./run_all.sh --data .../label_assist/annotations.json``
retrains on the grown set; ``python -m tem_lib.quantify`` applies both detectors to new
micrographs, and their densities are compared with the truth. Timed per step. Run it alone:

    python benchmarks/label_loop.py [--profile smoke] [--labelled 3] [--unlabelled 3] [--new 2]

At the smoke profile's scale the detectors are barely trained: what this measures is that the
loop runs, what each step costs, and whether the grown set moves the counts, not the paper's
accuracy.
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
from PIL import Image

from tem_lib.classes import preset
from tem_lib.data import load_dataset, write_dataset
from tem_lib.data.images import to_uint8
from tem_lib.label import LabelProject
from tem_lib.label.review import review, review_from_nothing
from tem_lib.simulate import preset as sim_preset
from tem_lib.simulate import simulate

from _common import ROOT, markdown_table, write_results

FECRAL = preset("fecral")


def run(cmd: list[str], log: Path) -> None:
    """``cmd`` from the project root, its output to ``log`` (a failure names the log)."""
    with open(log, "w") as f:
        rc = subprocess.run(cmd, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT).returncode
    if rc:
        sys.exit(f"{' '.join(cmd)} failed (exit {rc}); its output: {log}")


def label(folder: Path, model: Path, truth: dict) -> tuple[list[dict], Path]:
    """Every micrograph of ``folder`` with a truth labelled from ``model``'s proposals, in the
    ranking's order (``review`` standing in for the person), marked done and saved."""
    project = LabelProject(folder, model=model)
    edits = []
    for name in project.rank().image:
        if name in truth:
            session = project.open(name)
            e = review(session, truth[name])
            session.set_done()  # what the widget's "Done + save" does
            edits.append({"micrograph": name, **e, "from nothing": review_from_nothing(truth[name])["draw"]})
    return edits, project.save()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="smoke")
    ap.add_argument("--labelled", type=int, default=3)
    ap.add_argument("--unlabelled", type=int, default=3)
    ap.add_argument("--new", type=int, default=2)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--keep-runs", action="store_true",
                    help="keep runs/loop_first and runs/loop_grown (their notebooks are then skipped when up to date: "
                         "for debugging, the times are not the training's)")
    args = ap.parse_args()
    base = ROOT / "runs" / "bench" / "label_loop"
    shutil.rmtree(base, ignore_errors=True)
    if not args.keep_runs:
        for name in ("loop_first", "loop_grown"):
            shutil.rmtree(ROOT / "runs" / name, ignore_errors=True)
    folder, new, logs = base / "my_micrographs", base / "new_micrographs", base / "logs"
    logs.mkdir(parents=True)
    n = args.labelled + args.unlabelled + args.new
    sims = simulate(sim_preset(height=args.size, width=args.size, nm_per_px=1.6), n, seed=11, workers=1)
    labelled, to_label, fresh = (sims[:args.labelled], sims[args.labelled:args.labelled + args.unlabelled],
                                 sims[args.labelled + args.unlabelled:])
    write_dataset(labelled, folder, FECRAL)
    for s in to_label:
        Image.fromarray(to_uint8(s.image)).save(folder / f"{s.name}.png")
    write_dataset(fresh, new, FECRAL)  # labelled: quantify compares its counts with the truth (comparison.csv)
    sh, py = str(ROOT / "run_all.sh"), sys.executable
    steps = []

    def step(name, command, do):
        t0 = time.perf_counter()
        out = do()
        steps.append({"step": name, "command": command, "s": round(time.perf_counter() - t0, 1)})
        print(f"{name}: {steps[-1]['s']:.0f} s", flush=True)
        return out

    def shell(name, cmd):
        step(name, " ".join(map(str, cmd)).replace(str(ROOT) + "/", ""), lambda: run(cmd, logs / f"{name}.log"))

    shell("train on the labelled", [sh, "--profile", args.profile, "--data", str(folder), "--name", "loop_first"])
    first = ROOT / "runs" / "loop_first" / "work" / "models" / "best"
    edits, saved = step("label (proposals, review, save)",
                        "tem_lib.label.LabelProject(folder, model=...); review() per micrograph; save()",
                        lambda: label(folder, first, {s.name: s for s in to_label}))
    got = load_dataset(saved)
    assert len(got) == args.labelled + args.unlabelled, f"{saved}: {len(got)} micrographs"
    shell("retrain on the grown set", [sh, "--profile", args.profile, "--data", str(saved), "--name", "loop_grown"])
    grown = ROOT / "runs" / "loop_grown" / "work" / "models" / "best"
    shell("quantify (first)", [py, "-m", "tem_lib.quantify", str(first), str(new), "--out", str(base / "counts_first")])
    shell("quantify (grown)", [py, "-m", "tem_lib.quantify", str(grown), str(new), "--out", str(base / "counts_grown")])

    cols = ["class", "n_true", "n_pred", "density_rel_error", "class_f1_iou0.5", "det_f1_iou0.5"]
    comp = pd.concat([pd.read_csv(base / f"counts_{w}" / "comparison.csv").assign(detector=w)
                      for w in ("first", "grown")])
    comp = comp[["detector"] + [c for c in cols if c in comp]]
    payload = {"profile": args.profile, "kept_runs": args.keep_runs, "size": args.size, "labelled": args.labelled,
               "unlabelled": args.unlabelled,
               "new": args.new, "steps": steps, "edits": edits, "saved": str(saved.relative_to(ROOT)),
               "comparison": comp.to_dict(orient="records")}
    e = pd.DataFrame(edits)
    notes = f"""
{args.labelled} simulated {args.size}² micrographs labelled, {args.unlabelled} to label, {args.new} new ones to
quantify; profile `{args.profile}`, this machine's CPUs, run alone. Steps and the time each took:

{markdown_table(pd.DataFrame(steps))}

Edits per micrograph labelled from the first detector's proposals (`review` standing in for the person)
against drawing every defect:

{markdown_table(e)}

What quantify reports on the new micrographs against their true labels (its `comparison.csv`), with
the detector trained on the {args.labelled} labelled micrographs and with the one retrained on the grown set:

{markdown_table(comp)}
"""
    write_results("label_loop", payload, None, notes)


if __name__ == "__main__":
    main()
