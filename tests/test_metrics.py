"""Frechet distance, texture features and the mask-fidelity table: hand-computed cases."""
import numpy as np
import pytest

from tem_lib.classes import preset
from tem_lib.data import LabelMap
from tem_lib.data.sample import Instance
from tem_lib.metrics import fidelity_table, frechet_by_group, frechet_distance, texture_features
from tem_lib.metrics.frechet import GROUPS, N_FEATURES


def test_frechet_matches_the_gaussian_closed_form():
    """1-D Gaussians: d = (m1 - m2)^2 + (s1 - s2)^2. With a unit reference no rescaling."""
    rng = np.random.default_rng(0)
    a = rng.normal(0.0, 1.0, (200_000, 1))
    b = rng.normal(1.5, 2.0, (200_000, 1))
    ref = np.array([[-1.0], [1.0]])  # mean 0, std 1: features left as they are
    assert frechet_distance(a, b, reference=ref) == pytest.approx(1.5 ** 2 + 1.0 ** 2, rel=0.02)
    assert frechet_distance(a, a, reference=ref) == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match="at least 2 items"):
        frechet_distance(a[:1], b)


def test_texture_features_are_fixed_and_see_noise_and_dots():
    rng = np.random.default_rng(1)
    smooth = [np.full((64, 64), 0.5) + 0.01 * rng.normal(size=(64, 64)) for _ in range(12)]
    dotted = []
    for img in smooth:
        img = img.copy()
        img[30:33, 30:33] = 0.1
        dotted.append(img)
    fs, fd = texture_features(smooth), texture_features(dotted)
    assert fs.shape == (12, N_FEATURES) and np.isfinite(fs).all()
    np.testing.assert_array_equal(texture_features(smooth[:2]), fs[:2])  # deterministic
    groups = frechet_by_group(fd, fs)
    assert set(groups) == {"all", *GROUPS} and groups["blobs"] > 1.0
    with pytest.raises(ValueError, match="at least 32 px"):
        texture_features([np.zeros((16, 16))])


FECRAL = preset("fecral")


def test_fidelity_table_hand_case():
    dot = np.ones((3, 3), bool)
    m = LabelMap((16, 16), [Instance(dot, 2, 2, 1), Instance(dot, 10, 10, 2)], name="m")
    perfect = m.class_map()[None]
    t = fidelity_table(perfect, [m], FECRAL)
    assert t.set_index("class_id").loc[[1, 2], ["pixel_iou", "found", "found_class"]].to_numpy().min() == 1
    assert np.isnan(t.set_index("class_id").loc[3, "found"])  # class absent from the masks
    wrong = perfect.copy()
    wrong[wrong == 2] = 1  # the loop segmented as a dot: found, wrong class
    w = fidelity_table(wrong, [m], FECRAL).set_index("class_id")
    assert w.loc[2, "found"] == 1 and w.loc[2, "found_class"] == 0 and w.loc[2, "pixel_iou"] == 0
    assert w.loc[1, "pixel_iou"] == pytest.approx(9 / 18)


def test_kernel_distance_is_unbiased_and_detects_a_shift():
    from tem_lib.metrics import kernel_distance
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((60, 8)), rng.standard_normal((60, 8))
    same, _ = kernel_distance(a, b, subsets=100, subset_size=30)
    shifted, _ = kernel_distance(a, b + 1.0, subsets=100, subset_size=30)
    assert abs(same) < 0.05 and shifted > 0.5  # unbiased: ~0 for two draws of one distribution
    with pytest.raises(ValueError, match="at least 2"):
        kernel_distance(a[:1], b)
