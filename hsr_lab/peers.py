"""What practical systems do instead: exact peers of ``HSR`` for the benchmarks.

Each adapter is built over the keys ``K`` (n x d) and answers ``query(a, t)`` with the sorted
int64 ids of every key k with ``<a, k> >= t`` (the closed half-space), exactly like
``HSR(K).query(a, t)``. Every peer first finds candidates with its own (float32, or
differently rounded) arithmetic, widened by a rounding margin so that no answer is lost, and
then keeps the candidates that pass the exact test (``hsr.exact.at_least``: the float64 score
``K[c] @ a`` decides outside its rounding band around t, the rare candidate inside is settled
exactly), the predicate of ``hsr.numerics``.

- ``FaissFlat``: the dense scan of faiss, ``IndexFlatIP.range_search`` (O(n d) per query).
- ``BallReduction``: inner-product range search reduced exactly to a Euclidean ball query
  (Bachrach et al. 2014), answered by a scikit-learn ball tree or kd-tree or a SciPy cKDTree.
- ``QuestPages``: Quest's one-level page bound over pages of consecutive keys.

faiss and scikit-learn are optional: ``pip install "hsr_lab[peers]"``.
"""

from __future__ import annotations

import numpy as np

from .attention.maskers.pages import page_bounds, page_upper_bound
from .hsr.exact import at_least
from .hsr.numerics import ETA32, TINY, UNIT_ROUNDOFF, UNIT_ROUNDOFF32
from .optional import require
from .validate import as_matrix, as_positive_int, as_scalar, as_vector


def _exponent(x: float) -> int:
    """The power of two e with ``x / 2^e`` in [0.5, 1) (0 for x = 0): dividing by 2^e is exact."""
    return int(np.frexp(x)[1])


class _Peer:
    """Shared by the adapters: the float64 keys, input checks and the exact final filter."""

    name = "peer"

    def __init__(self, keys: object) -> None:
        self.keys = np.array(as_matrix("K", keys), dtype=np.float64, order="C")
        self.n, self.d = self.keys.shape
        self.max_l1 = float(np.abs(self.keys).sum(axis=1).max())  # max_k sum_i |k_i|: no squares

    def _args(self, a: object, t: object) -> tuple[np.ndarray, float]:
        return as_vector("a", a, d=self.d), as_scalar("t", t)

    def _exact(self, candidates: np.ndarray, a: np.ndarray, t: float) -> np.ndarray:
        """The candidates c with ``<a, K[c]> >= t`` exactly (``hsr.exact.at_least``), sorted,
        as int64."""
        candidates = np.asarray(candidates, dtype=np.int64)
        hits = candidates[at_least(np.take(self.keys, candidates, axis=0), a, t)]
        hits.sort()
        return hits

    @property
    def nbytes(self) -> int:
        """Bytes of the float64 copy of the keys kept for the exact filter (peers add theirs)."""
        return self.keys.nbytes

    def __repr__(self) -> str:
        return f"{type(self).__name__}(n={self.n}, d={self.d})"


class FaissFlat(_Peer):
    """faiss ``IndexFlatIP.range_search``: an exact O(n d) scan in float32.

    faiss reports scores ``> radius`` computed in float32. The float32 score of k differs from
    the exact one by at most about ``(d + 2) u sum_i |a_i| |k_i|`` (u = 2^-24: rounding a and k
    to float32, then d products and sums), plus what underflows below the float32 range (at
    most ``2^-149 (1 + |a_i| + |k_i|)`` a term). Searching with

        radius = t - 2 (d + 2) u max_i |a_i| M_1 - 2 d 2^-149 (1 + max|a| + max|k|)

    (M_1 the largest ``sum_i |k_i|``: no squares, valid at every scale) loses no key with
    ``<a, k> >= t``, ties included; the candidates are then filtered exactly (``_exact``).
    """

    name = "faiss-flat"

    def __init__(self, keys: object) -> None:
        super().__init__(keys)
        faiss = require("faiss", "peers", "FaissFlat (faiss-cpu)")
        if np.abs(self.keys).max() > 1e18:
            raise ValueError("FaissFlat works in float32: keys must have magnitude <= 1e18")
        self._max_abs = float(np.abs(self.keys).max())
        self.index = faiss.IndexFlatIP(self.d)
        self.index.add(self.keys.astype(np.float32))

    def query(self, a: object, t: object) -> np.ndarray:
        """Sorted ids of every key with ``<a, k> >= t``."""
        a, t = self._args(a, t)
        if np.abs(a).max(initial=0.0) > 1e18:
            raise ValueError("FaissFlat works in float32: a must have magnitude <= 1e18")
        big_a = float(np.abs(a).max(initial=0.0))
        margin = (2.0 * (self.d + 2) * UNIT_ROUNDOFF32 * big_a * self.max_l1
                  + 2.0 * self.d * ETA32 * (1.0 + big_a + self._max_abs))
        radius = np.float32(t - margin - 1e-30)
        if radius >= t - margin:  # float32 rounded the radius up: step one float32 down
            radius = np.nextafter(radius, np.float32(-np.inf))
        lims, _, labels = self.index.range_search(a.astype(np.float32)[None, :], float(radius))
        return self._exact(labels[lims[0]:lims[1]], a, t)

    @property
    def nbytes(self) -> int:
        return super().nbytes + self.n * self.d * 4


