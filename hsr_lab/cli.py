"""Command line: ``python -m hsr_lab figures [--quick] [--only NAME ...] [--out DIR] [--list]``.

Each task is a subcommand (only ``figures`` for now); ``main`` returns the exit code: 0 on
success, 2 for a mistake in the command (unknown figure, folder that cannot be written).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import matplotlib

from hsr_lab.config import quick_mode

PROG = "hsr_lab"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, one subparser per command."""
    parser = argparse.ArgumentParser(
        prog=PROG, description="hsr_lab: learn, check and measure HSR attention."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    figs = commands.add_parser(
        "figures",
        help="draw the figures and save each as PDF and PNG",
        description="Draw the registered figures and save each as <name>.pdf and <name>.png.",
    )
    figs.add_argument("--quick", action="store_true", help="tiny parameters (or HSR_LAB_QUICK=1)")
    figs.add_argument(
        "--only", nargs="+", action="extend", metavar="NAME", help="only these figures"
    )
    figs.add_argument(
        "--out",
        type=Path,
        default=Path("figures"),
        metavar="DIR",
        help="output folder (default: figures)",
    )
    figs.add_argument("--list", action="store_true", help="print 'name: caption' lines and stop")
    figs.add_argument("--seed", type=_seed, default=0, metavar="N", help="random seed (default: 0)")
    figs.set_defaults(run=_run_figures)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); return the exit code."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as stop:  # argparse exits on --help (0) and on usage errors (2)
        return stop.code if isinstance(stop.code, int) else 0
    return args.run(args)


def _run_figures(args: argparse.Namespace) -> int:
    if "matplotlib.pyplot" not in sys.modules:  # a fresh process: render without any GUI
        matplotlib.use("Agg")
    from hsr_lab import figures  # after the backend is chosen

    try:
        quick = args.quick or quick_mode()
    except ValueError as err:
        return _fail(str(err))
    names = list(dict.fromkeys(args.only or figures.REGISTRY))  # drop repeats, keep order
    unknown = [name for name in names if name not in figures.REGISTRY]
    if unknown:
        valid = ", ".join(sorted(figures.REGISTRY))
        return _fail(f"unknown figure name(s): {', '.join(unknown)}; valid names: {valid}")
    if args.list:
        for name in names:
            print(f"{name}: {figures.REGISTRY[name].caption}")
        return 0
    try:
        out_dir = figures.prepare_out_dir(args.out)  # fail before drawing anything slow
        for name in names:
            for path in figures.render_figure(name, out_dir, quick=quick, seed=args.seed):
                print(path, flush=True)
    except figures.FigureOutputError as err:
        return _fail(str(err))
    return 0


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"seed must be an integer >= 0; got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"seed must be an integer >= 0; got {value}")
    return value


def _fail(message: str) -> int:
    print(f"{PROG} figures: error: {message}", file=sys.stderr)
    return 2
