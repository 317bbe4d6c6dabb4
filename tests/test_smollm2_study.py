"""experiments.smollm2: the study's pieces on synthetic data, and the quick cached sweep."""

from __future__ import annotations

import numpy as np
import pytest
from test_smollm2 import needs_smol

from hsr_lab import theory
from hsr_lab.data import smollm2
from hsr_lab.experiments import smollm2 as study


def test_paper_threshold_on_gaussian_keys_activates_the_gaussian_share():
    rng = np.random.default_rng(0)
    n, m = 4096, 64
    Q, K = rng.normal(0, 1.5, (n, 64)), rng.normal(0, 0.7, (n, 64))
    S = study.decoding_scores(Q, K, n, m)
    count = (S > study.paper_b(Q[n - m:], K, n)).sum(axis=1).mean()
    assert count == pytest.approx(theory.expected_activated(n), rel=0.15)
    assert np.isneginf(S[0, n - m + 1:]).all() and np.isfinite(S[-1]).all()  # causal rows


def test_row_threshold_uses_only_the_visible_keys():
    rng = np.random.default_rng(1)
    S = study.decoding_scores(rng.normal(size=(50, 64)), rng.normal(size=(50, 64)), 50, 10)
    b = study.row_b(S)
    for i, row in enumerate(S):
        seen = row[np.isfinite(row)]
        assert len(seen) == 41 + i
        assert b[i] == pytest.approx(seen.mean() + seen.std() * np.sqrt(0.4 * np.log(len(seen))))


def test_streaming_and_top_k_keep_k_entries_and_top_k_drops_least():
    rng = np.random.default_rng(2)
    n, m = 300, 20
    S = study.decoding_scores(rng.normal(size=(n, 64)), rng.normal(size=(n, 64)), n, m)
    P, rows = study.softmax_rows(S), np.arange(n - m, n)
    k = rng.integers(1, 40, size=m)
    k[:3] = (1, 4, 5)
    stream, top = study.streaming_mask(rows, n, k), study.topk_mask(P, k)
    assert (stream.sum(axis=1) == k).all() and (top.sum(axis=1) == k).all()
    long = k > study.SINKS  # these keep the newest token as well as the first 4
    assert stream[:, :1].all() and stream[np.arange(m), rows][long].all()
    assert not stream[np.arange(m), rows][~long].any()
    assert not (stream & ~np.isfinite(S)).any()
    mass = lambda mask: np.where(mask, P, 0).sum(axis=1)  # noqa: E731
    assert (mass(top) >= mass(stream) - 1e-12).all()


def test_measured_error_never_exceeds_the_bound():
    rng = np.random.default_rng(3)
    for trial in range(5):
        n, m = 200, 16
        S = study.decoding_scores(rng.normal(size=(n, 64)) * (1 + trial),
                                  rng.normal(size=(n, 64)), n, m)
        P, V = study.softmax_rows(S), rng.normal(size=(n, 64))
        keep = S > np.quantile(S[np.isfinite(S)], 0.9 - 0.2 * trial)
        eps = 1 - np.where(keep, P, 0).sum(axis=1)
        assert study.approximation_error(P, keep, V) <= theory.softmax_error_bound(
            eps, np.abs(V).max()) + 1e-12


def test_unrope_inverts_rope_and_participation_ratio_spans_1_to_d():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(3, 40, 64)).astype(np.float32)
    np.testing.assert_allclose(study.unrope(smollm2.rope(x)), x, atol=1e-5)
    assert study.participation_ratio(rng.normal(size=(4000, 64))) > 55
    line = rng.normal(size=(500, 1)) * rng.normal(size=(1, 64))
    assert study.participation_ratio(line + 1e-6 * rng.normal(size=(500, 64))) < 1.01


