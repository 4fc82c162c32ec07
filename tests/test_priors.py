"""Mask priors: parameter recovery on the simulator, sampling contracts, files, fallbacks."""
import json
import warnings

import numpy as np
import pytest

from tem_lib import priors
from tem_lib.data import LabelMap, load_dataset, tile_dataset, write_dataset
from tem_lib.geometry import rasterize_bar, rasterize_ellipse
from tem_lib.priors.base import BAR_SCALE
from tem_lib.priors.parametric import fit_orientation, jitter_deg
from tem_lib.simulate import preset, simulate
from tem_lib.stats import instance_table


@pytest.fixture(scope="module")
def big_sim():
    """24 simulated 1024-px micrographs: enough instances to check parameter recovery."""
    return simulate(preset("fecral"), 24, seed=11, workers=2)


@pytest.fixture(scope="module")
def param_prior(big_sim):
    return priors.fit_prior(big_sim, "parametric")


def test_parametric_recovers_simulator_parameters(param_prior):
    cfg = preset("fecral")
    d = param_prior.describe().set_index("class")
    rates = {n: cfg.classes[n].density_per_um2 for n in ("black_dot", "loop_111", "loop_100")}
    total = sum(rates.values())
    fitted_total = d["rate_per_um2"].sum()
    # the per-image density multiplier (log-normal, sd 0.5) makes the mean of 24 images
    # uncertain by ~11 %; class proportions are much tighter
    assert fitted_total == pytest.approx(total, rel=0.2)
    for n, r in rates.items():
        assert d.loc[n, "rate_per_um2"] / fitted_total == pytest.approx(r / total, abs=0.03)
    # Gamma-equivalent of a log-normal multiplier with sd 0.5: k = 1 / (exp(0.25) - 1) = 3.5
    k = d["dispersion_k"].iloc[0]
    assert 1.75 < k < 7.0
    for n in rates:  # log-normal majors: medians within 8 %
        assert d.loc[n, "major_median_nm"] == pytest.approx(cfg.classes[n].major_median_nm, rel=0.08)
    assert d.loc["loop_111", "ratio_median"] == pytest.approx(1.6, rel=0.08)
    assert d.loc["black_dot", "ratio_median"] < 1.15
    # edge-on <100> loops: locked to the 0/90 frame with ~4 degree jitter; others not locked
    assert d.loc["loop_100", "locked_fraction"] > 0.85
    assert 2.5 < d.loc["loop_100", "jitter_deg"] < 6.5
    assert d.loc["loop_111", "locked_fraction"] == 0
    assert d.loc["black_dot", "locked_fraction"] == 0


def test_density_is_per_area_whatever_the_map_size(param_prior):
    """Fitted on 1024-px micrographs, sampled at 256 and 512 px: the number of defects
    whose centre lies in the map, per area, is the fitted rate."""
    rate = param_prior.describe()["rate_per_um2"].sum()
    for size, n in ((256, 1500), (512, 400)):
        maps = param_prior.sample(n, size, generator=1)
        inside = sum(1 for m in maps for i in m.instances
                     if 0 <= i.ellipse[0] < size and 0 <= i.ellipse[1] < size)
        assert inside / (n * (size / 1000) ** 2) == pytest.approx(rate, rel=0.1)


def test_sample_contract_and_determinism(param_prior):
    a = param_prior.sample(20, 256, generator=5)
    b = param_prior.sample(20, 256, generator=np.random.default_rng(5))
    assert len(a) == 20 and all(isinstance(m, LabelMap) and m.shape == (256, 256) for m in a)
    assert [len(m.instances) for m in a] == [len(m.instances) for m in b]
    assert all((x.class_map() == y.class_map()).all() for x, y in zip(a, b))
    for m in a:
        assert set(m.labels) <= {1, 2, 3}
        masks = m.masks()
        assert masks.sum(0).max() <= 1, "parametric placement keeps masks apart"
        assert all(i.area > 0 for i in m.instances)


