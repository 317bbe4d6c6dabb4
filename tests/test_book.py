"""The rendered book (``make book QUICK=1``), opened page by page in headless Chromium, offline.

The quick book is built once (``docs/book/build.py --quick --strict``: any Sphinx warning, a
broken cross-reference say, fails) into a temporary folder and served by a local HTTP server
on 127.0.0.1. Chromium reaches that server and nothing else: every other request is recorded
and aborted, and its host resolver maps every other name to nowhere. Each page must load with
no console error and no failed request; every image must load (natural width > 0); MathJax
must have typeset every math element, leaving no raw ``$...$`` or ``\\(`` in the text; every
internal link and its anchor must resolve. A screenshot of each page goes to
``test-artifacts/book/``.

``HSR_LAB_BOOK_SITE=build/book/html`` checks a site already built instead (the full one of
``make book``, say) and builds nothing.

Skipped when /usr/bin/chromium or Sphinx is missing, except in CI (``CI`` or
``HSR_LAB_REQUIRE_BROWSER=1``): there it fails.
"""

from __future__ import annotations

import base64
import functools
import http.server
import importlib.util
import json
import os
import re
import subprocess
import sys
import threading
import urllib.parse
from html.parser import HTMLParser
from pathlib import Path

import pytest
from _lab import CHROMIUM, CHROMIUM_ARGS, ROOT, must_not_skip

ARTIFACTS = ROOT / "test-artifacts" / "book"
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
# Every page the book must have: landing page, one per notebook in name order, gallery.
CHAPTERS = ["index", *(f"notebooks/{p.stem}" for p in NOTEBOOKS), "figures"]
PAGES = [*CHAPTERS, "search", "genindex"]
TIMEOUT_MS = 60_000
# Text left untypeset: \( \) \[ \] delimiters, $$, or $...$ around something that is not a
# space (a price such as "$5 and $6" would be a false alarm; the book has none).
RAW_MATH = re.compile(r"\\[()\[\]]|\$\$|(?<![\w$])\$[^\s$][^$\n]*\$")


def _build_module():
    """docs/book/build.py as a module (it is a script, not part of the package)."""
    spec = importlib.util.spec_from_file_location("book_build", ROOT / "docs/book/build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _require(condition: bool, message: str) -> None:
    if not condition:
        if must_not_skip():
            pytest.fail(f"{message} (required here: CI or HSR_LAB_REQUIRE_BROWSER=1)")
        pytest.skip(message)


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The quick book, built once with its own sweep cache; the folder of its HTML."""
    if built := os.environ.get("HSR_LAB_BOOK_SITE"):
        return Path(built).resolve()
    _require(importlib.util.find_spec("myst_nb") is not None,
             "Sphinx and myst-nb are missing: `make install-book` (or `make test`) adds them")
    out = tmp_path_factory.mktemp("book")
    env = dict(os.environ, HSR_LAB_CACHE_DIR=str(out / "cache"))
    result = subprocess.run([sys.executable, str(ROOT / "docs/book/build.py"), "--quick",
                             "--strict", "--out", str(out)], env=env, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, f"the book did not build:\n{result.stdout}\n{result.stderr}"
    return out / "html"


@pytest.fixture(scope="module")
def origin(site):
    """A local HTTP server over the site, on 127.0.0.1: its origin, e.g. http://127.0.0.1:4242."""
    handler = functools.partial(_QuietHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # the test reports failed requests itself
        pass


@pytest.fixture(scope="module")
def browser(tmp_path_factory, origin):
    """Headless Debian Chromium that can reach ``origin`` and nothing else."""
    _require(CHROMIUM.exists(), f"{CHROMIUM} is missing: `apt-get install chromium`")
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    home = tmp_path_factory.mktemp("book-browser-home")
    env = {**os.environ, "HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"),
           "XDG_CACHE_HOME": str(home / ".cache")}
    # Belt and braces: no name resolves but the server's address, and no proxy is used.
    args = [*CHROMIUM_ARGS, "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
            "--no-proxy-server"]
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=args, env=env)
        context = chromium.new_context(viewport={"width": 1280, "height": 900},
                                       service_workers="block")
        context.left = []  # every request that tried to leave the machine
        context.route("**/*", functools.partial(_local_only, origin, context.left))
        context.on("websocket", lambda ws: context.left.append(f"websocket {ws.url}"))
        yield context
        chromium.close()