class BallReduction(_Peer):
    """Inner-product range search as a Euclidean ball query (Bachrach et al. 2014).

    Each key k becomes ``k' = [k, sqrt(M^2 - ||k||^2)]`` (M the largest key norm, so
    ``||k'|| = M``), and a query q becomes ``q' = [q / ||q||, 0]``. Then
    ``||q' - k'||^2 = 1 + M^2 - 2 <q, k> / ||q||``, so ``<q, k> >= t`` iff
    ``||q' - k'|| <= r`` with ``r^2 = 1 + M^2 - 2 t / ||q||`` (nothing when r^2 < 0). The ball is
    widened by a rounding margin and the candidates filtered exactly. Keys and query are first
    divided by powers of two (exact) that bring their largest coordinates near 1, and t with
    them, so that no square underflows or overflows at any scale.

    ``kind``: "sklearn-ball" (``sklearn.neighbors.BallTree``), "sklearn-kd"
    (``sklearn.neighbors.KDTree``) or "scipy-ckd" (``scipy.spatial.cKDTree``).
    """

    KINDS = ("sklearn-ball", "sklearn-kd", "scipy-ckd")

    def __init__(self, keys: object, kind: str = "sklearn-ball") -> None:
        if kind not in self.KINDS:
            raise ValueError(f"kind must be one of {list(self.KINDS)}; got {kind!r}")
        super().__init__(keys)
        self.kind = self.name = kind
        self._key_exp = _exponent(float(np.abs(self.keys).max()))
        unit = np.ldexp(self.keys, -self._key_exp)  # largest coordinate in [0.5, 1)
        sq = (unit**2).sum(axis=1)
        self.max_norm = float(np.sqrt(sq.max()))  # M of the scaled keys, at most sqrt(d)
        lift = np.sqrt(np.maximum(self.max_norm**2 - sq, 0.0))
        lifted = np.column_stack([unit, lift])
        # Rounding of ||q' - k'||^2, of the lift and of r^2, all relative to 1 + M^2.
        self._slack2 = 64.0 * (self.d + 4) * UNIT_ROUNDOFF * (1.0 + self.max_norm**2)
        if kind == "scipy-ckd":
            from scipy.spatial import cKDTree  # SciPy: a dependency of hsr_lab itself

            self.tree = cKDTree(lifted)
        else:
            neighbors = require("sklearn.neighbors", "peers", f"BallReduction({kind!r})")
            tree = neighbors.BallTree if kind == "sklearn-ball" else neighbors.KDTree
            self.tree = tree(lifted)

    def query(self, a: object, t: object) -> np.ndarray:
        """Sorted ids of every key with ``<a, k> >= t``."""
        a, t = self._args(a, t)
        a_exp = _exponent(float(np.abs(a).max(initial=0.0)))
        unit = np.ldexp(a, -a_exp)
        norm = float(np.linalg.norm(unit))
        if norm == 0.0:  # every score is exactly 0
            return np.arange(self.n, dtype=np.int64) if t <= 0 else np.zeros(0, np.int64)
        # <a, k> >= t  iff  <unit / norm, k / 2^key_exp> >= t / (2^(a_exp + key_exp) norm)
        r2 = 1.0 + self.max_norm**2 - 2.0 * float(np.ldexp(t, -a_exp - self._key_exp)) / norm
        if r2 < -self._slack2:
            return np.zeros(0, dtype=np.int64)
        reach = 2.0 + self.max_norm  # every lifted key lies within 1 + M of the query point
        radius = min(float(np.sqrt(max(r2, 0.0) + self._slack2)), reach)
        point = np.append(unit / norm, 0.0)
        if self.kind == "scipy-ckd":
            candidates = self.tree.query_ball_point(point, radius, return_sorted=False)
        else:
            candidates = self.tree.query_radius(point[None, :], radius)[0]
        return self._exact(candidates, a, t)

    @property
    def nbytes(self) -> int:
        """The float64 keys plus the lifted copy the tree holds (its node arrays not counted)."""
        return super().nbytes + self.n * (self.d + 1) * 8

    def __repr__(self) -> str:
        return f"BallReduction(kind={self.kind!r}, n={self.n}, d={self.d})"


class QuestPages(_Peer):
    """Quest's page bound: pages of consecutive keys, kept when their box can reach t.

    Page p holds keys ``p * page_size ..``; with m and M the element-wise min and max of its
    keys, every key k of the page has ``<q, k> <= sum_i max(q_i m_i, q_i M_i)``
    ``= <max(q, 0), M> + <min(q, 0), m>`` (``attention.maskers.pages.page_upper_bound``, the
    one copy of Quest's bound). Pages whose bound (plus a rounding margin) reaches t are scanned
    with one gather and one product. A kd-tree applies the same box test recursively.
    """

    name = "quest"

    def __init__(self, keys: object, page_size: int = 16) -> None:
        super().__init__(keys)
        self.page_size = as_positive_int("page_size", page_size)
        self.lo, self.hi = page_bounds(self.keys, self.page_size)
        self._max_abs = float(np.abs(self.keys).max())

    def query(self, a: object, t: object) -> np.ndarray:
        """Sorted ids of every key with ``<a, k> >= t``."""
        a, t = self._args(a, t)
        bound = page_upper_bound(a[None, :], self.lo, self.hi)[0]
        slack = 4.0 * (self.d + 2) * UNIT_ROUNDOFF * float(np.abs(a).sum()) * self._max_abs
        pages = np.flatnonzero(bound + (slack + self.d * TINY) >= t)
        ids = (pages[:, None] * self.page_size + np.arange(self.page_size)).ravel()
        return self._exact(ids[ids < self.n], a, t)  # ids >= n are padding

    @property
    def nbytes(self) -> int:
        return super().nbytes + self.lo.nbytes + self.hi.nbytes

    def __repr__(self) -> str:
        return f"QuestPages(n={self.n}, d={self.d}, page_size={self.page_size})"
