"""Widget responsiveness: how long a panel takes to redraw after a control moves.

Drives every control of every panel in ``hsr_lab.widgets`` the way a user does: sets the
control's value, which runs the view (compute, build or update the figure) and renders the PNG
the panel shows. Each control alternates between its default and a second value at otherwise
default sizes. Prints the median and the worst redraw per control. Target: under 200 ms.
The first move to the second value is not counted: it fills caches a user fills once too (the
plane's structures for a new n, the kept background of a new view box, matplotlib's text
layouts). ``cost_panel`` is left out: its sliders redraw nothing, its button runs a measurement.

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

# panel -> {control: a second value to alternate with the default}
MOVES = {
    widgets.plane_panel: {"angle": 2.0, "offset": 0.5, "n": 400},
    widgets.relu_panel: {"n": 1024, "d": 16, "alpha": 2, "b": 0.3},
    widgets.softmax_panel: {"b": 0.5, "planted": 6},
    widgets.scaling_panel: {"c": 0.6},
}


def time_control(panel: widgets.Panel, control: str, value: object,
                 repeats: int) -> dict[str, object]:
    """Median and worst seconds from setting ``control`` to the panel's new PNG."""
    widget = panel.controls[control]
    values = (value, widget.value)
    times = []
    for i in range(repeats + 1):  # the first move of a new value may fill caches: not counted
        start = time.perf_counter()
        widget.value = values[i % 2]
        times.append(time.perf_counter() - start)
        assert panel.png and panel.message is None, panel.message
    median, worst = float(np.median(times[1:])), float(np.max(times[1:]))
    return {"control": control, "median_ms": 1e3 * median, "max_ms": 1e3 * worst,
            "under_200ms": median < 0.2}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    header = machine_header()
    print(header)
    rows = []
    with tempfile.TemporaryDirectory() as cache:
        os.environ["HSR_LAB_CACHE_DIR"] = cache
        for make, moves in MOVES.items():
            panel = make()
            for control, value in moves.items():
                rows.append({"panel": make.__name__,
                             **time_control(panel, control, value, 3 if args.quick else 9)})
    print_table(rows)
    if not args.quick:
        print("wrote", *write_results("widgets", rows, header,
                                      "Redraw after a move, default sizes: median and worst of "
                                      "9 moves per control."))
    return 0


if __name__ == "__main__":
    sys.exit(main())
