"""HSR: every backend against the brute-force oracle, updates against a plain model, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import DeletesFromModel
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from hsr_lab import HSR
from hsr_lab.hsr import BACKENDS

TREE_BACKENDS = ["numpy", "reference"]


def backends_for(d: int) -> list[str]:
    """Every backend that accepts dimension d."""
    return ["auto", "numpy", "compiled", "reference", "brute"] + (["layers"] if d == 2 else [])


def oracle(points: np.ndarray, a: np.ndarray, t: float) -> np.ndarray:
    """The definition, in plain Python: ids of the x with <a, x> >= t."""
    out = []
    for i, x in enumerate(np.asarray(points, dtype=np.float64).tolist()):
        s = 0.0
        for ai, xi in zip(a.tolist(), x, strict=True):
            s += ai * xi
        if s >= t:
            out.append(i)
    return np.array(out, dtype=np.int64)


@st.composite
def exact_instances(draw, max_n: int = 60, max_d: int = 5):
    """Points and a query whose inner products are exact in float64.

    Small integer coordinates (many duplicates and collinear points), each point optionally
    scaled by its own power of two (huge and tiny magnitudes), and a threshold taken from the
    score of a stored point, so some points lie exactly on the boundary.
    """
    n = draw(st.integers(1, max_n))
    d = draw(st.integers(1, max_d))
    span = draw(st.sampled_from([1, 3, 8]))
    ints = np.array(draw(st.lists(st.integers(-span, span), min_size=n * d, max_size=n * d)),
                    dtype=np.float64).reshape(n, d)
    if draw(st.booleans()):
        exps = draw(st.lists(st.integers(-30, 30), min_size=n, max_size=n))
        ints *= np.exp2(np.array(exps, dtype=np.float64))[:, None]
    dtype = draw(st.sampled_from([np.float64, np.float32]))
    a = np.array(draw(st.lists(st.integers(-3, 3), min_size=d, max_size=d)), dtype=np.float64)
    pick = draw(st.integers(0, n - 1))
    t = float(ints[pick] @ a) if draw(st.booleans()) else float(draw(st.integers(-10, 10)))
    return ints.astype(dtype), a, t


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(exact_instances(), st.sampled_from([1, 2, 3, 8]))
def test_every_backend_equals_the_oracle_on_exact_adversarial_data(instance, leaf_size):
    points, a, t = instance
    expected = oracle(points, a, t)
    for backend in backends_for(points.shape[1]):
        got = HSR(points, backend=backend, leaf_size=leaf_size).query(a, t)
        assert got.dtype == np.int64
        np.testing.assert_array_equal(got, expected, err_msg=backend)


@pytest.mark.parametrize("kind", ["gaussian", "clustered", "anisotropic"])
@pytest.mark.parametrize("d", [1, 2, 3, 5, 16])
def test_every_backend_equals_brute_on_random_data(kind, d):
    rng = np.random.default_rng(d)
    n = 3000 if d < 16 else 1500
    if kind == "gaussian":
        points = rng.standard_normal((n, d))
    elif kind == "clustered":
        centers = 5 * rng.standard_normal((20, d))
        points = centers[rng.integers(0, 20, n)] + 0.1 * rng.standard_normal((n, d))
    else:
        points = rng.standard_normal((n, d)) * np.geomspace(100, 0.01, d)
    structures = {b: HSR(points, backend=b, leaf_size=16) for b in backends_for(d)}
    for _ in range(10):
        a = rng.standard_normal(d)
        t = float(np.quantile(points @ a, rng.uniform(0.0, 1.0)))
        expected = np.flatnonzero(points @ a >= t)
        for backend, hsr in structures.items():
            np.testing.assert_array_equal(hsr.query(a, t), expected, err_msg=backend)


def test_reference_and_numpy_build_the_same_tree_and_count_the_same_work():
    rng = np.random.default_rng(7)
    points = rng.standard_normal((4000, 3))
    ref, fast = (HSR(points, backend=b, leaf_size=8) for b in TREE_BACKENDS)
    assert ref.depth == fast.depth
    for _ in range(20):
        a = rng.standard_normal(3)
        t = float(rng.normal(0, 2))
        ids_ref, stats_ref = ref.query(a, t, stats=True)
        ids_fast, stats_fast = fast.query(a, t, stats=True)
        np.testing.assert_array_equal(ids_ref, ids_fast)
        assert stats_ref == stats_fast


def test_tree_prunes_in_low_dimension():
    """The counters show the point of the structure: far fewer inner products than n."""
    rng = np.random.default_rng(0)
    n = 2**15
    points = rng.standard_normal((n, 2))
    a = np.array([0.6, 0.8])
    ids, stats = HSR(points, backend="numpy").query(a, 1.0, stats=True)
    assert stats.points_reported == len(ids) > 0
    assert stats.inner_products + stats.nodes_visited < n / 10
    assert stats.nodes_reported > 0 and stats.nodes_pruned > 0


def test_tiny_inputs_and_degenerate_queries():
    for backend in backends_for(2):
        one = HSR([[1.0, 2.0]], backend=backend)
        np.testing.assert_array_equal(one.query([1.0, 0.0], 1.0), [0])  # on the boundary
        np.testing.assert_array_equal(one.query([1.0, 0.0], 1.5), [])
        same = HSR(np.ones((50, 2)), backend=backend, leaf_size=4)
        np.testing.assert_array_equal(same.query([0.0, 0.0], 0.0), np.arange(50))
        assert len(same.query([0.0, 0.0], 1e-300)) == 0
    line = HSR(np.arange(7.0)[:, None], backend="numpy", leaf_size=1)  # d = 1
    np.testing.assert_array_equal(line.query([-1.0], -3.0), [0, 1, 2, 3])


def test_inputs_are_never_modified():
    rng = np.random.default_rng(3)
    points = rng.standard_normal((500, 3)).astype(np.float32)
    a = rng.standard_normal(3)
    before_points, before_a = points.copy(), a.copy()
    for backend in backends_for(3):
        hsr = HSR(points, backend=backend, leaf_size=4)
        hsr.query(a, 0.1)
        extra = rng.standard_normal((5, 3))
        extra_before = extra.copy()
        hsr.add(extra)
        np.testing.assert_array_equal(extra, extra_before)
    np.testing.assert_array_equal(points, before_points)
    np.testing.assert_array_equal(a, before_a)


def test_ids_are_stable_across_adds_and_deletes():
    rng = np.random.default_rng(5)
    hsr = HSR(rng.standard_normal((100, 2)), backend="numpy", leaf_size=4)
    new = hsr.add(rng.standard_normal((3, 2)))
    np.testing.assert_array_equal(new, [100, 101, 102])
    hsr.delete([0, 101])
    assert len(hsr) == 101
    np.testing.assert_array_equal(hsr.add(np.zeros((1, 2))), [103])
    everything = hsr.query([0.0, 0.0], 0.0)
    assert 0 not in everything and 101 not in everything and 103 in everything
    assert len(everything) == 102


def test_repr_names_backend_size_depth_and_memory():
    text = repr(HSR(np.random.default_rng(0).standard_normal((3000, 2)), backend="numpy"))
    for part in ("numpy", "n=3000", "d=2", "depth=", "MiB", "x the keys"):
        assert part in text


BAD_CONSTRUCTION = [
    (dict(points=np.zeros((0, 2))), ValueError, "points"),
    (dict(points=np.zeros(3)), ValueError, "points"),
    (dict(points=np.zeros((2, 0))), ValueError, "points"),
    (dict(points=[[1.0, np.nan]]), ValueError, "points"),
    (dict(points=[[1.0, np.inf]]), ValueError, "points"),
    (dict(points=np.zeros((2, 2), dtype=complex)), TypeError, "points"),
    (dict(points=np.array([["a", "b"]])), TypeError, "points"),
    (dict(points=np.array([[1, None]], dtype=object)), TypeError, "points"),
    (dict(points=[[1e200, 0.0]]), ValueError, "points"),
    (dict(points=np.zeros((3, 2)), backend="kdtree"), ValueError, "backend"),
    (dict(points=np.zeros((3, 3)), backend="layers"), ValueError, "layers"),
    (dict(points=np.zeros((3, 2)), leaf_size=0), ValueError, "leaf_size"),
    (dict(points=np.zeros((3, 2)), leaf_size=2.5), TypeError, "leaf_size"),
]


@pytest.mark.parametrize(("kwargs", "error", "name"), BAD_CONSTRUCTION)
def test_bad_construction_is_rejected_with_a_clear_message(kwargs, error, name):
    with pytest.raises(error, match=name):
        HSR(**kwargs)


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_bad_queries_and_updates_are_rejected(backend):
    hsr = HSR(np.random.default_rng(0).standard_normal((20, 2)), backend=backend)
    cases = [
        (lambda: hsr.query([1.0], 0.0), ValueError, "a"),
        (lambda: hsr.query([1.0, np.nan], 0.0), ValueError, "a"),
        (lambda: hsr.query([1.0, 0.0], np.inf), ValueError, "t"),
        (lambda: hsr.query([1.0, 0.0], "0"), TypeError, "t"),
        (lambda: hsr.query([1e300, 0.0], 0.0), ValueError, "overflow"),
        (lambda: hsr.add(np.zeros((1, 3))), ValueError, "points"),
        (lambda: hsr.delete([20]), ValueError, "ids"),
        (lambda: hsr.delete([-1]), ValueError, "ids"),
        (lambda: hsr.delete([1.0]), TypeError, "ids"),
        (lambda: hsr.delete([3, 3]), ValueError, "ids"),
    ]
    for call, error, name in cases:
        with pytest.raises(error, match=name):
            call()
    hsr.delete([4])
    with pytest.raises(ValueError, match="already deleted"):
        hsr.delete([4])
    assert len(hsr) == 19  # the failed calls changed nothing


class UpdatesAgainstAModel(DeletesFromModel, RuleBasedStateMachine):
    """Random adds, deletes and queries; a dict of id -> point is the model."""

    def __init__(self):
        super().__init__()
        self.hsr: HSR | None = None
        self.model: dict[int, np.ndarray] = {}

    @precondition(lambda self: self.hsr is None)
    @rule(backend=st.sampled_from(["numpy", "compiled", "reference", "brute", "layers", "auto"]),
          n=st.integers(1, 12), seed=st.integers(0, 2**16))
    def create(self, backend, n, seed):
        points = np.random.default_rng(seed).integers(-3, 4, (n, 2)).astype(float)
        self.hsr = HSR(points, backend=backend, leaf_size=2)
        self.model = dict(enumerate(points))

    @precondition(lambda self: self.hsr is not None)
    @rule(m=st.integers(0, 6), seed=st.integers(0, 2**16))
    def add(self, m, seed):
        points = np.random.default_rng(seed).integers(-3, 4, (m, 2)).astype(float)
        ids = self.hsr.add(points)
        assert len(ids) == m and not set(ids.tolist()) & set(self.model)
        self.model.update(zip(ids.tolist(), points, strict=True))

    @precondition(lambda self: self.hsr is not None)
    @rule(a=st.tuples(st.integers(-2, 2), st.integers(-2, 2)), t=st.integers(-6, 6))
    def query(self, a, t):
        a = np.array(a, dtype=float)
        expected = sorted(i for i, x in self.model.items() if float(x @ a) >= t)
        np.testing.assert_array_equal(self.hsr.query(a, t), expected)

    @invariant()
    def size_matches(self):
        if self.hsr is not None:
            assert len(self.hsr) == len(self.model)


TestUpdatesAgainstAModel = UpdatesAgainstAModel.TestCase
TestUpdatesAgainstAModel.settings = settings(max_examples=60, stateful_step_count=30,
                                             deadline=None)


def test_query_stats_add_every_counter():
    from dataclasses import fields

    from hsr_lab.hsr import QueryStats

    one = QueryStats(*range(1, len(fields(QueryStats)) + 1))
    total = one + one
    assert [getattr(total, f.name) for f in fields(QueryStats)] == [
        2 * getattr(one, f.name) for f in fields(QueryStats)]


def test_many_single_adds_keep_every_point():
    rng = np.random.default_rng(11)
    hsr = HSR(rng.standard_normal((1, 2)), backend="numpy", leaf_size=4)
    for _ in range(300):
        hsr.add(rng.standard_normal((1, 2)))
    hsr.delete(np.arange(0, 301, 3))
    everything = hsr.query([0.0, 0.0], 0.0)
    np.testing.assert_array_equal(everything, np.setdiff1d(np.arange(301), np.arange(0, 301, 3)))
    assert len(hsr) == len(everything)


# ---------------------------------------------------------------- query_many


def loop_of_query(hsr: HSR, A: np.ndarray, t) -> tuple[list[np.ndarray], list]:
    """The definition of query_many: query(A[i], t[i]) for every row."""
    ts = np.broadcast_to(np.asarray(t, dtype=float), (len(A),))
    answers = [hsr.query(a, float(t_i), stats=True) for a, t_i in zip(A, ts, strict=True)]
    return [ids for ids, _ in answers], [cost for _, cost in answers]


def assert_rows_equal(hsr: HSR, A: np.ndarray, t, msg: str = "") -> None:
    """query_many equals a loop of query: the same sorted ids and the same counters, per row;
    sort=False gives the same ids in some order."""
    indptr, ids, stats = hsr.query_many(A, t, stats=True)
    expected, costs = loop_of_query(hsr, A, t)
    assert indptr.shape == (len(A) + 1,) and indptr[0] == 0 and ids.dtype == np.int64, msg
    assert len(stats) == len(A), msg
    for i, (want, cost) in enumerate(zip(expected, costs, strict=True)):
        np.testing.assert_array_equal(ids[indptr[i]:indptr[i + 1]], want, err_msg=f"{msg} {i}")
        assert stats[i] == cost, f"{msg} row {i}: {stats[i]} != {cost}"
    unsorted_ptr, unsorted, _ = hsr.query_many(A, t, stats=True, sort=False)
    np.testing.assert_array_equal(unsorted_ptr, indptr)
    for i in range(len(A)):
        np.testing.assert_array_equal(np.sort(unsorted[indptr[i]:indptr[i + 1]]),
                                      ids[indptr[i]:indptr[i + 1]], err_msg=f"{msg} {i}")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(exact_instances(max_n=40, max_d=4), st.sampled_from([1, 2, 8]), st.integers(0, 6),
       st.booleans(), st.data())
def test_query_many_equals_a_loop_of_query_on_exact_adversarial_data(instance, leaf_size, m,
                                                                      scalar_t, data):
    """Integer points (duplicates, huge and tiny scales) and integer queries whose thresholds
    are often the exact score of a stored point: ties on the boundary in every row."""
    points, _, _ = instance
    n, d = points.shape
    A = np.array(data.draw(st.lists(st.integers(-3, 3), min_size=m * d, max_size=m * d)),
                 dtype=np.float64).reshape(m, d)
    picks = data.draw(st.lists(st.integers(0, n - 1), min_size=m, max_size=m))
    t = np.array([float(points[j].astype(float) @ a) for j, a in zip(picks, A, strict=True)])
    if scalar_t:
        t = float(t[0]) if m else 0.5
    for backend in backends_for(d):
        hsr = HSR(points, backend=backend, leaf_size=leaf_size)
        assert_rows_equal(hsr, A, t, backend)
        for i in range(m):
            t_i = t if scalar_t else t[i]
            got = hsr.query_many(A[i:i + 1], [t_i])[1]
            np.testing.assert_array_equal(got, oracle(points, A[i], t_i), err_msg=backend)


@pytest.mark.parametrize("d", [1, 2, 5, 16])
def test_query_many_equals_a_loop_of_query_on_random_data(d):
    rng = np.random.default_rng(20 + d)
    n = 1500
    points = rng.standard_normal((n, d)) * np.geomspace(10, 0.1, d)
    A = rng.standard_normal((40, d))
    t = np.quantile(points @ A.T, rng.uniform(0.0, 1.0, 40), axis=0).diagonal().copy()
    for backend in backends_for(d):
        hsr = HSR(points, backend=backend, leaf_size=8)
        assert_rows_equal(hsr, A, t, backend)
        assert_rows_equal(hsr, A, float(t[0]), backend)  # one threshold for every row


def test_numpy_tree_walked_alone_or_in_a_batch_agrees_at_exact_ties():
    """Thresholds equal to a point's exact score: both walks report that point.

    A lone query scores its leaves with a BLAS product, a batch with a stack of
    matrix-vector products (np.matmul, one query per leaf window); with dyadic data every
    score is exact in float64, so the two agree bit for bit. (With general floats they round
    differently, and the points within rounding of t are settled exactly by both: the ids
    still agree, ``test_exact.py``; the box bounds, and so the counters, are computed the same
    way in both.)
    """
    from hsr_lab.hsr import NumpyKDTree

    rng = np.random.default_rng(4)
    points = rng.integers(-64, 64, (3000, 3)) / 8.0
    tree = NumpyKDTree(points, np.arange(3000), 8)
    A = rng.integers(-8, 9, (50, 3)).astype(float)
    picks = rng.integers(0, 3000, 50)
    t = np.einsum("ij,ij->i", points[picks], A)  # exact: dyadic products and sums
    indptr, ids, stats = tree.query_many(A, t)
    same_ptr, same_order, _ = tree.query_many(A, t, sort=False)
    for i in range(50):
        found, cost = tree.query(A[i], t[i])
        np.testing.assert_array_equal(ids[indptr[i]:indptr[i + 1]], np.sort(found))
        np.testing.assert_array_equal(same_order[same_ptr[i]:same_ptr[i + 1]], found)
        assert picks[i] in found and stats[i] == cost


def test_query_many_after_adds_and_deletes_matches_the_model():
    rng = np.random.default_rng(8)
    for backend in ["numpy", "compiled", "reference", "brute", "layers", "auto"]:
        hsr = HSR(rng.integers(-4, 5, (60, 2)).astype(float), backend=backend, leaf_size=2)
        for _ in range(5):
            hsr.add(rng.integers(-4, 5, (int(rng.integers(1, 9)), 2)).astype(float))
        hsr.delete(rng.choice(len(hsr), 30, replace=False))
        assert len(hsr.blocks) > 1 or backend == "auto"
        A = rng.integers(-2, 3, (25, 2)).astype(float)
        t = rng.integers(-6, 7, 25).astype(float)
        assert_rows_equal(hsr, A, t, backend)
        hsr.delete(hsr.query([0.0, 0.0], 0.0))  # every point: no block is left
        indptr, ids = hsr.query_many(A, t)
        assert not hsr.blocks and not indptr.any() and len(ids) == 0


def test_query_many_tiny_and_degenerate_inputs():
    for backend in backends_for(2):
        one = HSR([[1.0, 2.0]], backend=backend)
        indptr, ids = one.query_many([[1.0, 0.0], [1.0, 0.0], [0.0, 0.0]], [1.0, 1.5, 0.0])
        np.testing.assert_array_equal(indptr, [0, 1, 1, 2])  # on the boundary, above, a = 0
        np.testing.assert_array_equal(ids, [0, 0])
        indptr, ids, stats = one.query_many(np.zeros((0, 2)), 0.0, stats=True)
        np.testing.assert_array_equal(indptr, [0])
        assert ids.shape == (0,) and ids.dtype == np.int64 and len(stats) == 0
        same = HSR(np.ones((50, 2)), backend=backend, leaf_size=4)  # 50 duplicates
        indptr, ids = same.query_many([[0.0, 0.0], [1.0, 1.0], [1.0, 1.0]], [0.0, 2.0, 2.5])
        np.testing.assert_array_equal(indptr, [0, 50, 100, 100])
        np.testing.assert_array_equal(ids, np.tile(np.arange(50), 2))
        assert_rows_equal(same, np.array([[0.0, 0.0]]), 1e-300, backend)


def test_query_many_takes_its_chunks_and_slices_like_one_batch(monkeypatch):
    """Tiny chunk and slice sizes: many chunks of queries, many slices of products."""
    import hsr_lab.hsr.brute as brute
    import hsr_lab.hsr.kdtree as kdtree

    rng = np.random.default_rng(9)
    for dtype in (np.float64, np.float32):
        points = rng.standard_normal((2000, 3)).astype(dtype)
        A, t = rng.standard_normal((37, 3)), rng.normal(0.0, 1.0, 37)
        with monkeypatch.context() as patch:
            expected = {b: HSR(points, backend=b, leaf_size=8).query_many(A, t, stats=True)
                        for b in ("numpy", "brute")}
            patch.setattr(kdtree, "_MAX_BATCH", 4)
            patch.setattr(kdtree, "_BLOCK", 64)
            patch.setattr(brute, "_BLOCK32", 3000)
            patch.setattr(brute, "_CHUNK32", 300)
            check_chunked(points, A, t, expected)


def check_chunked(points: np.ndarray, A: np.ndarray, t: np.ndarray, expected: dict) -> None:
    """Every backend's chunked answers (and counters) equal its answers in one piece."""
    for backend, (indptr, ids, stats) in expected.items():
        hsr = HSR(points, backend=backend, leaf_size=8)
        got_ptr, got, got_stats = hsr.query_many(A, t, stats=True)
        np.testing.assert_array_equal(got_ptr, indptr)
        np.testing.assert_array_equal(got, ids)
        assert all(got_stats[i] == stats[i] for i in range(len(A)))
        assert_rows_equal(hsr, A, t, backend)


