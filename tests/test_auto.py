"""The scans and the planner behind ``backend="auto"`` (``hsr.plan``): exact answers whatever
is chosen, decisions that say why, races that a disturbed round cannot flip, fixed plans that
repeat, and a first batch answered once."""

from __future__ import annotations

import numpy as np
import pytest

import hsr_lab.hsr.brute as brute
from hsr_lab import HSR
from hsr_lab.hsr import TREE, BruteForce, NumpyKDTree, Plan, plan


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


# -- the planner ------------------------------------------------------------------------------
def fake_race(seconds: dict[str, float], calls: list | None = None):
    """A ``plan.race`` that runs every candidate once (so answers stay exercised) and returns
    the given medians."""
    def race(candidates, rounds=plan.ROUNDS):
        for fn in candidates.values():
            fn()
        if calls is not None:
            calls.append(set(candidates))
        return {name: seconds[name] for name in candidates}
    return race


def test_auto_batches_are_exact_whatever_wins(monkeypatch):
    """Small blocks race too (MIN_N lowered): every size class answers exactly, ascending."""
    monkeypatch.setattr(plan, "MIN_N", 64)
    points, A, t = tied(4, n=5000, m=40)
    hsr = HSR(points, backend="auto")
    for rows in (1, 3, 17, 40):
        for sort in (True, False):
            indptr, ids = hsr.query_many(A[:rows], t[:rows], sort=sort)
            for i, want in enumerate(exact_rows(points, A[:rows], t[:rows])):
                row = ids[indptr[i]:indptr[i + 1]]
                np.testing.assert_array_equal(row if sort else np.sort(row), want)


@pytest.mark.parametrize(("tree_s", "scan_s", "kind"), [(1.0, 2.0, "tree"), (2.0, 1.0, "scan"),
                                                        (1.0, 0.95, "tree")])
def test_a_block_keeps_the_kernel_that_won_its_race_by_the_margin(monkeypatch, tree_s, scan_s,
                                                                   kind):
    """The first block of a size class races tree and scan; the scan replaces the tree (the
    prior) only if faster by ``MARGIN`` (0.95 is within it). The answers are exact either way."""
    monkeypatch.setattr(plan, "race", fake_race({"tree": tree_s, "scan": scan_s}))
    rng = np.random.default_rng(0)
    keys = rng.standard_normal((plan.MIN_N, 2))
    hsr = HSR(keys)
    (decision,) = hsr.plan.decisions.values()
    assert decision.kernel == kind and dict(decision.seconds) == {"tree": tree_s,
                                                                   "scan": scan_s}
    assert isinstance(hsr.blocks[0], TREE if kind == "tree" else BruteForce)
    a = rng.standard_normal(2)
    np.testing.assert_array_equal(hsr.query(a, 0.5), np.flatnonzero(keys @ a >= 0.5))


def test_small_or_wide_blocks_are_scanned_without_a_race(monkeypatch):
    monkeypatch.setattr(plan, "race", lambda *args, **kw: pytest.fail("raced"))
    rng = np.random.default_rng(1)
    for shape, rule in (((plan.MIN_N - 1, 2), "MIN_N"), ((plan.MIN_N, plan.MAX_D + 1), "MAX_D")):
        hsr = HSR(rng.standard_normal(shape))
        (decision,) = hsr.plan.decisions.values()
        assert decision.kernel == "scan" and rule in decision.why and not decision.seconds
        assert isinstance(hsr.blocks[0], BruteForce)


def test_settle_keeps_the_prior_unless_beaten_by_the_margin():
    assert plan.settle({"tree": 1.0, "scan": 1.0 / plan.MARGIN * 1.01}).kernel == "tree"
    assert plan.settle({"tree": 1.0, "scan": 1.0 / plan.MARGIN * 0.99}).kernel == "scan"
    assert plan.settle({"tree": 1.0, "dense": 2.0}).kernel == "tree"
    decision = plan.settle({"tree": 3.0, "dense": 1.0})
    assert decision.kernel == "dense" and "fastest" in decision.why and "dense" in str(decision)


def test_a_race_compares_medians_of_interleaved_rounds(monkeypatch):
    """Two disturbed rounds of five (a busy machine) do not flip the decision, and the order
    alternates, so that neither candidate always runs first."""
    order, clock = [], [0.0]
    costs = {"tree": [1.0, 50.0, 1.0, 50.0, 1.0], "scan": [3.0] * 5}
    calls = {"tree": 0, "scan": 0}

    def run(name):
        order.append(name)
        clock[0] += costs[name][calls[name]]
        calls[name] += 1

    monkeypatch.setattr(plan.time, "perf_counter", lambda: clock[0])
    seconds = plan.race({"tree": lambda: run("tree"), "scan": lambda: run("scan")}, rounds=5)
    assert seconds == {"tree": 1.0, "scan": 3.0}
    assert plan.settle(seconds).kernel == "tree"  # best-of or mean would not tell this apart
    assert order[:4] == ["tree", "scan", "scan", "tree"]


