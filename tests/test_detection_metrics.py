"""The paper's metrics on hand-computed cases, and against pycocotools where they coincide."""
import numpy as np
import pandas as pd
import pytest

from tem_lib.classes import preset
from tem_lib.data import Instance, Sample
from tem_lib.metrics.detection import (
    Detections,
    above,
    box_iou,
    choose_score_threshold,
    coco_ap,
    coco_eval,
    evaluate_detections,
    match_greedy,
    size_density_table,
)

FECRAL = preset("fecral")


def rect(x1, y1, x2, y2, cls):
    return Instance(np.ones((y2 - y1, x2 - x1), bool), x1, y1, cls)


def sample(name, rects, shape=(256, 256), nm=None):
    return Sample(np.zeros(shape, np.float32), [rect(*r) for r in rects], name, nm_per_px=nm, name=name)


def dets(name, rows, shape=(256, 256), masks=True):
    """rows: (x1, y1, x2, y2, cls, score); masks = the boxes filled."""
    boxes = [r[:4] for r in rows]
    inst = [rect(*r[:5]) for r in rows] if masks else None
    return Detections(np.array(boxes, float).reshape(-1, 4), [r[4] for r in rows], [r[5] for r in rows],
                      shape, name, inst)


def test_box_iou_by_hand():
    iou = box_iou([[0, 0, 10, 10]], [[5, 0, 15, 10], [0, 0, 10, 10], [20, 20, 30, 30], [3, 3, 3, 9]])
    assert iou[0] == pytest.approx([50 / 150, 1.0, 0.0, 0.0])  # last one is degenerate
    assert box_iou(np.zeros((0, 4)), [[0, 0, 1, 1]]).shape == (0, 1)


def test_gt_order_and_score_order_differ():
    A, B = [0, 0, 10, 10], [4, 0, 14, 10]
    P, Q = [1, 0, 11, 10], [0, 0, 10, 10]  # IoU(A,P)=0.818 IoU(B,P)=0.538 IoU(A,Q)=1 IoU(B,Q)=0.429
    # the paper: A takes its best (Q), then B takes P
    assert [(g, p) for g, p, _ in match_greedy([A, B], [P, Q], 0.5, "gt")] == [(0, 1), (1, 0)]
    # COCO: P (score 0.9) takes A first; Q is left with B at 0.43 < 0.5
    pairs = match_greedy([A, B], [P, Q], 0.5, "score", scores=[0.9, 0.8])
    assert [(g, p) for g, p, _ in pairs] == [(0, 0)] and pairs[0][2] == pytest.approx(90 / 110)
    # a prediction below the threshold is not used up: the next defect can still take it
    assert [(g, p) for g, p, _ in match_greedy([[100, 100, 110, 110], A], [Q], 0.5)] == [(1, 0)]
    with pytest.raises(ValueError, match="order"):
        match_greedy([A], [P], 0.5, "best")


@pytest.fixture
def two_images():
    truth = [sample("a", [(10, 10, 20, 20, 1), (50, 50, 70, 70, 2), (100, 100, 110, 130, 3)]),
             sample("b", [(30, 30, 50, 50, 2)])]
    preds = [dets("a", [(10, 10, 20, 20, 1, 0.9), (52, 52, 72, 72, 3, 0.8), (200, 200, 210, 210, 1, 0.5)]),
             dets("b", [])]
    return truth, preds


def test_paper_metrics_by_hand(two_images):
    truth, preds = two_images
    rep = evaluate_detections(truth, preds, iou_thresholds=(0.5, 0.7), classes=FECRAL)
    t = rep.table.set_index("iou")
    # IoU 0.5: found a (exact) and the shifted 2 (IoU 324/476 = 0.68, wrong class); FP 1; FN 2
    assert (t.loc[0.5, ["tp", "fp", "fn"]] == [2, 1, 2]).all()
    assert t.loc[0.5, "det_f1"] == pytest.approx(4 / 7)
    # classes among found pairs: dot->dot (F1 1), <111> -> <100> (F1 0 for both) -> mean 1/3
    assert t.loc[0.5, "cls_f1"] == pytest.approx(1 / 3)
    assert t.loc[0.5, "harmonic"] == pytest.approx(8 / 19)
    assert t.loc[0.5, "det_precision"] == pytest.approx(2 / 3) and t.loc[0.5, "det_recall"] == pytest.approx(0.5)
    cm = rep.confusion[0.5]
    assert cm.loc["1/2<111> loop", "<100> loop"] == 1 and cm.to_numpy().sum() == 2
    # IoU 0.7: the shifted box is lost; only dot->dot is found; the other classes are absent
    assert (t.loc[0.7, ["tp", "fp", "fn"]] == [1, 2, 3]).all()
    assert t.loc[0.7, "det_f1"] == pytest.approx(2 / 7) and t.loc[0.7, "cls_f1"] == 1.0
    assert t.loc[0.7, "absent_classes"] == "2,3" and t.loc[0.7, "harmonic"] == pytest.approx(4 / 9)
    assert rep.headline(0.5)["harmonic"] == pytest.approx(8 / 19)


