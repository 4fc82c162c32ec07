"""Augmentation strategies: one contract, outputs that load, labels that match the pixels."""
import numpy as np
import pytest

from tem_lib.augment import STRATEGIES, Cell, get_strategy
from tem_lib.augment.copy_paste import paste
from tem_lib.classes import preset
from tem_lib.data import load_dataset, tile_dataset
from tem_lib.priors import fit_prior

FECRAL = preset("fecral")


@pytest.fixture(scope="module")
def crops(sim_samples):
    return tile_dataset(sim_samples, 64)[:12]


@pytest.fixture(scope="module")
def cell(crops, tmp_path_factory):
    prior = fit_prior(crops, "parametric", classes=FECRAL)
    return Cell(list(crops), prior, FECRAL, crop_size=64, nm_per_px=crops[0].nm_per_px, seed=3,
                cache_dir=tmp_path_factory.mktemp("cache"))


def test_registry_and_configs_are_checked():
    assert {"ldm", "inpaint", "copy_paste", "simulator", "sd_inpaint"} <= set(STRATEGIES)
    with pytest.raises(ValueError, match="unknown augmentation 'mixup'"):
        get_strategy("mixup")
    with pytest.raises(ValueError, match="scale_jiter"):
        get_strategy("copy_paste", {"scale_jiter": 0.1})
    assert get_strategy("copy_paste").key() != get_strategy("copy_paste", {"scale_jitter": 0.0}).key()


def test_paste_puts_the_defect_under_its_mask_and_refuses_overlaps():
    image = np.full((32, 32), 0.6, np.float32)
    occupied = np.zeros((32, 32), bool)
    mask = np.zeros((9, 9), bool)
    mask[2:7, 2:7] = True
    patch = np.where(mask, -0.4, 0.0).astype(np.float32)  # a dark square on its own background
    inst = paste(image, occupied, patch, mask, 10.5, 12.5, 2, feather=1.0, min_area=4)
    assert inst is not None and inst.category_id == 2 and inst.area == 25
    under = inst.full_mask(image.shape)
    assert image[under].max() == pytest.approx(0.2, abs=1e-5)  # the defect lies under its mask
    assert np.allclose(image[:, 20:], 0.6)  # far away: untouched
    assert paste(image, occupied, patch, mask, 11.5, 12.5, 1, 1.0, 4) is None  # overlaps: refused


def test_copy_paste_output_loads_and_labels_match_pixels(cell, tmp_path):
    out = get_strategy("copy_paste").make(cell, 6, tmp_path / "cp")
    ds = load_dataset(out)
    assert len(ds) == 6 and list(ds.classes.ids) == list(FECRAL.ids)
    meta = __import__("json").loads((out / "metadata.json").read_text())
    assert meta["strategy"] == "copy_paste" and meta["use"] == "mix" and meta["defects_pasted"] > 0
    bases = {c.name: c for c in cell.train}
    changed_outside = 0
    for s in ds:
        base = bases[meta["bases"][s.name]]  # the real crop each image started from
        assert len(s.instances) >= len(base.instances)
        new = s.instances[len(base.instances):]
        diff = np.abs(s.image - base.image) > 2 / 255
        for inst in new:  # every pasted defect changed the pixels under its mask
            assert diff[inst.full_mask(s.image.shape)].mean() > 0.5
        near = np.zeros(s.image.shape, bool)
        for inst in new:
            near |= inst.full_mask(s.image.shape)
        from scipy import ndimage
        near = ndimage.binary_dilation(near, iterations=12)
        changed_outside += int(diff[~near].sum())
    assert changed_outside == 0  # nothing changes away from the pasted defects


def test_simulator_pretraining_set_is_another_population(cell, tmp_path):
    s = get_strategy("simulator", {"image_size": 128, "n_crops": 5})
    out = s.make(cell, 3, tmp_path / "sim")
    ds = load_dataset(out)
    meta = __import__("json").loads((out / "metadata.json").read_text())
    assert meta["use"] == "pretrain" and len(ds) == 5 and meta["simulator"]["nm_per_px"] == 1.4
    # data with other classes: the set keeps the simulator's (fine-tuning re-initialises the heads)
    other = Cell(cell.train, cell.prior, preset("fecral_cavities"), 64)
    assert list(load_dataset(s.make(other, 3, tmp_path / "sim2")).classes.names) == list(FECRAL.names)


def test_sd_inpaint_offline_says_what_to_do(cell, tmp_path):
    pytest.importorskip("transformers")
    s = get_strategy("sd_inpaint", {"model": "no-such-org/no-such-inpainting-model"})
    with pytest.raises(FileNotFoundError, match="download: true"):
        s.make(cell, 1, tmp_path / "sd")
    assert not (tmp_path / "sd").exists()


TINY_LDM = {"autoencoder": {"block_out_channels": [8, 16, 16], "norm_num_groups": 8},
            "denoiser": {"block_out_channels": [16, 32], "attention_levels": [1], "norm_num_groups": 8,
                         "attention_head_dim": 8, "cond_channels": 4},
            "autoencoder_training": {"steps": 4, "batch_size": 2, "patch_size": 32, "checkpoint_every": 2},
            "denoiser_training": {"steps": 4, "batch_size": 4, "patch_size": 32, "checkpoint_every": 2}}


