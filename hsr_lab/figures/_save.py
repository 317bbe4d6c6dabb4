"""Save a figure as PDF and PNG: deterministic to the byte, written atomically.

Same figure, same bytes, in any process: dates and producer strings are stripped, fonts are
embedded as TrueType (``pdf.fonttype: 42`` in the house style), and the renderer is fixed
(Agg for PNG, matplotlib's own for PDF) whatever backend shows figures on screen. A figure's
provenance (``render_figure``: commit, versions, seed, command; no timestamp) goes into the
metadata of both files: the PDF's Title, Subject (the caption) and Keywords (the provenance
as JSON); the PNG's Title, Description and a ``Provenance`` text chunk (the same JSON).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

import matplotlib as mpl
from matplotlib.figure import Figure

from hsr_lab.cache import atomic_write, is_file_name
from hsr_lab.figures._style import house_style

FORMATS = ("pdf", "png")
_BACKEND = {"pdf": "pdf", "png": "agg"}
_METADATA = {  # None removes the entry that matplotlib would otherwise write
    "pdf": {"Creator": None, "Producer": None, "CreationDate": None},
    "png": {"Software": None},
}


class FigureOutputError(OSError):
    """The folder for figures cannot be created or written."""


def prepare_out_dir(out_dir: str | os.PathLike[str]) -> Path:
    """Create ``out_dir`` if needed and check that a file can be written there."""
    folder = Path(out_dir)
    try:
        if folder.exists() and not folder.is_dir():
            raise NotADirectoryError("it is a file, not a folder")
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):  # os.access() would lie to root
            pass
    except OSError as err:
        raise FigureOutputError(f"cannot write figures to '{folder}': {_reason(err)}") from err
    return folder


def save_figure(fig: Figure, out_dir: str | os.PathLike[str], name: str, *,
                provenance: Mapping[str, object] | None = None, caption: str = "",
                exact_size: bool = False) -> list[Path]:
    """Write ``<out_dir>/<name>.pdf`` and ``<out_dir>/<name>.png``; return their paths.

    ``provenance`` (JSON-ready) and ``caption`` go into both files' metadata. ``exact_size``:
    the files are exactly the figure's size (a figure drawn at a column width), instead of
    cropped to what is drawn (``savefig.bbox: tight``, the house default).
    """
    if not is_file_name(name):
        raise ValueError(
            "name must be a file name without folder or extension (letters, digits, '_', '.', "
            f"'-'); got {name!r}"
        )
    folder = prepare_out_dir(out_dir)
    metadata = _metadata(name, caption, provenance)
    paths = []
    with house_style(), mpl.rc_context({"savefig.bbox": "standard" if exact_size else "tight"}):
        for fmt in FORMATS:  # savefig.*, pdf.fonttype and svg.hashsalt are read at save time
            path = folder / f"{name}.{fmt}"
            try:
                with atomic_write(path) as fh:
                    fig.savefig(fh, format=fmt, backend=_BACKEND[fmt], metadata=metadata[fmt])
            except OSError as err:
                raise FigureOutputError(
                    f"cannot write figures to '{folder}': {_reason(err)}"
                ) from err
            paths.append(path)
    return paths


def provenance_json(provenance: Mapping[str, object]) -> str:
    """The provenance as one line of ASCII JSON, keys sorted: the same bytes every run."""
    return json.dumps(provenance, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def _metadata(name: str, caption: str, provenance: Mapping[str, object] | None
              ) -> dict[str, dict[str, str | None]]:
    """Each format's metadata: no dates or producer, and the title, caption and provenance."""
    meta: dict[str, dict[str, str | None]] = {fmt: dict(_METADATA[fmt]) for fmt in FORMATS}
    meta["pdf"]["Title"] = meta["png"]["Title"] = name
    if caption:
        meta["pdf"]["Subject"] = meta["png"]["Description"] = caption
    if provenance is not None:
        meta["pdf"]["Keywords"] = meta["png"]["Provenance"] = provenance_json(provenance)
    return meta


def _reason(err: OSError) -> str:
    return err.strerror or str(err)
