"""The foundation detector: pretrained once per configuration, cached and reused, seeded, and
transferred to any class set (class heads re-initialised when the classes differ)."""
import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from test_detection import TINY, blobs

from tem_lib.classes import ClassSet
from tem_lib.data import Dataset
from tem_lib.data.torch_dataset import Photometric
from tem_lib.detection import DetectorConfig, DetTrainConfig, build_maskrcnn, train_detector
from tem_lib.detection import foundation as fd

# a tiny foundation: 8 crops of 64 px from 4 populations, 2 iterations
TINY_FOUNDATION = {"n_crops": 8, "n_populations": 4, "image_size": 128, "crop_size": 64,
                   "training": {"epochs": 1, "iters_per_epoch": 2, "batch_size": 2, "warmup_iters": 1}}
ARCH = DetectorConfig(**{**TINY, "pretrained": "foundation", "foundation": TINY_FOUNDATION})
ZERO = {"epochs": 1, "iters_per_epoch": 1, "batch_size": 2, "warmup_iters": 1, "lr": 0.0}  # weights unchanged


@pytest.fixture(scope="module")
def tiny_foundation():
    return fd.ensure_foundation(TINY_FOUNDATION, ARCH, progress=False)


def test_populations_vary_and_are_seeded():
    cfg = fd.FoundationConfig(**TINY_FOUNDATION)
    a, b = fd.population_configs(cfg), fd.population_configs(cfg)
    assert [p.to_dict() for p in a] == [p.to_dict() for p in b]
    scales = [p.nm_per_px for p in fd.population_configs(fd.FoundationConfig(n_populations=32))]
    assert 0.3 <= min(scales) < 0.5 and 1.4 < max(scales) <= 2.0  # magnifications over the whole range
    other = fd.population_configs(fd.FoundationConfig(**{**TINY_FOUNDATION, "seed": 8}))
    assert [p.nm_per_px for p in a] != [p.nm_per_px for p in other]


def test_simulated_set_has_the_asked_crops():
    data = fd.simulated_set(fd.FoundationConfig(**TINY_FOUNDATION))
    assert len(data) == 8 and {s.shape for s in data} == {(64, 64)}
    assert len({s.name for s in data}) == 8  # names unique across populations
    assert list(data.classes.names) == ["black_dot", "loop_111", "loop_100"]


def test_foundation_is_cached_outside_the_work_folder_and_reused(tiny_foundation, foundation_cache, monkeypatch):
    assert tiny_foundation.parent.parent == foundation_cache
    assert tiny_foundation.name == fd.foundation_key(fd.FoundationConfig(**TINY_FOUNDATION), ARCH)
    assert not (tiny_foundation / "checkpoint").exists()  # the finished model keeps its weights only
    assert not tiny_foundation.with_name(tiny_foundation.name + ".partial").exists()
    import tem_lib.detection.train as tr

    def no_training(*a, **k):
        raise AssertionError("the cached foundation was trained again")
    monkeypatch.setattr(tr, "train_detector", no_training)
    assert fd.ensure_foundation(TINY_FOUNDATION, ARCH, progress=False) == tiny_foundation
    # another architecture is another foundation
    other = DetectorConfig(**{**TINY, "fpn_channels": 8})
    assert fd.foundation_path(fd.FoundationConfig(**TINY_FOUNDATION), other) != tiny_foundation


