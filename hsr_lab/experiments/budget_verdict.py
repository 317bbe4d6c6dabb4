"""Reading the equal-budget study: comparisons at equal kept keys and at equal keys scored,
why the paper's threshold does what it does, and float32 against float64.

Everything here is computed from ``budgets.budget_study`` (or, for the precision check and the
sink, from small extra runs); notebook 08 prints these numbers and asserts the ones its
verdict rests on.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hsr_lab import cache
from hsr_lab.attention import maskers as M

from .budgets import LABELS, PAPER, BudgetStudy, label_of, setting, token_ids
from .common import resolve_quick
from .masked_lm import run_masked

DEPLOYED = ("streaming", "h2o", "snapkv", "quest", "double_sparsity", "magicpig")
THRESHOLDS = ("scalar_b", "row_b", "row_b_sampled")


# ----------------------------------------------------------------------------- equal kept keys
COMPARABLE = 1.5  # a rule keeping more than 1.5x the budget's share is not at that budget


def at_budget(study: BudgetStudy, text: str, label: str) -> dict[str, dict[str, object]]:
    """method -> its table row at one budget label on one text."""
    return {r["method"]: r for r in study.table
            if r["text"] == text and r["label"] == label and r["method"] != "dense"}


def budget_share(study: BudgetStudy, text: str, label: str) -> float:
    """The share of the visible keys the budget ``label`` keeps on ``text``: sum k_i / sum i+1."""
    budget = next(b for b in study.setting.budgets if label_of(b) == label)
    return M.Budget(budget, study.setting.floor).mean_share(
        int(study.row(text, "dense", "dense")["tokens"]))


def comparable(study: BudgetStudy, text: str, label: str) -> dict[str, dict[str, object]]:
    """The rules of ``at_budget`` that keep at most ``COMPARABLE`` times the budget's share
    (Quest's two dense layers and MagicPIG's 68 exact keys and two dense layers can put them
    far above a small budget: they are then not compared at that budget)."""
    limit = COMPARABLE * budget_share(study, text, label)
    return {m: r for m, r in at_budget(study, text, label).items() if r["kept_share"] <= limit}


def ranking(study: BudgetStudy, text: str, label: str) -> list[tuple[str, float]]:
    """(method, dNLL) of the comparable rules at one budget, best (smallest increase) first."""
    rows = comparable(study, text, label)
    return sorted(((m, float(r["dnll"])) for m, r in rows.items()), key=lambda x: x[1])


# ----------------------------------------------------------------------------- equal work
def dominating(study: BudgetStudy, text: str, label: str, method: str = "scalar_b"
               ) -> list[tuple[str, float, float]]:
    """(rule, dNLL, keys scored) of every rule that, at the same budget, keeps no more keys
    than ``method`` (within ``COMPARABLE``), scores no more keys and raises the loss less:
    at equal or smaller work it does better."""
    rows = at_budget(study, text, label)
    mine = rows[method]
    out = [(m, float(r["dnll"]), float(r["scored_share"])) for m, r in rows.items()
           if m != method and r["scored_share"] <= mine["scored_share"]
           and r["kept_share"] <= COMPARABLE * mine["kept_share"] and r["dnll"] < mine["dnll"]]
    return sorted(out, key=lambda x: x[1])


def reachable_work(study: BudgetStudy, text: str, method: str) -> tuple[float, float]:
    """The smallest and largest keys-scored share of ``method``'s budgets on ``text``."""
    shares = [r["scored_share"] for r in study.table if r["text"] == text
              and r["method"] == method and r["label"] != PAPER]
    return float(min(shares)), float(max(shares))


# ----------------------------------------------------------------------------- the verdict
@dataclass(frozen=True)
class Verdict:
    """The numbers the notebook's verdict rests on, for one text at one budget label.

    paper (low, high): dNLL of the paper's scalar b with c matched to the budget, and its
    interval; paper_c04, paper_c04_kept: dNLL and kept share at its own c = 0.4;
    best_deployed: the deployed rule with the smallest dNLL among those that keep at most 1.5x
    the budget's share (``comparable``; "" if none), and that dNLL; top_k: the oracle's dNLL;
    paper_rank among ``methods`` comparable rules (1 = best); paper_scored: the threshold's
    keys scored (certified pages), against 1.0 for a scan; dominated_by: the rules that keep
    and score no more and raise the loss less (``dominating``)."""

    text: str
    label: str
    paper: float
    paper_low: float
    paper_high: float
    paper_c04: float
    paper_c04_kept: float
    best_deployed: str
    best_deployed_dnll: float
    top_k: float
    paper_rank: int
    methods: int
    paper_scored: float
    dominated_by: tuple[str, ...]

    def sentence(self) -> str:
        """One sentence with the numbers."""
        best = (f"the best deployed rule at this budget, {LABELS[self.best_deployed]}, "
                f"{self.best_deployed_dnll:+.3f}" if self.best_deployed else
                "no deployed rule keeps as few keys")
        return (f"{self.text}, {self.label} of the keys: the paper's scalar b (c matched to "
                f"the budget) raises the loss by {self.paper:+.3f} nats/token "
                f"[{self.paper_low:+.3f}, {self.paper_high:+.3f}], rank {self.paper_rank} of "
                f"{self.methods}; {best}; oracle top-k {self.top_k:+.3f}. It scores "
                f"{self.paper_scored:.2f} of the visible keys (certified pages; a scan: 1.00); "
                f"{len(self.dominated_by)} rules keep and score no more and lose less"
                + (f" ({', '.join(LABELS[m] for m in self.dominated_by)})"
                   if self.dominated_by else "") + ".")


