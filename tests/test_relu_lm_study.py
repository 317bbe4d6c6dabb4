"""experiments.relu_lms: the study of the trained ReLU^alpha byte LMs (quick mode), its
figures, and the measurements notebook 09's verdict rests on."""

from __future__ import annotations

import numpy as np
import pytest

from hsr_lab import config, relu_attention, theory
from hsr_lab.data import pystdlib, relu_lm
from hsr_lab.experiments import relu_lms
from hsr_lab.figures import REGISTRY


@pytest.fixture(autouse=True)
def _isolated(tmp_path_factory, monkeypatch):
    monkeypatch.setenv(config.CACHE_DIR_ENV, str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv(config.CACHE_DIR_ENV, str(tmp_path_factory.getbasetemp() / "cache"))
    yield relu_lms.relu_lm_study(quick=True)
    mp.undo()


def test_hsr_attention_equals_dense_on_every_layer_of_the_trained_models(study):
    assert study.hsr_error.shape == (4, 4, 4)
    assert np.all(study.hsr_error <= 1e-12)


def test_quick_study_is_cached_and_consistent(study):
    again = relu_lms.relu_lm_study(quick=True)
    for key, value in study.arrays.items():
        np.testing.assert_array_equal(again.arrays[key], value)
    V, S = study.count.shape[0], study.count.shape[-1]
    assert (V, S) == (4, len(study.sizes)) and study.sizes[0] == 64
    assert np.all(study.count >= 0) and np.all(study.count <= study.sizes)
    assert np.all((study.empty >= 0) & (study.empty <= 1))
    for i, v in enumerate(study.variants):
        lm = relu_lm.load(v)
        if lm.relu:  # the ReLU models are thresholded at their own b at every n
            np.testing.assert_array_equal(study.b[i], lm.b)
            np.testing.assert_array_equal(study.b_used[i], np.repeat(lm.b[..., None], S, -1))
    np.testing.assert_allclose(study.spectrum.sum(axis=-1), 1.0, rtol=1e-12)
    assert np.all((study.pr >= 1) & (study.pr <= 64))
    # a kd-tree scores at most every key, and reports what it scored or a whole box
    assert np.all(study.tree[..., 1] <= study.tree_sizes)
    assert np.all(study.bpb > 0.5) and np.all(study.bpb < 3.0)


def test_every_training_seed_is_measured_on_the_same_windows(study):
    """The _seeds arrays: seed 0's slice is the main arrays; seed 1's bits per byte and one
    head's count are recomputed here from its own model."""
    R = len(relu_lm.SEEDS)
    assert study.seeds == relu_lm.SEEDS and study.bpb_seeds.shape == (4, R, 1)
    assert study.count_seeds.shape == (4, R, *study.count.shape[1:])
    for key in ("bpb", "count", "empty", "b", "b_paper"):
        np.testing.assert_array_equal(getattr(study, f"{key}_seeds")[:, 0], getattr(study, key))
    ids = pystdlib.heldout_windows(256, 1, 0)[0]
    for v in study.variants:
        tr = relu_lm.run(relu_lm.load(v, 1), ids)
        assert study.bpb_seeds[study.index(v), 1, 0] == pytest.approx(tr.bits_per_byte(),
                                                                     rel=1e-12)
    lm = relu_lm.load("relu1_learned", 1)
    tr = relu_lm.run(lm, ids)
    layer, head, n, m = 2, 1, 256, study.m
    S = tr.Q[layer, head] @ tr.K[layer, head].T / 8.0
    rows = np.arange(n - m, n)
    active = (S[rows] > lm.b[layer, head]) & (np.arange(n)[None] <= rows[:, None])
    assert study.counts("relu1_learned", 1)[layer, head, -1] == pytest.approx(
        active.sum(axis=1).mean())
    np.testing.assert_array_equal(study.b_seeds[study.index("relu1_learned"), 1], lm.b)
    # the two seeds are different models
    assert not np.array_equal(study.count_seeds[:, 0], study.count_seeds[:, 1])


def test_seed_comparison_is_a_pooled_two_sample_t_test(study):
    """compare() against the textbook formula written out here, and its symmetries."""
    from scipy import stats

    means = {v: [study.bpb_seeds[i, r].mean() for r in range(len(study.seeds))]
             for i, v in enumerate(study.variants)}
    for pool in (None, ("softmax", "relu2_paper", "relu2_learned")):
        _check_comparisons(study, means, pool, stats)
    assert study.compare("softmax", "softmax").difference == 0.0
    assert not study.compare("softmax", "softmax").exceeds_noise
    with pytest.raises(ValueError, match="training seeds"):
        study.pooled_fit("softmax", seed=7)
    with pytest.raises(ValueError, match="variant must be one of"):
        study.seed_sd(("softmax", "relu9"))


def _check_comparisons(study, means: dict, pool, stats) -> None:
    kept = {v: xs for v, xs in means.items() if pool is None or v in pool}
    ss = sum((x - np.mean(xs)) ** 2 for xs in kept.values() for x in xs)
    df = sum(len(xs) - 1 for xs in kept.values())
    sd = np.sqrt(ss / df)
    for a, b in [("relu2_learned", "softmax"), ("relu1_learned", "relu2_paper")]:
        c = study.compare(a, b, noise_from=pool)
        diff = np.mean(means[a]) - np.mean(means[b])
        half = stats.t.ppf(0.975, df) * sd * np.sqrt(1 / len(means[a]) + 1 / len(means[b]))
        assert (c.df, c.sd) == (df, pytest.approx(sd, rel=1e-12))
        assert c.difference == pytest.approx(diff, rel=1e-12)
        assert c.half_width == pytest.approx(half, rel=1e-12)
        assert c.exceeds_noise == (abs(diff) > half)
        assert c.separated == (max(means[a]) < min(means[b]) or max(means[b]) < min(means[a]))
        back = study.compare(b, a, noise_from=pool)
        assert back.difference == -c.difference and back.half_width == c.half_width


def test_counts_match_a_direct_count(study):
    """One head's count at the largest n, recomputed from the model's own scores."""
    lm = relu_lm.load("relu2_learned")
    ids = pystdlib.heldout_windows(256, 1, 0)[0]
    tr = relu_lm.run(lm, ids)
    layer, head, n, m = 1, 2, 256, study.m
    S = tr.Q[layer, head] @ tr.K[layer, head].T / 8.0
    rows = np.arange(n - m, n)
    active = (S[rows] > lm.b[layer, head]) & (np.arange(n)[None] <= rows[:, None])
    assert study.count[1, layer, head, -1] == pytest.approx(active.sum(axis=1).mean())
    # and that count is what relu_attention reports activated
    _, stats = relu_attention(tr.Q[layer, head], tr.K[layer, head], tr.V[layer, head], 2,
                              float(lm.b[layer, head]), causal=True, return_stats=True)
    np.testing.assert_array_equal(stats.activated[rows], active.sum(axis=1))


def test_slopes_have_intervals_and_the_gaussian_fit_is_below_08(study):
    sl = study.slopes("relu2_learned")
    ok = ~np.isnan(sl[..., 0])
    assert ok.any()
    assert np.all(sl[ok][:, 1] <= sl[ok][:, 0]) and np.all(sl[ok][:, 0] <= sl[ok][:, 2])
    assert study.gaussian_fit().slope < 0.8
    fit = study.fit("relu2_learned", 0, 0)
    assert fit is None or isinstance(fit, theory.ExponentFit)


def test_learned_b_stays_below_the_papers_value():
    """The shipped models of every training seed: every learned b is below the paper's value
    for its head (the study's b_paper, read from the head's queries and keys), the median head
    by 4x or more."""
    s = relu_lms.relu_lm_study(quick=True)
    for v in ("relu2_learned", "relu1_learned"):
        for r in range(len(s.seeds)):
            ratio = s.b_seeds[s.index(v), r] / s.b_paper_seeds[s.index(v), r]
            assert np.all(ratio < 1.0) and np.median(ratio) < 0.25, (v, r)


def test_decoding_step_is_exact_and_timed():
    out = relu_lms.decoding_times(n=200, repeats=2)
    assert out["n"] == 200 and out["tree_kind"] in ("compiled", "numpy")
    assert all(out[k] > 0 for k in ("dense", "auto", "tree"))
    with pytest.raises(ValueError, match="ReLU model"):
        relu_lms.decoding_times("softmax", n=64, repeats=1)


@pytest.mark.parametrize("name", ["relu_lm_training", "relu_lm_sparsity", "relu_lm_keys"])
def test_figures_draw_in_quick_mode(name):
    import matplotlib.pyplot as plt

    fig = REGISTRY[name].func(quick=True)
    assert len(fig.axes) == 3
    plt.close(fig)


@pytest.mark.parametrize("seed", relu_lm.SEEDS)
def test_trained_rows_grow_slower_than_n_to_the_four_fifths(study, seed):
    """Every ReLU model's pooled count slope is below 0.8, for every training seed; for seed 0
    no head's 95% interval lies above 0.8 either. Quick mode (one window, n = 64..256) is too
    short for that per-head claim on seed 1: one head of its ReLU model has its interval above
    0.8 there. Notebook 09 (cell `slopes`) asserts every head of both seeds below 0.8 on the
    full run (8 windows, n = 128..2048)."""
    for v in ("relu2_learned", "relu2_paper", "relu1_learned"):
        assert study.pooled_fit(v, seed).slope < 0.8, v
        if seed == 0:
            assert not (study.slopes(v, seed)[..., 1] > 0.8).any(), v
        assert study.counts(v, seed).mean() > 1  # sparse, not empty


def test_kd_tree_scores_almost_every_trained_key(study):
    """The learned-b models' keys are high-dimensional (median participation ratio above 10 of
    64) and the kd-tree scores more than 95% of them per query, as on Gaussian keys."""
    for v in ("relu2_learned", "relu1_learned"):
        i = study.index(v)
        assert np.median(study.pr[i]) > 10
        assert (study.tree[i, ..., 1] / study.tree_sizes).mean() > 0.95
    assert np.all(study.gaussian_tree[:, 1] / study.tree_sizes > 0.95)
