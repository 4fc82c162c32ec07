"""Reading and writing single micrograph images.

Ordinary image files (PNG, JPEG, BMP) go through Pillow, TIFF through tifffile, and
microscope files (Gatan DM3/DM4, Velox/NCEM EMD, FEI/TIA SER) through rosettasciio, which
also gives the pixel size from the file's calibration (``read_image_with_scale``).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..utils import atomic_path

PLAIN_SUFFIXES = (".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp")
MICROSCOPE_SUFFIXES = (".dm3", ".dm4", ".emd", ".ser")
IMAGE_SUFFIXES = PLAIN_SUFFIXES + MICROSCOPE_SUFFIXES
# length unit of a calibration -> nm
_UNIT_NM = {"nm": 1.0, "µm": 1e3, "um": 1e3, "μm": 1e3, "micron": 1e3, "å": 0.1, "a": 0.1, "angstrom": 0.1,
            "pm": 1e-3, "mm": 1e6, "m": 1e9}


def _rsciio_reader(suffix: str):
    import importlib
    module = {".dm3": "digitalmicrograph", ".dm4": "digitalmicrograph", ".emd": "emd", ".ser": "tia",
              ".tif": "tiff", ".tiff": "tiff"}[suffix]
    try:
        return importlib.import_module(f"rsciio.{module}").file_reader
    except ImportError as e:
        raise ImportError(f"reading {suffix} files needs rosettasciio ({e}); pip install rosettasciio") from None


def _scale_nm(axes) -> float | None:
    """nm per pixel of the last (x) axis of a rosettasciio signal, if it is a length."""
    if not axes:
        return None
    ax = axes[-1]
    unit = str(ax.get("units") or "").strip().lower()
    factor = _UNIT_NM.get(unit)
    scale = ax.get("scale")
    if factor is None or not scale or not np.isfinite(scale) or scale <= 0:
        return None
    return float(scale) * factor


def _read_microscope(path: Path) -> tuple[np.ndarray, float | None]:
    try:
        signals = _rsciio_reader(path.suffix.lower())(str(path))
    except (OSError, ValueError, KeyError, IndexError, TypeError, NotImplementedError) as e:
        raise ValueError(f"{path}: unreadable microscope file ({type(e).__name__}: {e})") from None
    images = [s for s in signals if np.asarray(s["data"]).ndim == 2]
    if not images:
        shapes = [np.asarray(s["data"]).shape for s in signals]
        raise ValueError(f"{path}: no single 2-D image in the file (signals of shape {shapes}); "
                         "tem_lib reads one 2-D micrograph per file: export one frame of a stack or spectrum image")
    sig = images[0]
    return np.asarray(sig["data"]), _scale_nm(sig.get("axes"))


def _read_tiff(path: Path) -> tuple[np.ndarray, float | None]:
    import tifffile
    try:
        arr = tifffile.imread(path)
    except tifffile.TiffFileError as e:
        if path.stat().st_size == 0:
            raise ValueError(f"{path}: empty file (0 bytes)") from None
        try:  # another format under a .tif name (a PNG saved as .tif): read by its content, and say so
            with Image.open(path) as im:
                kind = im.format
        except (UnidentifiedImageError, OSError):
            raise ValueError(f"{path}: not a TIFF file ({e})") from None
        import warnings
        warnings.warn(f"{path}: named .tif but is a {kind} file; read as {kind}", stacklevel=3)
        with Image.open(path) as im:
            im.load()
            return np.asarray(im.convert("L") if im.mode not in ("L", "I;16", "I", "F") else im), None
    scale = None
    try:  # ImageJ, DM-exported, FEI and Zeiss TIFFs carry their calibration: rosettasciio reads it
        sig = _rsciio_reader(".tif")(str(path))[0]
        if np.asarray(sig["data"]).shape == arr.shape:
            scale = _scale_nm(sig.get("axes"))
    except Exception:  # noqa: BLE001 - the calibration is optional; the pixels are what count
        scale = None
    return arr, scale


def read_image_with_scale(path) -> tuple[np.ndarray, float | None]:
    """Grayscale image as float32 [H, W] in [0, 1], and the pixel size in nm (None if the
    file does not record one).

    8-bit images are divided by 255 (contrast kept as recorded); 16-bit, 32-bit and float
    images (TIFF, microscope files) are min-max normalised. RGB images of a grayscale
    micrograph are reduced to gray. Unreadable files, stacks, empty or non-finite images raise
    ``ValueError`` naming the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: image not found")
    suffix = path.suffix.lower()
    scale = None
    try:
        if suffix in MICROSCOPE_SUFFIXES:
            arr, scale = _read_microscope(path)
        elif suffix in (".tif", ".tiff"):
            arr, scale = _read_tiff(path)
        else:
            with Image.open(path) as im:
                im.load()
                if im.format == "PNG":
                    _check_png_data(path, im)
                if im.mode in ("CMYK", "YCbCr", "LAB", "HSV"):  # print colour spaces: through RGB, not band by band
                    im = im.convert("RGB")
                arr = np.asarray(im.convert("L") if im.mode in ("RGB", "RGBA", "P", "LA", "PA", "RGBX") else im)
    except Image.DecompressionBombError as e:
        raise ValueError(f"{path}: the image header claims more pixels than PIL will decode ({e}); a corrupt "
                         "header, or a real image too large to read whole: set PIL.Image.MAX_IMAGE_PIXELS higher "
                         "if you trust it") from None
    except (UnidentifiedImageError, OSError) as e:
        raise ValueError(f"{path}: unreadable image ({e})") from None
    if arr.ndim == 3:
        if arr.shape[-1] in (3, 4):
            arr = arr[..., :3].astype(np.float64) @ np.array([0.299, 0.587, 0.114])
        elif arr.shape[0] == 1:
            arr = arr[0]
        else:
            raise ValueError(f"{path}: expected a 2-D grayscale image, got shape {arr.shape}")
    if arr.ndim != 2 or arr.size == 0:
        raise ValueError(f"{path}: expected a 2-D grayscale image, got shape {arr.shape}")
    if arr.dtype == np.uint8:
        return arr.astype(np.float32) / 255.0, scale
    if arr.dtype == bool:
        return arr.astype(np.float32), scale
    if np.iscomplexobj(arr):
        raise ValueError(f"{path}: complex-valued image (an FFT or exit wave?); export its amplitude first")
    arr = arr.astype(np.float32)
    bad = int((~np.isfinite(arr)).sum())
    if bad:  # NaN would reach training as a NaN loss, far from its cause
        raise ValueError(f"{path}: image has {bad} non-finite pixel(s) (NaN or inf); fill or crop them first")
    lo, hi = float(arr.min()), float(arr.max())
    return ((arr - lo) / (hi - lo) if hi > lo else np.zeros_like(arr)), scale


