"""Adversarial property battery: every backend, as a hostile user would feed it.

Integer and dyadic data (ties exactly at the threshold, duplicates, collinear and lattice
points), float32 keys whose float32 scores round, d = 1 .. 10, every backend (reference, numpy,
brute, layers at d = 2, auto), ``query`` and ``query_many``, stateful adds and deletes with
rejected inputs interleaved, and scales 2^k for k in [-1000, 1000]. The oracle is computed
independently, exactly, with ``fractions.Fraction``: a stored point x is reported iff
``<a, x> >= t`` over the rationals. The data are chosen so that float64 computes every score
exactly (the terms of one score share a power of two), so any disagreement is a bug, not
rounding. Where a scale passes the documented limits (``MAX_COORD``, ``MAX_PRODUCT``) the
expected outcome is a ValueError that names the argument.

Beyond the structure: ``sinks`` and ``window`` of every attention entry point at any size
(2^63, 2^100: the same as the whole sequence) and of any bad type; the SmolLM2 tokenizer
against Hugging Face ``tokenizers`` on random text and long pieces without spaces; and
corrupt copies of the SmolLM2 GGUF file (truncated anywhere, any byte changed), each refused
with a ValueError that names the file.

``COUNT`` tallies the checks by kind; every test must add to it (a test that checks nothing
fails), and the tally of the file's tests is printed after them, whatever their order
(``pytest -s`` not needed). A mismatch fails its test, so a passing run has 0 mismatches.
"""

from __future__ import annotations

import os
import re
import string
from collections import Counter
from fractions import Fraction

import numpy as np
import pytest
from _smol import needs_smol, reference_tokenizer
from conftest import DeletesFromModel, examples
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from hsr_lab import HSR
from hsr_lab.attention import Decoder, relu_attention, softmax_attention
from hsr_lab.hsr.numerics import MAX_COORD, MAX_PRODUCT

COUNT: Counter[str] = Counter()  # checks made by the battery, by kind
TOKENS: Counter[str] = Counter()  # token ids compared with the reference tokenizer


@pytest.fixture(autouse=True)
def makes_checks(request):
    """Every test of the battery must make at least one check (a failed test is reported
    as such, not again here)."""
    before, failed = sum(COUNT.values()), request.session.testsfailed
    yield
    if request.session.testsfailed == failed:
        assert sum(COUNT.values()) > before, f"{request.node.name} made no check"


@pytest.fixture(scope="module", autouse=True)
def tally(request):
    """After the file's tests (in any order, any selection): the number of checks, by kind."""
    failed_before = request.session.testsfailed
    yield
    failed = request.session.testsfailed - failed_before  # a mismatch fails its test
    line = (f"adversarial battery ({os.environ.get('HYPOTHESIS_PROFILE', 'default')} profile): "
            f"{sum(COUNT.values())} checks, {failed} failed tests; "
            + ", ".join(f"{k} {v}" for k, v in sorted(COUNT.items()))
            + f" ({TOKENS['ids']} token ids compared)")
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():  # to the terminal, not a test's capture
            reporter.write_line("\n" + line)


def backends_for(d: int) -> list[str]:
    return ["reference", "numpy", "compiled", "brute", "auto"] + (["layers"] if d == 2 else [])


def exact_ids(points: np.ndarray, a: np.ndarray, t: float) -> list[int]:
    """Rows x of points with <a, x> >= t, in exact rational arithmetic."""
    fa, ft = [Fraction(v) for v in a.tolist()], Fraction(t)
    return [i for i, x in enumerate(points.tolist())
            if sum((Fraction(v) * w for v, w in zip(x, fa, strict=True)), Fraction(0)) >= ft]


def too_big(points: np.ndarray, A: np.ndarray) -> tuple[bool, bool]:
    """Whether HSR must refuse the points, and (if not) the queries: the documented limits."""
    largest = float(np.abs(points).max())
    return largest > MAX_COORD, float(np.abs(A).max()) * largest * points.shape[1] > MAX_PRODUCT


