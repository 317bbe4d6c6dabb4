"""The readable twin and the fast twins: same names, same tree, same outcome at every node.

``ReferenceKDTree`` walks depth-first over linked ``Node`` objects; ``NumpyKDTree`` walks level
by level over per-node arrays; ``CompiledKDTree`` walks the NumPy tree depth-first in machine
code. A node is identified by the rows ``start:stop`` it owns, which is the same in all three
whenever the splits are the same (they share one tie rule). Over float32 points the fast twins
keep them float32 and the readable one holds their exact float64 values: the trees, the walks
and the answers are still the same. The three modules also share their private vocabulary: the
same step functions, the same case banners in the same order, and docstrings whose pointers to
each other's steps resolve.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import re
from dataclasses import fields

import numpy as np
import pytest
from conftest import examples
from hypothesis import given, settings
from hypothesis import strategies as st

from hsr_lab.hsr import CompiledKDTree, NumpyKDTree, ReferenceKDTree, compiled, kdtree, reference
from hsr_lab.hsr._base import Node
from hsr_lab.hsr._stats import QueryStats

MODULES = {reference: ReferenceKDTree, kdtree: NumpyKDTree, compiled: CompiledKDTree}
STEPS = ("_weights", "_bounds", "_walk", "_scan", "_run")  # reference.py's table of steps


def twins(points: np.ndarray, leaf_size: int
          ) -> tuple[ReferenceKDTree, NumpyKDTree, CompiledKDTree]:
    """The three trees over the same points and ids (the compiled one walks the NumPy tree)."""
    ids = np.arange(len(points), dtype=np.int64)
    return (ReferenceKDTree(points, ids, leaf_size), NumpyKDTree(points, ids, leaf_size),
            CompiledKDTree(points, ids, leaf_size))


def public(obj: object) -> set[str]:
    return {name for name in dir(obj) if not name.startswith("_")}


def outcomes(tree, a: np.ndarray, t: float) -> dict[tuple[int, int], str]:
    """What the walk did at each node, keyed by the node's rows (start, stop)."""
    visited = tree.trace(a, t)
    table = {(node.start, node.stop): outcome for node, outcome in visited}
    assert len(table) == len(visited)  # a node is visited once
    return table


def leaf_sets(tree) -> dict[tuple[int, int], frozenset[int]]:
    """The ids each node owns, keyed by (start, stop), for every node of the tree."""
    ids = np.asarray(tree.ids).tolist()
    out, stack = {}, [tree.root]
    while stack:
        node = stack.pop()
        out[node.start, node.stop] = frozenset(ids[node.start:node.stop])
        stack.extend(child for child in (node.left, node.right) if child is not None)
    return out


def assert_same_walk(ref: ReferenceKDTree, fast: NumpyKDTree, compiled: CompiledKDTree,
                     a: np.ndarray, t: float) -> None:
    """Same node outcomes, same ids, same counters, alone and in a batch, in all three."""
    assert outcomes(ref, a, t) == outcomes(fast, a, t)
    ids_ref, stats_ref = ref.query(a, t)
    for tree in (fast, compiled):
        ids, stats = tree.query(a, t)
        np.testing.assert_array_equal(np.sort(ids_ref), np.sort(ids))
        assert stats == stats_ref
        indptr, ids, batch = tree.query_many(np.stack([a, a]), t)
        assert batch[0] == batch[1] == stats_ref
        np.testing.assert_array_equal(ids[indptr[0]:indptr[1]], np.sort(ids_ref))
        np.testing.assert_array_equal(ids[indptr[1]:indptr[2]], np.sort(ids_ref))