@needs_smol
def test_quick_study_is_cached_and_consistent(tmp_path, monkeypatch):
    monkeypatch.setenv("HSR_LAB_CACHE_DIR", str(tmp_path))
    s = study.smollm2_study(quick=True)
    L, N = len(s.layers), len(s.sizes)
    assert s.count.shape == (L, 9, N) and s.eps_topk.shape == (L, 9) and s.norms.shape[0] == L
    assert s.pr_post.shape == s.pr_pre.shape == (L, 3)
    assert s.pca_post.shape == (L, 3, 64)
    np.testing.assert_allclose(s.pca_pre.sum(axis=-1), 1.0)
    for name in ("work_post", "work_pre", "quest", "proj_share", "proj_work"):
        assert getattr(s, name).shape == (L, 9) and (getattr(s, name) >= 0).all()
    assert (s.quest <= 1).all() and (s.proj_share <= 1).all()
    assert (s.count_max <= s.sizes).all() and (s.count <= s.count_max).all()
    for method in ("hsr", "hsr_sink", "streaming", "topk"):
        assert (getattr(s, f"err_{method}") <= getattr(s, f"bound_{method}") + 1e-9).all()
    assert (s.eps_topk <= s.eps_hsr_sink + 1e-9).all()  # top-k is the best at equal count
    assert (s.eps_hsr_sink <= s.eps_hsr + 1e-9).all()
    assert (s.sink4 >= s.sink0).all() and "Q4_1" in repr(s)
    assert 0 < s.fit().slope < 1.2 and s.gaussian_fit().slope < 0.8
    E = len(study.ESTIMATORS)
    assert s.est_kept.shape == s.est_eps.shape == s.est_sigma.shape == (L, 9, E)
    assert ((0 <= s.est_eps) & (s.est_eps <= 1)).all() and (s.est_sigma > 0).all()
    np.testing.assert_allclose(s.est_kept[..., 0], s.count[..., -1])  # uncentred = paper_b
    for kept_set in study.GAP_SETS:
        applies, holds = (getattr(s, f"gap_{k}_{kept_set}") for k in ("applies", "holds"))
        assert ((0 <= holds) & (holds <= applies) & (applies <= 1)).all()
        excess = getattr(s, f"gap_excess_{kept_set}")
        assert (excess[~np.isnan(excess)] <= 1e-9).all()  # the bound is never below eps
    # The statistics notebook 07 asserts for C17, in quick mode (layers 0, 3 and 15).
    late, first = list(s.layers).index(15), list(s.layers).index(0)
    sink = s.sink0.mean(axis=1)
    assert sink[late] > 20 / s.sizes[-1] > sink[first]  # a sink in layer 15, not in layer 0
    assert s.norms[late, 0] > 10 * np.median(s.norms[late, 1:])  # a massive hidden state
    assert s.eps_hsr.mean() > 0.5  # the paper's b (uncentred sigma_a) drops most of the mass
    assert s.est_kept[late, :, 0].mean() < 1  # the uncentred sigma_a: nothing in a sink layer
    assert (s.est_kept[..., 1] >= s.est_kept[..., 0]).all()  # centring only lowers b
    assert s.gap_holds_hsr_sink.mean() < 0.25  # gamma + beta > 1 in few rows
    keeps = s.count[..., -1] >= 1
    assert s.work_post[keeps].mean() > 0.8 and s.quest[keeps].mean() > 0.6  # nearly a scan
    one = s.kept == 1  # every row keeps token 0 alone: StreamingLLM is "+ token 0" there
    assert one.any()
    np.testing.assert_allclose(s.eps_streaming[one], s.eps_hsr_sink[one])
    again = study.smollm2_study(quick=True)
    np.testing.assert_array_equal(again.count, s.count)
    assert len(list(tmp_path.glob("smollm2_study-*.npz"))) == 1


def test_projection_filter_never_loses_a_reported_key():
    rng = np.random.default_rng(5)
    K = rng.normal(size=(600, 64)) @ np.diag(np.linspace(3, 0.1, 64))
    A = rng.normal(size=(6, 64))
    t = np.quantile(A @ K.T, 0.97)
    share, work = study.projected_candidates(K, A, t, r=8)
    assert (A @ K.T >= t).mean() <= share <= 1 and work > 0
    axes = np.linalg.svd(K - K.mean(axis=0), full_matrices=False)[2][:8].T
    slack = np.linalg.norm(A - A @ axes @ axes.T, axis=1) * np.linalg.norm(
        K - K @ axes @ axes.T, axis=1).max()
    passes = (A @ axes) @ (K @ axes).T >= (t - slack)[:, None]
    assert passes[A @ K.T >= t].all()
    assert 0 <= study.quest_pages(K, A, t) <= 1 and study.tree_work(K, A, t) > 0


@needs_smol
def test_one_head_view_agrees_with_the_study(tmp_path, monkeypatch):
    """``head_threshold`` (notebook 07's panel) gives the study's numbers at the largest n."""
    monkeypatch.setenv("HSR_LAB_CACHE_DIR", str(tmp_path))
    s = study.smollm2_study(quick=True)
    ex = study.study_extraction(quick=True)
    for li, layer in enumerate(s.layers):
        for head in (0, 4):
            h = study.head_threshold(ex, int(layer), head, m=s.m)
            assert h.kept.mean() == pytest.approx(s.count[li, head, -1])
            for name in ("hsr", "hsr_sink", "streaming", "topk"):
                assert h.eps[name].mean() == pytest.approx(getattr(s, f"eps_{name}")[li, head])
            rows = study.head_threshold(ex, int(layer), head, per_row=True, m=s.m)
            assert rows.kept.mean() == pytest.approx(s.count_row[li, head, -1])
    with pytest.raises(ValueError, match="c must"):
        study.head_threshold(ex, int(s.layers[0]), 0, c=0.0)


