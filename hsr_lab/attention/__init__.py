"""Attention, dense and through half-space reporting (HSR), with per-row cost counters.

- ``relu_attention(Q, K, V, alpha, b, ...)``: ``D^{-1} A V`` with
  ``A = ReLU(Q K^T / sqrt(d) - b)^alpha``; ``method="hsr"`` is exact.
- ``softmax_attention(Q, K, V, ..., b)``: ``D^{-1} exp(Q K^T / sqrt(d)) V``; with b, only the
  entries with score >= b are kept (``method="hsr"`` finds them with one query per row,
  all rows asked at once).
- ``Decoder``: the KV cache in an HSR structure, one exact row per decoding step.
- ``row_thresholds``, ``sampled_row_thresholds``: per-row thresholds
  ``b_i = mu_i + sigma_i sqrt(c ln n)``, from every score of the row or from s sampled keys.
- ``AttentionStats``: activated entries, inner products, tree nodes visited, empty rows and
  (softmax) dropped mass, per row.

Modules: ``dense`` (the formulas, the reference), ``scores`` (the score decision ``s_ij >= b``
made identically on every path, the sinks and window of a row, the query offset), ``rows`` (the
row kernel: exact rows over CSR lists of keys), ``decoder`` (the HSR method one row at a time),
``positions`` (causal rows: the keys split by position, so no row visits keys beyond it),
``batch`` (the HSR method over a batch of rows, what ``method="hsr"`` runs), ``api`` (the two
functions above), ``thresholds`` (per-row thresholds), ``_stats``, ``_checks``. When
``backend="auto"`` takes the dense kernel instead is decided by ``hsr.plan`` (``prefill`` and
``decode``), the planner of HSR's own blocks too.
"""

from ._stats import AttentionStats
from .api import relu_attention, softmax_attention
from .decoder import Decoder
from .thresholds import row_thresholds, sampled_row_thresholds

__all__ = ["AttentionStats", "Decoder", "relu_attention", "row_thresholds",
           "sampled_row_thresholds", "softmax_attention"]
