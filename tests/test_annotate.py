"""The annotation model (each error type changes what it should; seeded) and the simulator's
grain boundaries, overlaps and texture."""
import numpy as np
import pytest

from tem_lib.annotate import AnnotationConfig, annotate
from tem_lib.data import tile_sample
from tem_lib.simulate import preset, simulate, simulate_micrograph

NONE = AnnotationConfig.perfect()


def only(**kw):
    return AnnotationConfig(**{**NONE.__dict__, **kw})


@pytest.fixture(scope="module")
def grains():
    return list(simulate(preset("fecral_grains", height=256, width=256, nm_per_px=1.4), 6, seed=3, workers=1))


def test_grain_preset_has_boundaries_overlaps_and_keeps_other_presets_unchanged(grains):
    for s in grains:
        gb = s.layers["grain_boundary"]
        assert gb.dtype == bool and gb.shape == s.shape and 0.005 < gb.mean() < 0.2
        # the boundary is darker than the grains beside it
        assert s.image[gb].mean() < s.image[~gb].mean()
    many = simulate_micrograph(preset("fecral_grains", overlap_fraction=1.0), np.random.default_rng(0))
    masks = many.masks()
    assert (masks.sum(0) > 1).any()  # some defects overlap
    plain = preset("fecral", height=128, width=128)
    a = simulate_micrograph(plain, np.random.default_rng([0, 1]))
    assert a.layers == {}
    crops = tile_sample(grains[0], 128)
    np.testing.assert_array_equal(crops[1].layers["grain_boundary"], grains[0].layers["grain_boundary"][:128, 128:])


def test_perfect_annotation_is_the_truth(grains):
    out = annotate(grains, NONE)
    for s, a in zip(grains, out):
        np.testing.assert_array_equal(s.class_map(), a.class_map())
        np.testing.assert_array_equal(s.layers["grain_boundary"], a.layers["grain_boundary"])


def test_faint_defects_are_missed(grains):
    from tem_lib.stats import defect_contrast
    out = annotate(grains, only(miss_faint=1.0, miss_below=1.0))
    kept, missed = [], []
    for s, a in zip(grains, out):
        labelled = a.class_map() > 0
        for inst in s.instances:
            m = inst.full_mask(s.shape)
            (kept if labelled[m].mean() > 0.5 else missed).append(defect_contrast(s.image, m))
        assert a.meta["annotation"]["missed"] == len(s.instances) - len(a.instances)
    assert missed and kept and np.nanmean(missed) < np.nanmean(kept)


def test_outline_bias_grows_and_jitter_moves(grains):
    s = grains[0]
    grown = annotate([s], only(outline_bias_px=2.0))[0]
    shrunk = annotate([s], only(outline_bias_px=-1.0))[0]
    assert sum(i.area for i in grown.instances) > 1.2 * sum(i.area for i in s.instances)
    assert sum(i.area for i in shrunk.instances) < sum(i.area for i in s.instances)
    jit = annotate(grains, only(outline_jitter_px=2.0))
    d = np.array([np.subtract(a.ellipse[:2], t.ellipse[:2]) for s, j in zip(grains, jit)
                  for t, a in zip(s.instances, j.instances)])
    assert 1.0 < d.std() < 3.0 and abs(d.mean()) < 0.5


def test_confusion_changes_classes(grains):
    out = annotate(grains, only(confusion=1.0), class_ids=(1, 2, 3))
    for s, a in zip(grains, out):
        assert [i.category_id for i in a.instances] != [] and all(
            t.category_id != n.category_id for t, n in zip(s.instances, a.instances))


def test_boundary_segments_missed_offset_and_spurious(grains):
    truth = np.stack([s.layers["grain_boundary"] for s in grains])
    miss = np.stack([a.layers["grain_boundary"] for a in annotate(grains, only(boundary_miss=0.4))])
    assert not (miss & ~truth).any() and 0.45 < miss.sum() / truth.sum() < 0.7
    off = annotate(grains, only(boundary_offset=0.5, boundary_offset_px=4.0))
    moved = np.stack([a.layers["grain_boundary"] for a in off])
    assert (moved & ~truth).sum() > 0.2 * truth.sum()  # drawn beside the truth
    assert all(0.4 < a.meta["annotation"]["grain_boundary_offset_fraction"] < 0.8 for a in off)
    spur = annotate(grains, only(spurious_per_image=3.0, spurious_strokes=2.0))
    extra = sum(a.meta["annotation"]["spurious"] for a in spur)
    assert extra > 0 and sum(len(a.instances) for a in spur) == sum(len(s.instances) for s in grains) + extra
    for s, a in zip(grains, spur):
        for inst in a.instances[len(s.instances):]:  # spurious defects lie where there is none
            assert not (inst.full_mask(s.shape) & (s.class_map() > 0)).any()
    assert sum((a.layers["grain_boundary"] & ~s.layers["grain_boundary"]).sum() for s, a in zip(grains, spur)) > 0


def test_seeded_and_reproducible(grains):
    cfg = AnnotationConfig(seed=5)
    a, b = annotate(grains, cfg), annotate(grains, cfg)
    c = annotate(grains, AnnotationConfig(seed=6))
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x.class_map(), y.class_map())
        np.testing.assert_array_equal(x.layers["grain_boundary"], y.layers["grain_boundary"])
    assert any((x.class_map() != z.class_map()).any() for x, z in zip(a, c))
    with pytest.raises(ValueError, match="must lie in"):
        AnnotationConfig(confusion=1.5)
    with pytest.raises(ValueError, match="unknown keys"):
        AnnotationConfig.from_dict({"miss": 0.1})
