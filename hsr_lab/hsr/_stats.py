"""Machine-independent cost counters of one half-space query."""

from __future__ import annotations

from dataclasses import dataclass, fields


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
        return QueryStats(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))
