"""Count calibration: a synthetic detector with known recall, confusion and false positives;
the calibrated counts recover the true ones within their interval, the raw ones do not."""
import numpy as np
import pandas as pd
import pytest

from tem_lib.classes import preset
from tem_lib.data import Instance, Sample
from tem_lib.metrics.detection import Detections
from tem_lib.quantify import CountCalibration, ModelCard, add_calibrated, fit_count_calibration

FECRAL = preset("fecral")
IDS = list(FECRAL.ids)
RECALL = np.array([0.6, 0.8, 0.5])  # per true class
# P(detected class | true class, found): rows true, columns detected; loops confused both ways
CONFUSION = np.array([[0.70, 0.05, 0.25],
                      [0.05, 0.90, 0.05],
                      [0.40, 0.05, 0.55]])
FALSE = np.array([1.5, 0.5, 1.0])  # false positives per image (all of one size), per detected class


def synthetic(true_counts, rng, grid=40, name="img"):
    """A labelled image with ``true_counts`` 4-px defects per class on a grid, and what the
    synthetic detector finds on it: each defect with its class's recall, labelled through
    CONFUSION, plus Poisson false positives at empty grid places."""
    cells = rng.permutation(grid * grid)
    labels = np.repeat(IDS, true_counts)
    assert len(labels) + 50 <= len(cells)
    insts, boxes, det_labels = [], [], []
    for k, c in enumerate(labels):
        y, x = divmod(int(cells[k]), grid)
        insts.append(Instance(np.ones((4, 4), bool), 8 * x, 8 * y, int(c)))
        j = IDS.index(c)
        if rng.random() < RECALL[j]:
            boxes.append([8 * x, 8 * y, 8 * x + 4, 8 * y + 4])
            det_labels.append(IDS[rng.choice(3, p=CONFUSION[j])])
    free = iter(cells[len(labels):])
    for k, lam in enumerate(FALSE):
        for _ in range(rng.poisson(lam)):
            y, x = divmod(int(next(free)), grid)
            boxes.append([8 * x, 8 * y, 8 * x + 4, 8 * y + 4])
            det_labels.append(IDS[k])
    shape = (8 * grid, 8 * grid)
    truth = Sample(np.zeros(shape, np.float32), insts, name)
    det = Detections(np.array(boxes, float).reshape(-1, 4), det_labels, np.full(len(det_labels), 0.9), shape, name)
    return truth, det


def expected_counts(true_counts):
    """What the synthetic detector reports on average for ``true_counts``."""
    found = np.asarray(true_counts) * RECALL
    return found @ CONFUSION + FALSE


@pytest.fixture(scope="module")
def calibration():
    rng = np.random.default_rng(0)
    pairs = [synthetic([12, 20, 8], rng, name=f"val{i}") for i in range(40)]
    return fit_count_calibration([t for t, _ in pairs], [d for _, d in pairs], FECRAL, source="synthetic")


def test_the_rates_are_measured(calibration):
    P, f = calibration.rates()
    np.testing.assert_allclose(calibration.recall(), RECALL, atol=0.07)
    np.testing.assert_allclose(P, (RECALL[:, None] * CONFUSION).T, atol=0.07)  # P[c, j]: true j found as c
    np.testing.assert_allclose(f * 320 * 320, FALSE, rtol=0.4)
    table = calibration.table(FECRAL)
    assert list(table.labelled) == [480, 800, 320]
    found = np.array([12, 20, 8]) * RECALL @ CONFUSION
    np.testing.assert_allclose(table.precision, found / (found + FALSE), atol=0.06)


