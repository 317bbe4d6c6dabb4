"""The interface every static half-space reporting structure implements.

``HSR`` (in ``structure.py``) is dynamic: it keeps a few static blocks (the logarithmic method)
and merges them as points are added. Each block is one ``StaticIndex``; the backends differ only
in how a block answers a query.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from ._stats import QueryStats


class StaticIndex(Protocol):
    """A static structure over m points of R^d, each carrying a stable int64 id.

    Contract, shared by every backend:
    - ``__init__(points, ids, leaf_size)``: points is a finite float64 (m, d) array with m >= 1,
      ids an int64 (m,) array; neither is modified nor kept by reference if the structure
      reorders it.
    - ``query(a, t)`` returns ``(ids, stats)``: the ids (int64, any order, no repeats) of every
      point x with ``<a, x> >= t`` (closed half-space), and the ``QueryStats`` of the query.
    - ``items()`` returns ``(points, ids)`` of every stored point, in any order (used to merge
      and rebuild blocks).
    """

    name: str

    def __init__(self, points: np.ndarray, ids: np.ndarray, leaf_size: int) -> None: ...

    def query(self, a: np.ndarray, t: float) -> tuple[np.ndarray, QueryStats]: ...

    def items(self) -> tuple[np.ndarray, np.ndarray]: ...

    def __len__(self) -> int: ...

    @property
    def depth(self) -> int: ...

    @property
    def nbytes(self) -> int: ...


def score(a: list[float], x: list[float]) -> float:
    """<a, x> summed left to right in float64, the way the pure-Python code computes it."""
    s = 0.0
    for ai, xi in zip(a, x, strict=True):
        s += ai * xi
    return s
