"""Every notebook in a real JupyterLab, in headless Chromium, as a reader would use it.

One ``jupyter lab`` (this venv's python, all state in a temporary folder) serves a copy of
``notebooks/``. For each notebook Chromium opens it in a fresh tab, runs all cells from the Run
menu, checks that no cell shows an error, types a new value into one slider of every widget
panel and waits for that panel's plot to change; then the notebook's kernel is shut down and
must exit. A screenshot of every notebook goes to ``test-artifacts/browser/``, and on failure
the server and browser logs too. A canary notebook proves that the error check sees errors.
A last test starts ``make lab`` the way the README says and checks that it listens on
127.0.0.1 only, behind its token.

Skipped when /usr/bin/chromium is missing, except in CI (``CI`` or
``HSR_LAB_REQUIRE_BROWSER=1``, which ``.ci/run`` sets): there a missing browser fails.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
from _lab import (
    ARTIFACTS,
    CHROMIUM,
    CHROMIUM_ARGS,
    ROOT,
    LabServer,
    free_port,
    jupyter_env,
    must_not_skip,
    same_interpreter,
)

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
TIMEOUT_MS = 90_000  # first matplotlib import in a fresh kernel on 2 cores is slow
KERNEL_IDLE = "Python 3 (ipykernel) | Idle"
VIEWPORT = {"width": 1280, "height": 900}
# A widget panel (hsr_lab.widgets.Panel): a VBox holding sliders and the plot image.
PANEL = ".widget-vbox:has(.widget-slider):has(img)"
# JupyterLab 4 renders an error output (and any stderr) as this; a traceback says "Traceback".
STDERR = '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]'


@pytest.fixture(scope="module")
def browser_context(tmp_path_factory):
    """A headless Debian Chromium under Playwright; one context (so one HTTP cache) for all."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing: `apt-get install chromium` runs the browser tests"
        if must_not_skip():
            pytest.fail(f"{message} (required here: CI or HSR_LAB_REQUIRE_BROWSER=1)")
        pytest.skip(message)
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=TIMEOUT_MS)  # expect() ignores page.set_default_timeout()
    home = tmp_path_factory.mktemp("browser-home")  # Chromium writes ~/.config, ~/.cache
    env = {**os.environ, "HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"),
           "XDG_CACHE_HOME": str(home / ".cache")}
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS,
                                              env=env)
        yield chromium.new_context(viewport=VIEWPORT)
        chromium.close()


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """One JupyterLab on a copy of notebooks/ (plus a failing canary); no process left after."""
    tmp = tmp_path_factory.mktemp("lab")
    root = tmp / "notebooks"
    shutil.copytree(ROOT / "notebooks", root, ignore=shutil.ignore_patterns(".*"))
    _write_canary(root / "canary" / "failing.ipynb")
    server = LabServer.for_notebooks(root, tmp).start()
    yield server
    survivors = server.stop()
    assert not survivors, f"left running after the server stopped: {survivors}"


@pytest.fixture
def page(browser_context, lab, request):
    """A fresh tab; afterwards its kernel is shut down, and on failure the logs are kept."""
    tab, console = browser_context.new_page(), []
    tab.set_default_timeout(TIMEOUT_MS)
    tab.on("console", lambda message: console.append(f"[{message.type}] {message.text}"))
    tab.on("pageerror", lambda error: console.append(f"[pageerror] {error}"))
    name = re.sub(r"\W+", "-", request.node.name).strip("-")
    for stale in ARTIFACTS.glob(f"{name}-*"):  # from an earlier failed run
        stale.unlink()
    failures = request.session.testsfailed  # counted once the test's call phase is reported
    yield tab
    if request.session.testsfailed > failures:
        _keep_failure_artifacts(tab, lab, console, name)
    tab.close()
    survivors = lab.shut_down_kernels()
    assert not survivors, f"kernels left running after their session ended: {survivors}"


@pytest.mark.timeout(300)
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_and_its_panels_redraw_in_jupyterlab(path, page, lab):
    """Run All without an error; moving a slider of each panel redraws that panel's plot."""
    from playwright.sync_api import expect

    page.goto(lab.url(f"lab/tree/{path.name}", "reset"))
    _run_all_cells(page)
    panels = page.locator(PANEL)
    expect(panels).to_have_count(_panel_calls(path))  # widget views render after the run
    _assert_no_error_output(page)
    for index in range(panels.count()):
        _move_a_slider_and_see_the_plot_change(panels.nth(index))
    _assert_no_error_output(page)
    _assert_kernel_is_this_python(lab)
    _screenshot_whole_notebook(page, ARTIFACTS / f"{path.stem}.png")


