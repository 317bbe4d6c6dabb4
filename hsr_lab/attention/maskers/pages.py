"""Quest's page bound, and the two rules built on it: Quest's top pages and certified pages.

Quest (Tang et al., "Quest: Query-Aware Sparsity for Efficient Long-Context LLM Inference",
ICML 2024, Sec. 3.2 "Query-aware sparsity"): the keys are cut into pages of 16 consecutive
tokens; with m_p and M_p the element-wise min and max of page p's keys, every key k of the page
has

    <q, k> <= U_p(q) = sum_c max(q_c m_pc, q_c M_pc) = <max(q, 0), M_p> + <min(q, 0), m_p>.

``page_bounds`` and ``page_upper_bound`` are that bound, the one copy used everywhere in
hsr_lab (``hsr_lab.peers.QuestPages`` and ``experiments.smollm2.quest_pages`` import it).

- ``Quest``: row i keeps its own (partly filled) page and the top-K complete pages before it
  ranked by U_p(q_i), K chosen so that about k_i keys are kept. The first two layers stay dense
  (Quest, Sec. 4.1: "we do not apply Quest to the first two layers"). Keys scored: two
  d-dimensional products per page bounded (U_p needs q against m_p and M_p).
- ``CertifiedPages``: the same bound used for an exact threshold. Row i scans only the pages
  whose bound reaches sqrt(d) b_i and keeps the keys with s_ij > b_i there. A page whose bound
  (widened by the float32 rounding of the scores) lies below sqrt(d) b_i holds no such key, so
  the kept set is exactly the threshold's (tested against the scan on every row). Keys scored:
  two per page bounded plus every key of every page scanned.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._core import (
    DEFAULT_BUDGET,
    Budget,
    Layer,
    Masker,
    Selection,
    check_int,
    full_selection,
    top_k_mask,
)

PAGE = 16  # Quest's page size (tokens)
DENSE_LAYERS = 2  # Quest keeps the first two layers dense
_U32 = 2.0**-24  # unit roundoff of float32
_U64 = 2.0**-53


def page_bounds(K: np.ndarray, page_size: int = PAGE) -> tuple[np.ndarray, np.ndarray]:
    """(m, M): the element-wise min and max of each page of ``page_size`` consecutive keys of
    K (..., n, d), shape (..., pages, d); the last page may be partial (its own keys only)."""
    page_size = check_int("page_size", page_size)
    n = K.shape[-2]
    pages = -(-n // page_size)
    pad = pages * page_size - n
    if pad:  # repeat the last key: a page's min and max do not change
        K = np.concatenate([K, np.repeat(K[..., -1:, :], pad, axis=-2)], axis=-2)
    shaped = K.reshape(*K.shape[:-2], pages, page_size, K.shape[-1])
    return shaped.min(axis=-2), shaped.max(axis=-2)


def page_upper_bound(A: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """U_p(a) = <max(a, 0), M_p> + <min(a, 0), m_p> >= <a, k> for every key k of page p.

    A: (..., m, d) queries; lo, hi: (..., pages, d). Returns (..., m, pages)."""
    return np.maximum(A, 0) @ np.swapaxes(hi, -1, -2) + np.minimum(A, 0) @ np.swapaxes(lo, -1,
                                                                                       -2)


def _layer_pages(layer: Layer, page_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Page min and max of every query head's keys, in float64: (H, pages, d) each."""
    lo, hi = page_bounds(np.asarray(layer.K, np.float64), page_size)
    heads = list(layer.kv_head)
    return lo[heads], hi[heads]


