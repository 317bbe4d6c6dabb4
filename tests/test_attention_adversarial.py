"""Adversarial tests of attention: hsr against dense on ties at b, at every scale 2^k, on
inputs at the edges of what dense accepts, on a key exactly at b and on values near the float
limit.

"The same result" (``scores.py``): the kept sets are identical, entry by entry, on every path
(``stats.activated`` and ``stats.empty`` are equal), and the outputs agree to rounding.
"""

from __future__ import annotations

import warnings
from fractions import Fraction

import numpy as np
import pytest
from conftest import examples
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from hsr_lab.attention import Decoder, relu_attention, softmax_attention

BACKENDS = ["numpy", "compiled", "reference", "brute", "auto"]
HUGE_B = [1.7e308, -1.7e308, 1e300, -1e300, 5e200, -5e200]


def close(actual: np.ndarray, expected: np.ndarray, V: np.ndarray) -> None:
    """Equal to rounding, relative to max |V| (outputs are convex combinations of rows of V)."""
    assert np.isfinite(actual).all()
    scale = float(np.abs(V).max(initial=0.0))
    np.testing.assert_allclose(actual, expected, rtol=1e-9, atol=1e-9 * scale)


def both(kind: str, Q, K, V, b, alpha=1, **kw):
    """(dense, hsr) results with stats, no warning allowed (an overflow warns)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        if kind == "relu":
            return [relu_attention(Q, K, V, alpha, b, method=method, return_stats=True, **kw)
                    for method in ("dense", "hsr")]
        return [softmax_attention(Q, K, V, b=b, method=method, return_stats=True, **kw)
                for method in ("dense", "hsr")]


def same(kind: str, Q, K, V, b, alpha=1, **kw) -> None:
    """hsr equals dense: identical kept sets, close outputs and dropped masses."""
    (out_d, st_d), (out_h, st_h) = both(kind, Q, K, V, b, alpha, **kw)
    np.testing.assert_array_equal(st_h.activated, st_d.activated)
    np.testing.assert_array_equal(st_h.empty, st_d.empty)
    close(out_h, out_d, np.asarray(V, dtype=float))
    if kind == "softmax":
        np.testing.assert_allclose(st_h.dropped_mass, st_d.dropped_mass, rtol=1e-9, atol=1e-12)


# -- inputs at the edge of the float range: what dense computes, hsr and Decoder compute ------
def test_huge_queries_are_computed_by_hsr_as_by_dense():
    Q, K, V = [[1e160, 0]], [[1e-20, 0], [2e-20, 1]], [[1.0], [2.0]]
    for kind in ("relu", "softmax"):
        same(kind, Q, K, V, 0.0)
    decoder = Decoder(2, b=0.0, keys=K, values=V)
    np.testing.assert_allclose(decoder.attend(Q[0])[0], decoder.attend_dense(Q[0])[0])


@pytest.mark.parametrize("b", HUGE_B)
@pytest.mark.parametrize("kind", ["relu", "softmax"])
def test_thresholds_near_the_float_limit_keep_nothing_or_everything(kind, b):
    rng = np.random.default_rng(4)
    Q, K, V = rng.standard_normal((5, 3)), rng.standard_normal((9, 3)), rng.standard_normal((9, 2))
    same(kind, Q, K, V, b, alpha=2, sinks=1)
    (_, stats), _ = both(kind, Q, K, V, b)
    assert (stats.activated == (9 if b < 0 else 0)).all()
    decoder = Decoder(3, alpha=2, b=b, kind=kind, keys=K, values=V, sinks=1)
    for q in Q:
        close(decoder.attend(q)[0], decoder.attend_dense(q)[0], V)


def test_tiny_magnitudes_are_reported_like_dense():
    Q, K, V = [[-1e-170]], [[-1e-23], [1.0]], [[1.0], [2.0]]
    for backend in BACKENDS:
        out = relu_attention(Q, K, V, b=5e-194, method="hsr", backend=backend)
        np.testing.assert_array_equal(out, [[1.0]])
    same("relu", Q, K, V, 5e-194)


# -- a key exactly at b, whose score two paths could round differently ------------------------
def test_a_key_at_the_threshold_is_kept_by_both_paths_or_neither():
    rng = np.random.default_rng(34)
    rng.integers(2, 9), rng.integers(2, 12), rng.integers(1, 4)
    Q, K, V = rng.standard_normal((1, 2)), rng.standard_normal((2, 2)), rng.standard_normal((2, 1))
    b = float((Q @ K.T)[0, 1] / np.sqrt(2))
    for backend in ("numpy", "compiled", "reference", "brute", "layers"):
        same("softmax", Q, K, V, b, backend=backend)
        same("relu", Q, K, V, b, backend=backend)
    for kind in ("relu", "softmax"):
        decoder = Decoder(2, b=b, kind=kind, keys=K, values=V)
        (row, cost), (ref, ref_cost) = decoder.attend(Q[0]), decoder.attend_dense(Q[0])
        assert cost.activated[0] == ref_cost.activated[0]
        close(row, ref, V)


# -- values near the float limit ----------------------------------------------------------------
@pytest.mark.parametrize("kind", ["relu", "softmax"])
@pytest.mark.parametrize("top", [1.5e308, np.finfo(np.float64).max])
def test_values_near_the_float_limit_give_finite_rows(kind, top):
    rng = np.random.default_rng(8)
    Q, K = rng.standard_normal((6, 2)), rng.standard_normal((40, 2))
    V = top * rng.uniform(-1, 1, (40, 3))
    V[0] = top
    small = V / 2.0**1000  # the same problem, far from overflow
    (out_d, _), (out_h, _) = both(kind, Q, K, V, -0.5)
    (ref, _), _ = both(kind, Q, K, small, -0.5)
    ref = np.clip(ref, -top / 2.0**1000, top / 2.0**1000)  # rounding must not overflow below
    close(out_d, ref * 2.0**1000, V)
    close(out_h, ref * 2.0**1000, V)
    decoder = Decoder(2, b=-0.5, kind=kind, keys=K, values=V)
    for q, expected in zip(Q, ref * 2.0**1000, strict=True):
        close(decoder.attend(q)[0], expected, V)
        close(decoder.attend_dense(q)[0], expected, V)
    same_values = np.full((40, 1), top)
    for out, _ in both(kind, Q, K, same_values, -0.5):
        close(out, np.full_like(out, top), same_values)


# -- properties: ties at b, every scale ---------------------------------------------------------
@st.composite
def tie_problems(draw, dyadic: bool = True):
    """Q, K, V, causal or not, and b taken from the scores so that keys sit on the threshold.

    The entries are small integers, dyadic (quarters) or Gaussian; b is a score as the matrix
    product rounds it, as a row of inner products rounds it, exact (integer data), one float
    away, or 0. Gaussian data is where the paths' roundings differ."""
    d, causal = draw(st.integers(1, 6)), draw(st.booleans())
    n = draw(st.integers(1, 10))
    m = n if causal else draw(st.integers(1, 5))
    data = draw(st.sampled_from(["integer", "dyadic", "gaussian"] if dyadic
                                else ["integer", "gaussian"]))
    if data == "gaussian":
        rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
        Q, K, V = (rng.standard_normal(shape) for shape in ((m, d), (n, d), (n, 2)))
    else:
        unit = 0.25 if data == "dyadic" else 1.0
        entries = st.integers(-4, 4).map(lambda x: x * unit)
        Q = draw(arrays(np.float64, (m, d), elements=entries))
        K = draw(arrays(np.float64, (n, d), elements=entries))
        V = draw(arrays(np.float64, (n, 2), elements=st.integers(-3, 3).map(float)))
    i, j = draw(st.integers(0, m - 1)), draw(st.integers(0, n - 1))
    gemm = float((Q @ K.T)[i, j] / np.sqrt(d))
    pairs = float(np.einsum("ij,ij->i", K, np.repeat(Q[i:i + 1], n, axis=0))[j] / np.sqrt(d))
    matvec = float((K @ Q[i])[j] / np.sqrt(d))
    b = draw(st.sampled_from([gemm, pairs, matvec, np.nextafter(gemm, np.inf),
                              np.nextafter(gemm, -np.inf), 0.0]))
    return Q, K, V, float(b), causal


