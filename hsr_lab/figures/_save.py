"""Save a figure as PDF and PNG: deterministic to the byte, written atomically.

Same figure, same bytes, in any process: dates and producer strings are stripped, fonts are
embedded as TrueType (``pdf.fonttype: 42`` in the house style), and the renderer is fixed
(Agg for PNG, matplotlib's own for PDF) whatever backend shows figures on screen.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

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
        for part in (folder, *folder.parents):  # mkdir would only say "File exists"
            if part.is_symlink() and not part.exists():
                raise NotADirectoryError(f"'{part}' is a symbolic link to "
                                         f"'{os.readlink(part)}', which does not exist")
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):  # os.access() would lie to root
            pass
    except OSError as err:
        raise FigureOutputError(f"cannot write figures to '{folder}': {_reason(err)}") from err
    return folder


def save_figure(fig: Figure, out_dir: str | os.PathLike[str], name: str) -> list[Path]:
    """Write ``<out_dir>/<name>.pdf`` and ``<out_dir>/<name>.png``; return their paths."""
    if not is_file_name(name):
        raise ValueError(
            "name must be a file name without folder or extension (letters, digits, '_', '.', "
            f"'-'); got {name!r}"
        )
    folder = prepare_out_dir(out_dir)
    paths = []
    with house_style():  # savefig.*, pdf.fonttype and svg.hashsalt are read at save time
        for fmt in FORMATS:
            path = folder / f"{name}.{fmt}"
            try:
                with atomic_write(path) as fh:
                    fig.savefig(fh, format=fmt, backend=_BACKEND[fmt], metadata=_METADATA[fmt])
            except OSError as err:
                raise FigureOutputError(
                    f"cannot write figures to '{folder}': {_reason(err)}"
                ) from err
            paths.append(path)
    return paths


def _reason(err: OSError) -> str:
    return err.strerror or str(err)
