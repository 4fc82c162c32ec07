"""One entry point loads every trained artifact from its folder, whatever made it."""
import pytest
import torch

from tem_lib.classes import preset
from tem_lib.data import tile_dataset
from tem_lib.pretrained import from_pretrained, kind_of, save_pretrained

FECRAL = preset("fecral")


def test_every_artifact_loads_from_its_folder(sim_samples, tmp_path):
    from tem_lib.detection import train_detector
    from tem_lib.ldm import train_ldm
    from tem_lib.quantify import export_model
    from tem_lib.segmentation import SegConfig, build_unet, save_unet
    crops = tile_dataset(sim_samples[:1], 64)[:4]
    train_detector(crops, tmp_path / "det", {"fpn_channels": 16, "representation_size": 32, "mask_head_channels": 16,
                                             "pretrained": "none"},
                   {"epochs": 1, "iters_per_epoch": 1, "batch_size": 2, "warmup_iters": 1},
                   class_ids=FECRAL.ids, class_names=FECRAL.names, progress=False)
    export_model(tmp_path / "det", tmp_path / "model", FECRAL, tile=64, nm_per_px=None, score_threshold=0.5,
                 threshold_source="test")
    cfg = SegConfig(n_classes=2)
    save_unet(build_unet(cfg, download=False), cfg, tmp_path / "unet")
    tiny = {"autoencoder": {"block_out_channels": [8, 16, 16], "norm_num_groups": 8},
            "denoiser": {"block_out_channels": [16, 32], "attention_levels": [1], "norm_num_groups": 8,
                         "attention_head_dim": 8, "cond_channels": 4},
            "autoencoder_training": {"steps": 2, "batch_size": 2, "patch_size": 32, "checkpoint_every": 2},
            "denoiser_training": {"steps": 2, "batch_size": 2, "patch_size": 32, "checkpoint_every": 2}}
    train_ldm(crops, tiny, tmp_path / "ldm", device="cpu", classes=FECRAL)
    assert kind_of(tmp_path / "model") == "quantify model" and kind_of(tmp_path / "det") == "detector"
    assert kind_of(tmp_path / "unet") == "segmenter" and kind_of(tmp_path / "ldm") == "generator"
    model, card = from_pretrained(tmp_path / "model")
    assert card.classes.matches(FECRAL) and isinstance(model, torch.nn.Module)
    assert isinstance(from_pretrained(tmp_path / "det"), torch.nn.Module)
    assert isinstance(from_pretrained(tmp_path / "unet"), torch.nn.Module)
    assert from_pretrained(tmp_path / "ldm").class_ids == FECRAL.ids
    (tmp_path / "half" / "checkpoint").mkdir(parents=True)
    with pytest.raises(ValueError, match="half: not a tem_lib model folder.*quantify model: model.json"):
        from_pretrained(tmp_path / "half")
    with pytest.raises(FileNotFoundError, match="nowhere: no such folder"):
        kind_of(tmp_path / "nowhere")

    # what was loaded saves back (save_pretrained) to a folder of the same kind that loads the same weights
    def same(a, b):
        sa, sb = a.state_dict(), b.state_dict()
        return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)

    for name in ("model", "det", "unet", "ldm"):
        obj = from_pretrained(tmp_path / name)
        save_pretrained(obj, tmp_path / "again" / name)
        assert kind_of(tmp_path / "again" / name) == kind_of(tmp_path / name), name
        back = from_pretrained(tmp_path / "again" / name)
        if name == "model":
            assert back[1] == obj[1] and same(back[0], obj[0])
        elif name == "ldm":
            assert all(same(getattr(back, p), getattr(obj, p)) for p in ("vae", "unet", "mask_encoder"))
            assert back.tem_record["config"] == obj.tem_record["config"]
        else:
            assert same(back, obj) and not any(tmp_path.joinpath("again").glob(f".{name}*"))  # no leftovers
    assert from_pretrained(tmp_path / "again" / "unet").config == from_pretrained(tmp_path / "unet").config
    with pytest.raises(TypeError, match="cannot save a Linear"):
        save_pretrained(torch.nn.Linear(2, 2), tmp_path / "nope")
    assert not (tmp_path / "nope").exists()
