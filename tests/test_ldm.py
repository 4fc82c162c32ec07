"""Mask-conditioned LDM: conditioning, training resume, pipeline save/load, synthesis, bad input."""
import json

import numpy as np
import pandas as pd
import pytest
import torch

from tem_lib.classes import preset
from tem_lib.data import LabelMap, load_dataset, tile_dataset
from tem_lib.data.sample import Instance
from tem_lib.ldm import LDMConfig, MaskEncoder, load_pipeline, one_hot, train_ldm
from tem_lib.ldm.autoencoder import defect_contrast, survival_table
from tem_lib.ldm.config import TrainConfig
from tem_lib.ldm.loop import fit
from tem_lib.ldm.synthesis import generate, synthesize

TINY = {"autoencoder": {"block_out_channels": [8, 16, 16], "norm_num_groups": 8},
        "denoiser": {"block_out_channels": [16, 32], "attention_levels": [1], "norm_num_groups": 8,
                     "attention_head_dim": 8, "cond_channels": 4},
        "autoencoder_training": {"steps": 4, "batch_size": 2, "patch_size": 32, "checkpoint_every": 2},
        "denoiser_training": {"steps": 4, "batch_size": 4, "patch_size": 32, "checkpoint_every": 2}}
FECRAL = preset("fecral")


@pytest.fixture(scope="module")
def crops(sim_samples):
    return tile_dataset(sim_samples[:2], 64)[:6]


@pytest.fixture(scope="module")
def trained(crops, tmp_path_factory):
    out = tmp_path_factory.mktemp("ldm")
    pipe, summary = train_ldm(crops, TINY, out, device="cpu", classes=FECRAL)
    return pipe, summary, out


def test_one_hot_channels_and_unknown_ids():
    maps = np.zeros((2, 4, 4), np.uint8)
    maps[0, 1, 1], maps[1, 2, 2] = 3, 1
    oh = one_hot(maps, (1, 2, 3))
    assert oh.shape == (2, 4, 4, 4)
    assert torch.equal(oh.sum(1), torch.ones(2, 4, 4))  # exactly one channel per pixel
    assert oh[0, 3, 1, 1] == 1 and oh[1, 1, 2, 2] == 1 and oh[0, 0, 0, 0] == 1
    maps[1, 0, 0] = 7
    with pytest.raises(ValueError, match=r"mask 1: class ids \[7\] unknown"):
        one_hot(maps, (1, 2, 3))


@pytest.mark.parametrize("kind", ["learned", "rescaler"])
def test_mask_encoder_shapes(kind):
    enc = MaskEncoder(class_ids=(1, 2, 3), out_channels=5, factor=8, kind=kind)
    assert enc(torch.zeros(2, 4, 64, 32)).shape == (2, 5, 8, 4)


def test_rescaler_dilutes_small_dots_that_the_learned_encoder_resolves():
    """The paper's bilinear rescaler at f=8 is an 8x8 box average: a 2x2 dot becomes 4/64 of one
    latent cell and its position inside the cell is lost; strided convs keep both
    (PAPER_NOTES: the caveat to beat)."""
    def dot(y, x):
        maps = np.zeros((1, 32, 32), np.uint8)
        maps[0, y:y + 2, x:x + 2] = 1
        return one_hot(maps, (1, 2, 3))
    rescaler = MaskEncoder((1, 2, 3), factor=8, kind="rescaler")
    a, b = dot(0, 0), dot(4, 5)
    for _ in range(3):
        a = torch.nn.functional.interpolate(a, scale_factor=0.5, mode="bilinear")
    assert a[0, 1, 0, 0] == pytest.approx(4 / 64)
    torch.testing.assert_close(rescaler(dot(0, 0)), rescaler(dot(4, 5)))
    learned = MaskEncoder((1, 2, 3), factor=8, kind="learned")
    assert not torch.allclose(learned(dot(0, 0)), learned(b))


