"""``HSR``: half-space reporting over a point set that grows and shrinks.

``query(a, t)`` returns every stored point x with ``<a, x> >= t`` (the closed half-space);
``query_many(A, t)`` answers ``query(A[i], t[i])`` for the m rows of A at once (the NumPy
kd-tree walks them together, level by level; the compiled one loops over them in one compiled
call; the other backends loop in Python) and returns the answers
as one CSR pair ``(indptr, ids)``: row i's ids are ``ids[indptr[i]:indptr[i + 1]]``.

Updates use the logarithmic method (Bentley and Saxe, 1980). The points live in a few static
blocks (``StaticIndex``: kd-trees, convex layers or a plain scan) whose sizes at least double
from the newest block to the oldest, so there are O(log n) of them:

- ``add(points)`` puts the new points in a block of their own, then merges the two newest
  blocks while the older one is at most twice the newer. Every point takes part in O(log n)
  merges, so with an O(m log m) build an insertion costs O(log^2 n) amortised; a decoding step
  that appends one key usually rebuilds only a few tiny blocks.
- ``delete(ids)`` marks the ids dead (queries filter them out); once more than half of the
  stored points are dead, every block is rebuilt from the live points, so a deletion costs
  O(log n) amortised and a query never does more than twice the work of a fresh structure.
- A query asks every block (O(log n) of them) and merges their answers; ``query_many`` asks
  every block for the whole batch and merges row by row.

Ids are stable: the i-th point ever added has id i, whatever is added or deleted later.
"""

from __future__ import annotations

import numpy as np

from ..validate import as_matrix, as_positive_int, as_scalar, as_scalar_or_vector, as_vector
from ._base import StaticIndex
from ._stats import BatchQueryStats, QueryStats
from .alive import AliveTable
from .csr import ascending, concat_rows, keep_rows, sort_rows
from .numerics import MAX_COORD, MAX_PRODUCT, abs_max
from .plan import BACKENDS, Plan, check_backend, kernels

__all__ = ["BACKENDS", "DEFAULT_LEAF_SIZE", "DEFAULT_LEAF_SIZE32", "HSR", "Plan"]

# Leaf sizes (benchmarks/bench_leaf_size.py, the compiled walk that "auto" builds, lone queries
# at n = 2^20 and 2^22, d = 2 to 8): for float64 keys no size from 16 to 256 beat 32 by more
# than the noise of a loaded machine (32 within 1.2x of the best in every cell), and the
# teaching notebooks' counters are those of 32; for float32 keys 128 was the best or within
# 1.06x of it (the NumPy walk found the same), and it keeps the compiled index at 1.49x the
# keys at d = 2 (64: 1.61x).
DEFAULT_LEAF_SIZE = 32
DEFAULT_LEAF_SIZE32 = 128


