"""Helpers for the project's tests: run the real backend as production does (gunicorn with
``backend/gunicorn.conf.py``, DEBUG off, static files collected and served by WhiteNoise) and run management
commands.

Used by tests/test_backend_*.py, tests/test_push.py, tests/test_query_embedding.py and bench/search.py; nothing here
is imported by the app itself.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path

BACKEND = Path(__file__).resolve().parent.parent
MANAGE = BACKEND / "manage.py"
GUNICORN_CONF = BACKEND / "gunicorn.conf.py"
_STATIC_ROOT: list[str] = []  # collected once per test process


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def manage(*args: str, env: dict | None = None, check: bool = True, timeout: float = 600
           ) -> subprocess.CompletedProcess:
    """``python backend/manage.py <args>`` as a real subprocess (output captured as text)."""
    proc = subprocess.run([sys.executable, str(MANAGE), *args], env={**os.environ, **(env or {})},
                          capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"manage.py {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def static_root() -> str:
    """A folder with the backend's static files collected into it (``collectstatic``, once per process)."""
    if not _STATIC_ROOT:
        folder = tempfile.mkdtemp(prefix="backend-static-")
        manage("collectstatic", "--noinput", "-v", "0", env={"DJANGO_STATIC_ROOT": folder})
        _STATIC_ROOT.append(folder)
    return _STATIC_ROOT[0]


class _KeepRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None  # a redirect is an answer: the server is up


_NO_REDIRECTS = urllib.request.build_opener(_KeepRedirects)


@contextmanager
def _serving(proc: subprocess.Popen, name: str, url: str, ready, *, wait_s: float, stop_s: float, log,
             log_path: Path | None):
    """Wait until ``ready()`` says the started server ``proc`` answers on ``url`` (a clear error when it exits or
    stays silent for ``wait_s``), yield, and stop it at the end (SIGTERM, then SIGKILL after ``stop_s``)."""
    try:
        deadline = time.monotonic() + wait_s
        while not ready():
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}; see {log_path}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not answer on {url} within {wait_s} s")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=stop_s)
        except subprocess.TimeoutExpired:
            proc.kill()
        if log_path:
            log.close()


def _answers(url: str, path: str = "/api/schema/") -> bool:
    try:
        _NO_REDIRECTS.open(url + path, timeout=2).read()
    except urllib.error.HTTPError:  # it answers (e.g. with DJANGO_HTTPS=1, a redirect to https)
        return True
    except OSError:
        return False
    return True


def _listens(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


@contextmanager
def run_backend(env: dict, *, log_path: Path | None = None, wait_s: float = 60):
    """Start the backend as production runs it: gunicorn with backend/gunicorn.conf.py on a free loopback port,
    DEBUG off, static files collected; yield its base URL; stop it (SIGTERM, graceful) at the end."""
    port = free_port()
    log = open(log_path, "w") if log_path else subprocess.DEVNULL
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", str(GUNICORN_CONF)],
        env={**os.environ, "DJANGO_DEBUG": "0", "DJANGO_SECRET_KEY": "test-secret", "DJANGO_STATIC_ROOT": static_root(),
             "BACKEND_BIND": f"127.0.0.1:{port}", **env},
        stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    with _serving(proc, "gunicorn", url, lambda: _answers(url), wait_s=wait_s, stop_s=35, log=log,
                  log_path=log_path) as served:
        yield served


@contextmanager
def run_server(command: list[str], env: dict, url: str, probe: str, *, log_path: Path | None = None,
               wait_s: float = 60):
    """Start any web server ``command`` (e.g. gunicorn serving another Django project) with exactly ``env``; yield
    ``url`` once ``url + probe`` answers; stop it (SIGTERM, graceful) at the end."""
    log = open(log_path, "w") if log_path else subprocess.DEVNULL
    proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    with _serving(proc, command[0], url, lambda: _answers(url, probe), wait_s=wait_s, stop_s=35, log=log,
                  log_path=log_path) as served:
        yield served


@contextmanager
def run_embedding_server(model: str, *args: str, env: dict | None = None, log_path: Path | None = None,
                         wait_s: float = 120):
    """Start ``embedding-console serve --model <model> <args>`` on a free loopback port (CPU); yield its base URL
    (``http://127.0.0.1:<port>``); stop it at the end."""
    port = free_port()
    log = open(log_path, "w") if log_path else subprocess.DEVNULL
    root = BACKEND.parent
    proc = subprocess.Popen(
        [sys.executable, "-m", "console.cli", "serve", "--model", str(model), "--port", str(port), "--device", "cpu",
         *args], cwd=root, stdout=log, stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")])),
             "HF_HUB_OFFLINE": "1", **(env or {})})
    with _serving(proc, "embedding-console serve", f"http://127.0.0.1:{port}", lambda: _listens(port), wait_s=wait_s,
                  stop_s=20, log=log, log_path=log_path) as served:
        yield served
