"""Maskers against direct, row-by-row statements of their definitions (brute force).

Every oracle here is written from the method's definition, one row and one head at a time,
in float64, without the blocked code's helpers; the maskers run in blocks of several sizes.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from conftest import examples
from hypothesis import given, settings
from hypothesis import strategies as st

from hsr_lab.attention import maskers as M
from hsr_lab.attention.maskers.magicpig import hyperplanes
from hsr_lab.attention.maskers.thresholds import sample_ids

H, G, D = 4, 2, 8
KV = (0, 0, 1, 1)


def instance(n: int, seed: int, scale: float = 1.0):
    rng = np.random.default_rng(seed)
    Q = rng.standard_normal((H, n, D)) * scale
    K = rng.standard_normal((G, n, D)) + 0.5 * rng.standard_normal(D)  # a shared mean
    K[:, 0] *= 3  # a sink-like first key
    V = rng.standard_normal((G, n, D))
    return Q, K, V


def rows_of(Q, K, h, i):
    """Row i of head h: the scores s_ij (j <= i) and probabilities p_ij, float64."""
    s = Q[h, i] @ K[KV[h], :i + 1].T / math.sqrt(D)
    p = np.exp(s - s.max())
    return s, p / p.sum()


def budget_k(f: float, floor: int, i: int) -> int:
    """k_i = min(i + 1, max(floor, ceil(f (i + 1)))), exactly (rational arithmetic)."""
    return min(i + 1, max(floor, math.ceil(Fraction(f).limit_denominator(10**6) * (i + 1))))


def kept(sel, h, i):
    return set(np.flatnonzero(sel.keep[h, i]).tolist())


def assert_top(values, chosen, k):
    """chosen is a top-k set of values: k entries, none smaller than any left out."""
    chosen = sorted(chosen)
    assert len(chosen) == k
    rest = np.setdiff1d(np.arange(len(values)), chosen)
    if len(chosen) and len(rest):
        assert values[chosen].min() >= values[rest].max()


def run(masker, Q, K, block, index=0, n_layers=1):
    sel = M.select(masker, Q, K, KV, index=index, n_layers=n_layers, block=block)
    n = Q.shape[1]
    assert not np.triu(np.ones((n, n), bool), 1)[None].__and__(sel.keep).any(), "j > i kept"
    return sel


BLOCKS = (1, 7, 64)


# ---------------------------------------------------------------- budget and registry


def test_budget_counts_and_bad_budgets():
    b = M.Budget(1 / 16)
    rows = np.arange(2000)
    assert b.keys(rows).tolist() == [budget_k(1 / 16, 16, i) for i in rows]
    assert b.keys(np.array([31, 511]))[1] == 32 and b.keys(np.array([5]))[0] == 6
    for bad in (0, -0.5, 1.01, float("nan"), True, "1/16", None):
        with pytest.raises(ValueError, match="budget fraction"):
            M.Budget(bad)
    with pytest.raises(ValueError, match="floor"):
        M.Budget(0.5, floor=0)
    assert "1/16" in str(b)


def test_make_names_the_methods_and_rejects_mistakes():
    with pytest.raises(ValueError, match="unknown method 'quset'"):
        M.make("quset", 0.1)
    with pytest.raises(ValueError, match="needs a budget"):
        M.make("top_k")
    with pytest.raises(ValueError, match="takes no budget"):
        M.make("scalar_b", 0.1)
    with pytest.raises(ValueError, match="budget fraction"):
        M.make("streaming", 2.0)
    with pytest.raises(TypeError, match="calibration"):
        M.make("double_sparsity", 0.1)
    with pytest.raises(ValueError, match="p must be in"):
        M.make("top_p", p=0.0)
    with pytest.raises(ValueError, match="tables"):
        M.make("magicpig", tables=1)
    for name in M.METHODS:
        kw = {"budget": 0.25} if name in M.BUDGETED else {}
        if name == "double_sparsity":
            kw["channels"] = np.zeros((H, 2), int)
        assert M.make(name, **kw).name == name


def test_bad_layers_are_refused():
    Q, K, _ = instance(20, 0)
    with pytest.raises(ValueError, match="K must have shape"):
        M.make_layer(Q, K[:, :10])
    with pytest.raises(ValueError, match="kv_head"):
        M.make_layer(Q, K, kv_head=(0, 1, 2, 0))
    with pytest.raises(ValueError, match="finite"):
        M.make_layer(np.full((2, 3, 4), np.nan), np.zeros((1, 3, 4)))
    with pytest.raises(TypeError, match="real numbers"):
        M.make_layer(np.zeros((2, 3), complex), np.zeros((2, 3)))
    masker = M.make("top_k", 0.5)
    with pytest.raises(RuntimeError, match="begin"):
        masker.block(0, np.zeros((1, 2, 2)), np.zeros((1, 2, 2)))
    masker.begin(M.make_layer(Q, K))
    with pytest.raises(ValueError, match="in order"):
        masker.block(5, np.zeros((H, 2, 7)), np.zeros((H, 2, 7)))


# ---------------------------------------------------------------- thresholds


@pytest.mark.parametrize("block", BLOCKS)
@pytest.mark.parametrize("c", [0.4, 0.05, -0.3])
def test_scalar_b_keeps_the_scores_above_the_papers_b(block, c):
    Q, K, _ = instance(60, 1)
    sel = run(M.make("scalar_b", c=c), Q, K, block)
    for h in range(H):
        sigma_k = math.sqrt(np.mean(K[KV[h]] ** 2))
        q_norm = math.sqrt(np.mean((Q[h] ** 2).sum(axis=1)))
        b = sigma_k * q_norm / math.sqrt(D) * math.copysign(math.sqrt(abs(c) * math.log(60)), c)
        for i in range(60):
            s, _ = rows_of(Q, K, h, i)
            assert kept(sel, h, i) == set(np.flatnonzero(s > b).tolist())


def above_row_threshold(s, drawn, c, i):
    """{j : s_j > mu + sigma sqrt(c ln(i + 1))} over the statistics of ``drawn``; a sample of
    equal scores has sigma = 0 and mu equal to them (decided in exact arithmetic)."""
    if (drawn == drawn[0]).all():
        return set(np.flatnonzero(s > drawn[0]).tolist())
    b = drawn.mean() + drawn.std() * math.sqrt(c * math.log(i + 1))
    return set(np.flatnonzero(s > b).tolist())


@pytest.mark.parametrize("block", BLOCKS)
def test_row_b_keeps_the_scores_above_each_rows_own_threshold(block):
    Q, K, _ = instance(50, 2)
    sel = run(M.make("row_b", c=0.4, pages=False), Q, K, block)
    sampled = run(M.make("row_b_sampled", c=0.2, samples=5, seed=3, pages=False), Q, K, block)
    ids = sample_ids(50, 5, 3, 0)
    for h in range(H):
        for i in range(50):
            s, _ = rows_of(Q, K, h, i)
            assert kept(sel, h, i) == above_row_threshold(s, s, 0.4, i)
            assert set(ids[i]) <= set(range(i + 1))
            assert kept(sampled, h, i) == above_row_threshold(s, s[ids[i]], 0.2, i)
    assert (sampled.scored[:, 10] == 11 + 5).all() and (sel.scored[:, 10] == 22).all()


def test_certified_pages_keep_exactly_the_scan_and_skip_pages():
    Q, K, _ = instance(200, 4)
    for name, c in (("scalar_b", 0.4), ("row_b", 0.6), ("scalar_b", 2.0)):
        plain = run(M.make(name, c=c, pages=False), Q, K, 64)
        cert = M.make(name, c=c)
        sel = run(cert, Q, K, 64)
        np.testing.assert_array_equal(sel.keep, plain.keep)
        assert cert.missed == 0
    assert sel.scored[:, -1].mean() < 200  # at c = 2 some pages are skipped


@settings(max_examples=examples(40))
@given(seed=st.integers(0, 10**6), n=st.integers(1, 70), page=st.sampled_from([1, 3, 16]),
       c=st.floats(-1, 3), scale=st.sampled_from([1e-3, 1.0, 1e3]),
       ties=st.booleans())
def test_certified_pages_equal_the_scan_on_every_row(seed, n, page, c, scale, ties):
    rng = np.random.default_rng(seed)
    Q = (rng.standard_normal((2, n, 4)) * scale).astype(np.float32)
    K = (rng.standard_normal((1, n, 4)) * scale).astype(np.float32)
    if ties:  # repeated keys: many scores exactly equal, some right at b
        K[0] = K[0, rng.integers(0, max(n // 3, 1), n)]
    rule = M.ScalarThreshold(c=c)
    cert = M.CertifiedPages(threshold=M.ScalarThreshold(c=c), page_size=page)
    a = M.select(rule, Q, K, (0, 0), block=16)
    b = M.select(cert, Q, K, (0, 0), block=16)
    np.testing.assert_array_equal(a.keep, b.keep)
    assert cert.missed == 0


# ---------------------------------------------------------------- oracles


@pytest.mark.parametrize("block", BLOCKS)
def test_dense_top_k_and_top_p(block):
    Q, K, _ = instance(70, 5)
    dense = run(M.make("dense"), Q, K, block)
    top = run(M.make("top_k", M.Budget(0.25, floor=4)), Q, K, block)
    nucleus = run(M.make("top_p", p=0.7), Q, K, block)
    for h in range(H):
        for i in range(70):
            s, p = rows_of(Q, K, h, i)
            assert kept(dense, h, i) == set(range(i + 1))
            assert_top(s, kept(top, h, i), budget_k(0.25, 4, i))
            order = np.sort(p)[::-1]
            need = int(np.searchsorted(np.cumsum(order), 0.7 - 1e-12) + 1)
            assert_top(p, kept(nucleus, h, i), need)
            assert p[sorted(kept(nucleus, h, i))].sum() >= 0.7 - 1e-9


def test_top_k_mask_breaks_ties_towards_lower_indices():
    X = np.array([[1.0, 2.0, 2.0, 2.0, -np.inf, 0.0]])
    np.testing.assert_array_equal(M.top_k_mask(X, [2])[0], [0, 1, 1, 0, 0, 0])
    np.testing.assert_array_equal(M.top_k_mask(X, [9])[0], [1, 1, 1, 1, 0, 1])
    assert not M.top_k_mask(X, [0]).any()


# ---------------------------------------------------------------- eviction rules


@pytest.mark.parametrize("block", BLOCKS)
def test_streaming_keeps_sinks_and_the_recent_window(block):
    Q, K, _ = instance(60, 6)
    sel = run(M.make("streaming", M.Budget(0.2, floor=6)), Q, K, block)
    for i in range(60):
        k = budget_k(0.2, 6, i)
        want = set(range(min(4, k))) | set(range(i - (k - min(4, k)) + 1, i + 1))
        for h in range(H):
            assert kept(sel, h, i) == want


def h2o_oracle(Q, K, h, n, f, floor):
    """Greedy heavy-hitter eviction, one row at a time, with Python lists."""
    heavy, acc, out = [], {}, []
    for i in range(n):
        k = budget_k(f, floor, i)
        cap, recent = k - k // 2, k // 2
        if len(heavy) >= cap:  # evict the smallest accumulated attention (first on ties)
            worst = min(range(len(heavy)), key=lambda t: (acc[heavy[t]], t))
            heavy[worst] = i
        else:
            heavy.append(i)
        acc[i] = 0.0
        _, p = rows_of(Q, K, h, i)
        for j in heavy:
            acc[j] += p[j]
        out.append(set(heavy) | set(range(i - recent + 1, i + 1)))
    return out


@pytest.mark.parametrize("block", BLOCKS)
def test_h2o_is_the_greedy_heavy_hitter_rule(block):
    Q, K, _ = instance(60, 7)
    sel = run(M.make("h2o", M.Budget(0.3, floor=6)), Q, K, block)
    for h in range(H):
        for i, want in enumerate(h2o_oracle(Q, K, h, 60, 0.3, 6)):
            assert kept(sel, h, i) == want, (h, i)
            assert len(want) <= budget_k(0.3, 6, i)


@pytest.mark.parametrize("block", BLOCKS)
def test_snapkv_keeps_the_window_and_the_pooled_vote_winners(block):
    n, w = 80, 8
    Q, K, _ = instance(n, 8)
    sel = run(M.SnapKV(M.Budget(0.4, floor=4), window=w, kernel=3), Q, K, block)
    assert w < budget_k(0.4, 4, n - 1) // 2  # late rows use the full window, early ones less
    probs = {(h, r): rows_of(Q, K, h, r)[1] for h in range(H) for r in range(n)}
    for h in range(H):
        for i in range(n):
            k = budget_k(0.4, 4, i)
            w_i = min(w, k // 2)  # SnapKV needs a capacity above its window
            recent = set(range(i - min(k, w_i + 1) + 1, i + 1))
            got = kept(sel, h, i)
            assert recent <= got
            older = list(range(max(i - w_i, 0)))
            votes = np.array([sum(probs[h, r][j] for r in range(max(i - w_i, 0), i))
                              for j in older])
            pooled = np.array([votes[max(j - 1, 0):j + 2].max() for j in older])
            chosen = got - recent
            assert chosen <= set(older)
            assert_top(pooled, chosen, min(max(k - w_i - 1, 0), len(older)))


# ---------------------------------------------------------------- page and channel rules


def test_quest_bound_is_the_peers_bound_and_bounds_every_key():
    from hsr_lab.peers import QuestPages

    _, K, _ = instance(45, 9)
    lo, hi = M.page_bounds(K[0], 16)
    peer = QuestPages(K[0], 16)
    np.testing.assert_array_equal(lo, peer.lo)
    np.testing.assert_array_equal(hi, peer.hi)
    a = np.random.default_rng(0).standard_normal((5, D))
    U = M.page_upper_bound(a, lo, hi)
    for p in range(3):
        keys = K[0, 16 * p:16 * p + 16]
        assert (keys @ a.T <= U[:, p] + 1e-12).all()
        assert np.allclose(U[:, p], [sum(max(x * m, x * M_) for x, m, M_ in
                                         zip(q, lo[p], hi[p], strict=True)) for q in a])


@pytest.mark.parametrize("block", BLOCKS)
def test_quest_keeps_its_page_and_the_top_bounded_pages(block):
    n, ps = 90, 4
    Q, K, _ = instance(n, 10)
    budget = M.Budget(0.25, floor=6)
    sel = run(M.Quest(budget, page_size=ps), Q, K, block, index=2, n_layers=4)
    dense = run(M.Quest(budget, page_size=ps), Q, K, block, index=1, n_layers=4)
    assert dense.keep.sum() == H * n * (n + 1) // 2  # the first two layers stay dense
    for h in range(H):
        keys = K[KV[h]]
        for i in range(n):
            own = i // ps
            bound = np.array([sum(max(x * a, x * b) for x, a, b in
                                  zip(Q[h, i], keys[p * ps:p * ps + ps].min(0),
                                      keys[p * ps:p * ps + ps].max(0), strict=True))
                              for p in range(own)])
            got = kept(sel, h, i)
            assert set(range(own * ps, i + 1)) <= got
            pages = sorted({j // ps for j in got} - {own})
            assert got == set(range(own * ps, i + 1)) | {j for p in pages
                                                         for j in range(p * ps, p * ps + ps)}
            want = max(0, round((budget_k(0.25, 6, i) - (i - own * ps + 1)) / ps))
            assert_top(bound, pages, min(want, own))


@pytest.mark.parametrize("block", BLOCKS)
def test_double_sparsity_is_top_k_on_the_calibrated_channels(block):
    Q, K, _ = instance(60, 11)
    calib_Q, calib_K, _ = instance(40, 12)
    ch = M.calibrate_channels(calib_Q, calib_K, KV, 2)
    for h in range(H):  # the two channels with the largest sum|q_c| sum|k_c|
        mass = np.abs(calib_Q[h]).sum(0) * np.abs(calib_K[KV[h]]).sum(0)
        assert set(ch[h]) == set(np.argsort(-mass)[:2])
    sel = run(M.make("double_sparsity", M.Budget(0.25, floor=5), channels=ch), Q, K, block)
    for h in range(H):
        for i in range(60):
            approx = Q[h, i, ch[h]] @ K[KV[h], :i + 1][:, ch[h]].T
            assert_top(approx, kept(sel, h, i), budget_k(0.25, 5, i))


# ---------------------------------------------------------------- MagicPIG


def test_collision_probability_is_what_simhash_draws():
    rng = np.random.default_rng(13)
    d, bits, tables = 6, 3, 5
    q = rng.standard_normal(d)
    keys = rng.standard_normal((40, d))
    cos = keys @ q / np.linalg.norm(keys, axis=1) / np.linalg.norm(q)
    p = M.collision_probability(cos, bits, tables)
    trials = 3000
    hits = np.zeros(40)
    for _ in range(trials):
        planes = rng.standard_normal((d, tables, bits))
        hits += M.simhash_sample(q[None], keys, planes)[0]
    assert np.abs(hits / trials - p).max() < 4 * np.sqrt(0.25 / trials)
    assert M.collision_probability(np.array([1.0]), 10, 150)[0] == 1.0


@pytest.mark.parametrize("draws", ["independent", "simhash"])
def test_magicpig_keeps_static_keys_and_weights_samples_by_one_over_p(draws):
    n = 120
    Q, K, _ = instance(n, 14)
    mp = M.MagicPIG(bits=2, tables=4, sinks=2, local=5, draws=draws, seed=1)
    sel = run(mp, Q, K, 32, index=1, n_layers=4)
    mp.begin(M.make_layer(Q, K, KV, 1, 4))
    for h in range(H):
        g = KV[h]
        centred = K[g] - K[g].mean(axis=0)
        planes = hyperplanes(D, 2, 4, 1, 1, g)
        for i in range(n):
            static = set(range(min(2, i + 1))) | set(range(max(i - 4, 0), i + 1))
            got = kept(sel, h, i)
            assert static <= got
            cos = centred[:i + 1] @ Q[h, i] / np.linalg.norm(centred[:i + 1], axis=1) / \
                np.linalg.norm(Q[h, i])
            p = M.collision_probability(cos, 2, 4)
            for j in got - static:
                assert sel.weights[h, i, j] == pytest.approx(1 / (p[j] + 1e-4))
            for j in static:
                assert sel.weights[h, i, j] == 1.0
            if draws == "simhash":
                hashed = set(np.flatnonzero(M.simhash_sample(Q[h, i][None], centred[:i + 1],
                                                             planes)[0]).tolist())
                assert got - static == hashed - static
    dense_layers = [run(M.MagicPIG(), Q, K, 32, index=x, n_layers=4).keep.sum() for x in (0, 2)]
    assert dense_layers == [H * n * (n + 1) // 2] * 2


def test_magicpig_estimate_is_unbiased_with_eps_zero():
    n = 60
    Q, K, V = instance(n, 15)
    layer = M.make_layer(Q, K, KV, 1, 4)
    h, i = 1, n - 1
    s, _ = rows_of(Q, K, h, i)
    exact_num = np.exp(s) @ V[KV[h], :n]
    trials, num, den = 3000, np.zeros(D), 0.0
    for seed in range(trials):
        mp = M.MagicPIG(bits=2, tables=3, sinks=1, local=2, eps=0.0, seed=seed)
        mp.begin(layer)
        S = M.block_scores(layer, 0, n)
        sel = mp.block(0, S, M.softmax_block(S)[1])
        w = np.where(sel.keep[h, i], sel.weights[h, i], 0.0) * np.exp(s)
        num, den = num + w @ V[KV[h], :n], den + w.sum()
    se = np.exp(s).sum() * 4 / np.sqrt(trials)
    assert abs(den / trials - np.exp(s).sum()) < se
    assert np.abs(num / trials - exact_num).max() < 3 * se


# ---------------------------------------------------------------- every masker


def all_maskers():
    ch = np.tile(np.arange(2), (H, 1))
    b = M.Budget(0.3, floor=4)
    return [M.make("dense"), M.make("scalar_b", c=0.2), M.make("row_b"),
            M.make("row_b_sampled", samples=6), M.make("top_p", p=0.8), M.make("top_k", b),
            M.make("streaming", b), M.make("h2o", b), M.SnapKV(b, window=4, kernel=3),
            M.Quest(b, page_size=4), M.make("double_sparsity", b, channels=ch),
            M.MagicPIG(bits=2, tables=3, local=4)]


@pytest.mark.parametrize("masker", all_maskers(), ids=lambda m: m.name)
def test_every_masker_is_causal_and_blind_to_the_block_size(masker):
    Q, K, _ = instance(75, 16)
    sels = [run(masker, Q, K, block, index=3, n_layers=6) for block in (1, 5, 32, 75)]
    for sel in sels[1:]:
        np.testing.assert_array_equal(sel.keep, sels[0].keep)
        np.testing.assert_array_equal(sel.scored, sels[0].scored)
    assert (sels[0].kept >= (0 if masker.name in M.SWEPT else 1)).all()
    indptr, indices = sels[0].csr(0)
    assert indptr[-1] == sels[0].keep[0].sum() and len(indices) == indptr[-1]


def test_tau_is_the_tv_distance_and_the_output_error_identity():
    """tau_i = TV(p_i, p_hat_i) = dropped mass, and o - o_hat = tau (mu_tail - mu_head)."""
    n = 50
    Q, K, V = instance(n, 17)
    layer = M.make_layer(Q, K, KV)
    out, stats = M.masked_attention(layer, V, M.make("top_k", M.Budget(0.2, floor=3)),
                                    block=16, err_every=1)
    dense, _ = M.masked_attention(layer, V, M.make("dense"), block=16)
    sel = M.select(M.make("top_k", M.Budget(0.2, floor=3)), Q, K, KV)
    taus = []
    for h in range(H):
        for i in range(n):
            _, p = rows_of(Q, K, h, i)
            keep = sel.keep[h, i, :i + 1]
            tau = p[~keep].sum()
            p_hat = np.where(keep, p, 0) / p[keep].sum()
            assert 0.5 * np.abs(p - p_hat).sum() == pytest.approx(tau)
            v = V[KV[h], :i + 1]
            mu_head = p[keep] @ v[keep] / p[keep].sum()
            diff = dense[h, i] - out[h, i]
            if tau > 0:
                mu_tail = p[~keep] @ v[~keep] / tau
                np.testing.assert_allclose(diff, tau * (mu_tail - mu_head), atol=1e-12)
            np.testing.assert_allclose(out[h, i], mu_head, atol=1e-12)
            taus.append(tau)
    assert stats.tau.sum() == pytest.approx(sum(taus))


def test_dense_masker_is_smollm2s_causal_attention():
    from hsr_lab.data.smollm2 import KV_HEAD, causal_attention

    rng = np.random.default_rng(18)
    n = 300
    Q = rng.standard_normal((9, n, 64)).astype(np.float32)
    K = rng.standard_normal((3, n, 64)).astype(np.float32)
    V = rng.standard_normal((3, n, 64)).astype(np.float32)
    want, _ = causal_attention(Q, K, V)
    got, stats = M.masked_attention(M.make_layer(Q, K, KV_HEAD), V, M.make("dense"))
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, want, atol=2e-6)
    assert stats.tau.max() == 0 and stats.err.max() / stats.err_rows < 1e-6
