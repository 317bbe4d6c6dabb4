"""The planner of ``backend="auto"``: kd-tree or scan (for attention: kd-tree or dense), decided
in one place, with what was chosen, why, and the timings that decided it.

A kd-tree pays only where its box tests prune (low intrinsic dimension, many points); elsewhere
a scan of every point (attention: the dense kernel) is faster. Rules settle the clear cases
without timing anything; the others are raced. The answers never depend on the choice (every
kernel reports the same ids), only the time does.

The situations, each decided once and kept as a ``Decision`` in the ``Plan``:

- **lone queries of a block** (``HSR.query``; one decision per dtype and block size class, n in
  [2^j, 2^(j+1))): the scan if n < ``MIN_N`` or d > ``MAX_D``; otherwise the tree
  (``hsr.TREE``: compiled where Numba is installed) and the scan race on ``SAMPLES`` queries at
  the paper's threshold, answers ascending as ``HSR.query`` returns them.
- **batches of a block** (``HSR.query_many``; per block size class and batch size class, m in
  [2^i, 2^(i+1)) up to ``RACE_ROWS``): a scan block scans (the tree lost its lone queries, and
  a batch favours the scan further: one product reads the keys for many rows). A tree block
  races its walk against a scan of its own arrays on at most ``RACE_ROWS`` rows of the first
  batch of the class (spread evenly, their answers dropped), then answers the batch once.
- **attention over a batch of rows** (``prefill``): dense if d > ``MAX_D`` or m <
  ``ROWS_PER_LEVEL`` log2(n) (too few rows to pay for building a tree); otherwise the tree
  and the dense kernel race on rows of at least ``RACE_WORK`` products, where that costs at
  most ``RACE_SHARE`` of the batch; where it would cost more (small n), the tree if d <=
  ``SURE_D``, else dense.
- **one decoding step** (``decode``): dense over fewer than ``DECODE_MIN_KEYS`` keys, or where
  n d < ``DECODE_MIN_WORK`` unless d <= ``SURE_D`` and n >= ``DECODE_TREE_KEYS``; otherwise the
  cache's ``HSR``, whose blocks follow the rules above.

**A race** (``race``) calls every candidate on the same work once per round, ``ROUNDS``
rounds, the order reversed every other round, and compares medians: a round that a busy
machine disturbed is one sample of the median, not the decision (with the best of two
timings, a loaded machine can make a kernel 4x slower look the faster). The *prior* (the
tree, which "auto" exists to use) is kept unless another candidate's median beats it by
``MARGIN`` (``settle``): within noise the choice stays put, and what that can miss is bounded
by the margin.

**A given plan.** ``HSR(K, plan=p)`` starts from the decisions of ``p`` and races the situations
it lacks only if ``p.race``. ``HSR(K, plan=other.plan.fixed())`` (or ``plan=Plan(race=False)``)
never races: situations the plan lacks are decided by the rules alone, the prior where a race
would run, so the same inputs give the same kernels, run after run.
"""

from __future__ import annotations

import math
import time
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from ..theory import paper_threshold
from ._base import StaticIndex
from ._stats import BatchQueryStats
from .brute import BruteForce
from .compiled import TREE, CompiledKDTree
from .csr import ascending
from .kdtree import NumpyKDTree
from .layers import ConvexLayers
from .reference import ReferenceKDTree

BACKENDS: dict[str, type[StaticIndex]] = {
    "numpy": NumpyKDTree,
    "compiled": CompiledKDTree,  # needs Numba (pip install 'hsr_lab[fast]')
    "reference": ReferenceKDTree,
    "brute": BruteForce,
    "layers": ConvexLayers,
}

