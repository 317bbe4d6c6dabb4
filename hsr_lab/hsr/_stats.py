"""Machine-independent cost counters of one half-space query."""

from __future__ import annotations

from dataclasses import dataclass


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
