"""The interface every static half-space reporting structure implements.

``HSR`` (in ``structure.py``) is dynamic: it keeps a few static blocks (the logarithmic method)
and merges them as points are added. Each block is one ``StaticIndex``; the backends differ only
in how a block answers a query.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from ._stats import BatchQueryStats, QueryStats
from .csr import indptr_of


@dataclass
class Node:
    """One cell of the kd-tree: its points are ``points[start:stop]`` of the tree."""

    center: list[float]
    half: list[float]
    rad: float  # sum_i max(|lo_i|, |hi_i|): an upper bound on sum_i |x_i| over the box
    start: int
    stop: int
    left: Node | None = None
    right: Node | None = None

    @property
    def is_leaf(self) -> bool:
        return self.left is None


class StaticIndex(Protocol):
    """A static structure over m points of R^d, each carrying a stable int64 id.

    Contract, shared by every backend:
    - ``__init__(points, ids, leaf_size)``: points is a finite float64 (m, d) array with m >= 1,
      ids an int64 (m,) array; neither is modified nor kept by reference if the structure
      reorders it.
    - ``query(a, t)`` returns ``(ids, stats)``: the ids (int64, no repeats; ascending if
      ``ascending``, else in any order) of every point x with ``<a, x> >= t`` (closed
      half-space), and the ``QueryStats`` of the query.
    - ``query_many(A, t, sort)`` answers ``query(A[i], t[i])`` for the m rows of A (t an (m,)
      array) as ``(indptr, ids, stats)``: row i's ids are ``ids[indptr[i]:indptr[i + 1]]``
      (ascending if ``sort`` or ``ascending``), stats a ``BatchQueryStats``.
      ``query_many_by_loop`` is the plain loop that backends without a batched walk use.
    - ``items()`` returns ``(points, ids)`` of every stored point as arrays, in any order (used
      to merge and rebuild blocks); ``points`` and ``ids`` are the same, as the block stores
      them (its own order; lists of floats and ints in the pure-Python reference), not copied.
    """

    name: str  # the backend's name, as HSR(..., backend=name) asks for it
    ascending: bool  # whether query (and query_many, unsorted) list each answer ascending

    def __init__(self, points: np.ndarray, ids: np.ndarray, leaf_size: int) -> None: ...

    @property
    def points(self) -> np.ndarray | list[list[float]]: ...

    @property
    def ids(self) -> np.ndarray | list[int]: ...

    def query(self, a: np.ndarray, t: float) -> tuple[np.ndarray, QueryStats]: ...

    def query_many(self, A: np.ndarray, t: np.ndarray | float, sort: bool = True
                   ) -> tuple[np.ndarray, np.ndarray, BatchQueryStats]: ...

    def items(self) -> tuple[np.ndarray, np.ndarray]: ...

    def __len__(self) -> int: ...

    @property
    def depth(self) -> int: ...

    @property
    def nbytes(self) -> int: ...


def query_many_by_loop(index: StaticIndex, A: np.ndarray, t: np.ndarray | float,
                       sort: bool = True) -> tuple[np.ndarray, np.ndarray, BatchQueryStats]:
    """``query_many`` as a plain loop over ``index.query``, one row of A at a time."""
    t = np.broadcast_to(np.asarray(t, dtype=np.float64), (len(A),))
    answers = [index.query(a, float(t_i)) for a, t_i in zip(A, t, strict=True)]
    ids = [np.sort(found) if sort else found for found, _ in answers]
    indptr = indptr_of(np.array([len(found) for found in ids], dtype=np.int64))
    flat = np.concatenate(ids) if ids else np.zeros(0, dtype=np.int64)
    return indptr, flat.astype(np.int64), BatchQueryStats.stack([cost for _, cost in answers])