# Every constant below changes a decision; the measurement behind each is beside it.
MIN_N = 2**12  # smaller blocks are scanned: at 2^11 a query takes 5-11 us either way (the
# scan 0.6-1.6x the compiled tree's time; results/plan.md), less than a race would save
MAX_D = 16  # wider keys get no tree: at d = 16 the compiled tree lost to the scan in every
# cell, 1.5-1.8x (n = 2^18 .. 2^22, results/hsr_float32.md); its box test prunes nothing there
SAMPLES = 4  # sample queries a block's race answers per round (each reports ~n^{4/5} ids)
ROUNDS = 5  # rounds of every race: a median of 5 ignores two disturbed rounds
MARGIN = 1.1  # a challenger must beat the prior by 10%: within noise the prior stays, and a
# missed win is at most 1.1x (auto's target against the best method, bench_float32.py)
RACE_ROWS = 8  # rows of a batch its race answers (all, if fewer): the first batch of a size
# class costs at most 2 x ROUNDS x 8 = 80 rows more (at 64 rows, 2.25x; at 256, 1.3x)
ROWS_PER_LEVEL = 64  # attention over fewer than 64 log2(n) rows is dense: a build moves about
# n log2 n keys, more than such a batch can save
RACE_WORK = 2**17  # an attention race computes rows of at least 2^17 dense products (about
# 1 ms): fewer rows would time the per-call costs (0.2-0.5 ms), not the rows
RACE_SHARE = 0.05  # an attention race may cost 5% of the batch's dense work; beyond, a rule:
SURE_D = 4 if TREE is CompiledKDTree else 2  # up to this d the tree (compiled: d <= 4; NumPy
# walk: d = 2) beat dense prefill in every cell from n = 2^10 in the run of 2026-12-02; rerun
# on the exact engine, d = 4 at 2^10-2^12 was level with dense (0.96-1.00x), d = 2 1.29-1.36x
DECODE_MIN_KEYS = 2**12  # a decoding step over fewer keys is dense: one query's fixed costs
# (checks, a call per block, the exact row) exceed the dense step there (0.6-0.8x at 2^12) ...
DECODE_MIN_WORK = 2**17  # ... and from n d = 2^17 the scan and exact row match or beat the dense
# step, one pass over the keys instead of two (0.95-1.7x; results/attention.md) ...
DECODE_TREE_KEYS = 2**14 if TREE is CompiledKDTree else 2**16  # ... and so does the tree from
# here at d <= SURE_D (compiled: 1.18-1.22x at d = 2, 1.07-1.11x at d = 4; NumPy from 2^16)


KERNELS = ("tree", "scan", "dense", "hsr")  # every kernel a Decision may name
HSR_KERNELS = ("tree", "scan")  # those of an HSR block, the situations a Plan holds


@dataclass(frozen=True)
class Decision:
    """One choice of "auto": ``kernel`` answers ("tree" or "scan" for HSR blocks, "tree" or
    "dense" for attention, "hsr" for attention through the caller's backend or the cache's
    HSR), for the reason ``why``; ``seconds`` holds each raced candidate's median time (empty
    if no race ran). Checked on creation: a misspelt kernel would otherwise be taken silently
    for another."""

    kernel: str
    why: str
    seconds: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.kernel, str):
            raise TypeError(f"Decision.kernel must be a str, one of {list(KERNELS)}; got "
                            f"{type(self.kernel).__name__}")
        if self.kernel not in KERNELS:
            raise ValueError(f"Decision.kernel must be one of {list(KERNELS)}; got "
                             f"{self.kernel!r}")
        if not isinstance(self.why, str):
            raise TypeError(f"Decision.why must be a str (the reason); got "
                            f"{type(self.why).__name__}")
        if not isinstance(self.seconds, Mapping):
            raise TypeError(f"Decision.seconds must be a mapping of candidate name to median "
                            f"seconds; got {type(self.seconds).__name__}")
        for name, sec in self.seconds.items():
            if not isinstance(name, str) or isinstance(sec, bool) or not isinstance(
                    sec, (int, float)):
                raise TypeError(f"Decision.seconds must map candidate names (str) to seconds "
                                f"(float); got {name!r}: {sec!r}")
            if not (math.isfinite(sec) and sec >= 0):
                raise ValueError(f"Decision.seconds[{name!r}] must be a finite time >= 0; got "
                                 f"{sec!r}")
        object.__setattr__(self, "seconds", dict(self.seconds))  # its own copy

    def __str__(self) -> str:
        return f"{self.kernel}: {self.why}"


