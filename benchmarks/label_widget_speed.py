"""The labelling widget on a 2048² micrograph with hundreds of proposals, in JupyterLab in a
real browser: time to show, time per action (accept, reject, relabel, draw, zoom), time to save.

A simulated 2048² micrograph (its true defects known) and a quantify output over it whose
detections are its defects with scores spread over [0.3, 1] (a stand-in detector: what is timed
is the widget, not the detector); notebook 10 opened on them in JupyterLab (headless Chromium,
Playwright) and run. Python-side times (project, ranking, opening, PNG) are measured in this
process too. Run it alone (it shares the CPU with JupyterLab's kernel and the browser):

    python benchmarks/label_widget_speed.py [--actions 30]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import _lab
import numpy as np
import pandas as pd
from PIL import Image

from tem_lib.classes import preset
from tem_lib.data.images import to_uint8
from tem_lib.quantify import CARD, ModelCard, quantify
from tem_lib.simulate import preset as sim_preset
from tem_lib.simulate import simulate
from tem_lib.utils import write_json

from _common import ROOT, write_results

sys.path.insert(0, str(ROOT / "tests"))
from labelkit import stand_in  # noqa: E402

FECRAL = preset("fecral")
STATUS = "document.querySelector('.tem-label-status').textContent"
PAINTED = "new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))"


def setup(tmp: Path, size: int):
    sim = simulate(sim_preset(height=size, width=size, nm_per_px=1.6), 1, seed=5, workers=1)[0]
    folder = tmp / "data"
    folder.mkdir()
    Image.fromarray(to_uint8(sim.image)).save(folder / f"{sim.name}.png")
    write_json(tmp / "model" / CARD, ModelCard(FECRAL, tile=256, nm_per_px=1.6, score_threshold=0.3,
                                               threshold_source="stand-in").to_dict())
    rng = np.random.default_rng(0)
    scores = rng.uniform(0.3, 1.0, len(sim.instances))
    t0 = time.perf_counter()
    quantify(tmp / "model", [folder / f"{sim.name}.png"], tmp / "proposals",
             predict=stand_in({sim.name: sim}, score_of=lambda k: float(scores[k]), wrong_class=set(range(0, 10**6, 9))),
             progress=False, overlays=False, n_boot=10)
    return folder, sim, time.perf_counter() - t0


def python_side(folder: Path, proposals: Path, name: str) -> dict:
    from tem_lib.label import LabelProject
    from tem_lib.label.widget import png_bytes
    t = {}
    t0 = time.perf_counter()
    p = LabelProject(folder, proposals=proposals, out_dir=folder.parent / "py-label")
    t["project_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    p.rank()
    t["rank_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    s = p.open(name)
    t["open_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    png = png_bytes(p.image(name))
    t["png_s"], t["png_mb"] = time.perf_counter() - t0, len(png) / 1e6
    ids = sorted(s.shapes)[:20]
    t0 = time.perf_counter()
    for k in ids:
        s.accept(k)
    t["accept_journalled_ms"] = (time.perf_counter() - t0) / len(ids) * 1000
    t["n_proposals"] = len(s.shapes)
    return t


def browser_side(tmp: Path, folder: Path, proposals: Path, n_actions: int) -> tuple[dict, list]:
    root = tmp / "lab"
    root.mkdir()
    _lab.write_notebook(ROOT / "notebooks" / "10_label_assist.ipynb", root / "10_label_assist.ipynb",
                        {"label_dir": str(folder), "proposals_dir": str(proposals), "height": 700, "device": "cpu"})
    t, actions = {}, []
    with _lab.lab_page(root, "10_label_assist.ipynb", tmp, timeout_s=300) as page:
        t0 = time.perf_counter()
        _lab.run_all_cells(page)
        page.wait_for_selector(".tem-label-canvas", state="attached")
        page.locator(".tem-label").scroll_into_view_if_needed()
        page.wait_for_selector(".tem-label-canvas[data-view]")
        page.wait_for_function(f"{STATUS}.includes('proposals to review')")
        t["show_s"] = time.perf_counter() - t0  # run all cells (the kernel connected: imports, ranking) to the drawn widget
        canvas = page.locator(".tem-label-canvas")

        def timed(kind: str, do, done: str):
            a = time.perf_counter()
            do()
            try:
                page.wait_for_function(done, timeout=60_000)
            except Exception:
                raise RuntimeError(f"{kind}: the widget did not answer in 60 s; its status: "
                                   f"{page.evaluate(STATUS)!r}") from None
            actions.append({"action": kind, "ms": (time.perf_counter() - a) * 1000})

        page.click("button[data-action=next]")
        for k in range(n_actions):  # accept or reject, the view moving on to the next proposal each time
            kind = "accept" if k % 3 else "reject"
            n_acc = sum(1 for j in range(k + 1) if j % 3)
            n_rej = k + 1 - n_acc
            done = f"{STATUS}.includes('{n_acc} accepted') && {STATUS}.includes('{n_rej} rejected')"
            timed(kind, lambda kind=kind: page.keyboard.press("a" if kind == "accept" else "r"), done)
        for _ in range(5):
            page.keyboard.press("n")
            before = f"{STATUS}.split(' edits')[0].split('; ').pop()"
            n_before = page.evaluate(before)
            timed("relabel", lambda: page.keyboard.press("3"),
                  f"{STATUS}.split(' edits')[0].split('; ').pop() !== '{n_before}'")
        score = page.locator("input[data-role=min-score]")
        for v in (0.6, 0.5, 0.7, 0.4, 0.8):  # the score box: proposals below it hidden, the status recounted
            def typed(v=v):
                score.fill(str(v))
                score.press("Tab")
            timed("score ≥ box", typed, f"{STATUS}.includes('below {v:.2f} hidden')")
        score.fill("0")
        score.press("Tab")
        page.wait_for_function(f"!{STATUS}.includes('hidden')")
        page.focus(".tem-label-canvasbox")  # the keys go to the canvas again
        page.keyboard.press("f")
        box = canvas.bounding_box()
        for _ in range(10):
            view = canvas.get_attribute("data-view")
            timed("zoom (wheel)", lambda: (page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2),
                                           page.mouse.wheel(0, -120)),
                  f"document.querySelector('.tem-label-canvas').dataset.view !== '{view}'")
        page.keyboard.press("f")
        page.evaluate(PAINTED)  # the view attribute is written when the frame is painted
        scale, tx, ty = (float(v) for v in canvas.get_attribute("data-view").split(","))
        page.keyboard.press("p")  # polygon mode stays on between drawings
        for k in range(5):
            for dx, dy in ((0, 0), (30, 0), (15, 25)):
                x, y = 100 + 60 * k + dx, 100 + dy
                page.mouse.click(box["x"] + tx + x * scale, box["y"] + ty + y * scale)
            timed("draw polygon (Enter)", lambda: page.keyboard.press("Enter"), f"{STATUS}.includes('{k + 1} drawn')")
        timed("done + save", lambda: page.keyboard.press("s"), f"{STATUS}.includes('saved')")
    return t, actions


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--actions", type=int, default=30)
    args = ap.parse_args()
    why = _lab.missing()
    if why:
        sys.exit(f"needs the browser machinery: {why}")
    tmp = Path(tempfile.mkdtemp(prefix="label-speed-"))
    folder, sim, quantify_s = setup(tmp, args.size)
    py = python_side(folder, tmp / "proposals", sim.name)
    t, actions = browser_side(tmp, folder, tmp / "proposals", args.actions)
    per = pd.DataFrame(actions).groupby("action", sort=False).ms.agg(
        n="count", median="median", p90=lambda v: float(np.percentile(v, 90)), max="max").reset_index()
    payload = {"size": args.size, "defects": len(sim.instances), "python": py, "browser": t, "actions": actions,
               "per_action": per.to_dict(orient="records"), "stand_in_quantify_s": round(quantify_s, 1)}
    notes = f"""
A simulated {args.size}² micrograph with {len(sim.instances)} defects, {py['n_proposals']} proposals (a stand-in
detector: its true defects, scores uniform in [0.3, 1], every 9th of the wrong class). Python side (this process):
project {py['project_s']:.2f} s, ranking {py['rank_s']:.2f} s, opening the micrograph (proposals to shapes with their
outlines, journal written) {py['open_s']:.2f} s, PNG for the browser {py['png_s']:.2f} s ({py['png_mb']:.1f} MB), an
accept with its journal rewritten {py['accept_journalled_ms']:.1f} ms.

In JupyterLab (headless Chromium via Playwright, this machine's 2 cores shared by the server, the kernel and the
browser): **{t['show_s']:.1f} s** from Run All Cells (clicked once the kernel is connected;
imports and ranking included) to the widget drawn.
Per action, from the key or click to the widget's status line showing the result (a round trip to the kernel,
which journals the edit; the score box: the value typed and Tab to the recount of hidden proposals), in ms:
"""
    write_results("label_widget_speed", payload, per, notes)
    print(notes)


if __name__ == "__main__":
    main()
