"""Where floor(d/2) comes from, counted: the facets of convex hulls of points on the moment curve.

The Upper Bound Theorem (McMullen 1970) says a convex polytope with n vertices in R^d has at
most as many faces as the cyclic polytope, the hull of n points on the moment curve
(t, t^2, ..., t^d): O(n^{floor(d/2)}) (``theory.cyclic_polytope_facets``). By duality, the same
count bounds the complexity of an intersection of n half-spaces, and that floor(d/2) is the one
in the half-space reporting bounds (notebook 1). ``moment_curve_facets`` asks qhull
(``scipy.spatial.ConvexHull``) for the facets of such hulls, checks them against the formula
and fits the growth exponent; Gaussian points, for contrast, have far fewer facets: the bound
is a worst case, met by special point sets.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import ConvexHull

from .. import theory
from ..validate import as_positive_int

MAX_HULL_POINTS = 320  # beyond this, qhull loses facets of the moment curve to rounding at d = 5


@dataclass(frozen=True)
class HullFacets:
    """Facet counts of convex hulls in R^d, per number of points n."""

    d: int
    n: np.ndarray  # (N,) points
    facets: np.ndarray  # (N,) qhull's facets of n points on the moment curve
    cyclic: np.ndarray  # (N,) the cyclic polytope's count, exact (theory)
    gaussian: np.ndarray  # (N,) qhull's facets of n Gaussian points

    @property
    def fit(self) -> theory.ExponentFit:
        """The log-log slope of the moment curve's facets against n: near floor(d/2)."""
        return theory.fit_exponent(self.n, self.facets)

    @property
    def gaussian_fit(self) -> theory.ExponentFit:
        """The same slope for Gaussian points."""
        return theory.fit_exponent(self.n, self.gaussian)


def moment_curve(n: int, d: int) -> np.ndarray:
    """n points (t, t^2, ..., t^d) with t evenly spaced in [-1, 1]: shape (n, d)."""
    n, d = as_positive_int("n", n), as_positive_int("d", d)
    return np.vander(np.linspace(-1.0, 1.0, n), d + 1, increasing=True)[:, 1:]


def moment_curve_facets(d: int, n_values=(32, 64, 128, 256), seed: int = 0) -> HullFacets:
    """Facets of the hull of n moment-curve points and of n Gaussian points in R^d, per n."""
    d = as_positive_int("d", d)
    if d < 2:
        raise ValueError(f"d must be at least 2 for a polytope with facets; got {d}")
    n_arr = np.array([as_positive_int("n_values", n) for n in n_values], dtype=np.int64)
    if n_arr.min() < d + 1 or n_arr.max() > MAX_HULL_POINTS:
        raise ValueError(f"n_values must lie in [d + 1, {MAX_HULL_POINTS}] = [{d + 1}, "
                         f"{MAX_HULL_POINTS}]; got {n_values!r}")
    rng = np.random.default_rng(seed)
    facets = np.array([len(ConvexHull(moment_curve(int(n), d)).simplices) for n in n_arr])
    gaussian = np.array([len(ConvexHull(rng.standard_normal((int(n), d))).simplices)
                         for n in n_arr])
    cyclic = np.array([theory.cyclic_polytope_facets(int(n), d) for n in n_arr])
    return HullFacets(d, n_arr, facets, cyclic, gaussian)
