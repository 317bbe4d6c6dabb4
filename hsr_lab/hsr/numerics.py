"""Floating-point facts every structure and attention path relies on, and the one predicate.

**The predicate.** ``<a, x> >= t`` means the exact real inner product of the stored values
(float64 keys, or float32 keys as the float32 values they are) with the float64 query a,
compared with the float64 t. Every backend (``reference``, ``numpy``, ``compiled``, ``brute``,
``layers``, ``faiss``, ``auto``), alone and in batches, reports exactly those ids. Fast paths
keep their floating-point scores and decide from them every point whose computed score lies
outside a proven error band around t (``band64``, ``band32`` below); only the points inside the
band, rare on real data, are settled exactly, in bulk (``exact.py``: error-free products and
sums, fractions for the rare pair out of their range). Box decisions of the kd-trees are
widened by a guard, ``margin(d) max_i |a_i| rad + box_floor(d, max_i |a_i|)`` (the trees'
``upper`` and ``lower`` bounds, ``reference.py``), so that a box reported whole holds only
points whose exact score is at least t, and a box pruned only points whose exact score is
below t. Attention decides on its own, similar rule (``attention/scores.py``), with the same
exact machinery.

**Float64 scores.** However ``<a, x>`` is summed in float64 (any order, FMA included; Higham,
*Accuracy and Stability of Numerical Algorithms*, 3.1):

    | fl(<a, x>) - <a, x> |  <=  gamma_d  sum_i |a_i| |x_i|  +  d TINY,
    gamma_d = d u / (1 - d u),  u = 2^-53.

``margin(d) = 8 (d + 2) u`` is a comfortable multiple of ``gamma_d``, and the sum is bounded with
L1-style quantities (no squares), so the bound holds at every finite scale: squared norms of
1e-170 underflow to 0, absolute values do not. With ``rad >= sum_i |x_i|`` (a leaf's, or the
largest over the keys), ``sum_i |a_i| |x_i| <= max_i |a_i| rad``, and

    band64 = margin(d) max_i |a_i| rad + d TINY + 2^-52 |t|

bounds ``|fl(<a, x>) - <a, x>|`` with room for the rounding of ``t +- band64`` (the last term):
a score below ``t - band64`` is out, one at or above ``t + band64`` is in, exactly.

**Box bounds.** A kd-tree bounds ``<a, x>`` over a box ``[lo, hi]`` by ``<c, a> +- <h, |a|> +-
(margin(d) max_i |a_i| rad + d (TINY + 2^-1073 max_i |a_i|))``, with ``c = fl((lo + hi) / 2)``,
``h = fl((hi - lo) / 2)`` (rounded up to ``2^-1074`` where the halving of a width of ``2^-1074``
gives 0, so that ``h = 0`` means ``lo = hi``: a box of one point, which the trees decide by that
point's exact score) and ``rad = sum_i max(|lo_i|, |hi_i|)``, every sum in float64 in any order.
Against the exact extremes ``sum_i max(a_i lo_i, a_i hi_i)`` (and min) the computed bound can
err by the rounding of c and h (``2 u max|a| rad``, plus half a subnormal step each, ``d max|a|
2^-1074``, which the ``2^-1073`` term covers), and by the rounding of its own sum of ``2d + 2``
products (``gamma_{2d+2}`` times about ``max|a| rad``, plus ``(2d + 2) 2^-1075`` of underflow,
covered by ``d TINY``). ``margin(d)`` covers ``2 u + gamma_{2d+2} (1 + margin(d))`` with room to
spare, so a pruned box has every exact score below t and a box reported whole every exact score
at least t.

``MAX_COORD`` and ``MAX_PRODUCT`` keep every inner product far from float64 overflow.

**float32 keys.** Keys stored as float32 are scored in float32: ``s32 = fl32(<fl32(a), x>)``.
A point is decided from ``s32`` only outside a band around t, and settled exactly inside it:

    | s32 - <a, x> |  <=  margin32(d) max_i |a_i| rad  +  ETA32 rad  +  2 d TINY32,

with ``rad >= sum_i |x_i|``, u32 = 2^-24, ``margin32(d) = 4 (d + 2) u32``, ``ETA32 = 2^-149`` and
``TINY32 = 2^-126``. Proof: rounding a to float32 moves each a_i by at most
``u32 |a_i| + ETA32/2`` (half the subnormal spacing), so ``<fl32(a), x>`` is within
``u32 sum |a_i||x_i| + ETA32/2 sum |x_i|`` of ``<a, x>``; the float32 sum of any order (FMA
included) adds ``gamma_d(u32) sum |fl32(a)_i| |x_i| + d TINY32`` (underflow). With
``d u32 <= 1/16``, ``gamma_d(u32) (1 + u32) + u32 <= (1.07 d + 1.1) u32``, which
``4 (d + 2) u32`` covers with room for the float64 rounding of ``rad`` and of the band itself;
``sum |a_i||x_i| <= max_i |a_i| rad`` as for float64. ``band32`` adds ``2^-52 |t|`` for the
rounding of ``t +- band``, and ``below32`` / ``above32`` turn ``t - band`` and ``t + band`` into
float32 thresholds that are at least as wide, so each score is compared exactly. The float32 path
is taken only while ``fl32(a)`` and every product stay far from float32 overflow and
``d <= 2^20`` (``float32_safe``); otherwise the keys are scored in float64 (``band64``). The
kd-tree's box bounds stay in float64 for either dtype (the float32 values convert exactly).
"""

