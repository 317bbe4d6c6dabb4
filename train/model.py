"""A small Llama-style byte LM whose attention rule is softmax or the paper's ReLU^alpha.

Everything but the attention rule is shared (SmolLM2's recipe, scaled down): a byte embedding
(256 tokens, tied with the output layer), ``n_layers`` pre-norm blocks and a final RMSNorm:

    h = RMSNorm(x) = x / sqrt(mean(x^2) + eps) * g
    q_h = R_t W_Q,h h,  k_h = R_t W_K,h h,  v_h = W_V,h h     (R_t: RoPE at position t)
    s_tj = <q_t, k_j> / sqrt(d)                               (j <= t: causal)
    softmax:   A = exp(S)
    ReLU^a:    A = ReLU(S - b_h)^alpha                        (b_h: one scalar per head)
    x' = x + concat_h(D^{-1} A V) W_O^T,   D = diag(A 1)      (D_tt = 0: a zero row)
    x'' = x' + (SiLU(h' W_gate^T) * (h' W_up^T)) W_down^T,    h' = RMSNorm(x')

RoPE rotates the pairs (i, i + d/2) (transformers' Llama order) by t * base^(-2i/d).

The bias b of a ReLU^alpha head is either learned (``threshold="learned"``; set before the
first step by ``calibrate``) or the paper's value in the head's own score units
(``threshold="paper"``): ``b_h = ramp * sqrt(c ln n) * sigma_h`` with ``sigma_h`` a running
mean of the head's score RMS over visible entries, ``n`` the context and ``ramp`` going from 0
to 1 in training. A fixed b in absolute units would constrain nothing: scaling W_Q by r scales
every score and b's effect by the same r (ReLU^alpha is then normalised away), so the model
could reach any sparsity; tying b to sigma_h removes that freedom. At inference (``eval()``)
both are a fixed scalar per head: the paper's exact case. ``export()`` writes that b.

Read by ``hsr_lab.data.relu_lm`` (NumPy; the test compares the two forward passes).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class Config:
    """The architecture and the attention rule; every variant shares all but the last four."""

    vocab: int = 256  # bytes
    d_model: int = 256
    n_layers: int = 4
    n_heads: int = 4
    head_dim: int = 64
    ffn: int = 704  # SwiGLU hidden width, about 8/3 d_model, a multiple of 64
    context: int = 2048
    rope_base: float = 10000.0
    rms_eps: float = 1e-5
    attention: str = "softmax"  # "softmax" or "relu"
    alpha: int = 2  # ReLU^alpha's power
    threshold: str = "learned"  # "learned" b per head, or "paper": sqrt(c ln n) sigma_h
    paper_c: float = 0.4

    def __post_init__(self) -> None:
        if self.attention not in ("softmax", "relu"):
            raise ValueError(f"attention must be 'softmax' or 'relu'; got {self.attention!r}")
        if self.threshold not in ("learned", "paper"):
            raise ValueError(f"threshold must be 'learned' or 'paper'; got {self.threshold!r}")
        if self.n_heads * self.head_dim != self.d_model or self.head_dim % 2:
            raise ValueError("n_heads * head_dim must equal d_model, head_dim even; got "
                             f"{self.n_heads} x {self.head_dim} for {self.d_model}")

    @property
    def paper_factor(self) -> float:
        """sqrt(c ln n) at n = context: the paper's b in units of the score's sigma."""
        return math.sqrt(self.paper_c * math.log(self.context))

    def to_dict(self) -> dict:
        return asdict(self)


def _wide(x: torch.Tensor) -> torch.Tensor:
    """float32 for half-precision tensors (autocast), float64 stays float64."""
    return x.float() if x.element_size() < 4 else x


class RMSNorm(nn.Module):
    """x / sqrt(mean(x^2) + eps) * g."""

    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.g, self.eps = nn.Parameter(torch.ones(dim)), eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x32 = _wide(x)
        return (x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)).to(x.dtype
                                                                                 ) * self.g


def rope_tables(n: int, d: int, base: float, device: torch.device
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of t * base^(-2i/d), each (n, d) with the d/2 angles repeated twice."""
    inv = 1.0 / base ** (torch.arange(0, d, 2, dtype=torch.float64, device=device) / d)
    ang = torch.arange(n, dtype=torch.float64, device=device)[:, None] * inv[None]
    ang = torch.cat([ang, ang], dim=-1)
    return ang.cos(), ang.sin()


def rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate the pairs (x_i, x_{i+d/2}) of x (..., n, d) by the angles of the tables."""
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos.to(x.dtype) + rotated * sin.to(x.dtype)


def relu_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, b: torch.Tensor,
                   alpha: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Causal D^{-1} A V with A = ReLU(S - b)^alpha, S = q k^T / sqrt(d); rows with D = 0 give 0.

    q, k, v: (B, H, n, d); b: (H,). Scores are materialised (B, H, n, n) and the weights kept
    in float32. Also returns S (float32) for the statistics."""
    n, d = q.shape[-2], q.shape[-1]
    S = _wide(q @ k.transpose(-1, -2)) * (1.0 / math.sqrt(d))
    future = torch.ones(n, n, dtype=torch.bool, device=q.device).triu(1)
    A = torch.relu(S - b.to(S.dtype)[:, None, None]).masked_fill(future, 0.0)
    A = A.pow(alpha) if alpha > 1 else A
    D = A.sum(-1, keepdim=True)
    out = (A.to(v.dtype) @ v) / torch.where(D > 0, D, torch.ones_like(D)).to(v.dtype)
    return out, S


class Attention(nn.Module):
    """Multi-head attention with RoPE; the rule of ``cfg.attention``."""

    def __init__(self, cfg: Config) -> None:
        super().__init__()
        self.cfg = cfg
        self.wq, self.wk, self.wv, self.wo = (nn.Linear(cfg.d_model, cfg.d_model, bias=False)
                                              for _ in range(4))
        if cfg.attention == "relu" and cfg.threshold == "learned":
            self.b = nn.Parameter(torch.zeros(cfg.n_heads))
        elif cfg.attention == "relu":
            self.register_buffer("sigma", torch.zeros(cfg.n_heads))
            self.register_buffer("ramp", torch.zeros(()))
        self.stats: dict[str, torch.Tensor] | None = None  # filled when collect is set
        self.collect = False

    def bias(self) -> torch.Tensor:
        """b per head (the learned parameter, or ramp * sqrt(c ln n) * sigma_h)."""
        if self.cfg.threshold == "learned":
            return self.b
        return self.ramp * self.cfg.paper_factor * self.sigma

    def qkv(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor
            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """q, k (after RoPE) and v, each (B, H, n, head_dim)."""
        B, n, _ = x.shape
        H, d = self.cfg.n_heads, self.cfg.head_dim

        def heads(w: nn.Linear) -> torch.Tensor:
            return w(x).view(B, n, H, d).transpose(1, 2)
        return rope(heads(self.wq), cos, sin), rope(heads(self.wk), cos, sin), heads(self.wv)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        q, k, v = self.qkv(x, cos, sin)
        if self.cfg.attention == "softmax":
            out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            out, S = relu_attention(q, k, v, self.bias(), self.cfg.alpha)
            if self.cfg.threshold == "paper" and self.training:
                self._track_sigma(S)
            if self.collect:
                self.stats = _row_stats(S, self.bias())
        B, H, n, d = out.shape
        return self.wo(out.transpose(1, 2).reshape(B, n, H * d))

    @torch.no_grad()
    def _track_sigma(self, S: torch.Tensor, momentum: float = 0.9) -> None:
        """sigma_h <- running mean of the score RMS over visible entries (no gradient), after
        the step used it; ``calibrate`` sets its first value."""
        self.sigma.mul_(momentum).add_((1 - momentum) * _rms(S.detach()))


def score_rms(q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Per head, sqrt(mean s_tj^2) over the visible entries j <= t of every sequence."""
    return _rms(_wide(q @ k.transpose(-1, -2)) / math.sqrt(q.shape[-1]))


def _rms(S: torch.Tensor) -> torch.Tensor:
    """Per head, the RMS of the scores S (B, H, n, n) over the visible entries j <= t."""
    n = S.shape[-1]
    visible = torch.ones(n, n, dtype=torch.bool, device=S.device).tril()
    sq = (S * S).masked_fill(~visible, 0.0).sum(dim=(0, 2, 3))
    return torch.sqrt(sq / (S.shape[0] * visible.sum()))


@torch.no_grad()
def _row_stats(S: torch.Tensor, b: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per head: share of visible entries above b, share of rows with none, score RMS."""
    n = S.shape[-1]
    visible = torch.ones(n, n, dtype=torch.bool, device=S.device).tril()
    active = (S > b.float()[:, None, None]) & visible
    count = active.sum(-1).float()  # (B, H, n)
    return {"active_share": active.sum(dim=(0, 2, 3)) / (S.shape[0] * visible.sum()),
            "empty_rows": (count == 0).float().mean(dim=(0, 2)),
            "score_rms": _rms(S)}


class Block(nn.Module):
    """Pre-norm attention, then pre-norm SwiGLU, each added to the residual stream."""

    def __init__(self, cfg: Config) -> None:
        super().__init__()
        self.attn_norm, self.mlp_norm = RMSNorm(cfg.d_model, cfg.rms_eps), RMSNorm(
            cfg.d_model, cfg.rms_eps)
        self.attn = Attention(cfg)
        self.w_gate = nn.Linear(cfg.d_model, cfg.ffn, bias=False)
        self.w_up = nn.Linear(cfg.d_model, cfg.ffn, bias=False)
        self.w_down = nn.Linear(cfg.ffn, cfg.d_model, bias=False)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.attn_norm(x), cos, sin)
        h = self.mlp_norm(x)
        return x + self.w_down(F.silu(self.w_gate(h)) * self.w_up(h))


class ByteLM(nn.Module):
    """Embedding, blocks, final RMSNorm, tied output layer: logits (B, n, 256)."""

    def __init__(self, cfg: Config) -> None:
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab, cfg.d_model)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.final_norm = RMSNorm(cfg.d_model, cfg.rms_eps)
        self._init()

    def _init(self) -> None:
        """N(0, 0.02^2) everywhere; the two projections into the residual stream scaled down
        by sqrt(2 n_layers) (GPT-2's rule)."""
        for name, p in self.named_parameters():
            if p.dim() == 2:
                std = 0.02 / math.sqrt(2 * self.cfg.n_layers) if name.endswith(
                    ("wo.weight", "w_down.weight")) else 0.02
                nn.init.normal_(p, std=std)

    def rope(self, n: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        return rope_tables(n, self.cfg.head_dim, self.cfg.rope_base, device)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        cos, sin = self.rope(ids.shape[1], ids.device)
        x = self.embed(ids)
        for blk in self.blocks:
            x = blk(x, cos, sin)
        return self.final_norm(x) @ self.embed.weight.T.to(x.dtype)

    def trace(self, ids: torch.Tensor) -> dict[str, list[torch.Tensor]]:
        """The residual stream entering each layer (and the final one), and each layer's q, k
        (post-RoPE), v, for the comparison with the NumPy forward pass."""
        cos, sin = self.rope(ids.shape[1], ids.device)
        out: dict[str, list[torch.Tensor]] = {"hidden": [], "Q": [], "K": [], "V": []}
        x = self.embed(ids)
        for blk in self.blocks:
            out["hidden"].append(x)
            q, k, v = blk.attn.qkv(blk.attn_norm(x), cos, sin)
            out["Q"].append(q)
            out["K"].append(k)
            out["V"].append(v)
            x = blk(x, cos, sin)
        out["hidden"].append(x)
        return out

    @torch.no_grad()
    def calibrate(self, ids: torch.Tensor) -> list[list[float]]:
        """Set each learned b_h to sqrt(c ln n) times head h's score RMS on ``ids``, layer by
        layer (each layer sees the stream the calibrated layers before it produce), so that at
        the first step a row keeps about the paper's share n^{-1/5} of its keys (if the scores
        were Gaussian); for the "paper" rule, start sigma_h there. Returns b per layer."""
        cos, sin = self.rope(ids.shape[1], ids.device)
        x, chosen = self.embed(ids), []
        for blk in self.blocks:
            q, k, _ = blk.attn.qkv(blk.attn_norm(x), cos, sin)
            if self.cfg.threshold == "learned":
                blk.attn.b.copy_(self.cfg.paper_factor * score_rms(q, k))
            else:  # the running RMS starts here; b = ramp * sqrt(c ln n) * sigma_h
                blk.attn.sigma.copy_(score_rms(q, k))
            chosen.append(blk.attn.bias().tolist())
            x = blk(x, cos, sin)
        return chosen

    def biases(self) -> list[list[float]]:
        """b per layer and head as used now ([] for softmax)."""
        if self.cfg.attention != "relu":
            return []
        return [blk.attn.bias().detach().float().cpu().tolist() for blk in self.blocks]

    def set_ramp(self, value: float) -> None:
        """The paper threshold's ramp (0 to 1); no effect on other rules."""
        for blk in self.blocks:
            if hasattr(blk.attn, "ramp"):
                blk.attn.ramp.fill_(value)

    def collect(self, on: bool) -> None:
        for blk in self.blocks:
            blk.attn.collect, blk.attn.stats = on, None


# ---------------------------------------------------------------- the weights file
def export(model: ByteLM) -> dict:
    """The weights as the NumPy reader wants them: float16 matrices and gains (out x in),
    b per layer as float32 (a scalar per head, the threshold used at inference)."""
    arrays = {"embed": model.embed.weight, "final_norm": model.final_norm.g}
    for i, blk in enumerate(model.blocks):
        p = f"layers.{i}."
        arrays.update({p + "attn_norm": blk.attn_norm.g, p + "mlp_norm": blk.mlp_norm.g,
                       p + "wq": blk.attn.wq.weight, p + "wk": blk.attn.wk.weight,
                       p + "wv": blk.attn.wv.weight, p + "wo": blk.attn.wo.weight,
                       p + "w_gate": blk.w_gate.weight, p + "w_up": blk.w_up.weight,
                       p + "w_down": blk.w_down.weight})
    out = {k: v.detach().float().cpu().numpy().astype("float16") for k, v in arrays.items()}
    if model.cfg.attention == "relu":
        for i, blk in enumerate(model.blocks):
            out[f"layers.{i}.b"] = blk.attn.bias().detach().float().cpu().numpy()
    return out


def load_exported(arrays: dict, cfg: Config, dtype: torch.dtype = torch.float32) -> ByteLM:
    """A ByteLM in eval mode holding exported weights (the inverse of ``export``); the
    "paper" threshold is loaded as a learned-style parameter holding the exported b."""
    model = ByteLM(Config(**{**cfg.to_dict(), "threshold": "learned"})).to(dtype).eval()
    state = {"embed.weight": arrays["embed"], "final_norm.g": arrays["final_norm"]}
    names = {"attn_norm": "attn_norm.g", "mlp_norm": "mlp_norm.g", "wq": "attn.wq.weight",
             "wk": "attn.wk.weight", "wv": "attn.wv.weight", "wo": "attn.wo.weight",
             "w_gate": "w_gate.weight", "w_up": "w_up.weight", "w_down": "w_down.weight",
             "b": "attn.b"}
    for key, value in arrays.items():
        if key.startswith("layers."):
            _, i, name = key.split(".", 2)
            state[f"blocks.{i}.{names[name]}"] = value
    model.load_state_dict({k: torch.as_tensor(v).to(dtype) for k, v in state.items()})
    return model