def test_batch_query_stats_index_add_total_and_repr():
    from hsr_lab.hsr import BatchQueryStats, QueryStats

    rng = np.random.default_rng(10)
    hsr = HSR(rng.standard_normal((500, 2)), backend="numpy", leaf_size=4)
    _, _, stats = hsr.query_many(rng.standard_normal((6, 2)), 0.3, stats=True)
    assert isinstance(stats, BatchQueryStats) and len(stats) == 6
    assert isinstance(stats[2], QueryStats)
    assert stats.total().nodes_visited == stats.nodes_visited.sum() > 0
    np.testing.assert_array_equal(stats.work, stats.nodes_visited + stats.inner_products)
    both = BatchQueryStats.concat([stats, stats])
    assert len(both) == 12 and both[7] == stats[1]
    assert (stats + stats).total() == stats.total() + stats.total()
    assert "queries=6" in repr(stats)


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_bad_batched_queries_are_rejected_and_inputs_kept(backend):
    hsr = HSR(np.random.default_rng(0).standard_normal((20, 2)), backend=backend)
    A, t = np.ones((3, 2)), np.zeros(3)
    A_before, t_before = A.copy(), t.copy()
    cases = [
        (lambda: hsr.query_many(np.ones(2), 0.0), ValueError, "A"),
        (lambda: hsr.query_many(np.ones((3, 3)), 0.0), ValueError, "A"),
        (lambda: hsr.query_many([[1.0, np.nan]], 0.0), ValueError, "A"),
        (lambda: hsr.query_many(np.ones((2, 2), dtype=complex), 0.0), TypeError, "A"),
        (lambda: hsr.query_many([[1e300, 0.0]], 0.0), ValueError, "overflow"),
        (lambda: hsr.query_many(A, np.zeros(2)), ValueError, "t"),
        (lambda: hsr.query_many(A, np.zeros((3, 1))), ValueError, "t"),
        (lambda: hsr.query_many(A, [0.0, np.inf, 0.0]), ValueError, "t"),
        (lambda: hsr.query_many(A, np.nan), ValueError, "t"),
        (lambda: hsr.query_many(A, "0"), TypeError, "t"),
        (lambda: hsr.query_many(A, ["0", "1", "2"]), TypeError, "t"),
        (lambda: hsr.query_many(A, True), TypeError, "t"),
        (lambda: hsr.query_many(A, t, sort="yes"), TypeError, "sort"),
    ]
    for call, error, name in cases:
        with pytest.raises(error, match=name):
            call()
    hsr.query_many(A, t, stats=True)
    hsr.query_many(A.astype(np.float32), t.astype(np.int64), sort=False)
    np.testing.assert_array_equal(A, A_before)
    np.testing.assert_array_equal(t, t_before)