from __future__ import annotations

import numpy as np

try:  # the compiled kd-tree (compiled.py) calls the scalar rules below from machine code
    from numba.extending import register_jitable as _jitable
except ImportError:  # pragma: no cover - without Numba they are plain Python functions
    def _jitable(fn):  # type: ignore[no-redef]
        return fn

UNIT_ROUNDOFF = 2.0**-53  # u: |fl(x) - x| <= u |x| for a normal float64 result
TINY = 2.0**-1022  # smallest normal float64: the absolute error of an underflowing product
ETA = 2.0**-1074  # smallest subnormal float64: twice the largest error of halving into it
MAX_COORD = 1e150  # largest stored coordinate: <a, x> of two such points stays finite
MAX_PRODUCT = 1e300  # largest allowed bound on |<q, k>|, far below the overflow at 1.8e308
UNIT_ROUNDOFF32 = 2.0**-24  # u32, float32's unit roundoff
TINY32 = 2.0**-126  # smallest normal float32
ETA32 = 2.0**-149  # smallest subnormal float32: twice the largest error of rounding into it
_SPAN32 = 2.0**127  # thresholds are clamped here: float32_safe keeps every score below 2^101
MAX_PRODUCT32 = 2.0**100  # largest |<a, x>| bound scored in float32 (overflow at 2^128)


@_jitable
def margin(d: int) -> float:
    """Relative rounding margin of a score or a box bound in d dimensions: ``8 (d + 2) u``.

    Any float64 sum of ``<a, x>`` lies within ``margin(d) sum_i |a_i| |x_i| + d TINY`` of the
    exact one, with room to spare (module docstring).
    """
    return 8.0 * (d + 2) * UNIT_ROUNDOFF


@_jitable
def underflow_floor(d: int) -> float:
    """The absolute part of a score's rounding bound, ``d TINY``: a float64 sum of d products
    errs by at most ``gamma_d sum_i |a_i| |x_i| + d TINY`` (module docstring), and where the
    relative part underflows to 0 (subnormal keys or queries) this floor still covers the
    error. Every band and tolerance adds it (``band64``, ``box_floor``, attention's
    ``scores.tolerance``), so that a score within rounding of t is always settled exactly."""
    return d * TINY


