"""Who can reach the console, as real processes: start.sh refuses a non-loopback address without a password before
any setup work; `streamlit run app.py` listens on 127.0.0.1 (.streamlit/config.toml); started on 0.0.0.0 without a
password it shows no page in a real browser; with a password no page URL gets around the sign-in form.
Every connection goes to 127.0.0.1."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
SECRETS = ("CONSOLE_PASSWORD", "CONSOLE_PASSWORD_FILE", "CONSOLE_ADDRESS")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(tmp_path, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in SECRETS}
    return dict(env, CONSOLE_WORKDIR=str(tmp_path / "work"), HF_HUB_OFFLINE="1", **extra)


@pytest.mark.parametrize("address", ["0.0.0.0", "192.0.2.10", "::"])
def test_start_sh_refuses_a_network_address_without_a_password_before_any_setup(tmp_path, address):
    started = time.monotonic()
    done = subprocess.run(["./start.sh"], cwd=ROOT, env=_env(tmp_path, CONSOLE_ADDRESS=address),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr == (
        f"start.sh: CONSOLE_ADDRESS={address} opens the console to the network: set CONSOLE_PASSWORD (or "
        "CONSOLE_PASSWORD_FILE, a file readable only by you) too, or leave CONSOLE_ADDRESS unset for 127.0.0.1\n")
    assert time.monotonic() - started < 10 and not (tmp_path / "work").exists()  # setup.sh, Neo4j: not started


def test_start_sh_passes_the_address_to_streamlit():
    text = (ROOT / "start.sh").read_text()
    assert '--server.address "$CONSOLE_ADDRESS"' in text and 'CONSOLE_ADDRESS="${CONSOLE_ADDRESS:-127.0.0.1}"' in text


def _listening(port: int) -> list[str]:
    """Local addresses (hex, as /proc/net/tcp* write them) with a socket listening on ``port``."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            address, hexport = fields[1].split(":")
            if int(hexport, 16) == port and fields[3] == "0A":  # LISTEN
                found.append(address)
    return found


@pytest.fixture
def streamlit(tmp_path):
    """Start `streamlit run app.py` with extra arguments and environment; yields (url, port)."""
    procs = []

    def start(*args, **env):
        port = _free_port()
        log = open(tmp_path / f"streamlit-{port}.log", "wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port), *args],
            cwd=ROOT, env=_env(tmp_path, **env), stdout=log, stderr=subprocess.STDOUT)
        procs.append((proc, log))
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while True:
            try:
                if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                    return url, port
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail("streamlit did not start:\n" + Path(log.name).read_text())
            time.sleep(0.3)

    yield start
    for proc, log in procs:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture
def browser():
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (scripts/setup.sh --browser)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"])
        yield browser
        browser.close()


def _page_text(browser, url: str, wait_for: str) -> str:
    page = browser.new_page()
    page.set_default_timeout(60_000)
    page.goto(url)
    page.get_by_text(wait_for).first.wait_for()
    page.wait_for_timeout(1500)  # let the script run finish: nothing more may appear
    text = page.inner_text("body")
    page.close()
    return text


def test_the_console_listens_on_127_0_0_1_by_default(streamlit):
    _, port = streamlit()
    assert _listening(port) == ["0100007F"]  # 127.0.0.1 only, not 0.0.0.0 / ::


@pytest.mark.browser
def test_started_on_every_interface_without_a_password_it_shows_no_page(streamlit, browser):
    url, port = streamlit("--server.address", "0.0.0.0")
    assert "00000000" in _listening(port)
    for path in ("/", "/export_push", "/generate"):
        text = _page_text(browser, url + path, "without a password")
        assert "The console listens on 0.0.0.0 without a password, so it shows nothing: set CONSOLE_PASSWORD" in text
        for page_text in ("Upload export files", "Generate embeddings", "Export & push", "Work folder"):
            assert page_text not in text


@pytest.mark.browser
def test_a_new_servers_first_visit_to_a_page_url_still_goes_through_the_sign_in(streamlit, browser):
    """Until app.py's st.navigation has run once in a server process, Streamlit runs pages/<name>.py straight from
    its URL (its first multipage mode, for apps with a pages/ folder), without app.py: the page itself must send
    the visit back through app.py's navigation and sign-in."""
    url, _ = streamlit("--server.address", "0.0.0.0", CONSOLE_PASSWORD="s3cret")
    text = _page_text(browser, url + "/export_push", "Password")  # the very first visit of this server
    assert "Sign in" in text
    for page_text in ("Export & push", "Embeddings", "Work folder", "curation panel"):
        assert page_text not in text


@pytest.mark.browser
def test_a_first_visit_to_a_page_url_gets_the_consoles_navigation(streamlit, browser):
    url, _ = streamlit()
    text = _page_text(browser, url + "/explore", "Work folder")  # app.py's sidebar, not a listing of pages/
    assert "Export & push" in text
    for module in ("curation panel", "map view", "common"):
        assert module not in text.splitlines()


@pytest.mark.browser
def test_with_a_password_no_page_url_gets_around_the_sign_in(streamlit, browser):
    url, _ = streamlit("--server.address", "0.0.0.0", CONSOLE_PASSWORD="s3cret")
    for path in ("/", "/export_push", "/generate", "/explore", "/upload"):
        text = _page_text(browser, url + path, "Password")
        assert "Sign in" in text
        for page_text in ("Upload export files", "Generate embeddings", "Export & push", "Work folder"):
            assert page_text not in text