def test_the_twins_expose_the_same_public_names():
    """NumpyKDTree adds only the fields of Node, held as one array per field."""
    ref, fast, compiled = twins(np.random.default_rng(0).standard_normal((100, 3)), 4)
    node_fields = {f.name for f in fields(Node)}
    assert public(fast) == public(ref) | node_fields == public(compiled)
    for tree in (ref, fast, compiled):  # each repr names its own class, not its parent's
        assert repr(tree).startswith(f"{type(tree).__name__}(n=100, d=3, leaf_size=4")
    for name in ("ids", "points", "d", "leaf_size", "depth", "nbytes", "name"):
        assert hasattr(ref, name) and hasattr(fast, name)
    assert len(ref) == len(fast) and ref.depth == fast.depth


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_the_twins_build_the_same_boxes(dtype):
    points = np.random.default_rng(1).standard_normal((3000, 4)).astype(dtype)
    ref, fast, compiled = twins(points, 8)
    assert fast.points.dtype == dtype
    rows = {}
    stack = [ref.root]
    while stack:
        node = stack.pop()
        rows[node.start, node.stop] = node
        stack.extend(c for c in (node.left, node.right) if c is not None)
    assert len(rows) == len(fast.start)
    for i in range(len(fast.start)):
        node = rows[int(fast.start[i]), int(fast.stop[i])]
        assert node.center == fast.center[i].tolist() and node.half == fast.half[i].tolist()
        assert node.rad == float(fast.rad[i])
        assert (node.left is None) == (fast.left[i] < 0) == (fast.right[i] < 0)
    assert leaf_sets(ref) == leaf_sets(fast) == leaf_sets(compiled)  # its ids: 24-bit


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(("d", "leaf_size"), [(1, 1), (2, 4), (3, 8), (5, 2), (8, 16)])
def test_the_twins_agree_node_by_node_on_data_without_ties(d, leaf_size, dtype):
    rng = np.random.default_rng(d)
    ref, fast, compiled = twins(rng.standard_normal((1500, d)).astype(dtype), leaf_size)
    for _ in range(10):
        a = rng.standard_normal(d)
        assert_same_walk(ref, fast, compiled, a, float(rng.normal(0, 1.5)))


@st.composite
def tied_points(draw, max_n: int = 80, max_d: int = 6):
    """Small integers: many tied coordinates, duplicates, collinear and lattice points."""
    n, d = draw(st.integers(1, max_n)), draw(st.integers(1, max_d))
    span = draw(st.sampled_from([0, 1, 2, 5]))
    values = draw(st.lists(st.integers(-span, span), min_size=n * d, max_size=n * d))
    points = np.array(values, dtype=np.float64).reshape(n, d)
    if draw(st.booleans()):  # whole rows repeated: exact duplicates
        points = np.concatenate([points, points[: draw(st.integers(0, n))]])
    return points


@settings(max_examples=examples(60))
@given(tied_points(), st.integers(1, 6), st.sampled_from([np.float64, np.float32]), st.data())
def test_the_twins_agree_node_by_node_on_ties_and_duplicates(points, leaf_size, dtype, data):
    points = points.astype(dtype)
    ref, fast, compiled = twins(points, leaf_size)
    assert leaf_sets(ref) == leaf_sets(fast) == leaf_sets(compiled)
    d = points.shape[1]
    for _ in range(3):
        a = np.array(data.draw(st.lists(st.integers(-3, 3), min_size=d, max_size=d)), float)
        pick = data.draw(st.integers(0, len(points) - 1))
        t = float(points[pick] @ a) if data.draw(st.booleans()) else float(
            data.draw(st.integers(-8, 8)))
        assert_same_walk(ref, fast, compiled, a, t)


@settings(max_examples=examples(40))
@given(tied_points(), st.integers(1, 6), st.sampled_from([np.float64, np.float32]), st.data())
def test_a_box_of_one_point_on_t_is_decided_whole_by_its_exact_score(points, leaf_size, dtype,
                                                                     data):
    """Duplicate keys exactly on t (or a hair either side) make a box of one point that its
    guard cannot decide: every twin decides it by its exact score, reported whole or pruned,
    never scanned or opened, with the same outcomes and counters in all three."""
    points = points.astype(dtype)
    ref, fast, compiled = twins(points, leaf_size)
    d = points.shape[1]
    a = np.array(data.draw(st.lists(st.integers(-3, 3), min_size=d, max_size=d)), float)
    on = float(points[data.draw(st.integers(0, len(points) - 1))] @ a)
    for t in (on, float(np.nextafter(on, np.inf)), float(np.nextafter(on, -np.inf))):
        assert_same_walk(ref, fast, compiled, a, t)
        for tree in (ref, fast, compiled):
            for node, outcome in tree.trace(a, t):
                if not any(node.half):  # one point: every point of the node is its centre
                    assert outcome in ("pruned", "reported"), (node, outcome)


