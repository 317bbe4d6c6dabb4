"""The paper's threshold against the rules practitioners deploy, at equal budgets, end to end.

On SmolLM2-135M (4-bit Q4_1 weights) and two texts (``data.texts``: English prose and Python
source), every rule of ``attention.maskers`` replaces attention in all 30 layers, at kept
budgets of 1/64 .. 1/4 of each row's prefix (at least 16 keys):

- budgeted rules (top-k, StreamingLLM, H2O, SnapKV, Quest, Double Sparsity) keep k_i keys;
- swept rules (the paper's scalar b, per-row b exact and sampled, top-p, MagicPIG) have their
  one continuous parameter set so that their mean kept count on the dense model's queries and
  keys equals the budget's (``masked_lm.match_parameters``: counts, never quality); the
  paper's own c = 0.4 is run as well, at whatever it keeps;
- Double Sparsity's channels come from a calibration text (``texts.calibration_text``); no
  parameter is fitted on an evaluation text.

Each run reports the mean per-token loss change against the dense model, dNLL = mean_t
(nll_t - nll_t^dense) with a moving-block bootstrap interval (blocks of 64 tokens), the
perplexity change exp(mean nll) - exp(mean nll^dense), and per layer and head the kept share,
keys scored, dropped mass tau and relative L2 error of the attention output.

Every run is cached on its own (``hsr_lab.cache``: atomic files), so an interrupted study
resumes where it stopped and a partial file is recomputed, never trusted.
"""

from __future__ import annotations

import csv
import functools
import io
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from hsr_lab import cache
from hsr_lab.attention import maskers as M
from hsr_lab.data import smollm2, texts
from hsr_lab.data.smollm2 import N_LAYERS

from .common import progress, resolve_quick
from .masked_lm import match_parameters, run_masked

BUDGETS = (1 / 64, 1 / 32, 1 / 16, 1 / 8, 1 / 4)
METHODS = tuple(m for m in M.METHODS if m != "dense")
PAPER = "paper"  # the label of the paper's own c = 0.4 run of scalar_b
LABELS = {"dense": "dense", "scalar_b": "paper's scalar b", "row_b": "per-row b (exact)",
          "row_b_sampled": "per-row b (64 sampled)", "top_k": "top-k (oracle)",
          "top_p": "top-p (oracle)", "streaming": "StreamingLLM", "h2o": "H2O",
          "snapkv": "SnapKV", "quest": "Quest", "double_sparsity": "Double Sparsity",
          "magicpig": "MagicPIG"}
BLOCK = 64  # tokens per bootstrap block


@dataclass(frozen=True)
class Setting:
    """What a study runs: texts and their lengths (tokens), budgets (shares of the prefix),
    methods, the budget floor, the calibration text's length, every how many rows the dense
    run keeps queries for matching budgets, and the seed (sampled rules, bootstrap)."""

    tokens: tuple[tuple[str, int], ...] = (("long", 4096), ("python", 2048))
    budgets: tuple[float, ...] = BUDGETS
    methods: tuple[str, ...] = METHODS
    floor: int = M.FLOOR
    calibration_tokens: int = 2048
    capture_every: int = 64
    seed: int = 0
    blas_threads: int = 1
    workers: int = 2

    def __post_init__(self) -> None:
        for b in self.budgets:
            M.Budget(b, self.floor)  # a clear error for a budget outside (0, 1]
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown:
            raise ValueError(f"unknown method(s) {', '.join(map(repr, unknown))}; known: "
                             f"{', '.join(METHODS)}")
        for kind, n in self.tokens:
            if kind not in texts.TEXTS:
                raise ValueError(f"unknown text {kind!r}; known: {', '.join(texts.TEXTS)}")
            if n < self.floor:
                raise ValueError(f"text {kind!r} of {n} tokens is shorter than the budget's "
                                 f"floor of {self.floor} keys: every rule would keep all")

    def params(self) -> dict[str, object]:
        """The setting as JSON-able parameters (the cache key)."""
        return dict(tokens=[list(t) for t in self.tokens], budgets=list(self.budgets),
                    methods=list(self.methods), floor=self.floor,
                    calibration_tokens=self.calibration_tokens,
                    capture_every=self.capture_every, seed=self.seed,
                    blas_threads=self.blas_threads)