def test_calibrated_counts_recover_the_truth_within_their_interval(calibration):
    rng = np.random.default_rng(1)
    covered, raw_err, cal_err = 0, [], []
    for k in range(12):  # other mixes of classes than the validation crops'
        true = np.array([150, 220, 90]) + rng.integers(-60, 60, 3)
        _, det = synthetic(true, rng, grid=40, name=f"test{k}")
        counts = {c: int((det.labels == c).sum()) for c in IDS}
        res = calibration.correct(counts, 320 * 320, n_boot=300, seed=k)
        assert list(res.class_id) == IDS and (res.detected == [counts[c] for c in IDS]).all()
        covered += int(((res.calibrated_ci_low <= true) & (true <= res.calibrated_ci_high)).sum())
        raw_err.append(np.abs(res.detected / true - 1))
        cal_err.append(np.abs(res.calibrated / true - 1))
    assert covered >= 0.85 * 36  # a 95 % interval covers the truth (allowing for 12 x 3 draws)
    # the raw counts are off by the recall (by 20-45 %); the calibrated ones less on average, but a
    # confused pair of classes (the loops) makes the inversion noisy: their intervals are wide
    assert np.mean(cal_err) < 0.7 * np.mean(raw_err)
    assert np.mean(raw_err) > 0.25


def test_exact_rates_invert_exactly():
    """With rates known exactly (one large crop), the calibration inverts the detector."""
    m = np.round(1000 * (RECALL[:, None] * CONFUSION).T).astype(int)[None]  # [1, c, j]
    area = 320 * 320
    cal = CountCalibration(IDS, m, m.sum(2) + FALSE * 10, [[1000, 1000, 1000]], [10 * area])
    true = np.array([300.0, 400.0, 200.0])
    res = cal.correct(expected_counts(true), area, n_boot=20)
    np.testing.assert_allclose(res.calibrated, true, rtol=0.01)


def test_card_round_trip_and_summary(calibration, tmp_path):
    card = ModelCard(classes=FECRAL, tile=256, nm_per_px=None, score_threshold=0.5, threshold_source="test",
                     calibration=calibration)
    back = ModelCard.from_dict(card.to_dict(), "model.json")
    assert back.calibration.class_ids == IDS
    np.testing.assert_array_equal(back.calibration.matched, calibration.matched)
    summary = pd.DataFrame([{"image": im, "class_id": c, "count": n, "area": 2.0}
                            for im in ("a", "all") for c, n in zip(IDS, (30, 40, 20))])
    images = pd.DataFrame([{"image": "a", "height_px": 320, "width_px": 320, "model_scale": 1.0}])
    out = add_calibrated(summary, images, calibration, n_boot=100)
    assert (out.count_calibrated > out["count"]).sum() >= 2  # recall < 1: more than detected
    np.testing.assert_allclose(out.density_calibrated, out.count_calibrated / 2.0)
    assert (out.count_calibrated_ci_low <= out.count_calibrated).all()
    assert (out.count_calibrated <= out.count_calibrated_ci_high).all()


def test_bad_calibrations_are_refused(calibration):
    rng = np.random.default_rng(2)
    pairs = [synthetic([5, 5, 0], rng, name=f"v{i}") for i in range(4)]  # no <100> loop labelled
    with pytest.raises(ValueError, match="no labelled defect on the 4 validation crops"):
        fit_count_calibration([t for t, _ in pairs], [d for _, d in pairs], FECRAL)
    empty = [Detections(np.zeros((0, 4)), [], [], t.shape, t.name) for t, _ in pairs]
    truth = [synthetic([3, 3, 3], rng, name=f"w{i}")[0] for i in range(2)]
    with pytest.raises(ValueError, match="was found"):
        fit_count_calibration(truth, empty[:2], FECRAL)
    d = calibration.to_dict()
    with pytest.raises(ValueError, match="model.json: calibration.*lacks"):
        CountCalibration.from_dict({k: v for k, v in d.items() if k != "matched"}, "model.json: calibration")
    with pytest.raises(ValueError, match="shapes"):
        CountCalibration.from_dict({**d, "detected": [[1, 2]]}, "model.json")
    with pytest.raises(ValueError, match="not among its classes"):
        calibration.correct({9: 3}, 100)
    with pytest.raises(ValueError, match="area"):
        calibration.correct({1: 3}, 0)
    card = ModelCard(classes=FECRAL, tile=256, nm_per_px=None, score_threshold=0.5, threshold_source="t",
                     calibration=calibration).to_dict()
    card["calibration"]["class_ids"] = [1, 2, 4]
    with pytest.raises(ValueError, match="calibration is for class ids"):
        ModelCard.from_dict(card, "model.json")
