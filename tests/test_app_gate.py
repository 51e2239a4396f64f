"""The console's optional password: with CONSOLE_PASSWORD (or `console_password` in Streamlit secrets) set,
nobody sees a page without it."""
from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parent.parent / "app.py")


@pytest.fixture(autouse=True)
def workdir(tmp_path, monkeypatch):
    monkeypatch.setenv("CONSOLE_WORKDIR", str(tmp_path / "work"))
    monkeypatch.delenv("CONSOLE_PASSWORD", raising=False)


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