# -- data -------------------------------------------------------------------------------------
@st.composite
def shapes(draw, n: int, d: int) -> np.ndarray:
    """Small integers laid out adversarially: random, lattice, collinear or duplicated rows."""
    kind = draw(st.sampled_from(["random", "lattice", "collinear", "duplicates"]))
    span = draw(st.sampled_from([0, 1, 2, 5]))
    ints = st.integers(-span, span)
    if kind == "lattice":  # a full grid corner: every coordinate value shared by many points
        side = draw(st.integers(1, 3))
        grid = np.stack(np.meshgrid(*[np.arange(side)] * d, indexing="ij"), -1).reshape(-1, d)
        return grid[:n].astype(np.float64) - side // 2
    if kind == "collinear":  # c + s v: every point on one line
        c = np.array(draw(st.lists(ints, min_size=d, max_size=d)), dtype=np.float64)
        v = np.array(draw(st.lists(st.integers(-2, 2), min_size=d, max_size=d)), float)
        steps = np.array(draw(st.lists(st.integers(-4, 4), min_size=n, max_size=n)), float)
        return c + steps[:, None] * v
    rows = draw(st.integers(1, n)) if kind == "duplicates" else n
    base = np.array(draw(st.lists(ints, min_size=rows * d, max_size=rows * d)),
                    dtype=np.float64).reshape(rows, d)
    return base[np.arange(n) % rows]


@st.composite
def dyadic_instances(draw, max_n: int = 40, max_d: int = 10, max_m: int = 3):
    """Points ``ints * 2^(k + e_row)``, queries ``ints * 2^j``, thresholds ``t0 * 2^(k + j)``
    with t0 a stored point's score (a tie), that score divided by 2^1 .. 2^80, or a small
    integer or half-integer.

    Every score is exact in float64 (its terms share the power of two of their row), while the
    boxes mix rows up to 2^180 apart, so their bounds round and the margin must cover that."""
    n, d = draw(st.integers(1, max_n)), draw(st.integers(1, max_d))
    points = draw(shapes(n, d))
    if draw(st.booleans()):  # each row its own power of two: huge and tiny side by side
        e = np.array(draw(st.lists(st.one_of(st.just(0), st.integers(-120, 60)),
                                   min_size=len(points), max_size=len(points))))
        points = np.ldexp(points, e[:, None])
    k = draw(st.one_of(st.integers(-1000, 1000),
                       st.sampled_from([0, -1000, -900, -700, -560, 490, 530])))
    j = draw(st.one_of(st.integers(-10, 10).map(lambda s: s - k),
                       st.integers(max(-1000, -1000 - k), min(1000, 1000 - k))))
    j = max(-900 - k, min(900 - k, j))  # k + j in [-900, 900]: no score underflows or overflows
    m = draw(st.integers(1, max_m))
    A = np.array(draw(st.lists(st.integers(-3, 3), min_size=m * d, max_size=m * d)),
                 dtype=np.float64).reshape(m, d)
    t0 = []
    for a in A:
        kind = draw(st.sampled_from(["tie", "near", "int", "half"]))
        score = float(points[draw(st.integers(0, len(points) - 1))] @ a)
        if kind == "near":  # between 0 and a stored score, far below the box bounds' rounding
            score = float(np.ldexp(score, -draw(st.integers(1, 80))))
        t0.append(score if kind in ("tie", "near") else draw(st.integers(-8, 8)) + (
            0.5 if kind == "half" else 0.0))
    with np.errstate(over="ignore"):  # a point scaled past the float range is inf on purpose:
        # HSR must refuse it with a ValueError (the oracle's branch for out-of-range input)
        return np.ldexp(points, k), np.ldexp(A, j), np.ldexp(np.array(t0), k + j)