def test_train_save_load_and_sample(trained, crops):
    pipe, summary, out = trained
    assert (out / "pipeline" / "model_index.json").is_file()
    assert (out / "autoencoder" / "history.csv").is_file() and len(summary["denoiser_history"]) == 4
    assert np.isfinite(summary["denoiser_history"]["loss"]).all()
    record = json.loads((out / "pipeline" / "tem_lib.json").read_text())
    assert record["config"]["denoiser"]["cond_channels"] == 4 and "versions" in record
    loaded = load_pipeline(out / "pipeline")
    gens = lambda: [torch.Generator().manual_seed(i) for i in range(2)]  # noqa: E731
    a = pipe(crops[:2], num_inference_steps=3, generator=gens())
    b = loaded(crops[:2], num_inference_steps=3, generator=gens())
    assert a.shape == (2, 64, 64) and a.dtype == np.float32 and 0 <= a.min() and a.max() <= 1
    np.testing.assert_allclose(a, b, atol=1e-5)
    # classifier-free guidance changes the result; per-image generators make batching irrelevant
    g = pipe(crops[:2], num_inference_steps=3, generator=gens(), guidance_scale=3.0)
    assert np.abs(g - a).max() > 1e-4
    one = generate(pipe, crops[1:2], "ddim", 3, seed=0, first_index=1, batch_size=1, progress=False)
    two = generate(pipe, crops[:2], "ddim", 3, seed=0, batch_size=2, progress=False)
    np.testing.assert_allclose(one[0], two[1], atol=1e-5)


def test_a_finished_run_is_loaded_not_retrained(trained, crops, monkeypatch):
    """Rerunning a finished configuration loads its pipeline as saved (no re-encoding, no
    noise refit, no checkpoint check), with the loss histories; other crops train anew."""
    import tem_lib.ldm.train as train
    pipe, summary, out = trained
    monkeypatch.setattr(train, "train_autoencoder", lambda *a, **k: pytest.fail("retrained a finished run"))
    again, s2 = train_ldm(crops, TINY, out, device="cpu", classes=FECRAL)
    assert s2["loaded"] and s2["scaling_factor"] == summary["scaling_factor"]
    pd.testing.assert_frame_equal(s2["denoiser_history"], summary["denoiser_history"], check_dtype=False)
    for a, b in zip(pipe.unet.parameters(), again.unet.parameters()):
        torch.testing.assert_close(a, b)
    with pytest.raises(pytest.fail.Exception, match="retrained"):
        train_ldm(crops[:5], TINY, out, device="cpu", classes=FECRAL)


def test_fitted_noise_is_saved_with_the_pipeline_and_optional(trained, crops, tmp_path):
    """The default pipeline carries the training crops' residual noise (saved and loaded with
    it); a pipeline saved without one (older folders) loads with ``noise=None``."""
    from tem_lib.ldm import MaskToImagePipeline
    from tem_lib.ldm.train import save_pipeline
    pipe, _, out = trained
    assert pipe.noise is not None and pipe.noise.fitted
    gens = lambda: [torch.Generator().manual_seed(i) for i in range(2)]  # noqa: E731
    plain = pipe(crops[:2], num_inference_steps=2, generator=gens(), add_noise=False)
    noisy = pipe(crops[:2], num_inference_steps=2, generator=gens())
    assert 0.001 < np.abs(noisy - plain).mean() < 0.2
    bare = MaskToImagePipeline(vae=pipe.vae, unet=pipe.unet, mask_encoder=pipe.mask_encoder, scheduler=pipe.scheduler)
    loaded = load_pipeline(save_pipeline(bare, tmp_path / "bare", {}))
    assert loaded.noise is None
    np.testing.assert_allclose(loaded(crops[:2], num_inference_steps=2, generator=gens()), plain, atol=1e-5)


def test_autoencoder_with_discriminator_trains_and_resumes(crops, tmp_path):
    from tem_lib.ldm.train import train_autoencoder
    cfg = LDMConfig.from_dict({**TINY, "autoencoder": {**TINY["autoencoder"], "adversarial_weight": 0.5,
                                                       "adversarial_start": 0.5}})
    vae, res = train_autoencoder(crops, cfg, tmp_path, "cpu")
    assert np.isfinite(res["history"]["loss"]).all() and len(res["history"]) == 4
    assert (tmp_path / "autoencoder" / "checkpoint" / "discriminator.safetensors").is_file()
    _, again = train_autoencoder(crops, cfg, tmp_path, "cpu")
    assert again["resumed_from"] == 4
    with pytest.raises(ValueError, match="adversarial_weight"):
        LDMConfig.from_dict({"autoencoder": {"adversarial_weight": -1}})