def test_save_load_roundtrip(param_prior, tmp_path):
    path = param_prior.save(tmp_path / "p.json")
    again = priors.load_prior(path)
    assert type(again) is priors.ParametricPrior
    x, y = param_prior.sample(5, 256, generator=2), again.sample(5, 256, generator=2)
    assert all((p.class_map() == q.class_map()).all() for p, q in zip(x, y))


def test_bad_prior_files_name_the_file(tmp_path, param_prior):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(priors.PriorFileError, match="bad.json.*not valid JSON"):
        priors.load_prior(bad)
    bad.write_text(json.dumps({"hello": 1}))
    with pytest.raises(priors.PriorFileError, match="bad.json.*not a tem_lib mask prior"):
        priors.load_prior(bad)
    d = param_prior.to_dict()
    bad.write_text(json.dumps(d | {"version": 99}))
    with pytest.raises(priors.PriorFileError, match="version 99"):
        priors.load_prior(bad)
    bad.write_text(json.dumps(d | {"kind": "magic"}))
    with pytest.raises(priors.PriorFileError, match="unknown prior kind 'magic'"):
        priors.load_prior(bad)
    del d["params"]
    bad.write_text(json.dumps(d))
    with pytest.raises(priors.PriorFileError, match="bad.json.*missing key 'params'"):
        priors.load_prior(bad)
    with pytest.raises(FileNotFoundError, match="nope.json"):
        priors.load_prior(tmp_path / "nope.json")


def test_rare_and_absent_classes_fall_back_with_a_warning():
    cfg = preset("fecral", height=512, width=512)
    cfg.classes["loop_100"].density_per_um2 = 12.0  # ~3 per image: too few for a fit
    cfg.classes["loop_111"].density_per_um2 = 0.0   # absent
    data = simulate(cfg, 4, seed=1, workers=1)
    with pytest.warns(priors.PriorWarning) as rec:
        prior = priors.fit_prior(data, "parametric", min_instances=30)
    msgs = " | ".join(str(w.message) for w in rec)
    assert "loop_100" in msgs and "bootstrapped" in msgs
    assert "loop_111" in msgs and "never be drawn" in msgs
    d = prior.describe().set_index("class")
    assert d.loc["loop_100", "shape_model"] == "bootstrap"
    assert np.isfinite(d["rate_per_um2"]).all()
    maps = prior.sample(200, 256, generator=0)
    labels = np.concatenate([m.labels for m in maps])
    assert 2 not in labels and 3 in labels and 1 in labels


def test_bootstrap_is_the_authors_algorithm(sim_samples):
    crops = tile_dataset(sim_samples, 128, min_area=0)
    prior = priors.fit_prior(crops, "bootstrap",
                             placement=priors.Placement("bbox", 2, 80, "accept", margin=0, min_area=0))
    counts = set(prior.params["counts"])
    maps = prior.sample(200, 128, generator=0)
    # same-size maps: the count is that of a random training crop (centres are inside)
    assert {len(m.instances) for m in maps} <= counts
    # every shape is a copy of a real one
    pool = {c: {tuple(r) for r in rows} for c, rows in prior.params["pool"].items()}
    for m in maps[:20]:
        for i in m.instances:
            assert tuple(round(v, 4) for v in i.ellipse[2:]) in pool[str(i.category_id)]
    # the <100> up-weighting doubles that class's odds
    w = priors.fit_prior(crops, "bootstrap", class_weights={3: 2.0}).params["proportions"]
    p = prior.params["proportions"]
    assert (w[2] / w[0]) == pytest.approx(2 * p[2] / p[0])


