"""The scans and the planner behind ``backend="auto"``: exact answers whatever is chosen."""

from __future__ import annotations

import numpy as np
import pytest

import hsr_lab.hsr.brute as brute
from hsr_lab import HSR
from hsr_lab.hsr import TREE, auto


def exact_rows(points: np.ndarray, A: np.ndarray, t: np.ndarray) -> list[np.ndarray]:
    """Row i: the rows x of points with ``fl64(<A[i], x>) >= t[i]``, ascending."""
    points = points.astype(np.float64)
    return [np.flatnonzero(points @ a >= t_i) for a, t_i in zip(A, t, strict=True)]


def tied(seed: int, n: int = 3000, d: int = 3, m: int = 9) -> tuple[np.ndarray, ...]:
    """float32 keys on a coarse grid and thresholds at exact scores: many ties at t."""
    rng = np.random.default_rng(seed)
    points = rng.integers(-8, 9, size=(n, d)).astype(np.float32) / 4
    A = rng.integers(-4, 5, size=(m, d)).astype(np.float64) / 2
    t = (points[rng.integers(0, n, m)].astype(np.float64) * A).sum(axis=1)
    return points, A, t


def near_misses(seed: int, n: int = 3000, d: int = 5, m: int = 9) -> tuple[np.ndarray, ...]:
    """Random float32 keys and thresholds a hair above or below a key's float64 score: that
    key's float32 score lies in the band, and only float64 decides it."""
    rng = np.random.default_rng(seed)
    points = rng.standard_normal((n, d)).astype(np.float32)
    A = rng.standard_normal((m, d))
    score = (points[rng.integers(0, n, m)].astype(np.float64) * A).sum(axis=1)
    return points, A, score + rng.choice([-1e-12, 1e-12], m)  # no exact tie: every order agrees


@pytest.mark.parametrize("block", [3000 * 9, 500, 9])  # one chunk, several, one column each
@pytest.mark.parametrize("make", [tied, near_misses])
def test_scan32_many_is_exact_at_ties(monkeypatch, block, make):
    points, A, t = make(1)
    rad, max_abs = brute.l1_reach(points), float(np.abs(points).max())
    monkeypatch.setattr(brute, "_BLOCK32", block)
    indptr, rows = brute.scan_many(points, A, t, rad, max_abs)
    for i, want in enumerate(exact_rows(points, A, t)):
        np.testing.assert_array_equal(rows[indptr[i]:indptr[i + 1]], want)


@pytest.mark.parametrize("block", [3000 * 9, 500, 9])
@pytest.mark.parametrize("make", [tied, near_misses])
def test_scan32_many_with_one_t_is_exact_at_ties(monkeypatch, block, make):
    """One t for every row (the rows' bands differ only through max|A_r|): the scores are
    compared with the lowest band edge, and each row's extra pairs are decided in float64."""
    points, A, t = make(7)
    t = np.full(len(A), t[0])
    rad, max_abs = brute.l1_reach(points), float(np.abs(points).max())
    monkeypatch.setattr(brute, "_BLOCK32", block)
    indptr, rows = brute.scan_many(points, A, t, rad, max_abs)
    for i, want in enumerate(exact_rows(points, A, t)):
        np.testing.assert_array_equal(rows[indptr[i]:indptr[i + 1]], want)


def test_pairs_by_row_matches_nonzero(monkeypatch):
    """Every chunk width, the last one narrower: the pairs of ``Q K^T >= edge`` by row."""
    rng = np.random.default_rng(8)
    points, Q = rng.standard_normal((101, 3)), rng.standard_normal((7, 3))
    scores = Q @ points.T
    for block in (7 * 101, 7 * 30, 7, 1):
        monkeypatch.setattr(brute, "_BLOCK32", block)
        for edge in (0.5, rng.normal(0.0, 1.0, (7, 1))):
            indptr, cols = brute.pairs_by_row(points, Q, edge)
            rows, want = np.nonzero(scores >= edge)
            np.testing.assert_array_equal(indptr, np.searchsorted(rows, np.arange(8)))
            np.testing.assert_array_equal(cols, want)


@pytest.mark.parametrize("chunk", [3000, 700])
@pytest.mark.parametrize("make", [tied, near_misses])
def test_scan32_is_exact_at_ties(monkeypatch, chunk, make):
    points, A, t = make(2)
    rad, max_abs = brute.l1_reach(points), float(np.abs(points).max())
    monkeypatch.setattr(brute, "_CHUNK32", chunk)
    for a, t_i, want in zip(A, t, exact_rows(points, A, t), strict=True):
        np.testing.assert_array_equal(brute.scan(points, a, float(t_i), rad, max_abs), want)


