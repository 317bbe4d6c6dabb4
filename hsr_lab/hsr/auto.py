"""The planner behind ``backend="auto"``: kd-tree or scan, whichever answers faster here.

A kd-tree only pays where its box tests prune (low intrinsic dimension, large n); elsewhere
the dense scan ``K @ a >= t`` is faster. Rather than guess, "auto" races the two on sample
queries (``best_times``) and keeps the winner. Only *which* structure answers depends on the
timing, never the answers: every backend reports exactly the same ids.

- ``plan_block``: one static block of ``HSR`` for lone queries: the tree, the scan, or (float32
  keys, faiss installed) faiss's scan made exact (``faiss_scan.FaissScan``). Blocks smaller
  than ``MIN_N`` are scanned without a trial, and blocks wider than ``MAX_D`` get no tree: there
  the tree's per-level overhead, or its failure to prune, loses to the scan every time it was
  measured (``benchmarks/results/hsr.md``), and building one only to throw it away costs more.
- ``plan_batch``: a structure for a batch of m queries asked at once (``query_many``). A
  batch shares the tree's per-level overhead among its rows, so the tree can win batches it
  would lose one query at a time; the race runs on ``BATCH_ROWS`` of the batch's own rows.
- ``query_many``: what ``HSR(backend="auto").query_many`` asks each block. A tree block
  answers a batch either with its walk or with a scan of its own arrays (no second copy of
  the keys); the first batch of each size class (m in [2^j, 2^(j+1))) races the two on that
  batch, and the winner answers every later batch of that class.

The sample queries sit at the paper's threshold (``theory.paper_threshold``), so each reports
about n^{4/5} keys, the workload the paper is about.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Callable, Sequence
from typing import TypeVar

import numpy as np

from ..theory import paper_threshold
from . import faiss_scan
from ._base import StaticIndex
from ._stats import BatchQueryStats
from .brute import BruteForce
from .kdtree import NumpyKDTree

MIN_N = 2**15  # smaller blocks are scanned: the tree's per-level overhead costs more
MAX_D = 16  # wider blocks are scanned: the box test prunes nothing there
SAMPLES = 8  # sample queries per race
REPEATS = 3  # timings of each sample, best kept
BATCH_ROWS = 64  # rows of a batch raced; batches under 2 * BATCH_ROWS are not raced

S = TypeVar("S")


def best_times(fns: Sequence[Callable[[], object]], rounds: int) -> list[float]:
    """The smallest wall-clock seconds of each of ``fns`` over ``rounds`` rounds.

    Each round calls every function once, the order reversed every other round, so that a busy
    machine slows them alike; the best of each is its least disturbed run.
    """
    best = [np.inf] * len(fns)
    for r in range(rounds):
        order = range(len(fns)) if r % 2 == 0 else reversed(range(len(fns)))
        for i in order:
            start = time.perf_counter()
            fns[i]()
            best[i] = min(best[i], time.perf_counter() - start)
    return [float(b) for b in best]


def faster(candidates: Sequence[S], ask: Callable[[S], object], rounds: int = REPEATS) -> S:
    """The candidate whose ``ask(candidate)`` took least time (``best_times``; first on ties)."""
    times = best_times([lambda c=c: ask(c) for c in candidates], rounds)
    return candidates[int(np.argmin(times))]


def sample_queries(points: np.ndarray, count: int = SAMPLES, seed: int = 0
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Unit Gaussian directions u (count, d) and their offsets t (count,) at the paper's
    threshold for these keys: ``t = mean + paper_threshold(n, sd)`` of the scores ``<u, k>``
    (the paper's b with sigma_a measured along u), so a sample reports about n^{4/5} keys
    whatever the keys' scale."""
    n, d = points.shape
    dirs = np.random.default_rng(seed).standard_normal((count, d))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    scores = points @ dirs.T
    sd = np.maximum(scores.std(axis=0), np.finfo(np.float64).tiny)  # constant keys: sd 0
    return dirs, scores.mean(axis=0) + paper_threshold(max(n, 1), sd)