def _check_png_data(path: Path, im) -> None:
    """A PNG whose compressed data hold fewer rows than its header claims is refused (Pillow
    fills the missing rows with zeros without a word)."""
    import struct
    import zlib
    if im.info.get("interlace"):
        return  # Adam7: rows are not stored in order; Pillow's own checks are what there is
    data = path.read_bytes()
    pos, idat = 8, []
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        if kind == b"IDAT":
            idat.append(data[pos + 8:pos + 8 + length])
        if kind == b"IEND":
            break
        pos += 12 + length
    width, height = struct.unpack(">II", data[16:24])
    depth, colour = data[24], data[25]
    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}.get(colour, 1)
    row = 1 + -(-width * depth * channels // 8)
    try:
        raw = zlib.decompressobj().decompress(b"".join(idat), height * row + 1)
    except zlib.error as e:
        raise ValueError(f"{path}: corrupt PNG data ({e})") from None
    if len(raw) < height * row:
        raise ValueError(f"{path}: truncated PNG: its header claims {width} x {height} px, its data hold "
                         f"{len(raw) // row} of the {height} rows; re-export the image")


def read_image(path) -> np.ndarray:
    """Grayscale image as float32 [H, W] in [0, 1] (see :func:`read_image_with_scale`)."""
    return read_image_with_scale(path)[0]


def to_uint8(image: np.ndarray) -> np.ndarray:
    if image.dtype == np.uint8:
        return image
    return np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)


def write_png(path, array: np.ndarray) -> None:
    """Write a 2-D uint8 (or [0, 1] float) array as an 8-bit PNG, atomically."""
    with atomic_path(path) as tmp:
        Image.fromarray(to_uint8(array)).save(tmp, format="PNG")


def find_image(images_dir: Path, stem: str) -> Path:
    for suf in IMAGE_SUFFIXES:
        for cand in (images_dir / f"{stem}{suf}", images_dir / f"{stem}{suf.upper()}"):
            if cand.is_file():
                return cand
    raise FileNotFoundError(f"{images_dir}: no image named {stem!r} with suffix {IMAGE_SUFFIXES}")


def list_images(images_dir: Path, recursive: bool = False) -> list[Path]:
    if not images_dir.is_dir():
        raise FileNotFoundError(f"{images_dir}: image folder not found")
    found = images_dir.rglob("*") if recursive else images_dir.iterdir()
    files = sorted(p for p in found if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ValueError(f"{images_dir}: empty dataset (no image with suffix {IMAGE_SUFFIXES})")
    return files
