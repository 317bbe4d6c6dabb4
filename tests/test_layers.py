"""ConvexLayers (backend "layers") against a brute-force scan, on random and adversarial input.

The adversarial cases use exactly representable data (small integers, scaled by powers of two,
with integer directions) so that every score is exact and points lying exactly on the boundary
line, on hull edges, or duplicated, must all be reported.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hsr_lab.hsr.layers import ConvexLayers


def brute_force(points: np.ndarray, ids: np.ndarray, a, t: float) -> list[int]:
    """Sorted ids of every x with <a, x> >= t, in exact rational arithmetic (``numerics``)."""
    a0, a1 = (Fraction(float(v)) for v in a)
    t = Fraction(float(t))
    return sorted(i for (x0, x1), i in zip(points.tolist(), ids.tolist(), strict=True)
                  if a0 * Fraction(x0) + a1 * Fraction(x1) >= t)


def check_query(index: ConvexLayers, points, ids, a, t) -> None:
    """The index reports exactly what the scan does, without repeats, with consistent stats."""
    got, stats = index.query(np.asarray(a, dtype=np.float64), t)
    assert got.dtype == np.int64
    assert sorted(got.tolist()) == brute_force(points, ids, a, t)
    assert len(set(got.tolist())) == len(got)
    assert stats.points_reported == len(got)
    assert stats.nodes_pruned in (0, 1)
    assert stats.nodes_reported <= stats.nodes_visited <= index.depth


def orient(p, q, r) -> int:
    """Exact sign of (q - p) x (r - p)."""
    px, py, qx, qy, rx, ry = (Fraction(float(v)) for v in (*p, *q, *r))
    det = (qx - px) * (ry - py) - (qy - py) * (rx - px)
    return (det > 0) - (det < 0)


def check_layers(index: ConvexLayers, points, ids) -> None:
    """Every point in one layer; convex layers strictly convex, counter-clockwise and nested."""
    stored, stored_ids = index.items()
    assert sorted(stored_ids.tolist()) == sorted(ids.tolist())
    pairs = sorted(zip(stored_ids.tolist(), map(tuple, stored.tolist()), strict=True))
    assert pairs == sorted(zip(ids.tolist(), map(tuple, points.tolist()), strict=True))
    layers = index.layers
    assert len(layers) == index.depth
    assert sum(len(layer) for layer in layers) == len(index) == len(points)
    convex = layers[:-1] if index.flat_size else layers
    assert index.flat_size == (len(layers[-1]) if index.flat_size else 0)
    for depth, poly in enumerate(convex):
        assert len(poly) >= 3
        h = len(poly)
        for i in range(h):
            assert orient(poly[i - 1], poly[i], poly[(i + 1) % h]) > 0
        if len(points) <= 60:  # every deeper point lies in this layer's closed polygon
            for x in np.concatenate(layers[depth + 1 :] or [np.empty((0, 2))]):
                assert all(orient(poly[i], poly[(i + 1) % h], x) >= 0 for i in range(h))


# --------------------------------------------------------------------------- strategies

small_ints = st.integers(-3, 3)
int_points = st.lists(st.tuples(small_ints, small_ints), min_size=1, max_size=40)


@st.composite
def collinear_points(draw):
    """Points on one line p + k u, k integer (many repeats), u possibly zero."""
    p = draw(st.tuples(small_ints, small_ints))
    u = draw(st.tuples(small_ints, small_ints))
    ks = draw(st.lists(st.integers(-4, 4), min_size=1, max_size=30))
    return [(p[0] + k * u[0], p[1] + k * u[1]) for k in ks]


identical_points = st.builds(
    lambda p, n: [p] * n, st.tuples(small_ints, small_ints), st.integers(1, 20)
)
exact_points = st.one_of(int_points, collinear_points(), identical_points)


@st.composite
def scaled_points(draw):
    """Integer points, each scaled as a whole by its own 2**e, e in [-40, 40]: scores stay exact."""
    pts = draw(int_points)
    exps = draw(st.lists(st.integers(-40, 40), min_size=len(pts), max_size=len(pts)))
    return [(x0 * 2.0**e, x1 * 2.0**e) for (x0, x1), e in zip(pts, exps, strict=True)]


@st.composite
def exact_queries(draw, points):
    """Integer a; t is the score of an existing point (so some lie on the boundary) or else."""
    a = draw(st.tuples(st.integers(-5, 5), st.integers(-5, 5)))
    scores = brute_scores(points, a)
    t = draw(st.one_of(st.sampled_from(scores), st.integers(-40, 40).map(float)))
    return a, t


def brute_scores(points, a) -> list[float]:
    """<a, x> of every point, left to right."""
    return [0.0 + a[0] * x0 + a[1] * x1 for x0, x1 in points]


def build(points) -> tuple[ConvexLayers, np.ndarray, np.ndarray]:
    """The index over `points` with scattered large ids (to catch id/row mix-ups)."""
    pts = np.array(points, dtype=np.float64).reshape(-1, 2)
    ids = np.arange(len(pts), dtype=np.int64) * 1_000_003 + 17
    return ConvexLayers(pts, ids, leaf_size=8), pts, ids


# --------------------------------------------------------------------------- random data


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 7, 50, 2000])
def test_gaussian_matches_brute_force(n: int) -> None:
    rng = np.random.default_rng(n)
    index, points, ids = build(rng.normal(size=(n, 2)))
    check_layers(index, points, ids)
    for _ in range(40):
        a = rng.normal(size=2)
        scores = points[:, 0] * a[0] + points[:, 1] * a[1]  # left to right, as the oracle
        i = rng.integers(n)  # a point on the boundary, and within an ulp of it (BLAS may fuse)
        for t in (np.quantile(scores, rng.uniform()), scores[i], points[i] @ a, scores.max(), 9.0):
            check_query(index, points, ids, a, float(t))


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 2000), seed=st.integers(0, 2**32 - 1))
def test_gaussian_property(n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    index, points, ids = build(rng.normal(size=(n, 2)) * rng.uniform(0.1, 10.0))
    for _ in range(5):
        a = rng.normal(size=2)
        check_query(index, points, ids, a, float(points[rng.integers(n)] @ a))
        check_query(index, points, ids, a, float(rng.normal() * 2))


# --------------------------------------------------------------------------- adversarial


def check_layers_and_queries(data, points) -> None:
    """Build the layers, check their invariants, then four exact queries against the scan."""
    index, pts, ids = build(points)
    check_layers(index, pts, ids)
    for _ in range(4):
        a, t = data.draw(exact_queries(points))
        check_query(index, pts, ids, a, t)


@settings(max_examples=300, deadline=None)
@given(data=st.data(), points=exact_points)
def test_exact_integer_points(data, points) -> None:
    check_layers_and_queries(data, points)


@settings(max_examples=200, deadline=None)
@given(data=st.data(), points=scaled_points())
def test_power_of_two_scaled_points(data, points) -> None:
    check_layers_and_queries(data, points)


@pytest.mark.parametrize(
    "points",
    [[(0, 0)], [(1, 2), (1, 2)], [(0, 0), (1, 1)], [(0, 0), (1, 0), (0, 1)], [(2, 2)] * 3],
)
def test_tiny_inputs(points) -> None:
    index, pts, ids = build(points)
    check_layers(index, pts, ids)
    for a in [(0, 0), (1, 0), (0, -1), (1, 1), (-2, 3)]:
        for t in [*sorted(set(brute_scores(points, a))), -1.0, 0.0, 0.5, 10.0]:
            check_query(index, pts, ids, a, t)


def test_points_on_hull_edges_are_reported() -> None:
    """On a 5 x 5 grid, the side x = 4 has 2 corners in the outer layer, the rest deeper."""
    grid = [(x, y) for x in range(5) for y in range(5)]
    index, pts, ids = build([*grid, (4, 4), (4, 2)])  # and duplicates of a corner, a side point
    assert [len(layer) for layer in index.layers] == [4, 7, 6, 5, 4, 1]  # checked by hand
    got, stats = index.query(np.array([1.0, 0.0]), 4.0)
    assert sorted(got.tolist()) == brute_force(pts, ids, (1, 0), 4.0)
    assert len(got) == 7 and stats.nodes_visited > 2
    for a in [(1, 0), (0, 1), (-1, 0), (1, 1), (1, -1), (2, 1)]:
        for t in sorted(set(brute_scores(grid, a))):
            check_query(index, pts, ids, a, t)


def test_zero_direction_reports_all_or_nothing() -> None:
    index, _, _ = build(np.random.default_rng(0).normal(size=(300, 2)))
    for t, expected in [(-1.0, 300), (0.0, 300), (1e-300, 0), (0.5, 0)]:
        got, stats = index.query(np.zeros(2), t)
        assert len(got) == expected
        if expected == 0:
            assert stats.nodes_visited == 1 and stats.nodes_pruned == 1
        else:
            assert stats.nodes_reported == index.depth


def test_extreme_magnitudes() -> None:
    """Coordinates near 1e300 or 1e-300, or aspect ratio 1e16 (qhull sees them rescaled)."""
    rng = np.random.default_rng(1)
    for scale in (np.array([1e300, 1e300]), np.array([1e-300, 1e-300]), np.array([1e8, 1e-8])):
        index, pts, ids = build(rng.normal(size=(200, 2)) * scale)
        assert index.flat_size < 10
        for _ in range(20):
            a = rng.normal(size=2) / scale
            check_query(index, pts, ids, a, float(pts[rng.integers(200)] @ a))


def test_the_climb_to_the_top_vertex_crosses_scores_that_underflow_to_zero() -> None:
    """Edges of aspect ratio 1e70 round their angles to +-pi/2, so the bisection lands on
    vertex 0; with a = (-4e-186, 6e-186) the scores of vertices 0, 1, 2 and 4 underflow to 0,
    and only vertex 3 scores 4.8e-289 (exactly a hair less). A climb on float scores stops on
    the plateau of zeros and prunes the layer; the exact comparison climbs to vertex 3."""
    points = np.array([(-4e-234, -1e-179), (2e-258, -3e-141), (2e-174, -1e-261),
                       (8e-172, 8e-104), (3e-222, 6e-153)])
    index, pts, ids = build(points)
    assert index.depth == 1 and index.flat_size == 0
    a = np.array([-4e-186, 6e-186])
    top = float(points[3] @ a)
    for t in (top, float(np.nextafter(top, -1.0)), 5e-324, 0.0):
        check_query(index, pts, ids, a, t)


def test_points_a_few_ulps_apart() -> None:
    """Near-duplicates and nearly collinear points, where scores of nearby points round apart.

    Stopping as soon as a layer's top score is below t would miss points here: the query
    compares against t - slack (see the module docstring).
    """
    rng = np.random.default_rng(11)
    for _ in range(60):
        base = rng.normal(size=(int(rng.integers(1, 12)), 2))
        points = base[rng.integers(len(base), size=int(rng.integers(1, 150)))]
        points = points + rng.integers(-3, 4, size=points.shape) * np.spacing(points)
        if rng.uniform() < 0.3:  # nearly collinear instead
            x = rng.uniform(-1, 1, size=len(points))
            points = np.c_[x, 0.3 * x + rng.normal(size=len(points)) * 1e-15]
        index, pts, ids = build(points)
        for _ in range(20):
            a = rng.normal(size=2)
            check_query(index, pts, ids, a, brute_scores(pts.tolist(), a)[rng.integers(len(pts))])


# --------------------------------------------------------------------------- cost and contract


def test_query_cost_is_output_sensitive() -> None:
    n = 4096
    rng = np.random.default_rng(7)
    index, points, ids = build(rng.normal(size=(n, 2)))
    assert index.depth > 50
    for _ in range(20):
        a = rng.normal(size=2)
        t = float(np.quantile(points @ a, 0.995))
        got, stats = index.query(a, t)
        assert sorted(got.tolist()) == brute_force(points, ids, a, t)
        assert stats.nodes_pruned == 1
        assert stats.nodes_visited < index.depth / 4
        assert stats.inner_products < n / 10


@pytest.mark.parametrize("d", [1, 3])
def test_rejects_other_dimensions(d: int) -> None:
    with pytest.raises(ValueError, match=rf"plane only \(d = 2\); got d = {d}"):
        ConvexLayers(np.zeros((5, d)), np.arange(5), 8)


def test_inputs_are_neither_modified_nor_aliased() -> None:
    rng = np.random.default_rng(3)
    points = rng.normal(size=(500, 2))
    ids = rng.permutation(500).astype(np.int64)
    points_copy, ids_copy = points.copy(), ids.copy()
    index = ConvexLayers(points, ids, 8)
    index.query(np.array([1.0, -0.5]), 0.3)
    np.testing.assert_array_equal(points, points_copy)
    np.testing.assert_array_equal(ids, ids_copy)
    points[:] = 0.0  # the index must not see this
    ids[:] = -1
    check_query(index, points_copy, ids_copy, (1.0, -0.5), 0.3)


def test_accessors() -> None:
    index, pts, _ = build(np.random.default_rng(4).normal(size=(100, 2)))
    assert index.name == "layers"
    assert len(index) == 100
    assert index.nbytes >= pts.nbytes
    assert "ConvexLayers(m=100" in repr(index) and f"depth={index.depth}" in repr(index)
    with pytest.raises(ValueError, match="shape"):
        index.query(np.ones(3), 0.0)
