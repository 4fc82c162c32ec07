"""Detector: construction, the training loop's contracts (resume, refusal, non-finite loss),
saving/loading, mixing real and synthetic data, prediction format."""
import numpy as np
import pytest
import torch
import torchvision

from tem_lib.checkpoint import NonFiniteLoss
from tem_lib.classes import preset
from tem_lib.data import Instance, Sample
from tem_lib.detection import (
    DetectorConfig,
    PretrainedWeightsMissing,
    build_maskrcnn,
    cached_weights_path,
    evaluate,
    load_detector,
    mixed_indices,
    train_detector,
)
from tem_lib.detection.experiment import read_predictions, run_condition, write_predictions

FECRAL = preset("fecral")

TINY = {"fpn_channels": 16, "representation_size": 32, "mask_head_channels": 16, "min_size": [64], "max_size": 64,
        "pretrained": "none"}
FAST = {"epochs": 2, "iters_per_epoch": 2, "batch_size": 2, "warmup_iters": 1}


def blobs(n, seed, size=64, prefix="r"):
    """Crops with dark squares of three sizes (class = size rank) on a noisy background."""
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        img = 0.6 + 0.05 * rng.standard_normal((size, size))
        insts = []
        for c, w in ((1, 4), (2, 10), (3, 7)):
            x, y = rng.integers(2, size - w - 2, 2)
            if any(abs(x - i.x0) < 12 and abs(y - i.y0) < 12 for i in insts):
                continue
            img[y:y + w, x:x + w] = 0.2
            insts.append(Instance(np.ones((w, w), bool), int(x), int(y), c))
        out.append(Sample(img.astype(np.float32).clip(0, 1), insts, f"{prefix}{k}", name=f"{prefix}{k}"))
    return out


def test_config_is_checked():
    with pytest.raises(ValueError, match="backbone"):
        DetectorConfig(backbone="vgg")
    with pytest.raises(ValueError, match="anchor_sizes"):
        DetectorConfig(anchor_sizes=((4,), (8, 16), (32,), (64,), (128,)))
    with pytest.raises(ValueError, match="unknown keys"):
        train_detector([], "/nonexistent", {"fpn": 3})


def test_model_contract_grayscale_and_paper_settings():
    model = build_maskrcnn(DetectorConfig(**TINY), class_ids=(1, 2, 3)).eval()
    assert model.tem_info["pretrained"] == "none" and model.tem_info["norm"] == "group"
    assert model.backbone.body.conv1.in_channels == 1
    assert model.roi_heads.score_thresh == 0.1 and model.roi_heads.detections_per_img == 500
    assert model.rpn.head.cls_logits.out_channels == 2 * 3  # two sizes x three aspect ratios
    with torch.no_grad():
        out = model([torch.rand(1, 64, 64)])[0]
    assert set(out) == {"boxes", "labels", "scores", "masks"} and out["masks"].shape[1:] == (1, 64, 64)


def test_head_has_one_output_per_dataset_class_and_speaks_its_ids():
    """Class ids 7 and 9 give a three-way head (background + 2), not a ten-way one; targets and
    predictions keep the dataset's ids, and an id outside the set is refused."""
    torch.manual_seed(0)
    model = build_maskrcnn(DetectorConfig(**TINY), class_ids=(7, 9))
    assert model.roi_heads.box_predictor.cls_score.out_features == 3
    assert model.roi_heads.mask_predictor.mask_fcn_logits.out_channels == 3
    img = torch.rand(1, 64, 64)
    box = torch.tensor([[10.0, 10.0, 30.0, 30.0], [35.0, 35.0, 50.0, 60.0]])
    masks = torch.zeros(2, 64, 64, dtype=torch.uint8)
    masks[0, 10:30, 10:30] = masks[1, 35:60, 35:50] = 1
    model.train()
    losses = model([img], [{"boxes": box, "labels": torch.tensor([7, 9]), "masks": masks}])
    assert all(torch.isfinite(v) for v in losses.values())
    with pytest.raises(ValueError, match=r"class ids \[3\] are not among the detector's \[7, 9\]"):
        model([img], [{"boxes": box, "labels": torch.tensor([7, 3]), "masks": masks}])
    model.eval()
    model.roi_heads.score_thresh = 0.0
    with torch.no_grad():
        out = model([img])[0]
    assert len(out["labels"]) and set(out["labels"].tolist()) <= {7, 9}
    with pytest.raises(ValueError, match="distinct ids >= 1"):
        build_maskrcnn(DetectorConfig(**TINY), class_ids=(0, 1))


