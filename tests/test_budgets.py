"""experiments.budgets: the equal-budget study on SmolLM2, its pieces, its cache, its CLI."""

from __future__ import annotations

import csv
import warnings
from pathlib import Path

import numpy as np
import pytest
from test_smollm2 import needs_smol

from hsr_lab import cache, config
from hsr_lab.attention import maskers as M
from hsr_lab.cli import main
from hsr_lab.data import smollm2, texts
from hsr_lab.experiments import budget_verdict as V
from hsr_lab.experiments import budgets as B
from hsr_lab.experiments.masked_lm import Captured, match_parameters, run_masked, token_nll


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("budgets_cache")


@pytest.fixture
def quick_study(shared_cache, monkeypatch):
    """The quick study, computed once for the module (its cache is shared)."""
    monkeypatch.setenv(config.CACHE_DIR_ENV, str(shared_cache))
    return B.budget_study(quick=True)


# ---------------------------------------------------------------- pure pieces


def test_bad_settings_are_refused_with_a_clear_error():
    with pytest.raises(ValueError, match=r"budget fraction must be a number in \(0, 1\]"):
        B.setting(True, budgets=(0.5, 1.5))
    with pytest.raises(ValueError, match=r"budget fraction"):
        B.setting(True, budgets=(0.0,))
    with pytest.raises(ValueError, match=r"unknown method\(s\) 'qest'"):
        B.setting(True, methods=("top_k", "qest"))
    with pytest.raises(ValueError, match="unknown text 'poetry'"):
        B.setting(True, tokens=(("poetry", 100),))
    with pytest.raises(ValueError, match="shorter than the budget's floor"):
        B.setting(True, tokens=(("long", 5),))
    with pytest.raises(ValueError, match="unknown text"):
        texts.text("poetry")
    with pytest.raises(ValueError, match="max_tokens"):
        texts.text("long", 0)


def test_bootstrap_interval_widens_for_correlated_losses():
    rng = np.random.default_rng(0)
    noise = rng.standard_normal(4096)
    smooth = np.convolve(noise, np.ones(32) / np.sqrt(32), mode="same")  # correlated
    m, lo, hi = B.bootstrap_mean(smooth, block=64)
    _, lo1, hi1 = B.bootstrap_mean(smooth, block=1)
    assert lo < m < hi and hi - lo > 2.5 * (hi1 - lo1)  # iid resampling would be too narrow
    m, lo, hi = B.bootstrap_mean(noise + 0.2)
    assert lo < 0.2 < hi and hi - lo < 0.2
    with pytest.raises(ValueError, match="at least one"):
        B.bootstrap_mean(np.array([]))


def test_match_parameters_land_on_the_budget_counts():
    rng = np.random.default_rng(1)
    L, n = 2, 200
    rows = np.arange(7, n, 8)
    K = rng.standard_normal((L, 3, n, 64)).astype(np.float32)
    Qall = (rng.standard_normal((L, 9, n, 64)) * 1.5 + 0.3).astype(np.float32)
    q_rms = np.sqrt((Qall.astype(np.float64) ** 2).sum(-1).mean(-1))
    cap = Captured(rows, Qall[:, :, rows], K, q_rms)
    budgets = [M.Budget(1 / 16, 4), M.Budget(1 / 4, 4)]
    matched = match_parameters(cap, budgets)
    for b, target in zip(range(2), [L * 9 * budgets[i].keys(rows).sum() for i in range(2)],
                         strict=True):
        for kind, make in (("scalar_b", lambda c: M.ScalarThreshold(c=c)),
                           ("row_b", lambda c: M.RowThreshold(c=c)),
                           ("row_b_sampled", lambda c: M.RowThreshold(c=c, samples=64)),
                           ("top_p", lambda p: M.TopP(p=p))):
            kept = 0
            for layer in range(L):
                sel = M.select(make(matched[kind][b]), Qall[layer], K[layer], index=layer)
                kept += sel.kept[:, rows].sum()
            assert kept == pytest.approx(target, rel=0.01, abs=3), kind
        assert matched["magicpig"][b] >= 2  # its 4 sinks + 64 local keys exceed these budgets


