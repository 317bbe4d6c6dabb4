"""Tests of hsr_lab.theory: known values, the Mills-ratio story, fits, a Monte-Carlo check."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from hsr_lab import theory as th

PHI_C_2 = 0.022750131948179195  # standard normal upper tail at 2 (tables)


# ---------------------------------------------------------------- known values


def test_threshold_and_expectation_at_e10():
    n = math.exp(10.0)  # c ln n = 0.4 * 10 = 4, so b = sigma * 2
    assert th.paper_threshold(n) == pytest.approx(2.0, rel=1e-12)
    assert th.paper_threshold(n, sigma=0.5) == pytest.approx(1.0, rel=1e-12)
    assert th.expected_activated(n) == pytest.approx(n * PHI_C_2, rel=1e-12)
    assert th.activation_probability(2.0, 1.0) == pytest.approx(PHI_C_2, rel=1e-12)
    assert th.activation_probability(3.0, 1.5) == pytest.approx(PHI_C_2, rel=1e-12)
    assert th.paper_bound(n) == pytest.approx(math.exp(8.0), rel=1e-12)
    assert th.paper_whp_bound(n) == pytest.approx(2.0 * math.exp(8.0), rel=1e-12)


def test_threshold_at_n1_is_zero_and_vectorised():
    assert th.paper_threshold(1) == 0.0
    assert th.expected_activated(1) == pytest.approx(0.5)
    b = th.paper_threshold(np.array([1.0, math.exp(10.0)]), sigma=np.array([3.0, 0.5]))
    assert isinstance(b, np.ndarray)
    np.testing.assert_allclose(b, [0.0, 1.0])


def test_score_sigma():
    assert th.score_sigma(4.0, 0.5, 16) == pytest.approx(0.5)
    np.testing.assert_allclose(th.score_sigma([0.0, 8.0], 1.0, 64), [0.0, 1.0])


def test_scalars_in_floats_out():
    for value in (th.paper_threshold(10), th.expected_activated(10), th.mills_ratio_factor(10),
                  th.local_slope(10), th.part1_query_work(10, 8, 0)):
        assert type(value) is float


# ---------------------------------------------------------------- bound against exact expectation


@given(log_n=st.floats(1e-3, 700.0), c=st.floats(0.01, 1.99))
def test_expectation_below_chernoff_bound(log_n, c):
    n = math.exp(log_n)
    assert th.expected_activated(n, c) < th.paper_bound(n, c)
    assert th.mills_ratio_factor(n, c) > 1.0


def test_mills_ratio_factor_is_the_ratio_and_matches_approximation():
    n = np.logspace(1, 12, 12)
    ratio = np.asarray(th.paper_bound(n)) / np.asarray(th.expected_activated(n))
    np.testing.assert_allclose(th.mills_ratio_factor(n), ratio, rtol=1e-10)
    log_n = np.array([100.0, 200.0, 400.0])
    for c in (0.4, 1.0):
        rel = th.mills_ratio_factor(np.exp(log_n), c) / np.sqrt(2 * np.pi * c * log_n) - 1
        assert np.all(rel > 0)  # approaches from above ...
        assert np.all(np.diff(rel) < 0)  # ... ever closer ...
        assert rel[0] < 0.03 if c == 0.4 else rel[0] < 0.012  # ... within about 1/(c ln n)
        np.testing.assert_allclose(rel, 1 / (c * log_n), rtol=0.1)


def test_local_slope_matches_numeric_derivative():
    log_n = np.linspace(1.0, 40.0, 20)
    h = 1e-5
    for c in (0.4, 1.2):
        up = np.log(th.expected_activated(np.exp(log_n + h), c))
        down = np.log(th.expected_activated(np.exp(log_n - h), c))
        np.testing.assert_allclose(th.local_slope(np.exp(log_n), c), (up - down) / (2 * h),
                                   rtol=1e-6, atol=1e-8)


def test_local_slope_below_and_increasing_towards_limit():
    log_n = np.linspace(0.5, 600.0, 200)
    slope = th.local_slope(np.exp(log_n))
    assert np.all(slope < 0.8)
    assert np.all(np.diff(slope) > 0)
    assert 0.8 - slope[-1] < 1e-3
    # the asymptotic gap is 1/(2 ln n)
    assert (0.8 - slope[-1]) * 2 * log_n[-1] == pytest.approx(1.0, rel=0.02)


def test_fitted_slope_of_exact_expectation_sits_below_bound_exponent():
    n = np.logspace(3, 6, 13)
    fit = th.fit_exponent(n, th.expected_activated(n))
    assert th.local_slope(1e3) < fit.slope < th.local_slope(1e6) < 0.8
    assert fit.slope_high < 0.8  # the paper's 4/5 is excluded: the gap is real, not noise


# ---------------------------------------------------------------- fit_exponent


def test_fit_exponent_exact_power_law():
    n = np.array([10.0, 100.0, 1000.0, 1e4])
    fit = th.fit_exponent(n, 3.0 * n**0.8)
    assert fit.slope == pytest.approx(0.8, abs=1e-12)
    assert fit.intercept == pytest.approx(math.log(3.0), abs=1e-10)
    assert fit.r2 == pytest.approx(1.0, abs=1e-12)
    assert fit.slope_high - fit.slope_low == pytest.approx(0.0, abs=1e-10)
    assert "slope=0.8000" in repr(fit)


def test_fit_exponent_noisy_with_repeated_n():
    rng = np.random.default_rng(20241014)
    n = np.repeat(np.logspace(2, 6, 9), 4)  # four seeds per n
    counts = 2.0 * n**0.75 * np.exp(rng.normal(0.0, 0.1, n.size))
    fit = th.fit_exponent(n, counts)
    assert fit.slope_low < 0.75 < fit.slope_high
    assert fit.slope_high - fit.slope_low < 0.05
    assert 0.9 < fit.r2 < 1.0


def test_fit_exponent_interval_uses_t_distribution():
    # With 5 points (3 degrees of freedom) a normal-quantile interval would cover about 85%.
    rng = np.random.default_rng(7)
    n = np.logspace(1, 5, 5)
    trials = 2000
    covered = sum(
        (fit := th.fit_exponent(n, n**0.5 * np.exp(rng.normal(0.0, 0.3, n.size)))).slope_low
        < 0.5 < fit.slope_high
        for _ in range(trials)
    )
    assert 0.93 < covered / trials < 0.97


def test_fit_exponent_rejects_bad_data():
    with pytest.raises(ValueError, match="at least 3 distinct n"):
        th.fit_exponent([10, 10, 100, 100], [1, 2, 3, 4])
    with pytest.raises(ValueError, match="counts must be > 0"):
        th.fit_exponent([10, 100, 1000], [1, 0, 3])
    with pytest.raises(ValueError, match="same length"):
        th.fit_exponent([10, 100, 1000], [1, 2])
    with pytest.raises(ValueError, match="confidence must be in"):
        th.fit_exponent([10, 100, 1000], [1, 2, 3], confidence=1.0)


# ---------------------------------------------------------------- Monte Carlo, Gaussian keys


def test_monte_carlo_activated_count_matches_expectation():
    rng = np.random.default_rng(2024)
    d, sigma_k, m = 16, 0.7, 12
    for n in (500, 2000, 8000, 20000):
        counts = []
        for _ in range(m):  # fresh keys per query, so the m counts are independent binomials
            q = rng.normal(0.0, rng.uniform(0.2, 3.0), d)
            keys = rng.normal(0.0, sigma_k, (n, d))
            sigma_a = th.score_sigma(np.linalg.norm(q), sigma_k, d)
            b = th.paper_threshold(n, sigma_a)
            counts.append(int(np.count_nonzero(keys @ q / math.sqrt(d) > b)))
        expected = th.expected_activated(n)
        p = expected / n
        standard_error = math.sqrt(n * p * (1 - p) / m)
        assert abs(np.mean(counts) - expected) < 4 * standard_error
        assert max(counts) < th.paper_whp_bound(n)
        assert np.mean(counts) < th.paper_bound(n)


# ---------------------------------------------------------------- HSR costs and running times


def test_part1_exponent():
    assert th.part1_exponent(2) == 0.0
    assert th.part1_exponent(3) == 0.0
    assert th.part1_exponent(8) == 0.75
    assert th.part1_exponent(64) == pytest.approx(1 - 1 / 32)
    assert th.part1_exponent(128) == pytest.approx(1 - 1 / 64)


def test_query_work_and_build():
    n = 2.0**20
    # d = 2, 3: the known bound log n + k, not the 1 + k the exponent formula would give
    assert th.part1_query_work(n, 2, 5) == pytest.approx(math.log(n) + 5)
    assert th.part1_query_work(n, 3, 5) == pytest.approx(math.log(n) + 5)
    assert th.part1_query_work(n, 8, 5) == pytest.approx(2.0**15 + 5)
    assert th.part1_query_work(n, 8, 5, include_d=True) == pytest.approx(8 * (2.0**15 + 5))
    assert th.part2_query_work(n, 64, 7) == pytest.approx(20 * math.log(2) + 7)
    work = th.part2_query_work(n, 64, 7, include_d=True)
    assert work == pytest.approx(64 * (20 * math.log(2) + 7))
    assert th.part1_build(n) == pytest.approx(n * 20 * math.log(2))
    assert th.part2_build(n, 8) == pytest.approx(2.0**80)
    assert th.part2_build(n, 128) == math.inf  # 2^1280 overflows a float, without a warning
    np.testing.assert_allclose(th.part1_query_work([1.0, 16.0], 4, [0.0, 1.0]), [1.0, 5.0])


def test_running_times():
    dec = th.decoding_cost(2**20, 3, 64)
    assert dec.hsr == pytest.approx(3 * 2.0**16)
    assert dec.naive == pytest.approx(3 * 2.0**20)
    assert dec.speedup == pytest.approx(16.0)
    assert "decoding" in repr(dec)
    pre = th.prefill_cost(2**20, 2**20, 8)
    assert pre.hsr == pytest.approx(2.0**20 * (2.0**15 + 2.0**16))
    assert pre.naive == pytest.approx(2.0**40)
    # at d = 64 the Part 1 term n^{31/32} makes prefilling slower than the scan at n = 1000
    assert th.prefill_cost(1000, 1000, 64).speedup < 1.0
    low = th.prefill_cost(2**20, 1, 2)  # d = 2: Part 1's search is log n, not n^0 = 1
    assert "log n" in low.formula
    assert low.hsr == pytest.approx(20 * math.log(2) + 2.0**16)
    np.testing.assert_allclose(th.decoding_cost([1e3, 1e6], 1, 64).speedup, [1e3**0.2, 1e6**0.2])


def test_bounds_table():
    rows = th.bounds_table()
    assert [r["d"] for r in rows] == [2, 8, 64]
    by_d = {r["d"]: r for r in rows}
    assert by_d[2]["part1_query_work"] == pytest.approx(20 * math.log(2))  # log n at d = 2
    assert by_d[8]["part1_query_work"] == pytest.approx(2.0**15)
    assert by_d[64]["part1_query_over_scan"] > 0.6  # n^{31/32}: barely below a scan
    assert by_d[64]["part2_build_log10"] == pytest.approx(32 * 20 * math.log10(2))
    assert th.bounds_table((128,))[0]["part2_build"] == math.inf


# ---------------------------------------------------------------- softmax error


def test_softmax_error_bounds():
    assert th.softmax_error_bound([0.01, 0.05, 0.0], 3.0) == pytest.approx(0.3)
    assert th.dropped_mass_bound(1e4, 0.5, 0.0) == pytest.approx(100.0)
    # gap = beta ln n with gamma + beta > 1 gives n^{1 - gamma - beta} -> 0
    n = np.array([1e2, 1e4, 1e6])
    np.testing.assert_allclose(th.dropped_mass_bound(n, 0.5, 0.75 * np.log(n)), n**-0.25)


# ---------------------------------------------------------------- input checks


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: th.paper_threshold(0), ValueError, "n must be >= 1"),
        (lambda: th.paper_threshold(10, sigma=0.0), ValueError, "sigma must be > 0"),
        (lambda: th.paper_threshold(10, c=-0.1), ValueError, "c must be > 0"),
        (lambda: th.paper_threshold(float("nan")), ValueError, "n must be finite"),
        (lambda: th.paper_threshold("ten"), TypeError, "n must hold real numbers"),
        (lambda: th.expected_activated([10, 0.5]), ValueError, "n must be >= 1"),
        (lambda: th.expected_activated(10, c=2.0), ValueError, r"c must be in \(0, 2\)"),
        (lambda: th.paper_bound(10, c=0.0), ValueError, r"c must be in \(0, 2\)"),
        (lambda: th.mills_ratio_factor(math.inf), ValueError, "n must be finite"),
        (lambda: th.local_slope(1.0), ValueError, "n must be > 1"),
        (lambda: th.activation_probability(1.0, -1.0), ValueError, "sigma must be > 0"),
        (lambda: th.score_sigma(-1.0, 1.0, 4), ValueError, "q_norm must be >= 0"),
        (lambda: th.score_sigma(1.0, 0.0, 4), ValueError, "sigma_k must be > 0"),
        (lambda: th.score_sigma(1.0, 1.0, 0), ValueError, "d must be a positive integer"),
        (lambda: th.part1_exponent(1), ValueError, "d must be an integer >= 2"),
        (lambda: th.part1_exponent(8.0), TypeError, "d must be a positive integer"),
        (lambda: th.part1_query_work(10, 8, -1), ValueError, "k must be >= 0"),
        (lambda: th.part2_build(10, 1), ValueError, "d must be an integer >= 2"),
        (lambda: th.decoding_cost(10, 0, 64), ValueError, "m must be >= 1"),
        (lambda: th.softmax_error_bound([0.1, 1.5], 1.0), ValueError, r"eps must be in \[0, 1\]"),
        (lambda: th.softmax_error_bound([], 1.0), ValueError, "eps must hold at least one"),
        (lambda: th.softmax_error_bound([0.1], -1.0), ValueError, "v_inf must be >= 0"),
        (lambda: th.dropped_mass_bound(10, 1.5, 1.0), ValueError, r"gamma must be in \[0, 1\]"),
        (lambda: th.bounds_table(n=0.5), ValueError, "n must be >= 1"),
        (lambda: th.gaussian_dropped_mass(10, -0.5), ValueError, "sigma_a must be >= 0"),
        (lambda: th.gaussian_dropped_mass(0.5, 1.0), ValueError, "n must be >= 1"),
        (lambda: th.gaussian_dropped_mass(10, 1.0, c=2.5), ValueError, r"c must be in \(0, 2\)"),
        (lambda: th.sigma_for_dropped_mass(10, 1.0), ValueError, r"eps must be in \(0, 1\)"),
        (lambda: th.cyclic_polytope_facets(4, 4), ValueError, "n must be at least d \\+ 1"),
        (lambda: th.cyclic_polytope_facets(10, 1), ValueError, "d must be an integer >= 2"),
        (lambda: th.cyclic_polytope_facets(10.0, 3), TypeError, "n must be a positive integer"),
    ],
)
def test_bad_input_names_the_argument(call, error, match):
    with pytest.raises(error, match=match):
        call()


# ---------------------------------------------------------------- the derivations of the course


def test_gaussian_tail_bound():
    x = np.linspace(0.0, 8.0, 81)
    assert np.all(th.upper_tail(x) <= th.gaussian_tail_bound(x))
    assert th.upper_tail(2.0) == pytest.approx(PHI_C_2)
    for n in (1e3, 1e6, 2.0**40):
        for c in (0.4, 1.0):
            x = math.sqrt(c * math.log(n))
            assert th.gaussian_tail_bound(x) == pytest.approx(n ** (-c / 2), rel=1e-12)


def test_chernoff_binomial_bound_is_above_the_exact_binomial_tail():
    for n in (100, 1000, 10_000, 100_000):
        p = th.upper_tail(math.sqrt(0.4 * math.log(n)))
        mu_h = th.paper_bound(n)
        assert n * p <= mu_h
        exact = th.binomial_tail(n, p, 2 * mu_h)
        assert exact <= th.chernoff_binomial_bound(mu_h, 1.0) == th.paper_whp_failure(n)
    assert th.chernoff_binomial_bound(30.0, 1.0) == pytest.approx(math.exp(-10.0))
    assert th.binomial_tail(10, 0.5, 0) == pytest.approx(1.0)
    assert th.binomial_tail(10, 0.5, 10) == pytest.approx(0.5**10)


def test_kdtree_depth():
    assert th.kdtree_depth(2**20, 32) == 15
    assert th.kdtree_depth(32, 32) == 0
    assert th.kdtree_depth(33, 32) == 1
    assert 64 - th.kdtree_depth(2**20, 32) == 49


# ---------------------------------------------------------------- softmax at the paper's threshold


def test_gaussian_dropped_mass_is_the_tilted_gaussian_ratio():
    # Oracle: the two integrals of e^s phi_sigma(s), computed numerically, not by the identity.
    from scipy import integrate, stats

    for n, sigma in [(2**14, 0.25), (2**14, 1.0), (2**10, 2.0), (2**20, 3.0)]:
        b = float(th.paper_threshold(n, sigma))
        def weight(s: float, sigma: float = sigma) -> float:
            return math.exp(s) * stats.norm(scale=sigma).pdf(s)  # e^s phi_sigma(s)

        lo, hi = -15 * sigma, sigma**2 + 15 * sigma  # the integrand is negligible beyond
        below = integrate.quad(weight, lo, b, epsabs=0)[0]
        total = integrate.quad(weight, lo, hi, epsabs=0, points=[sigma**2])[0]
        assert th.gaussian_dropped_mass(n, sigma) == pytest.approx(below / total, rel=1e-7)


def test_gaussian_dropped_mass_values_and_shape():
    eps = th.gaussian_dropped_mass(2**14, np.array([0.25, 1.0, 2.0, 3.0]))
    np.testing.assert_allclose(eps, [0.957, 0.834, 0.488, 0.152], atol=1e-3)
    assert np.all(np.diff(eps) < 0)  # a larger score scale keeps more of the mass
    n = 2.0 ** np.arange(8, 30)
    assert np.all(np.diff(th.gaussian_dropped_mass(n, 3.0)) > 0)  # a fixed sigma_a loses it
    for n in (2**10, 2**20):  # half the mass at sigma_a = sqrt(c ln n), and the inverse
        assert th.gaussian_dropped_mass(n, th.paper_threshold(n)) == pytest.approx(0.5)
        for target in (1e-3, 0.1, 0.5, 0.9):
            sigma = th.sigma_for_dropped_mass(n, target)
            assert th.gaussian_dropped_mass(n, sigma) == pytest.approx(target)


def _mean_dropped(n: int, sigma: float, rows: int, seed: int) -> float:
    """Mean over rows of the dropped softmax mass at b = sigma sqrt(0.4 ln n), computed densely."""
    rng = np.random.default_rng(seed)
    S = sigma * rng.standard_normal((rows, n))  # Gaussian scores N(0, sigma^2)
    W = np.exp(S - S.max(axis=1, keepdims=True))
    return float(((W * (S < th.paper_threshold(n, sigma))).sum(axis=1) / W.sum(axis=1)).mean())


def test_measured_dropped_mass_matches_the_formula_at_n_2_14():
    for seed in range(3):
        for sigma in (0.25, 1.0, 2.0, 3.0):
            measured = _mean_dropped(2**14, sigma, rows=20, seed=seed)
            assert abs(measured - th.gaussian_dropped_mass(2**14, sigma)) < 0.03, (seed, sigma)


def test_the_formula_needs_n_large_against_exp_sigma_squared():
    # At sigma_a = 3, e^9 ~ 8100: the mean sits above the formula at n = 2^12 and the gap
    # closes as n grows (a ratio of sums tends to the ratio of means).
    def gap(n: int) -> float:
        return np.mean([_mean_dropped(n, 3.0, rows=20, seed=s) for s in range(6)]) \
            - th.gaussian_dropped_mass(n, 3.0)

    small, large = gap(2**12), gap(2**18)
    assert small > 0.005 and abs(large) < small / 2


# ---------------------------------------------------------------- where floor(d/2) comes from


def test_cyclic_polytope_facets_closed_forms():
    for n in (5, 10, 37):
        assert th.cyclic_polytope_facets(n, 2) == n
        assert th.cyclic_polytope_facets(n, 3) == 2 * n - 4
        assert th.cyclic_polytope_facets(n, 4) == n * (n - 3) // 2
    assert th.cyclic_polytope_facets(7, 6) == 7  # d + 1 points: a simplex has d + 1 facets
    assert th.cyclic_polytope_facets(6, 5) == 6


@pytest.mark.parametrize("d", [2, 3, 4, 5, 6])
def test_cyclic_polytope_facets_equal_qhull_on_the_moment_curve(d):
    from scipy.spatial import ConvexHull

    from hsr_lab.experiments import moment_curve

    for n in range(d + 1, 40, 3):
        hull = ConvexHull(moment_curve(n, d))
        assert len(hull.simplices) == th.cyclic_polytope_facets(n, d), (n, d)
        assert len(hull.vertices) == n  # every point of the moment curve is a vertex


def test_moment_curve_facets_grow_like_n_to_the_floor_of_d_over_2():
    from hsr_lab.experiments import moment_curve_facets

    for d in (3, 4, 5):
        hull = moment_curve_facets(d)
        assert np.array_equal(hull.facets, hull.cyclic)
        assert abs(hull.fit.slope - d // 2) < 0.15
        assert np.all(hull.gaussian < hull.facets)  # random points are far from the worst case
    with pytest.raises(ValueError, match="n_values must lie in"):
        moment_curve_facets(4, n_values=(3, 10, 20))
