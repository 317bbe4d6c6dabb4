"""Widget responsiveness: how long a panel takes to redraw after a control moves.

Drives each panel of ``hsr_lab.widgets`` the way a user does: sets a control's value, which
runs the view (compute + build the figure) and renders the PNG the panel shows. Prints the
median time of both parts at default sizes. Target: under 200 ms in all.

    python benchmarks/bench_widgets.py [--quick]
"""

from __future__ import annotations

import argparse
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
    """Median seconds from setting the control to the new PNG, and the view's share of it."""
    panel = make()
    view = panel.view
    view_times: list[float] = []

    def timed_view(**kwargs):
        start = time.perf_counter()
        try:
            return view(**kwargs)
        finally:
            view_times.append(time.perf_counter() - start)

    panel.view = timed_view
    totals = []
    for i in range(repeats + 1):
        start = time.perf_counter()
        panel.controls[control].value = values[i % 2]
        totals.append(time.perf_counter() - start)
    assert panel.png, panel.message
    total, view_s = float(np.median(totals[1:])), float(np.median(view_times[1:]))
    return {"panel": make.__name__, "control": control, "view_ms": 1e3 * view_s,
            "render_ms": 1e3 * (total - view_s), "total_ms": 1e3 * total,
            "under_200ms": total < 0.2}


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