QUICK = Setting(tokens=(("long", 96), ("python", 96)), budgets=(1 / 8, 1 / 4),
                calibration_tokens=64, capture_every=8, floor=8, workers=1)


def setting(quick: bool | None = None, **changes: object) -> Setting:
    """The full setting (4096 tokens of prose, 2048 of Python source, five budgets, two runs at
    a time) or the quick one (96 tokens each, two budgets), with ``changes``."""
    return replace(QUICK if resolve_quick(quick) else Setting(), **changes)


# ----------------------------------------------------------------------------- pieces
def token_ids(kind: str, n: int, seed: int = 0) -> np.ndarray:
    """The token ids of the evaluation text ``kind``, at most n tokens."""
    return np.array(smollm2.tokenize(texts.text(kind, n, seed)), np.int64)


def channels(s: Setting) -> np.ndarray:
    """Double Sparsity's channels per (layer, query head), (30, 9, 4), from the calibration
    text (cached)."""
    params = dict(tokens=s.calibration_tokens, seed=s.seed, share=M.channels.SHARE)

    def compute() -> dict[str, np.ndarray]:
        with threadpool_limits(s.blas_threads):
            ex = smollm2.extract(texts.calibration_text(s.calibration_tokens, s.seed),
                                 max_tokens=s.calibration_tokens, progress=False)
        r = smollm2.HEAD_DIM // M.channels.SHARE
        return dict(channels=np.stack([M.calibrate_channels(ex.Q[layer], ex.K[layer],
                                                            smollm2.KV_HEAD, r)
                                       for layer in range(N_LAYERS)]))

    return cache.cached("budgets_channels", params, compute)["channels"]


def dense_and_matched(s: Setting, kind: str, n: int, force: bool = False
                      ) -> dict[str, np.ndarray]:
    """The dense run of one text and, from its queries and keys, the parameter of every swept
    rule at every budget (``match_parameters``), cached."""
    params = dict(s.params(), text=kind, n=n)

    def compute() -> dict[str, np.ndarray]:
        ids = token_ids(kind, n, s.seed)
        rows = np.arange(s.capture_every - 1, len(ids), s.capture_every)
        rows = rows[rows > 0]
        with threadpool_limits(s.blas_threads):
            run = run_masked(ids, M.make("dense"), capture_rows=rows)
        budgets = [M.Budget(b, s.floor) for b in s.budgets]
        matched = match_parameters(run.captured, budgets, s.seed)
        return run.arrays() | {f"param_{k}": v for k, v in matched.items()} | dict(ids=ids)

    return cache.cached("budgets_dense", params, compute, force=force)


def masker_for(method: str, budget: float, param: float, s: Setting,
               chans: np.ndarray | None) -> M.Masker:
    """The masker of one (method, budget): budgeted rules take the budget, swept ones the
    matched parameter."""
    if method in M.BUDGETED:
        extra = {"channels": chans} if method == "double_sparsity" else {}
        return M.make(method, M.Budget(budget, s.floor), **extra)
    name = M.SWEPT[method]
    value = int(param) if name == "tables" else float(param)
    extra = {"seed": s.seed} if method in ("row_b_sampled", "magicpig") else {}
    return M.make(method, **{name: value}, **extra)


def one_run(s: Setting, kind: str, n: int, method: str, label: str, budget: float,
            param: float, ids: np.ndarray, chans: np.ndarray | None, force: bool = False
            ) -> dict[str, np.ndarray]:
    """One (text, method, budget) pass of the model, cached on its own."""
    params = dict(text=kind, n=n, method=method, label=label, budget=budget,
                  param=float(param), floor=s.floor, seed=s.seed, threads=s.blas_threads,
                  channels=None if chans is None else chans.tolist(),
                  ids=int(np.sum(ids * np.arange(1, len(ids) + 1)) % (1 << 61)))

    def compute() -> dict[str, np.ndarray]:
        with threadpool_limits(s.blas_threads):
            run = run_masked(ids, masker_for(method, budget, param, s, chans))
        if run.missed:
            raise RuntimeError(f"{method}: the certified pages missed {run.missed} keys")
        return run.arrays()

    return cache.cached("budgets_run", params, compute, force=force)


