"""Sweeps behind the figures and notebooks: plain arrays in, plain arrays out, cached on disk.

Every sweep takes a ``seed`` (results are deterministic), a ``quick`` flag (default: the
``HSR_LAB_QUICK`` environment variable) that shrinks it to seconds, and ``force`` to recompute
instead of reading ``hsr_lab.cache``. Long sweeps show a ``tqdm.auto`` progress bar.
``measure_query_cost`` is the exception: it times queries on this machine, so it is never
cached. ``relu_tree_counters`` counts what the kd-tree does for one attention call (no cache);
``leaf_box_slack``, ``per_row_vs_scalar``, ``sampled_threshold_error`` and
``moment_curve_facets`` are small one-shot measurements (no cache).
``relu_lm_study`` studies the byte LMs trained with ReLU^alpha attention (``data.relu_lm``);
``decoding_times`` times their decoding step (never cached).
``hsr_lab.experiments.real_stats`` (imported on its own: it reads ``hsr_lab.data``) is the
cached sweep over real attention scores.
"""

from .cost import (
    KEY_KINDS,
    QueryCost,
    SampledThresholds,
    ThresholdRows,
    measure_query_cost,
    per_row_vs_scalar,
    sampled_threshold_error,
)
from .dynamic import InsertionCost, insertion_cost
from .hull import HullFacets, moment_curve, moment_curve_facets
from .plane import PlaneQuery, plane_query
from .relu_lms import ReluLMStudy, decoding_times, relu_lm_study
from .smollm2 import (
    HeadThreshold,
    SmolStudy,
    head_threshold,
    smollm2_study,
    study_extraction,
)
from .softmax import (
    MassSweep,
    SigmaSweep,
    SinkBudget,
    SoftmaxSweep,
    dropped_mass_vs_n,
    dropped_mass_vs_sigma,
    gaussian_instance,
    planted_instance,
    sink_budget,
    softmax_error_sweep,
)
from .sparsity import (
    RowMaxSweep,
    SparsitySweep,
    activation_mask,
    one_row_scores,
    row_max_sweep,
    sparsity_sweep,
)
from .work import (
    TREES,
    BoxSlack,
    LineSweep,
    WorkSweep,
    leaf_box_slack,
    line_counterexample,
    line_points,
    query_work_sweep,
    relu_tree_counters,
)

__all__ = [
    "KEY_KINDS",
    "TREES",
    "BoxSlack",
    "HeadThreshold",
    "HullFacets",
    "InsertionCost",
    "LineSweep",
    "MassSweep",
    "PlaneQuery",
    "QueryCost",
    "ReluLMStudy",
    "RowMaxSweep",
    "SampledThresholds",
    "SigmaSweep",
    "SinkBudget",
    "SmolStudy",
    "SoftmaxSweep",
    "SparsitySweep",
    "ThresholdRows",
    "WorkSweep",
    "activation_mask",
    "decoding_times",
    "dropped_mass_vs_n",
    "dropped_mass_vs_sigma",
    "gaussian_instance",
    "head_threshold",
    "insertion_cost",
    "leaf_box_slack",
    "line_counterexample",
    "line_points",
    "measure_query_cost",
    "moment_curve",
    "moment_curve_facets",
    "one_row_scores",
    "per_row_vs_scalar",
    "plane_query",
    "planted_instance",
    "query_work_sweep",
    "relu_lm_study",
    "relu_tree_counters",
    "row_max_sweep",
    "sampled_threshold_error",
    "sink_budget",
    "smollm2_study",
    "softmax_error_sweep",
    "sparsity_sweep",
    "study_extraction",
]