def test_the_authors_quirks_are_options(two_images):
    truth, preds = two_images
    skip = evaluate_detections(truth, preds, (0.5,), skip_images_without_predictions=True, classes=FECRAL).table.iloc[0]
    assert skip["fn"] == 1 and skip["det_f1"] == pytest.approx(4 / 6) and skip["images_skipped"] == 1
    capped = evaluate_detections(truth, preds, (0.5,), detections_cap=(1, 500), classes=FECRAL).table.iloc[0]
    assert (capped[["tp", "fp", "fn"]] == [1, 0, 3]).all()
    low = evaluate_detections(truth, preds, (0.5,), score_threshold=0.6, classes=FECRAL).table.iloc[0]
    assert low["fp"] == 0


def test_degenerate_and_empty_inputs_never_give_nan():
    empty_truth = [sample("e", [])]
    # nothing to find, nothing claimed: perfect by definition
    row = evaluate_detections(empty_truth, [dets("e", [])], classes=FECRAL).table.iloc[0]
    assert row["det_f1"] == 1.0 and row["cls_f1"] == 1.0 and row["harmonic"] == 1.0
    # predictions on a crop without defects: all false positives, headline 0
    row = evaluate_detections(empty_truth, [dets("e", [(1, 1, 5, 5, 1, 0.5)])], classes=FECRAL).table.iloc[0]
    assert (row[["tp", "fp", "fn"]] == [0, 1, 0]).all() and row["harmonic"] == 0.0
    # defects but no predictions: headline 0
    row = evaluate_detections([sample("d", [(1, 1, 5, 5, 1)])], [dets("d", [])], classes=FECRAL).table.iloc[0]
    assert row["det_f1"] == 0.0 and row["harmonic"] == 0.0
    # a degenerate (zero-width) predicted box matches nothing
    rep = evaluate_detections([sample("d", [(1, 1, 5, 5, 1)])], [dets("d", [(3, 1, 3, 5, 1, 0.9)], masks=False)], classes=FECRAL)
    assert not rep.table[["det_f1", "cls_f1", "harmonic"]].isna().any().any()
    assert rep.table.iloc[0]["tp"] == 0
    with pytest.raises(ValueError, match="prediction sets"):
        evaluate_detections(empty_truth, [], classes=FECRAL)
    with pytest.raises(ValueError, match="lengths must agree"):
        Detections(np.zeros((2, 4)), [1], [0.5, 0.5], (8, 8))


def test_score_order_matches_pycocotools():
    """Class-agnostic, score-ordered greedy matching is COCO's: same TP count per image."""
    rng = np.random.default_rng(0)
    truth, preds = [], []
    for k in range(6):
        gt = []
        for _ in range(rng.integers(3, 12)):
            x, y = rng.integers(0, 220, 2)
            w, h = rng.integers(3, 30, 2)
            gt.append((int(x), int(y), int(x + w), int(y + h), int(rng.integers(1, 4))))
        pr = []
        for r in gt:
            if rng.random() < 0.8:
                j = rng.integers(-3, 4, 4)
                x1, y1 = r[0] + j[0], r[1] + j[1]
                pr.append((int(x1), int(y1), int(max(x1 + 1, r[2] + j[2])), int(max(y1 + 1, r[3] + j[3])),
                           int(rng.integers(1, 4)), float(rng.random())))
        for _ in range(rng.integers(0, 4)):
            x, y = rng.integers(0, 240, 2)
            pr.append((int(x), int(y), int(x + 8), int(y + 8), 1, float(rng.random())))
        truth.append(sample(f"i{k}", gt))
        preds.append(dets(f"i{k}", pr))
    ev = coco_eval(truth, preds, "bbox", class_agnostic=True)
    t50 = int(np.argmin(np.abs(ev.params.iouThrs - 0.5)))
    coco_tp = sum(int((e["dtMatches"][t50] > 0).sum()) for e in ev.evalImgs
                  if e is not None and e["aRng"] == ev.params.areaRng[0])
    ours = evaluate_detections(truth, preds, (0.5,), matching="score", classes=FECRAL).table.iloc[0]["tp"]
    assert ours == coco_tp and ours > 10


