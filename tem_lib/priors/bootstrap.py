"""The authors' mask prior: a bootstrap of the real ellipses (PAPER_NOTES section 1).

Per map: the number of defects is that of a random training image (thinned to the map's
area when the training images are larger, so the density is preserved); classes follow
the training class proportions (optionally re-weighted: the authors doubled <100> loops);
each defect copies the (major, minor, angle) of a random real defect of its class; centres
are uniform in the map; a position whose bounding box, grown by 2 px, hits an earlier box is
rejected, and after 80 rejections the defect is placed anyway. Instances with an area over
100 times the mean are dropped as outliers before any of this.

Differences from the authors' notebook, both options: instances touching the image border
(truncated by the crop) are not copied (``exclude_edge``), and cut slivers smaller than
``Placement.min_area`` are dropped as in our real crops.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .base import MaskPrior, Placement, shape_pool, training_geometry


def authors_placement() -> Placement:
    return Placement(overlap="bbox", gap=2.0, tries=80, on_failure="accept", margin=0.0)


class BootstrapPrior(MaskPrior):
    kind = "bootstrap"

    @classmethod
    def fit(cls, samples, class_weights: dict | None = None, exclude_edge: bool = True,
            outlier_factor: float = 100.0, placement: Placement | None = None,
            class_ids=None) -> "BootstrapPrior":
        """``class_weights``: {class_id: factor} applied to the class proportions (the
        authors used {3: 2.0}, <100> loops doubled); ``outlier_factor``: instances with an
        area above this many times the mean area are dropped."""
        geo = training_geometry(samples, class_ids)
        inst = geo.instances
        keep = inst["area"] <= outlier_factor * inst["area"].mean()
        weights = {int(k): float(v) for k, v in (class_weights or {}).items()}
        unknown = set(weights) - set(geo.class_ids)
        if unknown:
            raise ValueError(f"class_weights: unknown class id(s) {sorted(unknown)}")
        counts = np.array([(inst["class_id"] == c).sum() for c in geo.class_ids], float)
        prop = counts * np.array([weights.get(c, 1.0) for c in geo.class_ids])
        pool = {}
        for c in geo.class_ids:
            rows = shape_pool(inst[keep], c, exclude_edge)
            if len(rows):
                pool[str(c)] = rows[["major", "minor", "angle"]].round(4).to_numpy().tolist()
            else:
                prop[geo.class_ids.index(c)] = 0.0  # absent class: never drawn
        params = {"class_ids": list(geo.class_ids),
                  "proportions": (prop / prop.sum()).tolist() if prop.sum() else prop.tolist(),
                  "class_weights": {str(k): v for k, v in weights.items()},
                  "counts": geo.images[[f"n_{c}" for c in geo.class_ids]].sum(axis=1).astype(int).tolist(),
                  "areas": geo.images["area"].round(8).tolist(),
                  "pool": pool}
        info = {"n_images": len(samples), "n_instances": len(inst),
                "n_outliers": int((~keep).sum()), "exclude_edge": exclude_edge,
                "outlier_factor": outlier_factor}
        return cls(params, geo.unit, geo.area_unit, geo.nm_per_px,
                   placement or authors_placement(), info)

    def _draw(self, rng, area, scale):
        p = self.params
        j = rng.integers(len(p["counts"]))
        count, frac = p["counts"][j], area / p["areas"][j]
        n = rng.binomial(count, frac) if frac <= 1 else rng.poisson(count * frac)
        if n == 0 or not p["pool"]:
            return []
        classes = rng.choice(p["class_ids"], size=n, p=p["proportions"])
        out = []
        for c in classes:
            rows = p["pool"][str(c)]
            major, minor, angle = rows[rng.integers(len(rows))]
            out.append((int(c), major * scale, minor * scale, angle, False))
        return out

    def describe(self) -> pd.DataFrame:
        p = self.params
        counts = np.array(p["counts"], float) / np.array(p["areas"])
        rows = []
        for c, prop in zip(p["class_ids"], p["proportions"]):
            pool = np.array(p["pool"].get(str(c), np.zeros((0, 3))), float).reshape(-1, 3)
            rows.append({"class_id": c, "class": self.class_name(c), "proportion": prop,
                         "pool_size": len(pool),
                         f"major_median_{self.unit}": np.median(pool[:, 0]) if len(pool) else np.nan,
                         "ratio_median": np.median(pool[:, 0] / pool[:, 1]) if len(pool) else np.nan})
        t = pd.DataFrame(rows)
        t.attrs["defects_per_area_median"] = float(np.median(counts))
        return t