def backends_for(d: int) -> list[str]:
    return BACKENDS + (["layers"] if d == 2 else [])


@settings(max_examples=examples(200))
@given(tie_problems(), st.integers(1, 3), st.integers(0, 2), st.integers(0, 2), st.data())
def test_ties_at_b_keep_the_same_entries_on_both_paths(problem, alpha, sinks, window, data):
    Q, K, V, b, causal = problem
    backend = data.draw(st.sampled_from(backends_for(Q.shape[1])))
    copies = [X.copy() for X in (Q, K, V)]
    same("relu", Q, K, V, b, alpha, causal=causal, backend=backend, sinks=sinks, window=window)
    same("softmax", Q, K, V, b, causal=causal, backend=backend, sinks=sinks, window=window)
    for X, copy in zip((Q, K, V), copies, strict=True):
        np.testing.assert_array_equal(X, copy)


@settings(max_examples=examples(80))
@given(tie_problems(), st.integers(1, 3), st.sampled_from(["relu", "softmax"]), st.data())
def test_decoder_rows_keep_the_same_entries_as_its_dense_rows(problem, alpha, kind, data):
    Q, K, V, b, _ = problem
    backend = data.draw(st.sampled_from(backends_for(Q.shape[1])))
    decoder = Decoder(Q.shape[1], alpha=alpha, b=b, kind=kind, sinks=1, window=1,
                      backend=backend)
    for k, v, q in zip(K, V, np.resize(Q, (len(K), Q.shape[1])), strict=True):
        row, cost = decoder.step(q, k, v)
        ref, ref_cost = decoder.attend_dense(q)
        assert cost.activated[0] == ref_cost.activated[0]
        close(row, ref, V)


