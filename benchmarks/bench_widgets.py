"""Widget responsiveness: how long a panel takes to redraw after a control moves.

Drives every control of every panel in ``hsr_lab.widgets`` the way a user does: sets the
control's value, which runs the view (compute, build or update the figure) and renders the PNG
the panel shows. Each control alternates between its default and a second value at otherwise
default sizes, and at the sliders' largest n. Prints the median, its interquartile range and
the worst redraw per control. Target: under 200 ms.
A control moved back and forth has its first move left out: it fills caches a user fills once
too (the plane's structures for a new n, the kept background of a new view box, matplotlib's
text layouts). The rows marked "new value each move" count every move, all cold.
``cost_panel`` is left out: its sliders redraw nothing, its button runs a measurement.

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
from _common import print_table, provenance_header, timing, write_results

from hsr_lab import widgets

# (panel, its arguments, control, the values a user moves it through, in turn)
MOVES = [
    (widgets.plane_panel, {}, "angle", [2.0, 0.6]),
    (widgets.plane_panel, {}, "t", [0.5, 1.0]),
    (widgets.plane_panel, {}, "n", [400, 200]),
    (widgets.plane_panel, {}, "n", list(range(220, 1000, 20))),  # a new n every move: cold
    (widgets.plane_panel, {"n": 2000}, "t", [0.5, 1.0]),  # the slider's largest n
    (widgets.relu_panel, {}, "n", [4096, 2048]),
    (widgets.relu_panel, {}, "d", [8, 4]),
    (widgets.relu_panel, {}, "alpha", [2, 1]),
    (widgets.relu_panel, {}, "b", [0.5, 1.0]),
    (widgets.relu_panel, {}, "n", [8192, 2048]),  # the slider's largest n
    (widgets.softmax_panel, {}, "b", [0.5, 1.0]),
    (widgets.softmax_panel, {}, "planted", [6, 2]),
    (widgets.scaling_panel, {}, "c", [0.6, 0.4]),
]


def time_moves(panel: widgets.Panel, control: str, values: list, moves: int) -> list[float]:
    """Seconds from setting ``control`` to the panel's new PNG, for ``moves`` moves that cycle
    through ``values``."""
    widget, times = panel.controls[control], []
    for i in range(moves):
        start = time.perf_counter()
        widget.value = values[i % len(values)]
        times.append(time.perf_counter() - start)
        assert panel.png and panel.message is None, panel.message
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    header = provenance_header(None, argv)
    print(header)
    rows = []
    with tempfile.TemporaryDirectory() as cache:
        os.environ["HSR_LAB_CACHE_DIR"] = cache
        for make, kwargs, control, values in MOVES:
            panel = make(**kwargs)
            cold = len(values) > 2
            repeats = min(len(values), 4) if args.quick else len(values) if cold else 9
            times = time_moves(panel, control, values, repeats + (0 if cold else 1))
            times = times if cold else times[1:]  # a warm control: its first move fills caches
            rows.append({"panel": make.__name__ + "".join(f" {k}={v}" for k, v in kwargs.items()),
                         "control": control + (" (new value each move)" if cold else ""),
                         "values": (f"{values[0]}..{values[len(times) - 1]}" if cold
                                    else "/".join(map(str, values))),
                         **timing("redraw", times), "max_ms": 1e3 * float(np.max(times)),
                         "moves": len(times), "under_200ms": float(np.median(times)) < 0.2})
    print_table(rows)
    if not args.quick:
        notes = ("Redraw after a move, per control, at default sizes unless the panel column "
                 "says otherwise: redraw_ms the median, redraw_iqr_ms the interquartile range "
                 "and max_ms the worst of the same moves. No seed: the panels draw their "
                 "default data.")
        print("wrote", *write_results("widgets", rows, header, notes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