def test_coco_ap_perfect_and_size_density():
    truth = [sample("a", [(10, 10, 20, 20, 1), (40, 40, 70, 60, 2)], nm=0.5),
             sample("b", [(5, 5, 9, 9, 1)], nm=0.5)]
    perfect = [dets(s.name, [(*i.bbox, i.category_id, 0.9) for i in s.instances]) for s in truth]
    ap = coco_ap(truth, perfect)
    assert ap["bbox_AP"] == pytest.approx(1.0) and ap["segm_AP"] == pytest.approx(1.0)
    tab = size_density_table(truth, perfect, FECRAL).set_index("class_id")
    assert tab.loc[1, "n_true"] == 2 and tab.loc[1, "density_rel_error"] == 0.0
    assert tab.loc[1, "size_rel_error"] == pytest.approx(0.0) and tab.loc[1, "size_unit"] == "nm"
    # density per um^2: 2 dots in 2 x (256 x 0.5 nm)^2
    assert tab.loc[1, "density_true"] == pytest.approx(2 / (2 * (256 * 0.5e-3) ** 2))
    missed = [dets("a", [(10, 10, 20, 20, 1, 0.9)]), dets("b", [])]
    tab = size_density_table(truth, missed, FECRAL).set_index("class_id")
    assert tab.loc[1, "density_rel_error"] == pytest.approx(-0.5)
    assert np.isnan(tab.loc[2, "size_pred"]) and np.isnan(tab.loc[3, "density_rel_error"])
    assert isinstance(tab, pd.DataFrame)


def test_per_image_counts_sum_to_the_pooled_metrics_and_bootstrap_is_paired(two_images):
    from tem_lib.metrics.detection import paired_bootstrap, per_image_counts, scores_from_counts
    truth, preds = two_images
    counts, cms = per_image_counts(truth, preds, 0.5, FECRAL)
    assert counts.tolist() == [[2, 1, 1], [0, 0, 1]]
    s = scores_from_counts(counts.sum(0), cms.sum(0), FECRAL)
    row = evaluate_detections(truth, preds, (0.5,), classes=FECRAL).table.iloc[0]
    assert s["det_f1"] == pytest.approx(row["det_f1"]) and s["harmonic"] == pytest.approx(row["harmonic"])
    # the same predictions against themselves: every replicate's gain is exactly 0
    same = paired_bootstrap(truth, preds, preds, n_boot=50, classes=FECRAL)
    assert (same[["gain", "ci_low", "ci_high"]] == 0).all().all()
    # perfect predictions gain over these in detection, with a CI above 0 on the found images
    perfect = [dets(s.name, [(*i.bbox, i.category_id, 0.9) for i in s.instances]) for s in truth]
    gain = paired_bootstrap(truth, preds, perfect, n_boot=200, classes=FECRAL).set_index("metric")
    assert gain.loc["det_f1", "gain"] == pytest.approx(1 - 4 / 7) and gain.loc["det_f1", "ci_low"] > 0


def test_score_threshold_is_chosen_on_the_crops_given():
    truth = [sample("a", [(10, 10, 20, 20, 1), (50, 50, 60, 60, 2)])]
    # two right detections (0.6, 0.7) and two false ones, low (0.2) and high (0.9)
    preds = [dets("a", [(10, 10, 20, 20, 1, 0.6), (50, 50, 60, 60, 2, 0.7), (100, 100, 110, 110, 1, 0.2),
                        (150, 150, 160, 160, 3, 0.9)])]
    thr, table = choose_score_threshold(truth, preds, FECRAL)
    assert thr == pytest.approx(0.25)  # the lowest threshold that drops the 0.2 box and keeps both right ones
    assert table.loc[table["threshold"] == 0.25, "det_f1"].item() == pytest.approx(f1_value(2, 1, 0))
    assert len(above(preds, 0.65)[0]) == 2
    with pytest.raises(ValueError, match="validation crops"):
        choose_score_threshold([], [], FECRAL)


def f1_value(tp, fp, fn):
    return 2 * tp / (2 * tp + fp + fn)


def test_headline_is_detection_f1_with_one_class():
    from tem_lib.analysis import metric_order
    from tem_lib.classes import ClassSet
    from tem_lib.metrics.detection import headline_metric
    assert headline_metric(preset("fecral")) == "harmonic"
    one = ClassSet.from_names(["loop"], ids=[7])
    assert headline_metric(one) == "det_f1" and metric_order(one) == ("det_f1", "cls_f1", "harmonic")
    assert metric_order(preset("fecral"))[0] == "harmonic"


def test_class_agnostic_nms_of_detections_by_hand():
    from tem_lib.metrics.detection import Detections
    d = Detections([[0, 0, 10, 10], [1, 0, 11, 10], [30, 30, 40, 40]], [1, 2, 2], [0.5, 0.9, 0.3], (64, 64))
    kept = d.class_agnostic_nms(0.5)  # the two overlapping boxes of different classes: the better one stays
    assert kept.labels.tolist() == [2, 2] and kept.scores.tolist() == [0.9, 0.3]
    assert len(d.class_agnostic_nms(0.95)) == 3  # they overlap by 9/11 < 0.95: both kept