class HSR:
    """Half-space reporting: ``query(a, t)`` -> sorted ids of the points with ``<a, x> >= t``;
    ``query_many(A, t)`` -> the same for every row of A, as CSR ``(indptr, ids)``.

    Parameters
    ----------
    points : (n, d) array of float32 or float64 (ints are accepted), n >= 1, finite.
        Copied: the caller's array is never modified. float32 keys are stored and scored in
        float32 (``dtype``), anything else in float64 (``add`` of points that are not float32
        values turns the whole HSR to float64); either way a point is reported iff
        ``<a, x> >= t`` holds exactly, in real arithmetic on the stored values (the
        predicate of ``hsr.numerics``). Values are taken exactly or refused: points, a query or
        a threshold that float64 cannot hold (an int64 beyond 2^53 that rounds, a longdouble
        with more bits, a Python int or ``Fraction`` such as 1/3) raise ValueError rather than
        being rounded; pass ``float(t)`` to ask about the rounded value.
    backend : "auto" (default), "numpy", "compiled", "reference", "brute" or "layers" (d = 2
        only). "compiled" is the NumPy tree walked by compiled loops (needs Numba).
        "auto" picks per block between the kd-tree (``hsr.TREE``: the compiled one where Numba
        is installed) and the scan, by rules and races (``hsr.plan``); ``plan`` says what it
        chose, why, and the timings that decided.
    leaf_size : positive int, the most points a kd-tree leaf holds (default
        ``DEFAULT_LEAF_SIZE`` = 32 for float64 keys, ``DEFAULT_LEAF_SIZE32`` = 128 for float32).
    plan : a ``Plan`` for backend "auto" to start from: its decisions are kept, and the
        situations it lacks are raced only if ``plan.race``. ``other.plan.fixed()`` (or
        ``Plan(race=False)``, the rules alone) never races: the same inputs then get the same
        kernels, run after run.

    Every method that raises leaves the structure as it was.

    Examples
    --------
    Five points of the plane and the closed half-plane ``x_1 >= 1`` (a = (1, 0), t = 1);
    notebook 1 teaches the structure:

    >>> hsr = HSR([[0, 0], [1, 0], [2, 1], [1, 5], [-3, 2]], backend="numpy")
    >>> hsr.query([1.0, 0.0], 1.0)
    array([1, 2, 3])
    >>> hsr
    HSR(backend='numpy' [numpy], n=5, d=2, dtype=float64, blocks=[5], depth=0, memory=...)

    A threshold float64 cannot hold is refused, not rounded:

    >>> from fractions import Fraction
    >>> hsr.query([1.0, 0.0], Fraction(1, 3))
    Traceback (most recent call last):
    ...
    ValueError: t ...
    """

    def __init__(self, points: object, backend: str = "auto",
                 leaf_size: int | None = None, plan: Plan | None = None) -> None:
        pts = as_matrix("points", points, keep_float32=True, exact=True)
        self.backend = check_backend(backend, pts.shape[1])
        if plan is not None and not isinstance(plan, Plan):
            raise TypeError(f"plan must be a hsr_lab.hsr.Plan or None; got {type(plan).__name__}")
        self._kernels = kernels(self.backend, plan)
        self.dtype = np.dtype(pts.dtype)
        if leaf_size is None:
            leaf_size = DEFAULT_LEAF_SIZE32 if self.dtype == np.float32 else DEFAULT_LEAF_SIZE
        self.leaf_size = as_positive_int("leaf_size", leaf_size)
        self.d = pts.shape[1]
        self._blocks: list[StaticIndex] = []
        # Alive flags, from the first delete on (before it every id is alive, and a structure
        # that never deletes holds no table).
        self._table: AliveTable | None = None
        self._n_ids = 0  # ids handed out so far
        self._n_dead = 0  # deleted points still stored in some block
        self._size = 0  # live points
        self._max_abs = 0.0
        self.add(pts)

    # -- updates -----------------------------------------------------------------------------
    def add(self, points: object) -> np.ndarray:
        """Insert points (m x d); return their new ids ``n_total .. n_total + m - 1``.

        Everything is computed first and committed at the end, so a refused or failed add
        changes nothing (not even the dtype).

        Examples
        --------
        >>> hsr = HSR([[0.0, 0.0], [1.0, 0.0]])
        >>> hsr.add([[2.0, 2.0], [3.0, 3.0]])
        array([2, 3])
        >>> hsr.query([1.0, 1.0], 4.0)
        array([2, 3])
        """
        pts = as_matrix("points", points, d=self.d, allow_empty=True, keep_float32=True,
                        exact=True)
        if len(pts) == 0:
            return np.zeros(0, dtype=np.int64)
        largest = float(np.abs(pts).max())
        if largest > MAX_COORD:
            raise ValueError(f"points must have coordinates of magnitude at most {MAX_COORD:g} "
                             f"(larger inner products would overflow float64); got {largest:g}")
        decisions = dict(self._kernels.plan.decisions) if self._kernels.plan else None
        try:
            dtype = self._dtype_for(pts)
            blocks = self._blocks if dtype == self.dtype else [
                self._build(*_as(block.items(), dtype)) for block in self._blocks]
            ids = np.arange(self._n_ids, self._n_ids + len(pts), dtype=np.int64)
            blocks = [*blocks, self._build(pts.astype(dtype, copy=False), ids)]
            n_dead = self._n_dead
            while len(blocks) >= 2 and len(blocks[-2]) <= 2 * len(blocks[-1]):
                merged, dropped = self._merge(blocks[-2:], dtype)
                blocks, n_dead = [*blocks[:-2], merged], n_dead - dropped
        except BaseException:
            if decisions is not None:  # races run on the way: forget them too
                self._kernels.plan.decisions = decisions
            raise
        self.dtype, self._blocks, self._n_dead = dtype, blocks, n_dead
        self._n_ids += len(pts)
        self._size += len(pts)
        self._max_abs = max(self._max_abs, largest)
        if self._table is not None:
            self._table.extend(self._n_ids)
        return ids

    def delete(self, ids: object) -> None:
        """Remove the points with these ids (each must be stored and alive, and given once).

        Examples
        --------
        >>> hsr = HSR([[0.0, 0.0], [1.0, 0.0], [2.0, 2.0], [3.0, 3.0]])
        >>> hsr.delete([2])
        >>> hsr.query([1.0, 1.0], 4.0), len(hsr)  # ids stay stable: 3 is still 3
        (array([3]), 3)
        """
        arr = np.asarray(ids)
        if arr.size == 0 and arr.ndim == 1:
            return
        if arr.dtype.kind not in "iu" or arr.ndim > 1:
            raise TypeError(f"ids must be an integer or a 1-D array of integers; got {arr.dtype} "
                            f"with shape {arr.shape}")
        arr = arr.ravel()
        bad = arr[(arr < 0) | (arr >= self._n_ids)]  # compared in the caller's dtype
        if len(bad):
            raise ValueError(f"ids must be ids of stored points (0 .. {self._n_ids - 1}); "
                             f"got {bad[:5].tolist()}")
        arr = arr.astype(np.int64)
        if len(np.unique(arr)) != len(arr):
            raise ValueError("ids must not repeat an id")
        table = self._table or AliveTable(self._n_ids)
        gone = arr[~table.alive(arr)]
        if len(gone):
            raise ValueError(f"ids already deleted: {gone[:5].tolist()}")
        table.set(arr, False)
        try:
            blocks, n_dead = self._blocks, self._n_dead + len(arr)
            if n_dead > self._size - len(arr):  # rebuild from the live points
                blocks = [self._merge(self._blocks, self.dtype, table)[0]] if (
                    self._size - len(arr)) else []
                n_dead = 0
        except BaseException:
            table.set(arr, True)
            raise
        if not n_dead:  # nothing dead is stored: keep only the pages of live ids
            table.compact(np.concatenate([np.zeros(0, np.int64)]
                                         + [block.items()[1] for block in blocks]))
        self._table, self._blocks, self._n_dead = table, blocks, n_dead
        self._size -= len(arr)

    def _dtype_for(self, points: np.ndarray) -> np.dtype:
        """The dtype to store after adding these points: float64 once a point is not a float32
        value (it would round), so that answers are about the values given."""
        if self.dtype == np.float32 and points.dtype != np.float32 and not np.array_equal(
                points.astype(np.float32), points):
            return np.dtype(np.float64)
        return self.dtype

    def _build(self, points: np.ndarray, ids: np.ndarray) -> StaticIndex:
        """One static block over the given points."""
        return self._kernels.build(points, ids, self.leaf_size)

    def _merge(self, blocks: list[StaticIndex], dtype: np.dtype,
               table: AliveTable | None = None) -> tuple[StaticIndex, int]:
        """Several blocks rebuilt as one without their dead points, and how many were dropped."""
        pairs = [block.items() for block in blocks]
        points = np.concatenate([p for p, _ in pairs]).astype(dtype, copy=False)
        ids = np.concatenate([i for _, i in pairs])
        table = table or self._table
        if table is None:
            return self._build(points, ids), 0
        keep = ids >= table.n_ids  # the ids being added are alive; the others, as marked
        keep[~keep] = table.alive(ids[~keep])
        return self._build(points[keep], ids[keep]), int(np.count_nonzero(~keep))

    # -- queries -----------------------------------------------------------------------------
    def query(self, a: object, t: object, stats: bool = False, sort: bool = True
              ) -> np.ndarray | tuple[np.ndarray, QueryStats]:
        """Int64 ids of every stored x with ``<a, x> >= t``, ascending (``sort=False``: in the
        blocks' order, which saves the sort when the order does not matter); with
        ``stats=True`` also the ``QueryStats`` (nodes visited, inner products, points
        reported).

        Examples
        --------
        >>> hsr = HSR([[0, 0], [1, 0], [2, 1], [1, 5], [-3, 2]], backend="numpy")
        >>> ids, stats = hsr.query([1.0, 0.0], 1.0, stats=True)
        >>> ids, stats.points_reported, stats.inner_products  # one leaf: every point scored
        (array([1, 2, 3]), 3, 5)
        """
        a_vec = as_vector("a", a, d=self.d, exact=True)
        t_val = as_scalar("t", t, exact=True)
        _check_flag("sort", sort)
        self._check_magnitude("a", a_vec)
        answers = [block.query(a_vec, t_val) for block in self._blocks]
        if len(answers) == 1:  # one block (the usual case): its fresh arrays, no copy
            ids, total = answers[0]
        else:
            ids = np.concatenate([np.zeros(0, dtype=np.int64)] + [i for i, _ in answers])
            total = sum((cost for _, cost in answers), QueryStats())
        if self._n_dead and self._table is not None:  # a dead id implies a table
            ids = ids[self._table.alive(ids)]
        if sort and not self._ascending:
            ids = ascending(ids, self._n_ids)
        total.points_reported = len(ids)
        return (ids, total) if stats else ids

    def query_many(self, A: object, t: object, stats: bool = False, sort: bool = True
                   ) -> tuple[np.ndarray, np.ndarray] | tuple[np.ndarray, np.ndarray,
                                                              BatchQueryStats]:
        """``query(A[i], t[i])`` for the m rows of A (m x d) at once, in CSR form.

        t is one real for every row or an (m,) array. Returns ``(indptr, ids)``: the ids of
        every stored x with ``<A[i], x> >= t[i]`` are ``ids[indptr[i]:indptr[i + 1]]``, sorted
        as ``query`` sorts them (``sort=False`` leaves each row in the blocks' order, which
        saves a sort of all the ids when the order does not matter). With ``stats=True`` also
        the ``BatchQueryStats``: ``stats[i]`` is the ``QueryStats`` of ``query(A[i], t[i])``.

        Examples
        --------
        >>> hsr = HSR([[0, 0], [1, 0], [2, 1], [1, 5], [-3, 2]], backend="numpy")
        >>> indptr, ids = hsr.query_many([[1, 0], [0, 1]], [1, 2])  # x_1 >= 1, then x_2 >= 2
        >>> [ids[indptr[i]:indptr[i + 1]].tolist() for i in range(2)]
        [[1, 2, 3], [3, 4]]
        """
        A_mat = as_matrix("A", A, d=self.d, allow_empty=True, exact=True)
        t_vec = as_scalar_or_vector("t", t, m=len(A_mat), exact=True)
        self._check_magnitude("A", A_mat)
        _check_flag("sort", sort)
        answers = [self._kernels.ask_many(block, A_mat, t_vec) for block in self._blocks]
        indptr, ids = np.zeros(len(A_mat) + 1, dtype=np.int64), np.zeros(0, dtype=np.int64)
        if answers:  # (every point deleted: no block at all)
            indptr, ids = concat_rows([(ptr, found) for ptr, found, _ in answers])
        total = BatchQueryStats.zeros(len(A_mat))
        for _, _, cost in answers:
            total = total + cost
        if self._n_dead and self._table is not None:
            indptr, ids = keep_rows(indptr, ids, self._table.alive(ids))
        if sort and not self._ascending:
            ids = sort_rows(indptr, ids)
        total.points_reported = np.diff(indptr)
        return (indptr, ids, total) if stats else (indptr, ids)

    @property
    def _ascending(self) -> bool:
        """Whether the blocks' answers come ascending: one block that lists ascending ids."""
        return len(self._blocks) == 1 and self._blocks[0].ascending

    def _check_magnitude(self, name: str, queries: np.ndarray) -> None:
        """Refuse query vectors whose inner products with the points could overflow float64."""
        if abs_max(queries.ravel()) * self._max_abs * self.d > MAX_PRODUCT:
            raise ValueError(f"{name} is too large for these points: <a, x> would overflow "
                             "float64")

    # -- description -------------------------------------------------------------------------
    @property
    def plan(self) -> Plan | None:
        """What backend "auto" chose for each situation, why, and the timings that decided
        (None for an explicit backend). ``HSR(..., plan=hsr.plan.fixed())`` repeats it."""
        return self._kernels.plan

    def __len__(self) -> int:
        return self._size

    @property
    def blocks(self) -> tuple[StaticIndex, ...]:
        """The static blocks, oldest (largest) first."""
        return tuple(self._blocks)

    @property
    def depth(self) -> int:
        """Depth of the deepest block (tree levels, or convex layers)."""
        return max((block.depth for block in self._blocks), default=0)

    @property
    def nbytes(self) -> int:
        """Bytes held by every block (their copies of the points included), the table of
        deleted ids (from the first delete on) and what "auto" keeps beside the blocks."""
        table = 0 if self._table is None else self._table.nbytes
        return sum(block.nbytes for block in self._blocks) + table + self._kernels.nbytes

    def __repr__(self) -> str:
        n = len(self)
        keys = max(1, n * self.d * self.dtype.itemsize)
        kinds = sorted({block.name for block in self._blocks})
        return (f"HSR(backend={self.backend!r} [{', '.join(kinds)}], n={n}, d={self.d}, "
                f"dtype={self.dtype}, "
                f"blocks={[len(b) for b in self._blocks]}, depth={self.depth}, "
                f"memory={self.nbytes / 2**20:.2f} MiB = {self.nbytes / keys:.2f}x the keys)")


def _as(items: tuple[np.ndarray, np.ndarray], dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
    """A block's points (in ``dtype``) and ids."""
    points, ids = items
    return points.astype(dtype), ids


def _check_flag(name: str, value: object) -> None:
    if not isinstance(value, bool | np.bool_):
        raise TypeError(f"{name} must be True or False; got {value!r}")
