"""Column widths of journals and conferences, in inches: what ``--width`` and ``--venue`` name.

Read from each venue's LaTeX class (TeX points are 1/72.27 in):

- ``neurips``: one column, ``textwidth=5.5in`` (neurips_2024.sty): single = double = 5.5.
- ``icml``: ``\\textwidth`` 6.75 in and ``\\columnsep`` 0.25 in (icml2024.sty): 3.25 and 6.75.
- ``acm``: acmart ``sigconf``, ``\\columnwidth`` 241.14749 pt and ``\\textwidth`` 506.295 pt:
  3.337 and 7.006.
- ``ieee``: IEEEtran (10 pt, two columns), ``\\columnwidth`` 252 pt and ``\\textwidth`` 516 pt:
  3.487 and 7.140.

``single`` and ``double`` without a venue are ICML's (3.25 and 6.75 in), narrow enough for the
columns of the other two-column venues too. Plain data, no matplotlib: the command line reads
it before choosing a backend.
"""

from __future__ import annotations

_PT = 1 / 72.27  # inches per TeX point
VENUES: dict[str, tuple[float, float]] = {  # (one column, the full text width), inches
    "neurips": (5.5, 5.5),
    "icml": (3.25, 6.75),
    "acm": (241.14749 * _PT, 506.295 * _PT),
    "ieee": (252 * _PT, 516 * _PT),
}
DEFAULT_VENUE = "icml"
WIDTHS = ("single", "double")
MIN_WIDTH, MAX_WIDTH = 1.0, 20.0  # inches: the range of a width given as a number


def column_width(width: str | float, venue: str | None = None) -> float:
    """The width in inches that ``width`` names: 'single' or 'double' (one column, or the full
    text width, of ``venue``; ICML's without one), or a number of inches."""
    if venue is not None and venue not in VENUES:
        raise ValueError(f"venue must be one of {', '.join(VENUES)}; got {venue!r}")
    if isinstance(width, str) and width.strip().lower() in WIDTHS:
        return VENUES[venue or DEFAULT_VENUE][WIDTHS.index(width.strip().lower())]
    try:
        inches = float(width)
    except (TypeError, ValueError):
        raise ValueError("width must be 'single', 'double' or a number of inches; got "
                         f"{width!r}") from None
    if not MIN_WIDTH <= inches <= MAX_WIDTH:  # also rejects nan
        raise ValueError(f"width must be between {MIN_WIDTH:g} and {MAX_WIDTH:g} inches; got "
                         f"{width!r}")
    return inches
