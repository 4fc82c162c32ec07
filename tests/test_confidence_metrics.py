"""Metrics of the U-Net confidence study on hand-made cases."""
import numpy as np
import pytest

from tem_lib.metrics.confidence import (
    boundary_f1,
    confidence_stats,
    expected_calibration_error,
    flip_agreement,
    grains,
    object_counts,
    object_recall,
    pixel_scores,
    seed_agreement,
)


def test_pixel_scores_by_hand():
    ref = np.zeros((1, 4, 4), bool)
    ref[0, :2, :2] = True  # 4 px
    pred = np.zeros_like(ref)
    pred[0, :2, :3] = True  # 6 px, 4 right
    s = pixel_scores(pred, ref)
    assert s["iou"] == pytest.approx(4 / 6) and s["f1"] == pytest.approx(8 / 10)
    assert s["precision"] == pytest.approx(4 / 6) and s["recall"] == 1.0
    assert np.isnan(pixel_scores(np.zeros_like(ref), np.zeros_like(ref))["iou"])
    with pytest.raises(ValueError, match="differ in shape"):
        pixel_scores(pred, ref[:, :2])


def test_boundary_f1_tolerates_small_offsets():
    ref = np.zeros((1, 20, 20), bool)
    ref[0, :, 10] = True
    near = np.roll(ref, 1, axis=2)  # one pixel off
    far = np.roll(ref, 5, axis=2)
    assert boundary_f1(near, ref, 2.0)["f1"] == 1.0 and pixel_scores(near, ref)["f1"] == 0.0
    assert boundary_f1(far, ref, 2.0)["precision"] == 0 and boundary_f1(far, ref, 2.0)["f1"] == 0
    assert boundary_f1(far, ref, 5.0)["f1"] == 1.0


def test_grains_counts_and_recall():
    b = np.zeros((40, 40), bool)
    b[:, 20] = True
    b[10, :20] = True  # three grains: two on the left (200 and 580 px), one on the right
    assert len(np.unique(grains(b))) - 1 == 3
    assert list(object_counts(b[None], "grains")) == [3]
    missing = b.copy()
    missing[10, :20] = False  # the left two merge (800 px): the small one's IoU 0.25 loses it,
    assert object_recall(missing[None], b[None], "grains") == pytest.approx(2 / 3)  # the big one's 0.73 keeps it
    assert object_recall(b[None], b[None], "grains") == 1.0
    d = np.zeros((1, 30, 30), bool)
    d[0, 2:6, 2:6] = d[0, 20:26, 20:26] = True
    p = np.zeros_like(d)
    p[0, 2:6, 2:5] = True  # 3/4 of the first defect, none of the second
    assert list(object_counts(d)) == [2] and object_recall(p, d) == 0.5
    with pytest.raises(ValueError, match="kind must be"):
        object_counts(d, "lines")


def test_confidence_and_calibration():
    sure = np.zeros((1, 2, 2, 2))
    sure[:, 1] = 1.0
    s = confidence_stats(sure, labels=np.ones((1, 2, 2), int))
    assert s["mean_max_prob"] == 1.0 and s["mean_entropy"] == pytest.approx(0, abs=1e-9) and s["ece"] == 0.0
    unsure = np.full((1, 2, 2, 2), 0.5)
    s = confidence_stats(unsure)
    assert s["mean_max_prob"] == 0.5 and s["mean_entropy"] == pytest.approx(1.0)
    # 80 % confident, right 3 times in 4: ECE = |0.75 - 0.8|
    p = np.zeros((1, 2, 1, 4))
    p[:, 1], p[:, 0] = 0.8, 0.2
    assert expected_calibration_error(p, np.array([[[1, 1, 1, 0]]])) == pytest.approx(0.05)


def test_flip_and_seed_agreement():
    rng = np.random.default_rng(0)
    images = rng.random((2, 16, 16))
    assert flip_agreement(lambda x: x > 0.5, images) == 1.0  # a pixelwise rule has no orientation
    # a rule that looks to the left changes when the image is turned
    assert flip_agreement(lambda x: np.roll(x, 1, -1) > 0.5, images) < 0.7
    a = images > 0.5
    assert seed_agreement([a, a, a]) == 1.0 and seed_agreement([a, ~a]) == 0.0 and np.isnan(seed_agreement([a]))