class Plan:
    """Every ``Decision`` "auto" took for one structure, by situation (``Plan.situation``).

    ``race=False``: situations not yet decided are decided by the rules alone (the prior where
    a race would run), so a plan that was copied or built by hand is followed reproducibly.

    Examples
    --------
    >>> import numpy as np
    >>> from hsr_lab import HSR
    >>> keys = np.random.default_rng(0).standard_normal((5000, 2))
    >>> print(HSR(keys, plan=Plan(race=False)).plan)
    Plan(fixed, 1 decisions):
      query, float64, n in [2^12, 2^13): tree: no race in a fixed plan: the prior
    >>> print(HSR(keys[:100]).plan)
    Plan(racing, 1 decisions):
      query, float64, n in [2^6, 2^7): scan: n < MIN_N = 4096: a query takes microseconds either way
    """

    def __init__(self, decisions: Mapping[str, Decision] | None = None, race: bool = True
                 ) -> None:
        if decisions is not None and not isinstance(decisions, Mapping):
            raise TypeError(f"Plan.decisions must be a mapping of situation to Decision, or "
                            f"None; got {type(decisions).__name__}")
        if not isinstance(race, (bool, np.bool_)):
            raise TypeError(f"Plan.race must be True or False; got {race!r}")
        self.decisions: dict[str, Decision] = dict(decisions or {})
        for key, decision in self.decisions.items():
            _check_decision(key, decision)
        self.race = bool(race)

    @staticmethod
    def situation(kind: str, dtype: np.dtype, n: int, m: int = 1) -> str:
        """The key of a decision: lone queries or a batch size class, over blocks of one dtype
        and size class (``"query, float32, n in [2^20, 2^21)"``)."""
        j = max(n, 1).bit_length() - 1
        where = f"{np.dtype(dtype).name}, n in [2^{j}, 2^{j + 1})"
        if kind == "query":
            return f"query, {where}"
        i = min(m, RACE_ROWS).bit_length() - 1
        rows = f"m >= {2**i}" if 2**i == RACE_ROWS else f"m in [{2**i}, {2**(i + 1)})"
        return f"batch {rows}, {where}"

    def decide(self, situation: str, rule: Decision | None,
               candidates: Callable[[], Mapping[str, Callable[[], object]]]) -> Decision:
        """The decision for a situation: the one already taken, else the rule's, else a race
        of ``candidates()`` (or, without racing, the prior), kept for next time."""
        if situation not in self.decisions:
            if rule is None and not self.race:
                rule = Decision("tree", "no race in a fixed plan: the prior")
            self.decisions[situation] = rule or settle(race(candidates()))
        return self.decisions[situation]

    def copy(self) -> Plan:
        """A copy, with its own dict of decisions."""
        return Plan(self.decisions, self.race)

    def fixed(self) -> Plan:
        """A copy that never races: ``HSR(K, plan=other.plan.fixed())`` repeats ``other``'s
        choices, and takes the rules' for the situations ``other`` never met."""
        return Plan(self.decisions, race=False)

    def __repr__(self) -> str:
        lines = [f"  {key}: {decision}" for key, decision in self.decisions.items()]
        head = f"Plan({'racing' if self.race else 'fixed'}, {len(lines)} decisions)"
        return "\n".join([head + (":" if lines else ""), *lines])


def _check_decision(situation: object, decision: object) -> None:
    """A plan's entry: a situation as ``Plan.situation`` names it, and a ``Decision`` for an
    HSR block ("tree" or "scan")."""
    if not isinstance(situation, str) or not situation.startswith(("query, ", "batch m ")):
        raise ValueError(f"Plan.decisions keys must be situations as Plan.situation names them "
                         f"(e.g. 'query, float64, n in [2^12, 2^13)'); got {situation!r}")
    if not isinstance(decision, Decision):
        raise TypeError(f"Plan.decisions[{situation!r}] must be a Decision; got "
                        f"{type(decision).__name__}")
    if decision.kernel not in HSR_KERNELS:
        raise ValueError(f"Plan.decisions[{situation!r}].kernel must be one of "
                         f"{list(HSR_KERNELS)} (an HSR block's); got {decision.kernel!r}")


# -- races ----------------------------------------------------------------------------------
def interleaved_calls(candidates: Mapping[str, Callable[[], object]], rounds: int = ROUNDS
                      ) -> dict[str, list[float]]:
    """The wall-clock seconds of each call of each candidate over ``rounds`` rounds: each round
    calls every candidate once, the order reversed every other round, so that a busy machine
    slows them alike."""
    names = list(candidates)
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            start = time.perf_counter()
            candidates[name]()
            times[name].append(time.perf_counter() - start)
    return times


def race(candidates: Mapping[str, Callable[[], object]], rounds: int = ROUNDS
         ) -> dict[str, float]:
    """The median wall-clock seconds of each candidate over ``rounds`` interleaved rounds
    (``interleaved_calls``): one disturbed call moves no median much."""
    return {name: float(np.median(t))
            for name, t in interleaved_calls(candidates, rounds).items()}