# -- query and query_many against the exact oracle ---------------------------------------------
def check_backend(points: np.ndarray, A: np.ndarray, t: np.ndarray, backend: str,
                  leaf_size: int) -> None:
    """One backend against the exact oracle: every query alone and all of them as a batch."""
    refuse_points, refuse_queries = too_big(points, A)
    if refuse_points:
        with pytest.raises(ValueError, match="points"):
            HSR(points, backend=backend, leaf_size=leaf_size)
        COUNT["rejections"] += 1
        return
    hsr = HSR(points, backend=backend, leaf_size=leaf_size)
    if refuse_queries:
        with pytest.raises(ValueError, match="overflow"):
            hsr.query_many(A, t)
        COUNT["rejections"] += 1
        return
    expected = [exact_ids(points, a, float(t_i)) for a, t_i in zip(A, t, strict=True)]
    for a, t_i, want in zip(A, t, expected, strict=True):
        np.testing.assert_array_equal(hsr.query(a, float(t_i)), want, err_msg=backend)
        COUNT["query"] += 1
    indptr, ids = hsr.query_many(A, t)
    for i, want in enumerate(expected):
        np.testing.assert_array_equal(ids[indptr[i]:indptr[i + 1]], want, err_msg=backend)
        COUNT["query_many rows"] += 1


@settings(max_examples=examples(120))
@given(dyadic_instances(), st.sampled_from([1, 2, 3, 8, 32]))
def test_every_backend_equals_the_exact_oracle(instance, leaf_size):
    points, A, t = instance
    for backend in backends_for(points.shape[1]):
        check_backend(points, A, t, backend, leaf_size)


@settings(max_examples=examples(60))
@given(dyadic_instances(max_n=60, max_d=2, max_m=4), st.sampled_from([1, 4]))
def test_every_backend_in_the_plane_equals_the_exact_oracle(instance, leaf_size):
    """The plane gets its own run: it is the only dimension with the convex layers."""
    points, A, t = instance
    for backend in backends_for(points.shape[1]):
        check_backend(points, A, t, backend, leaf_size)


@st.composite
def two_scale_instances(draw):
    """Rows at two scales 2^54 .. 2^200 apart in one box, and t just above or below a small
    row's score: the box bounds round away everything the small rows contribute, so only the
    margin stands between the box test and a wrong answer (it must not underflow)."""
    n, d = draw(st.integers(2, 10)), draw(st.integers(1, 4))
    gap = draw(st.integers(54, 200))
    k = draw(st.integers(-1000 + gap, 490))
    j = draw(st.integers(max(-1000, -1000 - k + gap), min(1000, 900 - k)))
    ints = np.array(draw(st.lists(st.integers(-3, 3), min_size=n * d, max_size=n * d)),
                    dtype=np.float64).reshape(n, d)
    small = np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)))
    points = np.ldexp(ints, np.where(small, k - gap, k)[:, None])
    a = np.ldexp(np.array(draw(st.lists(st.integers(-3, 3), min_size=d, max_size=d)), float), j)
    score = float(points[draw(st.integers(0, n - 1))] @ a)
    t = float(np.ldexp(score, -draw(st.integers(0, 40)))) * draw(st.sampled_from([1, -1]))
    return points, a[None, :], np.array([t])


@settings(max_examples=examples(100))
@given(two_scale_instances(), st.sampled_from([1, 2, 32]))
def test_mixed_scales_in_one_box_equal_the_exact_oracle(instance, leaf_size):
    points, A, t = instance
    for backend in backends_for(points.shape[1]):
        check_backend(points, A, t, backend, leaf_size)


@settings(max_examples=examples(40))
@given(st.integers(1, 10), st.integers(-1000, 1000), st.integers(0, 2**32 - 1))
def test_float_data_at_every_scale_equals_the_scan(d, k, seed):
    """Gaussian data scaled by 2^k, a query by 2^-k: thresholds halfway between two distinct
    scores, so that any correct float64 evaluation decides every point the same way."""
    rng = np.random.default_rng(seed)
    points = np.ldexp(rng.standard_normal((200, d)), k)
    a = np.ldexp(rng.standard_normal(d), -k)
    scores = np.unique(points @ a)
    mids = (scores[1:] + scores[:-1]) / 2 if len(scores) > 1 else scores - 1.0
    if too_big(points, a[None, :])[0]:
        with pytest.raises(ValueError, match="points"):
            HSR(points, backend="numpy")
        COUNT["rejections"] += 1
        return
    for t in rng.choice(mids, 3):
        want = np.flatnonzero(points @ a >= t)
        for backend in backends_for(d):
            hsr = HSR(points, backend=backend, leaf_size=4)
            np.testing.assert_array_equal(hsr.query(a, float(t)), want, err_msg=backend)
            _, ids = hsr.query_many(a[None, :], float(t))
            np.testing.assert_array_equal(ids, want, err_msg=backend)
            COUNT["float scaled"] += 2


