"""console.sinks.push: one call pushes vectors into the real test Neo4j, straight over Bolt or through the backend."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest

from conftest import read_demo_recipes
from console.errors import Neo4jUnavailable
from console.sinks.neo4j.settings import Neo4jSettings
from console.sinks.push import PushError, push_to_backend, push_to_neo4j

DIMS = 8
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def recipe_ids(neo4j_clean):
    ids = [f"recipe-{r['URL'].rsplit('/', 1)[-1].split('-', 1)[0]}" for r in read_demo_recipes("ikan", limit=25)]
    neo4j_clean.execute_query("UNWIND $ids AS id CREATE (:Recipe {id: id})", ids=ids)
    return ids


def items_for(ids, seed=1):
    rng = np.random.default_rng(seed)
    return [{"id": i, "type": "recipe", "embedding": rng.standard_normal(DIMS).astype(np.float32)} for i in ids]


def test_push_to_neo4j_writes_then_counts_unchanged_on_a_second_press(recipe_ids, neo4j_settings):
    items = items_for(recipe_ids)
    first = push_to_neo4j(items, neo4j_settings, model="m", batch_size=10)
    second = push_to_neo4j(items, neo4j_settings, model="m", batch_size=10)
    assert (first.written, first.unchanged, second.written, second.unchanged) == (25, 0, 0, 25)


def test_push_to_neo4j_dry_run_previews_without_writing(recipe_ids, neo4j_settings, neo4j_clean):
    report = push_to_neo4j(items_for(recipe_ids + ["recipe-1"]), neo4j_settings, model="m", dry_run=True)
    assert report.to_dict()["written"] == 25 and report.unknown_ids == ["recipe-1"] and report.dry_run
    count = neo4j_clean.execute_query("MATCH (n) WHERE n.embedding IS NOT NULL RETURN count(n) AS c").records[0]["c"]
    assert count == 0


def test_push_to_neo4j_reads_settings_from_env_and_reports_progress(recipe_ids):
    calls = []
    push_to_neo4j(items_for(recipe_ids), model="m", batch_size=20, progress=lambda d, t: calls.append((d, t)))
    assert calls == [(20, 25), (25, 25)]


def test_push_to_neo4j_follows_the_vector_index_being_built(recipe_ids):
    calls = []
    push_to_neo4j(items_for(recipe_ids), model="m", index_progress=lambda *call: calls.append(call))
    assert calls[-1] == ("recipe_embedding", "ONLINE", 100.0)


def test_push_without_a_model_name_asks_for_it(recipe_ids, neo4j_settings):
    with pytest.raises(PushError) as err:
        push_to_neo4j(items_for(recipe_ids), neo4j_settings)
    assert str(err.value) == (
        "the input does not say which model made the vectors (no .meta.json beside it): pass the model name, "
        "so that semantic search embeds queries with the same model"
    )


def test_push_to_an_unreachable_neo4j_says_so():
    with pytest.raises(Neo4jUnavailable) as err:
        push_to_neo4j(items_for(["recipe-1"]), Neo4jSettings(uri="bolt://127.0.0.1:9", password="x"), model="m")
    assert str(err.value).startswith("Cannot reach Neo4j at bolt://127.0.0.1:9: is it running?")


class CuttingProxy:
    """A TCP proxy in front of the test Neo4j that drops every connection and stops listening once the client has
    sent ``cut_after`` bytes: Neo4j going away in the middle of a push, as when its process is killed."""

    def __init__(self, upstream: tuple[str, int], cut_after: int):
        self.upstream, self.cut_after, self.sent = upstream, cut_after, 0
        self.lock, self.sockets = threading.Lock(), []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.upstream)
            with self.lock:
                self.sockets += [client, server]
            threading.Thread(target=self._pump, args=(client, server, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, False), daemon=True).start()

    def _pump(self, src, dst, counted):
        try:
            while data := src.recv(65536):
                if counted:
                    with self.lock:
                        self.sent += len(data)
                        cut = self.sent > self.cut_after
                    if cut:
                        return self.cut()
                dst.sendall(data)
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def cut(self):
        for sock in [self.listener, *self.sockets]:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()


PUSH_AND_PRINT_THE_ERROR = """
import sys
import numpy as np
from console.errors import Neo4jStoreError
from console.sinks.push import push_to_neo4j
rng = np.random.default_rng(0)
items = [{"id": f"recipe-t{i}", "type": "recipe", "embedding": rng.standard_normal(256).astype(np.float32)}
         for i in range(400)]
