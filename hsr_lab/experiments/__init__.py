"""Sweeps behind the figures and notebooks: plain arrays in, plain arrays out, cached on disk.

Every sweep takes a ``seed`` (results are deterministic), a ``quick`` flag (default: the
``HSR_LAB_QUICK`` environment variable) that shrinks it to seconds, and ``force`` to recompute
instead of reading ``hsr_lab.cache``. Long sweeps show a ``tqdm.auto`` progress bar.
``measure_query_cost`` is the exception: it times queries on this machine, so it is never
cached. ``relu_tree_counters`` counts what the kd-tree does for one attention call (no cache).
``hsr_lab.experiments.real_stats`` (imported on its own: it reads ``hsr_lab.data``) is the
cached sweep over real attention scores.
"""

from .cost import KEY_KINDS, QueryCost, measure_query_cost
from .plane import PlaneQuery, plane_query
from .softmax import SoftmaxSweep, planted_instance, softmax_error_sweep
from .sparsity import SparsitySweep, activation_mask, sparsity_sweep
from .work import TREES, WorkSweep, query_work_sweep, relu_tree_counters

__all__ = [
    "KEY_KINDS",
    "TREES",
    "PlaneQuery",
    "QueryCost",
    "SoftmaxSweep",
    "SparsitySweep",
    "WorkSweep",
    "activation_mask",
    "measure_query_cost",
    "plane_query",
    "planted_instance",
    "query_work_sweep",
    "relu_tree_counters",
    "softmax_error_sweep",
    "sparsity_sweep",
]