# -- float32 keys: scored in float32, the band around t settled exactly (hsr/exact.py) --------
@st.composite
def float32_instances(draw, max_n: int = 40, max_d: int = 10, max_m: int = 3):
    """float32 points ``ints * 2^(k + e_row)`` (ints up to 2^16, so their products with the
    queries need up to 46 bits and round in float32), queries ``ints * 2^j`` (ints up to 2^30:
    fl32(a) rounds too), thresholds at a stored point's score (a tie), one float64 unit above or
    below it, or a small integer. Every score is exact in float64 (the terms of one score share
    a power of two and fit in 53 bits), so the exact oracle is the float64 answer; scales run
    from float32 underflow (products near 2^-149) to past ``MAX_PRODUCT32`` (float64 path)."""
    n, d = draw(st.integers(1, max_n)), draw(st.integers(1, max_d))
    span = draw(st.sampled_from([1, 5, 2**8, 2**16]))
    ints = np.array(draw(st.lists(st.integers(-span, span), min_size=n * d, max_size=n * d)),
                    dtype=np.float64).reshape(n, d)
    rows = draw(st.integers(1, n))
    ints = ints[np.arange(n) % rows]  # duplicates when rows < n
    e = np.array(draw(st.lists(st.integers(-8, 8), min_size=n, max_size=n)))
    k = draw(st.integers(-130, 100))
    points = np.ldexp(ints, (k + e)[:, None])
    assume(np.array_equal(points.astype(np.float32), points))  # float32 values, no rounding
    m = draw(st.integers(1, max_m))
    q_span = draw(st.sampled_from([3, 2**12, 2**30]))
    j = draw(st.integers(-140 - k, 60 - k))
    A = np.ldexp(np.array(draw(st.lists(st.integers(-q_span, q_span), min_size=m * d,
                                        max_size=m * d)), dtype=np.float64).reshape(m, d), j)
    t = []
    for a in A:
        score = float(points[draw(st.integers(0, n - 1))] @ a)
        kind = draw(st.sampled_from(["tie", "tie", "above", "below", "int"]))
        t.append({"tie": score, "above": np.nextafter(score, np.inf),
                  "below": np.nextafter(score, -np.inf)}.get(kind, float(draw(st.integers(-4, 4)))))
    return points.astype(np.float32), A, np.array(t)


@settings(max_examples=examples(150))
@given(float32_instances(), st.sampled_from([1, 2, 3, 8, 128]))
def test_float32_keys_equal_the_exact_oracle_on_every_backend(instance, leaf_size):
    """float32 keys stay float32, and every backend, alone and in a batch, reports exactly the
    points with ``<a, x> >= t`` (ties at t included) although float32 scores round."""
    points, A, t = instance
    for backend in backends_for(points.shape[1]):
        assert HSR(points, backend=backend, leaf_size=leaf_size).dtype == np.float32
        check_backend(points, A, t, backend, leaf_size)
        COUNT["float32"] += 1


@settings(max_examples=examples(100))
@given(float32_instances())
def test_faiss_scan_equals_the_exact_oracle(instance):
    """faiss's float32 scan (``FaissScan``): the band around t settled exactly (``hsr/exact.py``),
    ties included."""
    pytest.importorskip("faiss")
    from hsr_lab.hsr.faiss_scan import FaissScan

    points, A, t = instance
    if too_big(points, A)[1]:
        return  # HSR refuses these queries before any block sees them
    scan = FaissScan(points, np.arange(len(points)), 1)
    expected = [exact_ids(points, a, float(t_i)) for a, t_i in zip(A, t, strict=True)]
    indptr, ids, _ = scan.query_many(A, t)
    search_indptr, search_ids, _ = scan._search(A, t)  # faiss's batched search
    np.testing.assert_array_equal(search_indptr, indptr)
    np.testing.assert_array_equal(search_ids, ids)
    for i, (a, t_i, want) in enumerate(zip(A, t, expected, strict=True)):
        np.testing.assert_array_equal(scan.query(a, float(t_i))[0], want)
        np.testing.assert_array_equal(ids[indptr[i]:indptr[i + 1]], want)
        COUNT["faiss float32"] += 2


