"""A folder of micrographs being labelled with a detector's help: which micrographs it holds
(labelled or not), the proposals for each, journals of the work in progress, and the saved
versions of the labels.

    project = LabelProject("my_micrographs/", model="runs/quick/work/models/best")
    project.rank()                      # unlabelled micrographs, the most informative first
    s = project.open("m07")             # its shapes: the detector's proposals (and labels)
    s.accept(3); s.reject(4); s.draw_polygon([[10, 10], [30, 12], [20, 30]], class_id=2)
    project.save()                      # -> my_micrographs/label_assist/annotations.json

Nothing in the user's folder is overwritten: everything goes to ``label_assist/`` inside it
(or ``out_dir``): ``annotations.json`` (the latest labels, a COCO file that
:func:`tem_lib.data.load_dataset` and ``./run_all.sh --data`` read), ``annotations-v001.json``
... (every save, never replaced), ``metadata.json`` (the class set), ``journal/<image>.json``
(each micrograph's shapes and edits, rewritten after every edit) and ``proposals/`` (the
detector's output per micrograph, computed once per model).
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from ..classes import ClassSet, resolve_classes
from ..data.sample import Sample
from ..layout import DATASET_META, LABEL_ASSIST
from ..utils import read_json, stable_hash, write_json
from .proposals import ProposalSource, uncertainty
from .session import ImageSession
from .shapes import mask_shape

SAVED = "annotations.json"
MARK = "tem_lib label_assist"  # the saved file's info.description: what tells it from a user's file


class LabelProject:
    """The micrographs of ``folder`` (a labelled dataset :func:`~tem_lib.data.load_dataset`
    reads, whose images without labels are the unlabelled ones, or a folder of images) and
    their labelling. ``model``: a model folder of :mod:`tem_lib.quantify` whose detections are
    the proposals; or ``proposals``: the output folder of a quantify run on these images.
    ``classes``: the class set when neither the folder nor the model declares one.
    ``predict``: a stand-in for the model's detector (tests), as :func:`tem_lib.quantify.quantify`
    takes."""

    def __init__(self, folder, model=None, proposals=None, classes=None, out_dir=None, device="cpu",
                 nm_per_px: float | None = None, predict=None):
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise FileNotFoundError(f"{self.folder}: no such folder of micrographs")
        self.labels: dict[str, Sample] = {}
        self.images: dict[str, dict] = {}  # name -> {"file", "labelled", "error"}
        data_classes = self._read_folder(resolve_classes(classes) if classes is not None else None)
        self.source = ProposalSource.make(model, proposals, device, predict) if (model or proposals) else None
        self.classes = self._classes(data_classes, resolve_classes(classes) if classes is not None else None)
        self.nm_per_px = nm_per_px  # given: every micrograph's pixel size
        self.default_nm_per_px = self._labelled_pixel_size()
        self.out = Path(out_dir) if out_dir is not None else self.folder / LABEL_ASSIST
        self._check_out()
        self.sessions: dict[str, ImageSession] = {}
        self._cache: dict[str, np.ndarray] = {}

    # ---------------------------------------------------------------- reading
    def _read_folder(self, classes: ClassSet | None) -> ClassSet | None:
        from ..data.images import IMAGE_SUFFIXES
        from ..data.io import detect_format, load_dataset
        try:
            detect_format(self.folder)
            labelled = True
        except ValueError:
            labelled = False
        dirs = {self.folder, self.folder / "images"}
        data_classes = None
        if labelled:
            ds = load_dataset(self.folder, classes=classes)
            data_classes = ds.classes
            for s in ds:
                f = Path(s.meta.get("file", self.folder / s.name))
                self.labels[s.name] = s
                self.images[s.name] = {"file": f, "labelled": True, "error": None}
                dirs.add(f.parent)
        out = self.folder / LABEL_ASSIST
        known = {v["file"].resolve() for v in self.images.values()}
        for d in sorted(dirs):
            if not d.is_dir() or d == out:
                continue
            for f in sorted(p for p in d.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES):
                if f.resolve() in known:
                    continue
                name = f.stem
                if name in self.images:
                    warnings.warn(f"{f}: another image is named {name!r} already ({self.images[name]['file']}); "
                                  "left out: rename one", stacklevel=3)
                    continue
                self.images[name] = {"file": f, "labelled": False, "error": None}
                known.add(f.resolve())
        if not self.images:
            raise ValueError(f"{self.folder}: no micrographs (images with suffix {sorted(IMAGE_SUFFIXES)}, "
                             "in the folder, its images/ or a labelled dataset's image folder)")
        return data_classes

    def _classes(self, data: ClassSet | None, given: ClassSet | None) -> ClassSet:
        model = self.source.classes if self.source is not None else None
        if data is not None and model is not None and not data.matches(model):
            raise ValueError(f"{self.source.where}: the model's classes {list(zip(model.ids, model.names))} differ "
                             f"from the dataset's {list(zip(data.ids, data.names))} ({self.folder}); its proposals "
                             "would carry the wrong classes: use a model trained on this class set, or label "
                             "without proposals (model=None)")
        if given is not None and model is not None and not given.matches(model):
            raise ValueError(f"{self.source.where}: the model's classes {list(zip(model.ids, model.names))} differ "
                             f"from classes= {list(zip(given.ids, given.names))}")
        classes = data or model or given
        if classes is None:
            raise ValueError(f"{self.folder}: no class set: the folder has no labels and no model was given; pass "
                             "classes= (a preset such as 'fecral', or a list of names)")
        return classes

    def _check_out(self) -> None:
        saved = self.out / SAVED
        if saved.is_file():
            try:
                ours = read_json(saved).get("info", {}).get("description") == MARK
            except (ValueError, OSError, AttributeError):
                ours = False
            if not ours:
                raise ValueError(f"{saved}: this file is not one label_assist wrote (your own labels?); it is never "
                                 "overwritten: give another out_dir")
        try:
            (self.out / "journal").mkdir(parents=True, exist_ok=True)
            probe = self.out / f".write-probe-{os.getpid()}"
            probe.write_text("")
            probe.unlink()
        except OSError as e:
            raise PermissionError(f"{self.out}: cannot write the labels here ({e.strerror or e}); make the folder "
                                  "writable, or pass out_dir= a writable folder (then load the saved labels with "
                                  f"load_dataset(<out_dir>/{SAVED}, images_dir=<the images' folder>))") from None
        meta = self.out / DATASET_META
        if not meta.is_file():
            write_json(meta, {"classes": self.classes.to_dict(), "made_by": MARK, "folder": str(self.folder)})

    # ---------------------------------------------------------------- micrographs
    def names(self) -> list[str]:
        return list(self.images)

    def image(self, name: str) -> np.ndarray:
        """The micrograph (float32 in [0, 1]); an unreadable file raises ``ValueError`` naming
        it, and is marked so (``status()`` shows why)."""
        if name not in self.images:
            raise KeyError(f"{self.folder}: no micrograph {name!r}; there are {self.names()[:8]}")
        if name in self.labels:
            return self.labels[name].image
        if name not in self._cache:
            from ..data.images import read_image_with_scale
            try:
                img, nm = read_image_with_scale(self.images[name]["file"])
            except (ValueError, OSError) as e:
                self.images[name]["error"] = str(e)
                raise ValueError(f"{self.images[name]['file']}: cannot be read ({e})") from None
            self.images[name]["nm_per_px"] = nm
            self._cache = {name: img}  # one micrograph held at a time
        return self._cache[name]

    def _labelled_pixel_size(self) -> float | None:
        """The labelled micrographs' pixel size when they all record the same one: what an
        unlabelled image of the folder that records none is taken to have (said once), so that
        the saved set does not mix micrographs with and without a pixel size."""
        sizes = {s.nm_per_px for s in self.labels.values()}
        if len(sizes) == 1 and None not in sizes and not self.nm_per_px:
            return sizes.pop()
        return None

    def pixel_size(self, name: str) -> float | None:
        """``nm_per_px`` if given; else a labelled micrograph's own, an image file's own
        (microscope files, calibrated TIFFs), or the labelled micrographs' common one."""
        if self.nm_per_px:
            return self.nm_per_px
        if name in self.labels:
            return self.labels[name].nm_per_px
        if "nm_per_px" not in self.images[name]:
            self.image(name)
        own = self.images[name].get("nm_per_px")
        if own is None and self.default_nm_per_px is not None:
            if not getattr(self, "_said_pixel", False):
                warnings.warn(f"{self.folder}: images without a pixel size are taken to have the labelled "
                              f"micrographs' {self.default_nm_per_px:g} nm/px (pass nm_per_px= to say otherwise)",
                              stacklevel=3)
                self._said_pixel = True
            return self.default_nm_per_px
        return own

    def _journal(self, name: str) -> Path:
        return self.out / "journal" / f"{name}.json"

    def open(self, name: str) -> ImageSession:
        """The micrograph's shapes: from its journal when work on it was started (a dead kernel
        loses nothing), else its labels and the detector's proposals (on a labelled micrograph,
        those that overlap no label: candidates the labeller missed)."""
        if name in self.sessions:
            return self.sessions[name]
        image = self.image(name)
        j = self._journal(name)
        if j.is_file():
            s = ImageSession.from_journal(j, self.classes)
            if tuple(s.image_hw) != image.shape:
                raise ValueError(f"{j}: the journal is for a {s.image_hw[1]} x {s.image_hw[0]} image, "
                                 f"{self.images[name]['file']} is {image.shape[1]} x {image.shape[0]}; move the "
                                 "journal away to start this micrograph over")
        else:
            s = self.fresh(name, journal=j)
            s.write_journal()
        self.sessions[name] = s
        return s

    def fresh(self, name: str, journal: Path | None = None) -> ImageSession:
        """The micrograph as it starts: its labels and the detector's proposals (on a labelled
        micrograph, those that overlap no label); ``journal=None``: a session that writes nothing
        (what a benchmark edits)."""
        image = self.image(name)
        shapes = [mask_shape(inst, image.shape, k, "labelled")
                  for k, inst in enumerate(self.labels[name].instances)] if name in self.labels else []
        source = ""
        if self.source is not None:
            det = self.source.proposals(name, self.images[name]["file"], image, self.pixel_size(name), self.out)
            shapes += self.source.to_shapes(det, image.shape, self.labels.get(name), start=len(shapes))
            source = self.source.where
        return ImageSession(name, image.shape, self.classes, shapes, journal, str(self.images[name]["file"]),
                            source=source)

    # ---------------------------------------------------------------- ranking
    def rank(self, progress: bool = False):
        """The unlabelled micrographs not yet done, most informative first: by the detector's
        uncertainty (the summed binary entropy of its detection scores, in bits; a micrograph
        full of 0.5-scored detections teaches most), with its count of proposals. Needs a
        model or a quantify output; computed once per micrograph and model (cached)."""
        import pandas as pd
        from tqdm import tqdm
        if self.source is None:
            raise ValueError("ranking needs the detector: open the project with model= or proposals=")
        rows = []
        todo = [n for n, v in self.images.items() if not v["labelled"] and not self.is_done(n)]
        for name in tqdm(todo, desc="ranking", disable=not progress):
            try:
                image = self.image(name)
            except ValueError as e:
                rows.append({"image": name, "uncertainty": np.nan, "n_proposals": 0, "error": str(e)})
                continue
            det = self.source.proposals(name, self.images[name]["file"], image, self.pixel_size(name), self.out)
            rows.append({"image": name, "uncertainty": round(uncertainty(det.scores), 3),
                         "n_proposals": int(self.source.kept(det).sum()), "n_detections": len(det),
                         "megapixels": round(image.size / 1e6, 2), "error": None})
        table = pd.DataFrame(rows, columns=["image", "uncertainty", "n_proposals", "n_detections", "megapixels", "error"])
        return table.sort_values("uncertainty", ascending=False, na_position="last").reset_index(drop=True)

    # ---------------------------------------------------------------- saving
    def is_done(self, name: str) -> bool:
        if name in self.sessions:
            return self.sessions[name].done
        j = self._journal(name)
        if j.is_file():
            try:
                return bool(read_json(j).get("done"))
            except (ValueError, OSError):
                return False
        return False

    def status(self):
        """One row per micrograph: labelled (before), done, edits so far, unreadable (why)."""
        import pandas as pd
        rows = []
        for name, v in self.images.items():
            s = self.sessions.get(name)
            rows.append({"image": name, "file": str(v["file"]), "labelled": v["labelled"], "done": self.is_done(name),
                         "edits": len(s.edits) if s else None, "error": v["error"]})
        return pd.DataFrame(rows)

    def labelled_samples(self) -> list[Sample]:
        """What :meth:`save` writes: every micrograph labelled before (as edited, if it was) and
        every one marked done, as image-less samples (the saved file points at the images)."""
        out = []
        for name, v in self.images.items():
            session = self.sessions.get(name)
            if session is None and self._journal(name).is_file():
                session = ImageSession.from_journal(self._journal(name), self.classes)
            if session is not None and (session.done or v["labelled"]):
                instances, hw = session.instances(), session.image_hw
            elif v["labelled"]:
                instances, hw = self.labels[name].instances, self.labels[name].shape
            else:
                continue
            nm = self.pixel_size(name)
            blank = np.broadcast_to(np.float32(0), tuple(hw))
            out.append(Sample(blank, list(instances), source_id=name, nm_per_px=nm, name=name, meta={"file": v["file"]}))
        return out

    def save(self) -> Path:
        """Write the labels: a new ``annotations-vNNN.json`` (never replaced) and
        ``annotations.json`` (the latest), each atomically; returns the latest's path. Image
        file names are relative to the images' folder, which the COCO reader finds from
        ``label_assist/`` (with an ``out_dir`` elsewhere, pass ``images_dir=`` the folder recorded
        in the file's ``info.images_dir``)."""
        from ..data.io import to_coco
        samples = self.labelled_samples()
        if not samples:
            raise ValueError(f"{self.folder}: nothing to save yet: no micrograph is labelled or marked done")
        coco = to_coco(samples, self.classes)
        from ..data.readers import COCO_IMAGE_DIRS
        root = Path(os.path.commonpath([str(Path(s.meta["file"]).resolve().parent) for s in samples]))
        out = self.out.resolve()
        found = {(base / sub).resolve() for base in (out, out.parent) for sub in COCO_IMAGE_DIRS}
        if root not in found and out.parent == self.folder.resolve():
            root = self.folder.resolve()  # images in several folders under the user's: paths from it
        for img, s in zip(coco["images"], samples):
            img["file_name"] = Path(s.meta["file"]).resolve().relative_to(root).as_posix()
            img.pop("origin", None)
            if img.get("nm_per_px") is None:
                img.pop("nm_per_px", None)
        coco["info"] = {"description": MARK, "images_dir": str(root), "model": self.source.where if self.source else None,
                        "key": stable_hash([i["file_name"] for i in coco["images"]])}
        k = 1 + max([int(p.stem.rsplit("-v", 1)[1]) for p in self.out.glob("annotations-v*.json")
                     if p.stem.rsplit("-v", 1)[1].isdigit()] + [0])
        version = self.out / f"annotations-v{k:03d}.json"
        write_json(version, coco, indent=None)
        write_json(self.out / SAVED, coco, indent=None)
        return self.out / SAVED
