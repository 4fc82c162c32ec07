"""U-Nets of the confidence study: training, save/load/resume, L2 and L2-SP, frozen stages,
the offline ImageNet path, bad input."""
import numpy as np
import pytest
import torch

from tem_lib.segmentation import (
    PretrainedWeightsMissing,
    SegConfig,
    WeightPenalty,
    build_unet,
    encoder_stages,
    load_unet,
    predict_proba,
    save_encoder,
    train_unet,
)

TRAIN = {"steps": 3, "batch_size": 2, "patch_size": 64, "checkpoint_every": 2, "warmup_steps": 1}
SMALL = {"decoder_channels": (16, 16, 8, 8, 8), "training": TRAIN}


def _data(n=4, size=64, seed=0):
    """Dark disks on a bright noisy background; labels 1 under the disks."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    images, labels = [], []
    for _ in range(n):
        lab = np.zeros((size, size), np.uint8)
        for _ in range(3):
            cy, cx = rng.uniform(8, size - 8, 2)
            lab[(yy - cy) ** 2 + (xx - cx) ** 2 < 25] = 1
        images.append(np.clip(0.7 - 0.4 * lab + 0.05 * rng.standard_normal((size, size)), 0, 1).astype(np.float32))
        labels.append(lab)
    return np.stack(images), np.stack(labels)


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """An encoder 'pretrained' for a few steps, saved for init."""
    out = tmp_path_factory.mktemp("pre")
    images, labels = _data()
    model, _ = train_unet(images, labels, SMALL, out / "run")
    return save_encoder(model, out / "encoder.safetensors")


def test_train_save_load_resume(tmp_path, monkeypatch):
    images, labels = _data()
    model, res = train_unet(images, labels, SMALL, tmp_path)
    assert len(res["history"]) == 3 and np.isfinite(res["history"]["loss"]).all()
    assert not (tmp_path / "checkpoint").exists()  # finished: the resume point is dropped, the model kept
    p = predict_proba(model, images[:2])
    assert p.shape == (2, 2, 64, 64) and np.allclose(p.sum(1), 1, atol=1e-5)
    loaded = load_unet(tmp_path / "model")
    np.testing.assert_allclose(predict_proba(loaded, images[:2]), p, atol=1e-5)
    again, res2 = train_unet(images, labels, SMALL, tmp_path)  # finished: loaded, not retrained
    assert res2["resumed_from"] == 3 and len(res2["history"]) == 3 and res2["seconds"] == pytest.approx(res["seconds"])
    np.testing.assert_allclose(predict_proba(again, images[:2]), p, atol=1e-5)
    # a run stopped after its last checkpoint: other data or settings refuse that checkpoint
    import tem_lib.segmentation.unet as unet_mod
    monkeypatch.setattr(unet_mod.shutil, "rmtree", lambda *a, **k: None)
    interrupted = tmp_path / "interrupted"
    train_unet(images, labels, SMALL, interrupted)
    (interrupted / "model" / "seg_config.json").unlink()
    with pytest.raises(ValueError, match="checkpoint of another configuration"):
        train_unet(images[:3], labels[:3], SMALL, interrupted)
    # odd sizes are padded and cropped back
    assert predict_proba(model, np.zeros((1, 50, 70), np.float32)).shape == (1, 2, 50, 70)


def test_l2sp_is_zero_at_the_pretrained_weights_and_pulls_back(pretrained):
    cfg = SegConfig(**SMALL, init=str(pretrained), regularization="l2sp", l2sp=0.5, l2=0.0)
    model = build_unet(cfg)
    pen = WeightPenalty(model)
    assert len(pen.anchored) > 0 and float(pen().detach()) == 0.0  # at the starting weights: no penalty
    w = model.net.encoder.layer2[0].conv1.weight
    w0 = w.detach().clone()
    with torch.no_grad():
        w.add_(0.1 * torch.randn_like(w))
    model.zero_grad()
    pen().backward()
    # gradient = l2sp (w - w0): a step against it goes straight back to the pretrained weights
    torch.testing.assert_close(w.grad, 0.5 * (w.detach() - w0))
    g = model.net.decoder.blocks[0].conv1[0].weight.grad
    assert g is None or not g.any()  # new layers: l2 = 0 here
    # plain L2 pulls every weight towards 0, new ones included
    l2 = WeightPenalty(build_unet(SegConfig(**SMALL, regularization="l2", l2=1.0)))
    total = sum(float((p.detach() ** 2).sum()) for p in l2.all)
    assert float(l2().detach()) == pytest.approx(0.5 * total, rel=1e-5)
    assert float(WeightPenalty(build_unet(SegConfig(**SMALL)))()) == 0.0


def test_frozen_stages_do_not_change(pretrained, tmp_path):
    images, labels = _data()
    cfg = SegConfig(**SMALL, init=str(pretrained), freeze=2)
    start = build_unet(cfg)
    before = {k: v.clone() for k, v in start.state_dict().items()}
    model, _ = train_unet(images, labels, cfg, tmp_path)
    after = model.state_dict()
    frozen = [id(m) for s in encoder_stages(model.net.encoder)[:2] for m in s]
    frozen_names = [n for n, m in model.named_modules() if id(m) in frozen]
    assert frozen_names == ["net.encoder.conv1", "net.encoder.bn1", "net.encoder.layer1"]
    for k in before:
        if any(k.startswith(f + ".") for f in frozen_names):  # weights and BN statistics alike
            torch.testing.assert_close(after[k], before[k], msg=k)
    assert not torch.equal(after["net.encoder.layer2.0.conv1.weight"], before["net.encoder.layer2.0.conv1.weight"])
    assert not torch.equal(after["net.encoder.layer2.0.bn1.running_mean"], before["net.encoder.layer2.0.bn1.running_mean"])


def test_imagenet_offline_raises_a_clear_message(monkeypatch, tmp_path):
    import huggingface_hub.constants as hub
    monkeypatch.setattr(hub, "HF_HUB_CACHE", str(tmp_path))  # an empty cache, as on a fresh machine
    with pytest.raises(PretrainedWeightsMissing, match=r"ImageNet weights for encoder 'resnet18'.*not cached"):
        build_unet(SegConfig(init="imagenet"))


def test_bad_configs_and_data_are_refused(tmp_path, pretrained):
    with pytest.raises(ValueError, match="regularization must be one of"):
        SegConfig(regularization="l1")
    with pytest.raises(ValueError, match="l2sp.*scratch"):
        SegConfig(regularization="l2sp")
    with pytest.raises(ValueError, match="freezing encoder stages of a scratch encoder"):
        SegConfig(freeze=2)
    with pytest.raises(ValueError, match="unknown keys"):
        SegConfig.from_dict({"lr": 1})
    with pytest.raises(ValueError, match="has 5 stages"):
        build_unet(SegConfig(init=str(pretrained), freeze=6))
    with pytest.raises(ValueError, match="holds a 'resnet18' encoder"):
        build_unet(SegConfig(encoder="resnet34", init=str(pretrained)))
    with pytest.raises(FileNotFoundError, match="no such encoder file"):
        build_unet(SegConfig(init=str(tmp_path / "nope.safetensors")))
    images, labels = _data(2)
    with pytest.raises(ValueError, match=r"class indices in \[0, 1\]"):
        train_unet(images, labels * 2, SMALL, tmp_path)
    with pytest.raises(ValueError, match="one shape"):
        train_unet(images, labels[:1], SMALL, tmp_path)
    with pytest.raises(FileNotFoundError, match="not a saved U-Net"):
        load_unet(tmp_path)
