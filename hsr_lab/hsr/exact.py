"""The exact inner product, for the few points whose floating-point score cannot decide.

Every backend scores its points in floating point, and ``numerics`` bounds how far a computed
score can lie from the exact ``<a, x>``. A point whose score lies within that band of t is
handed here, where ``<a, x> - t`` is evaluated without any error and only its sign is kept
(``at_least``); attention asks for the correctly rounded ``<a, x>`` instead (``nearest_dot``).
Both work on a whole batch of pairs at once, in a few dozen NumPy passes over the batch, so a
million ties cost a few dozen vectorised passes, not a million Python sums.

For each pair (a, x, t), with ``e_a`` and ``e_x`` the exponents of ``max_i |a_i|`` and
``max_i |x_i|`` (``frexp``):

1. **Scale** by powers of two, which is exact: ``a' = 2^-e_a a``, ``x' = 2^-e_x x``,
   ``t' = 2^-(e_a + e_x) t``, so every ``|a'_i|, |x'_i| < 1`` and ``|<a', x'>| < d``. A pair
   with ``|t'| >= d`` is decided by the sign of t alone.
2. **TwoProduct** (Dekker, with Veltkamp's split into 26-bit halves): ``a'_i x'_i = p_i + e_i``
   exactly, with ``p_i = fl(a'_i x'_i)``. This is error-free when no product underflows, which
   holds when every nonzero scaled coordinate is at least ``2^-480`` (products >= 2^-960).
3. **Distil** the 2d + 1 terms ``p, e, -t'``, whose exact sum is ``<a', x'> - t'``: a pass of
   VecSum (a cascade of Knuth's TwoSum, Ogita, Rump and Oishi 2005) keeps the exact sum and
   leaves ``fl(sum)`` in the last term, the rounding errors before it. Once the last term
   exceeds the sum of the others' magnitudes (or they are all zero) its sign is the exact sign;
   for ``nearest_dot``, once that sum is below half the gap to its float neighbours, the last
   term is the correctly rounded sum. Ties on exact data (integers, zero rows) settle in the
   first pass; a random near-tie in the second.

A pair outside the scaling range of step 2, or still open after ``MAX_PASSES`` passes (a sum
so close to 0, or for ``nearest_dot`` to a rounding midpoint, that six passes cannot tell),
is settled with ``fractions.Fraction``: rare, and
counted in ``SETTLED`` beside the pairs settled in bulk (and those whose float64 score was
exact to begin with: ``exactly_computed``). ``at_least_one`` is the readable form
(fractions) used by the pure-Python backends, and ``at_least_jit`` the scalar form inlined by
the compiled walk. ``fractions.Fraction`` is also the oracle of the tests.
"""

from __future__ import annotations

import math
from collections import Counter
from fractions import Fraction

import numpy as np

from .numerics import ETA, _jitable, band64

SPLIT = 2.0**27 + 1.0  # Veltkamp's splitter: x = hi + lo, each with at most 26 significant bits
LOW = 2.0**-480  # the smallest nonzero scaled coordinate: products stay above 2^-960
MAX_PASSES = 6  # VecSum passes before a pair goes to fractions (two settle any random tie)
CHUNK = 1 << 14  # pairs distilled at once: (2d + 1) rows of CHUNK floats stay in cache
SETTLED: Counter[str] = Counter()  # pairs settled: "grid" (their float64 score is exact),
# "bulk" (error-free transformations) or "fractions"


def at_least(X: np.ndarray, A: np.ndarray, t: np.ndarray | float) -> np.ndarray:
    """``<A_e, X_e> >= t_e`` in exact arithmetic for every pair e, as a bool array.

    X (k, d) holds points (float32 or float64: both convert to float64 exactly), A one query
    (d,) or one per pair (k, d), t one threshold or one per pair (k,). The pairs come from a
    band of float32 or float64 scores around t; each is first scored in float64, and those
    outside its own ``band64`` (nearly all the float32 ones) are decided there, as are those
    whose float64 score is exact (a zero query or point, or products on a coarse grid: see
    ``exactly_computed``). The rest take steps 1 to 3.
    """
    X = np.asarray(X, dtype=np.float64)
    k, d = X.shape
    A = np.asarray(A, dtype=np.float64)
    one = A.ndim == 1
    t = np.asarray(t, dtype=np.float64)
    if k == 0:
        return np.zeros(0, dtype=bool)
    scores = X @ A if one else np.einsum("kd,kd->k", X, A)
    max_a = np.abs(A).max(initial=0.0) if one else np.abs(A).max(axis=1)
    reach = np.abs(X).sum(axis=1)
    band = band64(d, max_a, reach, t)
    out = scores >= t
    # unsure: within the band (fl(scores - t) errs far less than the band's slack), and not
    # a zero query or point, whose score 0 is exact
    unsure = (np.abs(scores - t) <= band) & (max_a > 0) & (reach > 0)
    (unsure,) = np.nonzero(unsure)
    if len(unsure):  # ties on integer or coarse dyadic data: their float64 scores are exact
        grid = _grid(X[unsure]).min(axis=1) + (
            _grid(A).min() if one else _grid(A[unsure]).min(axis=1))
        bound = (max_a if one else max_a[unsure]) * reach[unsure]
        on_grid = _fits_grid(bound, grid)
        SETTLED["grid"] += int(np.count_nonzero(on_grid))
        unsure = unsure[~on_grid]
    if len(unsure) == 0:
        return out
    A = np.broadcast_to(A, (k, d))
    t = np.broadcast_to(t, (k,))
    for lo in range(0, len(unsure), CHUNK):
        e = unsure[lo:lo + CHUNK]
        out[e] = _signs(A[e], X[e], t[e]) >= 0
    return out


