"""The backend served as production serves it: gunicorn with backend/gunicorn.conf.py, DEBUG off, static files
collected and served by WhiteNoise. (Every other HTTP test of the backend runs on the same server.)"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "backend"))
from recipes.testing import run_backend  # noqa: E402


@pytest.fixture(scope="module")
def server(neo4j_env, tmp_path_factory):
    log = tmp_path_factory.mktemp("server") / "backend.log"
    with run_backend(neo4j_env, log_path=log) as url:
        yield url, log


def test_it_is_gunicorn_with_threaded_workers_from_the_config_file(server):
    url, log = server
    requests.get(url + "/api/schema/", timeout=30).raise_for_status()
    text = log.read_text()
    assert "Using worker: gthread" in text
    assert text.count("Booting worker with pid") == 2  # BACKEND_WORKERS' default


def test_the_interactive_api_page_and_its_static_files_are_served(server):
    url, _ = server
    page = requests.get(url + "/api/docs/", timeout=30)
    assert page.status_code == 200 and "text/html" in page.headers["Content-Type"]
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in page.text
    script = requests.get(url + "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js", timeout=30)
    assert script.status_code == 200 and "javascript" in script.headers["Content-Type"]
    assert len(script.content) > 100_000
    assert "max-age" in script.headers.get("Cache-Control", "")  # WhiteNoise, not Django's debug static view
    redoc = requests.get(url + "/api/redoc/", timeout=30)
    assert redoc.status_code == 200 and "/static/drf_spectacular_sidecar/redoc/" in redoc.text
    schema = requests.get(url + "/api/schema/", timeout=30)
    assert schema.status_code == 200 and "/api/semantic-search/" in schema.text


def test_debug_is_off_an_unknown_url_is_a_plain_404(server):
    url, _ = server
    answer = requests.get(url + "/no-such-page/", timeout=30)
    assert answer.status_code == 404
    assert "api/semantic-search" not in answer.text and "URLconf" not in answer.text


def test_two_backends_at_once_have_control_sockets_of_their_own(neo4j_env, tmp_path):
    """gunicorn's default control socket is ~/.gunicorn/gunicorn.ctl for every server of a user: a second backend
    would take it over and, on stopping, remove the first's. Each backend has its own, and the home stays clean."""
    import re
    import time

    home = tmp_path / "home"
    home.mkdir()
    env = dict(neo4j_env, HOME=str(home), XDG_RUNTIME_DIR="", BACKEND_WORKERS="1")
    logs = [tmp_path / "first.log", tmp_path / "second.log"]
    with run_backend(env, log_path=logs[0]) as first_url:
        with run_backend(env, log_path=logs[1]) as second_url:
            sockets = [re.search(r"Control socket: (\S+)", log.read_text()).group(1) for log in logs]
            for _ in range(300):  # the master opens it just after forking the workers, in a thread
                if all(Path(s).is_socket() for s in sockets):
                    break
                time.sleep(0.1)
            assert sockets[0] != sockets[1] and all(Path(s).is_socket() for s in sockets)
            requests.get(second_url + "/api/schema/", timeout=30).raise_for_status()
        assert Path(sockets[0]).is_socket()  # the second's stop left the first's socket alone
        requests.get(first_url + "/api/schema/", timeout=30).raise_for_status()
    assert not (home / ".gunicorn").exists()
    assert not Path(sockets[0]).parent.exists() and not Path(sockets[1]).parent.exists()
