"""One micrograph being labelled: its shapes, the edits made to them, and a journal on disk
written after every edit, so a kernel that dies loses nothing."""
from __future__ import annotations

import time
from pathlib import Path

from ..utils import read_json, write_json
from .shapes import KEPT, check_shape, to_instance

ACTIONS = ("accept", "reject", "relabel", "delete", "draw", "restore")


class ImageSession:
    """The shapes of one micrograph and what the user did to them.

    Every edit is one of :data:`ACTIONS` on one shape (what ``benchmarks/label_assist.py``
    counts): ``accept`` / ``reject`` a proposal, ``relabel`` (a proposal or a defect gets another
    class; a proposal relabelled is accepted), ``delete`` (a drawn, accepted or existing defect
    removed; a proposal deleted is rejected), ``draw`` (a polygon or an ellipse), ``restore``
    (back to what it was before the user touched it). After each the journal is rewritten
    atomically; ``done`` marks the micrograph as labelled (it goes into the saved file).
    """

    def __init__(self, name: str, image_hw, classes, shapes: list[dict], journal: Path | None,
                 file: str = "", done: bool = False, edits: list | None = None, source: str = ""):
        self.name, self.image_hw, self.classes, self.file = name, tuple(int(v) for v in image_hw), classes, file
        self.journal, self.done, self.source = journal, bool(done), source
        self.shapes = {int(s["id"]): check_shape(s, classes.ids, self.image_hw, f"{name}") for s in shapes}
        self._original = {k: (s["status"], s["class_id"]) for k, s in self.shapes.items()}
        self.edits = list(edits or [])
        self.journal_error: str | None = None

    # ---------------------------------------------------------------- edits
    def _shape(self, sid) -> dict:
        try:
            return self.shapes[int(sid)]
        except (KeyError, TypeError, ValueError):
            raise KeyError(f"{self.name}: no shape {sid!r}") from None

    def _class(self, class_id) -> int:
        if isinstance(class_id, bool) or not isinstance(class_id, int) or class_id not in self.classes.ids:
            raise ValueError(f"{self.name}: class {class_id!r} is not in the class set {list(self.classes.ids)} "
                             f"({', '.join(self.classes.names)})")
        return class_id

    def _log(self, action: str, sid: int, **extra) -> None:
        self.edits.append({"action": action, "id": int(sid), "t": round(time.time(), 3), **extra})
        self.write_journal()

    def accept(self, sid) -> None:
        s = self._shape(sid)
        if s["status"] not in ("proposed", "rejected"):
            return  # already a defect: nothing to do, nothing counted
        s["status"] = "accepted"
        self._log("accept", sid)

    def reject(self, sid) -> None:
        """A proposal is not a defect (a drawn shape or an existing label: :meth:`delete`)."""
        s = self._shape(sid)
        if "score" not in s:
            return self.delete(sid)
        if s["status"] == "rejected":
            return
        s["status"] = "rejected"
        self._log("reject", sid)

    def relabel(self, sid, class_id: int) -> None:
        s = self._shape(sid)
        class_id = self._class(class_id)
        if s["class_id"] == class_id and s["status"] not in ("proposed", "rejected"):
            return
        s["class_id"] = class_id
        if s["status"] in ("proposed", "rejected"):
            s["status"] = "accepted"
        self._log("relabel", sid, class_id=class_id)

    def delete(self, sid) -> None:
        """A drawn shape or an existing label removed (a proposal: :meth:`reject`)."""
        s = self._shape(sid)
        if "score" in s:
            return self.reject(sid)
        if s["status"] == "deleted":
            return
        s["status"] = "deleted"
        self._log("delete", sid)

    def restore(self, sid) -> None:
        """Back to what the shape was when the micrograph was opened (a drawn one: deleted)."""
        s = self._shape(sid)
        status, cid = self._original.get(int(sid), ("deleted", s["class_id"]))
        if (s["status"], s["class_id"]) == (status, cid):
            return
        s["status"], s["class_id"] = status, cid
        self._log("restore", sid)

    def _draw(self, shape: dict, sid: int | None) -> int:
        sid = int(sid) if sid is not None else self.next_id()
        if sid in self.shapes:
            raise ValueError(f"{self.name}: shape id {sid} is taken")
        shape = check_shape({"id": sid, "status": "drawn", **shape}, self.classes.ids, self.image_hw, self.name)
        if to_instance(shape, self.image_hw) is None:
            raise ValueError(f"{self.name}: the {shape['kind']} drawn covers no pixel of the image")
        self.shapes[sid] = shape
        self._log("draw", sid, kind=shape["kind"])
        return sid

    def draw_polygon(self, points, class_id: int, sid: int | None = None) -> int:
        pts = [[round(float(x), 2), round(float(y), 2)] for x, y in points]
        return self._draw({"kind": "polygon", "class_id": self._class(class_id), "points": pts}, sid)

    def draw_ellipse(self, cx: float, cy: float, major: float, minor: float, angle_deg: float, class_id: int,
                     sid: int | None = None) -> int:
        """An ellipse as ImageJ and :mod:`tem_lib.geometry` write it: full axes, the major one at
        ``angle_deg`` counter-clockwise from the x axis (y pointing down)."""
        if minor > major:
            major, minor, angle_deg = minor, major, angle_deg + 90
        e = [round(float(v), 3) for v in (cx, cy, major, minor, (angle_deg + 180) % 180)]
        return self._draw({"kind": "ellipse", "class_id": self._class(class_id), "ellipse": e}, sid)

    def accept_above(self, score: float) -> int:
        """Accept every unreviewed proposal scoring at least ``score`` (one edit each)."""
        ids = [k for k, s in self.shapes.items() if s["status"] == "proposed" and s.get("score", 0) >= score]
        for k in ids:
            self.shapes[k]["status"] = "accepted"
            self.edits.append({"action": "accept", "id": k, "t": round(time.time(), 3)})
        if ids:
            self.write_journal()
        return len(ids)

    def set_done(self, done: bool = True) -> None:
        self.done = bool(done)
        self.write_journal()

    # ---------------------------------------------------------------- views
    def next_id(self) -> int:
        return max(self.shapes, default=-1) + 1

    def hidden(self, min_score: float, sid) -> bool:
        """Shape ``sid`` is a proposal not yet reviewed that scores below ``min_score``: the
        widget does not show it and it is not saved (like every proposal not accepted)."""
        s = self.shapes[int(sid)]
        return s["status"] == "proposed" and s.get("score", 1.0) < min_score

    def counts(self, min_score: float = 0.0) -> dict:
        """Shapes per status; proposals below ``min_score`` counted as ``hidden``, not ``proposed``."""
        out = dict.fromkeys(("proposed", "hidden", "accepted", "rejected", "drawn", "labelled", "deleted"), 0)
        for k, s in self.shapes.items():
            out["hidden" if self.hidden(min_score, k) else s["status"]] += 1
        return out

    def edit_counts(self) -> dict:
        out = dict.fromkeys(ACTIONS, 0)
        for e in self.edits:
            out[e["action"]] += 1
        return out

    def instances(self) -> list:
        """The defects this micrograph saves as: accepted, drawn and kept labels (proposals not
        reviewed are not defects)."""
        out = []
        for s in sorted(self.shapes.values(), key=lambda s: s["id"]):
            if s["status"] in KEPT:
                inst = to_instance(s, self.image_hw)
                if inst is not None:
                    out.append(inst)
        return out

    def state(self) -> dict:
        return {"image": self.name, "file": self.file, "shape": list(self.image_hw), "classes": self.classes.to_dict(),
                "source": self.source, "done": self.done, "edits": self.edits,
                "original": {str(k): list(v) for k, v in self._original.items()},
                "shapes": [self.shapes[k] for k in sorted(self.shapes)]}

    def write_journal(self) -> None:
        """Rewrite the journal atomically; a failure is kept in ``journal_error`` (the widget
        shows it) rather than losing the edit in memory."""
        if self.journal is None:
            return
        try:
            write_json(self.journal, self.state(), indent=None)
            self.journal_error = None
        except OSError as e:
            self.journal_error = f"{self.journal}: the journal could not be written ({e}); edits are kept in memory"

    @classmethod
    def from_journal(cls, path: Path, classes) -> "ImageSession":
        from ..classes import ClassSet
        d = read_json(path)
        where = str(path)
        if not isinstance(d, dict) or "shapes" not in d or "shape" not in d:
            raise ValueError(f"{where}: not a label_assist journal")
        saved = ClassSet.from_dict(d["classes"], where)
        if not saved.matches(classes):
            raise ValueError(f"{where}: the journal's classes {list(zip(saved.ids, saved.names))} differ from the "
                             f"project's {list(zip(classes.ids, classes.names))}; move the journal away to start over")
        s = cls(d["image"], d["shape"], classes, d["shapes"], path, d.get("file", ""), d.get("done", False),
                d.get("edits", []), d.get("source", ""))
        s._original = {int(k): (v[0], v[1]) for k, v in d.get("original", {}).items()}
        return s
