"""Always current (issue 25 part 1): the nodes whose vector is missing, made by another model, older than their
text, or marked changed by the host app are found and embedded again with the type's recorded model, straight
from Neo4j to Neo4j; a sync stopped or killed at any point and run again redoes no finished batch and leaves no
gap; two syncs at once never embed the same node twice; a deleted node takes its vector with it. On real Neo4j,
on the graph of another shape (tests/other_graph.py), described only by its schema file."""
from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from console.graphschema import load_schema
from console.sinks.neo4j import sync
from console.sinks.neo4j.settings import Neo4jSettings
from console.sinks.neo4j.store import Neo4jStore
from console.sinks.neo4j.writer import VectorWriter
from other_graph import OTHER_GRAPH, build_other_graph

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "backend"))
MODEL = "test-hash-model"


class HashEncoder:
    """A deterministic stand-in for a model in the core's tests (the encoder is the sync's parameter): 16-d vectors
    from each text's hash, and a log of every text it was asked for, to count what was embedded."""

    def __init__(self):
        self.texts: list[str] = []

    def __call__(self, texts):
        self.texts.extend(texts)
        rows = [np.frombuffer(hashlib.blake2b(t.encode(), digest_size=64).digest(), dtype=np.uint8)[:16]
                for t in texts]
        vectors = np.asarray(rows, dtype=np.float32) - 127.5
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


@pytest.fixture
def graph(neo4j_clean, neo4j_settings, tmp_path):
    """The other-shape graph with every dish embedded from its exported text, but the last three."""
    from embedding_search.export import iter_records

    path = tmp_path / "graph.toml"
    path.write_text(OTHER_GRAPH, encoding="utf-8")
    with Neo4jStore(Neo4jSettings.from_mapping(neo4j_settings), schema=load_schema(path)) as store:
        rows = build_other_graph(store)
        dishes = list(iter_records(store, "dish"))
        encode = HashEncoder()
        vectors = encode([d["text"] for d in dishes[:-3]])
        VectorWriter(store, model=MODEL).write(
            [{**d, "embedding": v} for d, v in zip(dishes, vectors)])
        yield store, dishes, path


def ids_of(store, texts):
    """The dish ids whose current text is in ``texts``."""
    from embedding_search.export import iter_records

    return {d["id"] for d in iter_records(store, "dish") if d["text"] in set(texts)}


def test_freshness_counts_each_state_and_a_sync_embeds_exactly_the_out_of_date_nodes(graph):
    store, dishes, _ = graph
    assert vars(sync.freshness(store, "dish")) == {
        "type": "dish", "model": MODEL, "nodes": 30, "current": 27, "stale": 0, "missing": 3, "other_model": 0,
        "marked": 0}
    store.query("MATCH (d:Dish) WHERE d.code IN ['D000', 'D001'] SET d.ringkasan = d.ringkasan + ' (diubah)'")
    store.query("MATCH (d:Dish {code: 'D002'}) SET d.embedding_model = 'an-older-model', d.embedding_hash = 'made-by-it'")
    assert sync.mark_changed(store, "dish", ["D003", "no-such-dish"]) == 1
    counts = sync.freshness(store, "dish")
    assert (counts.current, counts.stale, counts.missing, counts.other_model, counts.marked) == (24, 2, 3, 1, 1)

    encode = HashEncoder()
    report = sync.sync_type(store, "dish", encode, model=MODEL, batch_size=4)
    assert report.found == {"marked": 1, "missing": 3, "other model": 1, "stale": 2}
    assert ids_of(store, encode.texts) == {"D000", "D001", "D002", "D003", *(d["id"] for d in dishes[-3:])}
    assert len(encode.texts) == 7 and encode.texts[0] == next(d["text"] for d in dishes if d["id"] == "D003")
    after = sync.freshness(store, "dish")
    assert (after.current, after.out_of_date, after.marked) == (30, 0, 0)
    again = HashEncoder()
    assert sync.sync_type(store, "dish", again, model=MODEL).found == dict.fromkeys(sync.REASONS, 0)
    assert again.texts == []


def test_a_stopped_sync_resumes_without_redoing_a_batch_or_leaving_a_gap(graph):
    store, dishes, _ = graph
    store.query("MATCH (d:Dish) SET d.ringkasan = d.ringkasan + ' !'")  # every text changed: 27 stale, 3 missing
    first = HashEncoder()
    stopped = sync.sync_type(store, "dish", first, model=MODEL, batch_size=5, should_stop=lambda: True)
    assert stopped.stopped and len(first.texts) == 5
    second = HashEncoder()
    sync.sync_type(store, "dish", second, model=MODEL, batch_size=5)
    assert len(second.texts) == 25 and not set(first.texts) & set(second.texts)
    assert ids_of(store, first.texts + second.texts) == {d["id"] for d in dishes}
    assert sync.freshness(store, "dish").current == 30


def test_a_dry_run_counts_and_embeds_nothing(graph):
    store, _, _ = graph
    encode = HashEncoder()
    report = sync.sync_type(store, "dish", encode, model=MODEL, dry_run=True)
    assert report.found["missing"] == 3 and encode.texts == []
    assert sync.freshness(store, "dish").missing == 3


