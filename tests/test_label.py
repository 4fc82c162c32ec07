"""Detector-assisted labelling: proposals from quantify's detector, edits journalled at once,
labels saved beside the user's data (never over it) and read back exactly, ranking, bad input."""
import json
import os

import numpy as np
import pytest
from labelkit import stand_in
from PIL import Image

from tem_lib.classes import preset, resolve_classes
from tem_lib.data import load_dataset, write_dataset
from tem_lib.data.images import to_uint8
from tem_lib.label import LabelProject, edits_table, review, review_from_nothing, uncertainty
from tem_lib.label.shapes import to_instance
from tem_lib.quantify import CARD, ModelCard
from tem_lib.simulate import preset as sim_preset
from tem_lib.simulate import simulate
from tem_lib.utils import write_json

FECRAL = preset("fecral")


@pytest.fixture(scope="module")
def sims():
    return simulate(sim_preset(height=384, width=384, nm_per_px=1.6), 4, seed=7, workers=1)


@pytest.fixture
def folder(tmp_path, sims):
    """A user's dataset: two labelled micrographs (COCO), two more images without labels."""
    data = write_dataset(sims[:2], tmp_path / "data", FECRAL)
    for s in sims[2:]:
        Image.fromarray(to_uint8(s.image)).save(data / "images" / f"{s.name}.png")
    return data


@pytest.fixture
def model(tmp_path):
    """A model folder's card (the stand-in detector replaces its weights)."""
    card = ModelCard(FECRAL, tile=256, nm_per_px=1.6, score_threshold=0.3, threshold_source="test",
                     class_thresholds={1: 0.3, 2: 0.3, 3: 0.3})
    write_json(tmp_path / "model" / CARD, card.to_dict())
    return tmp_path / "model"


def project(folder, model, sims, **kw):
    truth = {s.name: s for s in sims}
    kw.setdefault("predict", stand_in(truth, wrong_class={1}, missed={2}))
    return LabelProject(folder, model=model, **kw)


def test_proposals_edits_and_saved_labels_read_back_exactly(folder, model, sims):
    original = (folder / "annotations.json").read_bytes()
    p = project(folder, model, sims)
    assert sorted(p.names()) == sorted(s.name for s in sims)
    assert [n for n, v in p.images.items() if v["labelled"]] == [sims[0].name, sims[1].name]
    s = p.open(sims[2].name)
    proposed = [x for x in s.shapes.values() if x["status"] == "proposed"]
    # every true defect but the missed one, once (tiles merged), plus the false square
    assert len(proposed) == len(sims[2].instances) - 1 + 1
    ids = sorted(s.shapes)
    s.accept(ids[0])
    s.reject(ids[1])
    s.relabel(ids[3], 3)
    poly = s.draw_polygon([[200.0, 200.0], [230.0, 202.0], [215.0, 228.0]], class_id=2)
    ell = s.draw_ellipse(60.5, 300.5, 20, 8, 30, class_id=3)
    assert s.edit_counts() == {"accept": 1, "reject": 1, "relabel": 1, "delete": 0, "draw": 2, "restore": 0}
    s.set_done()
    saved = p.save()
    assert saved == folder / "label_assist" / "annotations.json" and (folder / "label_assist" / "annotations-v001.json").is_file()
    assert (folder / "annotations.json").read_bytes() == original  # the user's labels untouched
    back = {x.name: x for x in load_dataset(saved)}
    assert sorted(back) == sorted([sims[0].name, sims[1].name, sims[2].name])  # the 4th is not done: not saved
    for before in load_dataset(folder):  # labelled before, never opened: exactly as they were
        assert np.array_equal(back[before.name].masks(), before.masks())
        assert [i.ellipse for i in back[before.name].instances] == [i.ellipse for i in before.instances]
    got = back[sims[2].name]
    want = [to_instance(s.shapes[k], s.image_hw) for k in (ids[0], ids[3], poly, ell)]
    assert [i.category_id for i in got.instances] == [w.category_id for w in want]
    assert got.instances[1].category_id == 3  # relabelled
    for g, w in zip(got.instances, want):
        assert np.array_equal(g.full_mask(got.shape), w.full_mask(got.shape))
    assert got.instances[3].ellipse == pytest.approx((60.5, 300.5, 20, 8, 30))
    assert got.nm_per_px == pytest.approx(1.6)  # a PNG records none: the labelled micrographs' (said), never a mix
    p.save()  # a second save: a new version, the first kept
    assert (folder / "label_assist" / "annotations-v002.json").is_file()
    assert (folder / "label_assist" / "annotations-v001.json").is_file()


def test_a_dead_kernel_loses_no_edit(folder, model, sims):
    p = project(folder, model, sims)
    s = p.open(sims[3].name)
    ids = sorted(s.shapes)
    s.accept(ids[0])
    s.reject(ids[1])
    s.draw_polygon([[10, 10], [40, 10], [40, 40], [10, 40]], class_id=1)
    state = json.loads(json.dumps(s.state()))
    del p, s  # the kernel dies: nothing saved, only the journal written after each edit
    again = project(folder, model, sims, predict=lambda tiles, offsets: pytest.fail("proposals recomputed"))
    s2 = again.open(sims[3].name)
    assert json.loads(json.dumps(s2.state())) == state
    assert s2.edit_counts()["draw"] == 1 and not s2.done