def test_a_fixed_plan_repeats_the_choices_without_racing(monkeypatch):
    """``HSR(K, plan=other.plan.fixed())`` takes the same kernels with no race;
    ``Plan(race=False)`` takes the rules and, where a race would run, the prior (the tree)."""
    monkeypatch.setattr(plan, "race", fake_race({"tree": 2.0, "scan": 1.0}))
    rng = np.random.default_rng(2)
    keys = rng.standard_normal((plan.MIN_N, 3))
    first = HSR(keys)
    first.query_many(rng.standard_normal((5, 3)), 0.5)  # a batch on a scan block: no race
    assert [d.kernel for d in first.plan.decisions.values()] == ["scan"]
    monkeypatch.setattr(plan, "race", lambda *args, **kw: pytest.fail("raced"))
    again = HSR(keys, plan=first.plan.fixed())
    assert repr(again.plan).replace("fixed", "racing") == repr(first.plan)
    assert isinstance(again.blocks[0], BruteForce)
    rules = HSR(keys, plan=Plan(race=False))
    assert isinstance(rules.blocks[0], TREE)
    rules.query_many(rng.standard_normal((5, 3)), 0.5)  # the batch: the prior too, no race
    assert {d.kernel for d in rules.plan.decisions.values()} == {"tree"}
    assert first.plan.race and not again.plan.race
    with pytest.raises(ValueError, match="plan applies to backend='auto'"):
        HSR(keys, backend="numpy", plan=Plan())
    with pytest.raises(TypeError, match="plan must be"):
        HSR(keys, plan="tree")


def test_the_plan_says_what_was_chosen_why_and_the_timings():
    rng = np.random.default_rng(3)
    hsr = HSR(rng.standard_normal((2**15, 2)).astype(np.float32))
    hsr.query_many(rng.standard_normal((9, 2)), 1.0)
    text = repr(hsr.plan)
    query = hsr.plan.decisions["query, float32, n in [2^15, 2^16)"]
    assert f"query, float32, n in [2^15, 2^16): {query.kernel}: " in text
    assert ("batch m >= 8, float32, n in [2^15, 2^16)" in text) == (query.kernel == "tree")
    for decision in hsr.plan.decisions.values():
        assert decision.kernel in ("tree", "scan") and decision.why
        assert set(decision.seconds) in (set(), {"tree", "scan"})
        assert all(sec > 0 for sec in decision.seconds.values())
    assert HSR(rng.standard_normal((10, 2)), backend="numpy").plan is None


def test_the_first_batch_races_on_a_sample_and_is_answered_once(monkeypatch):
    """A batch's race answers at most ``RACE_ROWS`` rows per candidate; the batch itself is
    asked once, of the winner only, and a later batch of its class does not race."""
    monkeypatch.setattr(plan, "TREE", NumpyKDTree)
    rng = np.random.default_rng(4)
    keys = rng.standard_normal((plan.MIN_N, 2))
    hsr = HSR(keys, plan=Plan({Plan.situation("query", keys.dtype, len(keys)):
                               plan.Decision("tree", "given")}))  # races the batches
    asked = []
    for kind in (NumpyKDTree, BruteForce):
        original = kind.query_many
        monkeypatch.setattr(kind, "query_many", lambda self, A, t, sort=True, o=original, k=kind:
                            (asked.append((k.__name__, len(A))), o(self, A, t, sort))[1])
    A = rng.standard_normal((100, 2))
    races = []
    monkeypatch.setattr(plan, "race", fake_race({"tree": 1.0, "scan": 2.0}, races))
    indptr, ids = hsr.query_many(A, 0.3)
    assert len(races) == 1
    assert [n for _, n in asked if n > plan.RACE_ROWS] == [100]  # the batch, once
    assert max(n for _, n in asked if n != 100) <= plan.RACE_ROWS
    hsr.query_many(A[:50], 0.3)
    assert len(races) == 1  # the same class (m >= RACE_ROWS): decided
    for i, a in enumerate(A):
        np.testing.assert_array_equal(ids[indptr[i]:indptr[i + 1]], np.flatnonzero(keys @ a >= 0.3))


