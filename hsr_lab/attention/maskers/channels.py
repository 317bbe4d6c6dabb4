"""Double Sparsity: top-k on approximate scores from a few calibrated channels.

Yang et al., "Post-Training Sparse Attention with Double Sparsity" (2024), Sec. 3: the
important channels of each head are found once, offline, on calibration text ("outlier
channels"); a small "label cache" holds those r channels of every key; a query scores every
key on them only,

    s~_ij = sum_{c in C_h} q_ic k_jc / sqrt(d),

keeps the k_i keys with the largest s~_ij and attends exactly over them. The paper's channel
sparsity is 1/16 (r = d / 16 = 4 channels at d = 64). Channels are ranked by how much they
add to |q . k| on the calibration text: importance_c = sum_i |q_ic| sum_j |k_jc| (the
"QK outlier" criterion), computed on text that is not the evaluation text.

Keys scored: the channel pass costs r/d of a key per key (i + 1) r / d, then k_i keys.
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
    causal_fill,
    check_int,
    top_k_mask,
)

SHARE = 16  # channel sparsity 1/16


def calibrate_channels(Q: np.ndarray, K: np.ndarray, kv_head: tuple[int, ...], r: int
                       ) -> np.ndarray:
    """The r channels of each query head with the largest sum_i |q_ic| sum_j |k_jc| on
    calibration queries Q (H, n, d) and keys K (G, n, d): (H, r) ints, sorted."""
    r = check_int("r", r)
    q_mass = np.abs(np.asarray(Q, np.float64)).sum(axis=1)  # (H, d)
    k_mass = np.abs(np.asarray(K, np.float64)).sum(axis=1)[list(kv_head)]  # (H, d)
    if r > q_mass.shape[1]:
        raise ValueError(f"r must be at most d = {q_mass.shape[1]}; got {r}")
    order = np.argsort(-(q_mass * k_mass), axis=1, kind="stable")[:, :r]
    return np.sort(order, axis=1)


@dataclass(eq=False)
class DoubleSparsity(Masker):
    """Top-k_i on scores from the calibrated channels ``channels`` (H, r) (or, per layer,
    ``channels[layer.index]`` of an (L, H, r) array)."""

    budget: Budget = DEFAULT_BUDGET
    channels: np.ndarray | None = None
    name = "double_sparsity"
    paper = ("Yang et al. 2024 (Double Sparsity), Sec. 3: offline-calibrated channels "
             "(1/16 of d), top-k on their approximate scores")

    def __post_init__(self) -> None:
        if self.channels is None:
            raise TypeError("DoubleSparsity needs channels= from calibrate_channels on a "
                            "calibration text (never the evaluation text)")
        self.channels = np.asarray(self.channels, np.int64)

    def begin(self, layer: Layer) -> None:
        super().begin(layer)
        ch = self.channels[layer.index] if self.channels.ndim == 3 else self.channels
        H = len(layer.kv_head)
        if ch.ndim != 2 or ch.shape[0] != H or ch.min() < 0 or ch.max() >= layer.d:
            raise ValueError(f"channels must be (H={H}, r) ids in 0..{layer.d - 1} (or one "
                             f"such array per layer); got shape {self.channels.shape}")
        self._ch = ch
        # the label cache: the chosen channels of every key, per query head (H, n, r)
        self._labels = np.stack([layer.keys_of(h)[:, ch[h]] for h in range(H)])

    def _select(self, rows: np.ndarray, S: np.ndarray, P: np.ndarray) -> Selection:
        H, e = S.shape[0], S.shape[2]
        q = np.stack([self.layer.Q[h][rows][:, self._ch[h]] for h in range(H)])  # (H, r, ch)
        approx = causal_fill(q @ np.swapaxes(self._labels[:, :e], -1, -2), int(rows[0]))
        keep = top_k_mask(approx, self.budget.keys(rows), available=rows + 1)
        scored = (rows + 1.0) * self._ch.shape[1] / self.layer.d + keep.sum(axis=-1)
        return Selection(int(rows[0]), keep, None, scored)
