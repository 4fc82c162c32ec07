"""Fitting a prior by name, and reading one back: the registry of prior kinds (``PRIORS``)."""
from ..classes import ClassSet
from .base import MaskPrior, PriorFileError, read_prior_file
from .bootstrap import BootstrapPrior
from .parametric import ParametricPrior

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


def usable_class_weights(class_weights: dict, classes: ClassSet) -> tuple[dict, list]:
    """The entries of ``class_weights`` (class name -> odds factor, e.g. a profile's
    ``{"loop_100": 2.0}``) for classes ``classes`` has, and the names it lacks (ignored: a
    profile's weights serve datasets with other class sets too)."""
    kept = {k: v for k, v in (class_weights or {}).items() if k in classes.names}
    return kept, sorted(set(class_weights or {}) - set(kept))
