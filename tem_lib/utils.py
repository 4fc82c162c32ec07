"""Small shared helpers: seeding, device choice, config dataclasses, atomic writes, provenance."""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import shutil
import subprocess
import tempfile
from importlib import metadata
from pathlib import Path

import numpy as np

PROVENANCE_PACKAGES = ("tem_lib", "numpy", "scipy", "scikit-image", "torch", "torchvision",
                       "diffusers", "pycocotools")


def seed_everything(seed: int, deterministic: bool = False) -> np.random.Generator:
    """Seed python, numpy and torch; return a numpy Generator for explicit use.

    ``deterministic=True`` switches torch to deterministic kernels (slower), as diffusers'
    ``enable_full_determinism`` does.
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)
    try:
        import torch
        torch.manual_seed(seed)
        if deterministic:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.use_deterministic_algorithms(True)
            torch.backends.cudnn.benchmark = False
    except ImportError:
        pass
    return np.random.default_rng(seed)


SEED_STRIDE = 1_000_003  # a prime: streams of neighbouring seeds never collide for < 1e6 indices


_STREAMS: dict[int, str] = {}  # stream index -> who declared it


def declare_stream(name: str, index: int) -> int:
    """Declare a named random stream of :func:`derive_seed` where it is used (a strategy's
    placements, its sampling noise): ``PLACES = declare_stream("copy_paste.places", 11)``. The
    index is fixed forever (changing it changes every result drawn from it); two names claiming
    one index raise at import, so two strategies never draw the same numbers."""
    index = int(index)
    if _STREAMS.setdefault(index, name) != name:
        raise ValueError(f"random stream {index} declared by {_STREAMS[index]!r} and again by {name!r}")
    return index


class Stream:
    """The library's own named streams (``derive_seed(seed, Stream.SIZE_BOOTSTRAP)``); each
    augmentation strategy declares its own in its module (:func:`declare_stream`). (Simulated
    images, annotations and splits use numpy's ``default_rng([seed, i])`` per item instead, a rule
    kept so that datasets made before stay byte-identical.)"""
    TRAINING_NOISE_BOOTSTRAP = declare_stream("analysis.training_noise_bootstrap", 101)  # seeds resampled in gains
    SIZE_BOOTSTRAP = declare_stream("quantify.size_bootstrap", 211)  # defects resampled for quantify's size intervals


def derive_seed(seed: int, index: int = 0) -> int:
    """The project's one rule for sub-seeds: stream ``index`` (an image, a step, an epoch) of
    ``seed`` is ``seed * 1_000_003 + index``. Everything seeded per item uses it, so a resumed or
    chunked run draws exactly what an uninterrupted one would."""
    return int(seed) * SEED_STRIDE + int(index)


def torch_generator(seed: int, index: int = 0, device="cpu"):
    """A ``torch.Generator`` on ``device`` seeded with :func:`derive_seed`."""
    import torch
    return torch.Generator(device).manual_seed(derive_seed(seed, index))


def _tuple(x):
    """Lists (from JSON/YAML) to tuples, nested ones too, so configs hash and compare alike."""
    return tuple(_tuple(v) for v in x) if isinstance(x, (list, tuple)) else x


def from_dict(klass, d: dict | None, where: str = "config"):
    """``klass(**d)`` for a config dataclass, from a (partial) dict such as a profile section:
    unknown keys raise ``ValueError`` naming ``where`` and the known keys; lists become tuples."""
    import dataclasses
    d = dict(d or {})
    names = {f.name for f in dataclasses.fields(klass)}
    bad = set(d) - names
    if bad:
        raise ValueError(f"{where}: unknown keys {sorted(bad)}; known: {sorted(names)}")
    return klass(**{k: _tuple(v) for k, v in d.items()})


def get_device(device: str = "auto"):
    """``"auto"`` -> cuda, then mps, then cpu; anything else is passed to ``torch.device``."""
    import torch
    if device != "auto":
        try:
            dev = torch.device(device)
        except (RuntimeError, TypeError) as e:
            raise ValueError(f"device {device!r} is not a device torch knows ('auto', 'cpu', 'cuda', 'cuda:1', "
                             f"'mps'): {e}") from None
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device {device!r}: this torch sees no CUDA GPU; use 'cpu' or 'auto'")
        return dev
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike):
    """Yield an empty folder beside ``path`` to fill; if the block succeeds it replaces
    ``path`` (the old one is swapped out and removed), so ``path`` is complete or absent."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = path.with_name(f".{path.name}.old")
    if path.exists():
        os.replace(path, old)
    os.replace(tmp, path)
    shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary path beside ``path``; move it into place only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        if os.path.isfile(tmp):  # mkstemp makes 0600 files: give the usual permissions
            os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json(path, obj, indent: int = 1) -> None:
    """Write JSON atomically (sorted keys, so equal content gives equal bytes)."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=indent, sort_keys=True, default=_json_default) + "\n")


def write_text(path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    from collections.abc import Mapping
    if isinstance(o, Mapping):  # e.g. a sweep's Run
        return dict(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def read_json(path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from None
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not UTF-8 text (byte {e.start}); JSON files are UTF-8") from None
    except RecursionError:
        raise ValueError(f"{path}: JSON nested too deeply to read (arrays or objects inside each other "
                         "thousands of levels deep)") from None
    except ValueError as e:  # e.g. an integer of more than 4300 digits
        raise ValueError(f"{path}: unreadable JSON ({e})") from None


def stable_hash(obj) -> str:
    """Short content hash of a JSON-serialisable object (key order does not matter)."""
    s = json.dumps(obj, sort_keys=True, default=_json_default)
    return hashlib.sha256(s.encode()).hexdigest()[:16]


def provenance() -> dict:
    """Package versions and git revision, stored next to every artifact."""
    versions = {}
    for name in PROVENANCE_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=5, cwd=Path(__file__).parent).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        rev = None
    return {"versions": versions, "git_revision": rev}
