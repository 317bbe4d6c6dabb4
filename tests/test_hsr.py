"""HSR: every backend against the brute-force oracle, updates against a plain model, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from hsr_lab import HSR
from hsr_lab.hsr import BACKENDS

TREE_BACKENDS = ["numpy", "reference"]


def backends_for(d: int) -> list[str]:
    """Every backend that accepts dimension d."""
    return ["auto", "numpy", "reference", "brute"] + (["layers"] if d == 2 else [])


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


class UpdatesAgainstAModel(RuleBasedStateMachine):
    """Random adds, deletes and queries; a dict of id -> point is the model."""

    def __init__(self):
        super().__init__()
        self.hsr: HSR | None = None
        self.model: dict[int, np.ndarray] = {}

    @precondition(lambda self: self.hsr is None)
    @rule(backend=st.sampled_from(["numpy", "reference", "brute", "layers", "auto"]),
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

    @precondition(lambda self: self.hsr is not None and self.model)
    @rule(data=st.data())
    def delete(self, data):
        ids = data.draw(st.lists(st.sampled_from(sorted(self.model)), unique=True, max_size=5))
        self.hsr.delete(ids)
        for i in ids:
            del self.model[i]

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
