"""Build the hsr_lab book: every notebook, run, as an offline static HTML site.

    python docs/book/build.py [--quick] [--out DIR] [--strict]      (``make book [QUICK=1]``)

The sources are staged in ``DIR/src`` (git-ignored, remade on each build): the landing page
``docs/book/index.md``, a copy of every ``notebooks/*.ipynb`` (the table of contents is that
folder, sorted by name, through a glob in the landing page's toctree), and a figures gallery
written from ``figures/README.md`` with the PNGs beside it. Sphinx (myst-nb, configuration in
``docs/book/conf.py``) runs every notebook and writes the site to ``DIR/html``.

``--quick`` sets ``HSR_LAB_QUICK=1`` for the build and its kernels (tiny parameters); the
default ``DIR`` is then ``build/book-quick`` instead of ``build/book``. Sweeps are cached in
``.hsr_lab_cache`` (or ``HSR_LAB_CACHE_DIR``), so a second build mostly redraws.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CONF = ROOT / "docs" / "book"
FIGURES = ROOT / "figures"


def stage(src: Path) -> None:
    """Lay out the book's sources in ``src``: landing page, notebooks, figures gallery."""
    if src.exists():
        shutil.rmtree(src)
    (src / "notebooks").mkdir(parents=True)
    shutil.copy2(CONF / "index.md", src / "index.md")
    for notebook in sorted((ROOT / "notebooks").glob("*.ipynb")):
        shutil.copy2(notebook, src / "notebooks" / notebook.name)
    (src / "figures").mkdir()
    entries = gallery_entries((FIGURES / "README.md").read_text(encoding="utf-8"))
    for name, _, _ in entries:
        shutil.copy2(FIGURES / f"{name}.png", src / "figures" / f"{name}.png")
    (src / "figures.md").write_text(gallery_page(entries), encoding="utf-8")


def gallery_entries(readme: str) -> list[tuple[str, str, str]]:
    """(name, caption, description) of each ``## name`` section of figures/README.md that has
    a PNG in figures/; the caption is the ``Caption:`` paragraph, the description the rest."""
    entries = []
    for section in re.split(r"^## ", readme, flags=re.M)[1:]:
        name, _, body = section.partition("\n")
        name = name.strip()
        paragraphs = [p.strip() for p in re.split(r"\n\s*\n", body) if p.strip()]
        caption = next((p for p in paragraphs if p.startswith("Caption:")), "")
        rest = [p for p in paragraphs if p != caption and not p.startswith("Files:")]
        if (FIGURES / f"{name}.png").exists():
            entries.append((name, " ".join(caption.removeprefix("Caption:").split()),
                            "\n\n".join(rest)))
        else:
            print(f"book: figures/README.md names {name!r} but figures/{name}.png is missing")
    return entries


def gallery_page(entries: list[tuple[str, str, str]]) -> str:
    """The gallery in MyST Markdown: one section per figure, the picture with its caption."""
    parts = ["# Figures gallery\n",
             "Every publication figure of hsr_lab, as `make figures` saves it (PNG, 300 dpi; "
             "the PDFs sit beside them in `figures/`). Each is drawn by one function, "
             "`hsr_lab.figures.fig_<name>`, which the notebooks call inline. Captions and "
             "descriptions come from `figures/README.md`.\n"]
    for name, caption, description in entries:
        parts.append(f"## {name}\n\n```{{figure}} figures/{name}.png\n:name: fig-{name}\n"
                     f":width: 100%\n\n{caption}\n```\n\n{description}\n")
    return "\n".join(parts)


def build(out: Path, *, quick: bool, strict: bool = False) -> float:
    """Stage the sources and run Sphinx into ``out/html``; the seconds it took.

    ``-E``: every build reads and runs every notebook afresh, so no page shows outputs of older
    code (Sphinx would skip a notebook whose file did not change). ``-T``: a failing cell's
    error is printed, not only saved in a log file."""
    start = time.perf_counter()
    stage(out / "src")
    env = dict(os.environ, HSR_LAB_QUICK="1" if quick else "0")
    env.setdefault("HSR_LAB_CACHE_DIR", str(ROOT / ".hsr_lab_cache"))
    env["TQDM_DISABLE"] = "1"  # a page would freeze a progress bar at 0%
    # The kernels import hsr_lab from this checkout even where it is not installed.
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    command = [sys.executable, "-m", "sphinx", "-b", "html", "-c", str(CONF),
               "-d", str(out / "doctrees"), "-E", "-q", "-T", str(out / "src"), str(out / "html")]
    if strict:  # every warning (a broken link or anchor, say) fails the build
        command += ["-W", "--keep-going"]
    subprocess.run(command, env=env, check=True)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny parameters (HSR_LAB_QUICK=1)")
    parser.add_argument("--out", type=Path, help="build folder (default build/book[-quick])")
    parser.add_argument("--strict", action="store_true", help="fail on any Sphinx warning")
    args = parser.parse_args(argv)
    out = args.out or ROOT / "build" / ("book-quick" if args.quick else "book")
    try:
        seconds = build(out.resolve(), quick=args.quick, strict=args.strict)
    except subprocess.CalledProcessError as err:
        print(f"book: Sphinx failed (exit {err.returncode}); see the messages above",
              file=sys.stderr)
        return 1
    print(f"book: {out / 'html' / 'index.html'} ({seconds:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
