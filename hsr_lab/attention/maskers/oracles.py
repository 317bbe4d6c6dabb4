"""Dense attention and the two oracles every sparse-attention paper compares against.

- ``Dense``: every key j <= i (the model as trained). Keys scored: i + 1.
- ``TopK``: the k_i largest scores of row i, the best any set of k_i keys can do for the
  dropped mass (exact top-k; the reference of Quest, Sec. 4, and of MagicPIG, Sec. 3).
- ``TopP``: the fewest largest-probability keys whose dense mass reaches p (nucleus-style,
  the oracle of MagicPIG's "oracle top-p" discussion, Sec. 3). A budget is met by sweeping p.

Both oracles need every score of the row: keys scored i + 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._core import (
    DEFAULT_BUDGET,
    Budget,
    Masker,
    Selection,
    check_number,
    full_selection,
    top_k_mask,
)


@dataclass(eq=False)
class Dense(Masker):
    """Keep every visible key: softmax attention as the model computes it."""

    name = "dense"
    paper = "the model's own causal softmax attention"

    def _select(self, rows: np.ndarray, S: np.ndarray, P: np.ndarray) -> Selection:
        return full_selection(rows, S.shape[0], S.shape[2])


@dataclass(eq=False)
class TopK(Masker):
    """The k_i largest scores of each row (k_i from the budget)."""

    budget: Budget = DEFAULT_BUDGET
    name = "top_k"
    paper = "oracle top-k: the reference of Quest (Sec. 4) and MagicPIG (Sec. 3)"

    def _select(self, rows: np.ndarray, S: np.ndarray, P: np.ndarray) -> Selection:
        keep = top_k_mask(S, self.budget.keys(rows), available=rows + 1)
        scored = np.broadcast_to(rows + 1.0, S.shape[:2]).copy()
        return Selection(int(rows[0]), keep, None, scored)


def top_p_counts(P: np.ndarray, p: float) -> np.ndarray:
    """The fewest keys of each row whose largest probabilities sum to at least p: (..., r).

    Rounding can leave a row's total a hair under p = 1: such a row keeps every key."""
    order = -np.sort(-P, axis=-1)
    cum = np.cumsum(order, axis=-1)
    counts = (cum < p).sum(axis=-1) + 1
    return np.minimum(counts, (P > 0).sum(axis=-1))


@dataclass(eq=False)
class TopP(Masker):
    """The smallest set of largest-probability keys with mass >= p in each row."""

    p: float = 0.9
    uses_probabilities = True
    name = "top_p"
    paper = "oracle top-p (MagicPIG, Sec. 3: the mass a set of keys covers)"

    def __post_init__(self) -> None:
        self.p = check_number("p", self.p, 0.0, 1.0, open_low=True)

    def _select(self, rows: np.ndarray, S: np.ndarray, P: np.ndarray) -> Selection:
        if self.p >= 1.0:
            return full_selection(rows, S.shape[0], S.shape[2])
        keep = top_k_mask(np.where(P > 0, P, -np.inf), top_p_counts(P, self.p))
        scored = np.broadcast_to(rows + 1.0, S.shape[:2]).copy()
        return Selection(int(rows[0]), keep, None, scored)