def nearest_dot(A: np.ndarray, X: np.ndarray) -> np.ndarray:
    """The correctly rounded ``fl(<A_e, X_e>)`` of every pair e (rows of A and X, k x d)."""
    A = np.asarray(A, dtype=np.float64)
    X = np.asarray(X, dtype=np.float64)
    out = np.empty(len(A))
    for lo in range(0, len(A), CHUNK):
        out[lo:lo + CHUNK] = _nearest(A[lo:lo + CHUNK], X[lo:lo + CHUNK])
    return out


def at_least_one(a: list[float], x: list[float], t: float) -> bool:
    """``<a, x> >= t`` for one pair, in rational arithmetic (the pure-Python backends' form);
    a zero query or point scores exactly 0."""
    if not any(a) or not any(x):
        return 0.0 >= t
    SETTLED["fractions"] += 1
    exact = sum((Fraction(u) * Fraction(v) for u, v in zip(a, x, strict=True)), Fraction(0))
    return exact >= Fraction(t)


def _exact_dot(a: np.ndarray, x: np.ndarray) -> Fraction:
    """``<a, x>`` as a fraction (the fallback of the bulk paths)."""
    return sum((Fraction(u) * Fraction(v) for u, v in zip(a.tolist(), x.tolist(), strict=True)),
               Fraction(0))


