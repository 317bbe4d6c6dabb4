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

from functools import partial

import numpy as np

from ..validate import as_matrix, as_positive_int, as_scalar, as_scalar_or_vector, as_vector
from . import auto
from ._base import StaticIndex
from ._stats import BatchQueryStats, QueryStats
from .brute import BruteForce
from .compiled import CompiledKDTree
from .csr import concat_rows, keep_rows, sort_rows
from .kdtree import NumpyKDTree
from .layers import ConvexLayers
from .numerics import MAX_COORD, MAX_PRODUCT, abs_max
from .reference import ReferenceKDTree

BACKENDS: dict[str, type[StaticIndex]] = {
    "numpy": NumpyKDTree,
    "compiled": CompiledKDTree,  # needs Numba (pip install 'hsr_lab[fast]')
    "reference": ReferenceKDTree,
    "brute": BruteForce,
    "layers": ConvexLayers,
}
DEFAULT_LEAF_SIZE = 32
# float32 leaves cost half the memory traffic per point, and bigger leaves mean fewer levels
# of per-level NumPy calls: 128 was fastest or within noise of it at d = 2 .. 4, n = 2^22
# (measured with the NumPy walk; the compiled walk, which pays no per-call cost, keeps it).
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
        is installed) and the scans by timing them: on
        sample queries, then on the first lone queries asked (``auto.trial_block``), and again
        per batch size class for ``query_many`` (``auto.query_many``).
    leaf_size : positive int, the most points a kd-tree leaf holds (default
        ``DEFAULT_LEAF_SIZE`` = 32 for float64 keys, ``DEFAULT_LEAF_SIZE32`` = 128 for float32).
    """

    def __init__(self, points: object, backend: str = "auto",
                 leaf_size: int | None = None) -> None:
        if not isinstance(backend, str) or backend not in ("auto", *BACKENDS):
            raise ValueError(f"backend must be one of {['auto', *BACKENDS]}; got {backend!r}")
        pts = as_matrix("points", points, keep_float32=True, exact=True)
        self.dtype = np.dtype(pts.dtype)
        if leaf_size is None:
            leaf_size = DEFAULT_LEAF_SIZE32 if self.dtype == np.float32 else DEFAULT_LEAF_SIZE
        self.leaf_size = as_positive_int("leaf_size", leaf_size)
        if backend == "layers" and pts.shape[1] != 2:
            raise ValueError("backend 'layers' works in the plane only (d = 2); "
                             f"got d = {pts.shape[1]}")
        self.backend = backend
        self.d = pts.shape[1]
        self._blocks: list[StaticIndex] = []
        # Alive flag per id, with spare capacity; None until the first delete: every id is
        # alive, and a structure that never deletes holds no table (n bytes, 1/8 of float32
        # keys at d = 2).
        self._flags: np.ndarray | None = None
        self._n_ids = 0  # ids handed out so far
        self._n_dead = 0  # deleted points still stored in some block
        self._size = 0  # live points
        self._max_abs = 0.0
        self.add(pts)

    # -- updates -----------------------------------------------------------------------------
    def add(self, points: object) -> np.ndarray:
        """Insert points (m x d); return their new ids ``n_total .. n_total + m - 1``."""
        pts = self._as_dtype(as_matrix("points", points, d=self.d, allow_empty=True,
                                       keep_float32=True, exact=True))
        if len(pts) == 0:
            return np.zeros(0, dtype=np.int64)
        largest = float(np.abs(pts).max())
        if largest > MAX_COORD:  # refused before any state changes: a failed add changes nothing
            raise ValueError(f"points must have coordinates of magnitude at most {MAX_COORD:g} "
                             f"(larger inner products would overflow float64); got {largest:g}")
        ids = np.arange(self._n_ids, self._n_ids + len(pts), dtype=np.int64)
        block = self._build(pts, ids)
        self._max_abs = max(self._max_abs, largest)
        if self._flags is not None:
            if self._n_ids + len(pts) > len(self._flags):  # grow by doubling: O(1) amortised
                grown = np.zeros(max(2 * len(self._flags), self._n_ids + len(pts)), dtype=bool)
                grown[: self._n_ids] = self._alive
                self._flags = grown
            self._flags[self._n_ids : self._n_ids + len(pts)] = True
        self._n_ids += len(pts)
        self._size += len(pts)
        self._blocks.append(block)
        while len(self._blocks) >= 2 and len(self._blocks[-2]) <= 2 * len(self._blocks[-1]):
            newer, older = self._blocks.pop(), self._blocks.pop()
            self._blocks.append(self._merge([older, newer]))
        return ids

    def delete(self, ids: object) -> None:
        """Remove the points with these ids (each must be stored and alive, and given once)."""
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
        alive = self._alive  # before the first delete, a fresh all-True table
        gone = arr[~alive[arr]]
        if len(gone):
            raise ValueError(f"ids already deleted: {gone[:5].tolist()}")
        if self._flags is None:  # the first delete: that table is kept from now on
            self._flags = alive
        alive[arr] = False
        self._n_dead += len(arr)
        self._size -= len(arr)
        if self._n_dead > len(self):  # rebuild from the live points; nothing dead remains
            self._blocks = [self._merge(self._blocks)] if len(self) else []
            self._n_dead = 0

    def _as_dtype(self, points: np.ndarray) -> np.ndarray:
        """The points in the stored dtype. Points that are not float32 values (they would
        round) turn an HSR over float32 keys into one over float64 keys, every block rebuilt:
        answers are always about the values given, never about rounded ones."""
        if points.dtype == self.dtype:
            return points
        cast = points.astype(self.dtype)
        if self.dtype == np.float32 and not np.array_equal(cast, points):
            self.dtype = np.dtype(np.float64)
            rebuilt = []
            for block in self._blocks:
                stored, ids = block.items()
                rebuilt.append(self._build(stored.astype(np.float64), ids))
            self._blocks = rebuilt
            return points.astype(np.float64)
        return cast

    def _build(self, points: np.ndarray, ids: np.ndarray) -> StaticIndex:
        """One static block over the given points."""
        if self.backend == "auto":
            return auto.trial_block(points, ids, self.leaf_size)
        return BACKENDS[self.backend](points, ids, self.leaf_size)

    def _merge(self, blocks: list[StaticIndex]) -> StaticIndex:
        """Rebuild several blocks as one, dropping dead points."""
        pairs = [block.items() for block in blocks]
        points = np.concatenate([p for p, _ in pairs]).astype(self.dtype, copy=False)
        ids = np.concatenate([i for _, i in pairs])
        if not self._n_dead:
            return self._build(points, ids)
        keep = self._alive[ids]
        self._n_dead -= int(np.count_nonzero(~keep))
        return self._build(points[keep], ids[keep])

    # -- queries -----------------------------------------------------------------------------
    def query(self, a: object, t: object, stats: bool = False
              ) -> np.ndarray | tuple[np.ndarray, QueryStats]:
        """Sorted int64 ids of every stored x with ``<a, x> >= t``; with ``stats=True`` also
        the ``QueryStats`` (nodes visited, inner products, points reported)."""
        a_vec = as_vector("a", a, d=self.d, exact=True)
        t_val = as_scalar("t", t, exact=True)
        self._check_magnitude("a", a_vec)
        answers = [block.query(a_vec, t_val) for block in self._blocks]
        if len(answers) == 1:  # one block (the usual case): its fresh arrays, no copy
            ids, total = answers[0]
        else:
            ids = np.concatenate([np.zeros(0, dtype=np.int64)] + [i for i, _ in answers])
            total = sum((cost for _, cost in answers), QueryStats())
        if self._n_dead:
            ids = ids[self._alive[ids]]
        ordered = len(self._blocks) == 1 and getattr(self._blocks[0], "ascending", False)
        if not ordered and self._n_ids < 2**31:  # int32 sorts faster
            ids = np.sort(ids.astype(np.int32)).astype(np.int64)
        elif not ordered:
            ids.sort()
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
        """
        A_mat = as_matrix("A", A, d=self.d, allow_empty=True, exact=True)
        t_vec = as_scalar_or_vector("t", t, m=len(A_mat), exact=True)
        self._check_magnitude("A", A_mat)
        if not isinstance(sort, bool | np.bool_):
            raise TypeError(f"sort must be True or False; got {sort!r}")
        each_sorted = bool(sort) and len(self._blocks) == 1  # else sorted once, after merging
        ask = (partial(auto.query_many, leaf_size=self.leaf_size) if self.backend == "auto"
               else type(self)._ask_block)
        answers = [ask(block, A_mat, t_vec, sort=each_sorted) for block in self._blocks]
        indptr, ids = np.zeros(len(A_mat) + 1, dtype=np.int64), np.zeros(0, dtype=np.int64)
        if answers:  # (every point deleted: no block at all)
            indptr, ids = concat_rows([(ptr, found) for ptr, found, _ in answers])
        total = BatchQueryStats.zeros(len(A_mat))
        for _, _, cost in answers:
            total = total + cost
        if self._n_dead:
            indptr, ids = keep_rows(indptr, ids, self._alive[ids])
        if sort and not each_sorted:
            ids = sort_rows(indptr, ids)
        total.points_reported = np.diff(indptr)
        return (indptr, ids, total) if stats else (indptr, ids)

    @staticmethod
    def _ask_block(block: StaticIndex, A: np.ndarray, t: np.ndarray, sort: bool
                   ) -> tuple[np.ndarray, np.ndarray, BatchQueryStats]:
        """``block.query_many``: how every backend but "auto" answers a batch."""
        return block.query_many(A, t, sort)

    def _check_magnitude(self, name: str, queries: np.ndarray) -> None:
        """Refuse query vectors whose inner products with the points could overflow float64."""
        if abs_max(queries.ravel()) * self._max_abs * self.d > MAX_PRODUCT:
            raise ValueError(f"{name} is too large for these points: <a, x> would overflow "
                             "float64")

    @property
    def _alive(self) -> np.ndarray:
        """Alive flag of every id handed out so far (a view: writes go through; all True,
        a fresh array, before the first delete)."""
        if self._flags is None:
            return np.ones(self._n_ids, dtype=bool)
        return self._flags[: self._n_ids]

    # -- description -------------------------------------------------------------------------
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
        """Bytes held by every block (their copies of the points included) and the table of
        deleted ids (from the first delete on)."""
        flags = 0 if self._flags is None else self._flags.nbytes
        return sum(block.nbytes for block in self._blocks) + flags

    def __repr__(self) -> str:
        n = len(self)
        keys = max(1, n * self.d * self.dtype.itemsize)
        kinds = sorted({block.name for block in self._blocks})
        return (f"HSR(backend={self.backend!r} [{', '.join(kinds)}], n={n}, d={self.d}, "
                f"dtype={self.dtype}, "
                f"blocks={[len(b) for b in self._blocks]}, depth={self.depth}, "
                f"memory={self.nbytes / 2**20:.2f} MiB = {self.nbytes / keys:.2f}x the keys)")
