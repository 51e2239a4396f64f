"""The console's password: with CONSOLE_PASSWORD (or CONSOLE_PASSWORD_FILE, or `console_password` in Streamlit
secrets) set, nobody sees a page without it, whatever page they ask for; wrong passwords are throttled per session
and per server process; on a non-loopback address without a password no page shows at all."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from streamlit import config
from streamlit.testing.v1 import AppTest

from console.app import access

APP = str(Path(__file__).resolve().parent.parent / "app.py")


@pytest.fixture(autouse=True)
def workdir(tmp_path, monkeypatch):
    monkeypatch.setenv("CONSOLE_WORKDIR", str(tmp_path / "work"))
    monkeypatch.delenv("CONSOLE_PASSWORD", raising=False)
    monkeypatch.delenv("CONSOLE_PASSWORD_FILE", raising=False)
    access.PROCESS_THROTTLE.reset()  # AppTest runs every session in this process
    yield
    access.PROCESS_THROTTLE.reset()


def _titles(at):
    return [t.value for t in at.title]


def test_without_a_password_the_upload_page_opens():
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert _titles(at) == ["Upload export files"]


def test_with_a_password_only_the_sign_in_form_shows(monkeypatch):
    monkeypatch.setenv("CONSOLE_PASSWORD", "s3cret")
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert _titles(at) == ["Embedding console"]
    assert [t.label for t in at.text_input] == ["Password"]
    assert [c.value for c in at.sidebar.caption] == []  # not even the work folder is shown


def test_a_wrong_password_is_refused(monkeypatch):
    monkeypatch.setenv("CONSOLE_PASSWORD", "s3cret")
    at = AppTest.from_file(APP, default_timeout=60).run()
    at.text_input[0].input("guess")
    at.button[0].click().run()
    assert [e.value for e in at.error] == ["Wrong password."]
    assert _titles(at) == ["Embedding console"]


def test_the_right_password_opens_the_console(monkeypatch):
    monkeypatch.setenv("CONSOLE_PASSWORD", "s3cret")
    at = AppTest.from_file(APP, default_timeout=60).run()
    at.text_input[0].input("s3cret")
    at.button[0].click().run()
    assert _titles(at) == ["Upload export files"]


def test_the_password_can_come_from_streamlit_secrets():
    at = AppTest.from_file(APP, default_timeout=60)
    at.secrets["console_password"] = "from-secrets"
    at.run()
    assert _titles(at) == ["Embedding console"]
    at.text_input[0].input("from-secrets")
    at.button[0].click().run()
    assert _titles(at) == ["Upload export files"]


PAGES = ["pages/upload.py", "pages/generate.py", "pages/explore.py", "pages/export_push.py"]


@pytest.mark.parametrize("page", PAGES)
def test_asking_for_a_page_before_signing_in_shows_nothing_of_it(monkeypatch, page):
    monkeypatch.setenv("CONSOLE_PASSWORD", "s3cret")
    at = AppTest.from_file(APP, default_timeout=60).run()
    with pytest.raises(ValueError, match=r"Known pages: \['Sign in'\]"):  # before sign-in no page is registered
        at.switch_page(page)
    at.run()
    assert _titles(at) == ["Embedding console"]
    assert [t.label for t in at.text_input] == ["Password"]
    assert not at.get("download_button") and not at.selectbox and not at.radio and not at.sidebar.caption


def _sign_in(at, password):
    at.text_input[0].input(password)
    return at.button[0].click().run()


def test_after_five_wrong_passwords_even_the_right_one_waits(monkeypatch):
    monkeypatch.setenv("CONSOLE_PASSWORD", "s3cret")
    at = AppTest.from_file(APP, default_timeout=60).run()
    for _ in range(access.SESSION_MAX_FAILURES):
        assert [e.value for e in _sign_in(at, "guess").error] == ["Wrong password."]
    _sign_in(at, "s3cret")
    [refused] = [e.value for e in at.error]
    assert re.fullmatch(r"Too many wrong passwords: try again in (30|29|28|27) s\.", refused)
    assert _titles(at) == ["Embedding console"]


def test_new_sessions_do_not_get_fresh_attempts_beyond_the_process_limit(monkeypatch):
    monkeypatch.setenv("CONSOLE_PASSWORD", "s3cret")
    for _ in range(access.PROCESS_THROTTLE.max_failures // access.SESSION_MAX_FAILURES):
        at = AppTest.from_file(APP, default_timeout=60).run()
        for _ in range(access.SESSION_MAX_FAILURES):
            _sign_in(at, "guess")
    fresh = _sign_in(AppTest.from_file(APP, default_timeout=60).run(), "s3cret")
    [refused] = [e.value for e in fresh.error]
    assert re.fullmatch(r"Too many wrong passwords: try again in \d+ s\.", refused)
    assert _titles(fresh) == ["Embedding console"]


def test_the_lockout_doubles_and_ends():
    now = [0.0]
    throttle = access.Throttle(max_failures=2, window_s=60, base_delay_s=30, clock=lambda: now[0])
    throttle.failed()
    assert throttle.wait_s() == 0
    throttle.failed()
    assert throttle.wait_s() == 30
    now[0] = 31
    assert throttle.wait_s() == 0
    throttle.failed()
    throttle.failed()
    assert throttle.wait_s() == 60


def test_password_comparison_is_constant_time_on_hashes():
    assert access.password_matches("s3cret", "s3cret")
    assert not access.password_matches("s3cre", "s3cret") and not access.password_matches("", "s3cret")


@pytest.fixture
def address():
    """Streamlit's server.address as `streamlit run app.py --server.address X` sets it."""
    before = config.get_option("server.address")
    yield lambda value: config.set_option("server.address", value)
    config.set_option("server.address", before)


@pytest.mark.parametrize("where", ["0.0.0.0", "192.0.2.10", "", "example.org"])
def test_a_non_loopback_address_without_a_password_shows_no_page(address, where):
    address(where)
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert _titles(at) == ["Embedding console"]
    assert [e.value for e in at.error] == [
        f"The console listens on {where or 'every network interface'} without a password, so it shows nothing: "
        f"{access.HOW_TO_SET_A_PASSWORD}."]
    with pytest.raises(ValueError, match=r"Known pages: \['Sign in'\]"):
        at.switch_page("pages/upload.py")
    assert not at.text_input


def test_a_non_loopback_address_with_a_password_asks_for_it(address, monkeypatch):
    address("0.0.0.0")
    monkeypatch.setenv("CONSOLE_PASSWORD", "s3cret")
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert [t.label for t in at.text_input] == ["Password"]
    assert _titles(_sign_in(at, "s3cret")) == ["Upload export files"]


@pytest.mark.parametrize("where", ["127.0.0.1", "127.0.0.2", "::1", "localhost"])
def test_loopback_addresses_need_no_password(address, where):
    address(where)
    assert _titles(AppTest.from_file(APP, default_timeout=60).run()) == ["Upload export files"]


def test_the_password_can_come_from_a_file_only_its_owner_reads(tmp_path, monkeypatch):
    secret = tmp_path / "console-password"
    secret.write_text("from-a-file\n")
    secret.chmod(0o600)
    monkeypatch.setenv("CONSOLE_PASSWORD_FILE", str(secret))
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert _titles(_sign_in(at, "from-a-file")) == ["Upload export files"]
    secret.chmod(0o644)
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert [e.value for e in at.error] == [
        f"The console cannot start: CONSOLE_PASSWORD_FILE={secret}: group or others may read it (mode 644): "
        f"run chmod 600 {secret}"]
    assert not at.text_input and _titles(at) == []