def exactly_computed(Q: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Rows i of Q (m, d) whose float64 inner product with every row of K (n, d) is exact,
    in any summation order (FMA included): a certificate that spares their ties any settling.

    Every entry of q_i is a multiple of ``2^g_i`` and every entry of K of ``2^G`` (``_grid``),
    so every product and partial sum of ``<q_i, k_j>`` is a multiple of ``2^(g_i + G)``, at
    most ``||q_i||_1 max|K|`` in magnitude: all are floats, hence exact, when that is at most
    ``2^53 2^(g_i + G)`` (tested against 2^52, for the rounding of the test itself) and
    ``g_i + G >= -1074``. A zero row always qualifies. Integer data
    (and any data on a coarse dyadic grid) qualifies; Gaussian data does not.
    """
    Q = np.asarray(Q, dtype=np.float64)
    l1 = np.abs(Q).sum(axis=1)
    if len(K) == 0 or not l1.any():
        return np.ones(len(Q), dtype=bool)
    g = _grid(Q).min(axis=1) + _grid(np.asarray(K, dtype=np.float64)).min()
    return (l1 == 0) | _fits_grid(l1 * float(np.abs(K).max()), g)


def _fits_grid(bound: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Whether sums of products on the grid ``2^grid`` (every product a multiple of it), each
    partial sum at most ``bound`` in magnitude, are all floats: ``bound <= 2^52 2^grid`` (one
    bit of room for the rounding of ``bound`` itself) and ``grid >= -1074``."""
    top = np.ldexp(1.0, np.clip(grid + 52, -1074, 1023))
    with np.errstate(over="ignore"):
        return (bound <= top) & (grid >= -1074)


def _grid(X: np.ndarray) -> np.ndarray:
    """Per entry of X (float64), the exponent e of its lowest set bit (X is a multiple of
    2^e); 2^11 for a zero, so that it never lowers a minimum."""
    bits = np.ascontiguousarray(X).view(np.uint64)
    field = (bits >> np.uint64(52)) & np.uint64(0x7FF)
    significand = bits & np.uint64(2**52 - 1)
    significand |= np.where(field > 0, np.uint64(2**52), np.uint64(0))
    lowest = significand & (~significand + np.uint64(1))  # its lowest set bit, or 0
    zeros = np.frexp(lowest.astype(np.float64))[1] - 1  # log2 of that bit (exact: a power of 2)
    scale = np.where(field > 0, field.astype(np.int64) - 1075, -1074)
    return np.where(significand == 0, 2**11, scale + zeros)


# -- the bulk steps --------------------------------------------------------------------------
def _signs(A: np.ndarray, X: np.ndarray, t: np.ndarray) -> np.ndarray:
    """The sign (-1, 0, 1) of ``<A_e, X_e> - t_e`` for every pair e: steps 1 to 3."""
    terms, shift, ok = _products(A, X)
    d = A.shape[1]
    with np.errstate(over="ignore", under="ignore"):
        t_scaled = np.ldexp(t, -shift)
    far = np.abs(t_scaled) >= d  # |<a', x'>| < d: the sign of t decides
    sign = np.where(far, -np.sign(t), 0).astype(np.int8)
    ok &= ~far & (np.ldexp(t_scaled, shift) == t)  # t' exact (it cannot be, if it underflowed)
    rows = np.flatnonzero(ok)
    if len(rows) == len(ok):  # the usual case: every pair in range
        parts = np.concatenate([terms, -t_scaled[None]])
    elif len(rows):
        parts = np.concatenate([terms[:, rows], -t_scaled[None, rows]])
    if len(rows):
        settled, open_ = _distil(parts, want_sign=True)
        sign[rows] = settled
        ok[rows[open_]] = False
    rare = np.flatnonzero(~(ok | far))
    SETTLED["bulk"] += len(t) - len(rare)
    for e in rare.tolist():  # fractions
        SETTLED["fractions"] += 1
        diff = _exact_dot(A[e], X[e]) - Fraction(float(t[e]))
        sign[e] = (diff > 0) - (diff < 0)
    return sign


def _nearest(A: np.ndarray, X: np.ndarray) -> np.ndarray:
    """``nearest_dot`` of one chunk: steps 1 to 3, then the scaling undone."""
    terms, shift, ok = _products(A, X)
    out = np.zeros(len(A))
    rows = np.flatnonzero(ok)
    if len(rows):
        value, open_ = _distil(terms[:, rows], want_sign=False)
        with np.errstate(over="ignore", under="ignore"):
            back = np.ldexp(value, shift[rows])
        # Undoing the scale is exact unless the result is subnormal (then it would round twice)
        exact = (np.abs(back) >= 2.0**-1022) | (value == 0)
        exact[open_] = False
        out[rows] = back
        ok[rows[~exact]] = False
    SETTLED["bulk"] += int(np.count_nonzero(ok))
    for e in np.flatnonzero(~ok).tolist():  # rare: fractions (float() rounds correctly)
        SETTLED["fractions"] += 1
        out[e] = float(_exact_dot(A[e], X[e]))
    return out


def _products(A: np.ndarray, X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Steps 1 and 2: the terms (2d, k) ``p_i`` and ``e_i`` of each pair's scaled products, the
    power of two ``e_a + e_x`` each pair was scaled by, and whether it is in range (k,)."""
    a, x = np.array(A.T, order="C"), np.array(X.T, order="C")  # (d, k): reductions along d
    shift_a = np.frexp(np.abs(a).max(axis=0))[1]  # run across the pairs, row by row
    shift_x = np.frexp(np.abs(x).max(axis=0))[1]
    ok = np.ones(a.shape[1], dtype=bool)
    for v, shift in ((a, shift_a), (x, shift_x)):
        nonzero = v != 0
        with np.errstate(under="ignore"):
            np.ldexp(v, -shift, out=v)
        ok &= (~nonzero | (np.abs(v) >= LOW)).all(axis=0)  # no scaled coordinate lost bits
    p = a * x
    a_hi, a_lo = _halves(a)
    x_hi, x_lo = _halves(x)
    err = ((a_hi * x_hi - p) + a_hi * x_lo + a_lo * x_hi) + a_lo * x_lo  # a x - p, exactly
    return np.concatenate([p, err]), shift_a + shift_x, ok


def _halves(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Veltkamp's split: ``a = hi + lo`` exactly, each half with at most 26 significant bits
    (|a| < 1 here: the splitter cannot overflow)."""
    c = SPLIT * a
    hi = c - (c - a)
    return hi, a - hi


def _distil(terms: np.ndarray, want_sign: bool) -> tuple[np.ndarray, np.ndarray]:
    """Step 3 on terms (n, k), one pair per column: the sign of each column's exact sum
    (``want_sign``) or its correctly rounded value, and the columns still open after
    ``MAX_PASSES`` (their entries of the result are meaningless)."""
    terms = terms[np.flatnonzero((terms != 0).any(axis=1))]  # rows zero for every pair
    k = terms.shape[1]
    result = np.zeros(k, dtype=np.int8 if want_sign else np.float64)
    if len(terms) == 0:  # every sum is exactly 0
        return result, np.zeros(0, dtype=np.int64)
    cols = np.arange(k)
    slack = 1.0 + len(terms) * 2.0**-50  # covers the rounding of the sum of magnitudes
    for _ in range(MAX_PASSES):
        _vec_sum(terms)
        last = terms[-1]
        rest = np.abs(terms[:-1]).sum(axis=0) * slack  # >= |exact sum - last|
        if want_sign:
            done = (rest == 0) | (np.abs(last) > rest)
            result[cols[done]] = np.sign(last[done])
        else:
            gap = np.minimum(np.nextafter(last, np.inf) - last, last - np.nextafter(last, -np.inf))
            done = (rest == 0) | (rest < 0.5 * gap)
            result[cols[done]] = last[done]
        if done.all():
            return result, np.zeros(0, dtype=np.int64)
        terms, cols = terms[:, ~done], cols[~done]
    return result, cols


def _vec_sum(terms: np.ndarray) -> None:
    """One VecSum pass, in place over the rows of terms (n, k): row i becomes the running sum
    of rows 0..i and row i - 1 its rounding error (Knuth's TwoSum: exact, for any magnitudes
    short of overflow). The exact column sums are unchanged; the last row holds fl(sum)."""
    for i in range(1, len(terms)):
        a, b = terms[i - 1], terms[i]
        s = a + b
        b_virtual = s - a
        err = (a - (s - b_virtual)) + (b - b_virtual)
        terms[i], terms[i - 1] = s, err


# -- the scalar form, for the compiled walk ----------------------------------------------------
@_jitable
def at_least_jit(rows: np.ndarray, j: int, a: np.ndarray, t: float,
                 terms: np.ndarray) -> int:  # pragma: no cover
    """``<a, rows[j]> >= t`` exactly: 1 or 0, or -1 where the pair is outside the range of the
    error-free steps (the caller then asks ``at_least``). Steps 1 to 3, for one pair, in the
    caller's scratch ``terms`` (2d + 1 floats: no allocation per pair). A t whose scaled
    ``t' = 2^-(e_a + e_x) t`` underflows is replaced by t' rounded up to a multiple of 2^-1074,
    which the exact sum of the float terms (itself such a multiple) reaches iff it reaches t'.
    """
    d = len(a)
    max_a, max_x = 0.0, 0.0
    for i in range(d):
        max_a = max(max_a, abs(a[i]))
        max_x = max(max_x, abs(np.float64(rows[j, i])))
    if max_a == 0 or max_x == 0:  # a zero query or point scores exactly 0
        return 1 if 0.0 >= t else 0
    shift_a, shift_x = math.frexp(max_a)[1], math.frexp(max_x)[1]
    t_scaled = math.ldexp(t, -(shift_a + shift_x))
    if abs(t_scaled) >= d:
        return 1 if t < 0 else 0
    back = math.ldexp(t_scaled, shift_a + shift_x)
    if back < t:  # t' underflowed below t 2^-shift: every float term, and so the exact sum of
        t_scaled += ETA  # them, is a multiple of 2^-1074; compared with t' rounded up to it
    for i in range(d):
        x_i = np.float64(rows[j, i])
        u = math.ldexp(a[i], -shift_a)
        v = math.ldexp(x_i, -shift_x)
        # out of range: a nonzero coordinate scaled below LOW, or flushed to 0 by the scaling
        # (tested on the unscaled value, so that its product is never dropped)
        if (a[i] != 0 and abs(u) < LOW) or (x_i != 0 and abs(v) < LOW):
            return -1
        p = u * v
        c = SPLIT * u
        u_hi = c - (c - u)
        u_lo = u - u_hi
        c = SPLIT * v
        v_hi = c - (c - v)
        v_lo = v - v_hi
        terms[i] = p
        terms[d + i] = ((u_hi * v_hi - p) + u_hi * v_lo + u_lo * v_hi) + u_lo * v_lo
    terms[2 * d] = -t_scaled
    slack = 1.0 + (2 * d + 1) * 2.0**-50
    for _ in range(MAX_PASSES):
        rest = 0.0
        for i in range(1, 2 * d + 1):
            s = terms[i - 1] + terms[i]
            b_virtual = s - terms[i - 1]
            err = (terms[i - 1] - (s - b_virtual)) + (terms[i] - b_virtual)
            terms[i], terms[i - 1] = s, err
            rest += abs(err)
        last = terms[2 * d]
        if rest == 0 or abs(last) > rest * slack:
            return 1 if last >= 0 else 0
    return -1
