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
from ..classes import ClassSet
from .base import MaskPrior, Placement, PriorFileError, PriorWarning, frame_residuals, read_prior_file, training_geometry
from .bootstrap import BootstrapPrior, authors_placement
from .parametric import ParametricPrior
from .validate import geometry_table, ks_table, plot_distributions, plot_label_maps

PRIORS: dict[str, type[MaskPrior]] = {"bootstrap": BootstrapPrior, "parametric": ParametricPrior}


def fit_prior(samples, kind: str = "parametric", classes: ClassSet | None = None, class_weights=None,
              **options) -> MaskPrior:
    """Fit a prior of ``kind`` (see ``PRIORS``) on labelled samples of any size.

    ``classes``: the dataset's class set (default: the ``classes`` of a
    :class:`~tem_lib.data.Dataset`); it fixes which classes the prior knows, names them in
    ``describe()`` and is saved with the prior. ``class_weights`` (bootstrap): {class name
    or id: odds factor}, e.g. the authors' ``{"loop_100": 2.0}``. ``edge_on_bars``
    (parametric) draws bars for a class named ``loop_100``, if the set has one.
    """
    if kind not in PRIORS:
        raise ValueError(f"unknown prior kind {kind!r}; known: {sorted(PRIORS)}")
    classes = classes if classes is not None else getattr(samples, "classes", None)
    if classes is None:
        raise ValueError("fit_prior needs the dataset's class set (classes=...)")
    options["class_ids"] = classes.ids
    if class_weights:
        if kind != "bootstrap":
            raise ValueError("class_weights applies to the bootstrap prior only")
        options["class_weights"] = {(classes.by_name(k).id if isinstance(k, str) and not k.isdigit() else int(k)): v
                                    for k, v in class_weights.items()}
    if kind == "parametric":
        options.setdefault("class_names", {c.id: c.name for c in classes})
    if kind == "parametric" and options.get("edge_on_bars"):
        options.setdefault("bar_class_ids", [c.id for c in classes if c.name == "loop_100"])
    prior = PRIORS[kind].fit(samples, **options)
    prior.classes = classes
    return prior


def load_prior(path) -> MaskPrior:
    """Read a prior written by ``MaskPrior.save``; errors name the file and the problem."""
    d = read_prior_file(path)
    if d.get("kind") not in PRIORS:
        raise PriorFileError(f"{path}: unknown prior kind {d.get('kind')!r}; known: {sorted(PRIORS)}")
    return PRIORS[d["kind"]].from_dict(d, where=str(path))


from .cells import fit_cells, ks_cells  # noqa: E402  (uses fit_prior)

__all__ = ["fit_cells", "ks_cells", "BootstrapPrior", "MaskPrior", "ParametricPrior", "Placement", "PriorFileError",
           "PriorWarning", "PRIORS", "authors_placement", "fit_prior", "frame_residuals",
           "geometry_table", "ks_table", "load_prior", "plot_distributions", "plot_label_maps",
           "training_geometry"]
