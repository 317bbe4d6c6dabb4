"""The paper's formulas, as functions: thresholds, sparsity, HSR costs, running times, errors.

Sparsity in the paper's Gaussian setting. Let the keys k_j be i.i.d. N(0, sigma_k^2 I_d) and
fix a query q. The score s_j = <q, k_j> / sqrt(d) is then exactly N(0, sigma_a^2) with

    sigma_a = sigma_k ||q|| / sqrt(d)                                    (score_sigma)

and the scores of one row are independent. The Chernoff (Gaussian tail) bound gives

    P(s_j > b) <= exp(-b^2 / (2 sigma_a^2)),

and at the paper's threshold b = sigma_a sqrt(c ln n) the right-hand side is
exp(-c ln n / 2) = n^{-c/2}. With c = 0.4 that is n^{-1/5}: a row of ReLU^alpha attention has
at most n * n^{-1/5} = n^{4/5} non-zero entries in expectation (paper_bound) and, by a
Chernoff bound on the binomial count, at most 2 n^{4/5} with high probability
(paper_whp_bound). A general c gives about n^{1 - c/2}.

The exact expectation is E[k] = n Phibar(sqrt(c ln n)) (expected_activated), Phibar the
standard normal upper tail (upper_tail; written Phibar rather than Phi_c, which would read as
depending on the constant c). Mills' ratio, Phibar(t) ~ phi(t) / t with
phi(t) = exp(-t^2/2) / sqrt(2 pi),
gives at t = sqrt(c ln n)

    n^{1 - c/2} / E[k] = exp(-t^2/2) / Phibar(t) ~ sqrt(2 pi) t = sqrt(2 pi c ln n)

(mills_ratio_factor; sqrt(0.8 pi ln n) at c = 0.4). The approximation is good only for large
t, with relative error about 1/t^2: at n = 2^20 it gives 5.9 where the exact ratio is 6.7.
Either way the bound is off by a factor that grows with n, so the local log-log slope of E[k]
(local_slope) is 1 - c/2 - 1/(2 ln n) + ..., below 1 - c/2 at every finite n: a slope fitted
to measured counts (fit_exponent) over n = 10^3 .. 10^6 comes out near 0.76, not 0.8, and
that is the theory working, not failing.

Practical caveat. Part 1 of the half-space-reporting trade-off answers a query in
n^{1 - 1/floor(d/2)} + k (d >= 4; at d = 2, 3 the known bound is log n + k). At the head
dimensions of real models, d = 64 or 128, that is n^{0.97} or n^{0.98}: an asymptotic gain
over the dense scan n that is tiny (n^{-1/32} is 0.65 at n = 2^20) and that the hidden
constants depending on d swamp. Part 2 answers in log n + k but builds in n^{floor(d/2)},
n^{32} at d = 64, which is impossible. bounds_table tabulates both at d = 2, 8, 64.

Softmax at the paper's threshold (derived, ours). Kept entries are a share Phibar(sqrt(c ln n))
of the row whatever sigma_a is, but the softmax mass they carry depends on sigma_a: the tilted
Gaussian e^s phi_sigma(s) = e^{sigma^2/2} phi_sigma(s - sigma^2) gives a dropped share of mass
eps = Phi(sqrt(c ln n) - sigma_a) (gaussian_dropped_mass). Sparsity and a small eps hold
together once sigma_a exceeds sqrt(c ln n) (sigma_for_dropped_mass), i.e. for raw scores of
order log n.

Where floor(d/2) comes from. The bounds are the paper's restatement of Agarwal, Eppstein and
Matousek (1992); their floor(d/2) is that of the Upper Bound Theorem: a convex polytope with n
vertices in R^d has O(n^{floor(d/2)}) faces, attained on the moment curve
(cyclic_polytope_facets).

Every formula is an asymptotic cost "up to constants"; logarithms are natural. n (and m) are
treated as continuous sizes >= 1, so the functions are vectorised and accept floats such as
n = e^10; d must be an integer because floor(d/2) enters the exponents.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import special, stats

from hsr_lab.validate import as_float_array, as_positive_int, as_scalar

FloatOrArray = float | np.ndarray

__all__ = [
    "ExponentFit",
    "RunningTime",
    "activation_probability",
    "binomial_tail",
    "bounds_table",
    "chernoff_binomial_bound",
    "cyclic_polytope_facets",
    "decoding_cost",
    "dropped_mass_bound",
    "expected_activated",
    "fit_exponent",
    "gaussian_dropped_mass",
    "gaussian_tail_bound",
    "kdtree_depth",
    "local_slope",
    "mills_ratio_factor",
    "paper_bound",
    "paper_threshold",
    "paper_whp_bound",
    "paper_whp_failure",
    "part1_build",
    "part1_exponent",
    "part1_query_work",
    "part2_build",
    "part2_query_work",
    "prefill_cost",
    "score_sigma",
    "sigma_for_dropped_mass",
    "softmax_error_bound",
    "upper_tail",
]


# ---------------------------------------------------------------- input checks (private)


def _check_range(name: str, arr: np.ndarray, lo: float | None, hi: float | None,
                 lo_open: bool, hi_open: bool, hint: str) -> None:
    """Raise a ValueError naming ``name`` unless every value is finite and within bounds."""
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} must be finite; got {arr[~np.isfinite(arr)].flat[0]}")
    bad = np.zeros(arr.shape, dtype=bool)
    if lo is not None:
        bad |= arr <= lo if lo_open else arr < lo
    if hi is not None:
        bad |= arr >= hi if hi_open else arr > hi
    if not bad.any():
        return
    if lo is not None and hi is not None:
        cond = f"in {'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"
    elif lo is not None:
        cond = f"{'>' if lo_open else '>='} {lo:g}"
    else:
        cond = f"{'<' if hi_open else '<='} {hi:g}"
    raise ValueError(f"{name} must be {cond}{hint}; got {arr[bad].flat[0]:g}")


def _reals(name: str, value: object, *, lo: float | None = None, hi: float | None = None,
           lo_open: bool = False, hi_open: bool = False, hint: str = "") -> np.ndarray:
    """Validate a real scalar or array (finite, within bounds); return it as float64."""
    arr = as_float_array(name, value)
    _check_range(name, arr, lo, hi, lo_open, hi_open, hint)
    return arr


def _scalar(name: str, value: object, *, lo: float | None = None, hi: float | None = None,
            lo_open: bool = False, hi_open: bool = False, hint: str = "") -> float:
    """Validate a real scalar (finite, within bounds)."""
    x = as_scalar(name, value)
    _check_range(name, np.asarray(x), lo, hi, lo_open, hi_open, hint)
    return x


def _sizes(name: str, value: object) -> np.ndarray:
    """A size such as n or m: real, >= 1 (treated as a continuous variable)."""
    return _reals(name, value, lo=1.0, hint=f" ({name} is a size)")


def _c(c: object) -> float:
    """The threshold constant c of b = sigma sqrt(c ln n), in (0, 2) so 1 - c/2 is in (0, 1)."""
    return _scalar("c", c, lo=0.0, hi=2.0, lo_open=True, hi_open=True,
                   hint=" (b = sigma sqrt(c ln n); the paper uses c = 0.4)")


def _dim(d: object) -> int:
    """The head dimension d of a half-space-reporting cost: an integer >= 2."""
    d = as_positive_int("d", d)
    if d < 2:
        raise ValueError(f"d must be an integer >= 2 (floor(d/2) >= 1 in the HSR costs); got {d}")
    return d


def _out(x: np.ndarray) -> FloatOrArray:
    """Return a Python float for scalar results and the array otherwise."""
    x = np.asarray(x, dtype=np.float64)
    return float(x) if x.ndim == 0 else x


def _fmt(x: FloatOrArray) -> str:
    return f"{x:.4g}" if np.ndim(x) == 0 else np.array2string(np.asarray(x), precision=4)


# ---------------------------------------------------------------- sparsity in the Gaussian setting


PAPER_C = 0.4  # the paper's constant: b = sigma_a sqrt(0.4 ln n), so E[k] <= n^{4/5}


def paper_threshold(n: npt.ArrayLike, sigma: npt.ArrayLike = 1.0, c: float = PAPER_C
                    ) -> FloatOrArray:
    """The paper's bias b = sigma sqrt(c ln n) (c = 0.4 in the paper; n = 1 gives b = 0).

    Pass sigma = sigma_a (score_sigma) to threshold the scores s_j = <q, k_j>/sqrt(d).

    Examples
    --------
    >>> round(paper_threshold(2**20), 4)  # sqrt(0.4 ln 2^20)
    2.3548
    >>> paper_threshold([1, 2**10, 2**20], sigma=0.25).round(4).tolist()
    [0.0, 0.4163, 0.5887]
    """
    n = _sizes("n", n)
    sigma = _reals("sigma", sigma, lo=0.0, lo_open=True, hint=" (a standard deviation)")
    c = _scalar("c", c, lo=0.0, lo_open=True, hint=" (b = sigma sqrt(c ln n))")
    return _out(sigma * np.sqrt(c * np.log(n)))


def score_sigma(q_norm: npt.ArrayLike, sigma_k: float, d: int) -> FloatOrArray:
    """sigma_a = sigma_k ||q|| / sqrt(d): the std of the score s_j = <q, k_j>/sqrt(d).

    Exact for Gaussian keys k_j ~ N(0, sigma_k^2 I_d): s_j is then N(0, sigma_a^2) for fixed q.

    Examples
    --------
    A query of norm 4 against N(0, I_16) keys: scores <q, k>/sqrt(16) of std 1.

    >>> score_sigma(4.0, sigma_k=1.0, d=16)
    1.0
    """
    q_norm = _reals("q_norm", q_norm, lo=0.0, hint=" (a norm ||q||)")
    sigma_k = _scalar("sigma_k", sigma_k, lo=0.0, lo_open=True, hint=" (a standard deviation)")
    d = as_positive_int("d", d)
    return _out(sigma_k * q_norm / math.sqrt(d))


def activation_probability(b: npt.ArrayLike, sigma: npt.ArrayLike) -> FloatOrArray:
    """P(s_j > b) = Phibar(b / sigma) for s_j ~ N(0, sigma^2), Phibar the normal upper tail.

    Examples
    --------
    >>> round(activation_probability(1.0, sigma=1.0), 4), activation_probability(0.0, sigma=2.0)
    (0.1587, 0.5)
    """
    b = _reals("b", b)
    sigma = _reals("sigma", sigma, lo=0.0, lo_open=True, hint=" (a standard deviation)")
    return _out(special.ndtr(-b / sigma))


def expected_activated(n: npt.ArrayLike, c: float = PAPER_C) -> FloatOrArray:
    """E[k] = n Phibar(sqrt(c ln n)): the exact expected count of s_j > b = sigma_a sqrt(c ln n).

    It does not depend on sigma_a, since b scales with it.

    Examples
    --------
    At n = 2^20 the exact expectation is far below the paper's n^{4/5} = 65536:

    >>> round(expected_activated(2**20)), round(paper_bound(2**20))
    (9716, 65536)
    """
    n = _sizes("n", n)
    c = _c(c)
    return _out(n * special.ndtr(-np.sqrt(c * np.log(n))))


def paper_bound(n: npt.ArrayLike, c: float = PAPER_C) -> FloatOrArray:
    """n^{1 - c/2} = n exp(-b^2 / (2 sigma^2)) at b = sigma sqrt(c ln n): n^{4/5} at c = 0.4.

    Examples
    --------
    >>> round(paper_bound(2**20)), round(paper_bound(2**20, c=1.0))  # n^{4/5}, n^{1/2}
    (65536, 1024)
    """
    n = _sizes("n", n)
    c = _c(c)
    return _out(n ** (1.0 - c / 2.0))


def paper_whp_bound(n: npt.ArrayLike) -> FloatOrArray:
    """2 n^{4/5}: the paper's with-high-probability bound on the activated entries of one row.

    Examples
    --------
    >>> round(paper_whp_bound(2**10))  # 2 (2^10)^{4/5}
    512
    """
    n = _sizes("n", n)
    return _out(2.0 * n**0.8)


def upper_tail(x: npt.ArrayLike) -> FloatOrArray:
    """Phibar(x) = P(Z > x) for Z ~ N(0, 1): the standard normal upper tail (exact).

    Examples
    --------
    >>> upper_tail(0.0), round(upper_tail(1.96), 4)
    (0.5, 0.025)
    """
    return _out(special.ndtr(-_reals("x", x)))


def gaussian_tail_bound(x: npt.ArrayLike) -> FloatOrArray:
    """exp(-x^2 / 2) >= Phibar(x) for x >= 0: the Chernoff bound on the normal upper tail.

    From Markov on e^{lambda Z}: P(Z > x) <= exp(lambda^2/2 - lambda x), smallest at
    lambda = x. At x = sqrt(c ln n) it is n^{-c/2}, the step behind n^{4/5} (c = 0.4).

    Examples
    --------
    The bound holds, loosely:

    >>> round(gaussian_tail_bound(2.0), 4), round(upper_tail(2.0), 4)
    (0.1353, 0.0228)
    """
    x = _reals("x", x, lo=0.0, hint=" (the bound is stated for x >= 0)")
    return _out(np.exp(-(x**2) / 2.0))


def chernoff_binomial_bound(mu_high: npt.ArrayLike, delta: npt.ArrayLike) -> FloatOrArray:
    """exp(-delta^2 mu_H / (2 + delta)) >= P(X >= (1 + delta) mu_H), for X a sum of independent
    0/1 variables with E[X] <= mu_H and delta > 0 (the multiplicative Chernoff bound).

    delta = 1 gives exp(-mu_H / 3): a count whose mean is at most mu_H exceeds 2 mu_H with
    probability at most exp(-mu_H / 3).

    Examples
    --------
    >>> chernoff_binomial_bound(30.0, 1.0) == math.exp(-10.0)  # delta = 1: exp(-mu_H / 3)
    True
    """
    mu_high = _reals("mu_high", mu_high, lo=0.0, hint=" (an upper bound on a mean count)")
    delta = _reals("delta", delta, lo=0.0, lo_open=True, hint=" (the relative excess)")
    return _out(np.exp(-(delta**2) * mu_high / (2.0 + delta)))


def binomial_tail(n: npt.ArrayLike, p: npt.ArrayLike, k: npt.ArrayLike) -> FloatOrArray:
    """P(X >= k) for X ~ Binomial(n, p), exact (scipy): the oracle of the Chernoff bound.

    Examples
    --------
    >>> binomial_tail(10, 0.5, 10) == 0.5**10, binomial_tail(4, 0.5, 2)  # 11/16
    (True, 0.6875)
    """
    n = _sizes("n", n)
    p = _reals("p", p, lo=0.0, hi=1.0, hint=" (a probability)")
    k = _reals("k", k)
    return _out(stats.binom.sf(np.ceil(k) - 1, n, p))


def paper_whp_failure(n: npt.ArrayLike, c: float = PAPER_C) -> FloatOrArray:
    """exp(-n^{1 - c/2} / 3): the Chernoff bound on P(a row keeps more than 2 n^{1 - c/2}).

    A row's count is Binomial(n, p) with p = Phibar(sqrt(c ln n)) <= n^{-c/2}, so its mean is
    at most mu_H = n^{1 - c/2}; ``chernoff_binomial_bound(mu_H, 1)``. With m rows, a union
    bound gives m exp(-n^{4/5} / 3) at c = 0.4: negligible for any n worth the name.

    Examples
    --------
    Already at n = 2^10 a row keeps more than 2 n^{4/5} entries with negligible probability:

    >>> paper_whp_failure(2**10) < 1e-37
    True
    """
    return chernoff_binomial_bound(paper_bound(n, c), 1.0)


def mills_ratio_factor(n: npt.ArrayLike, c: float = PAPER_C) -> FloatOrArray:
    """paper_bound / expected_activated = exp(-t^2/2) / Phibar(t) at t = sqrt(c ln n).

    By Mills' ratio it is about sqrt(2 pi) t = sqrt(2 pi c ln n) (sqrt(0.8 pi ln n) at
    c = 0.4), from above, with relative error about 1/t^2 = 1/(c ln n). It equals 2 at n = 1.
    This growing gap is why a log-log slope fitted over finite n sits below 1 - c/2.

    Examples
    --------
    >>> mills_ratio_factor(1), round(mills_ratio_factor(2**20), 2)
    (2.0, 6.75)
    """
    n = _sizes("n", n)
    c = _c(c)
    t = np.sqrt(c * np.log(n))
    # In logs: exp(-t^2/2) and Phibar(t) both underflow for astronomically large n.
    return _out(np.exp(-(t**2) / 2.0 - special.log_ndtr(-t)))


def local_slope(n: npt.ArrayLike, c: float = PAPER_C) -> FloatOrArray:
    """d ln E[k] / d ln n = 1 - (c / (2t)) phi(t) / Phibar(t), t = sqrt(c ln n), E[k] = n Phibar(t).

    Since phi(t)/Phibar(t) > t, this is below 1 - c/2; it increases towards it as
    1 - c/2 - 1/(2 ln n) + O(1/ln^2 n). Requires n > 1 (it tends to -inf as n -> 1).

    Examples
    --------
    The finite-n slope stays below 4/5, approaching it slowly:

    >>> local_slope([2**10, 2**20, 2**40]).round(4).tolist()
    [0.7501, 0.7715, 0.7843]
    """
    n = _reals("n", n, lo=1.0, lo_open=True, hint=" (the slope diverges at n = 1)")
    c = _c(c)
    t = np.sqrt(c * np.log(n))
    inverse_mills = np.exp(-(t**2) / 2.0 - 0.5 * math.log(2.0 * math.pi) - special.log_ndtr(-t))
    return _out(1.0 - c / (2.0 * t) * inverse_mills)


# ---------------------------------------------------------------- half-space reporting costs


PART1_FROM_D = 4  # the exponent 1 - 1/floor(d/2) is the cited bound from d = 4 on


def part1_exponent(d: int) -> float:
    """1 - 1/floor(d/2): the exponent of n in a Part 1 query (the paper's cited trade-off).

    Range of validity: the formula is the bound for d >= 4. Plugging d = 2 or 3 in gives 0,
    but the known bound there is O(log n + k) (the plane: Chazelle, Guibas and Lee 1985;
    space: Chan 2000, Afshani and Chan 2009), not O(1 + k): ``part1_query_work`` uses log n
    there. The exponent of n is still 0 (a logarithm grows slower than any power). Needs d >= 2.

    Examples
    --------
    >>> part1_exponent(8), part1_exponent(64), part1_exponent(2)
    (0.75, 0.96875, 0.0)
    """
    return 1.0 - 1.0 / (_dim(d) // 2)


def part1_query_work(n: npt.ArrayLike, d: int, k: npt.ArrayLike, include_d: bool = False
                     ) -> FloatOrArray:
    """Part 1 query: n^{1 - 1/floor(d/2)} + k for d >= 4, log n + k for d in {2, 3}; times d
    if include_d.

    At d = 2, 3 the exponent formula would give 1 + k; the known bound is log n + k
    (``part1_exponent`` says where each comes from).

    Examples
    --------
    >>> part1_query_work(2**20, 8, k=100)  # (2^20)^{3/4} + k
    32868.0
    >>> round(part1_query_work(2**20, 2, k=100), 4)  # ln n + k in the plane
    113.8629
    """
    n, d = _sizes("n", n), _dim(d)
    k = _reals("k", k, lo=0.0, hint=" (the number of reported points)")
    search = n ** part1_exponent(d) if d >= PART1_FROM_D else np.log(n)
    work = search + k
    return _out(d * work if include_d else work)


def part2_query_work(n: npt.ArrayLike, d: int, k: npt.ArrayLike, include_d: bool = False
                     ) -> FloatOrArray:
    """Part 2 query: log n + k, or d (log n + k) if include_d.

    Examples
    --------
    >>> round(part2_query_work(2**20, 64, k=100), 4), round(part2_query_work(2**20, 64, 100, True))
    (113.8629, 7287)
    """
    n = _sizes("n", n)
    d = _dim(d)
    k = _reals("k", k, lo=0.0, hint=" (the number of reported points)")
    work = np.log(n) + k
    return _out(d * work if include_d else work)


def part1_build(n: npt.ArrayLike) -> FloatOrArray:
    """Part 1 build: n log n.

    Examples
    --------
    >>> part1_build(math.e**2) == 2 * math.e**2  # n ln n
    True
    """
    n = _sizes("n", n)
    return _out(n * np.log(n))


def part2_build(n: npt.ArrayLike, d: int) -> FloatOrArray:
    """Part 2 build: n^{floor(d/2)} (inf where it overflows a float; see bounds_table for log10).

    Examples
    --------
    >>> part2_build(10, 8)  # 10^{floor(8/2)}
    10000.0
    """
    n = _sizes("n", n)
    with np.errstate(over="ignore"):
        return _out(n ** float(_dim(d) // 2))


def kdtree_depth(n: npt.ArrayLike, leaf_size: int = 32) -> FloatOrArray:
    """ceil(log2(n / leaf_size)): levels of a median-split kd-tree whose leaves hold at most
    ``leaf_size`` points (0 if n <= leaf_size).

    Each level splits one coordinate, so a root-to-leaf path splits at most this many distinct
    coordinates: at n = 2^20 and leaf size 32 that is 15, and a leaf's box is never cut in at
    least d - 15 of its coordinates (49 at d = 64). Those unsplit sides keep every box wide,
    which is why the box test prunes nothing in high dimension.

    Examples
    --------
    >>> kdtree_depth([16, 33, 2**20], leaf_size=32).tolist()
    [0.0, 1.0, 15.0]
    """
    n = _sizes("n", n)
    leaf = as_positive_int("leaf_size", leaf_size)
    return _out(np.maximum(np.ceil(np.log2(n / leaf)), 0.0))


@dataclass(frozen=True, eq=False)
class RunningTime:
    """An HSR running time against the naive dense one, both up to constants."""

    regime: str
    formula: str
    hsr: FloatOrArray
    naive: FloatOrArray

    @property
    def speedup(self) -> FloatOrArray:
        """naive / hsr: above 1 where HSR wins (ignoring constants)."""
        return _out(np.asarray(self.naive) / np.asarray(self.hsr))

    def __repr__(self) -> str:
        return (f"RunningTime({self.regime}: {self.formula}; hsr={_fmt(self.hsr)}, "
                f"naive={_fmt(self.naive)}, speedup={_fmt(self.speedup)})")


def decoding_cost(n: npt.ArrayLike, m: npt.ArrayLike, d: int) -> RunningTime:
    """Decoding: m n^{4/5} (Part 2 built once on the KV cache, build not counted) vs m n.

    The common factor d and the lower-order d log n per query are left out.

    Examples
    --------
    >>> decoding_cost(2**20, m=1, d=64)
    RunningTime(decoding: m n^{4/5} vs m n; hsr=6.554e+04, naive=1.049e+06, speedup=16)
    """
    n, m = _sizes("n", n), _sizes("m", m)
    _dim(d)
    return RunningTime("decoding", "m n^{4/5} vs m n", _out(m * n**0.8), _out(m * n))


def prefill_cost(n: npt.ArrayLike, m: npt.ArrayLike, d: int) -> RunningTime:
    """Prefilling: m n^{1 - 1/floor(d/2)} + m n^{4/5} (Part 1 on the new keys) vs m n; at
    d = 2, 3 Part 1's search term is log n (``part1_query_work``).

    Examples
    --------
    >>> prefill_cost(2**20, m=2**20, d=8)
    RunningTime(prefill: m n^{0.75} + m n^{4/5} vs m n; hsr=1.031e+11, naive=1.1e+12, speedup=10.67)
    """
    n, m = _sizes("n", n), _sizes("m", m)
    search = part1_query_work(n, d, 0.0)
    term = f"n^{{{part1_exponent(d):.4g}}}" if d >= PART1_FROM_D else "log n"
    formula = f"m {term} + m n^{{4/5}} vs m n"
    return RunningTime("prefill", formula, _out(m * search + m * n**0.8), _out(m * n))


# ---------------------------------------------------------------- softmax error


def softmax_error_bound(eps: npt.ArrayLike, v_inf: float) -> float:
    """||Attn - Attn_hat||_inf <= 2 max_i eps_i ||V||_inf, eps_i row i's dropped softmax mass.

    Examples
    --------
    >>> softmax_error_bound([0.01, 0.05], v_inf=2.0)  # 2 * 0.05 * 2
    0.2
    """
    eps = _reals("eps", eps, lo=0.0, hi=1.0, hint=" (a share of softmax mass)")
    if eps.size == 0:
        raise ValueError("eps must hold at least one row's dropped mass; got an empty array")
    v_inf = _scalar("v_inf", v_inf, lo=0.0, hint=" (the norm ||V||_inf)")
    return 2.0 * float(eps.max()) * v_inf


def dropped_mass_bound(n: npt.ArrayLike, gamma: npt.ArrayLike, gap: npt.ArrayLike) -> FloatOrArray:
    """eps_i <= n^{1 - gamma} exp(-gap), gap = tau_1 - tau_2, with n^gamma kept entries >= tau_1.

    Negligible when gap >= beta ln n with gamma + beta > 1. Not clipped at 1.

    Examples
    --------
    n^{1/2} kept entries with a gap of 20 between kept and dropped scores, at n = 2^20:

    >>> dropped_mass_bound(2**20, gamma=0.5, gap=20.0) < 1e-5
    True
    """
    n = _sizes("n", n)
    gamma = _reals("gamma", gamma, lo=0.0, hi=1.0, hint=" (n^gamma entries are kept)")
    gap = _reals("gap", gap, hint=" (tau_1 - tau_2)")
    return _out(n ** (1.0 - gamma) * np.exp(-gap))


def gaussian_dropped_mass(n: npt.ArrayLike, sigma_a: npt.ArrayLike, c: float = PAPER_C
                          ) -> FloatOrArray:
    """eps = Phi(sqrt(c ln n) - sigma_a): the softmax mass dropped at b = sigma_a sqrt(c ln n)
    by a row of Gaussian scores s_j ~ N(0, sigma_a^2) (Phi the standard normal CDF).

    Derived (ours, not the paper's): with phi_sigma the N(0, sigma^2) density, completing the
    square gives the tilted Gaussian

        e^s phi_sigma(s) = e^{sigma^2/2} phi_sigma(s - sigma^2),

    so E[e^s 1{s < b}] = e^{sigma^2/2} Phi((b - sigma^2) / sigma) and E[e^s] = e^{sigma^2/2}.
    Their ratio is Phi(b/sigma - sigma), and b/sigma = sqrt(c ln n) at the paper's threshold.
    A row's eps_i = sum over dropped j of e^{s_j} / sum over all j of e^{s_j} is a ratio of
    sums, which tends to this ratio of means as n grows; the approximation needs n large
    against e^{sigma_a^2} (else a few top scores carry the sums). The kept share of entries,
    Phibar(sqrt(c ln n)), does not depend on sigma_a; the dropped share of mass does: near 1 at
    sigma_a = 1/4 (unit queries at d = 16), 1/2 at sigma_a = sqrt(c ln n), small beyond.
    Notebook 4 derives and measures it.

    Examples
    --------
    Unit queries at d = 16 (sigma_a = 1/4) drop almost all the mass; at sigma_a = sqrt(c ln n)
    exactly half:

    >>> round(gaussian_dropped_mass(2**14, 0.25), 4)
    0.9573
    >>> gaussian_dropped_mass(2**14, paper_threshold(2**14))
    0.5
    """
    n = _sizes("n", n)
    sigma_a = _reals("sigma_a", sigma_a, lo=0.0, hint=" (the std of the scores)")
    c = _c(c)
    return _out(special.ndtr(np.sqrt(c * np.log(n)) - sigma_a))


def sigma_for_dropped_mass(n: npt.ArrayLike, eps: npt.ArrayLike, c: float = PAPER_C
                           ) -> FloatOrArray:
    """sigma_a = sqrt(c ln n) - Phi^{-1}(eps): the score scale at which the paper's threshold
    drops a share eps of the softmax mass (``gaussian_dropped_mass`` solved for sigma_a).

    At eps = 1/2 it is sqrt(c ln n); a smaller eps needs a larger sigma_a, so the kept scores
    (>= b = sigma_a sqrt(c ln n)) are then of order c ln n: raw scores of order log n.

    Examples
    --------
    >>> sigma_for_dropped_mass(2**14, 0.5) == paper_threshold(2**14)
    True
    >>> round(sigma_for_dropped_mass(2**14, 0.01), 4)
    4.2965
    """
    n = _sizes("n", n)
    eps = _reals("eps", eps, lo=0.0, hi=1.0, lo_open=True, hi_open=True,
                 hint=" (a share of softmax mass)")
    c = _c(c)
    return _out(np.sqrt(c * np.log(n)) - special.ndtri(eps))


# ---------------------------------------------------------------- where floor(d/2) comes from


def cyclic_polytope_facets(n: int, d: int) -> int:
    """Facets of the cyclic polytope C(n, d), the convex hull of n points on the moment curve
    (t, t^2, ..., t^d): the maximum over all polytopes with n vertices in R^d.

    Gale's evenness condition gives, with k = floor(d/2),

        d = 2k even:    f = n / (n - k) * C(n - k, k)
        d = 2k + 1 odd: f = 2 C(n - k - 1, k),

    which grows like n^{floor(d/2)}. The Upper Bound Theorem (McMullen 1970) says that no
    polytope with n vertices in R^d has more faces of any dimension than C(n, d): O(n^{floor(d/2)})
    in all. By duality the same count bounds the faces of an intersection of n half-spaces,
    which is where floor(d/2) enters the half-space reporting bounds (notebook 1). Needs
    d >= 2 and n >= d + 1 (fewer points span no full-dimensional polytope).

    Examples
    --------
    At d = 4 the count is n (n - 3) / 2:

    >>> cyclic_polytope_facets(32, 4), 32 * 29 // 2
    (464, 464)
    >>> cyclic_polytope_facets(5, 2)  # a pentagon
    5
    """
    d = _dim(d)
    n = as_positive_int("n", n)
    if n < d + 1:
        raise ValueError(f"n must be at least d + 1 = {d + 1} points for a polytope in R^{d}; "
                         f"got {n}")
    k = d // 2
    if d % 2 == 0:
        return n * math.comb(n - k, k) // (n - k)
    return 2 * math.comb(n - k - 1, k)


# ---------------------------------------------------------------- measured exponents


@dataclass(frozen=True)
class ExponentFit:
    """ln counts = intercept + slope ln n, with a t-based confidence interval on the slope."""

    slope: float
    intercept: float
    slope_low: float
    slope_high: float
    stderr: float
    r2: float
    confidence: float = 0.95

    def __repr__(self) -> str:
        return (f"ExponentFit(slope={self.slope:.4f}, {self.confidence:.0%} CI "
                f"[{self.slope_low:.4f}, {self.slope_high:.4f}], stderr={self.stderr:.2g}, "
                f"intercept={self.intercept:.4f}, r2={self.r2:.4f})")


def fit_exponent(n: npt.ArrayLike, counts: npt.ArrayLike, confidence: float = 0.95) -> ExponentFit:
    """Least squares of ln counts on ln n; slope +- t_{len-2} stderr (repeated n allowed).

    Examples
    --------
    An exact power law comes back exactly:

    >>> n = np.array([1e3, 1e4, 1e5, 1e6])
    >>> fit = fit_exponent(n, 3 * n**0.8)
    >>> round(fit.slope, 6), round(math.exp(fit.intercept), 6)
    (0.8, 3.0)
    """
    n = _reals("n", n, lo=0.0, lo_open=True, hint=" (sizes)").ravel()
    counts = _reals("counts", counts, lo=0.0, lo_open=True,
                    hint=" (ln counts is fitted; drop or offset zero counts)").ravel()
    confidence = _scalar("confidence", confidence, lo=0.0, hi=1.0, lo_open=True, hi_open=True)
    if n.shape != counts.shape:
        raise ValueError(f"n and counts must have the same length; got {n.size} and {counts.size}")
    if np.unique(n).size < 3:
        raise ValueError(f"fit_exponent needs at least 3 distinct n; got {np.unique(n).size}")
    x, y = np.log(n), np.log(counts)
    res = stats.linregress(x, y)
    ss_res = float(np.sum((y - res.intercept - res.slope * x) ** 2))
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else 1.0  # a flat, exact fit explains everything
    # res.stderr is the same quantity, but computed from r it loses half the digits
    # (an exact power law gets an interval 1e-7 wide); residuals keep it at round-off.
    stderr = math.sqrt(ss_res / (n.size - 2) / float(np.sum((x - x.mean()) ** 2)))
    half = float(stats.t.ppf((1.0 + confidence) / 2.0, n.size - 2)) * stderr
    slope = float(res.slope)
    return ExponentFit(slope, float(res.intercept), slope - half, slope + half, stderr, r2,
                       confidence)


# ---------------------------------------------------------------- the table for the notebook


def bounds_table(d_values: Iterable[int] = (2, 8, 64), n: float = 2**20) -> list[dict[str, float]]:
    """What Part 1 and Part 2 cost at each d, for one n (query work at k = 0, vs a scan of n),
    as the paper states them.

    The paper's restatement drops what the cited results carry: Matousek's (1992) query bound
    has polylog factors and a constant that depends on d, Agarwal, Eppstein and Matousek's
    (1992) space/query trade-off an n^delta factor for any fixed delta > 0. Chan (2012) removes
    the polylog for emptiness queries in even d >= 4.

    Part 1's query work is n^{1 - 1/floor(d/2)} for d >= 4 and log n for d = 2, 3
    (``part1_query_work``). Constants are dropped: at d = 64 the ratio to the scan (about
    0.65 at n = 2^20) is an asymptotic gain that hidden O_d constants easily swamp.

    Examples
    --------
    >>> [(row["d"], round(row["part1_query_over_scan"], 4)) for row in bounds_table((2, 8, 64))]
    [(2, 0.0), (8, 0.0312), (64, 0.6484)]
    """
    n = _scalar("n", n, lo=1.0, hint=" (n is a size)")
    rows = []
    for d in d_values:
        half = _dim(d) // 2
        part1 = float(part1_query_work(n, d, 0.0))
        rows.append({
            "d": d,
            "floor_d_over_2": half,
            "part1_exponent": part1_exponent(d),
            "part1_query_work": part1,
            "part1_query_over_scan": part1 / n,
            "part1_build": n * math.log(n),
            "part2_query_work": math.log(n),
            "part2_build": float(part2_build(n, d)),
            "part2_build_log10": half * math.log10(n),
            "scan": n,
        })
    return rows
