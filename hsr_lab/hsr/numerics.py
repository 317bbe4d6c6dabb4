"""Floating-point facts every structure and attention path relies on, in one place.

A kd-tree decides a whole box at once from two bounds on ``<a, x>``; those bounds, and the
exact per-point test ``<a, x> >= t``, are computed in float64 in different orders. They can
only disagree by rounding, so every box bound is widened by a margin that covers the rounding
error of any summation order (Higham, *Accuracy and Stability of Numerical Algorithms*, 3.1):

    | fl(<a, x>) - <a, x> |  <=  gamma_d  sum_i |a_i| |x_i|  +  d TINY,
    gamma_d = d u / (1 - d u),  u = 2^-53.

``margin(d)`` is a comfortable multiple of ``gamma_d`` (it also covers the box bounds' own
products and the rounding of ``t``). ``TINY`` covers underflow: a product below the smallest
normal float loses at most ``TINY`` absolutely. The sum ``sum_i |a_i| |x_i|`` is bounded with
L1-style quantities (no squares), so the margin stays valid at every finite scale: squared
norms of 1e-170 underflow to 0, absolute values do not. The kd-trees use, over a box
``[lo, hi]``, ``sum_i |a_i| |x_i| <= max_i |a_i| * rad`` with ``rad = sum_i max(|lo_i|, |hi_i|)``.

``MAX_COORD`` and ``MAX_PRODUCT`` keep every inner product far from float64 overflow.
"""

from __future__ import annotations

UNIT_ROUNDOFF = 2.0**-53  # u: |fl(x) - x| <= u |x| for a normal float64 result
TINY = 2.0**-1022  # smallest normal float64: the absolute error of an underflowing product
MAX_COORD = 1e150  # largest stored coordinate: <a, x> of two such points stays finite
MAX_PRODUCT = 1e300  # largest allowed bound on |<q, k>|, far below the overflow at 1.8e308


def margin(d: int) -> float:
    """Relative rounding margin of a score or a box bound in d dimensions: ``8 (d + 2) u``.

    Any two ways of summing ``<a, x>`` agree to within ``margin(d) sum_i |a_i| |x_i| + d TINY``.
    """
    return 8.0 * (d + 2) * UNIT_ROUNDOFF


def score(a: list[float], x: list[float]) -> float:
    """<a, x> summed left to right in float64, the way the pure-Python code computes it."""
    s = 0.0
    for ai, xi in zip(a, x, strict=True):
        s += ai * xi
    return s