def test_lone_and_batched_walks_count_the_same_boxes_when_bounds_round():
    """With coordinates 2^25 apart a box bound rounds; a BLAS product summed in another order
    than the batch's einsum could classify a box differently (same ids, other counters), so
    both walks compute the bounds with the same einsum."""
    from hsr_lab.hsr import NumpyKDTree

    values = np.array([0.0] * 16 + [-1.0] * 13 + [-(2.0**25), -1.5 * 2.0**-24])
    points = np.random.default_rng(0).permutation(values)[:, None]
    tree = NumpyKDTree(points, np.arange(len(points)), 1)
    A, t = np.array([[0.0], [-1.0]]), np.array([0.0, 0.0])
    indptr, ids, stats = tree.query_many(A, t)
    for i in range(2):
        found, cost = tree.query(A[i], t[i])
        np.testing.assert_array_equal(ids[indptr[i]:indptr[i + 1]], np.sort(found))
        assert stats[i] == cost


# -- adversarial inputs: refusals, extreme magnitudes, deletes, array subclasses -----------------
def test_rejected_add_leaves_the_structure_as_it_was():
    """A refused add records nothing, not even its largest coordinate."""
    hsr = HSR(np.zeros((4, 2)), backend="numpy")
    with pytest.raises(ValueError, match="points"):
        hsr.add([[1e200, 0.0]])
    np.testing.assert_array_equal(hsr.add([[1.0, 2.0]]), [4])
    np.testing.assert_array_equal(hsr.query([1e140, 0.0], 1.0), [4])