def test_mask_weighted_denoiser_loss(trained, crops, tmp_path):
    from tem_lib.ldm.train import defect_weight_map, train_denoiser
    maps = torch.zeros(2, 16, 16, dtype=torch.uint8)
    maps[0, :4, :4] = 2  # one latent pixel (f = 4) fully inside a defect, nothing in sample 1
    w = defect_weight_map(maps, 4, 3.0)
    assert w.shape == (2, 1, 4, 4)
    assert torch.allclose(w.mean(dim=(1, 2, 3)), torch.ones(2))  # the loss scale is kept
    assert w[0, 0, 0, 0] / w[0, 0, 3, 3] == pytest.approx(4.0)  # 1 + 3 x full coverage vs 1
    assert torch.allclose(w[1], torch.ones_like(w[1]))  # no defect: the plain loss
    pipe, _, _ = trained
    cfg = LDMConfig.from_dict({**TINY, "denoiser": {**TINY["denoiser"], "mask_weight": 4.0,
                                                   "class_ids": list(FECRAL.ids)}})
    _, _, res = train_denoiser(crops, pipe.vae, cfg, tmp_path, "cpu")
    assert np.isfinite(res["history"]["loss"]).all() and len(res["history"]) == 4
    with pytest.raises(ValueError, match="mask_weight"):
        LDMConfig.from_dict({"denoiser": {"mask_weight": -1}})


def test_bad_masks_are_refused(trained):
    pipe = trained[0]
    with pytest.raises(ValueError, match="mask size 36x64 is not a multiple of 8 px"):
        pipe(np.zeros((1, 36, 64), np.uint8), num_inference_steps=2)
    bad = np.zeros((1, 64, 64), np.uint8)
    bad[0, 3, 3] = 9
    with pytest.raises(ValueError, match=r"class ids \[9\] unknown"):
        pipe(bad, num_inference_steps=2)


def test_resume_after_interruption_matches_uninterrupted(tmp_path):
    """Killed after the step-2 checkpoint, the rerun resumes there and ends with the same
    weights as a run that was never interrupted (same batches: seeded by step)."""
    cfg = TrainConfig(steps=4, batch_size=2, checkpoint_every=2, warmup_steps=1, ema_decay=0.9)
    data = torch.linspace(-1, 1, 64).reshape(16, 4)

    def run(out, stop_at=None):
        torch.manual_seed(0)
        model = torch.nn.Linear(4, 1)

        def loss_fn(step, gen):
            if step == stop_at:
                raise KeyboardInterrupt
            x = data[torch.randint(16, (2,), generator=gen)]
            return ((model(x) - x.sum(1, keepdim=True)) ** 2).mean()
        return model, fit({"m": model}, loss_fn, cfg, out, {"what": "toy"}, "cpu", ema_module="m")

    ref, _ = run(tmp_path / "a")
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "b", stop_at=3)
    model, res = run(tmp_path / "b")
    assert res["resumed_from"] == 2
    torch.testing.assert_close(model.weight, ref.weight)
    with pytest.raises(ValueError, match="checkpoint of another configuration.*lr"):
        fit({"m": torch.nn.Linear(4, 1)}, lambda s, g: torch.zeros(()), TrainConfig(steps=4, lr=1.0,
            checkpoint_every=2), tmp_path / "b", {"what": "toy"}, "cpu")


def test_non_finite_loss_stops_with_message(tmp_path):
    model = torch.nn.Linear(2, 1)
    with pytest.raises(RuntimeError, match="loss is nan at step 0"):
        fit({"m": model}, lambda s, g: model.weight.sum() * float("nan"), TrainConfig(steps=2), tmp_path, {}, "cpu")


def test_corrupt_or_mismatched_files_raise_clear_errors(trained, tmp_path, crops):
    import shutil
    pipe, _, out = trained
    bad = tmp_path / "pipe"
    shutil.copytree(out / "pipeline", bad)
    w = bad / "unet" / "diffusion_pytorch_model.safetensors"
    w.write_bytes(w.read_bytes()[:100])
    with pytest.raises(ValueError, match="could not load the pipeline"):
        load_pipeline(bad)
    with pytest.raises(FileNotFoundError, match="model_index.json"):
        load_pipeline(tmp_path)
    # a mask encoder made for another configuration
    mism = tmp_path / "mism"
    shutil.copytree(out / "pipeline", mism)
    MaskEncoder(class_ids=(1, 2, 3), out_channels=6, factor=4).save_pretrained(mism / "mask_encoder")
    with pytest.raises(ValueError, match="components do not fit together"):
        load_pipeline(mism)
    # a corrupt training checkpoint
    ck = tmp_path / "ck"
    shutil.copytree(out, ck)
    shutil.rmtree(ck / "pipeline")  # an unfinished run: it resumes from the checkpoint
    (ck / "denoiser" / "checkpoint" / "training_state.pt").write_bytes(b"not a checkpoint")
    cfg = dict(TINY, denoiser_training={**TINY["denoiser_training"], "steps": 4})
    with pytest.raises(ValueError, match="corrupt or incomplete checkpoint"):
        train_ldm(crops, cfg, ck, device="cpu", classes=FECRAL)


