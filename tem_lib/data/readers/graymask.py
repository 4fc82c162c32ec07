"""Gray-level class masks ``masks/NAME.png`` + ``images/NAME.*``: instances are the connected
components of each class's level."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from ...classes import ClassSet
from ..dataset import Dataset
from ..images import find_image, list_images, read_image_with_scale
from ..sample import Instance, Sample
from .common import needs_classes


def instances_from_gray(gray: np.ndarray, classes: ClassSet, where: str = "mask",
                        connectivity: int = 2) -> list[Instance]:
    """Instances of a gray-level class mask: connected components of each class value."""
    from scipy import ndimage
    g2id = classes.gray_to_id
    values = np.unique(gray)
    unknown = [int(v) for v in values if v != 0 and v not in g2id]
    if unknown:
        raise ValueError(f"{where}: unknown gray level(s) {unknown}; class set {classes.name!r} expects 0 or "
                         f"{sorted(g2id)} ({', '.join(f'{g}={classes[c].name}' for g, c in sorted(g2id.items()))})")
    structure = ndimage.generate_binary_structure(2, connectivity)
    instances = []
    for v in values:
        if v == 0:
            continue
        lab, n = ndimage.label(gray == v, structure=structure)
        for k, sl in enumerate(ndimage.find_objects(lab), start=1):
            m = lab[sl] == k
            instances.append(Instance(m, sl[1].start, sl[0].start, g2id[int(v)]))
    instances.sort(key=lambda i: (i.y0, i.x0))
    return instances


def _read_gray_mask(path: Path) -> np.ndarray:
    """The gray levels of a class mask as uint8. A 16-bit mask whose levels are 8-bit levels
    times 257 (what converting an 8-bit mask to 16 bits does) is read as those levels, with a
    warning; any other level above 255 is refused (never clipped into another class)."""
    from PIL import Image
    try:
        with Image.open(path) as im:
            im.load()
            arr = np.asarray(im if im.mode.startswith(("I", "F")) else im.convert("L"))
    except OSError as e:
        raise ValueError(f"{path}: unreadable mask ({e})") from None
    if arr.ndim != 2:
        raise ValueError(f"{path}: a class mask must be one gray channel, got shape {arr.shape}")
    if arr.dtype == np.uint8:
        return arr
    values = np.unique(arr)
    if not np.array_equal(values, np.round(values)) or values.min() < 0:
        raise ValueError(f"{path}: gray levels must be non-negative integers, found {values[:8].tolist()}")
    if values.max() <= 255:
        return arr.astype(np.uint8)
    if np.all(values % 257 == 0):
        warnings.warn(f"{path}: a 16-bit mask with levels {values.tolist()[:8]}, 257 times 8-bit levels; read as "
                      f"{(values // 257).tolist()[:8]}", stacklevel=3)
        return (arr // 257).astype(np.uint8)
    raise ValueError(f"{path}: gray levels above 255 ({values[values > 255][:8].tolist()}) that are not 8-bit levels "
                     "x 257; save the mask with the class levels themselves (8-bit)")


def read_graymask(root, classes: ClassSet, images_dir=None, masks_dir=None, connectivity: int = 2) -> list[Sample]:
    root = Path(root)
    images_dir = Path(images_dir) if images_dir else root / "images"
    masks_dir = Path(masks_dir) if masks_dir else root / "masks"
    samples = []
    for img_path in list_images(images_dir):
        mask_path = find_image(masks_dir, img_path.stem)
        image, scale = read_image_with_scale(img_path)
        gray = _read_gray_mask(mask_path)
        if gray.shape != image.shape:
            raise ValueError(f"{mask_path}: mask is {gray.shape[1]}x{gray.shape[0]} but image "
                             f"{img_path.name} is {image.shape[1]}x{image.shape[0]}")
        samples.append(Sample(image, instances_from_gray(gray, classes, str(mask_path), connectivity),
                              source_id=img_path.stem, nm_per_px=scale, name=img_path.stem,
                              meta={"file": str(img_path)}))
    return samples


# ----------------------------------------------------------------------------- the format
NAME, NEEDS_CLASSES = "graymask", True
DESCRIPTION = "masks/NAME.png (gray-level class masks) + images/"


def detect(root: Path) -> bool:
    return root.is_dir() and (root / "masks").is_dir()


def read(root: Path, classes=None, images_dir=None) -> Dataset:
    if classes is None:
        raise needs_classes(root, "gray-level masks (masks/*.png) give gray levels that",
                            "gray levels (85 <100> loop, 170 1/2<111> loop, 255 black dot)")
    return Dataset(read_graymask(root, classes, images_dir), classes, root, NAME)
