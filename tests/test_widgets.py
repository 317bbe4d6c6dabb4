"""Widget panels: the plain views are called directly, then each panel is driven like a user.

ipywidgets swallows exceptions raised in callbacks, so both are checked: the view functions
raise or return a Figure, and a panel's ``result`` changes when one of its controls moves.
"""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.figure import Figure
from PIL import Image

from hsr_lab import widgets
from hsr_lab.figures.interactive import (
    view_relu_attention,
    view_scaling,
    view_softmax_threshold,
)


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
    (widgets.plane_panel, "offset", 0.2),
    (widgets.relu_panel, "b", 1.0),
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
    panel.controls["angle"].value = 2.0
    panel.controls["offset"].value = 1.3  # two moves: both blitted onto the kept background
    blitted = _pixels(panel.png)
    for artist in panel.scene.moving:  # now draw every artist the ordinary way
        artist.set_animated(False)
    panel.result.canvas.draw()
    full = _pixels(widgets._png(panel.result, panel._layout[1]))
    assert blitted.shape == full.shape
    # Identical up to antialiasing where a spine meets the shading (a few levels in a few
    # pixels); drawing anything in the wrong order changes whole lines by tens of levels.
    diff = np.abs(blitted - full).max(axis=2)
    assert diff.max() <= 8 and (diff > 0).mean() < 1e-3, (diff.max(), (diff > 0).sum())