@settings(max_examples=examples(200))
@given(tie_problems(dyadic=False), st.integers(-1000, 490), st.integers(-1000, 1000),
       st.integers(-1000, 1000), st.sampled_from(["relu", "softmax"]), st.data())
def test_every_scale_2_to_the_k_gives_the_same_kept_entries(problem, kk, kq, kv, kind, data):
    """Q, K, V and b scaled by 2^kq, 2^kk, 2^kv, 2^(kq + kk), as far as float64 and the
    magnitude limits (|K| <= 1e150, max|Q| max|K| d <= 1e300) allow."""
    Q, K, V, b, causal = problem
    kq = min(kq, 984 - kk)  # max|Q| max|K| d <= 4 * 4 * 6 * 2^984 < 1e300
    backend = data.draw(st.sampled_from(backends_for(Q.shape[1])))
    alpha, sinks, window = (data.draw(st.integers(0, 3)) for _ in range(3))
    Q, K, V = Q * 2.0**kq, K * 2.0**kk, V * 2.0**kv
    b = b * 2.0 ** (kq + kk) if kq + kk > -1074 else 0.0
    same(kind, Q, K, V, b, alpha + 1, causal=causal, backend=backend, sinks=sinks,
         window=window)


# -- the decisive score --------------------------------------------------------------------------
scaled_floats = st.builds(lambda x, k: x * 2.0**k, st.floats(-2, 2), st.integers(-600, 480))


@settings(max_examples=examples(200))
@given(st.integers(1, 6).flatmap(lambda d: st.tuples(
    arrays(np.float64, (4, d), elements=scaled_floats),
    arrays(np.float64, (4, d), elements=scaled_floats))))
def test_decisive_scores_are_the_correctly_rounded_inner_products(pair):
    """decisive_many (error-free products and sums in bulk, or fractions) equals the fraction
    sum, always."""
    from fractions import Fraction

    from hsr_lab.attention.scores import decisive_many

    A, X = pair
    expected = [float(sum((Fraction(a) * Fraction(x) for a, x in zip(r, s, strict=True)),
                          Fraction(0))) / np.sqrt(A.shape[1]) for r, s in zip(A, X, strict=True)]
    np.testing.assert_array_equal(decisive_many(A, X), expected)


def test_keys_all_at_zero_with_b_zero_stay_fast():
    """Every entry on the threshold (zero keys, b = 0): each needs its decisive score."""
    import time

    rng = np.random.default_rng(5)
    Q, K, V = rng.standard_normal((200, 8)), np.zeros((500, 8)), rng.standard_normal((500, 2))
    start = time.perf_counter()
    for kind in ("relu", "softmax"):
        same(kind, Q, K, V, 0.0)
    assert time.perf_counter() - start < 10


@pytest.mark.parametrize("make", [
    lambda b: relu_attention([[1.0]], [[1.0]], [[1.0]], b=b),
    lambda b: softmax_attention([[1.0]], [[1.0]], [[1.0]], b=b, method="hsr"),
    lambda b: Decoder(1, b=b)])
def test_an_integer_threshold_beyond_the_float_range_is_refused_naming_b(make):
    with pytest.raises(ValueError, match=r"^b must be"):
        make(10**400)


