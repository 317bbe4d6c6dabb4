"""KV-cache eviction rules: StreamingLLM, H2O and SnapKV, at a per-row budget k_i.

Each is written as row i's kept set when row i is the decoding step that follows a prompt of
tokens 0 .. i - 1 (every row of the causal forward pass is such a step):

- ``Streaming`` (Xiao et al., "Efficient Streaming Language Models with Attention Sinks", ICLR
  2024, Sec. 3.2): the first 4 tokens (attention sinks) and the k_i - 4 most recent ones.
- ``H2O`` (Zhang et al., "H2O: Heavy-Hitter Oracle for Efficient Generative Inference of LLMs",
  NeurIPS 2023, Sec. 4 and Algorithm 1, with the recent window of its experiments, Sec. 5:
  half heavy hitters, half recent tokens). A heavy set H of at most h_i = k_i - floor(k_i / 2)
  keys is kept greedily: row i adds itself to H, evicting first (if H is full) the member with
  the smallest attention accumulated since it entered, sum over rows r it has seen of p_rj
  (the dense probabilities, as the authors' simulation code accumulates them); evicted keys
  never return. Row i keeps H and its floor(k_i / 2) most recent keys (the two may overlap, so
  it can keep fewer than k_i).
- ``SnapKV`` (Li et al., "SnapKV: LLM Knows What You are Looking for Before Generation", 2024,
  Sec. 4, Listing 1): the last w = 32 tokens of the prompt are the observation window; their
  queries vote for the older keys, v_j = sum_{r = i-w}^{i-1} p_rj; the votes are max-pooled over
  7 neighbours (kernel 7, stride 1); row i keeps the top k_i - w - 1 voted older keys, the
  window and itself. (SnapKV compresses once per prompt; here every row is a fresh prompt end,
  which favours it.) SnapKV requires a capacity above its window; where k_i <= 2 w, the window
  shrinks to w_i = floor(k_i / 2), so that half the budget is still chosen by the votes.

Keys scored: only what is attended, k_i (the rules reuse attention they computed anyway;
SnapKV's window pass is a one-time prefill cost in its own setting, not counted per row).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._core import DEFAULT_BUDGET, Budget, Layer, Masker, Selection, check_int, top_k_mask

SINKS = 4  # StreamingLLM's attention sinks
WINDOW = 32  # SnapKV's observation window
KERNEL = 7  # SnapKV's pooling kernel


def _attended(keep: np.ndarray) -> np.ndarray:
    return keep.sum(axis=-1).astype(np.float64)


def recent_and_first(rows: np.ndarray, e: int, recent: np.ndarray, first: np.ndarray
                     ) -> np.ndarray:
    """(r, e): keys j < first_i or i - recent_i < j <= i."""
    j = np.arange(e)[None, :]
    rows = rows[:, None]
    return (j < np.asarray(first)[:, None]) | ((j > rows - np.asarray(recent)[:, None])
                                                & (j <= rows))


@dataclass(eq=False)
class Streaming(Masker):
    """StreamingLLM: 4 sink tokens plus the most recent k_i - 4."""

    budget: Budget = DEFAULT_BUDGET
    sinks: int = SINKS
    name = "streaming"
    paper = "Xiao et al. 2024 (StreamingLLM), Sec. 3.2: 4 sinks + a rolling recent window"

    def _select(self, rows: np.ndarray, S: np.ndarray, P: np.ndarray) -> Selection:
        k = self.budget.keys(rows)
        first = np.minimum(self.sinks, k)
        keep = np.broadcast_to(recent_and_first(rows, S.shape[2], k - first, first),
                               S.shape).copy()
        return Selection(int(rows[0]), keep, None, _attended(keep))


@dataclass(eq=False)
class H2O(Masker):
    """H2O: a greedily evicted heavy-hitter set plus a recent window, half and half."""

    budget: Budget = DEFAULT_BUDGET
    uses_probabilities = True
    name = "h2o"
    paper = ("Zhang et al. 2023 (H2O), Sec. 4, Algorithm 1 (greedy eviction by accumulated "
             "attention), half heavy hitters + half recent (Sec. 5)")

    def begin(self, layer: Layer) -> None:
        super().begin(layer)
        H, n = len(layer.kv_head), layer.n
        capacity = int(self._heavy(np.array([n - 1]))[0])
        self._ids = np.zeros((H, max(capacity, 1)), np.int64)  # the heavy set, slot by slot
        self._acc = np.zeros((H, max(capacity, 1)))  # accumulated attention of each slot
        self._size = 0

    def _heavy(self, rows: np.ndarray) -> np.ndarray:
        k = self.budget.keys(rows)
        return k - k // 2

    def _select(self, rows: np.ndarray, S: np.ndarray, P: np.ndarray) -> Selection:
        H, r, e = S.shape
        heavy, recent = self._heavy(rows), self.budget.keys(rows) // 2
        members = np.zeros((H, r, self._ids.shape[1]), np.int64)
        heads = np.arange(H)
        for t, i in enumerate(rows):
            if self._size < heavy[t]:  # room: the new key takes a fresh slot
                slot = np.full(H, self._size)
                self._size += 1
            else:  # full: evict the smallest accumulated attention, per head
                slot = np.argmin(self._acc[:, :self._size], axis=1)
            self._ids[heads, slot], self._acc[heads, slot] = i, 0.0
            live = self._ids[:, :self._size]
            self._acc[:, :self._size] += np.take_along_axis(P[:, t], live, axis=1)
            members[:, t, :self._size] = live
            members[:, t, self._size:] = i  # unused slots point at the row's own key
        keep = np.zeros(S.shape, bool)
        np.put_along_axis(keep, members, True, axis=-1)
        keep |= recent_and_first(rows, e, recent, np.zeros_like(recent))[None]
        return Selection(int(rows[0]), keep, None, _attended(keep))


def _max_pool(X: np.ndarray, kernel: int) -> np.ndarray:
    """max over X[..., j - kernel//2 .. j + kernel//2] (-inf outside): 1-D max pooling."""
    half = kernel // 2
    out = X.copy()
    for s in range(1, half + 1):
        np.maximum(out[..., s:], X[..., :-s], out=out[..., s:])
        np.maximum(out[..., :-s], X[..., s:], out=out[..., :-s])
    return out


@dataclass(eq=False)
class SnapKV(Masker):
    """SnapKV: keys voted for by the last w queries, max-pooled, plus the window."""

    budget: Budget = DEFAULT_BUDGET
    window: int = WINDOW
    kernel: int = KERNEL
    uses_probabilities = True
    name = "snapkv"
    paper = ("Li et al. 2024 (SnapKV), Sec. 4, Listing 1: observation window 32, "
             "max pooling over 7")

    def __post_init__(self) -> None:
        self.window = check_int("window", self.window)
        self.kernel = check_int("kernel", self.kernel)

    def begin(self, layer: Layer) -> None:
        super().begin(layer)
        # the dense probabilities of the last w rows before the next block (zeros before row 0)
        self._prev = np.zeros((len(layer.kv_head), self.window, layer.n))

    def _votes(self, P: np.ndarray, w_i: np.ndarray) -> np.ndarray:
        """v_ij = sum_{r = i-w_i}^{i-1} p_rj for the block's rows, (H, r, e), float64."""
        H, r, e = P.shape
        w = self.window
        R = np.concatenate([self._prev[:, :, :e], P], axis=1)  # rows start - w .. end - 1
        C = np.zeros((H, w + r + 1, e))
        np.cumsum(R, axis=1, out=C[:, 1:])  # C[t] = sum of R's first t rows
        self._prev[:, :, :e] = R[:, -w:]
        t = np.arange(r)  # row t of the block is row w + t of R
        return C[:, w + t] - C[:, w + t - w_i]

    def _select(self, rows: np.ndarray, S: np.ndarray, P: np.ndarray) -> Selection:
        e, w = S.shape[2], self.window
        k = self.budget.keys(rows)
        w_i = np.minimum(w, k // 2)  # the window each row can afford
        votes = self._votes(P, w_i)
        older = np.arange(e)[None, :] < (rows - w_i)[:, None]  # before the observation window
        pooled = _max_pool(np.where(older[None], votes, -np.inf), self.kernel)
        pooled[:, ~older] = -np.inf
        keep = top_k_mask(pooled, np.maximum(k - w_i - 1, 0))
        recent = np.minimum(k, w_i + 1)
        keep |= recent_and_first(rows, e, recent, np.zeros_like(recent))[None]
        return Selection(int(rows[0]), keep, None, _attended(keep))
