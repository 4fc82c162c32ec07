"""The labelling widget in a real browser: notebook 10 opened in JupyterLab (headless Chromium,
driven by Playwright), run; the proposals below a score hidden, one proposal accepted, one
rejected, one polygon drawn, saved; the saved COCO file holds exactly those. Slow (JupyterLab
and a kernel start); CI runs it with TEM_LIB_REQUIRE_BROWSER=1, so that a missing browser fails
instead of skipping."""
import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from labelkit import stand_in
from PIL import Image

from tem_lib.classes import preset
from tem_lib.data import load_dataset, write_dataset
from tem_lib.data.images import to_uint8
from tem_lib.label.shapes import to_instance
from tem_lib.quantify import CARD, ModelCard, quantify
from tem_lib.simulate import preset as sim_preset
from tem_lib.simulate import simulate
from tem_lib.utils import write_json

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import _lab  # noqa: E402

pytestmark = pytest.mark.slow
FECRAL = preset("fecral")


def user_folder(tmp: Path):
    """Two labelled micrographs, two unlabelled; a quantify output over the unlabelled ones (a
    stand-in detector that knows the truth: its proposals are real defects, one false)."""
    sims = simulate(sim_preset(height=384, width=384, nm_per_px=1.6), 4, seed=7, workers=1)
    data = write_dataset(sims[:2], tmp / "data", FECRAL)
    for s in sims[2:]:
        Image.fromarray(to_uint8(s.image)).save(data / "images" / f"{s.name}.png")
    card = ModelCard(FECRAL, tile=256, nm_per_px=1.6, score_threshold=0.3, threshold_source="test")
    write_json(tmp / "model" / CARD, card.to_dict())
    unlabelled = [data / "images" / f"{s.name}.png" for s in sims[2:]]
    quantify(tmp / "model", unlabelled, tmp / "proposals", predict=stand_in({s.name: s for s in sims}),
             progress=False, overlays=False, n_boot=10)
    return data, sims


def canvas_point(page, x: float, y: float) -> tuple[float, float]:
    """Screen position of image pixel coordinates (x, y) in the widget's canvas."""
    box = page.locator(".tem-label-canvas").bounding_box()
    scale, tx, ty = (float(v) for v in page.get_attribute(".tem-label-canvas", "data-view").split(","))
    return box["x"] + tx + x * scale, box["y"] + ty + y * scale


def selected_after(page, before: str) -> str:
    """The canvas's selected shape once it differs from ``before`` (written on the next frame)."""
    page.wait_for_function(f"(document.querySelector('.tem-label-canvas').dataset.selected || '') !== '{before}'")
    return page.get_attribute(".tem-label-canvas", "data-selected")


def test_accept_reject_draw_and_save_in_jupyterlab(tmp_path):
    why = _lab.missing()
    if why:
        if os.environ.get("TEM_LIB_REQUIRE_BROWSER"):
            pytest.fail(f"the browser test must run here: {why}")
        pytest.skip(why)
    data, sims = user_folder(tmp_path)
    root = tmp_path / "lab"
    root.mkdir()
    _lab.write_notebook(ROOT / "notebooks" / "10_label_assist.ipynb", root / "10_label_assist.ipynb",
                        {"label_dir": str(data), "proposals_dir": str(tmp_path / "proposals"), "height": 500,
                         "device": "cpu"})
    with _lab.lab_page(root, "10_label_assist.ipynb", tmp_path) as page:
        _lab.run_all_cells(page)
        page.wait_for_selector(".tem-label-canvas", state="attached")
        page.locator(".tem-label").scroll_into_view_if_needed()
        page.wait_for_selector(".tem-label-canvas[data-view]")
        page.wait_for_function("document.querySelector('.tem-label-status').textContent.includes('proposals to review')")
        name = page.eval_on_selector(".tem-label select", "s => s.value")
        page.fill("input[data-role=min-score]", "0.5")  # the false square (scored 0.35) hidden
        page.press("input[data-role=min-score]", "Tab")
        page.wait_for_function("document.querySelector('.tem-label-status').textContent.includes('1 scoring below 0.50 hidden')")
        page.click("button[data-action=next]")
        accepted = int(selected_after(page, ""))  # the canvas's attributes are written when the frame is painted
        page.click("button[data-action=accept]")  # the view moves on to the next proposal
        page.wait_for_function("document.querySelector('.tem-label-status').textContent.includes('1 accepted')")
        rejected = int(selected_after(page, str(accepted)))
        page.click("button[data-action=reject]")
        page.wait_for_function("document.querySelector('.tem-label-status').textContent.includes('1 rejected')")
        page.click("button[data-action=polygon]")
        corners = [(300.0, 20.0), (360.0, 24.0), (330.0, 70.0)]
        for x, y in corners:
            page.mouse.click(*canvas_point(page, x, y))
        page.keyboard.press("Enter")
        page.wait_for_function("document.querySelector('.tem-label-status').textContent.includes('1 drawn')")
        page.click("button[data-action=save]")
        page.wait_for_function("document.querySelector('.tem-label-status').textContent.includes('saved')")
        status = page.inner_text(".tem-label-status")
    assert "error" not in status.lower(), status
    saved = data / "label_assist" / "annotations.json"
    journal = json.loads((data / "label_assist" / "journal" / f"{name}.json").read_text())
    shapes = {s["id"]: s for s in journal["shapes"]}
    assert shapes[accepted]["status"] == "accepted" and shapes[rejected]["status"] == "rejected"
    back = {s.name: s for s in load_dataset(saved)}
    got = back[name]
    assert len(got.instances) == 2  # the accepted proposal and the drawn polygon; the rejected one is not there
    hw = got.shape
    want_accepted = to_instance(shapes[accepted], hw).full_mask(hw)
    rejected_mask = to_instance(shapes[rejected], hw).full_mask(hw)
    masks = [i.full_mask(hw) for i in got.instances]
    assert any(np.array_equal(m, want_accepted) for m in masks)
    assert not any(np.array_equal(m, rejected_mask) for m in masks)
    drawn = next(s for s in journal["shapes"] if s["status"] == "drawn")
    assert np.allclose(drawn["points"], corners, atol=1.0)  # where the clicks were, in image pixels
    assert any(np.array_equal(m, to_instance(drawn, hw).full_mask(hw)) for m in masks)
    assert set(back) == {sims[0].name, sims[1].name, name}
    shutil.rmtree(root, ignore_errors=True)