def test_duplicates_on_t_are_reported_without_an_inner_product():
    """512 copies of (1, 2) beside 512 Gaussian keys, a = (1, 1): at t = 3 the copies are
    reported whole, at the next float they are pruned; either way none is scored."""
    rng = np.random.default_rng(3)
    points = np.concatenate([np.tile([1.0, 2.0], (512, 1)), rng.standard_normal((512, 2))])
    ref, fast, compiled = twins(points, 8)
    a = np.array([1.0, 1.0])
    for t in (3.0, float(np.nextafter(3.0, np.inf))):
        assert_same_walk(ref, fast, compiled, a, t)
        ids, stats = compiled.query(a, t)
        assert (np.count_nonzero(ids < 512) == 512) == (t == 3.0)
        assert stats.inner_products <= 64  # the Gaussian keys near the line, a few leaves


def test_trace_lists_every_visit_with_its_outcome():
    ref, fast, compiled = twins(np.random.default_rng(2).standard_normal((2000, 2)), 8)
    a, t = np.array([0.6, 0.8]), 1.0
    for tree in (ref, fast, compiled):
        visited = tree.trace(a, t)
        kinds = {outcome for _, outcome in visited}
        assert kinds == {"pruned", "reported", "scanned", "opened"}
        _, stats = tree.query(a, t)
        assert len(visited) == stats.nodes_visited
        assert sum(o == "pruned" for _, o in visited) == stats.nodes_pruned
        scanned = sum(n.stop - n.start for n, o in visited if o == "scanned")
        assert scanned == stats.inner_products


@pytest.mark.parametrize(("n", "leaf_size", "two_depths"),
                         [(4096, 16, False), (1500, 8, False), (36, 4, True), (1, 4, False),
                          (3, 1, True)])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_the_walk_is_the_same_in_steps_of_any_span(n, leaf_size, two_depths, dtype, monkeypatch):
    """One level per step (the reference's order of work), the default steps and steps as large
    as the full top of the tree visit the same nodes with the same outcomes and counters.

    With leaves at two depths (n = 36 and leaves of 4: nodes of 4 and 5 points on level 3) the
    last level lies below the full levels, so it is walked through ``left``.
    """
    import hsr_lab.hsr.kdtree as kdtree

    rng = np.random.default_rng(n)
    ref, fast, compiled = twins(rng.standard_normal((n, 3)).astype(dtype), leaf_size)
    assert fast._full_depth == fast.depth - two_depths
    queries = [(rng.standard_normal(3), float(rng.normal(0, 1.5))) for _ in range(8)]
    for max_span, step_pairs in ((0, 1), (kdtree._MAX_SPAN, kdtree._STEP_PAIRS), (64, 2**40)):
        with monkeypatch.context() as patch:
            patch.setattr(kdtree, "_MAX_SPAN", max_span)
            patch.setattr(kdtree, "_STEP_PAIRS", step_pairs)
            for a, t in queries:
                assert_same_walk(ref, fast, compiled, a, t)


def test_float32_keys_take_compact_indexes():
    """float32 points, int32 ids and node arrays: the index over the keys, counted in full
    (the spare rows of the windows included), stays near points + ids + a few bytes a node."""
    K = np.random.default_rng(3).standard_normal((2**14, 4)).astype(np.float32)
    tree = NumpyKDTree(K, np.arange(len(K)), 128)
    assert tree.points.dtype == np.float32
    for array in (tree.ids, tree.start, tree.stop, tree.left):
        assert array.dtype == np.int32
    assert tree.nbytes >= K.nbytes + tree.ids.nbytes + tree.center.nbytes
    assert tree.nbytes / K.nbytes < 1.36