# ----------------------------------------------------------------------------- the study
@dataclass(frozen=True, eq=False)
class Result:
    """One run: text, method, label ("1/16" or "paper"), budget share (NaN for "paper"),
    the rule's parameter, and the run's arrays (``MaskedRun.arrays``)."""

    text: str
    method: str
    label: str
    budget: float
    param: float
    arrays: dict[str, np.ndarray] = field(repr=False)

    def __getattr__(self, name: str) -> np.ndarray:
        try:
            return self.__dict__["arrays"][name]
        except KeyError:
            raise AttributeError(name) from None


@dataclass(frozen=True, eq=False)
class BudgetStudy:
    """Every run of a study, with the dense run of each text (``dense[text]``)."""

    setting: Setting
    dense: dict[str, Result]
    results: list[Result]

    def get(self, text: str, method: str, label: str) -> Result:
        """The run of (text, method, label), e.g. ("long", "quest", "1/16")."""
        for r in self.results:
            if (r.text, r.method, r.label) == (text, method, label):
                return r
        raise KeyError(f"no run ({text!r}, {method!r}, {label!r}) in this study")

    def delta_nll(self, r: Result) -> tuple[float, float, float]:
        """Mean per-token dNLL against dense (nats) and its 95% block-bootstrap interval."""
        return bootstrap_mean(r.nll - self.dense[r.text].nll, BLOCK, seed=self.setting.seed)

    def delta_ppl(self, r: Result) -> float:
        """exp(mean nll) - exp(mean nll of the dense run)."""
        return float(np.exp(r.nll.mean()) - np.exp(self.dense[r.text].nll.mean()))

    @functools.cached_property
    def table(self) -> list[dict[str, object]]:
        """``rows()``, computed once."""
        return self.rows()

    def row(self, text: str, method: str, label: str) -> dict[str, object]:
        """The table's row of one run."""
        for r in self.table:
            if (r["text"], r["method"], r["label"]) == (text, method, label):
                return r
        raise KeyError(f"no run ({text!r}, {method!r}, {label!r}) in this study")

    def rows(self) -> list[dict[str, object]]:
        """One dict per run (the CSV's rows), overall means over layers and heads."""
        out = []
        for r in [*self.dense.values(), *self.results]:
            mean, lo, hi = self.delta_nll(r)
            out.append(dict(text=r.text, method=r.method, label=r.label,
                            budget=r.budget, param=r.param,
                            kept_share=float(r.kept.mean()), scored_share=float(r.scored.mean()),
                            tau=float(r.tau.mean()), rel_l2=float(r.err.mean()),
                            empty_rows=float(r.empty.mean()), dnll=mean, dnll_low=lo,
                            dnll_high=hi, dppl=self.delta_ppl(r),
                            nll_dense=float(self.dense[r.text].nll.mean()),
                            tokens=len(r.nll) + 1, seconds=float(r.seconds)))
        return out

    def layer_rows(self) -> list[dict[str, object]]:
        """One dict per (run, layer): means over the 9 heads (the per-layer CSV)."""
        out = []
        for r in self.results:
            for layer in range(N_LAYERS):
                out.append(dict(text=r.text, method=r.method, label=r.label, layer=layer,
                                kept_share=float(r.kept[layer].mean()),
                                scored_share=float(r.scored[layer].mean()),
                                tau=float(r.tau[layer].mean()),
                                rel_l2=float(r.err[layer].mean())))
        return out

    def __repr__(self) -> str:
        return (f"BudgetStudy({len(self.results)} runs; texts "
                f"{[f'{k} ({n} tokens)' for k, n in self.setting.tokens]}, budgets "
                f"{[label_of(b) for b in self.setting.budgets]}, "
                f"{len(self.setting.methods)} methods; SmolLM2-135M 4-bit)")