def test_magicpig_tables_are_chosen_by_the_expected_sampled_count():
    from hsr_lab.attention.maskers.magicpig import sampling_probability
    from hsr_lab.experiments.masked_lm import _tables_for

    u = np.geomspace(1e-5, 0.5, 200)
    counts = np.random.default_rng(2).integers(0, 50, 200).astype(float)
    expected = lambda L: counts @ sampling_probability(u, L)  # noqa: E731
    for target in (expected(7) + 0.1, expected(150), expected(3000) - 0.1):
        L = _tables_for(u, counts, target)
        assert abs(expected(L) - target) <= min(abs(expected(L + 1) - target),
                                                abs(expected(L - 1) - target))
    assert _tables_for(u, counts, 0.0) == 2


def test_texts_are_deterministic_of_two_kinds_and_calibration_is_apart():
    pytest.importorskip("gguf")
    long_ = texts.text("long", 300)
    code = texts.text("python", 300)
    calib = texts.calibration_text(300)
    assert long_ == texts.text("long", 300) and code.startswith("# Author")
    assert "def " in texts.text("python", 2048) and "class " in texts.text("python", 2048)
    for t in (long_, code, calib):
        assert len(smollm2.tokenize(t)) <= 300
    full = texts.text("long", 4096) + texts.text("python", 4096)
    pieces = [calib[i:i + 60] for i in range(0, len(calib) - 60, 30)]
    shared = [p for p in pieces if p in full and p.strip() and len(set(p)) > 10]
    assert not shared, shared[:3]


# ---------------------------------------------------------------- with the model


@needs_smol
def test_dense_rule_through_the_masked_code_gives_zero_dnll():
    ids = B.token_ids("long", 64)
    w = smollm2.load_weights()
    x = w["token_embd.weight"][ids]
    for layer in range(smollm2.N_LAYERS):
        x = smollm2.block(x, w, layer)[0]
    plain = token_nll(x, ids, w)
    masked = run_masked(ids, M.make("dense"))
    assert np.abs(masked.nll - plain).max() < 1e-4
    assert abs(masked.nll.mean() - plain.mean()) < 1e-6
    assert masked.tau.max() == 0 and np.allclose(masked.kept, 1) and masked.missed == 0


@needs_smol
def test_quick_study_is_cached_consistent_and_matched(quick_study, shared_cache, monkeypatch):
    s = quick_study
    st = s.setting
    assert len(s.results) == len(st.tokens) * (len(st.methods) * len(st.budgets) + 1)
    for text, _ in st.tokens:
        dense = s.row(text, "dense", "dense")
        assert dense["dnll"] == 0 and dense["tau"] == 0
        for b in st.budgets:
            label = B.label_of(b)
            want = M.Budget(b, st.floor).mean_share(dense["tokens"])
            top = s.row(text, "top_k", label)
            assert top["kept_share"] == pytest.approx(want, rel=1e-9)  # exactly k_i per row
            assert top["scored_share"] == 1.0
            for method in ("scalar_b", "row_b", "top_p"):  # matched on dense, run on sparse
                assert 0.3 * want < s.row(text, method, label)["kept_share"] < 3 * want
        for r in s.results:
            if r.text == text:
                assert r.missed == 0 and r.nll.shape == (dense["tokens"] - 1,)
                assert r.kept.shape == r.tau.shape == (smollm2.N_LAYERS, 9)
        quest = s.get(text, "quest", B.label_of(st.budgets[0]))
        assert np.allclose(quest.kept[:2], 1) and quest.tau[:2].max() == 0  # dense layers 0, 1
    monkeypatch.setenv(config.CACHE_DIR_ENV, str(shared_cache))
    again = B.budget_study(quick=True)
    assert [r["dnll"] for r in again.table] == [r["dnll"] for r in s.table]


@needs_smol
def test_a_broken_cache_file_is_recomputed_not_trusted(quick_study, shared_cache, monkeypatch):
    monkeypatch.setenv(config.CACHE_DIR_ENV, str(shared_cache))
    files = sorted(Path(shared_cache).glob("budgets_run-*.npz"))
    assert files
    victim = files[0]
    victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])  # an interrupted write
    with pytest.warns(UserWarning, match="unreadable or stale"):
        again = B.budget_study(quick=True)
    assert [r["dnll"] for r in again.table] == [r["dnll"] for r in quick_study.table]
    assert not list(Path(shared_cache).glob(".*.tmp"))  # atomic writes leave nothing behind
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cache.cached("budgets_probe", {"a": 1}, lambda: {"x": np.arange(3)})