def _row_bounds(layer: Layer, rows: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """U_p(q_i) of the block's rows against every page, float64: (H, r, pages)."""
    return page_upper_bound(np.asarray(layer.Q[:, rows], np.float64), lo, hi)


@dataclass(eq=False)
class Quest(Masker):
    """Quest's query-aware page selection at a per-row budget (see the module docstring)."""

    budget: Budget = DEFAULT_BUDGET
    page_size: int = PAGE
    dense_layers: int = DENSE_LAYERS
    name = "quest"
    paper = "Tang et al. 2024 (Quest), Sec. 3.2; pages of 16, first 2 layers dense (Sec. 4.1)"

    def begin(self, layer: Layer) -> None:
        super().begin(layer)
        self._lo, self._hi = _layer_pages(layer, self.page_size)

    def dense_layer(self) -> bool:
        return self.layer.index < self.dense_layers

    def _select(self, rows: np.ndarray, S: np.ndarray, P: np.ndarray) -> Selection:
        H, e = S.shape[0], S.shape[2]
        if self.dense_layer():
            return full_selection(rows, H, e)
        ps = self.page_size
        own = rows // ps  # each row's own page, partly filled: always kept
        n_pages = -(-e // ps)
        bound = _row_bounds(self.layer, rows, self._lo[:, :n_pages], self._hi[:, :n_pages])
        bound[:, np.arange(n_pages)[None, :] >= own[:, None]] = -np.inf  # complete pages only
        in_own = rows - own * ps + 1
        wanted = np.maximum(0, np.rint((self.budget.keys(rows) - in_own) / ps)).astype(np.int64)
        chosen = top_k_mask(bound, wanted)  # (H, r, pages)
        keep = np.repeat(chosen, ps, axis=-1)[..., :e]
        j = np.arange(e)[None, :]
        keep |= ((j >= (own * ps)[:, None]) & (j <= rows[:, None]))[None]
        scored = 2.0 * own + keep.sum(axis=-1)  # two products per page bound, then attend
        return Selection(int(rows[0]), keep, None, scored.astype(np.float64))


def _score_slack(A: np.ndarray, K_max_abs: float, d: int) -> np.ndarray:
    """How far a float32 score <a, k> (d products and sums in float32) can lie above the
    exact one, plus the float64 rounding of the bound: (d + 2) u32 sum|a| max|k| + a margin."""
    gamma = (d + 2) * _U32 / (1 - (d + 2) * _U32)
    return (gamma + 4 * (d + 2) * _U64) * np.abs(A).sum(axis=-1) * K_max_abs + 1e-300


@dataclass(eq=False)
class CertifiedPages(Masker):
    """Exactly the keys with s_ij > b_i, found by scanning only the pages that can hold one.

    ``threshold`` is a masker whose rule is s_ij > b_i (``ScalarThreshold``,
    ``RowThreshold``): it gives b_i; this masker keeps the same set and reports the work of
    the page-pruned search instead of the scan's (plus what b_i itself costs)."""

    threshold: Masker | None = None
    page_size: int = PAGE
    name = "certified_pages"
    paper = "Quest's page bound (Tang et al. 2024, Sec. 3.2) used as an exact filter"

    def __post_init__(self) -> None:
        if self.threshold is None or not hasattr(self.threshold, "thresholds"):
            raise TypeError("CertifiedPages needs threshold=, a masker that keeps s_ij > b_i "
                            "(ScalarThreshold or RowThreshold)")
        self.name = self.threshold.name  # the same rule, found with page bounds

    def begin(self, layer: Layer) -> None:
        super().begin(layer)
        self.threshold.begin(layer)
        self._lo, self._hi = _layer_pages(layer, self.page_size)
        self._kmax = float(np.abs(np.asarray(layer.K, np.float64)).max())
        self.missed = 0  # keys above b in a skipped page (a broken certificate): always 0

    def _select(self, rows: np.ndarray, S: np.ndarray, P: np.ndarray) -> Selection:
        b = self.threshold.thresholds(rows, S)  # (H, r)
        e = S.shape[2]
        ps, d = self.page_size, self.layer.d
        n_pages = -(-e // ps)
        bound = _row_bounds(self.layer, rows, self._lo[:, :n_pages], self._hi[:, :n_pages])
        A = np.asarray(self.layer.Q[:, rows], np.float64)
        reach = bound + _score_slack(A, self._kmax, d)[..., None] >= np.sqrt(d) * b[..., None]
        pages = np.arange(n_pages)
        reach &= (pages[None, :] * ps <= rows[:, None])[None]  # pages with a visible key
        scan = np.repeat(reach, ps, axis=-1)[..., :e] & (np.arange(e)[None, :]
                                                         <= rows[:, None])[None]
        above = S > b[..., None]
        keep = scan & above
        self.missed += int(np.count_nonzero(above & ~scan))
        visible_pages = rows // ps + 1
        scored = (self.threshold.stats_cost(rows) + 2.0 * visible_pages)[None, :] \
            + scan.sum(axis=-1)
        self.scanned = scan  # kept for inspection (the notebook draws it)
        return Selection(int(rows[0]), keep, None, scored)
