"""A parametric mask prior: fitted distributions that generalise beyond the real shapes.

Per class, fitted independently:

- **count** per image: Poisson with mean ``rate * area * M``, where the density multiplier
  ``M ~ Gamma(k, 1/k)`` varies between images (real micrographs differ several-fold in
  density). ``count_model="shared"`` (default): one ``M`` per image for all classes, so
  dense images are dense in every class (a negative multinomial: the total count is
  negative binomial, the class split multinomial); ``"independent"``: one negative
  binomial per class. Maximum likelihood with the image area as exposure; Poisson when the
  data are not over-dispersed or come from too few images.
- **size and shape**: a Gaussian mixture in (log major, log axis ratio), the number of
  components chosen by BIC. The log ratio is never negative, so the mixture is fitted to
  the data mirrored at log ratio = 0 and samples are folded back: e.g. black dots' near-1
  ratios become a half-normal, and the round/edge-on populations of <100> loops get
  components of their own. Majors are kept within [0.5 x min, 1.5 x max] of the data.
- **orientation**: elongated instances (ratio >= ``min_ratio``) are a mixture of
  "locked" ones, at 0 or 90 degrees to the image's crystal frame plus von Mises jitter,
  and uniformly oriented ones; the locked fraction and the jitter are fitted by EM on the
  leave-one-out frame residuals (``base.frame_residuals``). Each map draws one frame from
  those seen in the training images (uniform if none could be measured).

Classes with fewer than ``min_instances`` usable instances get a warning and fall back to
the bootstrap for their shapes (copies of real (major, ratio, angle)); a class absent from
the training data gets a warning and is never drawn. Nothing is ever NaN.

Positions: uniform on a canvas wider than the map, with mask-level overlap rejection
(``Placement``); spatial clustering is not modelled.
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy import optimize, special
from scipy import stats as sps
from sklearn.mixture import GaussianMixture

from .base import BAR_SCALE, MaskPrior, Placement, PriorWarning, frame_residuals, image_frames, shape_pool, training_geometry


# ----------------------------------------------------------------------------- pieces
def fit_counts(counts, areas, min_images: int = 3) -> tuple[float, float | None, str]:
    """Negative-binomial fit with exposure: returns (rate per area unit, k or None for
    Poisson, note)."""
    y, a = np.asarray(counts, float), np.asarray(areas, float)
    if y.sum() == 0:
        return 0.0, None, "absent"
    rate0 = y.sum() / a.sum()
    if len(y) < min_images:
        return rate0, None, f"Poisson: only {len(y)} image(s), dispersion not identifiable"

    def nll(theta):
        rate, k = np.exp(theta)
        mu = rate * a
        return -np.sum(special.gammaln(y + k) - special.gammaln(k) - special.gammaln(y + 1)
                       + k * np.log(k / (k + mu)) + y * np.log(mu / (k + mu)))

    res = optimize.minimize(nll, [np.log(rate0), np.log(5.0)], method="Nelder-Mead",
                            options={"xatol": 1e-6, "fatol": 1e-8, "maxiter": 2000})
    rate, k = np.exp(res.x)
    if not np.isfinite(rate) or k > 1e4:  # no over-dispersion: the Poisson limit
        return rate0, None, "Poisson: not over-dispersed"
    return float(rate), float(k), "negative binomial"


def fit_shape_gmm(major, ratio, max_components: int = 4, seed: int = 0) -> dict:
    """Gaussian mixture in (log major, log ratio), fitted to the data mirrored at
    log ratio = 0; ``max_components`` (BIC decides) counts mirrored components."""
    x = np.column_stack([np.log(major), np.log(np.maximum(ratio, 1.0))])
    x = np.vstack([x, x * [1, -1]])
    best = None
    for k in range(1, min(max_components, len(x) // 10) + 1):
        gm = GaussianMixture(k, covariance_type="full", reg_covar=1e-4, random_state=seed,
                             n_init=2).fit(x)
        bic = gm.bic(x)
        if best is None or bic < best[0]:
            best = (bic, gm)
    gm = best[1]
    return {"model": "gmm", "weights": gm.weights_.tolist(), "means": gm.means_.tolist(),
            "covs": gm.covariances_.tolist(),
            "major_range": [0.5 * float(np.min(major)), 1.5 * float(np.max(major))]}


def _a1inv(r: float) -> float:
    """Inverse of A1(kappa) = I1/I0 (Best and Fisher, 1981)."""
    if r < 0.53:
        return 2 * r + r ** 3 + 5 * r ** 5 / 6
    if r < 0.85:
        return -0.4 + 1.39 * r + 0.43 / (1 - r)
    return 1.0 / (r ** 3 - 4 * r ** 2 + 3 * r)


def fit_orientation(residuals_deg, iters: int = 300, alpha: float = 0.01) -> tuple[float, float]:
    """EM for a uniform + von Mises mixture on 4 x residual (the 0/90-degree symmetry):
    returns (locked fraction, kappa); (0, 0) unless the mixture beats the uniform
    distribution in a likelihood-ratio test at level ``alpha`` (chi-square, 2 dof)."""
    phi = np.deg2rad(4.0 * np.asarray(residuals_deg, float))
    if len(phi) == 0:
        return 0.0, 0.0
    pi, kappa = 0.5, 2.0
    for _ in range(iters):
        vm = np.exp(kappa * (np.cos(phi) - 1.0)) / (2 * np.pi * special.i0e(kappa))
        resp = pi * vm / (pi * vm + (1 - pi) / (2 * np.pi))
        pi_new = float(resp.mean())
        if resp.sum() < 1e-9:
            return 0.0, 0.0
        rbar = float(np.clip((resp * np.cos(phi)).sum() / resp.sum(), 0.0, 0.9999))
        kappa = float(min(_a1inv(rbar), 500.0))
        if abs(pi_new - pi) < 1e-7:
            pi = pi_new
            break
        pi = pi_new
    vm = np.exp(kappa * (np.cos(phi) - 1.0)) / (2 * np.pi * special.i0e(kappa))
    lr = 2.0 * np.sum(np.log(2 * np.pi * (pi * vm + (1 - pi) / (2 * np.pi))))
    if not np.isfinite(lr) or lr < sps.chi2.ppf(1 - alpha, 2):
        return 0.0, 0.0
    return pi, kappa


def jitter_deg(kappa: float) -> float:
    """Circular standard deviation of the locked orientations, degrees."""
    if kappa <= 0:
        return float("nan")
    a1 = special.i1e(kappa) / special.i0e(kappa)
    return float(np.rad2deg(np.sqrt(-2.0 * np.log(a1))) / 4.0)


# ----------------------------------------------------------------------------- prior
class ParametricPrior(MaskPrior):
    kind = "parametric"

    @classmethod
    def fit(cls, samples, count_model: str = "shared", max_components: int = 4, min_instances: int = 30,
            min_ratio: float = 1.5, min_residuals: int = 10, edge_on_bars: bool = False,
            bar_min_ratio: float = 3.0, exclude_edge: bool = True,
            placement: Placement | None = None, class_ids=None, bar_class_ids=(),
            class_names: dict | None = None, seed: int = 0) -> "ParametricPrior":
        """Fit on ``samples`` (any sizes). ``min_instances``: fewer usable instances of a
        class -> bootstrap shapes for it (with a warning); ``min_residuals``: fewer frame
        residuals -> uniform orientations; ``edge_on_bars``: draw <100> loops with ratio
        >= ``bar_min_ratio`` of the classes ``bar_class_ids`` (the edge-on <100> loops) as thin
        bars instead of ellipses."""
        if count_model not in ("shared", "independent"):
            raise ValueError(f"count_model must be 'shared' or 'independent', got {count_model!r}")
        geo = training_geometry(samples, class_ids)
        inst = geo.instances.copy()
        # Crops of one micrograph share its crystal frame: group by source. Instances cut
        # by the border are cut parallel to it: keep them out.
        inst["residual"] = frame_residuals(inst[~inst["edge"]], min_ratio,
                                           by=("source_id", "class_id")).reindex(inst.index)
        classes, warns = {}, []

        def warn(msg):
            warns.append(msg)
            warnings.warn(msg, PriorWarning, stacklevel=3)

        areas = geo.images["area"]
        total = geo.images[[f"n_{c}" for c in geo.class_ids]].sum(axis=1)
        total_rate, shared_k, shared_note = fit_counts(total, areas)
        if shared_note.startswith("Poisson: only"):
            warn(f"counts: {shared_note}")
        for c in geo.class_ids:
            cname = (class_names or {}).get(c, str(c))
            if count_model == "shared":
                n_c = geo.images[f"n_{c}"].sum()
                rate, k, note = total_rate * n_c / max(total.sum(), 1), None, \
                    ("absent" if n_c == 0 else "shared")
            else:
                rate, k, note = fit_counts(geo.images[f"n_{c}"], areas)
                if note.startswith("Poisson: only"):
                    warn(f"class {c} ({cname}): {note}")
            entry = {"rate": rate, "dispersion_k": k, "count_model": note}
            if note == "absent":
                warn(f"class {c} ({cname}): no instances in the training data; it will never be drawn")
                classes[str(c)] = entry | {"shape": None, "orientation": None, "n_instances": 0}
                continue
            rows = shape_pool(inst, c, exclude_edge)
            if len(rows) < min_instances:
                warn(f"class {c} ({cname}): {len(rows)} usable instances < min_instances="
                     f"{min_instances}; its shapes are bootstrapped (copies of the real ones)")
                shape = {"model": "bootstrap",
                         "rows": rows[["major", "ratio", "angle"]].round(4).to_numpy().tolist()}
                orient = None
            else:
                shape = fit_shape_gmm(rows["major"].to_numpy(), rows["ratio"].to_numpy(),
                                      max_components, seed)
                res = inst.loc[inst["class_id"] == c, "residual"].dropna().to_numpy()
                if len(res) >= min_residuals:
                    pi, kappa = fit_orientation(res)
                else:
                    pi, kappa = 0.0, 0.0
                    if (rows["ratio"] >= min_ratio).sum() >= min_residuals:
                        warn(f"class {c} ({cname}): only {len(res)} frame residuals (< "
                             f"{min_residuals}); elongated instances get uniform orientations")
                orient = {"locked_fraction": pi, "kappa": kappa, "min_ratio": min_ratio,
                          "n_residuals": int(len(res))}
            classes[str(c)] = entry | {"shape": shape, "orientation": orient,
                                       "n_instances": int((inst["class_id"] == c).sum()),
                                       "n_shape": int(len(rows))}
        # the frame angles maps are drawn in: from the class whose orientation locks most
        locking = [(v["orientation"]["locked_fraction"] * v["orientation"]["n_residuals"], int(c))
                   for c, v in classes.items() if v.get("orientation")]
        frames = []
        if locking and max(locking)[0] > 0:
            frames = image_frames(inst[~inst["edge"]], max(locking)[1], min_ratio)
        params = {"classes": classes, "frames": [round(f, 3) for f in frames],
                  "major_p99": float(np.percentile(inst["major"], 99)) if len(inst) else 0.0,
                  "counts": {"model": count_model, "dispersion_k": shared_k,
                             "note": shared_note} if count_model == "shared" else
                  {"model": "independent"},
                  "bars": {"class_ids": [int(c) for c in bar_class_ids], "min_ratio": bar_min_ratio}
                  if edge_on_bars else None}
        info = {"n_images": len(samples), "n_instances": len(inst), "warnings": warns,
                "exclude_edge": exclude_edge, "max_components": max_components,
                "min_instances": min_instances}
        return cls(params, geo.unit, geo.area_unit, geo.nm_per_px, placement or Placement(), info)

    # sampling -------------------------------------------------------------------------
    def _gmm(self, c: str):
        """(weights, means, Cholesky factors) of class c's mixture, as arrays (cached:
        they are needed for every map)."""
        cache = self.__dict__.setdefault("_gmm_cache", {})
        if c not in cache:
            shape = self.params["classes"][c]["shape"]
            w = np.asarray(shape["weights"], float)
            cache[c] = (w / w.sum(), np.asarray(shape["means"], float),
                        np.linalg.cholesky(np.asarray(shape["covs"], float)))
        return cache[c]

    def _shapes(self, rng, c: str, n: int):
        """(major, ratio, angle or NaN) arrays for n defects of class c, prior units."""
        shape = self.params["classes"][c]["shape"]
        if shape["model"] == "bootstrap":
            rows = np.asarray(shape["rows"], float)[rng.integers(len(shape["rows"]), size=n)]
            return rows[:, 0], rows[:, 1], rows[:, 2]
        w, means, chol = self._gmm(c)
        comp = rng.choice(len(w), size=n, p=w)
        z = rng.standard_normal((n, 2))
        x = means[comp] + np.einsum("nij,nj->ni", chol[comp], z)
        major = np.clip(np.exp(x[:, 0]), *shape["major_range"])
        return major, np.exp(np.abs(x[:, 1])), np.full(n, np.nan)

    def _draw(self, rng, area, scale):
        p = self.params
        frames = p["frames"]
        frame = float(frames[rng.integers(len(frames))]) if frames else rng.uniform(0, 90)
        bars = p.get("bars") or {}
        shared = p["counts"]["model"] == "shared"
        k_shared = p["counts"].get("dispersion_k")
        mult = rng.gamma(k_shared, 1.0 / k_shared) if shared and k_shared else 1.0
        out = []
        for c, v in p["classes"].items():
            if v["rate"] <= 0 or v["shape"] is None:
                continue
            mu = v["rate"] * area * mult
            k = v["dispersion_k"]
            n = rng.negative_binomial(k, k / (k + mu)) if k and not shared else rng.poisson(mu)
            if n == 0:
                continue
            major, ratio, angle = self._shapes(rng, c, n)
            o = v["orientation"]
            if o is not None:  # fitted shapes: orientation from the mixture
                angle = rng.uniform(0, 180, size=n)
                locked = (ratio >= o["min_ratio"]) & (rng.random(n) < o["locked_fraction"])
                m = int(locked.sum())
                if m:
                    jitter = np.rad2deg(rng.vonmises(0.0, max(o["kappa"], 1e-6), size=m)) / 4.0
                    angle[locked] = frame + 90.0 * rng.integers(0, 2, size=m) + jitter
            bar = (int(c) in bars.get("class_ids", ())) & (ratio >= bars.get("min_ratio", np.inf))
            for j in range(n):
                s = scale * (BAR_SCALE if bar[j] else 1.0)
                out.append((int(c), major[j] * s, major[j] / ratio[j] * s, float(angle[j] % 180.0),
                            bool(bar[j])))
        return out

    # reporting ------------------------------------------------------------------------
    def marginals(self, n: int = 20000, seed: int = 0) -> pd.DataFrame:
        """Median major and ratio per class, from ``n`` draws of the fitted shape model."""
        rng = np.random.default_rng(seed)
        rows = []
        for c, v in self.params["classes"].items():
            if v["shape"] is None:
                continue
            major, ratio, _ = self._shapes(rng, c, n)
            rows.append({"class_id": int(c), "major_median": float(np.median(major)),
                         "ratio_median": float(np.median(ratio)),
                         "major_p05": float(np.percentile(major, 5)),
                         "major_p95": float(np.percentile(major, 95))})
        return pd.DataFrame(rows)

    def describe(self) -> pd.DataFrame:
        marg = self.marginals().set_index("class_id")
        rows = []
        for c, v in self.params["classes"].items():
            c = int(c)
            o = v.get("orientation") or {}
            shape = v.get("shape") or {}
            row = {"class_id": c, "class": self.class_name(c),
                   f"rate_per_{self.area_unit}": v["rate"],
                   "dispersion_k": v["dispersion_k"] or self.params["counts"].get("dispersion_k"),
                   "count_model": v["count_model"], "shape_model": shape.get("model", "-"),
                   "components": len(shape.get("weights", [])) or None,
                   "locked_fraction": o.get("locked_fraction"),
                   "jitter_deg": jitter_deg(o["kappa"]) if o.get("locked_fraction") else None}
            if c in marg.index:
                row[f"major_median_{self.unit}"] = marg.loc[c, "major_median"]
                row["ratio_median"] = marg.loc[c, "ratio_median"]
            rows.append(row)
        return pd.DataFrame(rows)