def verdict(study: BudgetStudy, text: str, label: str) -> Verdict:
    """The comparison of the paper's threshold with the rest, on one text at one budget."""
    rows = at_budget(study, text, label)
    order = [m for m, _ in ranking(study, text, label)]
    if "scalar_b" not in order:
        order.append("scalar_b")
    deployed = [m for m in order if m in DEPLOYED]
    paper = study.row(text, "scalar_b", PAPER)
    mine = rows["scalar_b"]
    best = deployed[0] if deployed else ""
    return Verdict(text, label, float(mine["dnll"]), float(mine["dnll_low"]),
                   float(mine["dnll_high"]), float(paper["dnll"]), float(paper["kept_share"]),
                   best, float(rows[best]["dnll"]) if best else float("nan"),
                   float(rows["top_k"]["dnll"]), order.index("scalar_b") + 1, len(order),
                   float(mine["scored_share"]),
                   tuple(m for m, _, _ in dominating(study, text, label)))


def verdicts(study: BudgetStudy) -> list[Verdict]:
    """``verdict`` for every text and budget of the study."""
    return [verdict(study, text, label_of(b)) for text, _ in study.setting.tokens
            for b in study.setting.budgets]


# ----------------------------------------------------------------------------- why
@dataclass(frozen=True)
class Why:
    """Why the scalar b does what it does, at one text and budget (means over heads):

    kept_early, kept_late: its kept share in layers 0-9 and 20-29; empty_late: the share of
    rows of layers 20-29 that keep nothing (their attention output is 0); tau_early, tau_late:
    the dropped mass there; pages_scored: what the certified page search scores, against the
    kept share (d = 64: the page bounds prune little)."""

    kept_early: float
    kept_late: float
    empty_late: float
    tau_early: float
    tau_late: float
    pages_scored: float
    kept: float


def why(study: BudgetStudy, text: str, label: str) -> Why:
    """The per-layer picture of the paper's threshold (see ``Why``)."""
    r = study.get(text, "scalar_b", label)
    early, late = slice(0, 10), slice(20, 30)
    return Why(float(r.kept[early].mean()), float(r.kept[late].mean()),
               float(r.empty[late].mean()), float(r.tau[early].mean()),
               float(r.tau[late].mean()), float(r.scored.mean()), float(r.kept.mean()))


# ----------------------------------------------------------------------------- precision
def precision_check(quick: bool | None = None, seed: int = 0) -> dict[str, np.ndarray]:
    """Per-token loss of the dense model and of top-k at 1/16, in float32 and in float64, on
    the first tokens of the long text (256, quick: 48), cached: the float32 forward pass is
    accurate enough if its difference from float64 is far below the dNLL being measured."""
    quick = resolve_quick(quick)
    n = 48 if quick else 256
    s = setting(quick, seed=seed)
    params = dict(n=n, seed=seed, floor=s.floor)

    def compute() -> dict[str, np.ndarray]:
        ids = token_ids("long", n, seed)
        out = {}
        for name, masker in (("dense", lambda: M.make("dense")),
                             ("top_k", lambda: M.make("top_k", M.Budget(1 / 16, s.floor)))):
            for dtype in (np.float32, np.float64):
                out[f"{name}_{np.dtype(dtype).name}"] = run_masked(ids, masker(),
                                                                   dtype=dtype).nll
        return out

    return cache.cached("budgets_precision", params, compute)


# ----------------------------------------------------------------------------- one head, exactly
@dataclass(frozen=True, eq=False)
class RowErrors:
    """Row by row (H, n), in float64, for one rule on one layer: eps (dropped mass), tv
    (1/2 sum |p - p_hat|), err (||o - o_hat||), identity (eps ||v_drop - v_kept||, the p-weighted
    means of V over the dropped and the kept keys), sink (p_i0 where token 0 is dropped)."""

    eps: np.ndarray
    tv: np.ndarray
    err: np.ndarray
    identity: np.ndarray
    sink: np.ndarray


def row_errors(Q: np.ndarray, K: np.ndarray, V: np.ndarray, masker: M.Masker,
               kv_head: tuple[int, ...], index: int = 0, n_layers: int = 1) -> RowErrors:
    """What one subset rule loses in every row of one layer, computed directly: it checks
    eps = TV(p, p_hat) and ||o - o_hat|| = eps ||v_drop - v_kept|| (notebook 08)."""
    Q, K, V = (np.asarray(a, np.float64) for a in (Q, K, V))
    sel = M.select(masker, Q, K, kv_head, index, n_layers)
    if sel.weights is not None:
        raise ValueError(f"{masker.name} weights its keys: the identity is for subsets")
    layer = M.make_layer(Q, K, kv_head, index, n_layers)
    P = M.softmax_block(M.block_scores(layer, 0, layer.n))[1]
    keep = sel.keep
    Vh = V[list(kv_head)]  # (H, n, d)
    eps = np.where(keep, 0.0, P).sum(axis=-1)
    P_hat = np.where(keep, P, 0.0) / np.maximum(1 - eps, 1e-300)[..., None]
    o, o_hat = P @ Vh, P_hat @ Vh
    v_kept = o_hat
    v_drop = np.where(keep, 0.0, P) @ Vh / np.where(eps > 0, eps, 1)[..., None]
    return RowErrors(eps, 0.5 * np.abs(P - P_hat).sum(axis=-1),
                     np.linalg.norm(o - o_hat, axis=-1),
                     eps * np.linalg.norm(v_drop - v_kept, axis=-1),
                     np.where(keep[..., 0], 0.0, P[..., 0]))