def test_labelled_micrographs_show_only_proposals_that_no_label_covers(folder, model, sims):
    p = project(folder, model, sims)
    s = p.open(sims[0].name)
    c = s.counts()
    assert c["labelled"] == len(sims[0].instances)
    assert c["proposed"] == 1  # the false square; a label's own defect (even called by another class) is covered
    # an existing label deleted and the micrograph saved: the saved file lacks exactly that one
    lab = next(k for k, x in s.shapes.items() if x["status"] == "labelled")
    s.delete(lab)
    p.save()
    back = {x.name: x for x in load_dataset(folder / "label_assist" / "annotations.json")}
    assert len(back[sims[0].name].instances) == len(sims[0].instances) - 1


def test_the_ranking_puts_the_uncertain_micrograph_first(folder, model, sims):
    truth = {s.name: s for s in sims}
    unsure = sims[3].name

    def score(k):
        return 0.5 if stand_in.current == unsure else 0.99
    base = stand_in(truth, score_of=lambda k: score(k), extra=False)

    def predict(tiles, offsets):
        stand_in.current = next(n for n, s in truth.items() if any(
            np.array_equal(s.image[y:y + t.shape[0], x:x + t.shape[1]], t) for t, (x, y) in zip(tiles, offsets)))
        return base(tiles, offsets)
    p = LabelProject(folder, model=model, predict=predict)
    table = p.rank()
    assert list(table["image"]) == [unsure, sims[2].name]  # labelled micrographs are not ranked
    assert table["uncertainty"].iloc[0] == pytest.approx(len(sims[3].instances), rel=0.05)  # 1 bit per 0.5 score
    assert uncertainty([0.5, 0.5]) == pytest.approx(2) and uncertainty([1.0, 0.0]) == pytest.approx(0, abs=1e-4)


def test_the_review_reaches_the_truth_with_fewer_edits_than_drawing(folder, model, sims):
    p = project(folder, model, sims)
    s = p.open(sims[2].name)
    edits = review(s, sims[2])
    # right proposals accepted, the wrong-class one relabelled, the false one rejected, the missed one drawn
    assert edits["relabel"] == 1 and edits["reject"] == 1 and edits["draw"] == 1
    assert edits["accept"] == len(sims[2].instances) - 2
    assert sum(edits.values()) == len(sims[2].instances) + 1
    assert review_from_nothing(sims[2])["draw"] == len(sims[2].instances)
    got = s.instances()
    assert sorted(i.category_id for i in got) == sorted(i.category_id for i in sims[2].instances)
    table = edits_table(p, sims[2:]).set_index("image")  # fresh sessions: the journals are not touched
    assert table.loc[sims[2].name, "edits_assisted"] == sum(edits.values())
    assert table.loc[sims[3].name, "draw"] == 1 and table["edits_from_nothing"].tolist() == [len(t.instances) for t in sims[2:]]
    assert not p.is_done(sims[3].name) and p.open(sims[3].name).edits == []


def test_bad_input_gets_a_clear_message_and_loses_nothing(folder, model, sims, tmp_path):
    (folder / "images" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not an image")
    p = project(folder, model, sims)
    assert "broken" in p.names()
    with pytest.raises(ValueError, match=r"broken.png: cannot be read"):
        p.open("broken")
    row = p.rank().set_index("image").loc["broken"]
    assert row["error"] and np.isnan(row["uncertainty"])
    # a model for another class set
    other = ModelCard(resolve_classes(["dot", "loop"]), tile=256, nm_per_px=1.6, score_threshold=0.3,
                      threshold_source="test")
    write_json(tmp_path / "other" / CARD, other.to_dict())
    with pytest.raises(ValueError, match="the model's classes .* differ from the dataset's"):
        LabelProject(folder, model=tmp_path / "other")
    # a folder where the labels cannot be written: said at once, with the way out
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the labels' folder would go")
    with pytest.raises(PermissionError, match="cannot write the labels here.*out_dir="):
        LabelProject(folder, model=model, out_dir=blocker / "label_assist", predict=stand_in({}))
    # a user's own file where label_assist would save: never overwritten
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "annotations.json").write_text(json.dumps({"images": [], "annotations": [], "categories": []}))
    with pytest.raises(ValueError, match="not one label_assist wrote"):
        LabelProject(folder, model=model, out_dir=mine)
    # a journal that cannot be written: the edit is kept in memory and the reason said
    s = p.open(sims[2].name)
    os.replace(s.journal, s.journal.with_suffix(".bak"))
    s.journal.mkdir()
    s.accept(sorted(s.shapes)[0])
    assert s.journal_error and "kept in memory" in s.journal_error
    assert s.shapes[sorted(s.shapes)[0]]["status"] == "accepted"
    with pytest.raises(ValueError, match="class 9 is not in the class set"):
        s.relabel(sorted(s.shapes)[1], 9)
    with pytest.raises(ValueError, match="covers no pixel"):
        s.draw_polygon([[-50, -50], [-40, -50], [-45, -40]], class_id=1)
    with pytest.raises(ValueError, match="nothing to save"):
        LabelProject(tmp_path / "data" / "images", classes="fecral", out_dir=tmp_path / "empty-out").save()


