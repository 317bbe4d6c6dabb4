"""A real JupyterLab server in a throw-away home, for the browser tests.

Jupyter's config, data and runtime folders, IPython's, matplotlib's and ``HOME`` all live in
one temporary folder, so a run reads no personal settings and writes nothing outside it. The
server is this venv's ``python -m jupyter lab`` (or ``make lab``) on 127.0.0.1 with a random
token; its kernel is the same python through ipykernel.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts" / "browser"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]

# JupyterLab settings for a test: no news or update toasts over the notebook, and every cell
# attached to the DOM (the default windowing leaves off-screen cells out of screenshots).
_LAB_SETTINGS = {
    "@jupyterlab/apputils-extension/notification": {"fetchNews": "false",
                                                    "checkForUpdates": False},
    "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
}


def must_not_skip() -> bool:
    """In CI (``CI`` set) or with ``HSR_LAB_REQUIRE_BROWSER=1`` a missing prerequisite fails."""
    ci = os.environ.get("CI", "").lower() not in ("", "0", "false", "no")
    return ci or os.environ.get("HSR_LAB_REQUIRE_BROWSER") == "1"


def same_interpreter(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    """Whether two paths start the same python in the same environment, however spelled.

    ``venv/bin/python`` and ``venv/bin/python3`` are one interpreter: both resolve to the same
    file, from the same ``bin`` folder (which decides the venv through its ``pyvenv.cfg``). A
    link to the same base python from another folder is another environment.
    """
    a, b = Path(a).absolute(), Path(b).absolute()
    return (os.path.realpath(a) == os.path.realpath(b)
            and os.path.realpath(a.parent) == os.path.realpath(b.parent))


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def jupyter_env(tmp: Path) -> dict[str, str]:
    """The environment of a server whose every state folder is a subfolder of ``tmp``."""
    env = dict(os.environ)
    folders = {"JUPYTER_CONFIG_DIR": "jupyter-config", "JUPYTER_DATA_DIR": "jupyter-data",
               "JUPYTER_RUNTIME_DIR": "jupyter-runtime", "IPYTHONDIR": "ipython",
               "HOME": "home", "MPLCONFIGDIR": "matplotlib", "HSR_LAB_CACHE_DIR": "hsr-cache",
               "XDG_CACHE_HOME": "home/.cache", "XDG_CONFIG_HOME": "home/.config"}
    for name, folder in folders.items():
        (tmp / folder).mkdir(parents=True, exist_ok=True)
        env[name] = str(tmp / folder)
    env.pop("JUPYTER_PATH", None)
    env.pop("JUPYTERLAB_SETTINGS_DIR", None)
    env.pop("JUPYTERLAB_WORKSPACES_DIR", None)
    env["HSR_LAB_QUICK"] = "1"
    env["PYTHONUNBUFFERED"] = "1"
    for plugin, values in _LAB_SETTINGS.items():
        path = tmp / "jupyter-config" / "lab" / "user-settings" / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    _ensure_python3_kernel(env)
    return env


def _ensure_python3_kernel(env: dict[str, str]) -> None:
    """Make the ``python3`` kernel this python: keep the venv's spec if it is, else add one."""
    listing = subprocess.run([sys.executable, "-m", "jupyter", "kernelspec", "list", "--json"],
                             env=env, capture_output=True, text=True, check=True, timeout=60)
    spec = json.loads(listing.stdout)["kernelspecs"].get("python3", {}).get("spec", {})
    # jupyter_client runs a spec whose argv[0] is a bare python name with sys.executable.
    bare = {"python", f"python{sys.version_info[0]}", "python{}.{}".format(*sys.version_info)}
    argv0 = spec.get("argv", [""])[0]
    if argv0 in bare or (os.path.isabs(argv0) and same_interpreter(argv0, sys.executable)):
        return
    kernel_dir = Path(env["JUPYTER_DATA_DIR"]) / "kernels" / "python3"
    kernel_dir.mkdir(parents=True, exist_ok=True)
    (kernel_dir / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (ipykernel)", "language": "python",
        "metadata": {"debugger": True}}))


def lab_command(root_dir: Path, port: int, token: str) -> list[str]:
    """``python -m jupyter lab`` serving ``root_dir`` on 127.0.0.1:port behind ``token``."""
    command = [sys.executable, "-m", "jupyter", "lab", "--no-browser",
               "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
               "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
               f"--ServerApp.root_dir={root_dir}"]
    if os.geteuid() == 0:
        command.append("--allow-root")
    return command