def test_synthesize_writes_a_dataset_and_resumes(trained, crops, tmp_path, monkeypatch):
    pipe = trained[0]
    maps = [LabelMap(c.shape, c.instances, name=f"m{i}", nm_per_px=1.5) for i, c in enumerate(crops[:3])]
    import tem_lib.ldm.synthesis as syn
    real_generate, calls = syn.generate, []

    def flaky(*a, **k):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_generate(*a, **k)
    monkeypatch.setattr(syn, "generate", flaky)
    with pytest.raises(KeyboardInterrupt):
        synthesize(pipe, maps, tmp_path / "syn", FECRAL, sampler="dpm++", steps=2, chunk=1, progress=False,
                   metadata={"model": "tiny"})
    assert not (tmp_path / "syn").exists()  # nothing half-written
    monkeypatch.setattr(syn, "generate", real_generate)
    out = synthesize(pipe, maps, tmp_path / "syn", FECRAL, sampler="dpm++", steps=2, chunk=1, progress=False,
                     metadata={"model": "tiny"})
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["generated_this_run"] == 2 and meta["sampler"] == "dpm++" and meta["model"] == "tiny"
    back = load_dataset(out)
    assert [s.name for s in back] == ["m0", "m1", "m2"]
    assert [len(s.instances) for s in back] == [len(m.instances) for m in maps]
    assert back[0].nm_per_px == 1.5
    assert not list(tmp_path.glob(".syn.parts-*"))


def test_defect_contrast_and_survival():
    img = np.full((32, 32), 0.8, np.float32)
    yy, xx = np.mgrid[:32, :32]
    disk = (yy - 16) ** 2 + (xx - 16) ** 2 <= 9
    img[disk] = 0.2
    assert defect_contrast(img, disk) == pytest.approx(0.6)
    from tem_lib.data import Sample
    s = Sample(img, [Instance(disk[13:20, 13:20].copy(), 13, 13, 1)], source_id="s")
    kept = survival_table([img], [img], [s], FECRAL)
    lost = survival_table([img], [np.full_like(img, 0.8)], [s], FECRAL)
    assert kept["survives"].tolist() == [True] and lost["survives"].tolist() == [False]


def test_config_from_dict_rejects_unknown_keys():
    cfg = LDMConfig.from_dict({"denoiser": {"cond_channels": 3}})
    assert cfg.denoiser.cond_channels == 3 and cfg.autoencoder_training.steps == LDMConfig().autoencoder_training.steps
    with pytest.raises(ValueError, match="unknown keys.*colour"):
        LDMConfig.from_dict({"denoiser": {"colour": 1}})


def test_quality_filter_drops_pairs_whose_defects_are_not_found(trained, crops, tmp_path):
    """A stand-in segmenter that sees the defects of the first map only: the other pairs (with
    defects) are dropped, a pair without defects is kept, and the metadata says why."""
    from tem_lib.ldm.quality import QualityFilter
    pipe = trained[0]
    maps = [LabelMap(c.shape, c.instances, name=f"m{i}") for i, c in enumerate(crops[:3])]
    maps.append(LabelMap(crops[0].shape, [], name="empty"))
    assert all(m.instances for m in maps[:3])
    truth = np.stack([m.class_map() for m in maps])

    def sees_first(images):
        out = np.zeros_like(truth)
        out[0] = truth[0]
        return out
    out = synthesize(pipe, maps, tmp_path / "syn", FECRAL, steps=2, progress=False,
                     quality=QualityFilter(sees_first, min_found=0.5, description="stand-in"))
    back = load_dataset(out)
    assert [s.name for s in back] == ["m0", "empty"]
    rec = json.loads((out / "metadata.json").read_text())["quality_filter"]
    assert rec["n_generated"] == 4 and rec["n_dropped"] == 2 and rec["by"] == "stand-in"
    assert [d["name"] for d in rec["dropped"]] == ["m1", "m2"]
    assert rec["dropped"][0]["reason"].startswith(f"0 of {len(maps[1].instances)} defects found")
    with pytest.raises(ValueError, match="dropped all 2 generated pairs"):
        synthesize(pipe, maps[1:3], tmp_path / "none", FECRAL, steps=2, progress=False,
                   quality=QualityFilter(lambda im: np.zeros_like(truth[:2])))
    with pytest.raises(ValueError, match="min_found"):
        QualityFilter(sees_first, min_found=2)
