"""The backend's API under 50 concurrent clients on loopback (the real backend under gunicorn, the real test Neo4j,
MiniLM vectors of real recipe titles): every request sent is answered, with status 200 and a well-formed body.

Bounded: each client sends a fixed number of requests and stops sending at a deadline; each request has a timeout.
No timing is asserted (speed is measured by bench/search.py).
"""
from __future__ import annotations

import http.client
import json
import sys
import threading
import time
import urllib.parse
from pathlib import Path

import pytest

from conftest import empty_database, read_demo_recipes

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "backend"))
from recipes.testing import run_backend  # noqa: E402

CLIENTS = 50
REQUESTS_PER_CLIENT = 8
SEND_FOR_S = 45  # no new request after this; requests already sent are still awaited
REQUEST_TIMEOUT_S = 60
QUERIES = ["ayam goreng pedas", "sup ikan kuah kuning", "tahu isi sayur", "telur balado", "tempe mendoan",
           "rendang sapi", "nasi goreng", "sambal terasi", "soto ayam", "pepes ikan"]


@pytest.fixture(scope="module")
def graph(neo4j_driver, neo4j_settings, neo4j_env, minilm_path):
    """200 real recipes as :Recipe nodes with MiniLM vectors written by the project's VectorWriter."""
    from console.generation.engine import Embedder
    from console.sinks.neo4j.settings import Neo4jSettings
    from console.sinks.neo4j.store import Neo4jStore
    from console.sinks.neo4j.writer import VectorWriter

    empty_database(neo4j_driver, neo4j_settings["database"])
    rows = []
    for name in ("ayam", "ikan", "tahu", "tempe"):
        for row in read_demo_recipes(name, limit=50):
            number = row["URL"].rsplit("/", 1)[-1].split("-", 1)[0]
            rows.append({"id": f"recipe-{number}-{name}", "title": row["Title"]})
    with Neo4jStore(Neo4jSettings.from_mapping(neo4j_settings)) as store:
        store.ensure_schema()
        store.query("UNWIND $rows AS r CREATE (:Recipe {id: r.id, title: r.title, text: r.title})", rows=rows)
        embedder = Embedder(str(minilm_path), device="cpu")
        vectors = embedder.encode([r["title"] for r in rows], batch_size=64)
        report = VectorWriter(store, model=str(minilm_path), query_prompt=embedder.query_prompt).write(
            [{"id": r["id"], "type": "recipe", "embedding": v} for r, v in zip(rows, vectors)])
    assert report.written == len(rows)
    return rows


def request_plan(rows, client: int) -> list[tuple[str, str]]:
    """(kind, path) for one client: semantic search, keyword search, item detail and similar items in turn."""
    plan = []
    for i in range(REQUESTS_PER_CLIENT):
        n = client * REQUESTS_PER_CLIENT + i
        q = urllib.parse.quote(QUERIES[n % len(QUERIES)])
        item = urllib.parse.quote(rows[n % len(rows)]["id"])
        plan.append([("semantic", f"/api/semantic-search/?q={q}&k=5"),
                     ("keyword", f"/api/keyword-search/?q={q}&k=5"),
                     ("item", f"/api/items/{item}/"),
                     ("similar", f"/api/items/{item}/similar/?k=3")][n % 4])
    return plan


def check(kind: str, path: str, status: int, body: bytes) -> str | None:
    """None when the answer is right, else what is wrong."""
    if status != 200:
        return f"{path}: HTTP {status}: {body[:300]!r}"
    try:
        data = json.loads(body)
    except ValueError:
        return f"{path}: not JSON: {body[:300]!r}"
    if kind == "semantic" and (len(data.get("results", [])) != 5 or data.get("type") != "recipe"):
        return f"{path}: expected 5 recipe results, got {data}"
    if kind == "keyword" and "results" not in data:
        return f"{path}: no results key: {data}"
    if kind == "item" and urllib.parse.unquote(path.split("/")[3]) != data.get("id"):
        return f"{path}: wrong item {data.get('id')}"
    if kind == "similar" and len(data.get("results", [])) != 3:
        return f"{path}: expected 3 similar items, got {data}"
    return None