# -- values float64 cannot hold: refused by name, as HSR refuses them --------------------------
WIDE = np.longdouble(1) + np.longdouble(2) ** -60  # 1 + 2^-60: more bits than float64 holds
LONGDOUBLE = [] if WIDE == 1 else [WIDE]  # where longdouble is float64, it cannot round
# Each rounds in float64: 2^53 + 1, 2^60 + 1 and 2^64 - 1 are odd integers above 2^53.
ROUNDED_ENTRIES = [np.int64(2**53 + 1), 2**60 + 1, np.uint64(2**64 - 1), *LONGDOUBLE]
ROUNDED_SCALARS = [*ROUNDED_ENTRIES, Fraction(1, 3)]
OK = {"Q": [[1.0, 0.0]], "K": [[1.0, 0.0], [0.0, 1.0]], "V": [[1.0, 0.0], [2.0, 1.0]],
      "b": 0.25}


def _entry_points(name: str, value: object) -> list:
    """Every entry point, given ``value`` as the argument ``name`` and valid values elsewhere:
    both methods of relu_attention, softmax_attention through HSR, and a prefilled Decoder
    (which takes b, keys = K and values = V)."""
    a = {**OK, name: value}
    calls = [lambda: relu_attention(a["Q"], a["K"], a["V"], b=a["b"]),
             lambda: relu_attention(a["Q"], a["K"], a["V"], b=a["b"], method="hsr",
                                    backend="numpy"),
             lambda: softmax_attention(a["Q"], a["K"], a["V"], b=a["b"], method="hsr")]
    if name != "Q":
        calls.append(lambda: Decoder(2, b=a["b"], keys=a["K"], values=a["V"]))
    return calls


@pytest.mark.parametrize("name", ["Q", "K", "V"])
@pytest.mark.parametrize("entry", ROUNDED_ENTRIES, ids=repr)
def test_a_matrix_entry_float64_would_round_is_refused_naming_the_argument(name, entry):
    matrix = np.array(OK[name], dtype=object)
    matrix[0, 0] = entry
    value = matrix.tolist() if isinstance(entry, int) else matrix.astype(type(entry))
    for call in _entry_points(name, value):
        with pytest.raises(ValueError, match="float64 would round") as err:
            call()
        assert str(err.value).startswith(({"K": "keys", "V": "values"}.get(name, name), name))


@pytest.mark.parametrize("b", ROUNDED_SCALARS, ids=repr)
def test_a_threshold_float64_would_round_is_refused_naming_b(b):
    for call in _entry_points("b", b):
        with pytest.raises(ValueError, match=r"^b must be a real number that float64 represents"):
            call()


def test_values_beyond_2_to_the_53_that_float64_holds_are_accepted():
    """2^60 and 2^53 + 2 are float64 values: taken as they are, the same answers as floats."""
    Q, K = np.array([[1, 0]], dtype=np.int64), np.array([[2**60, 0], [0, 1]], dtype=np.int64)
    V = np.array([[2**53 + 2], [1]], dtype=np.int64)
    out = relu_attention(Q, K, V, b=0.5)
    np.testing.assert_array_equal(out, relu_attention(Q.astype(float), K.astype(float),
                                                      V.astype(float), b=0.5))
    assert out[0, 0] == 2.0**53 + 2


def test_a_decoder_refuses_a_rounded_q_or_key_and_stays_as_it_was():
    decoder = Decoder(2, b=0.0, keys=[[1.0, 0.0]], values=[[1.0]])
    before = (decoder.keys.copy(), decoder.values.copy(), len(decoder.hsr))
    big = np.array([2**53 + 1, 0], dtype=np.int64)
    for call, name in ((lambda: decoder.attend(big), "q"),
                       (lambda: decoder.step(big, [1.0, 0.0], [1.0]), "q"),
                       (lambda: decoder.step([1.0, 0.0], big, [1.0]), "k_new"),
                       (lambda: decoder.append([1.0, 0.0], np.array([2**53 + 1])), "v_new"),
                       (lambda: decoder.append(big, [1.0]), "k_new")):
        with pytest.raises(ValueError, match=rf"^{name} must hold values that float64"):
            call()
    after = (decoder.keys, decoder.values, len(decoder.hsr))
    np.testing.assert_array_equal(after[0], before[0])
    np.testing.assert_array_equal(after[1], before[1])
    assert after[2] == before[2]
