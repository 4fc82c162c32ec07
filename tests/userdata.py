"""Tiny datasets in the layouts people publish, generated from simulated micrographs: COCO
with foreign category ids and names (RLE or polygons, ``annotations/`` or any json name,
``imgs/`` or ``JPEGImages/``), YOLO segmentation labels, ImageJ tables, gray masks and
calibrated microscope TIFFs. Used by ``test_user_data.py``."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image
from skimage import measure

from tem_lib.classes import ClassSet
from tem_lib.data import Instance, Sample, to_coco, write_dataset
from tem_lib.simulate import preset, simulate


def simulated(n: int = 4, size: int = 512, seed: int = 11):
    return simulate(preset(height=size, width=size), n, seed=seed, workers=1)


def relabel(samples, mapping: dict) -> list[Sample]:
    """The samples with class ids mapped (``mapping[old] = new``)."""
    return [Sample(s.image, [Instance(i.mask, i.x0, i.y0, mapping[i.category_id], i.ellipse) for i in s.instances],
                   s.source_id, s.nm_per_px, s.name) for s in samples]


def polygon(inst: Instance) -> list[float]:
    """The outline of an instance mask as one polygon (x, y, x, y, ...), image coordinates."""
    contours = measure.find_contours(np.pad(inst.mask, 1).astype(float), 0.5)
    c = max(contours, key=len)
    xy = np.stack([c[:, 1] - 1 + inst.x0 + 0.5, c[:, 0] - 1 + inst.y0 + 0.5], axis=1)
    return [round(float(v), 2) for v in xy.ravel()]


def write_images(samples, folder: Path, suffix=".png") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for s in samples:
        Image.fromarray(np.clip(np.rint(s.image * 255), 0, 255).astype(np.uint8)).save(folder / f"{s.name}{suffix}")


def coco(root: Path, samples, classes: ClassSet, json_path: str, images: str, polygons: bool = False) -> Path:
    """A COCO dataset as exported by annotation tools: no tem_lib extras, ``json_path`` and
    ``images`` relative to ``root``."""
    d = to_coco(samples, classes)
    for img in d["images"]:
        for k in ("source_id", "nm_per_px", "origin"):
            img.pop(k)
    if polygons:
        by_id = {k: s for k, s in enumerate(samples, start=1)}
        inst = {k: list(s.instances) for k, s in by_id.items()}
        for ann in d["annotations"]:
            ann["segmentation"] = [polygon(inst[ann["image_id"]].pop(0))]
            ann.pop("ellipse", None)
    write_images(samples, root / images)
    path = root / json_path
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(d))
    return path


def coco_one_class(root: Path) -> Path:
    """Every defect labelled ``{"id": 1, "name": "loop"}``: annotations/instances_train.json + imgs/."""
    samples = relabel(simulated(), {1: 1, 2: 1, 3: 1})
    coco(root, samples, ClassSet.from_coco([{"id": 1, "name": "loop"}]), "annotations/instances_train.json", "imgs")
    return root


def coco_void_precipitate(root: Path) -> Path:
    """Classes void (id 7) and precipitate (id 9), polygon outlines: data.json + JPEGImages/."""
    samples = relabel(simulated(seed=12), {1: 7, 2: 9, 3: 9})
    classes = ClassSet.from_coco([{"id": 9, "name": "precipitate"}, {"id": 7, "name": "void"}])
    coco(root, samples, classes, "data.json", "JPEGImages", polygons=True)
    return root


def yolo(root: Path) -> Path:
    """YOLO segmentation: images/train, labels/train (normalised polygons), data.yaml names."""
    samples = simulated(seed=13)
    names = {1: 0, 2: 1, 3: 2}
    write_images(samples, root / "images" / "train")
    (root / "labels" / "train").mkdir(parents=True)
    for s in samples:
        H, W = s.shape
        lines = []
        for inst in s.instances:
            xy = np.array(polygon(inst)).reshape(-1, 2) / [W, H]
            lines.append(" ".join([str(names[inst.category_id]), *(f"{v:.5f}" for v in xy.ravel())]))
        (root / "labels" / "train" / f"{s.name}.txt").write_text("\n".join(lines) + "\n")
    (root / "data.yaml").write_text("path: .\ntrain: images/train\nval: images/train\n"
                                    "names:\n  0: dot\n  1: loop a\n  2: loop b\n")
    return root


def imagej(root: Path) -> Path:
    """ImageJ ellipse tables (the FeCrAl format): labels/NAME_results.csv + images/NAME.png."""
    samples = simulated(seed=14)
    codes = {2: 0, 1: 1, 3: 2}
    write_images(samples, root / "images")
    (root / "labels").mkdir()
    for s in samples:
        rows = [" ,Area,X,Y,Major,Minor,Angle,class"]
        for k, i in enumerate(s.instances, 1):
            x, y, major, minor, angle = i.ellipse
            rows.append(f"{k},{i.area},{x:.2f},{y:.2f},{major:.2f},{minor:.2f},{angle:.2f},{codes[i.category_id]}")
        (root / "labels" / f"{s.name}_results.csv").write_text("\n".join(rows) + "\n")
    return root


def graymask_tiff(root: Path, nm_per_px: float = 0.8) -> Path:
    """Gray-level masks + 16-bit microscope TIFFs whose calibration (nm/px) rosettasciio reads."""
    from rsciio.tiff import file_writer

    from tem_lib.classes import preset as class_preset
    samples = simulated(seed=15)
    fecral = class_preset("fecral")
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for s in samples:
        H, W = s.shape
        axes = [{"size": n, "scale": nm_per_px, "offset": 0.0, "units": "nm", "name": a, "navigate": False}
                for n, a in ((H, "y"), (W, "x"))]
        file_writer(str(root / "images" / f"{s.name}.tif"),
                    {"data": (s.image * 40000 + 1000).astype(np.uint16), "axes": axes, "metadata": {},
                     "original_metadata": {}})
        Image.fromarray(s.gray_mask(fecral)).save(root / "masks" / f"{s.name}.png")
    return root


def ours(root: Path) -> Path:
    """What tem_lib itself writes (the class set in metadata.json)."""
    samples = simulated(seed=16)
    return write_dataset(samples, root, samples.classes)


# ----------------------------------------------------------------------------- a minimal DM3 writer
def _dm3_group(tags: list) -> bytes:
    import struct
    out = struct.pack(">BBl", 0, 0, len(tags))
    for name, value in tags:
        key = name.encode()
        if isinstance(value, list):  # a tag group
            out += struct.pack(">bh", 20, len(key)) + key + _dm3_group(value)
        else:
            out += struct.pack(">bh", 21, len(key)) + key + b"%%%%" + value
    return out


def _dm3_long(v: int) -> bytes:
    import struct
    return struct.pack(">ll", 1, 3) + struct.pack("<l", v)


def _dm3_float(v: float) -> bytes:
    import struct
    return struct.pack(">ll", 1, 6) + struct.pack("<f", v)


def _dm3_text(s: str) -> bytes:  # DM stores short strings as arrays of uint16 (type 4)
    import struct
    return struct.pack(">llll", 3, 20, 4, len(s)) + struct.pack(f"<{len(s)}H", *map(ord, s))


def write_dm3(path: Path, image: np.ndarray, scale: float, units: str = "nm") -> None:
    """A Gatan DM3 file holding one 2-D float32 image calibrated at ``scale`` ``units``/px,
    with the tags rosettasciio's reader needs (ImageList > ImageData: Data, DataType,
    Dimensions, Calibrations)."""
    import struct
    data = np.ascontiguousarray(image, dtype="<f4")
    h, w = data.shape
    dim = lambda: [("Origin", _dm3_float(0.0)), ("Scale", _dm3_float(scale)), ("Units", _dm3_text(units))]  # noqa: E731
    image_data = [
        ("Calibrations", [("Brightness", [("Origin", _dm3_float(0.0)), ("Scale", _dm3_float(1.0)),
                                          ("Units", _dm3_text(""))]),
                          ("Dimension", [("", dim()), ("", dim())])]),
        ("Data", struct.pack(">llll", 3, 20, 6, data.size) + data.tobytes()),
        ("DataType", _dm3_long(2)),  # float32
        ("Dimensions", [("", _dm3_long(w)), ("", _dm3_long(h))]),
    ]
    root = _dm3_group([("ImageList", [("", [("ImageData", image_data), ("ImageTags", []),
                                            ("Name", _dm3_text(path.stem))])])])
    path.write_bytes(struct.pack(">lll", 3, len(root) + 12, 1) + root)


def graymask_dm3(root: Path, nm_per_px: float = 0.6) -> Path:
    """Gray-level masks + DM3 micrographs calibrated in nm."""
    from tem_lib.classes import preset as class_preset
    samples = simulated(seed=17)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for s in samples:
        write_dm3(root / "images" / f"{s.name}.dm3", s.image * 1000.0 + 50.0, nm_per_px)
        Image.fromarray(s.gray_mask(class_preset("fecral"))).save(root / "masks" / f"{s.name}.png")
    return root