@pytest.mark.parametrize("backend", ["numpy", "compiled", "reference", "brute"])
def test_tiny_magnitudes_keep_the_margin(backend):
    """Squared norms of 1e-170 underflow to 0; the margin uses none, so it holds here."""
    hsr = HSR(np.array([[-1e-170], [1e-193]]), backend=backend)
    np.testing.assert_array_equal(hsr.query([-1.0], -1e-194), [0])
    _, ids = hsr.query_many([[-1.0], [-1.0]], -1e-194)
    np.testing.assert_array_equal(ids, [0, 0])


MAX_FLOAT = float(np.finfo(np.float64).max)


@pytest.mark.filterwarnings("error")  # a RuntimeWarning (overflow, invalid) fails the test
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("backend", backends_for(2))
def test_thresholds_at_the_float64_limit_answer_exactly_without_warnings(backend, dtype):
    """t = +-max float64 (and its neighbours, and +-1e300) against keys and queries whose
    scores reach ``MAX_PRODUCT``: the band's edges ``t +- band`` must not overflow (the scan
    used to warn, "overflow encountered in scalar add"), and the answer is exact."""
    from fractions import Fraction

    rng = np.random.default_rng(9)
    scale = 1e149 if dtype == np.float64 else 1e30
    points = (rng.standard_normal((300, 2)) * scale).astype(dtype)
    big = 1e300 / (2 * float(np.abs(points).max()))  # |<a, x>| up to about 1e300
    A = np.array([[1.0, -1.0], [big, big], [-big, 0.5 * big], [0.0, 0.0]])
    hsr = HSR(points, backend=backend, leaf_size=4)
    exact = [[sum(Fraction(float(u)) * Fraction(float(v)) for u, v in zip(a, x, strict=True))
              for x in points.tolist()] for a in A]
    edges = [MAX_FLOAT, -MAX_FLOAT, float(np.nextafter(MAX_FLOAT, 0)),
             float(np.nextafter(-MAX_FLOAT, 0)), 1e300, -1e300]
    for t in edges:
        want = [[j for j, s in enumerate(row) if s >= Fraction(t)] for row in exact]
        for a, ids in zip(A, want, strict=True):
            assert sorted(hsr.query(a, t).tolist()) == ids, (backend, t)
        indptr, found = hsr.query_many(A, t)
        assert [found[indptr[i]:indptr[i + 1]].tolist() for i in range(len(A))] == want


