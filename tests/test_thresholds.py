"""Per-row thresholds b_i = mu_i + sigma_i sqrt(c ln n): exact, and from s sampled keys."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hsr_lab import theory
from hsr_lab.attention import relu_attention, row_thresholds, sampled_row_thresholds
from hsr_lab.experiments import sampled_threshold_error


def _instance(m: int, n: int, d: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((m, d)), rng.standard_normal((n, d))


def test_exact_thresholds_follow_the_formula_from_scratch():
    Q, K = _instance(5, 300, 8)
    for i, q in enumerate(Q):
        s = [float(q @ k) / math.sqrt(8) for k in K]  # the scores, one by one
        mu = sum(s) / len(s)
        sigma = math.sqrt(sum((x - mu) ** 2 for x in s) / len(s))
        assert row_thresholds(Q, K)[i] == pytest.approx(mu + sigma * math.sqrt(0.4 * math.log(300)))
    assert np.allclose(row_thresholds(Q, K, c=1.0) - row_thresholds(Q, K),
                       (np.sqrt(np.log(300)) - np.sqrt(0.4 * np.log(300))) * (Q @ K.T / np.sqrt(8)
                                                                             ).std(axis=1))


def test_zero_mean_gaussian_rows_give_the_papers_threshold():
    rng = np.random.default_rng(3)
    n, d = 2**16, 16
    K, q = rng.standard_normal((n, d)), np.ones((1, d)) / 4.0  # ||q|| = 1: sigma_a = 1/4
    b = row_thresholds(q, K)[0]
    assert b == pytest.approx(float(theory.paper_threshold(n, 0.25)), rel=0.02)


@settings(max_examples=40, deadline=None)
@given(m=st.integers(1, 6), n=st.integers(2, 60), d=st.integers(1, 6), seed=st.integers(0, 99),
       extra=st.integers(0, 5))
def test_a_sample_of_every_key_is_the_exact_threshold(m, n, d, seed, extra):
    Q, K = _instance(m, n, d, seed)
    Q0, K0 = Q.copy(), K.copy()
    exact = row_thresholds(Q, K)
    assert np.allclose(sampled_row_thresholds(Q, K, n + extra, seed=seed), exact)
    assert np.array_equal(Q, Q0) and np.array_equal(K, K0)  # inputs are never modified
    sampled = sampled_row_thresholds(Q, K, max(2, n // 2), seed=seed)
    assert sampled.shape == (m,) and np.isfinite(sampled).all()


def test_the_sample_is_seeded():
    Q, K = _instance(4, 5000, 8)
    a, b = (sampled_row_thresholds(Q, K, 64, seed=7) for _ in range(2))
    assert np.array_equal(a, b)
    assert not np.array_equal(a, sampled_row_thresholds(Q, K, 64, seed=8))
    rng1, rng2 = np.random.default_rng(5), np.random.default_rng(5)
    assert np.array_equal(sampled_row_thresholds(Q, K, 64, seed=rng1),
                          sampled_row_thresholds(Q, K, 64, seed=rng2))


def test_the_estimate_reads_only_the_sampled_keys():
    Q, K = _instance(3, 4000, 4)
    rng = np.random.default_rng(11)
    picked = np.sort(rng.choice(4000, size=100, replace=False))
    expected = row_thresholds(Q[:, :], K[picked])  # the same sample, as an exact threshold ...
    n_correction = np.sqrt(0.4) * (np.sqrt(np.log(4000)) - np.sqrt(np.log(100)))
    spread = (Q @ K[picked].T / 2.0).std(axis=1)
    got = sampled_row_thresholds(Q, K, 100, seed=np.random.default_rng(11))
    assert np.allclose(got, expected + n_correction * spread)  # ... but scaled to n keys


def test_kept_count_error_shrinks_like_one_over_root_s():
    result = sampled_threshold_error(n=2**13, rows=32, samples=(16, 64, 256, 1024), draws=6)
    median = np.median(result.relative_error.reshape(4, -1), axis=1)
    assert np.all(np.diff(median) < 0)
    slope = theory.fit_exponent(result.samples, median).slope
    assert -0.75 < slope < -0.3
    assert "median error" in repr(result)


def test_relu_attention_is_exact_at_a_sampled_threshold():
    rng = np.random.default_rng(2)
    Q, K, V = rng.standard_normal((1, 4)), rng.standard_normal((3000, 4)), rng.standard_normal(
        (3000, 4))
    b = float(sampled_row_thresholds(Q, K, 128, seed=0)[0])
    fast = relu_attention(Q, K, V, b=b, method="hsr", backend="numpy")
    assert np.abs(fast - relu_attention(Q, K, V, b=b)).max() < 1e-12


@pytest.mark.parametrize("call, error, match", [
    (lambda Q, K: sampled_row_thresholds(Q, K[0], 8), ValueError, "K must be a finite 2-D array"),
    (lambda Q, K: sampled_row_thresholds(Q, K[:1], 8), ValueError, "K must hold at least 2 keys"),
    (lambda Q, K: sampled_row_thresholds(Q[:, :3], K, 8), ValueError, "Q must have d = 4 columns"),
    (lambda Q, K: sampled_row_thresholds(Q, K, 1), ValueError, "sample must be at least 2"),
    (lambda Q, K: sampled_row_thresholds(Q, K, True), TypeError, "sample must be a positive"),
    (lambda Q, K: sampled_row_thresholds(Q, K, 8, c=0.0), ValueError, "c must be > 0"),
    (lambda Q, K: sampled_row_thresholds(Q, K.astype(str), 8), TypeError, "K must hold real"),
    (lambda Q, K: row_thresholds(Q, np.where(np.arange(4) == 0, np.nan, K)), ValueError,
     "K must be finite"),
    (lambda Q, K: sampled_row_thresholds(Q, np.full_like(K, np.nan), 8), ValueError,
     "sampled keys hold NaN"),
])
def test_bad_input_names_the_argument(call, error, match):
    Q, K = _instance(2, 50, 4)
    with pytest.raises(error, match=match):
        call(Q, K)