@needs_smol
def test_verdict_and_why_read_the_study(quick_study):
    label = B.label_of(quick_study.setting.budgets[0])
    v = V.verdict(quick_study, "long", label)
    assert 1 <= v.paper_rank <= v.methods <= len(quick_study.setting.methods)
    assert f"{v.paper:+.3f}" in v.sentence()
    ranks = V.ranking(quick_study, "long", label)
    assert [d for _, d in ranks] == sorted(d for _, d in ranks)
    limit = V.COMPARABLE * V.budget_share(quick_study, "long", label)
    assert all(quick_study.row("long", m, label)["kept_share"] <= limit for m, _ in ranks)
    mine = quick_study.row("long", "scalar_b", label)
    for _, dnll, work in V.dominating(quick_study, "long", label):
        assert dnll < mine["dnll"] and work <= mine["scored_share"]
    lo, hi = V.reachable_work(quick_study, "long", "quest")
    assert 0 < lo <= hi
    why = V.why(quick_study, "long", label)
    assert 0 <= why.empty_late <= 1 and why.pages_scored > 0


@needs_smol
def test_float32_forward_is_accurate_enough(shared_cache, monkeypatch):
    monkeypatch.setenv(config.CACHE_DIR_ENV, str(shared_cache))
    p = V.precision_check(quick=True)
    gap = np.abs(p["dense_float32"] - p["dense_float64"]).max()
    effect = np.abs((p["top_k_float64"] - p["dense_float64"]).mean())
    assert gap < 1e-3 and gap < 0.1 * effect
    assert abs((p["top_k_float32"] - p["dense_float32"]).mean() - (
        p["top_k_float64"] - p["dense_float64"]).mean()) < 1e-3


@needs_smol
def test_cli_writes_the_csv_and_refuses_bad_input(quick_study, shared_cache, monkeypatch,
                                                   tmp_path, capsys):
    monkeypatch.setenv(config.CACHE_DIR_ENV, str(shared_cache))
    assert main(["budgets", "--quick", "--out", str(tmp_path)]) == 0
    with open(tmp_path / "budgets.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == len(quick_study.table)
    assert {r["method"] for r in rows} == {"dense", *quick_study.setting.methods}
    assert (tmp_path / "budgets_layers.csv").exists()
    assert main(["budgets", "--quick", "--budgets", "2"]) == 2
    assert "in (0, 1]" in capsys.readouterr().err
    assert main(["budgets", "--quick", "--methods", "qest"]) == 2
    assert "unknown method" in capsys.readouterr().err
    assert main(["budgets", "--quick", "--texts", "poetry"]) == 2


@needs_smol
def test_figures_and_the_panel_draw(quick_study, shared_cache, monkeypatch):
    import matplotlib.pyplot as plt

    from hsr_lab.figures import REGISTRY
    from hsr_lab.figures.budgets import view_budget_head
    from hsr_lab.widgets.budgets import budget_panel

    monkeypatch.setenv(config.CACHE_DIR_ENV, str(shared_cache))
    for name in ("budgets_quality", "budgets_work", "budgets_layers"):
        fig = REGISTRY[name].func(quick=True)
        assert fig.axes
        plt.close(fig)
    fig = view_budget_head("h2o", quick_study.setting.budgets[0], 3, 4, quick=True)
    assert "H2O" in fig.axes[0].get_title()
    plt.close(fig)
    with pytest.raises(ValueError, match="budget must be one of"):
        view_budget_head("h2o", 0.3, 3, 4, quick=True)
    with pytest.raises(ValueError, match="head must be"):
        view_budget_head("h2o", quick_study.setting.budgets[0], 3, 9, quick=True)
    panel = budget_panel(quick=True)
    first = panel.png
    panel.controls["method"].value = "streaming"
    assert panel.message is None and panel.png != first
