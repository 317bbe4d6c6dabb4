"""``HSR``'s updates: an operation that raises leaves the structure exactly as it was, the table
of deleted ids stays O(live) however many ids were handed out, and answers that need no order
are not sorted."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hsr_lab import HSR
from hsr_lab.hsr import plan, structure
from hsr_lab.hsr.alive import PAGE, AliveTable
from hsr_lab.hsr.csr import ascending

BACKENDS = ["numpy", "compiled", "reference", "brute", "layers", "auto"]


def state(hsr: HSR) -> tuple:
    """Everything a caller can see: repr, dtype, nbytes, size, blocks, plan and answers."""
    rng = np.random.default_rng(0)
    A = rng.standard_normal((4, hsr.d))
    answers = [hsr.query(a, 0.1).tolist() for a in A]
    indptr, ids = hsr.query_many(A, 0.1)
    return (repr(hsr), hsr.dtype, hsr.nbytes, len(hsr), [len(b) for b in hsr.blocks],
            repr(hsr.plan), answers, indptr.tolist(), ids.tolist())


def made(backend: str) -> HSR:
    """A float32 structure with a few blocks and a deleted id."""
    rng = np.random.default_rng(1)
    hsr = HSR(rng.standard_normal((40, 2)).astype(np.float32), backend=backend, leaf_size=4)
    hsr.add(rng.standard_normal((9, 2)).astype(np.float32))
    hsr.delete([3])
    return hsr


REFUSED = [
    ("add", lambda h: h.add([[1e200, 0.1]])),  # too large: the float32 HSR must stay float32
    ("add", lambda h: h.add(np.array([[np.nan, 0.0]]))),
    ("add", lambda h: h.add(np.zeros((2, 3)))),
    ("add", lambda h: h.add("points")),
    ("delete", lambda h: h.delete([3])),  # already deleted
    ("delete", lambda h: h.delete([0, 0])),
    ("delete", lambda h: h.delete([10**6])),
    ("delete", lambda h: h.delete([1.5])),
    ("delete", lambda h: h.delete([[1, 2]])),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(("method", "call"), REFUSED)
def test_a_refused_update_changes_nothing(backend, method, call):
    hsr = made(backend)
    before = state(hsr)
    with pytest.raises((ValueError, TypeError)):
        call(hsr)
    assert state(hsr) == before, method


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("update", ["add", "widening add", "delete that rebuilds"])
def test_an_update_that_fails_midway_changes_nothing(monkeypatch, backend, update):
    """A block build that raises (out of memory, say) halfway through an update: the blocks,
    dtype, size, deleted ids and plan are those of before."""
    hsr = made(backend)
    before = state(hsr)
    builds = []

    def failing(points, ids, leaf_size, real=hsr._kernels.build):
        builds.append(len(points))
        if len(builds) == 2:
            raise MemoryError("a build failed")
        return real(points, ids, leaf_size)

    monkeypatch.setattr(hsr._kernels, "build", failing)
    with pytest.raises(MemoryError):
        if update == "add":  # a new block, then merges
            hsr.add(np.ones((40, 2), dtype=np.float32))
        elif update == "widening add":  # float64 values: every block rebuilt
            hsr.add(np.full((1, 2), 1 / 3))
        else:  # more than half dead: one rebuild (fail on the first build)
            builds.append(0)
            hsr.delete(np.arange(40)[np.arange(40) != 3])
    monkeypatch.undo()
    assert state(hsr) == before


def test_a_rejected_add_keeps_float32_keys_float32():
    """A refused ``add`` of a too-large point leaves float32 blocks float32: the magnitude
    check runs before anything is widened to float64."""
    hsr = HSR(np.zeros((100, 2), np.float32), backend="numpy")
    nbytes = hsr.nbytes
    with pytest.raises(ValueError, match="magnitude"):
        hsr.add([[1e200, 0.1]])
    assert hsr.dtype == np.float32 and hsr.nbytes == nbytes


def test_the_alive_table_stays_small_under_a_sliding_window():
    """Keep 4 sinks and a window of 1000 keys while 2^18 ids pass through: the table of
    deleted ids holds pages of live ids only (O(live)), plus one slot per page of ids."""
    rng = np.random.default_rng(2)
    hsr = HSR(rng.standard_normal((1004, 2)), backend="brute")
    oldest = 4  # ids 0..3 are the sinks, kept for ever
    for _ in range(2**18 // 512):
        hsr.add(rng.standard_normal((512, 2)))
        hsr.delete(np.arange(oldest, oldest + 512))
        oldest += 512
    assert len(hsr) == 1004 and hsr._n_ids == 1004 + 2**18
    table = hsr._table.nbytes
    assert table <= 8 * PAGE + 8 * (hsr._n_ids // PAGE + 1), table  # was one byte per id
    a = np.array([1.0, 0.0])
    live = np.concatenate([np.arange(4), np.arange(oldest, hsr._n_ids)])
    points = np.concatenate([block.items()[0] for block in hsr.blocks])
    ids = np.concatenate([block.items()[1] for block in hsr.blocks])
    assert sorted(ids.tolist()) == live.tolist()
    np.testing.assert_array_equal(hsr.query(a, 0.5), np.sort(ids[points @ a >= 0.5]))


def test_the_alive_table_follows_a_model():
    """Random extends, deletes and compactions against a plain boolean array."""
    rng = np.random.default_rng(3)
    for _ in range(50):
        table, model = AliveTable(int(rng.integers(1, 3 * PAGE))), None
        model = np.ones(table.n_ids, dtype=bool)
        for _ in range(20):
            op = rng.integers(3)
            if op == 0:
                extra = int(rng.integers(1, 2 * PAGE))
                table.extend(table.n_ids + extra)
                model = np.concatenate([model, np.ones(extra, dtype=bool)])
            elif op == 1 and model.any():
                live = np.flatnonzero(model)
                gone = rng.choice(live, min(len(live), int(rng.integers(1, 3000))), replace=False)
                table.set(gone, False)
                model[gone] = False
            else:
                table.compact(np.flatnonzero(model))
            np.testing.assert_array_equal(table.alive(np.arange(table.n_ids)), model)


@pytest.mark.parametrize("backend", BACKENDS)
def test_unsorted_answers_hold_the_same_ids(backend):
    rng = np.random.default_rng(4)
    hsr = HSR(rng.standard_normal((3000, 2)), backend=backend)
    hsr.add(rng.standard_normal((500, 2)))
    hsr.delete(np.arange(0, 3500, 7))
    A = rng.standard_normal((6, 2))
    indptr, ids = hsr.query_many(A, 0.4)
    loose_ptr, loose = hsr.query_many(A, 0.4, sort=False)
    np.testing.assert_array_equal(loose_ptr, indptr)
    for i, a in enumerate(A):
        want = ids[indptr[i]:indptr[i + 1]]
        assert (np.diff(want) > 0).all()
        np.testing.assert_array_equal(np.sort(loose[indptr[i]:indptr[i + 1]]), want)
        np.testing.assert_array_equal(np.sort(hsr.query(a, 0.4, sort=False)), want)
        np.testing.assert_array_equal(hsr.query(a, 0.4), want)
    with pytest.raises(TypeError, match="sort"):
        hsr.query(A[0], 0.4, sort=1)


def test_attention_never_sorts_the_ids_it_gathers(monkeypatch):
    """The decoder and the batch method gather rows of V in any order: they ask for unsorted
    ids, so no sort runs (``HSR.query`` and ``query_many`` would call these to sort)."""
    from hsr_lab.attention import Decoder, relu_attention

    def no_sort(*args):
        raise AssertionError("sorted")

    monkeypatch.setattr(structure, "ascending", no_sort)
    monkeypatch.setattr(structure, "sort_rows", no_sort)
    rng = np.random.default_rng(5)
    n = plan.DECODE_MIN_WORK // 2
    K, V = rng.standard_normal((n, 2)), rng.standard_normal((n, 2))
    decoder = Decoder(2, b=0.5, keys=K, values=V, backend="compiled", sinks=3, window=40)
    for q in rng.standard_normal((3, 2)):
        row, _ = decoder.attend(q)
        np.testing.assert_allclose(row, decoder.attend_dense(q)[0], rtol=1e-10, atol=1e-13)
    Q = rng.standard_normal((64, 2))
    out, stats = relu_attention(Q, K[:4096], V[:4096], 1, 0.5, method="hsr", backend="compiled",
                                return_stats=True)
    assert stats.kernel == "compiled"
    np.testing.assert_allclose(out, relu_attention(Q, K[:4096], V[:4096], 1, 0.5), rtol=1e-9,
                               atol=1e-12)


def test_a_decoder_step_that_fails_changes_nothing(monkeypatch):
    """``Decoder.append`` stores the key, then adds it to its HSR: if that raises, the cache is
    as it was (size, keys, values, repr), and the next step answers as if nothing happened."""
    from hsr_lab.attention import Decoder

    rng = np.random.default_rng(6)
    K, V = rng.standard_normal((300, 2)), rng.standard_normal((300, 2))
    decoder = Decoder(2, b=0.1, keys=K[:-1], values=V[:-1], backend="numpy")
    before = (repr(decoder), len(decoder), decoder.keys.copy(), decoder.values.copy())

    def fail(points):
        raise MemoryError("the HSR could not grow")

    monkeypatch.setattr(decoder.hsr, "add", fail)
    with pytest.raises(MemoryError):
        decoder.step(rng.standard_normal(2), K[-1], V[-1])
    monkeypatch.undo()
    after = (repr(decoder), len(decoder), decoder.keys, decoder.values)
    assert after[:2] == before[:2]
    np.testing.assert_array_equal(after[2], before[2])
    np.testing.assert_array_equal(after[3], before[3])
    q = rng.standard_normal(2)
    row, _ = decoder.step(q, K[-1], V[-1])
    np.testing.assert_allclose(row, decoder.attend_dense(q)[0], rtol=1e-10, atol=1e-13)


def _blocks_of_every_kind() -> list:
    """One block of every backend, FaissScan too where faiss is installed, over shuffled ids."""
    from hsr_lab.hsr import BruteForce, CompiledKDTree, ConvexLayers, NumpyKDTree, ReferenceKDTree
    from hsr_lab.hsr.faiss_scan import FaissScan, usable

    rng = np.random.default_rng(5)
    points = rng.standard_normal((300, 2)).astype(np.float32)
    ids = rng.permutation(1000)[:300].astype(np.int64)
    kinds = [BruteForce, CompiledKDTree, ConvexLayers, NumpyKDTree, ReferenceKDTree]
    blocks = [kind(points.astype(np.float64) if kind is ConvexLayers else points, ids, 8)
              for kind in kinds]
    blocks += [BruteForce(points, np.arange(300), 8)]  # ids that ascend: its answers do too
    if usable(points):
        blocks += [FaissScan(points, ids, 8), FaissScan(points, np.sort(ids), 8)]
    return blocks


@pytest.mark.parametrize("block", _blocks_of_every_kind(), ids=lambda b: type(b).__name__)
def test_every_block_implements_the_whole_static_index(block):
    """Every member of ``StaticIndex`` exists on every backend's block, with the meaning the
    protocol gives it: ``points`` and ``ids`` are ``items()`` (row for row, in the block's
    order), ``ascending`` is true only if the answers come ascending unsorted."""
    from hsr_lab.hsr._base import StaticIndex

    members = {name for name in vars(StaticIndex) if not name.startswith("_")}
    members |= set(StaticIndex.__annotations__) | {"__len__"}
    assert {"name", "ascending", "points", "ids", "query", "query_many", "items"} <= members
    for name in members:
        assert hasattr(block, name), f"{type(block).__name__} lacks {name}"
    points, ids = block.items()
    stored = {(tuple(x), int(i)) for x, i in zip(np.asarray(block.points, dtype=np.float64),
                                                  np.asarray(block.ids), strict=True)}
    assert stored == {(tuple(x), int(i)) for x, i in zip(points.astype(np.float64), ids,
                                                       strict=True)}
    assert len(block) == len(points) == 300 and isinstance(block.ascending, bool)
    rng = np.random.default_rng(6)
    for a in rng.standard_normal((5, 2)):
        found, _ = block.query(a, -0.2)
        assert len(found) > 1
        if block.ascending:
            assert (np.diff(found) > 0).all()
            indptr, many, _ = block.query_many(np.stack([a, -a]), -0.2, sort=False)
            assert all((np.diff(many[indptr[i]:indptr[i + 1]]) > 0).all() for i in range(2))
    scans = ("BruteForce", "FaissScan")  # ascending iff their ids ascend; trees never
    want = type(block).__name__ in scans and bool((np.diff(np.asarray(block.ids)) > 0).all())
    assert block.ascending is want


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 40), st.integers(0, 6000), st.integers(0, 2**31 - 1))
def test_ascending_sorts_any_ids_below_their_bound_like_np_sort(bits, size, seed):
    """csr.ascending (the compiled radix sort above _radix.MIN_IDS ids, np.sort below) gives
    np.sort's answer for ids below any bound up to 2^40, duplicates included."""
    bound = max(1, 2**bits - (seed % 3))
    ids = np.random.default_rng(seed).integers(0, bound, size)
    got = ascending(ids.copy(), bound)
    assert got.dtype == np.int64 and np.array_equal(got, np.sort(ids))


def test_ascending_uses_the_radix_sort_where_numba_is_installed():
    from hsr_lab.hsr import _radix

    ids = np.random.default_rng(0).permutation(2**22)[: 4 * _radix.MIN_IDS]
    if _radix.AVAILABLE:
        assert np.array_equal(_radix.radix(ids, 2**22), np.sort(ids))
    assert np.array_equal(ascending(ids, 2**22), np.sort(ids))