def test_float64_batch_scan_groups_rows(monkeypatch):
    points, A, t = tied(3)
    points = points.astype(np.float64)
    monkeypatch.setattr(brute, "_BLOCK32", 200)
    indptr, ids, _ = HSR(points, backend="brute").blocks[0].query_many(A, t)
    for i, want in enumerate(exact_rows(points, A, t)):
        np.testing.assert_array_equal(ids[indptr[i]:indptr[i + 1]], want)


def test_auto_batches_are_exact_whatever_wins(monkeypatch):
    """Small blocks race too (MIN_N lowered): every size class answers exactly."""
    monkeypatch.setattr(auto, "MIN_N", 64)
    points, A, t = tied(4, n=5000, m=40)
    hsr = HSR(points, backend="auto")
    for rows in (1, 3, 17, 40):
        indptr, ids = hsr.query_many(A[:rows], t[:rows])
        for i, want in enumerate(exact_rows(points, A[:rows], t[:rows])):
            np.testing.assert_array_equal(ids[indptr[i]:indptr[i + 1]], want)


def test_trial_keeps_the_candidate_fastest_in_use(monkeypatch):
    """Every candidate answers TRIAL lone queries (ascending, exact); then the one with the
    least median time is kept alone (timer made deterministic: the scan is faster)."""
    from hsr_lab.hsr import BruteForce, NumpyKDTree

    rng = np.random.default_rng(6)
    keys = rng.integers(-8, 9, (auto.MIN_N, 2)).astype(np.float32)
    monkeypatch.setattr(auto, "best_times", lambda fns, rounds: [1.0, 1.5, 1.2][:len(fns)])
    block = auto.trial_block(keys, np.arange(len(keys)), 32)
    assert isinstance(block, auto.Trial) and isinstance(block.leader, NumpyKDTree)
    clock = iter(np.arange(10_000, dtype=float))
    monkeypatch.setattr(auto.time, "perf_counter", lambda: next(clock) ** 2 / 1e6)
    for _ in range(auto.TRIAL * len(block.candidates)):
        a, t = rng.integers(-3, 4, 2).astype(np.float64), 0.5
        np.testing.assert_array_equal(block.query(a, t)[0],
                                      np.flatnonzero(keys.astype(np.float64) @ a >= t))
    assert len(block.candidates) == 1  # the times grow: the first candidate asked, the tree
    assert isinstance(block.leader, NumpyKDTree | BruteForce)


def test_a_batch_ends_the_trial_and_keeps_the_leader(monkeypatch):
    """A structure asked only batches does not hold every candidate for ever."""
    rng = np.random.default_rng(5)
    keys = rng.integers(-8, 9, (auto.MIN_N, 2)).astype(np.float32)
    monkeypatch.setattr(auto, "best_times", lambda fns, rounds: [1.0, 1.5, 1.2][:len(fns)])
    block = auto.trial_block(keys, np.arange(len(keys)), 32)
    assert isinstance(block, auto.Trial) and len(block.candidates) > 1
    leader = block.leader
    A = rng.integers(-3, 4, (3, 2)).astype(np.float64)
    indptr, ids, _ = block.query_many(A, 0.5)
    assert block.candidates == [leader]
    for i, a in enumerate(A):
        np.testing.assert_array_equal(np.sort(ids[indptr[i]:indptr[i + 1]]),
                                      np.flatnonzero(keys.astype(np.float64) @ a >= 0.5))


def test_lone_queries_keep_the_trial_going_across_a_batch(monkeypatch):
    """A batch after lone queries leaves the trial running (batches go to the leader); a batch
    with no lone query since the previous one ends it."""
    rng = np.random.default_rng(10)
    keys = rng.integers(-8, 9, (auto.MIN_N, 2)).astype(np.float32)
    monkeypatch.setattr(auto, "best_times", lambda fns, rounds: [1.0, 1.5, 1.2][:len(fns)])
    block = auto.trial_block(keys, np.arange(len(keys)), 32)
    held = list(block.candidates)
    a, A = np.array([1.0, -1.0]), rng.integers(-3, 4, (3, 2)).astype(np.float64)
    block.query(a, 0.5)
    block.query_many(A, 0.5)
    assert block.candidates == held
    block.query_many(A, 0.5)
    assert block.candidates == held[:1]


