"""Maskers: every way of choosing which keys a causal attention row keeps, behind one interface.

A masker is told about a layer (``begin(layer)``: Q (H, n, d), K (G, n, d), which KV head
each query head reads) and then, block after block of rows, returns a ``Selection``: the kept
keys of each row as a boolean mask (never a key j > i), estimator weights where the rule has
them, and the keys it scored to choose (the work it pays, in d-dimensional inner products).
``select`` runs one over a whole prefix; ``masked_attention`` uses one as a layer's attention.
Notebook 08 teaches them side by side.

=====================  ==============================================================
name                   rule (module: paper, section, parameters)
=====================  ==============================================================
``dense``              every key (``oracles``)
``scalar_b``           s_ij > b, the paper's b = sigma_a sqrt(c ln n) (``thresholds``)
``row_b``              s_ij > mu_i + sigma_i sqrt(c ln(i+1)), exact row statistics
``row_b_sampled``      the same from 64 sampled keys per row
(certified pages)      how the threshold rules find their keys: exact, page-pruned
``top_k``              the k_i largest scores (``oracles``)
``top_p``              the fewest largest probabilities with mass >= p (``oracles``)
``streaming``          StreamingLLM: 4 sinks + recent (``eviction``)
``h2o``                H2O: greedy heavy hitters + recent, half and half (``eviction``)
``snapkv``             SnapKV: window votes, max-pooled (``eviction``)
``quest``              Quest: top pages by the min/max bound, pages of 16 (``pages``)
``double_sparsity``    top-k on 4 of 64 calibrated channels (``channels``)
``magicpig``           SimHash LSH sampling, weights 1/p (``magicpig``)
=====================  ==============================================================

``BUDGETED`` take a per-row ``Budget``; ``SWEPT`` have a continuous parameter (c, p or the
number of LSH tables) that a budget is matched by.
"""

from __future__ import annotations

from typing import Any

from ._core import FLOOR, Budget, Layer, Masker, Selection, make_layer, top_k_mask
from .channels import DoubleSparsity, calibrate_channels
from .eviction import H2O, SnapKV, Streaming
from .magicpig import MagicPIG, collision_probability, simhash_sample
from .oracles import Dense, TopK, TopP, top_p_counts
from .pages import CertifiedPages, Quest, page_bounds, page_upper_bound
from .run import LayerStats, block_scores, masked_attention, select, softmax_block
from .thresholds import PAPER_C, RowThreshold, ScalarThreshold, scalar_b

BUDGETED = ("top_k", "streaming", "h2o", "snapkv", "quest", "double_sparsity")
SWEPT = {"scalar_b": "c", "row_b": "c", "row_b_sampled": "c", "top_p": "p",
         "magicpig": "tables"}
METHODS = ("dense", *SWEPT, *BUDGETED)

_BUDGETED = {"top_k": TopK, "streaming": Streaming, "h2o": H2O, "snapkv": SnapKV,
             "quest": Quest, "double_sparsity": DoubleSparsity}
RULES: dict[str, type[Masker]] = {"dense": Dense, "scalar_b": ScalarThreshold,
                                  "row_b": RowThreshold, "row_b_sampled": RowThreshold,
                                  "top_p": TopP, "magicpig": MagicPIG, **_BUDGETED}
"""The class behind each method name (its ``paper`` names the source, section, parameters)."""


def make(name: str, budget: float | Budget | None = None, **params: Any) -> Masker:
    """The masker ``name`` (one of ``METHODS``): budgeted ones take ``budget`` (a share of the
    prefix in (0, 1], or a ``Budget``), swept ones their parameter (``SWEPT[name]``), and any
    other parameter of the class by keyword. The threshold rules come certified: their kept set
    found by ``CertifiedPages`` (the same keys, the page-pruned work)."""
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; known: {', '.join(METHODS)}")
    if name in _BUDGETED:
        if budget is None:
            raise ValueError(f"method {name!r} needs a budget (a share of the prefix in (0, 1])")
        budget = budget if isinstance(budget, Budget) else Budget(budget)
        return _BUDGETED[name](budget=budget, **params)
    if budget is not None:
        raise ValueError(f"method {name!r} takes no budget; set its {SWEPT.get(name, 'nothing')}"
                         " instead")
    if name == "dense":
        return Dense(**params)
    if name == "top_p":
        return TopP(**params)
    if name == "magicpig":
        return MagicPIG(**params)
    pages = params.pop("pages", True)
    if name == "scalar_b":
        rule: Masker = ScalarThreshold(**params)
    else:
        rule = RowThreshold(samples=params.pop("samples", 64) if name == "row_b_sampled"
                            else None, **params)
    return CertifiedPages(threshold=rule) if pages else rule


__all__ = [
    "BUDGETED",
    "FLOOR",
    "H2O",
    "METHODS",
    "PAPER_C",
    "RULES",
    "SWEPT",
    "Budget",
    "CertifiedPages",
    "Dense",
    "DoubleSparsity",
    "Layer",
    "LayerStats",
    "MagicPIG",
    "Masker",
    "Quest",
    "RowThreshold",
    "ScalarThreshold",
    "Selection",
    "SnapKV",
    "Streaming",
    "TopK",
    "TopP",
    "block_scores",
    "calibrate_channels",
    "collision_probability",
    "make",
    "make_layer",
    "masked_attention",
    "page_bounds",
    "page_upper_bound",
    "scalar_b",
    "select",
    "simhash_sample",
    "softmax_block",
    "top_k_mask",
    "top_p_counts",
]
