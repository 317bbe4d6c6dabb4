"""Every figure of hsr_lab, one function each: ``fig_<name>(quick=False, seed=0, **kw) -> Figure``.

Figure modules register their functions with ``@figure(name, caption)``. Notebooks call the
functions and see the figure inline; ``python -m hsr_lab figures`` draws every registered
figure with ``render_figure``, which writes ``<name>.pdf`` and ``<name>.png`` (their metadata
hold the figure's provenance) and the figure's entry in ``provenance.json``. Inside
``figure_width(inches)`` (``--width``, ``--venue``) every figure is drawn at that width.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from hsr_lab import provenance as _provenance
from hsr_lab.cache import atomic_write, is_file_name
from hsr_lab.figures._layout import current_width, figure_width, fit_text, text_overflow
from hsr_lab.figures._save import FigureOutputError, prepare_out_dir, save_figure
from hsr_lab.figures._style import COLORS, LINESTYLES, MARKERS, house_style, new_figure
from hsr_lab.figures.redraw import drawing_into
from hsr_lab.venues import column_width

__all__ = [
    "COLORS",
    "LINESTYLES",
    "MARKERS",
    "REGISTRY",
    "FigureOutputError",
    "FigureSpec",
    "column_width",
    "drawing_into",
    "figure",
    "figure_provenance",
    "figure_width",
    "fit_text",
    "house_style",
    "new_figure",
    "prepare_out_dir",
    "render_figure",
    "save_figure",
    "text_overflow",
]

FigureFunc = Callable[..., Figure]


PROVENANCE_FILE = "provenance.json"


@dataclass(frozen=True)
class FigureSpec:
    """A registered figure: its file name, its caption, the function that draws it and the
    files it reads (paths from the checkout's root, e.g. a benchmark's results table)."""

    name: str
    caption: str
    func: FigureFunc
    sources: tuple[str, ...] = ()

    def __repr__(self) -> str:
        return f"FigureSpec({self.name!r}, caption={self.caption!r})"


REGISTRY: dict[str, FigureSpec] = {}


def figure(name: str, caption: str, sources: tuple[str, ...] = ()
           ) -> Callable[[FigureFunc], FigureFunc]:
    """Register ``fig_<name>`` under ``name``; the function then always draws in house style,
    at the width of ``figure_width`` if one is set, with text that fits (``fit_text``).
    ``sources``: the files it reads, whose hashes its provenance records.

    Examples
    --------
    Every registered figure is a ``FigureSpec`` whose ``func`` draws it:

    >>> spec = REGISTRY["hsr_plane"]
    >>> fig = spec.func(quick=True)
    >>> fig.axes[0].get_title().splitlines()[0]
    'kd-tree: 5 cells pruned, 1 reported whole,'
    """
    # A file name (cache.FILE_NAME) that also completes the function name fig_<name>.
    if not (is_file_name(name) and name == name.lower() and f"fig_{name}".isidentifier()):
        raise ValueError(f"figure name must be lower-case letters, digits and '_'; got {name!r}")

    def register(func: FigureFunc) -> FigureFunc:
        if func.__name__ != f"fig_{name}":
            raise ValueError(f"@figure({name!r}) must decorate fig_{name}; got {func.__name__}")
        old = REGISTRY.get(name)
        where = f"{func.__module__}.{func.__qualname__}"
        if old is not None and f"{old.func.__module__}.{old.func.__qualname__}" != where:
            raise ValueError(f"figure name {name!r} is already taken by {old.func.__module__}")

        @functools.wraps(func)
        def draw(*args: object, **kwargs: object) -> Figure:
            with house_style():
                fig = func(*args, **kwargs)
                if not isinstance(fig, Figure):
                    raise TypeError(
                        f"{where} must return a matplotlib Figure; got {type(fig).__name__}"
                    )
                width = current_width()
                if width is not None and fig.get_size_inches()[0] != width:
                    fig.set_size_inches(width, fig.get_size_inches()[1])  # not drawn by new_figure
                fit_text(fig)
            return fig

        REGISTRY[name] = FigureSpec(name, caption, draw, tuple(sources))  # a reload replaces it
        return draw

    return register


def render_figure(
    name: str,
    out_dir: str | os.PathLike[str],
    *,
    quick: bool = False,
    seed: int = 0,
    width: str | float | None = None,
    venue: str | None = None,
    environment: Mapping[str, object] | None = None,
) -> list[Path]:
    """Draw the registered figure ``name``, save it as PDF and PNG with its provenance in their
    metadata, record it in ``<out_dir>/provenance.json``, close it; return the two paths.

    ``width`` ('single', 'double' or inches) and ``venue`` draw it at a column width
    (``hsr_lab.venues``; a venue alone means its single column). ``environment``: the
    ``provenance.environment()`` to record (the command line reads it once, before drawing);
    by default it is read here, with ``out_dir`` left out of the ``-dirty`` check.
    """
    if name not in REGISTRY:
        raise ValueError(f"unknown figure {name!r}; valid names: {', '.join(sorted(REGISTRY))}")
    spec = REGISTRY[name]
    inches = None if width is None and venue is None else column_width(width or "single", venue)
    folder = prepare_out_dir(out_dir)
    if environment is None:
        environment = _provenance.environment(exclude=[folder])
    record = figure_provenance(spec, quick=quick, seed=seed, width=width, venue=venue,
                               environment=environment)
    with figure_width(inches):
        fig = spec.func(quick=quick, seed=seed)
    try:
        with house_style():  # ticks made while drawing take the style's sizes, as when saved
            overflow = text_overflow(fig)
        if overflow:
            warnings.warn(f"{name}: text runs off the canvas: {'; '.join(overflow)}",
                          stacklevel=2)
        paths = save_figure(fig, folder, name, provenance=record, caption=spec.caption,
                            exact_size=inches is not None)
    finally:
        plt.close(fig)
    _record(folder, name, {**record, "files": {p.name: _sha256(p) for p in paths}})
    return paths


def figure_provenance(spec: FigureSpec, *, quick: bool, seed: int, width: str | float | None,
                      venue: str | None, environment: Mapping[str, object]) -> dict[str, object]:
    """What the metadata of a figure's files record: the command that redraws exactly it, its
    seed, quick mode and width, the environment (commit, versions, BLAS) and the files it read
    (their SHA-256 and the provenance lines at their top). No timestamp."""
    command = ["python -m hsr_lab figures --only", spec.name, "--seed", str(seed)]
    command += ["--quick"] if quick else []
    command += ["--width", str(width)] if width is not None else []
    command += ["--venue", venue] if venue is not None else []
    inches = None if width is None and venue is None else column_width(width or "single", venue)
    record: dict[str, object] = {
        "figure": spec.name, "command": " ".join(command), "seed": seed, "quick": quick,
        "width_in": None if inches is None else round(inches, 4), **environment}
    if spec.sources:
        record["sources"] = {source: _source(_provenance.ROOT / source)
                             for source in spec.sources}
    return record


def _source(path: Path) -> dict[str, object]:
    """A file a figure read: its SHA-256 and its leading '# ' lines (a results table's
    provenance), or a note that it is missing."""
    if not path.is_file():
        return {"missing": True}
    data = path.read_bytes()
    header = []
    for line in data.decode("utf-8", errors="replace").splitlines():
        if not line.startswith("#"):
            break
        header.append(line.lstrip("# ").rstrip())
    return {"sha256": hashlib.sha256(data).hexdigest(), "provenance": header}


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _record(folder: Path, name: str, entry: Mapping[str, object]) -> None:
    """Set ``name``'s entry of ``<folder>/provenance.json`` (the other entries kept), atomically."""
    path = folder / PROVENANCE_FILE
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # missing, unreadable or not JSON: start afresh
        entries = {}
    if not isinstance(entries, dict):
        entries = {}
    entries[name] = dict(entry)
    text = json.dumps(entries, sort_keys=True, indent=2, ensure_ascii=False) + "\n"
    try:
        with atomic_write(path) as fh:
            fh.write(text.encode("utf-8"))
    except OSError as err:
        raise FigureOutputError(f"cannot write figures to '{folder}': "
                                f"{err.strerror or err}") from err


# Importing the figure modules registers their figures (they import `figure` from above).
from hsr_lab.figures import (  # noqa: E402, F401
    attention_map,
    budgets,
    counterexample,
    keys,
    plane,
    real,
    relu_lms,
    smollm2,
    softmax,
    sparsity,
    wallclock,
    work,
)