def test_the_compiled_tree_keeps_24_bit_ids_within_1_5x_the_float32_keys():
    """Ids below 2^24 take 3 bytes (uint16 + uint8), so the compiled tree over float32 keys at
    d = 2 (points 1x, ids 0.375x, nodes) stays within 1.5x the keys; larger ids fall back to
    int32 and are reported unchanged."""
    rng = np.random.default_rng(4)
    K = rng.standard_normal((2**16, 2)).astype(np.float32)
    a, t = np.array([0.6, 0.8]), 1.5
    expected = np.flatnonzero(K.astype(np.float64) @ a >= t)
    for offset, ratio in ((0, 1.5), (2**24 - 2**16, 1.5), (2**24, 1.7)):
        tree = CompiledKDTree(K, np.arange(len(K)) + offset, 128)
        assert tree.nbytes / K.nbytes <= ratio
        found, _ = tree.query(a, t)
        np.testing.assert_array_equal(np.sort(found), expected + offset)
        points, ids = tree.items()
        np.testing.assert_array_equal(np.sort(ids), np.arange(len(K)) + offset)
        np.testing.assert_array_equal(points, K[ids - offset])


def test_without_numba_the_compiled_backend_says_what_to_install(monkeypatch):
    import sys

    from hsr_lab import HSR

    monkeypatch.setitem(sys.modules, "numba", None)  # import numba now fails
    with pytest.raises(ImportError, match=r"pip install 'hsr_lab\[fast\]'"):
        HSR(np.zeros((4, 2)), backend="compiled")


def test_the_compiled_walk_weighs_a_query_as_the_numpy_walk_does():
    """The box test's weight rows, built in machine code, are ``kdtree._weights`` bit for bit."""
    from hsr_lab.hsr.compiled import _weights as compiled_weights
    from hsr_lab.hsr.kdtree import _weights

    rng = np.random.default_rng(5)
    for a in (rng.standard_normal(3), np.array([1e-300, -2.0]), np.zeros(4), -rng.random(7)):
        w, max_a = compiled_weights(a)
        np.testing.assert_array_equal(w, _weights(a[None, :])[0])
        assert max_a == np.abs(a).max()


def test_a_stale_compiled_cache_is_recompiled(tmp_path):
    """Numba keys its disk cache on compiled.py alone; machine code cached with other
    ``numerics`` rules (here: a margin so wide that every node would be opened) is found stale
    and recompiled, so the walk's counters are the NumPy twin's again. Each step runs in a
    fresh interpreter, with the cache in tmp_path (never the repository's)."""
    import os
    import subprocess
    import sys

    (tmp_path / "old_rules.py").write_text(
        "from numba.extending import register_jitable\n"
        "@register_jitable\n"
        "def margin(d):\n"
        "    return 0.5 * (d + 2)  # far too wide: no box is ever decided\n")
    poison = """
import numpy as np
import old_rules
import hsr_lab.hsr.compiled as c
c.margin = old_rules.margin  # the "old" rule, compiled into the cache
tree = c.CompiledKDTree(np.random.default_rng(0).standard_normal((500, 3)), np.arange(500), 4)
tree.query(np.ones(3), 0.5)
"""
    check = """
import numpy as np
import hsr_lab.hsr.compiled as c
from hsr_lab.hsr import NumpyKDTree
from hsr_lab.hsr.numerics import margin
rng = np.random.default_rng(0)
P = rng.standard_normal((500, 3))
tree, twin = c.CompiledKDTree(P, np.arange(500), 4), NumpyKDTree(P, np.arange(500), 4)
assert c._rules(5, 0.75, 3.5, 1.25)[0] == margin(5)
for _ in range(20):
    a, t = rng.standard_normal(3), float(rng.normal(0, 1))
    assert tree.query(a, t)[1] == twin.query(a, t)[1]
print("fresh")
"""
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "cache"), "PYTHONPATH": os.pathsep.join(
        [str(tmp_path), *filter(None, [os.environ.get("PYTHONPATH")])])}
    for code in (poison, check):
        done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                              text=True, timeout=300)
        assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "fresh"
    assert any((tmp_path / "cache").rglob("*.nbi"))  # the cache was used, in tmp_path


