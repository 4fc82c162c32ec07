"""Detector-assisted labelling: from a few labelled micrographs to many.

:class:`LabelProject` holds a folder of micrographs, the detector's proposals for each (the
merged whole-micrograph detections :mod:`tem_lib.quantify` makes), a journal of every edit and
the saved labels (a COCO file beside the user's data, never over it); :meth:`LabelProject.rank`
says which unlabelled micrograph to label next; :class:`LabelWidget` (JupyterLab, notebook 10)
is where a person reviews and draws; :func:`review` is the labeller a benchmark stands in for.
"""
from .demo import demo_folder
from .project import LabelProject
from .proposals import uncertainty
from .review import edits_table, min_score_table, review, review_from_nothing
from .session import ACTIONS, ImageSession

__all__ = ["ACTIONS", "ImageSession", "LabelProject", "LabelWidget", "demo_folder", "edits_table",
           "min_score_table", "review", "review_from_nothing", "uncertainty"]


def __getattr__(name):
    if name == "LabelWidget":  # anywidget is imported only when the widget is wanted
        from .widget import LabelWidget
        return LabelWidget
    raise AttributeError(f"module 'tem_lib.label' has no attribute {name!r}")