def label_of(budget: float) -> str:
    """'1/16' for 0.0625, or the number."""
    inverse = 1 / budget
    return f"1/{inverse:.0f}" if abs(inverse - round(inverse)) < 1e-9 else f"{budget:g}"


def budget_study(quick: bool | None = None, force: bool = False, **changes: object
                 ) -> BudgetStudy:
    """Run (or read from the cache) every (text, method, budget) of the setting."""
    s = setting(quick, **changes)
    chans = channels(s) if "double_sparsity" in s.methods else None
    dense, results = {}, []
    jobs = []
    for kind, n in s.tokens:
        base = dense_and_matched(s, kind, n, force)
        dense[kind] = Result(kind, "dense", "dense", 1.0, np.nan, _run_arrays(base))
        for method in s.methods:
            for i, b in enumerate(s.budgets):
                param = base[f"param_{method}"][i] if method in M.SWEPT else np.nan
                jobs.append((kind, n, method, label_of(b), b, param, base["ids"]))
            if method == "scalar_b":
                jobs.append((kind, n, method, PAPER, np.nan, M.PAPER_C, base["ids"]))
    arrays = _run_all(s, jobs, chans, force)
    for (kind, _, method, label, b, param, _), run in zip(jobs, arrays, strict=True):
        results.append(Result(kind, method, label, b, float(param), run))
    return BudgetStudy(s, dense, results)


def _job(s: Setting, job: tuple, chans: np.ndarray | None, force: bool
         ) -> dict[str, np.ndarray]:
    kind, n, method, label, b, param, ids = job
    return one_run(s, kind, n, method, label, b, param, ids,
                   chans if method == "double_sparsity" else None, force)


def _run_all(s: Setting, jobs: list[tuple], chans: np.ndarray | None, force: bool
             ) -> list[dict[str, np.ndarray]]:
    """Every job's arrays, in order; ``s.workers`` processes at a time (each run is cached
    as it finishes, so the parent reads back what the workers wrote)."""
    if s.workers <= 1:
        return [_job(s, job, chans, force) for job in progress(jobs, desc="budget study")]
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(s.workers, mp_context=multiprocessing.get_context("fork")) as pool:
        futures = [pool.submit(_job, s, job, chans, force) for job in jobs]
        return [f.result() for f in progress(futures, desc="budget study")]


def _run_arrays(base: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    keys = ("nll", "kept", "scored", "tau", "err", "empty", "missed", "seconds")
    return {k: base[k] for k in keys}


def bootstrap_mean(x: np.ndarray, block: int = BLOCK, draws: int = 2000, seed: int = 0
                   ) -> tuple[float, float, float]:
    """mean(x) and a 95% moving-block bootstrap interval: per-token losses are correlated over
    a few tokens, which a plain bootstrap would ignore. Blocks of ``block`` consecutive values
    (at most a sixteenth of len(x)) are drawn with replacement, as many as fit in len(x); the
    spread of the resampled means is centred on mean(x) (overlapping blocks count the first and
    last values less often, which would shift it)."""
    x = np.asarray(x, np.float64)
    if len(x) == 0:
        raise ValueError("x must hold at least one value")
    block = max(1, min(block, len(x) // 16))
    window = np.convolve(x, np.ones(block) / block, mode="valid")  # every block's mean
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0xB007]))
    means = window[rng.integers(0, len(window), (draws, len(x) // block))].mean(axis=1)
    lo, hi = np.quantile(means - means.mean(), [0.025, 0.975])
    return float(x.mean()), float(x.mean() + lo), float(x.mean() + hi)


# ----------------------------------------------------------------------------- output
def write_csv(study: BudgetStudy, folder: str | Path) -> list[Path]:
    """budgets.csv (one row per run) and budgets_layers.csv (per layer) in ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, rows in (("budgets.csv", study.table), ("budgets_layers.csv",
                                                       study.layer_rows())):
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: f"{v:.6g}" if isinstance(v, float) else v
                             for k, v in row.items()})
        path = folder / name
        with cache.atomic_write(path) as fh:
            fh.write(buffer.getvalue().encode())
        paths.append(path)
    return paths

