"""Half-space reporting: ``HSR(points).query(a, t)`` -> ids of the points with ``<a, x> >= t``;
``HSR(points).query_many(A, t)`` answers a batch of queries at once (CSR ``indptr, ids``).

Backends (identical answers, different costs: every one reports exactly the points with
``<a, x> >= t`` in real arithmetic on the stored values, the predicate of ``numerics``):
``reference`` (pure-Python kd-tree, to read), ``numpy`` (the same tree, vectorised: the fast
path in NumPy), ``compiled`` (the same tree walked by Numba-compiled loops, where Numba is
installed: ``pip install 'hsr_lab[fast]'``; ``TREE`` is the tree "auto" races, the compiled
one where Numba is installed), ``brute`` (the dense scan ``K @ a >= t``: oracle and baseline),
``layers`` (convex layers, plane only) and ``auto`` (kd-tree where it pays, scan otherwise:
``plan.py``, and ``HSR.plan`` says what it chose and why).
float32 keys are stored and scored in float32, with the same exact answers (``numerics``;
``exact`` settles the few points whose computed score lies within rounding of t).
"""

from ._stats import BatchQueryStats, QueryStats
from .brute import BruteForce
from .compiled import TREE, CompiledKDTree
from .kdtree import NumpyKDTree
from .layers import ConvexLayers
from .plan import Decision, Plan
from .reference import ReferenceKDTree
from .structure import BACKENDS, DEFAULT_LEAF_SIZE, DEFAULT_LEAF_SIZE32, HSR

__all__ = [
    "BACKENDS",
    "DEFAULT_LEAF_SIZE",
    "DEFAULT_LEAF_SIZE32",
    "HSR",
    "TREE",
    "BatchQueryStats",
    "BruteForce",
    "CompiledKDTree",
    "ConvexLayers",
    "Decision",
    "NumpyKDTree",
    "Plan",
    "QueryStats",
    "ReferenceKDTree",
]