def test_a_second_sync_of_the_same_type_is_refused_while_the_first_holds_the_lease(graph):
    store, _, _ = graph
    encode = HashEncoder()
    with sync.lease(store, "dish", owner="other-host:1:abc"):
        with pytest.raises(sync.SyncBusy, match=r"Another sync of dish is running \(other-host:1:abc; its lease"):
            sync.sync_type(store, "dish", encode, model=MODEL)
    assert encode.texts == []
    sync.sync_type(store, "dish", encode, model=MODEL)  # released: the next one runs
    assert len(encode.texts) == 3


def test_the_lease_of_a_killed_sync_on_this_machine_is_taken_over(graph):
    import socket

    store, _, _ = graph
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    sync.take_lease(store, "dish", f"{socket.gethostname()}:{dead.pid}:deadbeef")
    encode = HashEncoder()
    sync.sync_type(store, "dish", encode, model=MODEL)
    assert len(encode.texts) == 3


def test_the_sync_s_lease_is_not_offered_as_a_type_of_the_user_s_graph(graph):
    from console.sinks.neo4j.inspect import inspect

    store, _, _ = graph
    sync.sync_type(store, "dish", HashEncoder(), model=MODEL)
    assert store.query("MATCH (l:EmbeddingSyncLease) RETURN count(l) AS n")[0]["n"] == 1
    assert {i.label for i in inspect(store).labels} == {"Dish", "Bahan", "Step"}


def test_a_deleted_node_takes_its_vector_with_it(graph):
    from embedding_search.search import vector_search

    store, dishes, _ = graph
    query = HashEncoder()([dishes[0]["text"]])[0]
    assert vector_search(store, "dish", query, k=1)[0]["id"] == dishes[0]["id"]
    store.query("MATCH (d:Dish {code: $id}) DETACH DELETE d", id=dishes[0]["id"])
    assert dishes[0]["id"] not in {h["id"] for h in vector_search(store, "dish", query, k=30)}
    counts = sync.freshness(store, "dish")
    assert (counts.nodes, counts.missing) == (29, 3)


# -- the backend's command, with a real model, killed and run again -------------------------------------------------
@pytest.fixture
def embedded_graph(neo4j_clean, neo4j_settings, neo4j_env, tmp_path, minilm_path):
    """The other-shape graph, exported and imported with MiniLM through the backend's own commands."""
    from recipes.testing import manage

    path = tmp_path / "graph.toml"
    path.write_text(OTHER_GRAPH, encoding="utf-8")
    env = {**neo4j_env, "GRAPH_SCHEMA_FILE": str(path), "HF_HUB_OFFLINE": "1"}
    with Neo4jStore(Neo4jSettings.from_mapping(neo4j_settings), schema=load_schema(path)) as store:
        rows = build_other_graph(store, limit=200)
        manage("export_data_for_embeddings", "--output-dir", str(tmp_path / "export"), "--type", "dish", env=env)
        subprocess.run([sys.executable, str(ROOT / "external_embedding_generator.py"), "--input-dir",
                        str(tmp_path / "export"), "--output-dir", str(tmp_path / "out"), "--model", str(minilm_path)],
                       check=True, capture_output=True, env={**os.environ, **env})
        manage("import_embeddings", "--embedding-file", str(tmp_path / "out" / "embeddings_dish.json"), env=env)
        yield store, rows, env


def test_the_command_embeds_an_edit_with_the_recorded_model_and_a_kill_loses_nothing(embedded_graph):
    from recipes.testing import MANAGE, manage

    store, rows, env = embedded_graph
    assert sync.freshness(store, "dish").current == len(rows)  # the import stored each vector's text hash
    store.query("MATCH (d:Dish) SET d.ringkasan = 'sambal matah kemangi segar ' + d.code")
    dry = manage("sync_embeddings", "--type", "dish", "--dry-run", env=env)
    assert f"dish: {len(rows)} stale; would embed {len(rows)}" in dry.stdout

    proc = subprocess.Popen([sys.executable, str(MANAGE), "sync_embeddings", "--type", "dish", "--batch-size", "2"],
                            env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while sync.freshness(store, "dish").stale > len(rows) - 8 and time.monotonic() < deadline:
        time.sleep(0.2)  # killed once two batches have landed
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    left = sync.freshness(store, "dish").stale
    assert 0 < left <= len(rows) - 8, "the kill came too late to test a resume"
    again = manage("sync_embeddings", "--type", "dish", env=env)
    assert f"dish: {left} stale; embedded {left} with" in again.stdout
    assert sync.freshness(store, "dish").current == len(rows)
    answer = store.query("MATCH (s:EmbeddingSpace {type: 'dish'}) RETURN s.model AS model")[0]["model"]
    assert again.stdout.strip().endswith(answer)


def test_the_console_s_cli_syncs_on_its_own_machine(embedded_graph, minilm_path):
    store, rows, env = embedded_graph
    store.query("MATCH (d:Dish) WHERE d.code IN ['D001', 'D002'] SET d.ringkasan = 'opor ayam kuning'")
    proc = subprocess.run([sys.executable, "-m", "console.cli", "sync", "--type", "dish", "--device", "cpu"],
                          cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"dish: 2 stale; embedded 2 with {minilm_path}"
    assert sync.freshness(store, "dish").current == len(rows)
