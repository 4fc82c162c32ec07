"""The labelling widget for JupyterLab: :class:`LabelWidget` (anywidget).

Built on anywidget, the maintained way to write a Jupyter widget as one ES module (no build
step, no front-end framework; JupyterLab, Notebook, VS Code and Colab render it): the view
(``widget.js``) draws the micrograph on a canvas with the shapes over it and sends each edit as
a message; this class applies it to the :class:`~tem_lib.label.session.ImageSession` (which
journals it to disk at once) and answers with the changed shapes only, so one action costs one
small message whatever the number of proposals.

    w = LabelWidget(project)          # the most informative unlabelled micrograph first
    w                                  # shown in the notebook; keys: A accept, R reject, N next,
                                       # 1-9 class, P polygon, E ellipse, X delete, S done + save
    w.min_score = 0.6                  # hide the proposals scoring below 0.6 (the box in the bar)
"""
from __future__ import annotations

import io
from pathlib import Path

import anywidget
import numpy as np
import traitlets

from .project import LabelProject


def png_bytes(image: np.ndarray) -> bytes:
    """The micrograph as an 8-bit grayscale PNG (what the browser draws)."""
    from PIL import Image

    from ..data.images import to_uint8
    buf = io.BytesIO()
    Image.fromarray(to_uint8(image)).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


class LabelWidget(anywidget.AnyWidget):
    """Review a detector's proposals and draw what it missed, one micrograph at a time."""
    _esm = Path(__file__).with_name("widget.js")
    _css = Path(__file__).with_name("widget.css")
    image_png = traitlets.Bytes(b"").tag(sync=True)
    image_name = traitlets.Unicode("").tag(sync=True)
    images = traitlets.List(traitlets.Dict()).tag(sync=True)  # [{"name", "label"}] in the picker's order
    classes = traitlets.List(traitlets.Dict()).tag(sync=True)  # [{"id", "name", "display", "color"}]
    message = traitlets.Unicode("").tag(sync=True)
    error = traitlets.Bool(False).tag(sync=True)
    height_px = traitlets.Int(640).tag(sync=True)
    # proposals not yet reviewed that score below this are hidden (not shown, not saved)
    min_score = traitlets.Float(0.0).tag(sync=True)

    def __init__(self, project: LabelProject, image: str | None = None, height: int = 640, ranking=None,
                 min_score: float = 0.0):
        super().__init__()
        self.project = project
        self.height_px = int(height)
        self.min_score = float(min_score)
        self.classes = [{"id": c.id, "name": c.name, "display": c.display, "color": _hex(c.color)}
                        for c in project.classes]
        if ranking is None and project.source is not None:
            ranking = project.rank()
        self.ranking = ranking
        self.images = self._picker()
        self.session = None
        self.on_msg(self._on_msg)
        first = image or (self.images[0]["name"] if self.images else None)
        if first is not None:
            self.show_image(first)

    def _picker(self) -> list[dict]:
        """Unlabelled micrographs in ranked order (with their uncertainty), then the rest."""
        out, seen = [], set()
        if self.ranking is not None and len(self.ranking):
            for r in self.ranking.itertuples():
                if r.error:
                    label = f"{r.image}: unreadable"
                else:
                    label = f"{r.image}  (uncertainty {r.uncertainty:.1f} bits, {r.n_proposals} proposals)"
                out.append({"name": r.image, "label": label})
                seen.add(r.image)
        for name, v in self.project.images.items():
            if name not in seen:
                what = "labelled" if v["labelled"] else ("done" if self.project.is_done(name) else "unlabelled")
                out.append({"name": name, "label": f"{name}  ({what})"})
        return out

    # ---------------------------------------------------------------- Python side of the view
    def show_image(self, name: str) -> None:
        try:
            session = self.project.open(name)
            image = self.project.image(name)
        except (ValueError, KeyError, OSError) as e:
            return self._say(str(e), error=True)
        self.session = session
        self.image_name = name
        self.image_png = png_bytes(image)
        self._send_all()
        self._say(self._summary())

    @traitlets.validate("min_score")
    def _check_min_score(self, proposal) -> float:
        v = float(proposal["value"])
        if not 0.0 <= v <= 1.0:
            raise traitlets.TraitError(f"min_score {v} is not a score (0 to 1)")
        return v

    @traitlets.observe("min_score")
    def _on_min_score(self, _change) -> None:
        if self.session is not None:
            self._say(self._summary())

    def _send_all(self) -> None:
        if self.session is not None:
            self.send({"type": "shapes", "shapes": [_view(s) for s in self.session.shapes.values()]})

    def _on_msg(self, _widget, content, _buffers) -> None:
        kind = content.get("type")
        if kind == "hello":
            return self._send_all()
        if kind == "open":
            return self.show_image(str(content.get("name")))
        if kind == "save":
            return self.save()
        if kind == "edit":
            return self.apply(content)

    def apply(self, content: dict) -> None:
        """One edit from the view (``{"action", "id", ...}``), applied and answered."""
        s = self.session
        if s is None:
            return self._say("no micrograph is open", error=True)
        action, sid = content.get("action"), content.get("id")
        try:
            if action == "draw":
                if content.get("kind") == "ellipse":
                    sid = s.draw_ellipse(*content["ellipse"], class_id=content.get("class_id"))
                else:
                    sid = s.draw_polygon(content.get("points") or [], class_id=content.get("class_id"))
            elif action == "relabel":
                s.relabel(sid, content.get("class_id"))
            elif action in ("accept", "reject", "delete", "restore"):
                getattr(s, action)(sid)
            else:
                raise ValueError(f"unknown edit {action!r}")
        except (KeyError, ValueError, TypeError) as e:
            self._send_all()  # the view showed it at once: put back what Python holds
            return self._say(str(e).strip("'\""), error=True)
        self.send({"type": "patch", "shapes": [_view(s.shapes[int(sid)])]})
        self._say(self._summary())

    def save(self) -> Path | None:
        """This micrograph is done: write the project's labels (a new version)."""
        if self.session is None:
            return None
        try:
            self.session.set_done(True)
            path = self.project.save()
        except (ValueError, OSError) as e:
            return self._say(f"not saved: {e}", error=True)
        self._say(f"saved {path} ({len(self.session.instances())} defects on {self.session.name}); "
                  + self._summary())
        return path

    def _summary(self) -> str:
        s = self.session
        c, e = s.counts(self.min_score), s.edit_counts()
        hidden = f" ({c['hidden']} scoring below {self.min_score:.2f} hidden)" if c["hidden"] else ""
        text = (f"{s.name}: {c['proposed']} proposals to review{hidden}, {c['accepted']} accepted, "
                f"{c['rejected']} rejected, {c['drawn']} drawn, {c['labelled']} labelled before; "
                f"{sum(e.values())} edits" + (" · done" if s.done else ""))
        return text + (f"\n{s.journal_error}" if s.journal_error else "")

    def _say(self, text: str, error: bool = False) -> None:
        self.error = bool(error or (self.session is not None and self.session.journal_error))
        self.message = text


def _view(shape: dict) -> dict:
    """What the view needs of a shape (not the RLE: the outline draws it)."""
    return {k: v for k, v in shape.items() if k != "rle"}


def _hex(color) -> str:
    from matplotlib.colors import to_hex
    return to_hex(color)