def test_ldm_and_inpaint_share_the_cells_generator(cell, tmp_path):
    import json

    from scipy import ndimage
    ldm = get_strategy("ldm", {"ldm_config": TINY_LDM, "steps": 3, "guidance_scale": 1.0})
    out = ldm.make(cell, 3, tmp_path / "ldm")
    assert len(load_dataset(out)) == 3
    inp = get_strategy("inpaint", {"ldm_config": TINY_LDM, "steps": 3, "batch_size": 2, "feather": 0.0})
    assert inp.model_dir(cell) == ldm.model_dir(cell)  # one LDM per cell, trained once
    out = inp.make(cell, 4, tmp_path / "inp")
    ds = load_dataset(out)
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["strategy"] == "inpaint" and meta["defects_added"] > 0
    bases = {c.name: c for c in cell.train}
    for s in ds:
        base = bases[meta["bases"][s.name]]
        new = s.instances[len(base.instances):]
        region = np.zeros(s.image.shape, bool)
        for inst in new:
            region |= inst.full_mask(s.image.shape)
        region = ndimage.binary_dilation(region, iterations=3) if region.any() else region
        diff = np.abs(s.image - base.image)
        assert diff[~region].max(initial=0) <= 1 / 255  # outside the new regions: the real crop
        for inst in new:  # labels of the real crop kept, new ones free of them
            assert not any((inst.full_mask(s.image.shape) & b.full_mask(s.image.shape)).any()
                           for b in base.instances)


def tiny_sd_inpainting(folder):
    """A randomly initialised Stable Diffusion inpainting pipeline small enough for a test,
    saved like a downloaded one (a character-level tokenizer built here: nothing is fetched)."""
    import string

    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionInpaintPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer
    torch.manual_seed(0)
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for ch in string.ascii_letters + string.digits + string.punctuation:  # characters only, no merges
        vocab.setdefault(ch, len(vocab))
        vocab.setdefault(ch + "</w>", len(vocab))
    tokenizer = CLIPTokenizer(vocab=vocab, merges=[], model_max_length=16)
    text = CLIPTextModel(CLIPTextConfig(bos_token_id=0, eos_token_id=1, pad_token_id=1, hidden_size=16,
                                        intermediate_size=32, num_attention_heads=2, num_hidden_layers=1,
                                        vocab_size=len(vocab), max_position_embeddings=16))
    unet = UNet2DConditionModel(block_out_channels=(16, 32), layers_per_block=1, sample_size=16, in_channels=9,
                                out_channels=4, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                                up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=16,
                                norm_num_groups=8, attention_head_dim=4)
    vae = AutoencoderKL(block_out_channels=(8, 16), in_channels=3, out_channels=3, latent_channels=4,
                        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
                        norm_num_groups=8)
    pipe = StableDiffusionInpaintPipeline(vae=vae, text_encoder=text, tokenizer=tokenizer, unet=unet,
                                          scheduler=DDIMScheduler(), safety_checker=None, feature_extractor=None,
                                          requires_safety_checker=False)
    pipe.save_pretrained(folder / "model")
    return folder / "model"


def test_sd_inpaint_with_a_tiny_random_pipeline(cell, tmp_path):
    pytest.importorskip("transformers")
    import json
    model = tiny_sd_inpainting(tmp_path)
    s = get_strategy("sd_inpaint", {"model": str(model), "resolution": 64, "steps": 2, "dilate": 2})
    out = s.make(cell, 3, tmp_path / "sd")
    ds = load_dataset(out)
    meta = json.loads((out / "metadata.json").read_text())
    assert len(ds) == 3 and meta["strategy"] == "sd_inpaint" and meta["config"]["guidance_scale"] == 20.0
    bases = {c.name: c for c in cell.train}
    from scipy import ndimage
    for smp in ds:
        base = bases[meta["bases"][smp.name]]
        region = np.zeros(smp.image.shape, bool)
        for inst in smp.instances[len(base.instances):]:
            region |= inst.full_mask(smp.image.shape)
        region = ndimage.binary_dilation(region, iterations=2) if region.any() else region
        assert np.abs(smp.image - base.image)[~region].max(initial=0) <= 1 / 255  # the real crop outside


def test_strategies_declare_their_own_random_streams():
    """Each strategy's streams are declared in its module; one index claimed twice fails loudly,
    so a new strategy can never draw the numbers another draws."""
    from tem_lib.augment import copy_paste, ldm
    from tem_lib.utils import _STREAMS, declare_stream
    assert (copy_paste.COPY_PASTE, ldm.SYNTHESIS, ldm.INPAINT_NOISE) == (11, 17, 23)  # fixed forever: results depend on them
    assert _STREAMS[11] == "copy_paste.places" and declare_stream("copy_paste.places", 11) == 11  # a re-import is fine
    with pytest.raises(ValueError, match="random stream 17 declared by 'ldm.synthesis' and again by 'mine.noise'"):
        declare_stream("mine.noise", 17)
    assert "mine.noise" not in _STREAMS.values()