# -- stateful: updates with rejected inputs interleaved ------------------------------------------
BAD_ADDS = [
    (lambda d: np.zeros((1, d + 1)), ValueError),
    (lambda d: np.full((1, d), np.nan), ValueError),
    (lambda d: np.full((2, d), np.inf), ValueError),
    (lambda d: np.full((1, d), 1e200), ValueError),
    (lambda d: np.zeros((1, d), dtype=complex), TypeError),
    (lambda d: np.array([["x"] * d]), TypeError),
    (lambda d: np.zeros((1, 1, d)), ValueError),
    (lambda d: np.zeros(d), ValueError),
    (lambda d: [[0.0] * d, [0.0] * (d + 1)], TypeError),
    (lambda d: np.ma.masked_array(np.full((2, d), np.nan), mask=True), ValueError),
]
BAD_DELETES = [
    lambda ids, n_ids: ([-1], ValueError),
    lambda ids, n_ids: ([n_ids], ValueError),
    lambda ids, n_ids: (np.array([2**63], dtype=np.uint64), ValueError),
    lambda ids, n_ids: ([0.0], TypeError),
    lambda ids, n_ids: ([[0]], TypeError),
    lambda ids, n_ids: ("0", TypeError),
    lambda ids, n_ids: ([ids[0], ids[0]] if ids else [-5], ValueError),
    lambda ids, n_ids: ([ids[-1], n_ids + 3] if ids else [n_ids], ValueError),
]