def test_a_scan_block_races_the_tree_on_trial(monkeypatch):
    """The batch race of a scan leader takes the tree still on trial, not a new one."""
    from hsr_lab.hsr import BruteForce

    rng = np.random.default_rng(11)
    keys = rng.integers(-8, 9, (auto.MIN_N, 2)).astype(np.float32)
    timed = auto.best_times
    monkeypatch.setattr(auto, "best_times", lambda fns, rounds: [1.5, 1.0, 1.2][:len(fns)])
    block = auto.trial_block(keys, np.arange(len(keys)), 32)
    assert isinstance(block.leader, BruteForce) and block.tree is not None
    tree = block.tree
    monkeypatch.setattr(auto, "best_times", timed)
    built = []
    monkeypatch.setattr(auto.NumpyKDTree, "__init__", lambda *args: built.append(args))
    block.query(np.array([1.0, -1.0]), 0.5)
    A = rng.integers(-3, 4, (4, 2)).astype(np.float64)
    indptr, ids, _ = auto.query_many(block, A, np.full(4, 0.5))
    assert not built  # the race ran against the tree on trial (kept only if it won)
    assert auto._BATCH_PLANS[block.leader]["other"] in (tree, None)
    for i, a in enumerate(A):
        np.testing.assert_array_equal(np.sort(ids[indptr[i]:indptr[i + 1]]),
                                      np.flatnonzero(keys.astype(np.float64) @ a >= 0.5))


def test_a_clearly_slower_candidate_leaves_the_trial_early(monkeypatch):
    """After TRIAL_FIRST lone queries each, a candidate over TRIAL_CUT times the best median
    is dropped; the rest go on to TRIAL queries each."""
    rng = np.random.default_rng(12)
    keys = rng.integers(-8, 9, (auto.MIN_N, 2)).astype(np.float32)
    monkeypatch.setattr(auto, "best_times", lambda fns, rounds: [1.0, 1.1, 1.2][:len(fns)])
    block = auto.trial_block(keys, np.arange(len(keys)), 32)
    slow = block.candidates[-1]
    costs = {id(c): 1.0 for c in block.candidates} | {id(slow): 3.0}
    now = [0.0]
    for c in block.candidates:  # each candidate's query advances a fake clock by its cost
        monkeypatch.setattr(c, "query", lambda a, t, c=c, q=c.query: (
            now.__setitem__(0, now[0] + costs[id(c)]), q(a, t))[1])
    monkeypatch.setattr(auto.time, "perf_counter", lambda: now[0])
    first = len(block.candidates)
    for _ in range(auto.TRIAL_FIRST * first):
        block.query(np.array([1.0, 1.0]), 0.5)
    assert slow not in block.candidates and len(block.candidates) == first - 1


@pytest.mark.parametrize("make", [tied, near_misses])
@pytest.mark.parametrize("one_t", [False, True])
def test_batches_larger_than_a_row_group_are_exact(monkeypatch, make, one_t):
    """Batches go ``_ROW_GROUP`` rows at a time (bookkeeping O(n) whatever m): row groups
    of 4 over 11 rows, per-row and shared t, float32 and float64 keys."""
    points, A, t = make(11, n=700, m=11)
    if one_t:
        t = np.full(len(A), t[0])
    monkeypatch.setattr(brute, "_ROW_GROUP", 4)
    monkeypatch.setattr(brute, "_BLOCK32", 64)
    rad, max_abs = brute.l1_reach(points), float(np.abs(points).max())
    indptr, rows = brute.scan_many(points, A, t, rad, max_abs)
    indptr64, ids64, _ = HSR(points.astype(np.float64), backend="brute").blocks[0].query_many(
        A, t)
    for i, want in enumerate(exact_rows(points, A, t)):
        np.testing.assert_array_equal(rows[indptr[i]:indptr[i + 1]], want)
        np.testing.assert_array_equal(ids64[indptr64[i]:indptr64[i + 1]], want)


def test_a_trial_is_named_after_what_answered_last(monkeypatch):
    """During the trial lone queries go to each candidate in turn: ``name`` (which attention
    reports as ``stats.kernel``) is the one that answered, told apart by its counters."""
    rng = np.random.default_rng(9)
    keys = rng.integers(-8, 9, (auto.MIN_N, 2)).astype(np.float32)
    monkeypatch.setattr(auto, "best_times", lambda fns, rounds: [1.0, 1.5, 1.2][:len(fns)])
    block = auto.trial_block(keys, np.arange(len(keys)), 32)
    assert isinstance(block, auto.Trial) and len(block.candidates) > 1
    names = set()
    for _ in range(len(block.candidates)):
        _, stats = block.query(np.array([1.0, 0.5]), 2.0)
        assert (block.name == TREE.name) == (stats.nodes_visited > 0)
        names.add(block.name)
    assert len(names) > 1