@pytest.mark.filterwarnings("error")
def test_the_faiss_scan_at_the_float64_limit_answers_without_warnings():
    """The faiss scan's float32 band has the same edges ``t +- band`` (``edge_t``)."""
    faiss_scan = pytest.importorskip("hsr_lab.hsr.faiss_scan")
    pytest.importorskip("faiss")
    points = np.random.default_rng(10).standard_normal((100, 3)).astype(np.float32)
    scan = faiss_scan.FaissScan(points, np.arange(100), 1)
    A = np.ones((2, 3))
    for t, count in ((MAX_FLOAT, 0), (-MAX_FLOAT, 100)):
        assert len(scan.query(A[0], t)[0]) == count
        for indptr, _, _ in (scan._search(A, np.array([t, t])), scan.query_many(A, t)):
            assert np.diff(indptr).tolist() == [count, count]


@pytest.mark.parametrize("backend", ["numpy", "compiled", "brute"])
def test_deleting_everything_does_not_make_later_deletes_rebuild(backend, monkeypatch):
    """Once every block is dropped nothing dead is stored, so the next deletes
    rebuild nothing."""
    hsr = HSR(np.random.default_rng(0).standard_normal((1000, 2)), backend=backend)
    hsr.delete(np.arange(1000))
    ids = hsr.add(np.random.default_rng(1).standard_normal((1000, 2)))
    merges = []
    original = HSR._merge
    monkeypatch.setattr(HSR, "_merge",
                        lambda self, blocks: merges.append(1) or original(self, blocks))
    for i in ids[:200]:
        hsr.delete([i])
    assert len(merges) == 0  # 200 of 1000 dead: no rebuild is due
    assert len(hsr) == 800 and len(hsr.query([0.0, 0.0], 0.0)) == 800