def settle(seconds: Mapping[str, float], prior: str = "tree") -> Decision:
    """The race's decision: the fastest median if it beats the prior's by ``MARGIN``, else the
    prior (which must be a candidate)."""
    best = min(seconds, key=seconds.__getitem__)
    kernel = best if seconds[best] * MARGIN < seconds[prior] else prior
    timing = ", ".join(f"{name} {1e3 * sec:.3g} ms" for name, sec in seconds.items())
    if kernel == best:
        why = f"fastest in a race ({timing}; medians of {ROUNDS} rounds)"
    else:
        why = (f"kept: {best} was not {MARGIN:g}x faster in a race ({timing}; medians of "
               f"{ROUNDS} rounds)")
    return Decision(kernel, why, dict(seconds))


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


def sample_rows(m: int, count: int = RACE_ROWS) -> np.ndarray:
    """``count`` rows of an m-row batch, spread evenly (all of them if m <= count)."""
    return np.unique(np.linspace(0, m - 1, min(m, count)).astype(np.int64))


# -- backends -------------------------------------------------------------------------------
def check_backend(backend: object, d: int | None = None) -> str:
    """The backend name, validated: "auto" or a key of ``BACKENDS``; "layers" needs d = 2."""
    if not isinstance(backend, str) or backend not in ("auto", *BACKENDS):
        raise ValueError(f"backend must be one of {['auto', *BACKENDS]}; got {backend!r}")
    if backend == "layers" and d is not None and d != 2:
        raise ValueError(f"backend 'layers' works in the plane only (d = 2); got d = {d}")
    return backend


def kernels(backend: str, plan: Plan | None = None) -> Fixed | Auto:
    """How an ``HSR`` builds and asks its blocks: ``Auto`` (racing, or following ``plan``)
    for "auto", else ``Fixed`` to one backend. The one place where "auto" is resolved for HSR."""
    if backend == "auto":
        return Auto(plan)
    if plan is not None:
        raise ValueError(f"plan applies to backend='auto' only; got backend={backend!r}")
    return Fixed(BACKENDS[backend])


class Fixed:
    """An explicit backend: every block is one, asked directly."""

    def __init__(self, backend: type[StaticIndex]) -> None:
        self.backend, self.plan = backend, None

    def build(self, points: np.ndarray, ids: np.ndarray, leaf_size: int) -> StaticIndex:
        return self.backend(points, ids, leaf_size)

    @staticmethod
    def ask_many(block: StaticIndex, A: np.ndarray, t: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray, BatchQueryStats]:
        return block.query_many(A, t, sort=False)

    nbytes = 0


class Auto:
    """``backend="auto"``: the ``Plan``, and how blocks are built and batches asked under it."""

    def __init__(self, plan: Plan | None = None) -> None:
        self.plan = Plan() if plan is None else plan.copy()
        # The scan of each tree block that a batch decision gave to the scan: the tree's own
        # points, its ids unpacked (weak keys: it goes with its block).
        self._scans: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    def build(self, points: np.ndarray, ids: np.ndarray, leaf_size: int) -> StaticIndex:
        """One block over these points: the tree or the scan, as the plan decides for its lone
        queries (racing both on the first block of its size class)."""
        n, d = points.shape
        rule = None
        if n < MIN_N:
            rule = Decision("scan", f"n < MIN_N = {MIN_N}: a query takes microseconds either way")
        elif d > MAX_D:
            rule = Decision("scan", f"d > MAX_D = {MAX_D}: the box test prunes nothing")
        built: dict[str, StaticIndex] = {}

        def block(kernel: str) -> StaticIndex:
            if kernel not in built:
                built[kernel] = (TREE if kernel == "tree" else BruteForce)(points, ids, leaf_size)
            return built[kernel]

        def candidates() -> dict[str, Callable[[], object]]:
            queries = list(zip(*sample_queries(points), strict=True))
            tree, scan = block("tree"), block("scan")
            return {"tree": lambda: [_answer(tree, a, t) for a, t in queries],
                    "scan": lambda: [_answer(scan, a, t) for a, t in queries]}

        decision = self.plan.decide(Plan.situation("query", points.dtype, n), rule, candidates)
        return block(decision.kernel)

    def ask_many(self, block: StaticIndex, A: np.ndarray, t: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray, BatchQueryStats]:
        """``block.query_many(A, t)`` (rows unsorted), by the tree's walk or a scan of its
        arrays, as the plan decides for this batch size class."""
        if not isinstance(block, NumpyKDTree) or len(A) < 2:
            return block.query_many(A, t, sort=False)
        rows = sample_rows(len(A))

        def candidates() -> dict[str, Callable[[], object]]:
            return {"tree": lambda: block.query_many(A[rows], t[rows], sort=False),
                    "scan": lambda: self._scan(block).query_many(A[rows], t[rows], sort=False)}

        situation = Plan.situation("batch", block.points.dtype, len(block), len(A))
        decision = self.plan.decide(situation, None, candidates)
        kernel = block if decision.kernel == "tree" else self._scan(block)
        return kernel.query_many(A, t, sort=False)

    def _scan(self, tree: NumpyKDTree) -> BruteForce:
        """A scan over the tree's own arrays (no second copy of the keys)."""
        if tree not in self._scans:
            self._scans[tree] = BruteForce.over(tree.points, tree.ids)
        return self._scans[tree]

    @property
    def nbytes(self) -> int:
        """Bytes of the scans' unpacked ids (the points are the trees')."""
        return sum(scan.ids.nbytes for scan in self._scans.values()
                   if scan.ids.base is None)  # a compiled tree's, unpacked; not a view


