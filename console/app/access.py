"""Who may use the web console: the listening address, the password and its rate limit.

The console listens on 127.0.0.1 unless told otherwise; on any other address it needs a password
(``CONSOLE_PASSWORD``, ``CONSOLE_PASSWORD_FILE`` or Streamlit's ``console_password`` secret), else it shows no page.
Wrong passwords are throttled per browser session and per server process (:class:`Throttle`).
Plain Python: no Streamlit import.
"""
from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import stat
import threading
import time
from collections import deque
from pathlib import Path
from typing import Callable

HOW_TO_SET_A_PASSWORD = (
    "set CONSOLE_PASSWORD (or CONSOLE_PASSWORD_FILE, a file only its owner can read, or console_password in "
    ".streamlit/secrets.toml), or listen on 127.0.0.1 only (CONSOLE_ADDRESS=127.0.0.1, the default)"
)


class AccessError(Exception):
    """The console's access settings are unusable; the message says what to do."""


def is_loopback(address: str | None) -> bool:
    """Whether ``address`` (Streamlit's server.address) only accepts connections from this machine.
    None or "" means every interface (Streamlit's default), so it is not loopback."""
    if not address:
        return False
    if address.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(address.strip().strip("[]")).is_loopback
    except ValueError:  # a host name: it may resolve to anything
        return False


def read_secret_file(path: str | os.PathLike, name: str) -> str:
    """The first line of a secret file, refused when group or others may read it (chmod 600)."""
    path = Path(path).expanduser()
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise AccessError(f"{name}={path}: cannot read it ({exc.strerror}): point it at an existing file") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise AccessError(f"{name}={path}: group or others may read it (mode {stat.S_IMODE(mode):o}): "
                          f"run chmod 600 {path}")
    value = text.strip().splitlines()[0].strip() if text.strip() else ""
    if not value:
        raise AccessError(f"{name}={path}: the file is empty: write the password into it")
    return value


def secret_env(name: str, env=None) -> str | None:
    """The secret ``name`` from the environment, else from the file named by ``<name>_FILE`` (mode 600, see
    :func:`read_secret_file`); None when neither is set."""
    env = os.environ if env is None else env
    if env.get(name):
        return env[name]
    if env.get(f"{name}_FILE"):
        return read_secret_file(env[f"{name}_FILE"], f"{name}_FILE")
    return None


def configured_password(secrets_value: str | None = None, env=None) -> str | None:
    """CONSOLE_PASSWORD, else the file named by CONSOLE_PASSWORD_FILE, else the Streamlit secret; None if none."""
    return secret_env("CONSOLE_PASSWORD", env) or (str(secrets_value) if secrets_value else None)


def password_matches(given: str, expected: str) -> bool:
    """Constant time, whatever the lengths (both sides are hashed first)."""
    return hmac.compare_digest(hashlib.sha256(given.encode()).digest(), hashlib.sha256(expected.encode()).digest())


class Throttle:
    """After ``max_failures`` wrong passwords within ``window_s`` seconds, refuse attempts for a delay that doubles
    with each lockout (``base_delay_s``, then twice that, ... up to ``max_delay_s``). Thread-safe."""

    def __init__(self, max_failures: int, window_s: float = 60, base_delay_s: float = 30, max_delay_s: float = 900,
                 clock: Callable[[], float] = time.monotonic):
        self.max_failures, self.window_s = max_failures, window_s
        self.base_delay_s, self.max_delay_s, self.clock = base_delay_s, max_delay_s, clock
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        self._failures: deque[float] = deque()
        self._locked_until = 0.0
        self._lockouts = 0

    def wait_s(self) -> float:
        """Seconds until the next attempt is allowed (0: now)."""
        with self._lock:
            return max(0.0, self._locked_until - self.clock())

    def failed(self) -> None:
        with self._lock:
            now = self.clock()
            self._failures.append(now)
            while self._failures and self._failures[0] < now - self.window_s:
                self._failures.popleft()
            if len(self._failures) >= self.max_failures:
                self._lockouts += 1
                delay = min(self.max_delay_s, self.base_delay_s * 2 ** (self._lockouts - 1))
                self._locked_until = now + delay
                self._failures.clear()


# Every session of this server process together: a new browser session does not get fresh attempts.
PROCESS_THROTTLE = Throttle(max_failures=int(os.environ.get("CONSOLE_MAX_LOGIN_FAILURES", "20")))
SESSION_MAX_FAILURES = 5