class UpdatesWithRejections(DeletesFromModel, RuleBasedStateMachine):
    """Adds, deletes and queries against a dict model; every rejected call must leave the
    structure unchanged (repr, len and answers)."""

    def __init__(self):
        super().__init__()
        self.hsr: HSR | None = None
        self.model: dict[int, np.ndarray] = {}
        self.n_ids = 0

    def points(self, seed: int, m: int) -> np.ndarray:
        ints = np.random.default_rng(seed).integers(-3, 4, (m, self.d)).astype(np.float64)
        return np.ldexp(ints, self.k)

    @precondition(lambda self: self.hsr is None)
    @rule(backend=st.sampled_from(["numpy", "compiled", "reference", "brute", "layers", "auto"]),
          d=st.integers(1, 4), k=st.sampled_from([0, -1000, -560, 400]), n=st.integers(1, 12),
          seed=st.integers(0, 2**16), leaf_size=st.sampled_from([1, 2, 5]))
    def create(self, backend, d, k, n, seed, leaf_size):
        self.d, self.k = (2 if backend == "layers" else d), k
        pts = self.points(seed, n)
        self.hsr = HSR(pts, backend=backend, leaf_size=leaf_size)
        self.model, self.n_ids = dict(enumerate(pts)), n
        self.largest = float(np.abs(pts).max())  # over every point ever stored

    @precondition(lambda self: self.hsr is not None)
    @rule(m=st.integers(0, 6), seed=st.integers(0, 2**16))
    def add(self, m, seed):
        pts = self.points(seed, m)
        ids = self.hsr.add(pts)
        np.testing.assert_array_equal(ids, np.arange(self.n_ids, self.n_ids + m))
        self.model.update(zip(ids.tolist(), pts, strict=True))
        self.n_ids += m
        self.largest = max(self.largest, float(np.abs(pts).max(initial=0.0)))

    @precondition(lambda self: self.hsr is not None and self.model)
    @rule()
    def delete_everything(self):
        self.hsr.delete(sorted(self.model))
        self.model.clear()

    @precondition(lambda self: self.hsr is not None)
    @rule(which=st.integers(0, len(BAD_ADDS) - 1))
    def rejected_add(self, which):
        make, error = BAD_ADDS[which]
        self.rejected(lambda: self.hsr.add(make(self.d)), error, "points")

    @precondition(lambda self: self.hsr is not None)
    @rule(which=st.integers(0, len(BAD_DELETES) - 1))
    def rejected_delete(self, which):
        ids, error = BAD_DELETES[which](sorted(self.model), self.n_ids)
        self.rejected(lambda: self.hsr.delete(ids), error, "ids")

    @precondition(lambda self: self.hsr is not None)
    @rule(which=st.integers(0, 4))
    def rejected_query(self, which):
        d, huge = self.d, 4 * MAX_PRODUCT / max(self.largest, 1e-300)
        calls = [(lambda: self.hsr.query([1.0] * (d + 1), 0.0), "a"),
                 (lambda: self.hsr.query([1.0] * d, float("nan")), "t"),
                 (lambda: self.hsr.query([huge] * d, 0.0), "overflow"),
                 (lambda: self.hsr.query_many([[1.0] * d], np.zeros(3)), "t"),
                 (lambda: self.hsr.query([1.0] * d, 10**400), "t")]
        call, name = calls[which]
        if name == "overflow" and (self.largest == 0 or not np.isfinite(huge)):
            return  # no query overflows with these points
        self.rejected(call, ValueError, name)

    def rejected(self, call, error, name: str) -> None:
        """The call must raise ``error`` naming ``name`` and change nothing."""
        before = (repr(self.hsr), len(self.hsr), self.answers())
        with pytest.raises(error, match=name):
            call()
        assert (repr(self.hsr), len(self.hsr), self.answers()) == before
        COUNT["rejections"] += 1

    def answers(self) -> list[list[int]]:
        """The answers to a few fixed queries (with a scale that only the true limits refuse)."""
        A = np.ldexp(np.array([[1.0] * self.d, [-1.0] + [0.0] * (self.d - 1)]), -self.k)
        return [self.hsr.query(a, 0.0).tolist() for a in A] + [
            self.hsr.query_many(A, [1.0, -2.0])[1].tolist()]

    @precondition(lambda self: self.hsr is not None)
    @rule(data=st.data())
    def query(self, data):
        a = np.array(data.draw(st.lists(st.integers(-2, 2), min_size=self.d, max_size=self.d)),
                     dtype=np.float64)
        a, t = np.ldexp(a, -self.k), float(data.draw(st.integers(-6, 6)))
        want = [i for i in sorted(self.model) if exact_ids(self.model[i][None, :], a, t)]
        np.testing.assert_array_equal(self.hsr.query(a, t), want)
        np.testing.assert_array_equal(self.hsr.query_many(a[None, :], t)[1], want)
        COUNT["stateful queries"] += 2

    @invariant()
    def size_matches(self):
        if self.hsr is not None:
            assert len(self.hsr) == len(self.model)


TestUpdatesWithRejections = UpdatesWithRejections.TestCase
TestUpdatesWithRejections.settings = settings(max_examples=examples(40),
                                              stateful_step_count=25, deadline=None)


# -- sinks and window of any size, in every attention entry point ------------------------------
def attention_entry_points(Q, K, V):
    """Every way to ask for attention with sinks and window: name -> call(sinks, window)."""
    def decoder(kind):
        def call(**kw):  # a cache of all keys but the last, then one step
            dec = Decoder(Q.shape[1], b=0.2, kind=kind, backend="numpy", keys=K[:-1],
                          values=V[:-1], **kw)
            return dec.step(Q[-1], K[-1], V[-1])[0]
        return call

    return {
        "relu dense": lambda **kw: relu_attention(Q, K, V, 2, 0.2, **kw),
        "relu hsr": lambda **kw: relu_attention(Q, K, V, 2, 0.2, method="hsr", **kw),
        "relu hsr causal": lambda **kw: relu_attention(Q, K, V, 2, 0.2, causal=True,
                                                       method="hsr", **kw),
        "softmax dense": lambda **kw: softmax_attention(Q, K, V, b=0.2, **kw),
        "softmax dense causal": lambda **kw: softmax_attention(Q, K, V, b=0.2, causal=True, **kw),
        "softmax hsr": lambda **kw: softmax_attention(Q, K, V, b=0.2, method="hsr", **kw),
        "softmax hsr causal": lambda **kw: softmax_attention(Q, K, V, b=0.2, causal=True,
                                                             method="hsr", **kw),
        "relu decoder": decoder("relu"),
        "softmax decoder": decoder("softmax"),
    }