@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")  # np.matrix, on purpose
def test_numpy_subclasses_are_plain_arrays_and_masks_are_refused():
    """np.matrix is read as a plain array; a masked entry is refused, not stored."""
    P = np.random.default_rng(0).standard_normal((30, 2))
    hsr = HSR(np.matrix(P), backend="numpy")
    expected = HSR(P, backend="numpy").query([1.0, 0.5], 0.2)
    np.testing.assert_array_equal(hsr.query(np.array([1.0, 0.5]), 0.2), expected)
    _, ids = hsr.query_many(np.matrix([[1.0, 0.5]]), 0.2)
    np.testing.assert_array_equal(ids, expected)
    masked = np.ma.masked_array([[1.0, np.nan]], mask=[[False, True]])
    with pytest.raises(ValueError, match=r"points.*masked"):
        HSR(masked)
    with pytest.raises(ValueError, match=r"A.*masked"):
        hsr.query_many(np.ma.masked_array([[1.0, 2.0]], mask=[[True, False]]), 0.0)
    unmasked = np.ma.masked_array(P)  # no entry masked: its data
    np.testing.assert_array_equal(HSR(unmasked, backend="numpy").query([1.0, 0.5], 0.2), expected)


def test_huge_int_threshold_and_uint64_ids_are_named():
    """An int t beyond the float range is a ValueError naming t; a uint64 id of
    2^63 is shown as given."""
    hsr = HSR(np.zeros((3, 2)), backend="numpy")
    with pytest.raises(ValueError, match="t"):
        hsr.query([1.0, 0.0], 10**400)
    with pytest.raises(ValueError, match="t"):
        hsr.query_many([[1.0, 0.0]], 10**400)
    with pytest.raises(ValueError, match=str(2**63)):
        hsr.delete(np.array([2**63], dtype=np.uint64))
    assert len(hsr) == 3


