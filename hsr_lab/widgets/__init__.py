"""The notebooks' widget panels: each a thin shell, ``Panel(view, controls)``, over a view.

A view is a plain function ``view_*(**values) -> Figure`` (``hsr_lab.figures.views``) that can
be called and tested without a kernel; a panel is the Python Data Science Handbook's
``interact(plot_fn, ...)``: one control per argument, under the argument's own name. The
ReLU panel's ``alpha`` and ``b`` reach the view and then ``relu_attention`` as ``alpha`` and
``b`` (the kd-tree, ``HSR``, is queried at the threshold ``t = sqrt(d) b``); its ``n`` and
``d`` size the instance the view draws. How a panel redraws fast (frozen layout, blitting,
cropped PNG) is the business of ``hsr_lab.widgets.render``.

    from hsr_lab.widgets import relu_panel
    relu_panel()          # in a notebook cell
"""

from __future__ import annotations

import functools

import ipywidgets as widgets

from hsr_lab.experiments import KEY_KINDS
from hsr_lab.figures.plane import PlaneScene
from hsr_lab.figures.views import (
    view_query_cost,
    view_relu_attention,
    view_scaling,
    view_smollm2_head,
    view_softmax_threshold,
)
from hsr_lab.widgets.render import Panel, Scene, ScenePanel

__all__ = [
    "Panel",
    "Scene",
    "ScenePanel",
    "cost_panel",
    "plane_panel",
    "relu_panel",
    "scaling_panel",
    "smollm2_panel",
    "softmax_panel",
]

_SLIDER = dict(continuous_update=False, style={"description_width": "initial"})


def plane_panel(n: int = 200) -> Panel:
    """HSR in the plane: the half-plane's angle and offset; kd-tree cells and convex layers."""
    return ScenePanel(
        PlaneScene(),
        {"angle": widgets.FloatSlider(0.6, min=0, max=6.28, step=0.05,
                                      description="angle of a", **_SLIDER),
         "t": widgets.FloatSlider(1.0, min=-2.5, max=3.0, step=0.05, description="offset t",
                                  **_SLIDER),
         "n": widgets.IntSlider(n, min=20, max=2000, step=20, description="points n", **_SLIDER)},
        "Half-plane <a, x> >= t over Gaussian points",
    )


def relu_panel() -> Panel:
    """ReLU^alpha attention: n, d, alpha and b; the activated entries, the kd-tree's counters
    (nodes visited and pruned, inner products) and HSR == dense."""
    return Panel(
        view_relu_attention,
        {"n": widgets.IntSlider(2048, min=16, max=8192, step=16, description="keys n",
                                **_SLIDER),
         "d": widgets.IntSlider(4, min=1, max=128, description="dimension d", **_SLIDER),
         "alpha": widgets.BoundedIntText(1, min=-1, max=6, description="alpha",
                                         layout=widgets.Layout(width="140px")),
         "b": widgets.FloatSlider(1.0, min=-1.0, max=3.0, step=0.05, description="threshold b",
                                  **_SLIDER)},
        "ReLU^alpha attention: A = ReLU(QK^T/sqrt(d) - b)^alpha, through the kd-tree",
    )


def softmax_panel() -> Panel:
    """Thresholded softmax: the threshold b, the score scale sigma_a and the number of planted
    large scores."""
    return Panel(
        view_softmax_threshold,
        {"b": widgets.FloatSlider(1.0, min=-2.0, max=8.0, step=0.1, description="threshold b",
                                  **_SLIDER),
         "sigma_a": widgets.FloatSlider(0.25, min=0.25, max=4.0, step=0.25,
                                        description="score scale sigma_a", **_SLIDER),
         "planted": widgets.IntSlider(2, min=0, max=16, description="planted large scores",
                                      **_SLIDER)},
        "Softmax over the massively activated entries only",
    )


def scaling_panel() -> Panel:
    """Sparsity scaling: the constant c of b = sigma sqrt(c ln n); slope 1 - c/2."""
    return Panel(
        view_scaling,
        {"c": widgets.FloatSlider(0.4, min=0.0, max=2.0, step=0.05, description="c", **_SLIDER)},
        "Activated entries per row at b = sigma_a sqrt(c ln n)",
    )


def cost_panel(log2_n: int = 16) -> Panel:
    """Query time on this machine, kd-tree vs dense scan: d, the largest n and the kind of keys.

    A measurement, not a drawing: it runs once when the panel is built (at these defaults), then
    only when the button is pressed, with a progress bar.
    """
    return Panel(
        view_query_cost,
        {"d": widgets.IntSlider(4, min=1, max=128, description="dimension d", **_SLIDER),
         "log2_n": widgets.IntSlider(log2_n, min=10, max=22, description="largest n = 2^",
                                     **_SLIDER),
         "keys": widgets.Dropdown(options=KEY_KINDS, value="isotropic", description="keys")},
        "Where the tree beats the scan: measured on this machine",
        button="Measure",
    )


def smollm2_panel(quick: bool | None = None, layer: int = 15) -> Panel:
    """SmolLM2-135M (4-bit Q4_1 weights): layer, head, the constant c of the threshold and the
    kind of threshold (the paper's scalar b or per-row b_i); what is kept, what mass is dropped.

    The layers offered are those of the study's cached extraction (quick: 0, 3 and 15).
    """
    from hsr_lab.experiments.smollm2 import study_extraction

    layers = list(study_extraction(quick).layers)
    return Panel(
        functools.partial(view_smollm2_head, quick=quick),
        {"head": widgets.IntSlider(0, min=0, max=8, description="query head", **_SLIDER),
         "c": widgets.FloatSlider(0.4, min=0.05, max=2.0, step=0.05, description="c in b",
                                  **_SLIDER),
         "layer": widgets.Dropdown(options=layers, value=layer if layer in layers else
                                   layers[-1], description="layer"),
         "per_row": widgets.Dropdown(options=[("paper's scalar b", False), ("per-row b_i", True)],
                                     value=False, description="threshold")},
        "SmolLM2-135M (4-bit weights): one head's scores against the threshold",
    )
