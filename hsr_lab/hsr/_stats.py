"""Machine-independent cost counters of one half-space query, and of a batch of them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

import numpy as np


@dataclass
class QueryStats:
    """What one ``query(a, t)`` cost, counted rather than timed.

    nodes_visited: tree nodes (or convex layers) whose bound was tested, O(d) each.
    nodes_pruned: visited nodes whose box lies outside the half-space (skipped).
    nodes_reported: visited nodes whose box lies inside (reported whole, points not tested).
    inner_products: points x whose score <a, x> was computed.
    points_reported: k, the number of ids returned.
    """

    nodes_visited: int = 0
    nodes_pruned: int = 0
    nodes_reported: int = 0
    inner_products: int = 0
    points_reported: int = 0

    @property
    def work(self) -> int:
        """Total O(d) operations: box tests plus point inner products."""
        return self.nodes_visited + self.inner_products

    def __add__(self, other: QueryStats) -> QueryStats:
        # Spelled out: this runs once per block per query, where dataclasses.fields() is slow.
        return QueryStats(self.nodes_visited + other.nodes_visited,
                          self.nodes_pruned + other.nodes_pruned,
                          self.nodes_reported + other.nodes_reported,
                          self.inner_products + other.inner_products,
                          self.points_reported + other.points_reported)


@dataclass(eq=False)
class BatchQueryStats:
    """The ``QueryStats`` of m queries answered together (``query_many``): one int64 array
    (m,) per counter, with the same meanings. ``stats[i]`` is query i's ``QueryStats``."""

    nodes_visited: np.ndarray
    nodes_pruned: np.ndarray
    nodes_reported: np.ndarray
    inner_products: np.ndarray
    points_reported: np.ndarray

    @classmethod
    def zeros(cls, m: int) -> BatchQueryStats:
        """Counters of m queries that did nothing yet."""
        return cls(*(np.zeros(m, dtype=np.int64) for _ in _COUNTERS))

    @classmethod
    def concat(cls, parts: Sequence[BatchQueryStats]) -> BatchQueryStats:
        """The counters of several batches, queries stacked in order."""
        return cls(*(np.concatenate([getattr(p, name) for p in parts]) for name in _COUNTERS))

    @classmethod
    def stack(cls, rows: Sequence[QueryStats]) -> BatchQueryStats:
        """The counters of single queries, one row each."""
        return cls(*(np.array([getattr(r, name) for r in rows], dtype=np.int64)
                     for name in _COUNTERS))

    def __len__(self) -> int:
        return len(self.nodes_visited)

    def __getitem__(self, i: int) -> QueryStats:
        return QueryStats(*(int(getattr(self, name)[i]) for name in _COUNTERS))

    def __add__(self, other: BatchQueryStats) -> BatchQueryStats:
        return BatchQueryStats(*(getattr(self, name) + getattr(other, name)
                                 for name in _COUNTERS))

    @property
    def work(self) -> np.ndarray:
        """Per query, box tests plus point inner products."""
        return self.nodes_visited + self.inner_products

    def total(self) -> QueryStats:
        """The counters summed over the m queries."""
        return QueryStats(*(int(getattr(self, name).sum()) for name in _COUNTERS))

    def __repr__(self) -> str:
        return f"BatchQueryStats(queries={len(self)}, total={self.total()})"


_COUNTERS = tuple(f.name for f in fields(QueryStats))