def load(url: str, rows, clients: int = CLIENTS) -> dict:
    """Run the clients (each with its own keep-alive-free connection per request); tally what happened."""
    host, port = urllib.parse.urlparse(url).hostname, urllib.parse.urlparse(url).port
    deadline = time.monotonic() + SEND_FOR_S
    lock = threading.Lock()
    tally = {"sent": 0, "answered": 0, "problems": [], "by_kind": {}}
    start = threading.Barrier(clients)

    def client(number: int) -> None:
        start.wait()  # all clients begin together
        for kind, path in request_plan(rows, number):
            if time.monotonic() > deadline:
                return
            with lock:
                tally["sent"] += 1
            answered = False
            try:
                conn = http.client.HTTPConnection(host, port, timeout=REQUEST_TIMEOUT_S)
                conn.request("GET", path)
                response = conn.getresponse()
                body = response.read()
                answered = True
                problem = check(kind, path, response.status, body)
                conn.close()
            except Exception as exc:  # noqa: BLE001 - a refused or dropped connection is a finding, not a crash
                problem = f"{path}: {type(exc).__name__}: {exc}"
            with lock:
                tally["answered"] += answered
                tally["by_kind"][kind] = tally["by_kind"].get(kind, 0) + 1
                if problem:
                    tally["problems"].append(problem)

    threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(SEND_FOR_S + 2 * REQUEST_TIMEOUT_S)
    tally["still_running"] = sum(t.is_alive() for t in threads)
    return tally


def test_fifty_concurrent_clients_get_every_answer_right(graph, neo4j_env, tmp_path):
    with run_backend(neo4j_env, log_path=tmp_path / "backend.log") as url:
        warm = http.client.HTTPConnection(urllib.parse.urlparse(url).hostname, urllib.parse.urlparse(url).port,
                                          timeout=REQUEST_TIMEOUT_S)
        warm.request("GET", "/api/semantic-search/?q=soto&k=5")  # the query model loads once, before the load
        assert warm.getresponse().status == 200
        tally = load(url, graph)
    assert tally["problems"] == []
    assert tally["still_running"] == 0
    assert tally["sent"] >= CLIENTS  # every client got at least one request out before the deadline
    assert tally["answered"] == tally["sent"]  # no request lost
    assert set(tally["by_kind"]) == {"semantic", "keyword", "item", "similar"}


def test_fifty_concurrent_first_requests_on_a_cold_server_all_succeed(graph, neo4j_env, tmp_path):
    """The first semantic searches arrive together, while the query model is not loaded yet."""
    with run_backend(neo4j_env, log_path=tmp_path / "backend.log") as url:
        host, port = urllib.parse.urlparse(url).hostname, urllib.parse.urlparse(url).port
        results: list[str | None] = []
        lock = threading.Lock()
        start = threading.Barrier(CLIENTS)

        def first_request(n: int) -> None:
            path = f"/api/semantic-search/?q={urllib.parse.quote(QUERIES[n % len(QUERIES)])}&k=5"
            start.wait()
            try:
                conn = http.client.HTTPConnection(host, port, timeout=REQUEST_TIMEOUT_S * 2)
                conn.request("GET", path)
                response = conn.getresponse()
                problem = check("semantic", path, response.status, response.read())
            except Exception as exc:  # noqa: BLE001
                problem = f"{path}: {type(exc).__name__}: {exc}"
            with lock:
                results.append(problem)

        threads = [threading.Thread(target=first_request, args=(n,), daemon=True) for n in range(CLIENTS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(REQUEST_TIMEOUT_S * 3)
    assert len(results) == CLIENTS
    assert [p for p in results if p] == []
