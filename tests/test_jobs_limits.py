"""Generation jobs are limited and keep secrets out: at most CONSOLE_MAX_JOBS running at once (default 1), and the
job's process environment holds none of the console's secrets. Real CLI subprocesses, real MiniLM."""
from __future__ import annotations

import contextlib
import json
from pathlib import Path

import pytest

from conftest import read_demo_recipes
from console.app import jobs
from console.app.jobs import Job, JobLimitError, JobSpec
from console.generation.models import CACHED, DOWNLOAD, LOCAL, UNAVAILABLE, model_source
from console.app.workspace import Workspace

SECRETS = {"NEO4J_PASSWORD": "neo-secret", "EMBEDDINGS_IMPORT_TOKEN": "token-secret", "CONSOLE_PASSWORD": "console-pw-secret",
           "DJANGO_SECRET_KEY": "django-secret", "HF_TOKEN": "hf-secret"}


@pytest.fixture
def ws(tmp_path, monkeypatch):
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("CONSOLE_MAX_JOBS", raising=False)
    ws = Workspace(tmp_path / "work")
    rows = read_demo_recipes("tempe", 60)
    records = [{"id": f"recipe-{i}", "type": "recipe", "text": r["Title"]} for i, r in enumerate(rows)]
    ws.save_upload("recipes.jsonl", "\n".join(json.dumps(r) for r in records).encode())
    yield ws
    for job in jobs.list_jobs(ws.runs):
        job.stop()


def _spec(ws: Workspace, model) -> JobSpec:
    return JobSpec(output_dir=str(ws.new_run_dir("minilm")), inputs=[str(ws.uploads / "recipes.jsonl")],
                   model=str(model), batch_size=2, formats=["json"])


def test_a_job_process_has_no_secret_in_its_environment(ws, minilm_path):
    job = Job.start(_spec(ws, minilm_path))
    pid = job.record()["attempts"][-1]["pid"]
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    names = {entry.split(b"=", 1)[0].decode() for entry in environ if entry}
    assert names and "PYTHONPATH" in names
    assert not names & set(SECRETS)
    assert not any(value.encode() in b"\0".join(environ) for value in SECRETS.values())


def test_a_second_run_waits_for_the_first_unless_console_max_jobs_allows_it(ws, minilm_path, monkeypatch):
    first = Job.start(_spec(ws, minilm_path))
    second = _spec(ws, minilm_path)
    with pytest.raises(JobLimitError) as err:
        Job.start(second)
    assert str(err.value) == (f"1 run(s) already running ({first.id}) and CONSOLE_MAX_JOBS allows 1 at a time: "
                              "wait for it to finish or stop it (or raise CONSOLE_MAX_JOBS)")
    assert not (Path(second.output_dir) / jobs.JOB_FILE).exists()
    monkeypatch.setenv("CONSOLE_MAX_JOBS", "2")
    assert Job.start(second).is_running()


def test_resume_is_limited_too(ws, minilm_path):
    first = Job.start(_spec(ws, minilm_path))
    assert first.stop()
    other = Job.start(_spec(ws, minilm_path))
    with pytest.raises(JobLimitError):
        first.resume()
    assert other.stop()
    first.resume()
    assert first.is_running()


def test_a_bad_console_max_jobs_says_what_to_set(ws, minilm_path, monkeypatch):
    monkeypatch.setenv("CONSOLE_MAX_JOBS", "many")
    with pytest.raises(JobLimitError, match="CONSOLE_MAX_JOBS='many' is not a number"):
        Job.start(_spec(ws, minilm_path))


def test_where_a_model_would_come_from(minilm_path, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty cache, then one cached model
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    snapshot = tmp_path / "hf" / "hub" / "models--acme--tiny" / "snapshots" / "abc"
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    (snapshot.parent.parent / "refs").mkdir()
    (snapshot.parent.parent / "refs" / "main").write_text("abc")
    import huggingface_hub.constants as hf_constants

    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    assert model_source(str(minilm_path)).kind == LOCAL
    assert model_source("minilm", env={"HF_HUB_OFFLINE": "1"}).kind == LOCAL  # the shipped model's short name
    assert model_source(" MiniLM ", env={"HF_HUB_OFFLINE": "1"}).kind == LOCAL
    assert "`minilm` (all-MiniLM-L6-v2" in model_source("all-MiniLM-L6-v2", env={"HF_HUB_OFFLINE": "1"}).message
    assert model_source("acme/tiny", env={}).kind == CACHED
    with _local_hub() as (endpoint, _):  # a hub that answers (a real server on 127.0.0.1: no network in tests)
        assert model_source("acme/other", env={"HF_ENDPOINT": endpoint}).kind == DOWNLOAD
    offline = model_source("acme/other", env={"HF_HUB_OFFLINE": "1"})
    assert (offline.kind, offline.may_start) == (UNAVAILABLE, False)
    assert model_source("acme/tiny", env={"HF_HUB_OFFLINE": "true"}).may_start


@contextlib.contextmanager
def _local_hub():
    """A real HTTP server on 127.0.0.1 answering every HEAD with 404 (a hub that is there): (endpoint, paths asked)."""
    import http.server
    import threading

    heads = []

    class Answer(http.server.BaseHTTPRequestHandler):
        def do_HEAD(self):
            heads.append(self.path)
            self.send_response(404)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Answer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", heads
    finally:
        server.shutdown()


def test_the_hub_check_sends_nothing_offline_and_is_quick_and_cached_online():
    """console.generation.models.hub_reachable: HF_HUB_OFFLINE sends no request; otherwise one HEAD to HF_ENDPOINT (a real
    local server here), its answer kept; a closed port is 'unreachable' at once."""
    import socket

    from console.generation.models import hub_reachable

    with _local_hub() as (url, heads):
        endpoint = {"HF_ENDPOINT": url}
        assert hub_reachable({**endpoint, "HF_HUB_OFFLINE": "1"}) is False and heads == []
        assert hub_reachable(endpoint) is True and hub_reachable(endpoint) is True and len(heads) == 1
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    assert hub_reachable({"HF_ENDPOINT": f"http://127.0.0.1:{closed}"}) is False
