"""Widget panels for the notebooks: thin shells around plain ``view_*`` functions.

A ``Panel`` is a row of controls above an image; moving a control (on release:
``continuous_update=False``) calls the view with every control's value and shows the figure.
The panel renders the PNG itself (one draw at 100 dpi, no tight-bbox second pass) and swaps it
into an ``ipywidgets.Image``: that halves the redraw time of displaying a new figure through
an output area. A value the math does not allow (alpha = 0, c >= 2, ...) shows a readable
message instead of a traceback. ``panel.result`` is the last figure (or None), ``panel.png``
its bytes and ``panel.message`` the last message, so tests can drive a panel without a
browser (``benchmarks/bench_widgets.py`` times it).
"""

from __future__ import annotations

import html
import io
from collections.abc import Callable

import ipywidgets as widgets
import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from hsr_lab.figures import REGISTRY
from hsr_lab.figures.interactive import view_relu_attention, view_scaling, view_softmax_threshold

_SLIDER = dict(continuous_update=False, style={"description_width": "initial"})
RENDER_DPI = 100  # screen resolution; the figure command saves at 300 dpi


class Panel(widgets.VBox):
    """Controls above an output area that shows ``view(**values)``."""

    def __init__(self, view: Callable[..., Figure], controls: dict[str, widgets.ValueWidget],
                 title: str = "") -> None:
        self.view, self.controls = view, controls
        self.image = widgets.Image(format="png")
        self.note = widgets.HTML()
        self.result: Figure | None = None
        self.png = b""
        self._layout: tuple[int, list] = (0, [])
        self._frame = None  # the tight frame (inches) of the first figure
        self.message: str | None = None
        self.redraws = 0
        for control in controls.values():
            control.observe(lambda _change: self.refresh(), names="value")
        header = [widgets.HTML(f"<b>{html.escape(title)}</b>")] if title else []
        rows = widgets.Box(list(controls.values()),
                           layout=widgets.Layout(flex_flow="row wrap"))
        super().__init__([*header, rows, self.note, self.image])
        self.refresh()

    def _reuse_layout(self, fig: Figure) -> bool:
        """Place the axes where the first figure's constrained layout put them; True if done.

        Solving the layout and the tight frame costs more than drawing; a slider move changes
        data and titles, not the arrangement, so the first solution is kept while the panel
        shows the same number of axes.
        """
        count, positions = self._layout
        if count != len(fig.axes) or not count:
            return False
        fig.set_layout_engine("none")
        for ax, position in zip(fig.axes, positions, strict=True):
            ax.set_position(position)
        return True

    def values(self) -> dict[str, object]:
        """The controls' current values, by argument name."""
        return {name: control.value for name, control in self.controls.items()}

    def refresh(self) -> None:
        """Redraw the view with the current values (or show why it cannot be drawn)."""
        self.redraws += 1
        try:
            fig = self.view(**self.values())
        except (ValueError, TypeError) as err:
            self.result, self.message = None, str(err)
            self.note.value = (f'<p style="color:#a40000">Cannot draw this: '
                               f"{html.escape(str(err))}</p>")
            self.image.layout.display = "none"
            return
        reused = self._reuse_layout(fig)
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=RENDER_DPI,
                    bbox_inches=self._frame if reused else "tight", pad_inches=0.05)
        if not reused:  # keep this solution: axes positions and the frame around the artists
            self._layout = (len(fig.axes), [ax.get_position() for ax in fig.axes])
            self._frame = fig.get_tightbbox().padded(0.05)
        plt.close(fig)  # shown once, as this image; not again by the inline backend
        self.result, self.message, self.png = fig, None, buffer.getvalue()
        self.note.value = ""
        self.image.value = self.png
        self.image.layout.display = None


def plane_panel(n: int = 200) -> Panel:
    """HSR in the plane: the half-plane's angle and offset; kd-tree cells and convex layers."""
    return Panel(
        lambda angle, offset, n: REGISTRY["hsr_plane"].func(angle=angle, offset=offset, n=n),
        {"angle": widgets.FloatSlider(0.6, min=0, max=6.28, step=0.05,
                                      description="angle of a", **_SLIDER),
         "offset": widgets.FloatSlider(1.0, min=-2.5, max=3.0, step=0.05,
                                       description="offset t", **_SLIDER),
         "n": widgets.IntSlider(n, min=20, max=2000, step=20, description="points n", **_SLIDER)},
        "Half-plane <a, x> >= t over Gaussian points",
    )


def relu_panel() -> Panel:
    """ReLU^alpha attention: n, d, alpha and b; the activated entries and HSR == dense."""
    return Panel(
        view_relu_attention,
        {"n": widgets.IntSlider(512, min=16, max=8192, step=16, description="keys n", **_SLIDER),
         "d": widgets.IntSlider(8, min=1, max=128, description="dimension d", **_SLIDER),
         "alpha": widgets.BoundedIntText(1, min=-1, max=6, description="alpha",
                                         layout=widgets.Layout(width="140px")),
         "b": widgets.FloatSlider(0.5, min=-1.0, max=3.0, step=0.05, description="threshold b",
                                  **_SLIDER)},
        "ReLU^alpha attention: A = ReLU(QK^T/sqrt(d) - b)^alpha",
    )


def softmax_panel() -> Panel:
    """Thresholded softmax: the threshold b and the number of planted large scores."""
    return Panel(
        view_softmax_threshold,
        {"b": widgets.FloatSlider(1.0, min=-2.0, max=4.0, step=0.1, description="threshold b",
                                  **_SLIDER),
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
