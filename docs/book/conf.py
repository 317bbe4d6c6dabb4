"""Sphinx configuration of the hsr_lab book (``make book``; ``docs/book/build.py`` stages the
sources and runs Sphinx with ``-c docs/book``).

Sphinx + myst-nb + sphinx-book-theme: every asset ships in a Python package, so the site
builds and reads offline. (Jupyter Book 1 is a layer over these same three; Jupyter Book 2 and
mystmd fetch their theme from the network at build time.) MathJax 3 comes from the
``sphinx-mathjax-offline`` package (copied into ``_static/mathjax``), never from a CDN.
Widget panels show their still (``text/html``: the picture plus one line about ``make lab``;
see ``hsr_lab.widgets.render``) instead of the live widget view, and no ipywidgets JavaScript
is loaded.
"""

from __future__ import annotations

import os

from hsr_lab.config import quick_mode

QUICK = quick_mode()

project = "hsr_lab"
author = "hsr_lab contributors"
copyright = "hsr_lab contributors, MIT licence"
extensions = ["myst_nb", "sphinx-mathjax-offline"]
exclude_patterns = ["_build", "**/.ipynb_checkpoints"]
root_doc = "index"
language = "en"

# MyST: $...$ and $$...$$ math as in the notebooks (also mid-paragraph); anchors for links such as
# 02_relu_attention.ipynb#the-reduction from the landing page and between notebooks.
myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 3
myst_dmath_double_inline = True  # $$...$$ inside a paragraph, as Jupyter shows it
# Cells that display(Markdown(...)) their measured numbers write math too: parse their output
# as MyST (myst-nb's default, CommonMark, leaves $...$ as raw text).
nb_render_markdown_format = "myst"

# Execution: every build runs every notebook (its sweeps come from hsr_lab's on-disk cache),
# so the pages never show outputs of older code. An error in a cell fails the build.
nb_execution_mode = "force"
nb_execution_timeout = int(os.environ.get("HSR_LAB_BOOK_CELL_TIMEOUT", "1800"))
nb_execution_raise_on_error = True
nb_execution_show_tb = True
nb_merge_streams = True
# No live widgets here: drop the widget view so each panel falls back to its still, and load
# none of the ipywidgets scripts (myst-nb's default fetches them from a CDN).
nb_mime_priority_overrides = [("html", "application/vnd.jupyter.widget-view+json", None)]
nb_ipywidgets_js = {}

html_theme = "sphinx_book_theme"
html_title = "hsr_lab: half-space-reporting sparse attention"
html_static_path = ["_static"]
html_css_files = ["book.css"]
html_last_updated_fmt = None  # same sources, same pages
html_context = {"default_mode": "light"}  # unset, the theme logs an error on every page
html_theme_options = {
    "show_toc_level": 2,
    "use_download_button": True,
    "use_fullscreen_button": False,
    "use_repository_button": False,
    "navigation_with_keys": False,
    "home_page_in_toc": True,
    "show_navbar_depth": 1,
}
if QUICK:
    html_theme_options["announcement"] = (
        "Quick build (HSR_LAB_QUICK=1): tiny parameters, for checking the pages; "
        "numbers come from <code>make book</code>.")


def _drop_widget_state(app, doctree) -> None:
    """The kernel's widget state (every panel's PNG again, as JSON) serves no page without
    the ipywidgets scripts: leave it out."""
    metadata = getattr(app.env, "nb_metadata", {}).get(app.env.docname, {})
    metadata.get("js_files", {}).pop("ipywidgets_state", None)


def setup(app) -> None:
    # Every page loads MathJax: the navigation's titles hold math on pages that have none.
    app.set_html_assets_policy("always")
    app.connect("doctree-read", _drop_widget_state)
