"""SmolLM2-135M with a masker as the attention of every layer: loss, per-layer quality, budgets.

``run_masked(ids, masker)`` runs the model (4-bit Q4_1 weights, NumPy, float32 unless asked)
with ``attention.maskers.masked_attention`` in place of softmax attention in all 30 layers
(each rule keeps its own dense layers: Quest's first two, MagicPIG's 0 and 15) and returns the
per-token loss

    nll_t = -log softmax(logits(x_t))[id_{t+1}],   t = 0 .. n - 2   (nats)

with, per layer and query head, the mean over rows of the kept share, the keys scored, the
dropped mass tau and the relative L2 error of the attention output (on every 8th row), each
measured against dense attention on that layer's own inputs.

``match_parameters`` sets the continuous parameter of the swept rules (c of the thresholds, p
of top-p, the number of LSH tables of MagicPIG) so that their mean kept count on the dense
model's queries and keys equals a budget's: counts only, never a quality number.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from hsr_lab.attention import maskers as M
from hsr_lab.attention.maskers.magicpig import BITS, dense_layers, sampling_probability, static_keys
from hsr_lab.attention.maskers.thresholds import SAMPLES, row_stats, sample_ids
from hsr_lab.data import smollm2
from hsr_lab.data.smollm2 import HEAD_DIM, KV_HEAD, N_HEADS, N_LAYERS

LOGIT_CHUNK = 256  # positions per block of logits: (256, 49152) at a time


@dataclass(frozen=True, eq=False)
class Captured:
    """What the dense run keeps of each layer for matching budgets: queries of some rows,
    every key, and each head's RMS query norm. Q: (L, H, r, d), K: (L, G, n, d), q_rms: (L, H)."""

    rows: np.ndarray
    Q: np.ndarray
    K: np.ndarray
    q_rms: np.ndarray


@dataclass(frozen=True, eq=False)
class MaskedRun:
    """One pass of the model with a masker. nll: (n - 1,) per-token loss in nats. kept,
    scored: (L, H) mean share of the visible keys kept and scored; tau, err: (L, H) mean
    dropped mass and relative L2 error; empty: (L, H) share of rows that kept nothing; missed:
    keys a certified threshold failed to find (0); seconds: wall time."""

    nll: np.ndarray
    kept: np.ndarray
    scored: np.ndarray
    tau: np.ndarray
    err: np.ndarray
    empty: np.ndarray
    missed: int
    seconds: float
    captured: Captured | None = field(default=None, repr=False)

    def arrays(self) -> dict[str, np.ndarray]:
        """The run as plain arrays (for the cache)."""
        return dict(nll=self.nll, kept=self.kept, scored=self.scored, tau=self.tau,
                    err=self.err, empty=self.empty, missed=np.array(self.missed),
                    seconds=np.array(self.seconds))

    def __repr__(self) -> str:
        return (f"MaskedRun(n={len(self.nll) + 1}: mean nll {self.nll.mean():.4f}, kept "
                f"{self.kept.mean():.3f}, scored {self.scored.mean():.3f}, tau "
                f"{self.tau.mean():.3f}, err {self.err.mean():.3f}, {self.seconds:.0f} s)")


def token_nll(x: np.ndarray, ids: np.ndarray, w: dict[str, np.ndarray]) -> np.ndarray:
    """-log p(id_{t+1} | x_t) for t = 0 .. n - 2 from the last residual stream x (n, 576)."""
    out = np.empty(len(ids) - 1)
    E = w["token_embd.weight"]
    for s in range(0, len(ids) - 1, LOGIT_CHUNK):
        e = min(s + LOGIT_CHUNK, len(ids) - 1)
        z = smollm2.rms_norm(x[s:e], w["output_norm.weight"]) @ E.T  # (rows, vocab)
        top = z.max(axis=1, keepdims=True)
        lse = np.log(np.exp(z - top).sum(axis=1, dtype=np.float64)) + top[:, 0]
        out[s:e] = lse - z[np.arange(e - s), ids[s + 1:e + 1]]
    return out


def _weights(dtype: type) -> dict[str, np.ndarray]:
    w = smollm2.load_weights()
    return w if dtype == np.float32 else {k: v.astype(dtype) for k, v in w.items()}