def small_attention(seed: int, n: int = 9, d: int = 3):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, d)), rng.standard_normal((n, d)), rng.standard_normal((n, 2))


@settings(max_examples=examples(25))
@given(st.integers(0, 2**16), st.sampled_from(["sinks", "window"]),
       st.one_of(st.sampled_from([2**62, 2**63 - 1, 2**63, 2**64, 2**100, 10**400]),
                 st.integers(0, 2**200), st.integers(0, 12)))
def test_sinks_and_window_of_any_size_mean_at_most_every_key(seed, name, value):
    """A window (or sinks) longer than the sequence is the whole sequence: any value, however
    large, gives the answer of min(value, n), on every entry point, never an OverflowError."""
    Q, K, V = small_attention(seed)
    for entry, call in attention_entry_points(Q, K, V).items():
        got, want = call(**{name: value}), call(**{name: min(value, len(K))})
        np.testing.assert_array_equal(got, want, err_msg=f"{entry} {name}={value}")
        COUNT["sinks/window values"] += 1


@pytest.mark.parametrize(("value", "error"), [
    (1.5, TypeError), (2.0, TypeError), ("3", TypeError), (None, TypeError), (True, TypeError),
    (np.float64(2.0), TypeError), (Fraction(2), TypeError), (2**100 + 0.5, TypeError),
    (np.bool_(True), TypeError), (-1, ValueError), (-(2**100), ValueError),
    (np.int64(-3), ValueError)])
def test_sinks_and_window_of_a_bad_type_or_sign_are_refused_by_name(value, error):
    Q, K, V = small_attention(0)
    for call in attention_entry_points(Q, K, V).values():
        for name in ("sinks", "window"):
            with pytest.raises(error, match=name):
                call(**{name: value})
            COUNT["sinks/window rejections"] += 1


def test_huge_sinks_and_window_read_plainly_in_the_decoder():
    dec = Decoder(2, sinks=2**100, window=2**63)
    assert dec.sinks == dec.window == 2**62 and "window=4611686018427387904" in repr(dec)
    COUNT["sinks/window values"] += 1


# -- the SmolLM2 tokenizer against Hugging Face tokenizers ---------------------------------------
SYMBOLS = [*string.ascii_letters, *string.digits, *" \n\t\r.,;:'\"!?-_", "é", "ß", "東", "京",
           "😀", "\u00a0", "\u2028", "\u200d", "ʼ", "½", "٣", "Ⅻ", "'s", "'ll", " the", "  "]
WORDLIKE = st.lists(st.sampled_from(SYMBOLS), max_size=40).map("".join)


@st.composite
def texts(draw):
    """Pieces of every kind, joined: words and marks, any Unicode, control tokens, and long
    runs without a space (letters, accented letters, digits or marks: 100 to 6000 chars)."""
    controls = ["<|im_start|>", "<|im_end|>", "<|endoftext|>", "<repo_name>"]
    run_alphabet = draw(st.sampled_from([string.ascii_letters, "aeiou", "abcdéèçñßøå",
                                         string.punctuation, "ab", "東京日本語"]))
    long_run = st.integers(100, 6000).flatmap(lambda n: st.integers(0, 2**32 - 1).map(
        lambda seed: "".join(np.random.default_rng(seed).choice(list(run_alphabet), n))))
    piece = st.one_of(WORDLIKE, st.text(max_size=12), st.sampled_from(controls), long_run)
    return "".join(draw(st.lists(piece, max_size=6)))


