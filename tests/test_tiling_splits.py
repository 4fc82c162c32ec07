import numpy as np
import pytest
import torch

from tem_lib.data import make_splits, select, tile_dataset, tile_sample
from tem_lib.data.splits import load_splits, save_splits
from tem_lib.data.tiling import tile_starts
from tem_lib.data.torch_dataset import DetectionDataset, collate, dihedral, masks_to_boxes


def test_tile_starts_cover_the_image():
    assert tile_starts(1024, 256, 256) == [0, 256, 512, 768]
    assert tile_starts(300, 256, 256) == [0, 44]
    assert tile_starts(256, 256, 128) == [0]


def test_crops_clip_instances_consistently(sim_samples):
    s = sim_samples[0]  # 256 x 320 -> crops at x 0 and 64
    crops = tile_sample(s, 128, min_area=1)
    assert len(crops) == 2 * 3 and all(c.shape == (128, 128) for c in crops)
    full = s.masks()
    for c in crops:
        x0, y0 = c.origin
        window = full[:, y0:y0 + 128, x0:x0 + 128]
        expected = sorted(int(m.sum()) for m in window if m.sum() >= 1)
        assert sorted(i.area for i in c.instances) == expected
        assert np.array_equal(c.image, s.image[y0:y0 + 128, x0:x0 + 128])
        for inst in c.instances:  # class map agrees with the source's
            m = inst.full_mask(c.shape)
            assert np.all(s.class_map()[y0:y0 + 128, x0:x0 + 128][m] == inst.category_id)


def test_min_area_drops_slivers(sim_samples):
    many = tile_dataset(sim_samples, 128, min_area=1)
    few = tile_dataset(sim_samples, 128, min_area=200)
    n_many = sum(len(c.instances) for c in many)
    n_few = sum(len(c.instances) for c in few)
    assert n_few < n_many
    assert all(i.area >= 200 for c in few for i in c.instances)
    with pytest.raises(ValueError, match="smaller than the crop size 512"):
        tile_sample(sim_samples[0], 512)


def test_splits_by_source_are_disjoint_nested_and_seeded(sim_samples, tmp_path):
    crops = tile_dataset(sim_samples, 128)  # 4 sources x 6 crops
    sp = make_splits(crops, n_train=(2, 5, 10), k=3, seed=1, test_fraction=0.25)
    src = {c.name: c.source_id for c in crops}
    for s in sp["splits"]:
        test_src = {src[n] for n in s["test"]}
        assert test_src == set(s["test_sources"]) and len(test_src) == 1
        assert len(s["test"]) == 6
        train = {k: set(v) for k, v in s["train"].items()}
        assert train["2"] < train["5"] < train["10"] and len(train["10"]) == 10
        assert not {src[n] for n in train["10"]} & test_src
    assert make_splits(crops, (2, 5, 10), 3, 1) == sp
    assert make_splits(crops, (2, 5, 10), 3, 2) != sp
    save_splits(sp, tmp_path / "s.json")
    assert load_splits(tmp_path / "s.json") == sp
    assert [c.name for c in select(crops, sp["splits"][0]["test"])] == sp["splits"][0]["test"]
    with pytest.raises(ValueError, match="not in the dataset"):
        select(crops, ["nope@y0x0"])
    with pytest.raises(ValueError, match="only 18 training crops"):
        make_splits(crops, (50,), 1, 0)
    with pytest.raises(ValueError, match="at least 2 source micrographs"):
        make_splits(crops[:6], (2,), 1, 0)


def test_detection_dataset_contract_and_augmentation(sim_samples):
    crops = [c for c in tile_dataset(sim_samples, 128) if c.instances][:3]
    ds = DetectionDataset(crops)
    img, t = ds[0]
    assert img.shape == (1, 128, 128) and img.dtype == torch.float32
    n = len(crops[0].instances)
    assert t["boxes"].shape == (n, 4) and t["boxes"].dtype == torch.float32
    assert t["labels"].dtype == torch.int64 and t["masks"].dtype == torch.uint8
    assert np.allclose(t["boxes"].numpy(), crops[0].boxes())
    aug = DetectionDataset(crops, augment=True, generator=torch.Generator().manual_seed(0))
    seen = set()
    for _ in range(12):
        a_img, a_t = aug[0]
        # the image and its masks move together: masked pixels keep their gray values
        order = torch.argsort(a_t["area"])
        assert torch.allclose(torch.sort(a_img[0][a_t["masks"].any(0).bool()]).values,
                              torch.sort(img[0][t["masks"].any(0).bool()]).values)
        assert torch.equal(a_t["boxes"], masks_to_boxes(a_t["masks"]))
        assert torch.equal(a_t["area"][order], t["area"][torch.argsort(t["area"])])
        seen.add(a_img.numpy().tobytes())
    assert len(seen) > 3
    again = DetectionDataset(crops, augment=True, generator=torch.Generator().manual_seed(0))
    assert torch.equal(again[0][0], DetectionDataset(crops, True, torch.Generator().manual_seed(0))[0][0])
    images, targets = collate([ds[0], ds[1]])
    assert len(images) == 2 and isinstance(targets[0], dict)


def test_dihedral_group_and_boxes():
    x = torch.arange(12.0).reshape(1, 3, 4)
    assert torch.equal(dihedral(dihedral(x, 1, False), 3, False), x)
    m = torch.zeros(1, 5, 6, dtype=torch.uint8)
    m[0, 1:3, 2:5] = 1
    assert masks_to_boxes(m).tolist() == [[2.0, 1.0, 5.0, 3.0]]
    assert masks_to_boxes(torch.zeros(0, 5, 6)).shape == (0, 4)
