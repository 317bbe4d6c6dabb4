"""The planner behind ``backend="auto"``: kd-tree or scan, whichever answers faster here.

A kd-tree only pays where its box tests prune (low intrinsic dimension, large n); elsewhere
the dense scan ``K @ a >= t`` is faster. Rather than guess, "auto" races the two on sample
queries (``best_times``) and keeps the winner. Only *which* structure answers depends on the
timing, never the answers: every backend reports exactly the same ids.

- ``ranked`` / ``plan_block``: the candidates for one static block of ``HSR``, the tree, the
  scan, and (float32 keys, faiss installed) faiss's scan made exact (``faiss_scan.FaissScan``),
  ranked by their total time on ``SAMPLES`` sample queries. Blocks smaller than ``MIN_N`` are
  scanned without a race, and blocks wider than ``MAX_D`` get no tree: there the tree's
  per-level overhead, or its failure to prune, loses to the scan every time it was measured
  (``benchmarks/results/hsr.md``), and building one only to throw it away costs more.
- ``trial_block`` / ``Trial``: what ``HSR`` keeps. The sample race runs at build time, on a
  quiet cache; candidates within ``TRIAL_SPREAD`` of its best then answer the first real lone
  queries in turn, ``TRIAL`` each, timed where the user asks them, and the one with the least
  median is kept (the others are freed). So a tree and a scan that are close are decided under
  the conditions they will serve in, like for like (answers ascending, a tree's sort timed).
  A candidate over ``TRIAL_CUT`` times the best median after ``TRIAL_FIRST`` queries each
  leaves early, so a clearly slower one costs the user few queries.
  Batches meanwhile go to the leader; a batch with no lone query since the previous batch ends
  the trial (the leader kept), so a structure asked only batches holds one candidate.
- ``query_many``: what ``HSR(backend="auto").query_many`` asks each block. A tree block
  answers a batch either with its walk or with a scan of its own arrays (no second copy of
  the keys); the first batch of each size class (m in [2^j, 2^(j+1))) races the two on that
  batch, and the winner answers every later batch of that class. A scan block races the tree
  still on trial beside it, if any, rather than build another.

The sample queries sit at the paper's threshold (``theory.paper_threshold``), so each reports
about n^{4/5} keys, the workload the paper is about.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Callable, Sequence

import numpy as np

from ..theory import paper_threshold
from . import faiss_scan
from ._base import StaticIndex
from ._stats import BatchQueryStats, QueryStats
from .brute import BruteForce
from .compiled import TREE
from .kdtree import NumpyKDTree

MIN_N = 2**15  # smaller blocks are scanned: the tree's per-level overhead costs more
MAX_D = 16  # wider blocks are scanned: the box test prunes nothing there
SAMPLES = 8  # sample queries per race
TRIAL = 8  # lone queries each candidate of a ``Trial`` answers before one is kept
TRIAL_SPREAD = 2.0  # candidates slower than this times the sample race's best get no trial
TRIAL_FIRST = 3  # lone queries each candidate answers before clearly slower ones are dropped
TRIAL_CUT = 1.5  # ... those whose median exceeds this times the best median
REPEATS = 3  # timings of each sample, best kept



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
    """The block "auto" would build from the sample race alone: whichever of the kd-tree
    (d <= ``MAX_D``), the scan and, for float32 keys where faiss is installed, faiss's scan
    answers the sample queries fastest (``ranked``)."""
    return ranked(points, ids, leaf_size, repeats)[0]


def trial_block(points: np.ndarray, ids: np.ndarray, leaf_size: int,
                repeats: int = REPEATS) -> StaticIndex:
    """The block ``HSR(backend="auto")`` builds: the candidates of ``ranked`` within
    ``TRIAL_SPREAD`` of the sample race's best, in a ``Trial`` that keeps the fastest in use
    (or the lone candidate itself)."""
    candidates = ranked(points, ids, leaf_size, repeats, spread=TRIAL_SPREAD)
    return candidates[0] if len(candidates) == 1 else Trial(candidates)


def ranked(points: np.ndarray, ids: np.ndarray, leaf_size: int, repeats: int = REPEATS,
           spread: float = 1.0) -> list[StaticIndex]:
    """The candidate blocks over these points, fastest on the sample queries first, those
    whose total exceeds ``spread`` times the best dropped.

    The candidates answer the same ``sample_queries`` in turn, each sample timed as its best of
    ``repeats`` runs (a tree's answer sorted, as ``HSR.query`` sorts it); the totals rank them.
    """
    n, d = points.shape
    scan = BruteForce(points, ids, leaf_size)
    if n < MIN_N:
        return [scan]
    candidates: list[StaticIndex] = [scan]
    if d <= MAX_D:
        candidates.insert(0, TREE(points, ids, leaf_size))
    if faiss_scan.usable(points):
        candidates.append(faiss_scan.FaissScan(points, ids, leaf_size))
    if len(candidates) == 1:
        return candidates
    totals = np.zeros(len(candidates))
    for u, t in zip(*sample_queries(points), strict=True):
        totals += best_times([lambda c=c, u=u, t=t: answer(c, u, t) for c in candidates],
                             repeats)
    order = np.argsort(totals, kind="stable")
    return [candidates[i] for i in order if totals[i] <= spread * totals[order[0]]]


class Trial:
    """A block whose first lone queries try each candidate in turn, timed where the user
    asks them; once every candidate has answered ``TRIAL`` of them, the one with the least
    median time is kept and the others are freed. Those over ``TRIAL_CUT`` times the least
    median after ``TRIAL_FIRST`` queries each are freed then (``_narrow``).

    The sample race at build time runs on an idle cache and a quiet machine; in use the
    same block competes with whatever else the program does, and a tree and a scan within
    a few tens of percent of each other can trade places. The trial decides like for like:
    the same queries, the same conditions, each answer ascending (a tree's sorted, timed).
    Batches go to the leader (the best of the sample race until the trial ends), whose batch
    path (``query_many``) races tree and scan per batch size class itself. A batch with no
    lone query since the previous one (or before it) ends the trial where it stands: the
    leader is kept and the others are freed, so a structure asked only batches never holds
    them all, while one asked lone queries and batches in turn still decides by the trial.
    """

    ascending = True  # query returns ascending ids

    def __init__(self, candidates: Sequence[StaticIndex]) -> None:
        self.candidates = list(candidates)
        self._times: list[list[float]] = [[] for _ in self.candidates]
        self._asked = 0
        self._asked_at_batch = 0  # lone queries asked before the latest batch
        self._last: StaticIndex = self.candidates[0]  # what answered the latest query

    @property
    def leader(self) -> StaticIndex:
        """The candidate that answers batches: the trial's winner once it has ended."""
        return self.candidates[0]

    @property
    def name(self) -> str:
        """The name of the candidate given the latest query or batch (the leader's before
        any): during the trial, lone queries go to each candidate in turn."""
        return self._last.name

    def query(self, a: np.ndarray, t: float) -> tuple[np.ndarray, QueryStats]:
        """The ids with ``<a, x> >= t``, ascending, from the next candidate on trial (or the
        winner), and the cost."""
        i = 0 if len(self.candidates) == 1 else min(  # the candidate asked least so far
            range(len(self.candidates)), key=lambda j: len(self._times[j]))
        start = time.perf_counter()
        self._last = self.candidates[i]
        found, stats = self._last.query(a, t)
        if not getattr(self._last, "ascending", False):  # a tree, or a scan of
            found = sorted_ids(found)  # merged blocks' ids: sorted, as HSR.query would
        if len(self.candidates) > 1:
            self._times[i].append(time.perf_counter() - start)
            self._asked += 1
            self._narrow()
        return found, stats

    def _narrow(self) -> None:
        """Once every candidate has answered ``TRIAL_FIRST`` lone queries, drop those whose
        median exceeds ``TRIAL_CUT`` times the least; once each has answered ``TRIAL``, keep
        the one with the least median alone."""
        tried = min(len(times) for times in self._times)
        if tried < TRIAL_FIRST:
            return
        medians = [float(np.median(times)) for times in self._times]
        best = int(np.argmin(medians))
        keep = [best] if tried >= TRIAL else [
            j for j, median in enumerate(medians) if median <= TRIAL_CUT * medians[best]]
        self.candidates = [self.candidates[j] for j in keep]
        self._times = [self._times[j] for j in keep]

    def query_many(self, A: np.ndarray, t: np.ndarray | float, sort: bool = True
                   ) -> tuple[np.ndarray, np.ndarray, BatchQueryStats]:
        """The leader's ``query_many`` (``batch_block``)."""
        return self.batch_block().query_many(A, t, sort)

    def batch_block(self) -> StaticIndex:
        """The leader, which is given a batch (and so names the block); the trial ends here
        (the others freed) unless lone queries came since the previous batch."""
        if self._asked == self._asked_at_batch:
            self.candidates = [self.leader]
        self._asked_at_batch = self._asked
        self._last = self.leader
        return self.leader

    @property
    def tree(self) -> NumpyKDTree | None:
        """The kd-tree on trial, if any (a batch race can use it rather than build one)."""
        return next((c for c in self.candidates if isinstance(c, NumpyKDTree)), None)

    def items(self) -> tuple[np.ndarray, np.ndarray]:
        return self.leader.items()

    def __len__(self) -> int:
        return len(self.leader)

    @property
    def depth(self) -> int:
        return self.leader.depth

    @property
    def nbytes(self) -> int:
        """Bytes of every candidate still held."""
        return sum(c.nbytes for c in self.candidates)

    def __repr__(self) -> str:
        return f"Trial({', '.join(c.name for c in self.candidates)}; asked {self._asked})"


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


# Per tree block: its scan (sharing the tree's points; a compiled tree's ids are unpacked to
# int32 for it, not counted in HSR.nbytes) and the winner per batch size class.
_BATCH_PLANS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def query_many(block: StaticIndex, A: np.ndarray, t: np.ndarray, sort: bool = True,
               leaf_size: int = 32) -> tuple[np.ndarray, np.ndarray, BatchQueryStats]:
    """``block.query_many(A, t, sort)``, answered by the faster of a tree walk and a scan for
    this batch size class (m in [2^j, 2^(j+1))): raced on the first such batch (both answer
    it, twice each, and the winner's answer is returned), the winner kept for the class.

    A tree block scans its own arrays (no second copy of the keys; a compiled tree's 24-bit
    ids are unpacked for the scan, an int32 array, 4 bytes a key). A scan block that a tree
    could serve (n >= ``MIN_N``, d <= ``MAX_D``) races the tree of its ``Trial`` if one is
    still on trial, else builds one (``leaf_size``) on its first batch, and keeps it only if
    it wins some size class; other blocks answer directly.
    """
    spare = None  # a tree already built over these keys
    if isinstance(block, Trial):
        spare, block = block.tree, block.batch_block()
    n, d = block.points.shape  # type: ignore[attr-defined]  (a tree or a scan)
    tree_able = isinstance(block, NumpyKDTree) or (n >= MIN_N and d <= MAX_D)
    if len(A) < 2 or not tree_able:
        return block.query_many(A, t, sort)
    plan = _BATCH_PLANS.get(block)
    if plan is None:  # the other candidate; it holds no reference to the block (weak keys)
        other = (BruteForce.over(block.points, block.ids) if isinstance(block, NumpyKDTree)
                 else spare if spare is not None else TREE(*block.items(), leaf_size))
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