def test_without_numba_the_lab_runs_on_the_numpy_walk():
    """``make lab`` installs no Numba: hsr_lab imports, ``TREE`` is the NumPy tree, "auto" and
    attention's HSR method run on it, and only ``backend="compiled"`` asks for the extra. In a
    fresh interpreter where ``import numba`` fails."""
    import subprocess
    import sys

    code = """
import sys
sys.modules["numba"] = None  # as if not installed
import numpy as np
import hsr_lab.hsr as hsr
from hsr_lab import HSR
from hsr_lab.attention import relu_attention
from hsr_lab.hsr.compiled import AVAILABLE
from hsr_lab.optional import MissingOptional
assert not AVAILABLE and hsr.TREE is hsr.NumpyKDTree
K = np.random.default_rng(0).standard_normal((2**15, 2)).astype(np.float32)
auto = HSR(K)
assert {b.name for b in auto.blocks} <= {"numpy", "brute"}, auto
a = np.array([0.6, 0.8])
assert np.array_equal(auto.query(a, 1.5), np.flatnonzero(K.astype(np.float64) @ a >= 1.5))
Q, V = K[:64].astype(np.float64), np.ones((2**15, 1))
_, stats = relu_attention(Q, K.astype(np.float64), V, 1, 0.5, method="hsr", backend="numpy",
                          return_stats=True)
assert stats.kernel == "numpy"
try:
    HSR(K, backend="compiled")
except MissingOptional as err:
    print(err.install)
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "pip install 'hsr_lab[fast]'"


# ---------------------------------------------------------------- the shared private vocabulary

def _step(module, name: str):
    """The step ``name`` of a tree module: a function of the module or a method of its tree."""
    return getattr(module, name, None) or getattr(MODULES[module], name, None)


@pytest.mark.parametrize("module", list(MODULES), ids=lambda m: m.__name__.rsplit(".", 1)[1])
def test_every_tree_module_defines_the_same_steps(module):
    for name in STEPS:
        step = _step(module, name)
        assert callable(step), f"{module.__name__} has no step {name}"
        assert (step.__doc__ or "").strip(), f"{module.__name__}.{name} has no docstring"


def _banners(module) -> list[str]:
    return re.findall(r"^ *# (Case \d: .*)$", inspect.getsource(module), flags=re.MULTILINE)


def test_the_case_banners_stand_in_the_same_order_in_every_tree():
    """Case 1 (pruned), Case 2 (reported whole), Case 3 (a leaf scanned, an inner node opened),
    word for word and once each, as the three branches of one algorithm."""
    expected = _banners(reference)
    assert [b.split(":")[0] for b in expected] == ["Case 1", "Case 2", "Case 3"]
    assert "pruned" in expected[0] and "reported whole" in expected[1]
    assert "scanned" in expected[2] and "opened" in expected[2]
    for module in (kdtree, compiled):
        assert _banners(module) == expected, module.__name__


def _cited_names(doc: str) -> set[str]:
    """Code names a docstring cites in double backticks: private ones and dotted paths."""
    names = set(re.findall(r"``([A-Za-z_][\w.]*)``", doc))
    return {n for n in names if not n.endswith(".py") and ("." in n or n.startswith("_"))}


def _resolve(module, dotted: str) -> object:
    bases = [module, MODULES[module], importlib.import_module("hsr_lab.hsr"),
             importlib.import_module("hsr_lab")]
    for base in bases:
        obj = base
        for part in dotted.removeprefix("hsr_lab.hsr.").removeprefix("hsr_lab.").split("."):
            obj = getattr(obj, part, None)
            if obj is None:
                break
        if obj is not None:
            return obj
    if "." in dotted:  # a module of hsr_lab.hsr, e.g. ``exact.at_least_one``
        head, _, rest = dotted.partition(".")
        try:
            return _resolve(module, rest) if importlib.import_module(
                f"hsr_lab.hsr.{head}") else None
        except ImportError:
            return None
    return None


@pytest.mark.parametrize("module", list(MODULES), ids=lambda m: m.__name__.rsplit(".", 1)[1])
def test_the_module_docstrings_point_at_steps_that_exist(module):
    """Each module's docstring names where every step lives, in its own file and in its twins';
    every private or dotted name it cites must resolve, so a renamed step breaks this test."""
    cited = _cited_names(module.__doc__)
    assert set(STEPS) <= {name.rsplit(".", 1)[-1] for name in cited}, module.__name__
    missing = sorted(name for name in cited if _resolve(module, name) is None)
    assert not missing, f"{module.__name__} cites names that do not exist: {missing}"


def _shadowed(module) -> list[str]:
    """Names imported at module level and then bound again inside one of its functions."""
    tree = ast.parse(inspect.getsource(module))
    imported = {alias.asname or alias.name.split(".")[0] for node in tree.body
                if isinstance(node, ast.Import | ast.ImportFrom) for alias in node.names}
    found = []
    for fn in ast.walk(tree):
        if isinstance(fn, ast.FunctionDef):
            bound = {n.id for n in ast.walk(fn) if isinstance(n, ast.Name)
                     and isinstance(n.ctx, ast.Store)}
            bound |= {a.arg for a in fn.args.args + fn.args.kwonlyargs}
            found += [f"{fn.name}: {name}" for name in sorted(bound & imported)]
    return found


@pytest.mark.parametrize("module", list(MODULES), ids=lambda m: m.__name__.rsplit(".", 1)[1])
def test_no_function_of_a_tree_shadows_an_imported_name(module):
    """A local ``margin`` would hide ``numerics.margin``: one name, one meaning."""
    assert _shadowed(module) == []


def test_the_compiled_counters_are_named_in_query_stats_order():
    names = [f.name for f in fields(QueryStats)]
    assert list(compiled._COUNTER_NAMES) == names[:len(compiled._COUNTER_NAMES)]
    for index, name in zip((compiled._VISITED, compiled._PRUNED, compiled._REPORTED,
                            compiled._PRODUCTS), compiled._COUNTER_NAMES, strict=True):
        assert names[index] == name


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_the_three_bounds_are_the_same_upper_and_lower_bound(dtype):
    """``_weights`` and ``_bounds`` mean one thing in the three modules: at every node the
    three ``(upper, lower)`` agree to a few roundings (each sums in its own order), the weight
    rows of the fast twins bit for bit, and every point of the box scores in [lower, upper]."""
    rng = np.random.default_rng(6)
    points = (rng.standard_normal((400, 3)) * 10.0 ** rng.integers(-3, 4, (400, 1))).astype(dtype)
    ref, fast, _ = twins(points, 8)
    ref_nodes = {}
    stack = [ref.root]
    while stack:
        node = stack.pop()
        ref_nodes[node.start, node.stop] = node
        stack.extend(child for child in (node.left, node.right) if child is not None)
    for a in (rng.standard_normal(3), np.array([0.0, -1.0, 1e-8]), rng.standard_normal(3) * 1e6):
        w_ref, w_fast = reference._weights(a), kdtree._weights(a[None, :])
        w_jit, max_a = compiled._weights(a)
        np.testing.assert_array_equal(w_fast[0], w_jit)
        assert (w_ref.relative, w_ref.absolute, w_ref.max_a) == (w_jit[0, 6], w_jit[0, 7], max_a)
        nodes = fast._nodes()
        both = fast._bounds(np.zeros(len(nodes), dtype=np.int64), np.arange(len(nodes)), w_fast)
        for i, node in enumerate(nodes):
            upper, lower = reference._bounds(ref_nodes[node.start, node.stop], w_ref)
            jit = compiled._bounds(fast._packed, i, w_jit)
            scores = fast.points[node.start:node.stop].astype(np.float64) @ a
            tol = 1e-13 * (abs(upper) + abs(lower) + node.rad * max_a)
            for u, lo in (jit, tuple(both[i])):
                assert abs(u - upper) <= tol and abs(lo - lower) <= tol
            assert lower <= scores.min() and scores.max() <= upper