@pytest.mark.timeout(300)
def test_the_error_check_sees_failing_cells_and_lets_warnings_pass(page, lab):
    """The check above catches a traceback and a SyntaxError (so a pass means something)."""
    from playwright.sync_api import expect

    page.goto(lab.url("lab/tree/canary/failing.ipynb", "reset"))
    _run_all_cells(page)
    # After an error Lab resets the prompts of the cells still queued, even though the kernel
    # runs them (raises-exception): wait for all three outputs.
    expect(page.locator(STDERR)).to_have_count(3)
    warning = page.locator(STDERR).filter(has_text="only a warning").inner_text()
    assert "UserWarning" in warning and not _is_error(warning)
    with pytest.raises(AssertionError, match=r"(?s)ZeroDivisionError.*SyntaxError"):
        _assert_no_error_output(page)


@pytest.mark.timeout(300)
def test_the_kernel_check_accepts_this_python_under_another_spelling(tmp_path):
    # pytest may run as venv/bin/python while the kernel starts as venv/bin/python3.
    spellings = [p for p in Path(sys.executable).parent.glob("python*")
                 if os.path.realpath(p) == os.path.realpath(sys.executable)]
    assert spellings and all(same_interpreter(p, sys.executable) for p in spellings)
    venv = tmp_path / "venv" / "bin"
    venv.mkdir(parents=True)
    (venv / "python3").symlink_to(os.path.realpath(sys.executable))
    (venv / "python").symlink_to("python3")
    assert same_interpreter(venv / "python", venv / "python3")
    # The same base python, linked from another folder, is another environment.
    assert not same_interpreter(venv / "python3", sys.executable)
    assert not same_interpreter(venv / "python3", Path(sys.executable).with_name("nope"))


def test_make_lab_serves_on_loopback_only_behind_its_token(tmp_path):
    """``make lab`` as in the README: 127.0.0.1 with a token, nothing left once stopped."""
    if subprocess.run(["make", "-q", ".venv/.installed-lab"], cwd=ROOT).returncode != 0:
        message = "the lab install stamp is out of date: `make install-lab` (or `make test`) first"
        if must_not_skip():
            pytest.fail(message)
        pytest.skip(message)
    port, token = free_port(), secrets.token_hex(24)
    lab_args = f"--port={port} --no-browser --IdentityProvider.token={token}"
    server = LabServer(["make", "lab", f"LAB_ARGS={lab_args}"], port=port, token=token,
                       env=jupyter_env(tmp_path), cwd=ROOT, log_path=tmp_path / "make-lab.log")
    server.start()
    try:
        assert server.status("api/status") == 200
        assert server.status("api/status", token=False) in (401, 403)
        assert server.status("lab", token=False) in (302, 401, 403)  # to the login page
        listening = {conn.laddr.ip for conn in psutil.net_connections("inet")
                     if conn.status == psutil.CONN_LISTEN and conn.laddr.port == port}
        assert listening == {"127.0.0.1"}, listening
        # Other loopback addresses stand in for other interfaces: nothing may answer there.
        assert not _accepts("127.0.0.2", port)
        assert not _accepts("::1", port)
    finally:
        survivors = server.stop(api=False)  # make lab runs in the foreground: end its group
    assert not survivors, f"left running after `make lab` stopped: {survivors}"
    assert not _accepts("127.0.0.1", port)


def _write_canary(path: Path) -> None:
    """A notebook with a warning, a traceback (tagged to let Run All go on) and a SyntaxError."""
    import nbformat

    raises = {"tags": ["raises-exception"]}
    cells = [nbformat.v4.new_code_cell("import warnings\nwarnings.warn('only a warning')"),
             nbformat.v4.new_code_cell("1 / 0", metadata=raises),
             nbformat.v4.new_code_cell("1 +")]
    kernel = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nbformat.v4.new_notebook(cells=cells, metadata={"kernelspec": kernel}), path)


def _keep_failure_artifacts(page, server: LabServer, console: list[str], name: str) -> None:
    """A screenshot, the server log and the browser console log of a failed test."""
    with contextlib.suppress(Exception):
        page.screenshot(path=ARTIFACTS / f"{name}-FAILED.png")
    (ARTIFACTS / f"{name}-server.log").write_text(server.log_path.read_text(errors="replace"))
    (ARTIFACTS / f"{name}-console.log").write_text("\n".join(console) + "\n")


def _run_all_cells(page) -> None:
    """Run > Run All Cells once the kernel is up, then wait until no cell is pending."""
    from playwright.sync_api import expect

    # The toolbar reads "idle" before a kernel exists; Run All then silently runs nothing.
    status = page.locator("#jp-main-statusbar").get_by_text(KERNEL_IDLE, exact=True)
    expect(status).to_be_visible()
    page.keyboard.press("Control+b")  # hide the file browser: a wider notebook
    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
    # Run All marks every cell [*] at once; a cell after an error falls back to [ ].
    page.wait_for_function("""() => {
        const prompts = [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')]
            .map(p => p.textContent.trim());
        return prompts.some(p => /^\\[\\d+\\]:$/.test(p)) && !prompts.some(p => p.includes('*'));
    }""")
    expect(status).to_be_visible()