def test_labels_saved_outside_the_folder_point_back_at_its_images(folder, model, sims, tmp_path):
    p = project(folder, model, sims, out_dir=tmp_path / "elsewhere")
    s = p.open(sims[2].name)
    review(s, sims[2])
    s.set_done()
    saved = p.save()
    coco = json.loads(saved.read_text())
    back = load_dataset(saved, images_dir=coco["info"]["images_dir"])
    assert {x.name for x in back} >= {sims[2].name}


def test_the_widget_applies_the_views_edits_and_answers_with_the_changed_shape(folder, model, sims):
    from tem_lib.label import LabelWidget
    p = project(folder, model, sims)
    w = LabelWidget(p)
    sent = []
    w.send = lambda msg, buffers=None: sent.append(msg)
    assert w.image_name == w.images[0]["name"] and w.images[0]["name"] in (sims[2].name, sims[3].name)
    assert w.image_png[:4] == b"\x89PNG" and [c["name"] for c in w.classes] == list(FECRAL.names)
    w._on_msg(w, {"type": "hello"}, [])
    assert sent[-1]["type"] == "shapes" and all("rle" not in s for s in sent[-1]["shapes"])
    first = sorted(w.session.shapes)[0]
    w._on_msg(w, {"type": "edit", "action": "accept", "id": first}, [])
    assert sent[-1] == {"type": "patch", "shapes": [{k: v for k, v in w.session.shapes[first].items() if k != "rle"}]}
    w._on_msg(w, {"type": "edit", "action": "draw", "kind": "ellipse", "ellipse": [50, 50, 12, 6, 0], "class_id": 3}, [])
    w._on_msg(w, {"type": "edit", "action": "relabel", "id": 10**6, "class_id": 1}, [])
    assert w.error and "no shape" in w.message and sent[-1]["type"] == "shapes"  # the view put back
    w._on_msg(w, {"type": "save"}, [])
    assert not w.error and "saved" in w.message
    back = {x.name: x for x in load_dataset(folder / "label_assist" / "annotations.json")}
    assert len(back[w.image_name].instances) == 2
    w._on_msg(w, {"type": "open", "name": sims[0].name}, [])
    assert w.image_name == sims[0].name and w.session.counts()["labelled"] == len(sims[0].instances)


def test_proposals_below_the_lowest_score_shown_are_hidden_never_saved_and_drawn_instead(folder, model, sims):
    from tem_lib.label import LabelWidget, min_score_table
    truth = {s.name: s for s in sims}
    p = project(folder, model, sims, predict=stand_in(truth, score_of=lambda k: 0.9 if k % 2 else 0.4))
    t = sims[2]
    n, low = len(t.instances), len(t.instances[::2])  # defects 0, 2, 4, ... scored 0.4; the false square 0.35
    s = p.fresh(t.name)  # no journal: the widget below opens the micrograph untouched
    assert s.counts(0.5)["hidden"] == low + 1 and s.counts(0.5)["proposed"] == n - low and s.counts()["hidden"] == 0
    edits = review(s, t, min_score=0.5)
    # the false square is never seen (no reject); what the hidden proposals found is drawn
    assert edits == {**review_from_nothing(t), "accept": n - low, "draw": low}
    assert sorted(i.category_id for i in s.instances()) == sorted(i.category_id for i in t.instances)
    table = min_score_table(p, [t], scores=(0.0, 0.5, 0.95)).set_index("min_score")
    assert table.loc[0.0, "reject"] == 1 and table.loc[0.0, "draw"] == 0 and table.loc[0.0, "hidden"] == 0
    assert table.loc[0.5, "edits_assisted"] == n and table.loc[0.5, "reject"] == 0
    assert table.loc[0.5, "inputs_assisted"] == (n - low) + 3 * low  # a key per accept, 3 per drawing
    assert table.loc[0.0, "inputs_assisted"] == (n - low) + low + 1 and table.loc[0.0, "inputs_from_nothing"] == 3 * n
    assert table.loc[0.95, "draw"] == n and table.loc[0.95, "hidden"] == n + 1
    # the widget: the box's value hides them and says so; an impossible score is refused
    w = LabelWidget(p, image=t.name)
    assert "hidden" not in w.message
    w.min_score = 0.5
    assert f"{n - low} proposals to review ({low + 1} scoring below 0.50 hidden)" in w.message
    with pytest.raises(Exception, match="not a score"):
        w.min_score = 1.5
    assert w.min_score == 0.5