def test_missing_pretrained_weights_fail_clearly(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    assert cached_weights_path("coco").parent == tmp_path / "checkpoints"
    with pytest.raises(PretrainedWeightsMissing, match="not found. Copy the file there"):
        build_maskrcnn(DetectorConfig(**{**TINY, "pretrained": "imagenet"}), (1, 2, 3))
    # "auto" falls back to training from scratch, and says so
    assert build_maskrcnn(DetectorConfig(**{**TINY, "pretrained": "auto"}), (1, 2, 3)).tem_info["pretrained"] == "none"


def test_mixed_indices_ratio_and_reproducibility():
    g = torch.Generator().manual_seed(0)
    idx = np.array(mixed_indices(10, 30, 4000, None, g))
    assert idx.min() >= 0 and idx.max() < 40 and abs((idx >= 10).mean() - 0.75) < 0.03
    idx = np.array(mixed_indices(10, 30, 4000, 0.2, torch.Generator().manual_seed(0)))
    assert abs((idx >= 10).mean() - 0.2) < 0.03
    assert mixed_indices(5, 0, 50, 0.5, torch.Generator().manual_seed(1)) == \
        mixed_indices(5, 0, 50, 0.5, torch.Generator().manual_seed(1))
    assert max(mixed_indices(5, 0, 50, 0.5, torch.Generator().manual_seed(1))) < 5


def test_train_resume_refuse_and_load(tmp_path):
    real, syn = blobs(4, 0), blobs(4, 1, prefix="s")
    model, s = train_detector(real, tmp_path / "a", TINY, FAST, synthetic=syn, class_ids=(1, 2, 3), progress=False)
    h = s["history"]
    assert len(h) == 4 and h["loss"].notna().all() and s["n_synthetic"] == 4 and s["resumed_from"] == 0
    # a finished run (or a checkpoint) of another configuration is refused, never overwritten ...
    with pytest.raises(ValueError, match="another configuration.*epochs"):
        train_detector(real, tmp_path / "a", TINY, {**FAST, "epochs": 3}, synthetic=syn, class_ids=(1, 2, 3), progress=False)
    # ... and the same run resumes (here: is complete) without training again
    _, s2 = train_detector(real, tmp_path / "a", TINY, FAST, synthetic=syn, class_ids=(1, 2, 3), progress=False)
    assert s2["resumed_from"] == 2 and len(s2["history"]) == 4
    loaded = load_detector(tmp_path / "a")
    x = [torch.rand(1, 64, 64)]
    with torch.no_grad():
        a, b = model.eval()(x)[0], loaded(x)[0]
    assert torch.equal(a["boxes"], b["boxes"])
    (tmp_path / "a" / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="model.safetensors"):
        load_detector(tmp_path / "a")


def test_class_agnostic_nms_keeps_one_class_per_defect():
    torch.manual_seed(0)
    per_class = build_maskrcnn(DetectorConfig(**TINY), class_ids=(1, 2, 3)).eval()
    agnostic = build_maskrcnn(DetectorConfig(**TINY, class_agnostic_nms=True), class_ids=(1, 2, 3)).eval()
    agnostic.load_state_dict(per_class.state_dict())
    for m in (per_class, agnostic):
        m.roi_heads.score_thresh, m.roi_heads.detections_per_img = 0.0, 10_000
    x = [torch.rand(1, 64, 64)]
    with torch.no_grad():
        a, b = per_class(x)[0], agnostic(x)[0]
    cross = torchvision.ops.box_iou(a["boxes"], a["boxes"]) * (a["labels"][:, None] != a["labels"][None])
    assert cross.max() > 0.5  # per-class NMS: one place claimed by several classes ...
    assert 0 < len(b["boxes"]) < len(a["boxes"])  # ... which the class-agnostic pass removes
    iou = torchvision.ops.box_iou(b["boxes"], b["boxes"]).fill_diagonal_(0)
    assert iou.max() <= per_class.roi_heads.nms_thresh + 1e-6  # no two kept boxes overlap more, whatever the class
    assert len(b["masks"]) == len(b["scores"]) == len(b["labels"]) == len(b["boxes"])


def test_fine_tuning_starts_from_the_pretrained_weights(tmp_path):
    pre, _ = train_detector(blobs(4, 5, prefix="p"), tmp_path / "pre", TINY, FAST, class_ids=(1, 2, 3), progress=False)
    zero = {**FAST, "epochs": 1, "iters_per_epoch": 1, "lr": 0.0, "warmup_iters": 1}  # lr 0: weights unchanged
    ft, s = train_detector(blobs(4, 0), tmp_path / "ft", TINY, zero, class_ids=(1, 2, 3), progress=False,
                           init_weights=tmp_path / "pre")
    assert s["init_weights"]["path"] == str(tmp_path / "pre")
    assert all(torch.equal(v, ft.state_dict()[k]) for k, v in pre.state_dict().items() if v.is_floating_point())
    assert s["init_weights"]["heads"] == "kept"
    # another class set: the class heads start afresh, the rest is the pretrained network
    two = blobs(4, 0)
    for b in two:
        b.instances = [i for i in b.instances if i.category_id < 3]
    _, s2 = train_detector(two, tmp_path / "ft2",
                           TINY, zero, class_ids=(1, 2), progress=False, init_weights=tmp_path / "pre")
    assert s2["init_weights"]["heads"] == "reinitialised"
    with pytest.raises(ValueError, match="another detector architecture"):
        train_detector(blobs(4, 0), tmp_path / "ft3", {**TINY, "fpn_channels": 8}, zero, class_ids=(1, 2, 3),
                       progress=False, init_weights=tmp_path / "pre")


def test_interrupted_run_resumes_where_it_stopped(tmp_path, monkeypatch):
    import tem_lib.detection.train as tr
    real = blobs(4, 0)
    _, full = train_detector(real, tmp_path / "full", TINY, FAST, class_ids=(1, 2, 3), progress=False)
    real_epoch = tr.train_one_epoch

    def interrupted(*args, **kw):
        if args[4] == 1:  # the second epoch
            raise KeyboardInterrupt
        return real_epoch(*args, **kw)
    monkeypatch.setattr(tr, "train_one_epoch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train_detector(real, tmp_path / "cut", TINY, FAST, class_ids=(1, 2, 3), progress=False)
    assert not (tmp_path / "cut" / "model.safetensors").exists()  # no final model from a cut run
    monkeypatch.setattr(tr, "train_one_epoch", real_epoch)
    _, resumed = train_detector(real, tmp_path / "cut", TINY, FAST, class_ids=(1, 2, 3), progress=False)
    assert resumed["resumed_from"] == 1
    # the same seeded batches and augmentations: the same losses as the uninterrupted run
    assert np.allclose(resumed["history"]["loss"], full["history"]["loss"], rtol=1e-4)


def test_non_finite_loss_stops_with_a_clear_message(tmp_path):
    bad = blobs(2, 0)
    for s in bad:
        s.image[:] = np.nan  # e.g. a float TIFF with NaNs that slipped through
    with pytest.raises(NonFiniteLoss, match="loss is nan"):
        train_detector(bad, tmp_path, TINY, FAST, class_ids=(1, 2, 3), progress=False)
    assert not (tmp_path / "model.safetensors").exists()


def test_predictions_round_trip_and_condition_is_cached(tmp_path):
    real, test = blobs(4, 0), blobs(2, 5, prefix="t")
    res = run_condition("EXP", real, test, tmp_path / "exp", FECRAL, TINY, FAST, progress=False)
    assert len(res.predictions) == 2 and set(res.report.table["iou"]) == {0.1, 0.3, 0.5, 0.7}
    assert not res.report.table[["det_f1", "cls_f1", "harmonic"]].isna().any().any()
    write_predictions(res.predictions, tmp_path / "p.json")
    back = read_predictions(tmp_path / "p.json")
    for a, b in zip(res.predictions, back):
        assert np.allclose(a.boxes, b.boxes, atol=1e-4) and (a.labels == b.labels).all()
        assert all(np.array_equal(i.full_mask(a.shape), j.full_mask(b.shape)) for i, j in zip(a.instances, b.instances))
    again = run_condition("EXP", real, test, tmp_path / "exp", FECRAL, TINY, FAST, progress=False)
    assert again.report.table.equals(res.report.table)
    preds = evaluate(load_detector(tmp_path / "exp"), [s.image for s in test], "cpu", progress=False)
    assert len(preds) == 2 and preds[0].shape == (64, 64)


def test_finished_run_keeps_the_model_only_and_is_reused(tmp_path, monkeypatch):
    import tem_lib.detection.train as tr
    model, s = train_detector(blobs(4, 0), tmp_path / "d", TINY, FAST, class_ids=(1, 2, 3), progress=False)
    assert not (tmp_path / "d" / "checkpoint").exists()  # the resume point goes once the model is saved
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == ["detector.json", "history.csv", "model.safetensors"]

    def no_training(*a, **k):
        raise AssertionError("a finished run was trained again")
    monkeypatch.setattr(tr, "train_one_epoch", no_training)
    again, s2 = train_detector(blobs(4, 0), tmp_path / "d", TINY, FAST, class_ids=(1, 2, 3), progress=False)
    assert s2["resumed_from"] == FAST["epochs"] and len(s2["history"]) == len(s["history"])
    assert all(torch.equal(v, again.state_dict()[k]) for k, v in model.state_dict().items())
    with pytest.raises(ValueError, match="another configuration.*other start or training data"):  # never overwritten
        train_detector(blobs(4, 1, prefix="q"), tmp_path / "d", TINY, FAST, class_ids=(1, 2, 3), progress=False)
