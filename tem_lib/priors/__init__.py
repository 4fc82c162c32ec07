"""Mask priors: fit defect-population distributions to labelled masks, sample new label maps.

    from tem_lib import priors
    prior = priors.fit_prior(train_crops, "parametric")      # or "bootstrap" (the authors')
    maps = prior.sample(1000, size=256, generator=0)          # list[LabelMap]
    prior.save("prior.json"); prior = priors.load_prior("prior.json")
    table = priors.ks_table(test_crops, {"parametric": maps})  # faithful? (validate.py)

A new prior (e.g. one that places defects into real defect-free regions for inpainting)
subclasses ``MaskPrior``, implements ``fit`` and ``_draw``, and registers in ``PRIORS``.
"""
from .base import (MaskPrior, Placement, PriorFileError, PriorWarning, frame_residuals,
                   read_prior_file, training_geometry)
from .bootstrap import BootstrapPrior, authors_placement
from .parametric import ParametricPrior
from .validate import geometry_table, ks_table, plot_distributions, plot_label_maps

PRIORS: dict[str, type[MaskPrior]] = {"bootstrap": BootstrapPrior, "parametric": ParametricPrior}


def fit_prior(samples, kind: str = "parametric", **options) -> MaskPrior:
    """Fit a prior of ``kind`` (see ``PRIORS``) on labelled samples of any size."""
    if kind not in PRIORS:
        raise ValueError(f"unknown prior kind {kind!r}; known: {sorted(PRIORS)}")
    return PRIORS[kind].fit(samples, **options)


def load_prior(path) -> MaskPrior:
    """Read a prior written by ``MaskPrior.save``; errors name the file and the problem."""
    d = read_prior_file(path)
    if d.get("kind") not in PRIORS:
        raise PriorFileError(f"{path}: unknown prior kind {d.get('kind')!r}; known: {sorted(PRIORS)}")
    return PRIORS[d["kind"]].from_dict(d, where=str(path))


__all__ = ["BootstrapPrior", "MaskPrior", "ParametricPrior", "Placement", "PriorFileError",
           "PriorWarning", "PRIORS", "authors_placement", "fit_prior", "frame_residuals",
           "geometry_table", "ks_table", "load_prior", "plot_distributions", "plot_label_maps",
           "training_geometry"]