@needs_smol
@settings(max_examples=examples(150), suppress_health_check=[HealthCheck.too_slow])
@given(texts())
def test_bpe_equals_the_reference_tokenizer(text):
    from hsr_lab.data import smollm2

    ours, theirs = smollm2.load_tokenizer(), reference_tokenizer()
    if not ours.no_token.isdisjoint(text.encode("utf-8")):  # tokenizers drops such bytes
        with pytest.raises(ValueError, match=r"text holds .* at position .* has no token"):
            ours.encode(text)
        COUNT["tokenizer texts refused"] += 1
        return
    ids = ours.encode(text)
    assert ids == theirs.encode(text, add_special_tokens=False).ids
    assert ours.decode(ids) == text
    if ids:  # the limit is exact: len(ids) tokens pass, one fewer is refused
        assert ours.encode(text, max_tokens=len(ids)) == ids
        with pytest.raises(ValueError, match=f"max_tokens={len(ids) - 1}"):
            ours.encode(text, max_tokens=len(ids) - 1)
    COUNT["tokenizer texts"] += 1
    TOKENS["ids"] += len(ids)


# -- corrupt copies of the SmolLM2 GGUF --------------------------------------------------------
@pytest.fixture(scope="module")
def gguf_copy(tmp_path_factory):
    """A copy of the shipped GGUF, its bytes, and where its tensor data start."""
    from hsr_lab.data import smollm2

    data = smollm2.gguf_path().read_bytes()
    path = tmp_path_factory.mktemp("gguf") / "copy.gguf"
    path.write_bytes(data)
    start = min(t.start for t in smollm2.open_gguf(path).tensors.values())
    return path, data, start


def refused_naming(path, call) -> None:
    with pytest.raises(ValueError, match=re.escape(str(path))):
        call()


@needs_smol
@settings(max_examples=examples(12), suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_a_gguf_with_any_byte_changed_is_refused_naming_it(gguf_copy, data):
    """Any byte changed, in the header, metadata and tensor list (mostly) or the tensor data:
    the structural checks refuse it by name or pass it (a changed letter of a token), and the
    digest then refuses it; never another exception."""
    from hsr_lab.data import smollm2

    path, original, start = gguf_copy
    at = data.draw(st.one_of(st.integers(0, start + 63), st.integers(0, len(original) - 1)))
    flip = data.draw(st.integers(1, 255))
    with open(path, "r+b") as f:
        f.seek(at)
        f.write(bytes([original[at] ^ flip]))
    try:
        try:
            smollm2.open_gguf(path, sha256=None)
            COUNT["gguf bytes passing the structure"] += 1
        except ValueError as err:
            assert str(path) in str(err)
        refused_naming(path, lambda: smollm2.open_gguf(path))
        COUNT["gguf changed bytes"] += 1
    finally:
        with open(path, "r+b") as f:
            f.seek(at)
            f.write(original[at:at + 1])


@needs_smol
@settings(max_examples=examples(12), suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_a_gguf_truncated_anywhere_is_refused_naming_it(gguf_copy, tmp_path_factory, data):
    from hsr_lab.data import smollm2

    _, original, start = gguf_copy
    cut = data.draw(st.one_of(st.integers(0, start + 63), st.integers(0, len(original) - 1)))
    path = tmp_path_factory.mktemp("cut") / f"cut-{cut}.gguf"
    path.write_bytes(original[:cut])
    try:
        refused_naming(path, lambda: smollm2.open_gguf(path, sha256=None))  # by structure
        COUNT["gguf truncations"] += 1
    finally:
        path.unlink()


# -- figures into a dangling symbolic link -------------------------------------------------------
def test_figures_into_a_dangling_symlink_say_so(tmp_path, capsys):
    from hsr_lab import cli

    link = tmp_path / "LINK"
    link.symlink_to(tmp_path / "missing" / "dir")
    for out in (link, link / "sub"):
        assert cli.main(["figures", "--quick", "--only", "hsr_plane", "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert f"'{link}' is a symbolic link to '{tmp_path / 'missing' / 'dir'}', which does " \
               "not exist" in err and "File exists" not in err
        COUNT["figure folders"] += 1
    assert not (tmp_path / "missing").exists()  # nothing created where the link points
