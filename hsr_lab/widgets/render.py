"""Rendering machinery of the widget panels: frozen layouts, blitting, cropped PNGs.

A ``Panel`` is a row of controls above an image; moving a control (on release:
``continuous_update=False``) calls a plain view function with every control's value and shows
the figure. ``hsr_lab.widgets`` builds the notebooks' panels from these two classes. Redraws
stay well under 200 ms (``benchmarks/bench_widgets.py`` times them) by:

- drawing into the same figure every time (``hsr_lab.figures.redraw.drawing_into``), so
  matplotlib's text-layout cache stays warm, and keeping the first layout solution (solving
  it costs more than drawing);
- rendering the canvas once at screen resolution and encoding the PNG ourselves, cropped to
  the frame of the first figure (``savefig(bbox_inches=...)`` draws more than once);
- for the plane, a ``ScenePanel``: the axes and legends are drawn once per view box and kept
  as a bitmap; a move redraws only the half-plane's artists on top of it (blitting).

A drawing that outgrows the frozen frame (a longer tick label, say) is laid out again.

A value the math does not allow (alpha = 0, c >= 2, ...) shows a readable message instead of a
traceback. ``panel.result`` is the figure shown (or None), ``panel.png`` its bytes and
``panel.message`` the last message, so tests can drive a panel without a browser.

Where no widget can run (the rendered book, nbconvert, GitHub's viewer), a panel shows the
picture it drew last as a plain image, with one line saying where the sliders move: its
display data carries that as ``text/html`` and ``image/png`` beside the live widget's view,
which JupyterLab prefers.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Callable, Hashable
from typing import Protocol

import ipywidgets as widgets
import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.artist import Artist
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure
from matplotlib.transforms import Bbox
from PIL import Image

from hsr_lab.figures import drawing_into, house_style

STATIC_NOTE = "The sliders move in JupyterLab: run <code>make lab</code> and open this notebook."
RENDER_DPI = 100  # screen size: a two-column figure is ~900 px wide; files are saved at 300
_PAD = 0.05  # inches of white around the artists, as savefig(pad_inches=0.05)


def keep(fig: Figure) -> Figure:
    """Take ``fig`` away from pyplot (it is shown as the panel's image, not again inline) and
    give it its own Agg canvas (closing a figure leaves it a canvas that cannot draw)."""
    plt.close(fig)
    FigureCanvasAgg(fig)
    return fig


def _drop_layout_engine(fig: Figure) -> None:
    """No layout engine at all: even the "none" placeholder makes matplotlib run an extra pass
    over every artist on each draw."""
    with mpl.rc_context({"figure.autolayout": False, "figure.constrained_layout.use": False}):
        fig.set_layout_engine(None)


def fix_layout(fig: Figure) -> tuple[list[Bbox], Bbox]:
    """Solve ``fig``'s layout, draw it, then freeze it; return the axes positions and the frame.

    The house style's constrained layout places the axes in one draw; the engine is then
    removed, and the frame is the tight box around all artists, in pixels.
    """
    fig.set_dpi(RENDER_DPI)
    with house_style():
        fig.set_layout_engine("constrained")
    for ax in fig.axes:  # Axes.set_position took them out of the layout: back in
        ax.set_in_layout(True)
    fig.canvas.draw()
    _drop_layout_engine(fig)
    frame = fig.get_tightbbox().padded(_PAD).transformed(fig.dpi_scale_trans)
    return [ax.get_position() for ax in fig.axes], frame


def apply_layout(fig: Figure, positions: list[Bbox]) -> None:
    """Draw ``fig`` with its axes at ``positions`` (a layout frozen by ``fix_layout``)."""
    fig.set_dpi(RENDER_DPI)
    _drop_layout_engine(fig)
    for ax, position in zip(fig.axes, positions, strict=True):
        ax.set_position(position)
    fig.canvas.draw()


def _frame_box(rgba: np.ndarray, frame: Bbox) -> tuple[int, int, int, int]:
    """``frame`` (pixels, y up) as (top, bottom, left, right) rows and columns of the canvas
    buffer ``rgba`` (y down), clipped to the canvas."""
    height, width = rgba.shape[:2]
    x0, y0, x1, y1 = (round(float(v)) for v in frame.extents)
    top, bottom = min(max(height - y1, 0), height), min(max(height - y0, 0), height)
    return top, bottom, min(max(x0, 0), width), min(max(x1, 0), width)


def _spills(fig: Figure, frame: Bbox) -> bool:
    """True if the canvas, as drawn, has anything outside ``frame`` (pixels) or on its border.

    A frozen layout fits the first drawing; a later one can grow (longer tick labels, say),
    past the frame or past the canvas itself, where it is cut at the border. Checking those
    pixels for anything but the background costs about a millisecond, against tens for
    recomputing every artist's extent.
    """
    rgba = np.asarray(fig.canvas.buffer_rgba())
    height, width = rgba.shape[:2]
    top, bottom, left, right = _frame_box(rgba, frame)
    bands = (rgba[:max(top, 1)], rgba[min(bottom, height - 1):],
             rgba[:, :max(left, 1)], rgba[:, min(right, width - 1):])
    background = np.asarray(to_rgba(fig.get_facecolor())) * 255
    return any(np.any(np.abs(band.astype(np.int16) - background) > 1) for band in bands)


def png_bytes(fig: Figure, frame: Bbox) -> bytes:
    """The canvas as it stands, cropped to ``frame`` (pixels), as PNG bytes (fast zlib level)."""
    rgba = np.asarray(fig.canvas.buffer_rgba())
    top, bottom, left, right = _frame_box(rgba, frame)
    buffer = io.BytesIO()
    Image.fromarray(rgba[top:bottom, left:right]).save(buffer, format="png", compress_level=1)
    return buffer.getvalue()


class Panel(widgets.VBox):
    """Controls above an image that shows ``view(**values)``.

    With ``button`` (its label), the view is heavy: moving a control redraws nothing, the
    button does, and the view gets ``progress=callback(done, total)`` to drive a progress bar.
    """

    def __init__(self, view: Callable[..., Figure], controls: dict[str, widgets.ValueWidget],
                 title: str = "", button: str | None = None) -> None:
        self.view, self.controls = view, controls
        # At its natural size: a flex column would stretch it, blurring the text.
        self.image = widgets.Image(format="png", layout=widgets.Layout(align_self="flex-start"))
        self.note = widgets.HTML()
        self.result: Figure | None = None
        self.png = b""
        self.message: str | None = None
        self._title = title or "widget panel"
        self.redraws = 0
        self._figure: Figure | None = None  # every redraw refills this figure
        self._layout: tuple[list[Bbox], Bbox] | None = None  # axes positions, frame
        self.button = self.bar = None
        row = list(controls.values())
        if button is None:
            for control in controls.values():
                control.observe(lambda _change: self.refresh(), names="value")
        else:
            self.button = widgets.Button(description=button, button_style="primary")
            self.button.on_click(lambda _button: self.refresh())
            self.bar = widgets.FloatProgress(0.0, min=0.0, max=1.0,
                                             layout=widgets.Layout(width="160px"))
            row += [self.button, self.bar]
        header = [widgets.HTML(f"<b>{html.escape(title)}</b>")] if title else []
        rows = widgets.Box(row, layout=widgets.Layout(flex_flow="row wrap"))
        super().__init__([*header, rows, self.note, self.image])
        self.refresh()

    def _repr_mimebundle_(self, **kwargs) -> dict[str, object]:
        """The live widget's view, plus a still for readers without a kernel: the picture as
        ``image/png`` and, as ``text/html``, that picture above one line about the sliders."""
        bundle = super()._repr_mimebundle_(**kwargs)
        if self.png:
            data = base64.b64encode(self.png).decode("ascii")
            bundle["image/png"] = data
            body = f'<img src="data:image/png;base64,{data}" alt="{html.escape(self._title)}">'
        else:
            body = f"<p>Cannot draw this: {html.escape(self.message or '')}</p>"
        bundle["text/html"] = (f'<figure class="hsr-panel">{body}'
                               f"<figcaption>{STATIC_NOTE}</figcaption></figure>")
        return bundle

    def values(self) -> dict[str, object]:
        """The controls' current values, by argument name (and ``progress`` with a button)."""
        values = {name: control.value for name, control in self.controls.items()}
        if self.bar is not None:
            values["progress"] = self._progress
        return values

    def _progress(self, done: int, total: int) -> None:
        self.bar.value = done / total

    def refresh(self) -> None:
        """Redraw the view with the current values (or show why it cannot be drawn)."""
        self.redraws += 1
        if self.button is not None:
            self.button.disabled, self.bar.value = True, 0.0
        try:
            fig, png = self._render(self.values())
        except Exception as err:  # ipywidgets would swallow it, leaving a stale plot
            # A value the math does not allow is a ValueError/TypeError: its message says why.
            # Anything else is a bug or a resource limit: name it, so it is not mistaken.
            known = isinstance(err, ValueError | TypeError)
            self.result, self.message = None, str(err) if known else f"{type(err).__name__}: {err}"
            self.note.value = (f'<p style="color:#a40000">Cannot draw this: '
                               f"{html.escape(self.message)}</p>")
            self.image.layout.display = "none"
            return
        finally:
            if self.button is not None:
                self.button.disabled = False
        self.result, self.message, self.png = fig, None, png
        self.note.value = ""
        self.image.value = png
        self.image.layout.display = None

    def _render(self, values: dict[str, object]) -> tuple[Figure, bytes]:
        """Run the view into the panel's figure and return it with its PNG."""
        if self._figure is None:
            fig = self.view(**values)
        else:  # the same figure, refilled: its renderer and text-layout cache are warm
            with drawing_into(self._figure):
                fig = self.view(**values)
        if fig is not self._figure:  # the first figure (or a view that made its own)
            self._figure, self._layout = keep(fig), None
        if self._layout is not None and len(self._layout[0]) == len(fig.axes):
            # A move changes data and titles, not the arrangement: keep the first layout,
            # unless the new drawing does not fit its frame.
            apply_layout(fig, self._layout[0])
            if not _spills(fig, self._layout[1]):
                return fig, png_bytes(fig, self._layout[1])
        self._layout = fix_layout(fig)
        return fig, png_bytes(fig, self._layout[1])


class Scene(Protocol):
    """A figure in two layers (``hsr_lab.figures.plane.PlaneScene`` is one): ``show(**values)``
    redraws the ``moving`` artists; the rest of the figure depends only on ``static_key``."""

    figure: Figure
    moving: list[Artist]
    static_key: Hashable

    def show(self, **values: object) -> object: ...


class ScenePanel(Panel):
    """A panel over a ``Scene``: the static layer is drawn once and kept as a bitmap; a move
    redraws only the moving artists on top of it (matplotlib blitting)."""

    def __init__(self, scene: Scene, controls: dict[str, widgets.ValueWidget],
                 title: str = "") -> None:
        self.scene = scene
        self._backgrounds: dict[Hashable, object] = {}  # static_key -> bitmap of the rest
        keep(scene.figure)
        super().__init__(self._show, controls, title)

    def _show(self, **values: object) -> Figure:
        self.scene.show(**values)
        return self.scene.figure

    def _render(self, values: dict[str, object]) -> tuple[Figure, bytes]:
        fig = self._show(**values)
        if self._layout is None:
            self._relayout()
        self._blit()
        if _spills(fig, self._layout[1]):  # the drawing outgrew the frozen frame
            self._relayout()
            self._blit()
        return fig, png_bytes(fig, self._layout[1])

    def _relayout(self) -> None:
        """Solve the layout with every artist drawn; the kept backgrounds are then stale."""
        for artist in self.scene.moving:
            artist.set_animated(False)
        self._layout, self._backgrounds = fix_layout(self.scene.figure), {}

    def _blit(self) -> None:
        """Restore the background of the current view box (drawing it the first time), then
        draw the moving artists over it."""
        scene, fig = self.scene, self.scene.figure
        for artist in scene.moving:
            artist.set_animated(True)  # left out of ordinary draws: the background
        background = self._backgrounds.get(scene.static_key)
        if background is None:  # draw the static layer alone and keep it (a few of them)
            fig.canvas.draw()
            background = fig.canvas.copy_from_bbox(fig.bbox)
            if len(self._backgrounds) >= 8:
                self._backgrounds.pop(next(iter(self._backgrounds)))
            self._backgrounds[scene.static_key] = background
        fig.canvas.restore_region(background)
        for artist in scene.moving:
            fig.draw_artist(artist)