try:
    push_to_neo4j(items, model="m", batch_size=100)
except Neo4jStoreError as exc:
    print(f"error: {exc}", file=sys.stderr)
    sys.exit(1)
"""


def test_neo4j_going_away_mid_push_shows_our_message_only(neo4j_clean, neo4j_env):
    neo4j_clean.execute_query("UNWIND range(0, 399) AS i CREATE (:Recipe {id: 'recipe-t' + i})")
    upstream = urlsplit(neo4j_env["NEO4J_URI"])
    # ~150 KB: past the handshake and the schema queries, inside the first batch of 100 x 256 floats (~230 KB)
    proxy = CuttingProxy((upstream.hostname, upstream.port), cut_after=150_000)
    uri = f"bolt://127.0.0.1:{proxy.port}"
    proc = subprocess.run([sys.executable, "-c", PUSH_AND_PRINT_THE_ERROR], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, **neo4j_env, "NEO4J_URI": uri, "PYTHONPATH": str(ROOT)}, timeout=120)
    assert proxy.sent > proxy.cut_after  # the connection was cut in the middle of the writes
    assert (proc.returncode, proc.stderr) == (1, (
        f"error: Cannot reach Neo4j at {uri}: is it running? Start it with scripts/neo4j.sh start or set NEO4J_URI\n"
    ))


def _embedded_ids(driver) -> set[str]:
    return {r["id"] for r in driver.execute_query("MATCH (n) WHERE n.embedding IS NOT NULL RETURN n.id AS id").records}


def test_push_to_neo4j_leaves_the_excluded_items_out_and_counts_them(recipe_ids, neo4j_settings, neo4j_clean):
    calls = []
    report = push_to_neo4j(iter(items_for(recipe_ids)), neo4j_settings, model="m", batch_size=10,
                           exclude={recipe_ids[0], recipe_ids[7], "recipe-elsewhere"},
                           progress=lambda d, t: calls.append((d, t)))
    assert (report.total, report.written, report.excluded) == (23, 23, 2)
    assert report.summary() == "23 vectors: 23 written, 0 unchanged, 0 unknown ids, 0 rejected; 2 excluded items left out"
    assert calls[-1] == (23, 23)  # the progress counts without them
    assert _embedded_ids(neo4j_clean) == set(recipe_ids) - {recipe_ids[0], recipe_ids[7]}


def _vectors(driver) -> dict[str, tuple]:
    """Id -> (hash, time written) of every recipe holding a vector."""
    return {r["id"]: (r["hash"], r["at"]) for r in driver.execute_query(
        "MATCH (n:Recipe) WHERE n.embedding IS NOT NULL "
        "RETURN n.id AS id, n.embedding_hash AS hash, toString(n.embedding_updated_at) AS at").records}


def _index_hits(driver, vector) -> set[str]:
    """What semantic search finds: the ids the vector index returns for ``vector`` (all 25 asked)."""
    return {r["id"] for r in driver.execute_query(
        "CALL db.index.vector.queryNodes('recipe_embedding', 25, $v) YIELD node RETURN node.id AS id",
        v=[float(x) for x in vector]).records}


def test_items_excluded_after_a_push_lose_their_vector_and_get_it_back_when_undone(recipe_ids, neo4j_settings,
                                                                                   neo4j_clean):
    """push all -> exclude 2 -> push again: those 2 hold no vector (nor its metadata) and the index no longer finds
    them, the others are untouched; a dry run only counts; the exclusion undone, the next push writes them again."""
    items = items_for(recipe_ids)
    push_to_neo4j(items, neo4j_settings, model="m", batch_size=10)
    before = _vectors(neo4j_clean)
    out = {recipe_ids[3], recipe_ids[11]}
    exclude = out | {"recipe-elsewhere"}  # an id of no item: neither counted nor cleared
    preview = push_to_neo4j(items, neo4j_settings, model="m", batch_size=10, exclude=exclude, dry_run=True)
    assert preview.summary() == ("23 vectors: 0 would write, 23 unchanged, 0 unknown ids, 0 rejected; 2 excluded "
                                 "items left out, 2 of their vectors would be removed from Neo4j")
    assert _vectors(neo4j_clean) == before
    report = push_to_neo4j(items, neo4j_settings, model="m", batch_size=10, exclude=exclude)
    assert (report.written, report.unchanged, report.excluded, report.cleared) == (0, 23, 2, 2)
    assert report.summary().endswith("; 2 excluded items left out, 2 of their vectors removed from Neo4j")
    assert report.to_dict()["cleared"] == 2
    keys = neo4j_clean.execute_query("MATCH (n:Recipe) WHERE n.id IN $ids RETURN keys(n) AS k", ids=list(out)).records
    assert [r["k"] for r in keys] == [["id"], ["id"]]
    assert _vectors(neo4j_clean) == {i: v for i, v in before.items() if i not in out}
    assert _index_hits(neo4j_clean, items[3]["embedding"]) == set(recipe_ids) - out
    again = push_to_neo4j(items, neo4j_settings, model="m", exclude=exclude)
    assert (again.unchanged, again.excluded, again.cleared) == (23, 2, 0)
    undone = push_to_neo4j(items, neo4j_settings, model="m")
    assert (undone.written, undone.unchanged, undone.cleared) == (2, 23, 0)
    assert set(_vectors(neo4j_clean)) == set(recipe_ids)
    assert _index_hits(neo4j_clean, items[3]["embedding"]) == set(recipe_ids)


# -- through the backend's import endpoint (the real backend under gunicorn) ----------------------------------------------------
TOKEN = "push-test-token"


@pytest.fixture(scope="module")
def backend_url(neo4j_env, tmp_path_factory):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "backend"))
    from recipes.testing import run_backend

    log = tmp_path_factory.mktemp("push-backend") / "backend.log"
    with run_backend({**neo4j_env, "EMBEDDINGS_IMPORT_TOKEN": TOKEN}, log_path=log) as url:
        yield url + "/api/embeddings/import/"


def test_push_to_backend_writes_in_batches_then_counts_unchanged(recipe_ids, backend_url, neo4j_clean):
    calls = []
    first = push_to_backend(items_for(recipe_ids), backend_url, TOKEN, model="m", batch_size=10,
                            progress=lambda d, t: calls.append((d, t)))
    assert (first.written, first.unchanged, first.unknown_ids, first.rejected) == (25, 0, [], [])
    assert calls == [(10, 25), (20, 25), (25, 25)]
    assert first.indexes_created == ["recipe_embedding"]  # created once, with the first batch
    second = push_to_backend(items_for(recipe_ids), backend_url, TOKEN, model="m", batch_size=10)
    assert (second.written, second.unchanged) == (0, 25)


def test_push_to_backend_dry_run_and_bad_vectors(recipe_ids, backend_url, neo4j_clean):
    items = items_for(recipe_ids[:3] + ["recipe-1"])
    items[1]["embedding"] = items[1]["embedding"].copy()
    items[1]["embedding"][2] = np.nan
    report = push_to_backend(items, backend_url, TOKEN, model="m", dry_run=True)
    assert (report.written, report.unknown_ids, report.dry_run) == (2, ["recipe-1"], True)
    assert report.rejected == [
        {"id": recipe_ids[1], "reason": "'embedding' has a non-finite value (NaN or infinity) at position 2"}]
    count = neo4j_clean.execute_query("MATCH (n) WHERE n.embedding IS NOT NULL RETURN count(n) AS c").records[0]["c"]
    assert count == 0


def test_push_to_backend_counts_every_rejection_although_the_backend_lists_the_first_100(
        recipe_ids, backend_url, neo4j_clean):
    items = items_for([f"{recipe_ids[0]}-{n}" for n in range(150)])
    for item in items:
        item["embedding"][0] = np.nan
    report = push_to_backend(items, backend_url, TOKEN, model="m", dry_run=True, batch_size=150)
    assert (len(report.rejected), report.count_rejected()) == (100, 150)
    assert report.summary().endswith("150 rejected") and report.to_dict()["rejected_count"] == 150


def test_push_to_backend_with_a_wrong_token_says_which_setting(recipe_ids, backend_url):
    with pytest.raises(PushError) as err:
        push_to_backend(items_for(recipe_ids), backend_url, "wrong", model="m")
    assert str(err.value) == (f"The backend at {backend_url} refused the token (HTTP 403): use the value of its "
                              "EMBEDDINGS_IMPORT_TOKEN setting")


def test_push_to_an_unreachable_backend_says_so():
    url = "http://127.0.0.1:9/api/embeddings/import/"
    with pytest.raises(PushError) as err:
        push_to_backend(items_for(["recipe-1"]), url, "t", model="m")
    assert str(err.value) == (f"Cannot reach the backend at {url}: is it running (./start.sh --demo, or gunicorn "
                              "-c backend/gunicorn.conf.py)? Check the URL")


def test_push_from_an_embedding_file_takes_the_model_from_its_metadata(recipe_ids, backend_url, neo4j_settings,
                                                                       neo4j_clean, tmp_path):
    from console.files.embfiles import EmbeddedItem, make_meta, write_embeddings

    items = [EmbeddedItem(id=i["id"], type="recipe", text="t", embedding=i["embedding"]) for i in
             items_for(recipe_ids)]
    meta = make_meta(model="sentence-transformers/all-MiniLM-L6-v2", dimensions=DIMS, normalized=True,
                     dtype="float32", count=len(items), type_="recipe", query_prompt="Query: ")
    path = [p for p in write_embeddings(tmp_path, "recipe", items, formats=("jsonl",), meta=meta)
            if p.suffix == ".jsonl"][0]
    report = push_to_backend(path, backend_url, TOKEN, batch_size=10)
    assert report.written == 25
    again = push_to_neo4j(path, neo4j_settings)
    assert again.unchanged == 25  # same model, same vectors: the two routes agree on what is already there
    space = neo4j_clean.execute_query("MATCH (s:EmbeddingSpace {type: 'recipe'}) RETURN s.model AS m, "
                                      "s.query_prompt AS p").records[0]
    assert (space["m"], space["p"]) == ("sentence-transformers/all-MiniLM-L6-v2", "Query: ")


def test_push_to_backend_does_not_send_the_excluded_items(recipe_ids, backend_url, neo4j_clean):
    report = push_to_backend(items_for(recipe_ids), backend_url, TOKEN, model="m", batch_size=10,
                             exclude=recipe_ids[:5])
    assert (report.total, report.written, report.unknown_count, report.excluded) == (20, 20, 0, 5)
    assert report.summary().endswith("; 5 excluded items left out")
    assert _embedded_ids(neo4j_clean) == set(recipe_ids[5:])


def test_push_to_backend_has_the_backend_clear_the_vectors_of_excluded_items(recipe_ids, backend_url, neo4j_clean):
    """22 excluded of 25, 10 to a request: the first 10 exclusions go with the items' batch, the rest alone."""
    items = items_for(recipe_ids)
    push_to_backend(items, backend_url, TOKEN, model="m", batch_size=10)
    calls = []
    preview = push_to_backend(items, backend_url, TOKEN, model="m", batch_size=10, exclude=recipe_ids[:22],
                              dry_run=True, progress=lambda d, t: calls.append((d, t)))
    assert (preview.total, preview.unchanged, preview.excluded, preview.cleared) == (3, 3, 22, 22)
    assert calls == [(3, 3)] * 3 and len(_embedded_ids(neo4j_clean)) == 25
    report = push_to_backend(items, backend_url, TOKEN, model="m", batch_size=10, exclude=recipe_ids[:22])
    assert report.summary() == ("3 vectors: 0 written, 3 unchanged, 0 unknown ids, 0 rejected; 22 excluded items "
                                "left out, 22 of their vectors removed from Neo4j")
    assert _embedded_ids(neo4j_clean) == set(recipe_ids[22:])
    undone = push_to_backend(items, backend_url, TOKEN, model="m", batch_size=10)
    assert (undone.written, undone.unchanged) == (22, 3)
