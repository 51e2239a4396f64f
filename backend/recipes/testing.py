"""Helpers for the project's tests: run the real backend (``manage.py runserver``) and empty a test database.

Used by tests/test_backend_*.py and tests/test_push.py; nothing here is imported by the app itself.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

BACKEND = Path(__file__).resolve().parent.parent
MANAGE = BACKEND / "manage.py"


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


@contextmanager
def run_backend(env: dict, *, log_path: Path | None = None, wait_s: float = 60):
    """Start ``manage.py runserver 127.0.0.1:<free port> --noreload``; yield its base URL; stop it at the end."""
    port = free_port()
    log = open(log_path, "w") if log_path else subprocess.DEVNULL
    proc = subprocess.Popen(
        [sys.executable, str(MANAGE), "runserver", f"127.0.0.1:{port}", "--noreload"],
        env={**os.environ, "DJANGO_DEBUG": "0", "DJANGO_SECRET_KEY": "test-secret", **env},
        stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + wait_s
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"runserver exited with {proc.returncode}; see {log_path}")
            try:
                urllib.request.urlopen(url + "/api/schema/", timeout=2).read()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"runserver did not answer on {url} within {wait_s} s") from None
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        if log_path:
            log.close()