def test_one_threshold_per_class_recovers_a_class_the_detector_scores_low():
    """Loops of class 3 score only 0.3 but are right; dots score 0.8 and a false dot 0.5: one
    threshold must drop the loops or keep the false dot, one per class does neither."""
    from tem_lib.metrics.detection import choose_class_thresholds
    truth = [sample("a", [(10, 10, 20, 20, 1), (40, 40, 50, 50, 1), (80, 80, 100, 90, 3), (120, 120, 140, 130, 3)])]
    preds = [dets("a", [(10, 10, 20, 20, 1, 0.8), (40, 40, 50, 50, 1, 0.8), (200, 200, 210, 210, 1, 0.5),
                        (80, 80, 100, 90, 3, 0.3), (120, 120, 140, 130, 3, 0.3)])]
    single, _ = choose_score_threshold(truth, preds, FECRAL)
    kept = above(preds, single)[0]
    assert len(kept) in (2, 5)  # either the loops are gone or the false dot stays
    for objective in ("headline", "count"):
        th, table = choose_class_thresholds(truth, preds, FECRAL, objective=objective)
        got = preds[0].above_class_thresholds(th)
        assert sorted(got.labels.tolist()) == [1, 1, 3, 3], objective
        assert 0.5 < th[1] <= 0.8 and th[3] <= 0.3
        assert table.set_index("class_id").loc[3, "n_kept"] == 2
    with pytest.raises(ValueError, match="objective"):
        choose_class_thresholds(truth, preds, FECRAL, objective="f1")


class _FakeSweep:
    """What ``analysis.gain_table`` reads of a finished sweep: its runs, test crops and predictions."""
    classes = FECRAL

    def __init__(self, runs, truth, preds):
        self.runs, self._truth, self._preds = runs, truth, preds

    def test_crops(self, split):
        return self._truth[split]

    def predictions(self, run):
        return self._preds[run["id"]]

    def baseline(self, run):
        return next(b for b in self.runs if b["n_synthetic"] == 0 and
                    (b["split"], b["n_train"], b["seed"]) == (run["split"], run["n_train"], run["seed"]))


def test_gain_over_n_pairs_every_exp_run_with_the_smallest_n_of_its_split_and_seed():
    from tem_lib.analysis import comparison_pairs, gain_table
    truth = {s: [sample(f"s{s}-{i}", [(10, 10, 30, 30, 1), (60, 60, 90, 90, 2)]) for i in range(6)] for s in (0, 1)}
    half = {s: [dets(t.name, [(10, 10, 30, 30, 1, 0.9)]) for t in truth[s]] for s in truth}
    full = {s: [dets(t.name, [(*i.bbox, i.category_id, 0.9) for i in t.instances]) for t in truth[s]] for s in truth}
    runs, preds = [], {}
    for s in (0, 1):
        for n in (10, 50):
            for seed in (0, 1):
                rid = f"s{s}-n{n}-seed{seed}"
                runs.append({"id": rid, "split": s, "n_train": n, "n_synthetic": 0, "seed": seed, "augment": "none",
                             "amount": 0})
                preds[rid] = half[s] if n == 10 else full[s]
    sweep = _FakeSweep(runs, truth, preds)
    pairs = comparison_pairs(sweep, over="n")
    assert len(pairs) == 4 and all(b["n_train"] == 10 and r["n_train"] == 50 and
                                   (b["split"], b["seed"]) == (r["split"], r["seed"]) for b, r in pairs)
    gains = gain_table(sweep, n_boot=50, over="n").set_index(["split", "seed", "metric"])
    # half the defects found at N = 10, all at N = 50: detection F1 2/3 -> 1 on every crop resample
    assert gains.loc[("0", 0, "det_f1"), "gain"] == pytest.approx(1 / 3)
    assert gains.loc[("pooled", "all", "det_f1"), "ci_low"] == pytest.approx(1 / 3)
    assert (gains["n_from"] == 10).all() and (gains["n_train"] == 50).all()
    with pytest.raises(ValueError, match="no augmented runs"):
        gain_table(sweep, n_boot=5)  # over="exp": nothing augmented
    one_n = _FakeSweep([r for r in runs if r["n_train"] == 10], truth, preds)
    with pytest.raises(ValueError, match="one N per split"):
        gain_table(one_n, n_boot=5, over="n")
    with pytest.raises(ValueError, match="over must be"):
        comparison_pairs(sweep, over="seed")
