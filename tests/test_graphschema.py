"""The graph is described in one file (console/graphschema.py): every bad description is refused at start with the
file, the key and what is allowed; a graph of another shape works with no code change; and outside the demo's
schema file and the demo loader, no module names the demo's labels, relationships or properties."""
from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pytest

from console.graphschema import (DEMO_SCHEMA, SchemaError, compare, load_schema, record_of, render_text,
                                 schema_from_dict, to_dict)
from console.sinks.neo4j.settings import Neo4jSettings
from console.sinks.neo4j.store import Neo4jStore
from console.sinks.neo4j.writer import VectorWriter
from other_graph import OTHER_GRAPH, build_other_graph

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "backend"))

def write(tmp_path, text: str) -> Path:
    path = tmp_path / "schema.toml"
    path.write_text(text, encoding="utf-8")
    return path


# -- every kind of bad description: the file, the key, what is allowed -------------------------------------------
BAD = [
    ('[types.recipe]\nlabel = "Recipe) DETACH DELETE (n"\n',
     "types.recipe.label: 'Recipe) DETACH DELETE (n' is not a plain identifier"),
    ('[types.recipe]\ntitle = "title"\n', "[types.recipe] has no 'label'"),
    ('[types.recipe]\nlabel = "Recipe"\nid = ""\n', "types.recipe.id: '' is not a plain identifier"),
    ('[types.recipe]\nlabel = "Recipe"\ncolour = "red"\n', "[types.recipe]: unknown key 'colour' — allowed: best,"),
    ('[types.a]\nlabel = "X"\n[types.b]\nlabel = "X"\n', "types.a.label and types.b.label are both 'X'"),
    ('[types.Recipe]\nlabel = "Recipe"\n', "[types.Recipe]: a type name is a lowercase word"),
    ('[types.recipe]\nlabel = "Recipe"\n[types.recipe.filters]\nq = { path = "-[:R]->(:C)", property = "name" }\n',
     "types.recipe.filters.q: a filter is a query parameter"),
    ('[types.recipe]\nlabel = "Recipe"\n[types.recipe.lists]\nx = { path = "-[:R]->(:C) OR 1=1", property = "n" }\n',
     "types.recipe.lists.x.path: '-[:R]->(:C) OR 1=1' is not a path"),
    ('[types.recipe]\nlabel = "Recipe"\ntext = "{title} {na-me}"\n', "types.recipe (template placeholder)"),
    ('[types.recipe]\nlabel = "Recipe"\n[types.recipe.lists]\nx = { path = "-[:R]->(:C)", property = "n", '
     'order = "random()" }\n', "types.recipe.lists.x.order: 'random()' is not an order"),
    ('types = 3\n', "no [types.<name>] table"),
    ('[types.recipe\n', "not valid TOML"),
    ('colour = 1\n[types.recipe]\nlabel = "R"\n', "the top level: unknown key 'colour'"),
]


