"""Mask priors: fit defect-population distributions to labelled masks, sample new label maps.

    from tem_lib import priors
    prior = priors.fit_prior(train_crops, "parametric", classes=ws.classes)  # or "bootstrap"
    maps = prior.sample(1000, size=256, generator=0)          # list[LabelMap]
    prior.save("prior.json"); prior = priors.load_prior("prior.json")
    table = priors.ks_table(test_crops, {"parametric": maps}, ws.classes)  # faithful?
    fitted, described = priors.fit_cells(ws)                  # every (split, N) of a workspace

A new prior (e.g. one that places defects into real defect-free regions for inpainting)
subclasses ``MaskPrior``, implements ``fit`` and ``_draw``, and registers in ``PRIORS``.
"""
from .base import MaskPrior, Placement, PriorFileError, PriorWarning, frame_residuals, training_geometry
from .bootstrap import BootstrapPrior, authors_placement
from .cells import fit_cells, ks_cells
from .fit import PRIORS, fit_prior, load_prior, usable_class_weights
from .parametric import ParametricPrior
from .validate import geometry_table, ks_table, plot_distributions, plot_ks_heatmap, plot_label_maps

__all__ = ["fit_cells", "ks_cells", "BootstrapPrior", "MaskPrior", "ParametricPrior", "Placement", "PriorFileError",
           "PriorWarning", "PRIORS", "authors_placement", "fit_prior", "frame_residuals",
           "geometry_table", "ks_table", "load_prior", "plot_distributions", "plot_label_maps",
           "training_geometry", "usable_class_weights", "plot_ks_heatmap"]