@pytest.mark.parametrize(("winner", "alone"), [("tree", "numpy"), ("scan", "brute")])
def test_the_first_batch_peaks_no_higher_than_the_winner_alone(monkeypatch, winner, alone):
    """A first batch whose rows report every key (the worst case for memory): the race on a
    sample adds little to the peak of the winner answering the batch alone (racing on the
    whole batch held two answers of it at once). The NumPy tree, whose arrays tracemalloc
    sees."""
    import tracemalloc

    monkeypatch.setattr(plan, "TREE", NumpyKDTree)
    monkeypatch.setattr(plan, "race", fake_race({"tree": 1.0, "scan": 1.0} | {winner: 0.5}))
    rng = np.random.default_rng(5)
    keys = rng.standard_normal((2 * plan.MIN_N, 2))
    A = rng.standard_normal((256, 2))
    peaks = {}
    for name in (alone, "auto"):
        hsr = HSR(keys, backend=name, plan=None if name == alone else Plan(
            {Plan.situation("query", keys.dtype, len(keys)): plan.Decision("tree", "given")}))
        tracemalloc.start()
        _, ids = hsr.query_many(A, -1e9, sort=False)  # every key, every row
        peaks[name] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert len(ids) == 256 * len(keys)
    assert peaks["auto"] <= 1.25 * peaks[alone], peaks


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


def test_attention_rules_and_race(monkeypatch):
    """``prefill``: rules without timing (wide keys, few rows, a race too costly for a small
    batch), else a race on rows of at least ``RACE_WORK`` products whose disturbed rounds do
    not flip it; ``decode``: rules alone."""
    monkeypatch.setattr(plan, "race", lambda *args, **kw: pytest.fail("raced"))
    assert plan.prefill("numpy", 10, 10, 64, 100, None).kernel == "hsr"  # the caller's
    assert plan.prefill("auto", 2**16, 2**16, plan.MAX_D + 1, 2**31, None).kernel == "dense"
    assert plan.prefill("auto", 100, 2**16, 2, 100 * 2**16, None).kernel == "dense"  # few rows
    small = 2**10 * (2**10 + 1) // 2
    assert plan.prefill("auto", 2**10, 2**10, plan.SURE_D, small, None).kernel == "tree"
    assert plan.prefill("auto", 2**10, 2**10, plan.SURE_D + 1, small, None).kernel == "dense"
    monkeypatch.undo()
    asked, clock = [], [0.0]

    def candidates(rows):
        asked.append(rows)
        costs = iter([1.0, 9.0, 1.0, 9.0, 1.0])  # the tree's rounds, two of them disturbed

        def tree():
            clock[0] += next(costs)

        def dense():
            clock[0] += 3.0
        return {"tree": tree, "dense": dense}

    monkeypatch.setattr(plan.time, "perf_counter", lambda: clock[0])
    n = 2**16
    decision = plan.prefill("auto", n, n, 8, n * (n + 1) // 2, candidates)
    assert decision.kernel == "tree" and dict(decision.seconds) == {"tree": 1.0, "dense": 3.0}
    assert asked == [max(plan.RACE_ROWS, plan.RACE_WORK // n)]
    assert plan.decode("auto", plan.DECODE_MIN_KEYS - 1, 128).kernel == "dense"
    assert plan.decode("auto", plan.DECODE_MIN_KEYS, plan.DECODE_MIN_WORK).kernel == "hsr"
    assert plan.decode("auto", plan.DECODE_TREE_KEYS, plan.SURE_D).kernel == "hsr"
    assert plan.decode("auto", plan.DECODE_TREE_KEYS, 2 * plan.SURE_D).kernel == (
        "hsr" if plan.DECODE_TREE_KEYS * 2 * plan.SURE_D >= plan.DECODE_MIN_WORK else "dense")
    assert plan.decode("compiled", 10, 2).kernel == "hsr"


def test_the_backend_is_checked_in_one_place():
    """HSR, the attention functions and the Decoder refuse the same names, and "layers" off the
    plane, with ``plan.check_backend``'s message."""
    from hsr_lab.attention import Decoder, relu_attention

    keys = np.zeros((4, 3))
    for call in (lambda: HSR(keys, backend="kd"), lambda: Decoder(3, backend="kd"),
                 lambda: relu_attention(keys, keys, keys, backend="kd")):
        with pytest.raises(ValueError, match=r"backend must be one of \['auto', 'numpy'"):
            call()
    for call in (lambda: HSR(keys, backend="layers"), lambda: Decoder(3, backend="layers")):
        with pytest.raises(ValueError, match=r"plane only \(d = 2\); got d = 3"):
            call()