def _assert_no_error_output(page) -> None:
    """No cell shows an error, and every code cell ran (a prompt [n], not [ ])."""
    errors = [text for text in page.locator(STDERR).all_inner_texts() if _is_error(text)]
    assert not errors, "a cell shows an error:\n" + "\n\n".join(errors)
    prompts = [p.strip() for p in page.locator(".jp-CodeCell .jp-InputPrompt").all_inner_texts()]
    assert prompts and all(re.fullmatch(r"\[\d+\]:", p) for p in prompts), prompts


def _is_error(stderr: str) -> bool:
    """A traceback, or an exception line such as IPython's SyntaxError report (no traceback)."""
    return "Traceback" in stderr or bool(re.search(r"(?m)^\w*(Error|Exception)\b", stderr))


def _panel_calls(path: Path) -> int:
    """How many panels the notebook makes: calls of functions it imports from hsr_lab.widgets."""
    source = "\n".join("".join(cell["source"]) for cell in json.loads(path.read_text())["cells"]
                       if cell["cell_type"] == "code")
    imports = re.findall(r"from hsr_lab\.widgets(?:\.\w+)? import ([\w, ]+)", source)
    names = [name for match in imports for name in re.split(r"\s*,\s*", match.strip())]
    return sum(len(re.findall(rf"^\s*{name}\(", source, re.M)) for name in names)


def _move_a_slider_and_see_the_plot_change(panel) -> None:
    """Type a value a quarter of the range away into the first slider (and press the panel's
    button, if it has one: a measuring panel runs on the button); the plot must change."""
    from playwright.sync_api import expect

    panel.scroll_into_view_if_needed()
    image = panel.locator("img").first
    expect(image).to_be_visible()
    before_src, before_digest = image.get_attribute("src"), _digest(image)
    handle = panel.locator(".widget-slider [role=slider]").first
    readout = panel.locator(".widget-slider .widget-readout").first
    low, high = (float(handle.get_attribute(f"aria-value{end}")) for end in ("min", "max"))
    value = _new_value(readout.inner_text(), low, high)
    readout.click()
    page = panel.page
    page.keyboard.press("Control+a")
    page.keyboard.type(value)
    page.keyboard.press("Enter")
    expect(readout).to_have_text(value)
    button = panel.locator("button.widget-button")
    if button.count():
        button.first.click()
    expect(image).not_to_have_attribute("src", before_src or "")
    expect(image).to_be_visible()
    assert _digest(image) != before_digest, "the panel's plot did not change"
    assert "Cannot draw this" not in panel.inner_text()


def _new_value(shown: str, low: float, high: float) -> str:
    """A value a quarter of [low, high] away from ``shown``, in the readout's format."""
    now, step = float(shown), (high - low) / 4
    value = now + step if now + step <= high else now - step
    return f"{value:.2f}" if "." in shown else str(round(value))


def _digest(image) -> str:
    """SHA-256 of the image's bytes as the browser holds them (blob: or data: URL)."""
    return image.evaluate("""async (img) => {
        const bytes = await (await fetch(img.src)).arrayBuffer();
        const hash = await crypto.subtle.digest('SHA-256', bytes);
        return [...new Uint8Array(hash)].map(b => b.toString(16).padStart(2, '0')).join('');
    }""")


def _assert_kernel_is_this_python(server: LabServer) -> None:
    """The notebook's kernel is a child of the server running this very python."""
    kernels = [p for p in server.family() if "ipykernel_launcher" in p.cmdline()]
    assert len(kernels) == 1, kernels
    assert same_interpreter(kernels[0].cmdline()[0], sys.executable), \
        (kernels[0].cmdline(), sys.executable)


def _screenshot_whole_notebook(page, path: Path) -> None:
    """Grow the window to the notebook's height so one screenshot shows every cell."""
    scroller = page.locator(".jp-NotebookPanel .jp-WindowedPanel-outer").first
    extra = scroller.evaluate("""el => {
        el.scrollTop = 0;
        const cells = el.querySelectorAll('.jp-Notebook-cell');
        const bottom = cells[cells.length - 1].getBoundingClientRect().bottom;
        return Math.ceil(bottom - el.getBoundingClientRect().top + 40 - el.clientHeight);
    }""")
    page.set_viewport_size({**VIEWPORT, "height": min(VIEWPORT["height"] + max(extra, 0), 16_000)})
    page.wait_for_timeout(500)  # let JupyterLab lay out the taller window
    page.screenshot(path=path)
    page.set_viewport_size(VIEWPORT)


def _accepts(host: str, port: int) -> bool:
    """True if a TCP connection to host:port succeeds."""
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False