def _rows_with_a_sink(seed: int, n: int = 300, m: int = 12) -> np.ndarray:
    """Scores (m, n) of causal rows whose token 0 scores far above the rest."""
    rng = np.random.default_rng(seed)
    S = study.decoding_scores(rng.normal(size=(n, 64)), rng.normal(size=(n, 64)), n, m)
    S[:, 0] += np.linspace(0, 4 * np.log(n), m)  # from no sink to a massive one
    return S


def test_gap_bound_is_the_best_bound_over_the_kept_scores_and_never_below_eps():
    """gap_bound against brute force over r with theory.dropped_mass_bound, and against the
    measured eps: eps_i <= n^{1-gamma} e^{-(tau_1 - tau_2)} for every row that keeps an entry."""
    for seed in range(4):
        S = _rows_with_a_sink(seed)
        P = study.softmax_rows(S)
        keep = S > np.quantile(S[np.isfinite(S)], 0.9 + 0.02 * seed)
        keep[:, 0] |= seed % 2 == 1  # token 0 kept by hand in half the trials
        gap = study.gap_bound(S, keep)
        eps = 1 - np.where(keep, P, 0).sum(axis=1)
        for i, row in enumerate(S):
            kept = np.sort(row[keep[i] & np.isfinite(row)])[::-1]
            if not len(kept):
                assert np.isnan(gap["bound"][i]) and np.isnan(gap["gamma"][i])
                continue
            n_i = np.isfinite(row).sum()
            tau_2 = row[~keep[i] & np.isfinite(row)].max()
            r = np.arange(1, len(kept) + 1)
            brute = theory.dropped_mass_bound(n_i, np.log(r) / np.log(n_i), kept - tau_2)
            assert gap["bound"][i] == pytest.approx(np.min(brute), rel=1e-9)
            assert gap["bound"][i] == pytest.approx(
                n_i ** (1 - gap["gamma"][i] - gap["beta"][i]), rel=1e-9)
            assert eps[i] <= gap["bound"][i] * (1 + 1e-12)
            assert (gap["bound"][i] < 1) == (gap["gamma"][i] + gap["beta"][i] > 1)
    massive = _rows_with_a_sink(0)
    keep = np.zeros_like(massive, dtype=bool)
    keep[:, 0] = True
    gap = study.gap_bound(massive, keep)
    assert gap["bound"][-1] < 1e-3 < 1 <= gap["bound"][0]  # only a massive sink makes it small


def test_gap_bound_when_nothing_is_kept_or_nothing_is_dropped():
    S = _rows_with_a_sink(5, n=50, m=3)
    none, everything = study.gap_bound(S, np.zeros_like(S, dtype=bool)), study.gap_bound(
        S, np.isfinite(S))
    assert np.isnan(none["bound"]).all() and np.isnan(none["beta"]).all()
    np.testing.assert_array_equal(everything["bound"], 0.0)
    assert np.isinf(everything["beta"]).all()


def test_sigma_a_estimators_on_gaussian_keys_with_a_common_mean():
    """Keys N(mu, sigma_k^2 I): the centred and the sampled estimators find the score spread
    sigma_k ||q|| / sqrt(d); the uncentred one counts the mean as spread."""
    rng = np.random.default_rng(6)
    n, m, sigma_k = 4096, 32, 0.7
    K = rng.normal(0, sigma_k, (n, 64)) + 2.0  # a common component, as real keys have
    Q = rng.normal(size=(n, 64))
    S = study.decoding_scores(Q, K, n, m)
    rows = Q[n - m:]
    est = study.sigma_a_estimates(S, rows, K, sample=2048, seed=0)
    true = sigma_k * np.linalg.norm(rows, axis=1) / 8
    assert np.sqrt(np.mean(true**2)) == pytest.approx(est["centred"][0], rel=0.02)
    np.testing.assert_allclose(est["sampled"], true, rtol=0.1)
    assert est["uncentred"][0] > 2 * est["centred"][0]
    full = study.sigma_a_estimates(S, rows, K, sample=n)  # the sample is the whole row
    np.testing.assert_allclose(full["sampled"], [r[np.isfinite(r)].std() for r in S])
    assert study.paper_b(rows, K, n) == pytest.approx(
        est["uncentred"][0] * np.sqrt(0.4 * np.log(n)))
    with pytest.raises(ValueError, match="sample"):
        study.sigma_a_estimates(S, rows, K, sample=0)
