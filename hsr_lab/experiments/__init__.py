"""Sweeps behind the figures and notebooks: plain arrays in, plain arrays out, cached on disk.

Every sweep takes a ``seed`` (results are deterministic), a ``quick`` flag (default: the
``HSR_LAB_QUICK`` environment variable) that shrinks it to seconds, and ``force`` to recompute
instead of reading ``hsr_lab.cache``. Long sweeps show a ``tqdm.auto`` progress bar.
``measure_query_cost`` is the exception: it times queries on this machine, so it is never
cached.
"""

from .cost import KEY_KINDS, QueryCost, measure_query_cost
from .plane import PlaneQuery, plane_query
from .smollm2 import SmolStudy, smollm2_study
from .softmax import SoftmaxSweep, planted_instance, softmax_error_sweep
from .sparsity import SparsitySweep, activation_mask, sparsity_sweep
from .work import WorkSweep, query_work_sweep

__all__ = [
    "KEY_KINDS",
    "PlaneQuery",
    "QueryCost",
    "SmolStudy",
    "SoftmaxSweep",
    "SparsitySweep",
    "WorkSweep",
    "activation_mask",
    "measure_query_cost",
    "plane_query",
    "planted_instance",
    "query_work_sweep",
    "smollm2_study",
    "softmax_error_sweep",
    "sparsity_sweep",
]
