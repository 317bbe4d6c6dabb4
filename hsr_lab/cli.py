"""Command line: ``python -m hsr_lab figures [--quick] [--only NAME ...] [--out DIR] [--list]
[--seed N] [--width single|double|INCHES] [--venue neurips|icml|acm|ieee]``.

Each task is a subcommand (only ``figures`` for now); ``main`` returns the exit code:

- 0: every figure asked for was drawn and saved;
- 2: a mistake in the command or its settings (unknown figure, ``--out ''``, a folder that
  cannot be written, an invalid ``HSR_LAB_QUICK``); nothing is drawn;
- 3: some figures were skipped because an optional package they need is missing (one line each
  on stderr says which and how to install it); every other figure was drawn and saved.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import matplotlib

from hsr_lab.config import quick_mode
from hsr_lab.optional import MissingOptional
from hsr_lab.venues import VENUES, WIDTHS, column_width

PROG = "hsr_lab"
EXIT_USAGE = 2  # a mistake in the command or its settings: nothing drawn
EXIT_SKIPPED = 3  # some figures need a missing optional package: the others were drawn
EXIT_CODES = f"""exit codes: 0 every figure drawn; {EXIT_USAGE} a mistake in the command (nothing \
drawn); {EXIT_SKIPPED} some figures skipped for a missing optional package (the others drawn)"""


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
        epilog=EXIT_CODES,
    )
    figs.add_argument("--quick", action="store_true", help="tiny parameters (or HSR_LAB_QUICK=1)")
    figs.add_argument(
        "--only", nargs="+", action="extend", metavar="NAME", help="only these figures"
    )
    figs.add_argument(
        "--out",
        type=_out_dir,
        default=Path("figures"),
        metavar="DIR",
        help="output folder (default: figures)",
    )
    figs.add_argument("--list", action="store_true", help="print 'name: caption' lines and stop")
    figs.add_argument("--seed", type=_seed, default=0, metavar="N", help="random seed (default: 0)")
    figs.add_argument(
        "--width",
        type=_width,
        default=None,
        metavar="single|double|INCHES",
        help="draw every figure this wide, fonts unchanged: one column, the full text width "
        "(of --venue; ICML's 3.25 and 6.75 in without one) or a number of inches",
    )
    figs.add_argument(
        "--venue",
        choices=list(VENUES),
        default=None,
        help="the venue whose column widths --width names (alone: its single column)",
    )
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
    from hsr_lab import figures, provenance  # after the backend is chosen

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
        quick = args.quick or quick_mode()  # read after --list, which does not need it
    except ValueError as err:
        return _fail(str(err))
    try:
        out_dir = figures.prepare_out_dir(args.out)  # fail before drawing anything slow
        # Read once, before any figure is written: the run's own files must not make it -dirty.
        environment = provenance.environment(exclude=[out_dir])
        skipped = [name for name in names
                   if not _draw(name, out_dir, quick, args.seed, args, environment)]
    except figures.FigureOutputError as err:
        return _fail(str(err))
    if skipped:
        print(f"{PROG} figures: {len(skipped)} skipped for a missing optional package: "
              f"{', '.join(skipped)}", file=sys.stderr)
        return EXIT_SKIPPED
    return 0


def _draw(name: str, out_dir: Path, quick: bool, seed: int, args: argparse.Namespace,
          environment: dict[str, object]) -> bool:
    """Draw and save one figure, printing its paths; False (and one line on stderr saying how
    to install it) if it needs an optional package that is missing."""
    from hsr_lab import figures

    try:
        paths = figures.render_figure(name, out_dir, quick=quick, seed=seed, width=args.width,
                                      venue=args.venue, environment=environment)
    except MissingOptional as err:
        print(f"{PROG} figures: skipped {name}: {err}", file=sys.stderr, flush=True)
        return False
    for path in paths:
        print(path, flush=True)
    return True


def _out_dir(text: str) -> Path:
    """The ``--out`` folder; an empty name is a mistake (Path('') would be the current folder)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("a folder name is needed; got an empty one "
                                         "(write --out . for the current folder)")
    return Path(text)


def _width(text: str) -> str:
    """The ``--width``: 'single', 'double' or a number of inches (checked here, kept as typed so
    that the recorded command reads as it was given)."""
    try:
        column_width(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return text.strip().lower() if text.strip().lower() in WIDTHS else text.strip()


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
    return EXIT_USAGE