@pytest.mark.parametrize("text, message", BAD, ids=[m[:40] for _, m in BAD])
def test_a_bad_description_is_refused_with_the_file_and_the_key(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(SchemaError) as err:
        load_schema(path)
    assert str(err.value).startswith(str(path.resolve())) and message in str(err.value)


def test_a_missing_file_says_how_to_make_one(tmp_path):
    with pytest.raises(SchemaError, match="does not exist — write one .*inspect_graph"):
        load_schema(tmp_path / "nope.toml")


def test_the_schema_file_comes_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("GRAPH_SCHEMA_FILE", str(write(tmp_path, OTHER_GRAPH)))
    assert list(load_schema().types) == ["dish", "bahan", "step"]
    monkeypatch.delenv("GRAPH_SCHEMA_FILE")
    assert load_schema().source == str(DEMO_SCHEMA.resolve())


# -- templates -------------------------------------------------------------------------------------------------
def test_the_demo_text_is_the_guide_s_sentence_form():
    recipe = load_schema().types["recipe"]
    values = {"id": "r1", "title": "Soto ayam", "description": "Rebus ayam", "ingredients": ["Ayam", "Kunyit"],
              "categories": ["Ayam"]}
    assert record_of(recipe, values)["text"] == "Soto ayam. Rebus ayam. Ingredients: Ayam, Kunyit. Categories: Ayam."
    # a piece whose placeholder is empty is left out
    assert render_text(recipe.text, {"title": "Soto", "ingredients": []}) == "Soto."


def test_a_count_takes_its_noun_in_the_singular_or_the_plural():
    ingredient = load_schema().types["ingredient"]
    one = record_of(ingredient, {"id": "i", "name": "Tempe", "uses": 1, "examples": ["Orek"], "categories": []})
    many = record_of(ingredient, {"id": "i", "name": "Tempe", "uses": 2, "examples": [], "categories": []})
    assert one["description"] == "Ingredient used in 1 recipe, such as Orek"
    assert many["description"] == "Ingredient used in 2 recipes"


def test_the_backend_s_answer_reads_back_as_the_same_schema_and_disagreements_are_named(tmp_path):
    demo = load_schema()
    assert schema_from_dict(to_dict(demo), source=demo.source) == demo
    data = to_dict(demo)
    data["types"]["recipe"]["vector_property"] = "vec"
    theirs = schema_from_dict(data, source="backend")
    assert compare(demo, theirs, ["recipe"], mine_name="mine", theirs_name="theirs") == [
        "types.recipe.vector_property is 'embedding' in mine but 'vec' in theirs"]
    assert compare(demo, load_schema(write(tmp_path, OTHER_GRAPH)), ["recipe"], mine_name="mine",
                   theirs_name="theirs") == ["type 'recipe' is not in theirs"]


# -- no demo names outside the demo's files --------------------------------------------------------------------
DEMO_NAMES = re.compile(r"\b(HAS_INGREDIENT|IN_CATEGORY|:Recipe|:Ingredient|:Category|\.loves)\b")
DEMO_FILES = {"console/demo_schema.toml", "backend/recipes/demo_data.py", "backend/recipes/testing.py"}


def test_no_module_names_the_demo_s_labels_or_relationships():
    found = []
    for path in sorted([*ROOT.glob("console/**/*.py"), *ROOT.glob("backend/**/*.py"), *ROOT.glob("pages/*.py")]):
        rel = path.relative_to(ROOT).as_posix()
        if rel in DEMO_FILES:
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if DEMO_NAMES.search(line):
                found.append(f"{rel}:{number}: {line.strip()}")
    assert found == []


def test_the_scan_finds_a_demo_name():
    assert DEMO_NAMES.search('store.read("MATCH (r:Recipe)-[:HAS_INGREDIENT]->(i)")')


# -- a graph of another shape, on real Neo4j, with no code change -----------------------------------------------
@pytest.fixture
def other_graph(neo4j_clean, neo4j_settings, tmp_path):
    schema = load_schema(write(tmp_path, OTHER_GRAPH))
    with Neo4jStore(Neo4jSettings.from_mapping(neo4j_settings), schema=schema) as store:
        yield store, build_other_graph(store)


def test_export_import_and_search_run_on_a_graph_of_another_shape(other_graph):
    from embedding_search.export import iter_records
    from embedding_search.filters import SearchFilters
    from embedding_search.search import get_item, keyword_search, vector_search

    store, rows = other_graph
    dishes = list(iter_records(store, "dish", page_size=7))
    assert [d["id"] for d in dishes] == sorted(r["code"] for r in rows)  # keyset pages over `code`, no gap
    first = next(r for r in rows if r["code"] == dishes[0]["id"])
    assert dishes[0]["text"].startswith(f"{first['nama']}.")
    assert "Bahan: " in dishes[0]["text"] and "Langkah: " + first["steps"][0] in dishes[0]["text"]
    assert len(list(iter_records(store, "step"))) == sum(len(r["steps"]) for r in rows)

    vectors = np.random.default_rng(0).normal(size=(len(dishes), 8)).astype(np.float32)
    report = VectorWriter(store, model="test-model").write(
        [{"id": d["id"], "type": "dish", "embedding": v} for d, v in zip(dishes, vectors)])
    assert report.written == len(dishes) and report.indexes_created == ["dish_vectors"]
    assert store.query("MATCH (d:Dish) WHERE d.vec IS NOT NULL RETURN count(d) AS n")[0]["n"] == len(dishes)

    hits = vector_search(store, "dish", vectors[0], k=3)
    assert hits[0]["id"] == dishes[0]["id"] and hits[0]["title"] == dishes[0]["title"]
    filters = SearchFilters.from_mapping({"bahan": "TEMPE"}, store.schema)
    with_tempe = {r["code"] for r in rows if "tempe" in r["bahan"]}
    assert {h["id"] for h in vector_search(store, "dish", vectors[0], k=5, filters=filters)} <= with_tempe
    word = first["nama"].split()[0]
    assert any(h["id"] == first["code"] for h in keyword_search(store, word, "dish", k=30))
    item = get_item(store, first["code"])
    assert (item["type"], item["title"], item["ringkasan"]) == ("dish", first["nama"], first["ringkasan"])


def test_inspect_graph_writes_a_starting_schema_that_loads(other_graph, tmp_path):
    from console.sinks.neo4j.inspect import inspect, schema_toml

    store, rows = other_graph
    text = schema_toml(inspect(store))
    assert f"# {len(rows):,} nodes; properties (fill rate, type):" in text
    assert "# related: -[:MEMAKAI]->(:Bahan)" in text
    path = tmp_path / "start.toml"
    path.write_text(text, encoding="utf-8")
    started = load_schema(path)
    assert set(started.types) == {"dish", "bahan", "step"}
    assert (started.types["dish"].label, started.types["dish"].id, started.types["dish"].title) == ("Dish", "code",
                                                                                                    "nama")


def test_a_push_through_a_backend_with_another_schema_stops_before_anything_is_sent(tmp_path):
    """The backend answers GET /api/graph-schema/ with a schema whose recipe vectors live elsewhere: the push
    names both schemas and never POSTs."""
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from console.sinks.push import PushError, push_to_backend

    theirs = to_dict(load_schema())
    theirs["types"]["recipe"]["vector_index"] = "recipe_vectors_v2"
    posts = []

    class Backend(BaseHTTPRequestHandler):
        def do_GET(self):
            body = json.dumps(theirs).encode()
            self.send_response(200 if self.path == "/api/graph-schema/" else 404)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self):
            posts.append(self.path)
            self.send_response(500)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Backend)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/api/embeddings/import/"
        items = [{"id": "recipe-1", "type": "recipe", "embedding": [0.1, 0.2]}]
        with pytest.raises(PushError) as err:
            push_to_backend(items, url, "token", model="m")
    finally:
        server.shutdown()
    assert posts == []
    assert "types.recipe.vector_index is 'recipe_embedding' in the console's schema (" in str(err.value)
    assert f"but 'recipe_vectors_v2' in the backend's (http://127.0.0.1:{server.server_port}/api/graph-schema/)" \
        in str(err.value)