# -- float32 keys ---------------------------------------------------------------------------------
def test_float32_keys_are_stored_as_float32_in_at_most_1_5x_their_memory():
    """float32 keys stay float32 in every array-backed backend; the NumPy tree over them (its
    copy of the keys, int32 ids and nodes) takes at most 1.5x the keys' bytes at d >= 3."""
    keys = np.random.default_rng(0).standard_normal((2**14, 4)).astype(np.float32)
    for backend in ("numpy", "compiled", "brute", "auto"):
        hsr = HSR(keys, backend=backend)
        assert hsr.dtype == np.float32 and "float32" in repr(hsr)
        assert all(block.items()[0].dtype == np.float32 for block in hsr.blocks)
    assert HSR(keys, backend="numpy").blocks[0].nbytes <= 1.5 * keys.nbytes
    assert HSR(keys.astype(np.float64), backend="numpy").dtype == np.float64


def test_float64_points_that_round_turn_a_float32_hsr_into_float64():
    """Adding float32 values keeps float32; adding a value float32 cannot hold rebuilds the
    HSR in float64, and the answers are about the values given, not rounded ones."""
    keys = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    for backend in ("numpy", "compiled", "brute", "reference", "auto"):
        hsr = HSR(keys, backend=backend, leaf_size=1)
        hsr.add(np.array([[0.5, 0.25]]))  # a float32 value
        assert hsr.dtype == np.float32
        hsr.add(np.array([[1.0 + 2.0**-40, 0.0]]))  # rounds to 1.0 in float32
        assert hsr.dtype == np.float64
        np.testing.assert_array_equal(hsr.query([1.0, 0.0], 1.0 + 2.0**-41), [3])


