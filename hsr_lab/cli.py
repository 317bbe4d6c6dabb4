"""Command line: ``python -m hsr_lab figures [--quick] [--only NAME ...] [--out DIR] [--list]
[--seed N] [--width single|double|INCHES] [--venue neurips|icml|acm|ieee]``
and ``python -m hsr_lab budgets [--quick] [--out DIR] [--texts ...] [--methods ...] [--budgets
...] [--force]``.

Each task is a subcommand; ``main`` returns the exit code:

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
    _add_budgets(commands)
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


# ----------------------------------------------------------------------------- budgets
# The equal-budget study of notebook 08 (``hsr_lab.experiments.budgets``): runs what is not
# cached, writes budgets.csv and budgets_layers.csv, prints one line per run.
def _add_budgets(commands: argparse._SubParsersAction) -> None:
    run = commands.add_parser(
        "budgets",
        help="run the equal-budget study of sparse-attention rules on SmolLM2 (cached) and "
             "write its CSV",
        description="Every sparse-attention rule in every layer of SmolLM2-135M, at equal kept "
                    "budgets: dropped mass, attention error and next-token loss change. Runs "
                    "what is not cached yet (the full study: about an hour on a quiet 2-core "
                    "machine), then writes budgets.csv and budgets_layers.csv.",
        epilog=f"exit codes: 0 written; {EXIT_USAGE} a mistake in the command (nothing run); "
               f"{EXIT_SKIPPED} the SmolLM2 weights are missing (nothing run)",
    )
    run.add_argument("--quick", action="store_true", help="tiny setting (or HSR_LAB_QUICK=1)")
    run.add_argument("--out", type=_out_dir, default=Path("benchmarks/results"), metavar="DIR",
                     help="folder for the CSV files (default: benchmarks/results)")
    run.add_argument("--texts", nargs="+", metavar="TEXT", help="long and/or python")
    run.add_argument("--methods", nargs="+", metavar="METHOD", help="a subset of the rules")
    run.add_argument("--budgets", nargs="+", type=_budget, metavar="SHARE",
                     help="kept shares of the prefix, each in (0, 1], e.g. 1/16 0.25")
    run.add_argument("--force", action="store_true", help="recompute even what is cached")
    run.set_defaults(run=_run_budgets)


def _budget(text: str) -> float:
    from fractions import Fraction

    try:
        value = float(Fraction(text.strip()))
    except (ValueError, ZeroDivisionError):
        raise argparse.ArgumentTypeError(f"a budget is a share like 1/16 or 0.25; got {text!r}"
                                         ) from None
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"a budget must be in (0, 1]; got {text!r}")
    return value


def _run_budgets(args: argparse.Namespace) -> int:
    from hsr_lab.experiments import budgets as B

    try:
        quick = args.quick or quick_mode()
        base = B.setting(quick)
        changes: dict[str, object] = {}
        if args.texts:
            known = dict(B.setting(False).tokens) | dict(base.tokens)
            unknown = [t for t in args.texts if t not in known]
            if unknown:
                raise ValueError(f"unknown text(s) {', '.join(unknown)}; known: "
                                 f"{', '.join(known)}")
            changes["tokens"] = tuple((t, dict(base.tokens).get(t, known[t]))
                                      for t in args.texts)
        if args.methods:
            changes["methods"] = tuple(args.methods)
        if args.budgets:
            changes["budgets"] = tuple(args.budgets)
        B.setting(quick, **changes)  # check everything before running anything
    except ValueError as err:
        print(f"{PROG} budgets: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    try:
        study = B.budget_study(quick=quick, force=args.force, **changes)
    except MissingOptional as err:
        print(f"{PROG} budgets: {err}", file=sys.stderr)
        return EXIT_SKIPPED
    for path in B.write_csv(study, args.out):
        print(path, flush=True)
    for row in study.table:
        print(f"{row['text']:7s} {row['method']:16s} {row['label']:6s} kept "
              f"{row['kept_share']:.4f} scored {row['scored_share']:.3f} tau {row['tau']:.3f} "
              f"dNLL {row['dnll']:+.4f} [{row['dnll_low']:+.4f}, {row['dnll_high']:+.4f}]")
    return 0