def test_bbox_overlap_rejection():
    pl = priors.Placement("bbox", gap=2, tries=80, on_failure="drop", margin=0, min_area=0)
    defects = [(1, 10.0, 10.0, 0.0, False)] * 30
    inst = pl.place(np.random.default_rng(0), defects, (64, 64))
    boxes = np.array([i.bbox for i in inst], float)
    for a in range(len(boxes)):
        for b in range(a + 1, len(boxes)):
            # >= 2 px apart along x or y (mask boxes lie within half a pixel of the ellipse's)
            (ax1, ay1, ax2, ay2), (bx1, by1, bx2, by2) = boxes[a], boxes[b]
            assert ax2 + 1 <= bx1 or bx2 + 1 <= ax1 or ay2 + 1 <= by1 or by2 + 1 <= ay1
    assert 3 <= len(inst) < 30  # not all of them fit


def test_frame_residuals_and_orientation_fit():
    import pandas as pd
    t = pd.DataFrame({"name": ["a"] * 4 + ["b"] * 2, "class_id": 3,
                      "angle": [30, 120, 31, 29, 10, 170], "ratio": [3, 3, 3, 3, 3, 1.0]})
    r = priors.frame_residuals(t)
    assert np.allclose(r[:4].abs(), [0, 0, 1, 1], atol=0.6)
    assert r[4:].isna().all()  # one elongated instance: no partner, no frame
    rng = np.random.default_rng(0)
    locked = rng.normal(0, 4, 300)
    uniform = rng.uniform(-45, 45, 100)
    pi, kappa = fit_orientation(np.concatenate([locked, uniform]))
    assert pi == pytest.approx(0.75, abs=0.06)
    assert jitter_deg(kappa) == pytest.approx(4, abs=1)
    assert fit_orientation(rng.uniform(-45, 45, 400)) == (0.0, 0.0)


def test_bars_have_the_moments_of_their_ellipse():
    m_e, *_ = rasterize_ellipse(50, 50, 60, 8, 30, (100, 100))
    m_b, *_ = rasterize_bar(50, 50, 60 * BAR_SCALE, 8 * BAR_SCALE, 30, (100, 100))
    from tem_lib.data import Instance, Sample
    t = instance_table([Sample(np.zeros((100, 100), np.float32), [Instance(m, 0, 0, 3) for m in (m_e, m_b)], "x")])
    assert t["major"].iloc[1] == pytest.approx(t["major"].iloc[0], rel=0.05)
    assert t["angle"].iloc[1] == pytest.approx(30, abs=1)


def test_exported_maps_load_back(param_prior, tmp_path):
    maps = param_prior.sample(6, 256, generator=3)
    maps = [m for m in maps if m.instances]
    write_dataset(maps, tmp_path / "maps", param_prior.classes, metadata={"prior": "parametric"})
    back = load_dataset(tmp_path / "maps")
    assert [len(s.instances) for s in back] == [len(m.instances) for m in maps]
    assert all((s.class_map() == m.class_map()).all() for s, m in zip(back, maps))


def test_ks_table_is_zero_for_identical_sets(sim_samples):
    crops = tile_dataset(sim_samples, 128)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t = priors.ks_table(crops, {"same": crops}, crops.classes)
    assert (t["ks"].dropna() == 0).all()
    assert set(t["quantity"]) == {"major", "ratio", "angle", "angle_vs_frame", "count_per_crop",
                                  "nn_distance"}


def test_class_weights_for_classes_a_dataset_lacks_are_set_aside():
    from tem_lib.classes import ClassSet
    from tem_lib.priors import usable_class_weights
    kept, ignored = usable_class_weights({"loop_100": 2.0, "void": 3.0}, ClassSet.from_names(["void", "precipitate"]))
    assert kept == {"void": 3.0} and ignored == ["loop_100"]
    assert usable_class_weights({}, ClassSet.from_names(["void"])) == ({}, [])


def test_running_mean():
    from tem_lib.viz import running_mean
    at, mean = running_mean([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], k=2)
    assert list(at) == list(range(1, 10)) and list(mean) == [1.5, 2.5, 3.5, 4.5, 5.5, 6.5, 7.5, 8.5, 9.5]
    at, mean = running_mean([4.0, 6.0], k=25)  # a short series: no smoothing
    assert list(at) == [0, 1] and list(mean) == [4.0, 6.0]