def _answer(block: StaticIndex, a: np.ndarray, t: float) -> np.ndarray:
    """The ids ``HSR.query`` returns from this block alone: ascending (a tree's sorted)."""
    found = block.query(a, t)[0]
    if block.ascending or not len(found):
        return found
    return ascending(found, int(found.max()) + 1)


# -- attention ------------------------------------------------------------------------------
def prefill(backend: str, m: int, n: int, d: int, work: int,
            candidates: Callable[[int], Mapping[str, Callable[[], object]]]) -> Decision:
    """The kernel of attention over a batch of m rows and n keys of dimension d, whose dense
    kernel takes ``work`` products: "tree" (HSR structures of ``hsr.TREE``), "dense", or
    for an explicit backend "hsr" (structures of that backend). ``candidates(rows)`` gives the
    race's two kernels ("tree", "dense"), each computing the same ``rows`` rows of the batch
    (``sample_rows``)."""
    if backend != "auto":
        return Decision("hsr", f"backend={backend!r}, the caller's")
    if d > MAX_D:
        return Decision("dense", f"d > MAX_D = {MAX_D}: the box test prunes nothing")
    if m < ROWS_PER_LEVEL * math.log2(max(n, 2)):
        return Decision("dense", f"m < ROWS_PER_LEVEL log2(n) = {ROWS_PER_LEVEL} log2({n}): "
                        "too few rows to pay for a tree")
    rows = min(m, max(RACE_ROWS, -(-RACE_WORK // n)))
    if 2 * ROUNDS * rows * n > RACE_SHARE * work:  # the race would cost too much: a rule
        if d <= SURE_D:
            return Decision("tree", f"d <= {SURE_D}: the tree beat dense in every measured "
                            f"cell, and a race would cost over {RACE_SHARE:.0%} of this batch")
        return Decision("dense", f"d > {SURE_D} and a race would cost over {RACE_SHARE:.0%} "
                        "of this batch")
    return settle(race(candidates(rows)))


def structures(backend: str) -> str:
    """The backend of the HSR structures attention builds: ``hsr.TREE``'s for "auto" (whose
    choice of tree over dense ``prefill`` has made), else the caller's."""
    return TREE.name if backend == "auto" else backend


def decode(backend: str, n: int, d: int) -> Decision:
    """The kernel of one decoding step over n keys of dimension d: "hsr" (the cache's HSR,
    whose blocks "auto" plans) or "dense"."""
    if backend != "auto":
        return Decision("hsr", f"backend={backend!r}, the caller's")
    if n < DECODE_MIN_KEYS:
        return Decision("dense", f"n < DECODE_MIN_KEYS = {DECODE_MIN_KEYS}")
    if n * d >= DECODE_MIN_WORK:
        return Decision("hsr", f"n d >= DECODE_MIN_WORK = {DECODE_MIN_WORK}: its HSR structure "
                        "(whose blocks are planned)")
    if d <= SURE_D and n >= DECODE_TREE_KEYS:
        return Decision("hsr", f"d <= {SURE_D} and n >= DECODE_TREE_KEYS = {DECODE_TREE_KEYS}: "
                        "its HSR structure (whose blocks are planned)")
    return Decision("dense", f"n d < DECODE_MIN_WORK = {DECODE_MIN_WORK}")
