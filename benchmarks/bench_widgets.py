"""Widget responsiveness: how long a panel takes to redraw after a control moves.

Drives each panel of ``hsr_lab.widgets`` the way a user does (sets a control's value, which
calls the view and draws the figure) and prints the median redraw time at default sizes.
Target: under 200 ms. The figure is drawn (rendered to PNG bytes, as the notebook's inline
backend does), so the time includes matplotlib's rendering.

    python benchmarks/bench_widgets.py [--quick]
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import time

import matplotlib

matplotlib.use("Agg")

import numpy as np
from _common import machine_header, print_table, write_results

from hsr_lab import widgets

# (panel, control, two values to alternate between)
MOVES = [
    (widgets.plane_panel, "offset", (0.5, 1.0)),
    (widgets.relu_panel, "b", (0.3, 0.6)),
    (widgets.softmax_panel, "b", (0.5, 1.0)),
    (widgets.scaling_panel, "c", (0.6, 0.4)),
]


def time_panel(make, control: str, values: tuple, repeats: int) -> dict[str, object]:
    """Median seconds from setting the control to a rendered PNG of the new figure."""
    panel = make()
    views, renders = [], []
    for i in range(repeats + 1):
        start = time.perf_counter()
        panel.controls[control].value = values[i % 2]  # runs the view: compute + build figure
        middle = time.perf_counter()
        panel.result.savefig(io.BytesIO(), format="png", dpi=panel.result.dpi)  # as inline does
        views.append(middle - start)
        renders.append(time.perf_counter() - middle)
    view, render = float(np.median(views[1:])), float(np.median(renders[1:]))  # 1st fills caches
    return {"panel": make.__name__, "control": control, "view_ms": 1e3 * view,
            "render_ms": 1e3 * render, "total_ms": 1e3 * (view + render),
            "under_200ms": view + render < 0.2}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    header = machine_header()
    print(header)
    with tempfile.TemporaryDirectory() as cache:
        os.environ["HSR_LAB_CACHE_DIR"] = cache
        rows = [time_panel(make, c, v, 3 if args.quick else 9) for make, c, v in MOVES]
    print_table(rows)
    if not args.quick:
        print("wrote", *write_results("widgets", rows, header, "Median redraw after a move."))
    return 0


if __name__ == "__main__":
    sys.exit(main())