def _local_only(origin: str, left: list[str], route, request) -> None:
    """Let requests to the local server (and inline data: URIs) through; abort the rest."""
    if request.url.startswith((origin + "/", "data:", "blob:")):
        route.continue_()
    else:
        left.append(request.url)
        route.abort("blockedbyclient")


class _Anchors(HTMLParser):
    """Every id (and <a name>) of an HTML page: the anchors a link's #fragment may name."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()

    def handle_starttag(self, tag, attrs) -> None:
        attrs = dict(attrs)
        self.ids.update(v for k, v in attrs.items() if k == "id" or (tag == "a" and k == "name"))


@functools.cache
def _anchors(path: Path) -> frozenset[str]:
    parser = _Anchors()
    parser.feed(path.read_text(encoding="utf-8"))
    return frozenset(parser.ids)


def _broken_links(site: Path, origin: str, page_url: str, hrefs: list[str]) -> list[str]:
    """The hrefs into the site whose file or #anchor does not exist."""
    broken = []
    for href in hrefs:
        url = urllib.parse.urldefrag(urllib.parse.urljoin(page_url, href))
        if not url.url.startswith(origin + "/"):
            continue  # a link out (arXiv, say) is fine to have; the test never follows it
        relative = urllib.parse.unquote(urllib.parse.urlparse(url.url).path).lstrip("/")
        target = site / relative
        if relative == "" or target.is_dir():
            target = target / "index.html"
        if not target.is_file():
            broken.append(f"{href} (no file {relative or '/'})")
        elif url.fragment and target.suffix == ".html" and (
                urllib.parse.unquote(url.fragment) not in _anchors(target)):
            broken.append(f"{href} (no anchor #{url.fragment} in {target.name})")
    return broken


# What the page reports once MathJax is done: the links, the images that did not load, the
# math elements MathJax left alone, and the text of the article outside code.
_INSPECT = """async () => {
  if (window.MathJax && MathJax.startup) { await MathJax.startup.promise; }
  const article = document.querySelector('article') || document.body;
  const prose = article.cloneNode(true);
  prose.querySelectorAll('pre, code, script, style, mjx-container').forEach(e => e.remove());
  const math = Array.from(document.querySelectorAll('.math'));
  return {
    hrefs: Array.from(document.querySelectorAll('a[href]'), a => a.getAttribute('href')),
    images: document.images.length,
    broken_images: Array.from(document.images)
        .filter(img => !img.complete || img.naturalWidth === 0)
        .map(img => (img.getAttribute('src') || '').slice(0, 80)),
    math: math.length,
    untypeset: math.filter(e => !e.querySelector('mjx-container'))
        .map(e => e.textContent.slice(0, 80)),
    typeset: document.querySelectorAll('mjx-container').length,
    text: prose.innerText,
    prev: document.querySelector('a.left-prev')?.getAttribute('href') ?? null,
    next: document.querySelector('a.right-next')?.getAttribute('href') ?? null,
    panels: Array.from(document.querySelectorAll('figure.hsr-panel'), f => ({
        loaded: !!f.querySelector('img') && f.querySelector('img').naturalWidth > 0,
        note: f.innerText})),
    figures: Array.from(document.querySelectorAll('figure[id]'), f => ({
        id: f.id, caption: f.querySelector('figcaption')?.innerText.trim() ?? ''})),
    widget_boxes: document.querySelectorAll(
        '.jupyter-widgets, script[type="application/vnd.jupyter.widget-view+json"]').length,
  };
}"""


@pytest.fixture(scope="module")
def visit(site, origin, browser):
    """Open a page of the book (its path without .html); what the page showed and did."""
    def open_page(name: str) -> dict:
        tab, console, failed = browser.new_page(), [], []
        tab.set_default_timeout(TIMEOUT_MS)
        tab.on("console", lambda m: m.type == "error" and console.append(m.text))
        tab.on("pageerror", lambda error: console.append(f"[pageerror] {error}"))
        tab.on("requestfailed", lambda r: failed.append(f"{r.url} ({r.failure})"))
        tab.on("response", lambda r: r.status >= 400 and failed.append(f"{r.url} ({r.status})"))
        url = f"{origin}/{name}.html"
        tab.goto(url, wait_until="networkidle")
        report = tab.evaluate(_INSPECT)
        shot = ARTIFACTS / f"{name.replace('/', '-')}.png"
        tab.screenshot(path=str(shot), full_page=True)
        tab.close()
        return {**report, "url": url, "console": console, "failed": failed}
    return functools.cache(open_page)


