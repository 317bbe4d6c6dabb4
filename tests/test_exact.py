"""One exact predicate everywhere: ``<a, x> >= t`` in real arithmetic on the stored values.

Every backend (reference, numpy, compiled, brute, layers, faiss, auto), alone and in batches,
float32 and float64 keys, is compared with an independent oracle in ``fractions.Fraction``, at
thresholds chosen to be hard: exactly on a key's score, one ulp either side, and on the score
as other summation orders round it (BLAS, left to right, reversed, pairwise), with mixed
magnitudes and duplicates. Then the bulk settling itself (``hsr.exact``), ``auto`` asked the
same query again and again, ties in bulk (counted, not timed), inputs float64 cannot hold, and
big-endian keys.
"""

from __future__ import annotations

import functools
import math
from fractions import Fraction

import numpy as np
import pytest
from conftest import examples
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from hsr_lab import HSR, relu_attention, softmax_attention
from hsr_lab.hsr import CompiledKDTree, NumpyKDTree, ReferenceKDTree, exact
from hsr_lab.hsr.compiled import AVAILABLE as NUMBA
from hsr_lab.hsr.numerics import score

try:
    import faiss  # noqa: F401
    FAISS = True
except ImportError:  # pragma: no cover - faiss is in the test extra
    FAISS = False


def exact_dot(a, x) -> Fraction:
    """``<a, x>`` as a fraction: the oracle's arithmetic."""
    return sum((Fraction(float(u)) * Fraction(float(v)) for u, v in zip(a, x, strict=True)),
               Fraction(0))


def oracle(points: np.ndarray, a: np.ndarray, t: float) -> list[int]:
    """Rows x of points with ``<a, x> >= t`` exactly."""
    return [i for i, x in enumerate(points.tolist()) if exact_dot(a, x) >= Fraction(t)]


def backends(d: int) -> list[str]:
    return (["reference", "numpy", "brute", "auto"] + (["compiled"] if NUMBA else [])
            + (["layers"] if d == 2 else []))


def orders(a: np.ndarray, x: np.ndarray) -> list[float]:
    """``<a, x>`` rounded by several summation orders: BLAS, left to right, reversed, pairwise
    (NumPy's sum), and by float32 when x is float32."""
    x64 = x.astype(np.float64)
    out = [float(x64 @ a), score(a.tolist(), x64.tolist()),
           score(a[::-1].tolist(), x64[::-1].tolist()), float((a * x64).sum())]
    if x.dtype == np.float32:
        out.append(float(x @ a.astype(np.float32)))
    return out