def run_masked(ids: np.ndarray, masker: M.Masker, *, dtype: type = np.float32,
               err_every: int = 8, capture_rows: np.ndarray | None = None,
               progress: bool = False) -> MaskedRun:
    """The model over token ids with ``masker`` as every layer's attention (see the module
    docstring); ``capture_rows`` keeps those rows' queries and every key (``Captured``)."""
    from tqdm.auto import tqdm

    start = time.perf_counter()
    ids = np.asarray(ids, np.int64)
    w = _weights(dtype)
    x = w["token_embd.weight"][ids]
    stats, caught = [], []

    def attend(layer: int, Q: np.ndarray, K: np.ndarray, V: np.ndarray) -> np.ndarray:
        lay = M.make_layer(Q, K, KV_HEAD, layer, N_LAYERS)
        out, st = M.masked_attention(lay, V, masker, err_every=err_every)
        stats.append(st)
        if capture_rows is not None:
            q_rms = np.sqrt(np.mean(np.sum(np.square(Q, dtype=np.float64), axis=-1), axis=1))
            caught.append((Q[:, capture_rows].copy(), K.copy(), q_rms))
        return out

    for layer in tqdm(range(N_LAYERS), desc=f"{masker.name} n={len(ids)}", leave=False,
                      disable=not progress):
        x = smollm2.block(x, w, layer, attend=attend)[0]
    nll = token_nll(x, ids, w)
    missed = int(getattr(masker, "missed", 0))
    per = {k: np.array([getattr(s, k) for s in stats]) for k in ("kept", "scored", "tau",
                                                                "empty")}
    visible = stats[0].visible
    captured = None if capture_rows is None else Captured(
        np.asarray(capture_rows), *(np.stack(a) for a in zip(*caught, strict=True)))
    return MaskedRun(nll, per["kept"] / visible, per["scored"] / visible,
                     per["tau"] / len(ids), np.array([s.err / max(s.err_rows, 1)
                                                      for s in stats]),
                     per["empty"] / len(ids), missed, time.perf_counter() - start, captured)


# ----------------------------------------------------------------------------- matching
def _row_scores(cap: Captured, layer: int) -> np.ndarray:
    """s_ij of the captured rows against every key (float64), -inf for j > i: (H, r, n)."""
    K = cap.K[layer][list(KV_HEAD)]
    S = np.einsum("hrd,hnd->hrn", cap.Q[layer].astype(np.float64), K.astype(np.float64))
    S /= np.sqrt(HEAD_DIM)
    S[:, np.arange(K.shape[1])[None, :] > cap.rows[:, None]] = -np.inf
    return S


def _cut(values: np.ndarray, count: int) -> float:
    """A value z with exactly ``count`` entries of ``values`` above it (when no ties)."""
    count = int(np.clip(count, 0, len(values)))
    if count == 0:
        return float(values.max()) + 1.0
    if count == len(values):
        return float(values.min()) - 1.0
    part = np.partition(values, [len(values) - count - 1, len(values) - count])
    return 0.5 * float(part[len(values) - count - 1] + part[len(values) - count])


def _threshold_units(cap: Captured, kind: str, seed: int) -> np.ndarray:
    """Every captured visible score in the units of the rule's z, the rule being s > b(z):
    s / sigma_a for the scalar b = sigma_a z, (s - mu_i) / (sigma_i sqrt(ln(i+1))) per row."""
    n = cap.K.shape[2]
    out = []
    for layer in range(len(cap.K)):
        S = _row_scores(cap, layer)
        seen = np.isfinite(S)
        if kind == "scalar_b":
            sigma_k = np.sqrt(np.mean(np.square(cap.K[layer], dtype=np.float64), axis=(1, 2)))
            sigma_a = sigma_k[list(KV_HEAD)] * cap.q_rms[layer] / np.sqrt(HEAD_DIM)
            out.append((S / sigma_a[:, None, None])[seen] / np.sqrt(np.log(n)))
            continue
        ids = None if kind == "row_b" else sample_ids(n, SAMPLES, seed, layer)[cap.rows]
        mu, sigma = row_stats(S, cap.rows, ids)
        scale = sigma * np.sqrt(np.log(cap.rows + 1.0))[None, :]
        ok = (scale > 0)[..., None] & seen
        out.append(((S - mu[..., None]) / np.where(scale > 0, scale, 1)[..., None])[ok])
    return np.concatenate(out)


