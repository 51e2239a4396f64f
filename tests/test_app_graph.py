"""The console's Graph page: the graph schema in use, type by type, and a starting schema read from the configured
Neo4j (the same file as `manage.py inspect_graph`), to download and edit."""
from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from console.graphschema import load_schema
from console.sinks.neo4j.settings import Neo4jSettings
from console.sinks.neo4j.store import Neo4jStore
from other_graph import OTHER_GRAPH, build_other_graph

import sys

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "backend"))
APP = str(Path(__file__).resolve().parent.parent / "app.py")


@pytest.fixture
def console(tmp_path, monkeypatch):
    monkeypatch.setenv("CONSOLE_WORKDIR", str(tmp_path / "work"))
    monkeypatch.delenv("CONSOLE_PASSWORD", raising=False)
    at = AppTest.from_file(APP, default_timeout=60).run()
    at.switch_page("pages/graph.py")
    return at


def test_the_page_lists_the_schema_s_types(console, tmp_path, monkeypatch):
    schema = tmp_path / "graph.toml"
    schema.write_text(OTHER_GRAPH, encoding="utf-8")
    monkeypatch.setenv("GRAPH_SCHEMA_FILE", str(schema))
    at = console.run()
    assert not at.exception
    table = at.dataframe[0].value.set_index("type")
    assert list(table.index) == ["dish", "bahan", "step"]
    assert (table.loc["dish", "label"], table.loc["dish", "id"], table.loc["dish", "vector"],
            table.loc["dish", "filters"]) == ("Dish", "code", "vec (dish_vectors)", "bahan")
    assert str(schema) in at.caption[0].value


def test_a_bad_schema_file_is_named_on_the_page(console, tmp_path, monkeypatch):
    schema = tmp_path / "graph.toml"
    schema.write_text('[types.recipe]\nlabel = "Recipe) DETACH DELETE (n"\n', encoding="utf-8")
    monkeypatch.setenv("GRAPH_SCHEMA_FILE", str(schema))
    at = console.run()
    assert "is not a plain identifier" in at.error[0].value and str(schema) in at.error[0].value


def test_reading_the_configured_graph_gives_a_starting_schema(console, neo4j_clean, neo4j_settings, tmp_path):
    schema = load_schema(_write(tmp_path, OTHER_GRAPH))
    with Neo4jStore(Neo4jSettings.from_mapping(neo4j_settings), schema=schema) as store:
        rows = build_other_graph(store)
    at = console.run()
    at.button[0].click().run()
    assert not at.exception
    labels = at.dataframe[1].value.set_index("label")
    assert labels.loc["Dish", "nodes"] == len(rows) and "MEMAKAI -> Bahan" in labels.loc["Dish", "relationships out"]
    text = at.code[0].value
    started = load_schema(_write(tmp_path, text, "start.toml"))
    assert set(started.types) == {"dish", "bahan", "step"} and started.types["dish"].id == "code"


def test_an_unreachable_neo4j_is_said_on_the_page(console, monkeypatch):
    from recipes.testing import free_port

    monkeypatch.setenv("NEO4J_URI", f"bolt://127.0.0.1:{free_port()}")
    monkeypatch.setenv("NEO4J_PASSWORD", "x")
    at = console.run()
    at.button[0].click().run()
    assert not at.exception and at.error and "127.0.0.1" in at.error[0].value


def _write(tmp_path, text: str, name: str = "graph.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def embedded(neo4j_clean, neo4j_settings, tmp_path, monkeypatch, minilm_path):
    """The other-shape graph, its dishes embedded with MiniLM (as a push would leave them), the console pointed at
    its schema file."""
    from console.generation.engine import Embedder
    from console.sinks.neo4j.writer import VectorWriter
    from embedding_search.export import iter_records

    path = _write(tmp_path, OTHER_GRAPH)
    monkeypatch.setenv("GRAPH_SCHEMA_FILE", str(path))
    with Neo4jStore(Neo4jSettings.from_mapping(neo4j_settings), schema=load_schema(path)) as store:
        build_other_graph(store)
        dishes = list(iter_records(store, "dish"))
        vectors = Embedder(str(minilm_path), device="cpu").encode_document([d["text"] for d in dishes])
        VectorWriter(store, model=str(minilm_path)).write([{**d, "embedding": v} for d, v in zip(dishes, vectors)])
        yield store, dishes


def test_freshness_is_counted_and_what_is_out_of_date_is_embedded_here(console, embedded):
    store, dishes = embedded
    store.query("MATCH (d:Dish {code: 'D004'}) SET d.ringkasan = 'gulai nangka muda'")
    at = console.run()
    next(b for b in at.button if b.label == "Count").click().run()
    assert not at.exception
    rows = {r["type"]: r for r in at.dataframe[-1].value.to_dict("records")}
    assert (rows["dish"]["nodes"], rows["dish"]["current"], rows["dish"]["stale"], rows["dish"]["out of date"]) == (
        30, 29, 1, 1)
    assert rows["step"]["model"] == ""  # never embedded: nothing to sync it with
    next(b for b in at.button if b.label.startswith("Embed what is out of date")).click().run(timeout=180)
    assert not at.exception
    assert at.success[-1].value.startswith("dish: 1 stale; embedded 1 with ")
    rows = {r["type"]: r for r in at.dataframe[-1].value.to_dict("records")}
    assert (rows["dish"]["current"], rows["dish"]["out of date"]) == (30, 0)
