"""Tiling micrographs into crops with consistently clipped instance masks."""
from __future__ import annotations

from .sample import Sample


def tile_starts(length: int, size: int, stride: int) -> list[int]:
    """Window starts covering [0, length); the last window is moved back to end at the edge."""
    if length <= size:
        return [0]
    starts = list(range(0, length - size + 1, stride))
    if starts[-1] + size < length:
        starts.append(length - size)
    return starts


def tile_sample(sample: Sample, size: int = 256, stride: int | None = None,
                min_area: int = 12) -> list[Sample]:
    """Cut ``sample`` into ``size`` x ``size`` crops (``stride`` defaults to ``size``: no
    overlap except at the far edges). Instances are clipped to each crop; clipped parts
    smaller than ``min_area`` pixels are dropped (slivers at the crop border that neither an
    annotator nor a detector could recognise). The image must be at least ``size`` pixels
    in both directions.
    """
    stride = stride or size
    H, W = sample.shape
    if H < size or W < size:
        raise ValueError(f"{sample.name}: image {W}x{H} is smaller than the crop size {size}")
    crops = []
    for y0 in tile_starts(H, size, stride):
        for x0 in tile_starts(W, size, stride):
            insts = [c for c in (i.crop(x0, y0, x0 + size, y0 + size) for i in sample.instances)
                     if c is not None and c.area >= min_area]
            crops.append(Sample(sample.image[y0:y0 + size, x0:x0 + size].copy(), insts,
                                source_id=sample.source_id, nm_per_px=sample.nm_per_px,
                                name=f"{sample.name}@y{y0}x{x0}",
                                origin=(sample.origin[0] + x0, sample.origin[1] + y0),
                                layers={k: v[y0:y0 + size, x0:x0 + size].copy() for k, v in sample.layers.items()}))
    return crops


def tile_dataset(samples: list[Sample], size: int = 256, stride: int | None = None,
                 min_area: int = 12) -> list[Sample]:
    """All crops of all samples, in order; crop names are ``NAME@yY0xX0``. The crops of a
    :class:`~tem_lib.data.Dataset` are a Dataset with the same class set."""
    from .io import Dataset
    crops = [c for s in samples for c in tile_sample(s, size, stride, min_area)]
    if isinstance(samples, Dataset):
        return Dataset(crops, samples.classes, samples.root, samples.format)
    return crops