def test_same_configuration_gives_the_same_weights(tiny_foundation, tmp_path, monkeypatch):
    monkeypatch.setenv("TEM_LIB_CACHE", str(tmp_path))
    again = fd.ensure_foundation(TINY_FOUNDATION, ARCH, progress=False)
    assert again != tiny_foundation and again.name == tiny_foundation.name
    a, b = load_file(tiny_foundation / "model.safetensors"), load_file(again / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _fine_tune(tmp_path, name, class_ids, class_names):
    data = blobs(4, 1)
    for s in data:  # relabel the blobs to this class set
        for i in s.instances:
            i.category_id = class_ids[(i.category_id - 1) % len(class_ids)]
    return train_detector(data, tmp_path / name, ARCH, ZERO, class_ids=class_ids, class_names=class_names,
                          progress=False)


@pytest.mark.parametrize("class_ids,class_names", [((7,), ["loop"]), ((4, 9), ["void", "precipitate"])])
def test_heads_are_reinitialised_for_another_class_set(tiny_foundation, tmp_path, class_ids, class_names):
    pre = load_file(tiny_foundation / "model.safetensors")
    model, summary = _fine_tune(tmp_path, "ft", class_ids, class_names)
    assert summary["init_weights"]["heads"] == "reinitialised"
    sd = model.state_dict()
    for k, v in pre.items():
        if k.startswith(fd.CLASS_HEADS):
            assert sd[k].shape != v.shape or not torch.equal(sd[k], v)
        else:  # backbone, FPN, RPN and the class-agnostic head layers transfer
            assert torch.equal(sd[k], v), k
    assert sd["roi_heads.box_predictor.cls_score.weight"].shape[0] == len(class_ids) + 1


def test_heads_are_kept_for_the_same_class_set(tiny_foundation, tmp_path):
    pre = load_file(tiny_foundation / "model.safetensors")
    model, summary = _fine_tune(tmp_path, "ft", (1, 2, 3), ["black_dot", "loop_111", "loop_100"])
    assert summary["init_weights"]["heads"] == "kept"
    sd = model.state_dict()
    assert all(torch.equal(sd[k], v) for k, v in pre.items())
    # same ids, other names: other classes, so fresh heads
    _, renamed = _fine_tune(tmp_path, "ft2", (1, 2, 3), ["a", "b", "c"])
    assert renamed["init_weights"]["heads"] == "reinitialised"


def test_another_architecture_is_refused(tiny_foundation, tmp_path):
    other = DetectorConfig(**{**TINY, "fpn_channels": 8})
    model = build_maskrcnn(other, (1, 2, 3))
    with pytest.raises(ValueError, match="fpn_channels"):
        fd.transfer_weights(model, tiny_foundation, other, (1, 2, 3))


def test_bad_foundation_settings_are_refused():
    with pytest.raises(ValueError, match="nm_per_px"):
        fd.FoundationConfig(nm_per_px=(2.0, 0.5))
    with pytest.raises(ValueError, match="image_size"):
        fd.FoundationConfig(image_size=128, crop_size=256)
    with pytest.raises(ValueError, match="optimizer"):
        fd.FoundationConfig(training={"optimizer": "adam"})


def test_photometric_augmentation_is_seeded_bounded_and_off_by_default():
    img = torch.rand(1, 32, 32)
    assert torch.equal(Photometric()(img), img)
    aug = Photometric(contrast=0.4, brightness=0.1, gamma=0.4, blur=1.5, noise=0.05, p=1.0)
    a = aug(img, torch.Generator().manual_seed(3))
    b = aug(img, torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and not torch.equal(a, img)
    assert a.shape == img.shape and float(a.min()) >= 0 and float(a.max()) <= 1
    with pytest.raises(ValueError, match="photometric"):
        DetTrainConfig(photometric={"contrats": 0.2})
    with pytest.raises(ValueError, match="contrast"):
        Photometric(contrast=1.5)


def test_dataset_of_another_class_set_trains_from_foundation(tiny_foundation, tmp_path):
    """A Dataset carries its class set: train_detector takes ids and names from it."""
    classes = ClassSet.from_names(["loop"])
    data = blobs(4, 2)
    for s in data:
        s.instances = [i for i in s.instances if i.category_id == 1]
    _, summary = train_detector(Dataset(data, classes), tmp_path / "one", ARCH, ZERO, progress=False)
    assert summary["init_weights"]["heads"] == "reinitialised"
    assert np.isfinite(summary["history"]["loss"]).all()