class LabServer:
    """A JupyterLab process started in its own session; its output goes to ``log_path``."""

    def __init__(self, command: list[str], *, port: int, token: str, env: dict[str, str],
                 cwd: Path, log_path: Path) -> None:
        self.command, self.port, self.token = command, port, token
        self.env, self.cwd, self.log_path = env, cwd, log_path
        self.process: subprocess.Popen | None = None

    @classmethod
    def for_notebooks(cls, root_dir: Path, tmp: Path) -> LabServer:
        """A server of ``python -m jupyter lab`` on ``root_dir``, all its state under ``tmp``."""
        port, token = free_port(), secrets.token_hex(24)
        return cls(lab_command(root_dir, port, token), port=port, token=token,
                   env=jupyter_env(tmp), cwd=root_dir, log_path=tmp / "server.log")

    def __repr__(self) -> str:
        state = "not started" if self.process is None else f"pid {self.process.pid}"
        return f"LabServer(127.0.0.1:{self.port}, {state}, log {self.log_path})"

    def url(self, path: str, *query: str) -> str:
        """The address of ``path`` on this server, token included."""
        return f"http://127.0.0.1:{self.port}/{path}?" + "&".join([f"token={self.token}", *query])

    def start(self, timeout: float = 120) -> LabServer:
        """Start the server and wait until ``/api/status`` answers 200 with the token."""
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(self.command, cwd=self.cwd, env=self.env,
                                            stdin=subprocess.DEVNULL, stdout=log,
                                            stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self} exited with {self.process.returncode}:\n"
                                   f"{self.log_tail()}")
            if self.status("api/status") == 200:
                return self
            time.sleep(0.25)
        raise TimeoutError(f"{self} did not answer within {timeout} s:\n{self.log_tail()}")

    def status(self, path: str, *, host: str = "127.0.0.1", token: bool = True) -> int | None:
        """HTTP status of GET ``path`` (redirects not followed), None if nothing answers."""
        url = f"http://{host}:{self.port}/{path}"
        headers = {"Authorization": f"token {self.token}"} if token else {}
        opener = urllib.request.build_opener(_NoRedirect)
        try:
            with opener.open(urllib.request.Request(url, headers=headers), timeout=5) as reply:
                return reply.status
        except urllib.error.HTTPError as err:
            return err.code
        except OSError:
            return None

    def api(self, method: str, path: str) -> bytes:
        """Call the server's REST API with the token; the reply's body."""
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}/{path}", method=method,
                                         headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(request, timeout=30) as reply:
            return reply.read()

    def family(self) -> list[psutil.Process]:
        """The server's process and all its descendants (kernels included) that are alive."""
        try:
            top = psutil.Process(self.process.pid)
            return [top, *top.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def shut_down_kernels(self) -> list[psutil.Process]:
        """End every session (and so its kernel) through the API; return kernels still alive."""
        kernels = self.family()[1:]
        for session in json.loads(self.api("GET", "api/sessions")):
            self.api("DELETE", f"api/sessions/{session['id']}")
        _, alive = psutil.wait_procs(kernels, timeout=20)
        return alive

    def stop(self, *, api: bool = True, timeout: float = 30) -> list[psutil.Process]:
        """Stop the server (API shutdown, else SIGTERM to its group); return the survivors."""
        family = self.family()
        if api:
            try:
                self.api("POST", "api/shutdown")
            except OSError:
                api = False
        if not api:
            _signal_group(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            _signal_group(self.process.pid, signal.SIGKILL)
            self.process.wait(10)
        _, alive = psutil.wait_procs(family, timeout=10)
        for process in alive:  # report them, but do not leave them running
            with _gone_ok():
                process.kill()
        return alive

    def log_tail(self, chars: int = 4000) -> str:
        """The end of the server's log."""
        return self.log_path.read_text(errors="replace")[-chars:]


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Report a redirect (to the login page) as its own status instead of following it."""

    def redirect_request(self, *args, **kwargs):
        return None


def _signal_group(pid: int, sig: int) -> None:
    with _gone_ok():
        os.killpg(os.getpgid(pid), sig)


def _gone_ok() -> contextlib.suppress:
    """Ignore a process that has already exited."""
    return contextlib.suppress(ProcessLookupError, psutil.NoSuchProcess)