def test_a_panel_offers_its_picture_and_a_line_about_jupyterlab_beside_the_live_view():
    """What a page without widgets shows (text/html) and what JupyterLab shows (the view)."""
    pytest.importorskip("ipywidgets")
    from hsr_lab.widgets import plane_panel

    bundle = plane_panel(n=40)._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert base64.b64decode(bundle["image/png"]).startswith(b"\x89PNG")
    assert f'src="data:image/png;base64,{bundle["image/png"]}"' in bundle["text/html"]
    assert "JupyterLab" in bundle["text/html"] and "make lab" in bundle["text/html"]


def test_the_book_has_a_page_for_every_notebook_and_nothing_unexpected(site):
    pages = {str(p.relative_to(site).with_suffix("")) for p in site.rglob("*.html")
             if not p.relative_to(site).parts[0].startswith("_")}
    assert pages == set(PAGES)


@pytest.mark.parametrize("name", PAGES)
def test_page_loads_offline_with_images_math_and_links(name, site, origin, visit, browser):
    page = visit(name)
    assert not page["console"], f"console errors on {name}: {page['console']}"
    assert not page["failed"], f"failed requests on {name}: {page['failed']}"
    assert not browser.left, f"requests that tried to leave the machine: {browser.left}"
    assert not page["broken_images"], f"images that did not load: {page['broken_images']}"
    assert not page["untypeset"], f"math MathJax did not typeset: {page['untypeset']}"
    assert page["typeset"] >= page["math"]
    raw = RAW_MATH.findall(page["text"])
    assert not raw, f"raw math left in the text of {name}: {raw[:5]}"
    broken = _broken_links(site, origin, page["url"], page["hrefs"])
    assert not broken, f"broken internal links on {name}: {broken}"
    assert "Loading widget" not in page["text"]
    assert page["widget_boxes"] == 0, "a live-widget placeholder in a static page"


@pytest.mark.parametrize("name", [c for c in CHAPTERS if c.startswith("notebooks/")])
def test_notebook_page_shows_its_panels_as_pictures(name, visit):
    """A notebook that uses a widget panel shows each as its picture, with the one line that
    says where the sliders move; never an empty box."""
    page = visit(name)
    source = json.loads((ROOT / f"{name}.ipynb").read_text())
    if any("hsr_lab.widgets" in "".join(c["source"]) for c in source["cells"]):
        assert page["panels"], f"{name} imports a widget panel but the page shows none"
    for panel in page["panels"]:
        assert panel["loaded"], "a panel without its picture"
        assert "make lab" in panel["note"] and "JupyterLab" in panel["note"], panel["note"]


def test_math_is_typeset_by_the_local_mathjax(visit):
    """The landing page's math is MathJax output, from the copy in _static (the test's
    network block would have stopped any other)."""
    landing = visit("index")
    assert landing["math"] > 0 and landing["typeset"] >= landing["math"]


def test_chapters_come_in_name_order_with_previous_and_next_links(visit):
    """The landing page lists the notebooks in name order, and each chapter's previous/next
    links walk landing page, notebooks, gallery."""
    landing = visit("index")
    listed = [h.removesuffix(".html") for h in landing["hrefs"]
              if re.fullmatch(r"notebooks/[^#/]+\.html", h)]
    assert list(dict.fromkeys(listed)) == CHAPTERS[1:-1]
    for before, name, after in zip(CHAPTERS, CHAPTERS[1:], CHAPTERS[2:], strict=False):
        page = visit(name)
        for href, expected in ((page["prev"], before), (page["next"], after)):
            assert href, f"{name} has no previous or next link"
            assert os.path.normpath(Path(name).parent / href).removesuffix(".html") == expected


def test_gallery_shows_every_figure_of_the_readme_with_its_caption(visit):
    entries = _build_module().gallery_entries((ROOT / "figures/README.md").read_text())
    page = visit("figures")
    assert len(entries) >= 5 and page["images"] >= len(entries)
    # docutils spells the ids with hyphens: fig-hsr-plane for :name: fig-hsr_plane
    assert [f["id"] for f in page["figures"]] == [
        "fig-" + re.sub(r"[^a-z0-9]+", "-", name.lower()) for name, _, _ in entries]
    for (name, caption, _), figure in zip(entries, page["figures"], strict=True):
        assert caption and figure["caption"], f"{name} has no caption"
