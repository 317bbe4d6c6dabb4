"""The dense scan ``K @ a >= t``: the oracle every structure is tested against, and the baseline."""

from __future__ import annotations

import numpy as np

from ._stats import QueryStats


class BruteForce:
    """Scores every point with one matrix-vector product: O(n d) per query, no pruning."""

    name = "brute"

    def __init__(self, points: np.ndarray, ids: np.ndarray, leaf_size: int) -> None:
        self.points = np.array(points, dtype=np.float64, order="C")
        self._ids = np.array(ids, dtype=np.int64)

    def query(self, a: np.ndarray, t: float) -> tuple[np.ndarray, QueryStats]:
        """Ids of every point with ``<a, x> >= t``: the scan itself."""
        found = self._ids[np.flatnonzero(self.points @ a >= t)]
        n = len(self._ids)
        return found, QueryStats(inner_products=n, points_reported=len(found))

    def items(self) -> tuple[np.ndarray, np.ndarray]:
        """All stored points and their ids."""
        return self.points, self._ids

    def __len__(self) -> int:
        return len(self._ids)

    @property
    def depth(self) -> int:
        """A scan has no tree: depth 0."""
        return 0

    @property
    def nbytes(self) -> int:
        """Bytes of the stored points and ids."""
        return self.points.nbytes + self._ids.nbytes

    def __repr__(self) -> str:
        return f"BruteForce(n={len(self)}, d={self.points.shape[1]})"