def plan_block(points: np.ndarray, ids: np.ndarray, leaf_size: int,
               repeats: int = REPEATS) -> StaticIndex:
    """The block "auto" builds: whichever of the kd-tree (d <= ``MAX_D``), the scan and, for
    float32 keys where faiss is installed, faiss's scan answers the sample queries fastest.

    The candidates answer the same ``sample_queries`` in turn, each sample timed as its best of
    ``repeats`` runs (a tree's answer sorted, as ``HSR.query`` sorts it); the lowest total wins.
    """
    n, d = points.shape
    scan = BruteForce(points, ids, leaf_size)
    if n < MIN_N:
        return scan
    candidates: list[StaticIndex] = [scan]
    if d <= MAX_D:
        candidates.insert(0, NumpyKDTree(points, ids, leaf_size))
    if faiss_scan.usable(points):
        candidates.append(faiss_scan.FaissScan(points, ids, leaf_size))
    if len(candidates) == 1:
        return scan
    totals = np.zeros(len(candidates))
    for u, t in zip(*sample_queries(points), strict=True):
        totals += best_times([lambda c=c, u=u, t=t: answer(c, u, t) for c in candidates],
                             repeats)
    return candidates[int(np.argmin(totals))]


def answer(block: StaticIndex, a: np.ndarray, t: float) -> np.ndarray:
    """The ids ``HSR.query`` would return from this block alone: a tree's sorted."""
    found = block.query(a, t)[0]
    return sorted_ids(found) if isinstance(block, NumpyKDTree) else found


def sorted_ids(ids: np.ndarray) -> np.ndarray:
    """Ids in ascending order, as ``HSR.query`` returns them: sorted as int32 when they fit (a
    tree's answer must be sorted, a scan's over ascending ids already is; the race counts it)."""
    if len(ids) and ids.max() < 2**31:
        return np.sort(ids.astype(np.int32)).astype(np.int64)
    return np.sort(ids)


def races_batch(m: int, d: int) -> bool:
    """Whether "auto" races tree and scan on an m-row batch in d dimensions (otherwise it plans
    block by block, as for lone queries: a small batch does not amortise a race)."""
    return m >= 2 * BATCH_ROWS and d <= MAX_D


def plan_batch(tree: S, scan: S, A: np.ndarray, t: np.ndarray) -> S:
    """Of a tree and a scan over the same keys, the one that answers ``BATCH_ROWS`` rows of the
    batch, spread evenly, faster with ``query_many(A[rows], t[rows])``."""
    rows = np.linspace(0, len(A) - 1, min(len(A), BATCH_ROWS)).astype(np.int64)
    A_s, t_s = A[rows], t[rows]
    return faster([tree, scan], lambda s: s.query_many(A_s, t_s, sort=False), rounds=2)


# Per tree block: its scan (sharing the tree's arrays) and the winner per batch size class.
_BATCH_PLANS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def query_many(block: StaticIndex, A: np.ndarray, t: np.ndarray, sort: bool = True,
               leaf_size: int = 32) -> tuple[np.ndarray, np.ndarray, BatchQueryStats]:
    """``block.query_many(A, t, sort)``, answered by the faster of a tree walk and a scan for
    this batch size class (m in [2^j, 2^(j+1))): raced on the first such batch (both answer
    it, twice each, and the winner's answer is returned), the winner kept for the class.

    A tree block scans its own arrays (no second copy of the keys). A scan block that a tree
    could serve (n >= ``MIN_N``, d <= ``MAX_D``) builds one (``leaf_size``) on its first batch
    and keeps it only if it wins some size class; other blocks answer directly.
    """
    n, d = block.points.shape  # type: ignore[attr-defined]  (a tree or a scan)
    tree_able = isinstance(block, NumpyKDTree) or (n >= MIN_N and d <= MAX_D)
    if len(A) < 2 or not tree_able:
        return block.query_many(A, t, sort)
    plan = _BATCH_PLANS.get(block)
    if plan is None:  # the other candidate; it holds no reference to the block (weak keys)
        other = (BruteForce.over(block.points, block.ids) if isinstance(block, NumpyKDTree)
                 else NumpyKDTree(*block.items(), leaf_size))
        plan = _BATCH_PLANS[block] = {"other": other}
    size_class = len(A).bit_length()
    if size_class not in plan and plan["other"] is None:
        plan[size_class] = False
    if size_class in plan:
        return (plan["other"] if plan[size_class] else block).query_many(A, t, sort)
    answers: dict[int, tuple] = {}
    candidates = [block, plan["other"]]

    def ask(i: int) -> None:
        answers[i] = candidates[i].query_many(A, t, sort)

    won = int(np.argmin(best_times([lambda: ask(0), lambda: ask(1)], rounds=2)))
    plan[size_class] = bool(won)
    if not isinstance(block, NumpyKDTree) and not any(v is True for v in plan.values()):
        plan["other"] = None  # a scan block whose scan won: free the tree built for the race
    return answers[won]