def _top_p_cumsums(cap: Captured) -> np.ndarray:
    """Every captured row's cumulative sorted probabilities (largest first) over its i + 1
    visible keys, concatenated: top-p keeps 1 + #{k : C_k < p} keys of a row."""
    out = []
    for layer in range(len(cap.K)):
        S = _row_scores(cap, layer)
        P = np.exp(S - S.max(axis=-1, keepdims=True))
        P /= P.sum(axis=-1, keepdims=True)
        cum = np.cumsum(-np.sort(-P, axis=-1), axis=-1)
        visible = np.arange(S.shape[2])[None, :] <= cap.rows[:, None]
        out.append(cum[np.broadcast_to(visible, cum.shape)])
    return np.concatenate(out)


def _magicpig_histogram(cap: Captured, bits: int = BITS) -> tuple[np.ndarray, np.ndarray,
                                                                   float]:
    """(u, counts, exact): MagicPIG's per-table collision probabilities u of the captured
    candidate (row, key) pairs, binned in log u, and the count of keys it keeps exactly (its
    static keys, and every key of its dense layers)."""
    edges = np.linspace(-60, 0, 3001)  # log u
    counts = np.zeros(len(edges) - 1)
    exact = 0.0
    for layer in range(len(cap.K)):
        S = _row_scores(cap, layer)
        seen = np.isfinite(S)
        if layer in dense_layers(N_LAYERS):
            exact += float(seen.sum())
            continue
        static = static_keys(cap.rows, S.shape[2])[None] & seen
        exact += float(static.sum())
        theta = np.arccos(np.clip(_centred_cosines(cap, layer, S)[seen & ~static], -1, 1))
        log_u = bits * np.log1p(-theta / np.pi + 1e-300)
        counts += np.histogram(np.clip(log_u, -60, 0), edges)[0]
    return np.exp(0.5 * (edges[1:] + edges[:-1])), counts, exact


def _centred_cosines(cap: Captured, layer: int, S: np.ndarray) -> np.ndarray:
    """cos of the angle between each captured query and each key less the keys' mean."""
    K = cap.K[layer].astype(np.float64)
    mean = K.mean(axis=1)
    norm = np.linalg.norm(K - mean[:, None], axis=-1)
    out = np.empty(S.shape)
    for h in range(N_HEADS):
        g = KV_HEAD[h]
        q = cap.Q[layer, h].astype(np.float64)
        out[h] = (S[h] * np.sqrt(HEAD_DIM) - (q @ mean[g])[:, None]) / (
            np.linalg.norm(q, axis=1)[:, None] * norm[g][None, :] + 1e-300)
    return out


def match_parameters(cap: Captured, budgets: list[M.Budget], seed: int = 0
                     ) -> dict[str, np.ndarray]:
    """For each swept rule (``maskers.SWEPT``), its parameter at each budget: the value whose
    mean kept count over the captured rows of every layer and head equals the budget's."""
    layers = len(cap.K)
    totals = [layers * N_HEADS * float(b.keys(cap.rows).sum()) for b in budgets]
    out = {}
    for kind in ("scalar_b", "row_b", "row_b_sampled"):
        units = _threshold_units(cap, kind, seed)
        z = np.array([_cut(units, t) for t in totals])
        out[kind] = np.sign(z) * z * z  # c with sign(c) sqrt(|c|) = z (the ln n is in units)
    cums = np.sort(_top_p_cumsums(cap))
    rows = layers * N_HEADS * len(cap.rows)
    out["top_p"] = np.array([1.0 if t - rows >= len(cums) else
                             float(cums[int(max(t - rows, 0))]) for t in totals])
    u, counts, dense = _magicpig_histogram(cap)
    out["magicpig"] = np.array([_tables_for(u, counts, t - dense) for t in totals], float)
    return out


def _tables_for(u: np.ndarray, counts: np.ndarray, target: float, top: int = 1 << 16) -> int:
    """The number of tables L (>= 2) whose expected sampled count is closest to target."""
    def expected(L: int) -> float:
        return float(counts @ sampling_probability(u, L))

    lo, hi = 2, top
    if expected(lo) >= target:
        return lo
    if expected(hi) <= target:
        return hi
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if expected(mid) < target else (lo, mid)
    return lo if target - expected(lo) <= expected(hi) - target else hi