@_jitable
def band64(d: int, max_abs_a: np.ndarray | float, rad: np.ndarray | float,
           t: np.ndarray | float) -> np.ndarray | float:
    """Half-width of the band around t inside which a float64 score decides nothing:
    ``margin(d) max|a| rad + d TINY + 2^-52 |t|`` (module docstring)."""
    return margin(d) * max_abs_a * rad + underflow_floor(d) + 2.0**-52 * np.abs(t)


@_jitable
def box_floor(d: int, max_abs_a: float) -> float:
    """The absolute part of a box bound's margin: ``d (TINY + 2^-1073 max|a|)``, the products'
    underflow and the halving of subnormal box corners (module docstring)."""
    return underflow_floor(d) + d * 2 * ETA * max_abs_a


def score(a: list[float], x: list[float]) -> float:
    """<a, x> summed left to right in float64, the way the pure-Python code computes it."""
    s = 0.0
    for ai, xi in zip(a, x, strict=True):
        s += ai * xi
    return s


@_jitable
def margin32(d: int) -> float:
    """Relative band of a float32 score against the exact one in d dimensions:
    ``4 (d + 2) u32`` (module docstring)."""
    return 4.0 * (d + 2) * UNIT_ROUNDOFF32


@_jitable
def band32(d: int, max_abs_a: np.ndarray | float, rad: np.ndarray | float,
           t: np.ndarray | float) -> np.ndarray | float:
    """Half-width of the band around t inside which a float32 score decides nothing:
    ``margin32(d) max|a| rad + ETA32 rad + 2 d TINY32 + 2^-52 |t|``."""
    return (margin32(d) * max_abs_a * rad + ETA32 * rad + 2 * d * TINY32
            + 2.0**-52 * np.abs(t))


@_jitable
def float32_safe(d: int, max_abs_a: float, max_abs_x: float) -> bool:
    """Whether a query with these magnitudes may be scored in float32: ``fl32(a)`` finite and
    every product and partial sum far below float32 overflow, and ``d u32 <= 1/16``."""
    return d <= 2**20 and max_abs_a <= MAX_PRODUCT32 and max_abs_a * max_abs_x * d <= MAX_PRODUCT32


def abs_max(a: np.ndarray) -> float:
    """``max_i |a_i|`` of a vector (Python's abs over a short one: a NumPy reduction costs more)."""
    return float(max(map(abs, a.tolist()), default=0.0)) if a.size <= 32 else float(
        np.abs(a).max(initial=0.0))


def below32(x: np.ndarray | float) -> np.ndarray | np.float32:
    """A float32 at most x (elementwise), within two float32 units of it: for a float32 score
    s with |s| <= 2^126, ``s < below32(x)`` implies ``s < x``. ``x - 2^-23 |x| - 2^-149``
    rounded to nearest: the widening exceeds half a float32 unit at every scale."""
    if isinstance(x, float):  # one value: scalar arithmetic, no arrays
        return below32_one(x)
    x = np.clip(x, -_SPAN32, _SPAN32)
    return (x - np.abs(x) * 2.0**-23 - ETA32).astype(np.float32)


def above32(x: np.ndarray | float) -> np.ndarray | np.float32:
    """A float32 at least x (elementwise), within two float32 units of it: for a float32
    score s with |s| <= 2^126, ``s >= above32(x)`` implies ``s >= x``."""
    if isinstance(x, float):
        return above32_one(x)
    x = np.clip(x, -_SPAN32, _SPAN32)
    return (x + np.abs(x) * 2.0**-23 + ETA32).astype(np.float32)


@_jitable
def below32_one(x: float) -> np.float32:
    """``below32`` of one float."""
    x = min(max(x, -_SPAN32), _SPAN32)
    return np.float32(x - abs(x) * 2.0**-23 - ETA32)


@_jitable
def above32_one(x: float) -> np.float32:
    """``above32`` of one float."""
    x = min(max(x, -_SPAN32), _SPAN32)
    return np.float32(x + abs(x) * 2.0**-23 + ETA32)
