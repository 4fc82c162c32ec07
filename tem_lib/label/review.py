"""The labeller a benchmark stands in for: given the true defects of a micrograph, make a
session's labels equal to them with the fewest edits (what ``benchmarks/label_assist.py``
counts, and notebook 10 shows on micrographs whose labels it knows): :func:`review`,
:func:`edits_table`."""
from __future__ import annotations

import numpy as np

from ..data.sample import Instance, Sample
from .session import ImageSession
from .shapes import outline, to_instance

# What an edit costs at the keyboard and mouse in the widget: accept and reject one key (the
# selection moves on), relabel a selection and a key, a drawing three mouse actions (an ellipse:
# press, release, click; a polygon more). From nothing, every defect is a drawing.
INPUTS = {"accept": 1, "reject": 1, "relabel": 2, "draw": 3}


def inputs(edits) -> float:
    """The keyboard and mouse actions of ``edits`` (a mapping or a table with the columns of
    :data:`INPUTS`)."""
    return sum(w * edits[k] for k, w in INPUTS.items())


def pair_ious(a: list[Instance], b: list[Instance]) -> list[tuple[float, int, int]]:
    """``(IoU, i, j)`` of every pair of masks ``a[i]``, ``b[j]`` that overlap (boxes first)."""
    if not a or not b:
        return []
    bb = np.array([x.bbox for x in b], float)
    out = []
    for i, p in enumerate(a):
        x1, y1, x2, y2 = p.bbox
        for j in np.flatnonzero((bb[:, 0] < x2) & (bb[:, 2] > x1) & (bb[:, 1] < y2) & (bb[:, 3] > y1)):
            q = b[j]
            X1, Y1 = min(x1, q.x0), min(y1, q.y0)
            X2, Y2 = max(x2, q.bbox[2]), max(y2, q.bbox[3])
            m = np.zeros((2, Y2 - Y1, X2 - X1), bool)
            m[0, p.y0 - Y1:p.y0 - Y1 + p.mask.shape[0], p.x0 - X1:p.x0 - X1 + p.mask.shape[1]] = p.mask
            m[1, q.y0 - Y1:q.y0 - Y1 + q.mask.shape[0], q.x0 - X1:q.x0 - X1 + q.mask.shape[1]] = q.mask
            inter = (m[0] & m[1]).sum()
            if inter:
                out.append((float(inter / (m[0] | m[1]).sum()), i, int(j)))
    return out


def review(session: ImageSession, truth: Sample, iou: float = 0.5, min_score: float = 0.0) -> dict:
    """Edit ``session`` until its defects are ``truth``'s: each proposal (or existing label)
    that overlaps a true defect at IoU >= ``iou`` (best pairs first, one each) is accepted, or
    relabelled when its class is wrong; every other proposal is rejected (an existing label:
    deleted); every true defect left is drawn (its ellipse when it has one, else its outline
    as a polygon). Proposals scoring below ``min_score`` are hidden, as the widget hides them:
    never seen, never edited, not saved (the defects they would have found are drawn). Returns
    the edits made, by action."""
    before = session.edit_counts()
    ids = [k for k, s in session.shapes.items()
           if s["status"] in ("proposed", "labelled", "accepted", "drawn") and not session.hidden(min_score, k)]
    mine = [to_instance(session.shapes[k], session.image_hw) for k in ids]
    keep = [k for k, m in enumerate(mine) if m is not None]
    ids, mine = [ids[k] for k in keep], [mine[k] for k in keep]
    pairs = sorted((p for p in pair_ious(mine, truth.instances) if p[0] >= iou), reverse=True)
    used_a, used_b = set(), set()
    for _, i, j in pairs:
        if i in used_a or j in used_b:
            continue
        used_a.add(i)
        used_b.add(j)
        sid, want = ids[i], int(truth.instances[j].category_id)
        if session.shapes[sid]["class_id"] != want:
            session.relabel(sid, want)
        else:
            session.accept(sid)  # a label or a drawn shape already is a defect: no edit
    for i, sid in enumerate(ids):
        if i not in used_a:
            session.reject(sid)
    for j, inst in enumerate(truth.instances):
        if j in used_b:
            continue
        if inst.ellipse is not None:
            session.draw_ellipse(*inst.ellipse, class_id=int(inst.category_id))
        else:
            pts = outline(inst.mask, inst.x0, inst.y0, tolerance=0.3)
            try:
                session.draw_polygon(pts, class_id=int(inst.category_id))
            except ValueError:  # a defect of a pixel or two: the box around its pixels
                x1, y1, x2, y2 = inst.bbox
                session.draw_polygon([[x1, y1], [x2, y1], [x2, y2], [x1, y2]], class_id=int(inst.category_id))
    after = session.edit_counts()
    return {k: after[k] - before[k] for k in after}


def review_from_nothing(truth: Sample) -> dict:
    """The edits to label ``truth`` without proposals: one drawing per defect."""
    return {"accept": 0, "reject": 0, "relabel": 0, "delete": 0, "draw": len(truth.instances), "restore": 0}


def edits_table(project, truths: list[Sample], iou: float = 0.5, min_score: float = 0.0):
    """Per micrograph of ``project`` whose true labels are in ``truths`` (matched by name): the
    edits to reach them from the detector's proposals scoring at least ``min_score``
    (:func:`review` on a fresh session; the project's journals are not touched) and from nothing
    (one drawing per defect)."""
    import pandas as pd
    rows = []
    for t in truths:
        s = project.fresh(t.name)
        c = s.counts(min_score)
        e = review(s, t, iou, min_score)
        rows.append({"image": t.name, "defects": len(t.instances), "proposals": c["proposed"], "hidden": c["hidden"],
                     **{k: e[k] for k in ("accept", "reject", "relabel", "draw")}, "edits_assisted": sum(e.values()),
                     "edits_from_nothing": len(t.instances)})
    table = pd.DataFrame(rows)
    table["drawings_saved"] = 1 - table["draw"] / table["defects"].clip(lower=1)
    return table


def min_score_table(project, truths: list[Sample], scores=(0.0, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9),
                    iou: float = 0.5):
    """The edits of :func:`edits_table` summed over ``truths`` for each lowest score shown, and
    what they cost in keyboard and mouse actions (:data:`INPUTS`): a higher score hides false
    proposals (fewer rejects) and true ones (more drawings); the row with the fewest inputs is
    the widget's ``min_score`` to start from on such micrographs."""
    import pandas as pd
    rows = []
    for m in scores:
        t = edits_table(project, truths, iou, m)
        sums = t[["defects", "proposals", "hidden", "accept", "relabel", "reject", "draw", "edits_assisted",
                  "edits_from_nothing"]].sum()
        rows.append({"min_score": float(m), **{k: int(v) for k, v in sums.items()}})
    table = pd.DataFrame(rows)
    table["edits_saved"] = 1 - table.edits_assisted / table.edits_from_nothing.clip(lower=1)
    table["inputs_assisted"] = inputs(table)
    table["inputs_from_nothing"] = INPUTS["draw"] * table.defects
    table["inputs_saved"] = 1 - table.inputs_assisted / table.inputs_from_nothing.clip(lower=1)
    return table