@st.composite
def hard_instances(draw):
    """Keys with coordinates scaled by 2^-30 .. 2^30 (one scale per key) and duplicated,
    queries scaled by 2^-20 .. 2^20, and thresholds on a key's score: exact, one ulp either
    side, and as each summation order rounds it."""
    d = draw(st.sampled_from([1, 2, 3, 8]))
    n = draw(st.integers(8, 60))
    dtype = draw(st.sampled_from([np.float64, np.float32]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    base = rng.standard_normal((n, d)) * np.ldexp(1.0, rng.integers(-30, 31, (n, 1)))
    points = base[rng.integers(0, n, n)] if draw(st.booleans()) else base  # duplicates
    points = points.astype(dtype)
    A = rng.standard_normal((3, d)) * np.ldexp(1.0, rng.integers(-20, 21, (3, 1)))
    t = []
    for a in A:
        x = points[rng.integers(0, n)]
        s = float(Fraction(exact_dot(a, x)))  # the exact score, rounded once
        t.append(draw(st.sampled_from([s, np.nextafter(s, np.inf), np.nextafter(s, -np.inf),
                                       *orders(a, x)])))
    return points, A, np.array(t)


def check(index_query, index_many, points, A, t) -> None:
    """Both call forms of one structure against the oracle."""
    want = [oracle(points, a, float(t_i)) for a, t_i in zip(A, t, strict=True)]
    for a, t_i, ids in zip(A, t, want, strict=True):
        assert sorted(index_query(a, float(t_i)).tolist()) == ids
    indptr, found = index_many(A, t)
    for i, ids in enumerate(want):
        assert sorted(found[indptr[i]:indptr[i + 1]].tolist()) == ids


@settings(max_examples=examples(60))
@given(hard_instances(), st.sampled_from([2, 5, 32]))
def test_every_backend_and_both_call_forms_equal_the_exact_oracle(instance, leaf_size):
    points, A, t = instance
    for backend in backends(points.shape[1]):
        hsr = HSR(points, backend=backend, leaf_size=leaf_size)
        assert hsr.dtype == points.dtype
        check(hsr.query, hsr.query_many, points, A, t)


@st.composite
def tiny_instances(draw):
    """Keys whose scores underflow: coordinates scaled by 2^-1060 .. 2^-1000 (one scale per
    key), or mixed per coordinate from 2^-1060 to 2^10; queries at 2^-1074 .. 2^40 (one scale,
    or one per coordinate); duplicates; thresholds on a key's exact score, one ulp either
    side, and as the summation orders round it. A score's rounding error is then about the
    smallest subnormal, not a multiple of ``|a| |x|``."""
    d = draw(st.sampled_from([1, 2, 3, 5]))
    n = draw(st.integers(5, 40))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if draw(st.booleans()):
        base = rng.standard_normal((n, d)) * np.ldexp(1.0, rng.integers(-1060, -999, (n, 1)))
    else:
        base = rng.standard_normal((n, d)) * np.ldexp(1.0, rng.integers(-1060, 11, (n, d)))
    points = base[rng.integers(0, n, n)] if draw(st.booleans()) else base
    scales = (3, 1) if draw(st.booleans()) else (3, d)
    A = rng.standard_normal((3, d)) * np.ldexp(1.0, rng.integers(-1074, 41, scales))
    t = []
    for a in A:
        x = points[rng.integers(0, n)]
        s = float(exact_dot(a, x))
        t.append(draw(st.sampled_from([s, np.nextafter(s, np.inf), np.nextafter(s, -np.inf),
                                       *orders(a, x)])))
    return points, A, np.array(t)


@settings(max_examples=examples(100))
@given(tiny_instances(), st.sampled_from([1, 2, 32]))
def test_every_backend_is_exact_where_scores_underflow(instance, leaf_size):
    """The bands and box guards keep an absolute floor (``numerics``: ``d TINY``), so at
    subnormal scales, where ``margin(d) |a| rad`` underflows to 0, a score within rounding of
    t is still settled exactly; the convex layers' climb to a layer's top vertex is not
    stopped by neighbours whose scores underflow to the same float."""
    points, A, t = instance
    for backend in backends(points.shape[1]):
        hsr = HSR(points, backend=backend, leaf_size=leaf_size)
        check(hsr.query, hsr.query_many, points, A, t)


@pytest.mark.skipif(not FAISS, reason="faiss is not installed")
@settings(max_examples=examples(40))
@given(hard_instances())
def test_faiss_scan_equals_the_exact_oracle_at_hard_thresholds(instance):
    """faiss's scan, as "auto" uses it for float32 blocks: lone, batched and batched in faiss."""
    from hsr_lab.hsr.faiss_scan import FaissScan

    points, A, t = instance
    points = points.astype(np.float32)
    scan = FaissScan(points, np.arange(len(points)), 1)
    check(lambda a, t_i: scan.query(a, t_i)[0], lambda A, t: scan.query_many(A, t)[:2],
          points, A, t)
    check(lambda a, t_i: scan.query(a, t_i)[0], lambda A, t: scan._search(A, t)[:2],
          points, A, t)


@pytest.mark.parametrize("tree", [ReferenceKDTree, NumpyKDTree] + ([CompiledKDTree] if NUMBA
                                                                   else []))
def test_a_box_of_subnormal_corners_is_not_pruned_by_rounding(tree):
    """The box of the keys 2^-1074 and 2^-1073 has centre fl(1.5 2^-1074) = 2^-1073 and
    half-width fl(2^-1075) = 0: rounded, it no longer holds the key 2^-1074. With a = -10^300
    that key scores -4.9e-24 >= t = -6e-24, which a margin without the halving term prunes."""
    eta = 2.0**-1074
    index = tree(np.array([[eta], [2 * eta]]), np.arange(2), 4)
    found, _ = index.query(np.array([-1e300]), -6e-24)
    assert sorted(found.tolist()) == [0]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_a_point_whose_coordinates_lie_2_to_the_600_apart_is_settled_exactly(dtype):
    """``<a, x> = 1 - 2^-120`` (float32) or ``1 - 2^-600``: every float sum gives 1, and the
    error-free steps cannot hold a coordinate 2^-600 beside 1 (fractions settle it; the
    compiled walk hands the query to the exact scan). t = 1 is out, t = 1 - ulp is in."""
    tiny = 2.0**-120 if dtype == np.float32 else 2.0**-600
    points = np.array([[1.0, -tiny], [0.5, 0.25]] * 40, dtype=dtype)
    below_1 = float(np.nextafter(1.0, 0.0))
    for backend in backends(2):
        hsr = HSR(points, backend=backend, leaf_size=4)
        for t, want in ((1.0, []), (below_1, list(range(0, 80, 2)))):
            assert hsr.query([1.0, 1.0], t).tolist() == want, backend
            indptr, ids = hsr.query_many([[1.0, 1.0], [0.0, 1.0]], t)
            assert ids[:indptr[1]].tolist() == want, backend


# -- the bulk settling -------------------------------------------------------------------------
wide = st.builds(lambda m, k: m * 2.0**k, st.floats(-2, 2), st.integers(-1074, 1000))


@settings(max_examples=examples(300))
@given(st.integers(1, 6).flatmap(lambda d: st.tuples(arrays(np.float64, (6, d), elements=wide),
                                                     arrays(np.float64, (6, d), elements=wide))),
       st.sampled_from(["exact", "up", "down"]))
def test_the_bulk_settle_is_exact_at_every_magnitude(pair, where):
    """``at_least`` and ``nearest_dot`` against fractions, coordinates from 2^-1074 to 2^1000
    (subnormal, out of the error-free range, mixed in one pair) and t on the exact score."""
    A, X = pair
    with np.errstate(over="ignore", invalid="ignore"):
        if not (np.isfinite(A).all() and np.isfinite(X).all()
                and np.abs(A).max() * np.abs(X).max() * A.shape[1] < 1e300):
            return
    sums = [exact_dot(a, x) for a, x in zip(A, X, strict=True)]
    t = np.array([float(s) for s in sums])
    if where != "exact":
        t = np.nextafter(t, np.inf if where == "up" else -np.inf)
    assert exact.at_least(X, A, t).tolist() == [s >= Fraction(t_i) for s, t_i in
                                                 zip(sums, t.tolist(), strict=True)]
    assert exact.nearest_dot(A, X).tolist() == [float(s) for s in sums]


@functools.cache
def compiled_settle():
    """``exact.at_least_jit`` of one pair, compiled once (Numba)."""
    import numba

    return numba.njit(lambda x, a, t: exact.at_least_jit(x[None], 0, a, t,
                                                         np.empty(2 * len(a) + 1)))


# small integers beside subnormals: a product flushed by the scaling decides the sign
flushable = st.one_of(st.integers(-3, 3).map(float),
                      st.integers(-3, 3).map(lambda k: k * 2.0**-1074),
                      st.builds(lambda m, k: m * 2.0**k, st.floats(-2, 2), st.integers(-1074, 60)))


@pytest.mark.skipif(not NUMBA, reason="numba is not installed")
@settings(max_examples=examples(300))
@given(st.integers(1, 4).flatmap(lambda d: st.tuples(arrays(np.float64, d, elements=flushable),
                                                     arrays(np.float64, d, elements=flushable))),
       st.sampled_from(["exact", "up", "down"]))
def test_the_compiled_settle_never_drops_a_product_flushed_by_its_scaling(pair, where):
    """``at_least_jit`` (the compiled walk's settle) scales a by ``2^-e_a``: a coordinate far
    below ``max|a|`` (2^-1074 beside 1) flushes to 0 there, and its product must not vanish
    from the sum. The settle answers exactly, or -1 (left to the exact scan), never wrongly."""
    a, x = pair
    s = exact_dot(a, x)
    t = float(s)
    if where != "exact":
        t = float(np.nextafter(t, np.inf if where == "up" else -np.inf))
    assert compiled_settle()(x, a, t) in (-1, int(s >= Fraction(t)))


@pytest.mark.skipif(not NUMBA, reason="numba is not installed")
@settings(max_examples=examples(200))
@given(st.integers(1, 4).flatmap(lambda d: st.tuples(
           arrays(np.float64, d, elements=st.builds(lambda m, k: m * 2.0**k, st.integers(-3, 3),
                                                    st.integers(-20, 20))),
           arrays(np.float64, d, elements=st.builds(lambda m, k: m * 2.0**k, st.integers(-3, 3),
                                                    st.integers(-20, 20))))),
       st.builds(lambda m, k: m * 2.0**k, st.integers(-7, 7), st.integers(-1074, -1000)))
def test_the_compiled_settle_decides_a_subnormal_t_without_giving_up(pair, t):
    """A subnormal t scaled by ``2^-(e_a + e_x)`` underflows; the settle rounds it up to a
    multiple of 2^-1074 (the exact sum of float terms is one) and answers exactly, not -1.
    A zero query or point scores exactly 0."""
    a, x = pair
    assert compiled_settle()(x, a, t) == int(exact_dot(a, x) >= Fraction(t))


@pytest.mark.skipif(not NUMBA, reason="numba is not installed")
def test_the_compiled_walk_counts_a_product_flushed_by_its_scaling():
    """``<a, x> = 1 - 2^-1074`` with a = (1, 2^-1074), x = (1, -1): below t = 1. Scaled by
    ``2^-1``, ``a_2`` flushes to 0; the compiled walk must still leave x out."""
    a, points = np.array([1.0, 2.0**-1074]), np.array([[1.0, -1.0], [1.0, 0.0]])
    assert exact_dot(a, points[0]) < 1
    for backend in backends(2):
        assert HSR(points, backend=backend).query(a, 1.0).tolist() == [1], backend


def test_ties_settle_in_bulk_without_fractions():
    """10^5 integer pairs exactly on t (their float64 scores are exact: certified on their
    grid) and 10^5 random pairs at t = their float64 score (in the band by construction,
    settled by the error-free steps): none by fractions."""
    rng = np.random.default_rng(1)
    X, A = (rng.integers(1, 10, (10**5, 4)) * rng.choice([-1.0, 1.0], (10**5, 4))
            for _ in range(2))  # no zero row: those need no settling
    before = exact.SETTLED.copy()
    assert exact.at_least(X, A, (X * A).sum(axis=1)).all()
    assert exact.SETTLED["grid"] - before["grid"] == 10**5
    X, A = rng.standard_normal((10**5, 4)), rng.standard_normal((10**5, 4))
    t = np.einsum("kd,kd->k", X, A)
    got = exact.at_least(X, A, t)
    assert got[:2000].tolist() == [exact_dot(a, x) >= Fraction(t_i) for a, x, t_i in
                                   zip(A[:2000], X[:2000], t[:2000].tolist(), strict=True)]
    assert 0 < got.mean() < 1  # the rounding falls either way
    assert exact.SETTLED["fractions"] == before["fractions"]
    assert exact.SETTLED["bulk"] - before["bulk"] >= 10**5 - 10  # (a random pair may be exact)


def test_exactly_computed_rows_are_exact():
    """The certificate accepts integer and coarse dyadic rows, and its rows' products are the
    exact ones; it refuses Gaussian rows and products that would underflow."""
    rng = np.random.default_rng(2)
    Q, K = rng.integers(-50, 51, (20, 6)) * 2.0**-7, rng.integers(-50, 51, (30, 6)) * 2.0**40
    Q[3] = 0
    assert exact.exactly_computed(Q, K).all()
    S = Q @ K.T
    assert all(S[i, j] == exact_dot(Q[i], K[j]) for i in range(20) for j in range(30))
    assert not exact.exactly_computed(rng.standard_normal((4, 6)), K).any()
    assert not exact.exactly_computed(Q[:3] * 2.0**-600, K * 2.0**-540).any()
    assert exact.exactly_computed(np.zeros((2, 6)), rng.standard_normal((5, 6))).all()


# -- auto asked the same query again and again ---------------------------------------------------
def disagreeing_pair(K: np.ndarray, seed: int) -> tuple[np.ndarray, float, int]:
    """A query a and key j whose BLAS score and left-to-right score differ; t the larger."""
    rng = np.random.default_rng(seed)
    while True:
        a = rng.standard_normal(K.shape[1])
        blas = K @ a
        for j in rng.integers(0, len(K), 64).tolist():
            ltr = score(a.tolist(), K[j].tolist())
            if ltr != blas[j]:
                return a, max(ltr, float(blas[j])), j


def near_oracle(K: np.ndarray, a: np.ndarray, t: float) -> np.ndarray:
    """The exact answer over many keys: float64 decides keys far from t (1e-9 of
    ``sum |a_i||x_i|``, a million times any rounding), fractions the rest."""
    scores = K @ a
    slack = 1e-9 * (np.abs(K) @ np.abs(a))
    sure = scores - t > slack
    near = np.flatnonzero(np.abs(scores - t) <= slack)
    inside = [j for j in near.tolist() if exact_dot(a, K[j]) >= Fraction(t)]
    return np.union1d(np.flatnonzero(sure), inside).astype(np.int64)


def test_auto_answers_a_repeated_query_the_same_way_every_time():
    """Under auto's trial the scan (BLAS) and the tree (left to right) take turns; six calls
    of a query at t = the larger of the two scores all give the exact answer, as do the two
    backends on their own."""
    K = np.random.default_rng(0).standard_normal((2**15, 8))
    hsr = HSR(K)
    for seed in range(3):
        a, t, _ = disagreeing_pair(K, seed)
        want = near_oracle(K, a, t)
        answers = [hsr.query(a, t) for _ in range(6)]
        for got in answers:
            np.testing.assert_array_equal(got, want)
        _, ids = hsr.query_many(np.stack([a] * 6), t)
        np.testing.assert_array_equal(ids, np.tile(want, 6))
    for backend in ["brute"] + (["compiled"] if NUMBA else []):
        alone = HSR(K, backend=backend)
        for seed in range(3):
            a, t, _ = disagreeing_pair(K, seed)
            np.testing.assert_array_equal(alone.query(a, t), near_oracle(K, a, t))


# -- ties in bulk: counted, not timed ------------------------------------------------------------
class PairBudget:
    """Stands in for ``attention.scores.decisive_many``: counts the pairs sent to be settled
    and refuses more than ``budget`` of them (so per-pair work on ties fails fast)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, budget: int) -> None:
        from hsr_lab.attention import scores

        self.inner, self.budget, self.pairs = scores.decisive_many, budget, 0
        monkeypatch.setattr(scores, "decisive_many", self)

    def __call__(self, A: np.ndarray, X: np.ndarray) -> np.ndarray:
        self.pairs += len(A)
        assert self.pairs <= self.budget, f"{self.pairs} pairs settled one by one or more"
        return self.inner(A, X)


def test_zero_query_rows_need_no_settling(monkeypatch):
    """512 zero queries against 4096 keys at the default b = 0: every score is exactly 0, on
    the threshold, and none is sent to be settled (the rows are all zero, nothing activated)."""
    rng = np.random.default_rng(3)
    K, V = rng.standard_normal((4096, 8)), rng.standard_normal((4096, 3))
    budget = PairBudget(monkeypatch, 0)
    for method in ("dense", "hsr"):
        out, stats = relu_attention(np.zeros((512, 8)), K, V, method=method, return_stats=True)
        assert not out.any() and stats.empty.all()
    assert budget.pairs == 0


def test_causal_prefill_with_padding_rows_settles_nothing_in_them(monkeypatch):
    """Causal prefill at n = 8193, every third query row zero: the zero rows' 11 million
    scores at b = 0 are sent nowhere; the other rows are Gaussian, so almost nothing is."""
    rng = np.random.default_rng(4)
    n = 8193
    Q, K, V = (rng.standard_normal((n, 4)) for _ in range(3))
    Q[::3] = 0.0
    budget = PairBudget(monkeypatch, 100)
    out, stats = relu_attention(Q, K, V, causal=True, return_stats=True)
    assert stats.empty[::3].all() and not out[::3].any()
    assert budget.pairs <= 100


def test_integer_keys_with_a_third_of_the_scores_at_b_settle_in_bulk(monkeypatch):
    """Integer Q and K in {-1, 0, 1}^4, n = 4096: about 30% of the 16.7M scores are exactly at
    b = 0; their rows are certified exact, so none is sent to be settled, and the kept entries
    are those of integer arithmetic. Gaussian queries against the same keys meet 1/81 zero
    keys: those ties (about 12,000 pairs) are settled in bulk, none by fractions."""
    rng = np.random.default_rng(5)
    Q, K = (rng.integers(-1, 2, (4096, 4)).astype(float) for _ in range(2))
    V = rng.standard_normal((4096, 2))
    S = (Q.astype(np.int64) @ K.T.astype(np.int64))
    assert (S == 0).mean() > 0.25
    budget = PairBudget(monkeypatch, 0)
    _, relu = relu_attention(Q, K, V, return_stats=True)
    _, soft = softmax_attention(Q, K, V, b=0.0, return_stats=True)
    _, hsr = relu_attention(Q[:256], K, V, method="hsr", return_stats=True)
    np.testing.assert_array_equal(relu.activated, (S > 0).sum(axis=1))
    np.testing.assert_array_equal(soft.activated, (S >= 0).sum(axis=1))
    np.testing.assert_array_equal(hsr.activated, (S[:256] > 0).sum(axis=1))
    budget.budget = 10**6
    before = exact.SETTLED.copy()
    G = rng.standard_normal((256, 4))
    zero_keys = int((np.abs(K).sum(axis=1) == 0).sum())
    for method in ("dense", "hsr"):
        _, stats = relu_attention(G, K, V, method=method, return_stats=True)
        np.testing.assert_array_equal(stats.activated, (G @ K.T > 0).sum(axis=1))
    assert budget.pairs >= 256 * zero_keys > 0
    assert exact.SETTLED["fractions"] == before["fractions"]


def test_hsr_ties_settle_in_bulk():
    """Integer keys, an integer query and t on a common score: hundreds of ties per query,
    settled by the error-free steps, every backend exact."""
    rng = np.random.default_rng(6)
    K = rng.integers(-3, 4, (2**14, 3)).astype(float)
    a = np.array([1.0, -2.0, 3.0])
    t = float(K[0] @ a)
    want = np.flatnonzero(K.astype(np.int64) @ a.astype(np.int64) >= int(t))
    assert (K @ a == t).sum() > 500
    before = exact.SETTLED.copy()
    for backend in ["numpy", "brute", "auto"] + (["compiled"] if NUMBA else []):
        np.testing.assert_array_equal(HSR(K, backend=backend).query(a, t), want)
        np.testing.assert_array_equal(HSR(K.astype(np.float32), backend=backend).query(a, t),
                                      want)
    assert exact.SETTLED["fractions"] == before["fractions"]


def test_zero_queries_report_by_the_sign_of_t_and_settle_nothing():
    """A zero query (a padding row) scores every key exactly 0, inside every band around
    t = 0: it reports all keys for t <= 0 and none for t > 0, and settles nothing."""
    K = np.random.default_rng(8).standard_normal((5000, 3))
    before = exact.SETTLED.copy()
    for backend in ["numpy", "brute", "reference"] + (["compiled"] if NUMBA else []):
        hsr = HSR(K, backend=backend)
        for t, want in ((0.0, 5000), (-5e-324, 5000), (5e-324, 0)):
            assert len(hsr.query(np.zeros(3), t)) == want
            indptr, _ = hsr.query_many(np.zeros((4, 3)), t)
            assert np.diff(indptr).tolist() == [want] * 4
    assert exact.SETTLED == before


# -- inputs float64 cannot hold, and big-endian keys ----------------------------------------------
@pytest.mark.parametrize(("make", "name"), [
    (lambda: HSR(np.array([[2**53 + 3]], np.int64)), "points"),
    (lambda: HSR(np.array([[1.0]])).add(np.array([[2**62 + 1]], np.int64)), "points"),
    (lambda: HSR(np.array([[2**64 - 1]], np.uint64)), "points"),
    (lambda: HSR(np.ones((1, 1), dtype=np.longdouble) / 3), "points"),
    (lambda: HSR(np.array([[1 / 3]])).query([1.0], Fraction(1, 3)), "t"),
    (lambda: HSR(np.array([[1.0]])).query([1.0], 2**53 + 1), "t"),
    (lambda: HSR(np.array([[1.0]])).query([1.0], np.int64(2**53 + 1)), "t"),
    (lambda: HSR(np.array([[1.0]])).query([1.0], np.longdouble(1) / 3), "t"),
    (lambda: HSR(np.array([[1.0]])).query(np.ones(1, dtype=np.longdouble) / 3, 0.5), "a"),
    (lambda: HSR(np.array([[1.0]])).query_many([[2**53 + 1]], 0.5), "A"),
    (lambda: HSR(np.array([[1.0]])).query_many([[1.0]], Fraction(1, 3)), "t"),
    (lambda: HSR(np.array([[1.0]])).query_many([[1.0]], np.array([1, 2**60 + 1])[1:]), "t"),
    # lists mixing floats with numbers float64 would round: NumPy rounds them while building
    # the array, so the list itself is checked
    (lambda: HSR([[2**60 + 1, 0.5]]), "points"),
    (lambda: HSR([[1.0, 0.5]]).query([0.5, np.int64(2**53 + 1)], 0.0), "a"),
    (lambda: HSR([[1.0, 0.5]]).query_many([(1.0, 2**53 + 1)], 0.0), "A"),
    (lambda: HSR([[1.0, 0.5]]).query_many([[1.0, 0.5]] * 2, [0.5, 2**53 + 1]), "t"),
])
def test_values_float64_cannot_hold_are_refused_naming_the_argument(make, name):
    with pytest.raises(ValueError, match=rf"^{name} must .*float64 represents exactly"):
        make()


def test_values_float64_holds_are_taken_exactly():
    """Large integers that are floats, and fractions that are dyadic, are answered exactly."""
    hsr = HSR(np.array([[2**60], [2**53 + 2]], np.int64))
    assert hsr.query([1], 2**53 + 2).tolist() == [0, 1]
    assert hsr.query([1], Fraction(2**53 + 4)).tolist() == [0]
    assert HSR(np.array([[0.5]])).query([1.0], Fraction(1, 2)).tolist() == [0]
    assert HSR(np.array([[0.5]])).query([1.0], np.longdouble(0.5)).tolist() == [0]


def test_a_rejected_input_leaves_the_structure_as_it_was():
    hsr = HSR(np.arange(6.0).reshape(3, 2))
    with pytest.raises(ValueError, match=r"^points"):
        hsr.add(np.array([[2**53 + 1, 0]], np.int64))
    assert len(hsr) == 3 and hsr.query([1.0, 0.0], 2.0).tolist() == [1, 2]


def test_big_endian_float32_keys_stay_float32():
    rng = np.random.default_rng(7)
    keys = rng.standard_normal((300, 3)).astype(np.float32)
    big = keys.astype(">f4")
    a, t = rng.standard_normal(3), 0.3
    for backend in ["numpy", "brute", "auto"]:
        hsr = HSR(big, backend=backend)
        assert hsr.dtype == np.float32 and hsr.blocks[0].points.dtype == np.float32
        np.testing.assert_array_equal(hsr.query(a, t), HSR(keys, backend=backend).query(a, t))
        hsr.add(big[:5])
        assert hsr.dtype == np.float32
    assert math.isclose(float(big[0, 0]), float(keys[0, 0]))