def test_auto_over_float32_keys_races_batches_and_stays_exact():
    """A planned float32 block answers batches of every size class exactly, whichever of its
    walk and its scan won the race for that class."""
    from hsr_lab.hsr.plan import MIN_N

    rng = np.random.default_rng(4)
    keys = rng.integers(-2**12, 2**12, (MIN_N + 5, 3)).astype(np.float32)
    auto = HSR(keys, backend="auto")
    for m in (1, 2, 5, 64):
        A = rng.integers(-2**20, 2**20, (m, 3)).astype(np.float64)
        t = np.array([float(keys[rng.integers(len(keys))].astype(np.float64) @ a) for a in A])
        for _ in range(2):  # the first batch of a size class races, the second uses the winner
            indptr, ids = auto.query_many(A, t)
            for i, (a, t_i) in enumerate(zip(A, t, strict=True)):
                want = np.flatnonzero(keys.astype(np.float64) @ a >= t_i)
                np.testing.assert_array_equal(ids[indptr[i]:indptr[i + 1]], want)
                np.testing.assert_array_equal(auto.query(a, t_i), want)


def test_a_structure_that_never_deletes_holds_no_id_table():
    """The table of deleted ids (a bool per id) starts with the first delete; from then on
    deletes, repeated deletes and queries behave as before."""
    K = np.random.default_rng(8).standard_normal((4096, 2)).astype(np.float32)
    h = HSR(K, backend="numpy")
    assert h.nbytes == sum(block.nbytes for block in h.blocks)
    a = np.array([1.0, 0.0])
    before = h.query(a, 0.5)
    h.delete([int(before[0])])
    assert h.nbytes >= sum(block.nbytes for block in h.blocks) + len(K)
    with pytest.raises(ValueError, match="already deleted"):
        h.delete([int(before[0])])
    np.testing.assert_array_equal(h.query(a, 0.5), before[1:])
    ids = h.add(K[:3])
    np.testing.assert_array_equal(ids, [4096, 4097, 4098])
    assert set(ids.tolist()) <= set(h.query(a, -10.0).tolist())
