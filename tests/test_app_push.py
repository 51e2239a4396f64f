"""The Export & push page: downloads, and a one-click push into the real test Neo4j (or the backend) with a
dry-run preview first, a connection test, progress, counts, safe to press twice, and clear errors."""
from __future__ import annotations

import json
import shutil
import socket
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from conftest import read_demo_recipes
from console.cli import main as cli
from console.files.embfiles import read_embeddings
from console.sinks.push import push_to_neo4j
from console.app.workspace import Workspace

APP = str(Path(__file__).resolve().parent.parent / "app.py")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, minilm_path):
    ws = Workspace(tmp_path_factory.mktemp("push") / "work")
    records = [{"id": f"recipe-{r['URL'].rstrip('/').split('/')[-1].split('-')[0]}", "type": "recipe",
                "title": r["Title"], "text": f"{r['Title']}. Ingredients: {r['Ingredients'].replace('--', ', ')}"}
               for r in read_demo_recipes("telur", 40)]
    upload = ws.save_upload("recipes.json", json.dumps(records).encode())
    run = ws.new_run_dir("minilm")
    assert cli(["generate", "--input", str(upload), "--output-dir", str(run), "--model", str(minilm_path),
                "--format", "json", "--quiet"]) == 0
    return run


@pytest.fixture
def ids(run_dir):
    return [item.id for item in read_embeddings(run_dir / "embeddings_recipes.json")]


@pytest.fixture
def graph(neo4j_clean):
    """An empty test database with NEO4J_* set."""
    return neo4j_clean


@pytest.fixture
def at(run_dir, graph, monkeypatch):
    monkeypatch.setenv("CONSOLE_WORKDIR", str(run_dir.parent.parent))
    monkeypatch.delenv("CONSOLE_PASSWORD", raising=False)
    app = AppTest.from_file(APP, default_timeout=120).run()
    return app.switch_page("pages/export_push.py").run()


def _recipes_in_graph(driver, ids):
    driver.execute_query("UNWIND $ids AS id MERGE (:Recipe {id: id})", ids=ids)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _button(at, label):
    return next(b for b in at.button if b.label == label)


def test_the_three_download_formats_are_offered(at):
    assert [b.label for b in at.get("download_button")] == [
        "embeddings_recipes.json", "embeddings_recipes.jsonl", "embeddings_recipes.parquet"]


def test_a_run_with_the_earlier_file_names_is_offered_and_pushed(run_dir, graph, neo4j_settings, ids, tmp_path,
                                                                 monkeypatch):
    """Runs made before the guide's names (embeddings_recipe.json) keep working: listed, downloaded under the
    current name, pushed."""
    work = shutil.copytree(run_dir.parent.parent, tmp_path / "work")
    old_run = work / "runs" / run_dir.name
    for path in old_run.glob("embeddings_recipes.*"):
        path.rename(old_run / path.name.replace("embeddings_recipes", "embeddings_recipe"))
    monkeypatch.setenv("CONSOLE_WORKDIR", str(work))
    monkeypatch.delenv("CONSOLE_PASSWORD", raising=False)
    at = AppTest.from_file(APP, default_timeout=120).run().switch_page("pages/export_push.py").run()
    assert not at.exception
    assert str(old_run / "embeddings_recipe.json") in at.caption[0].value
    assert [b.label for b in at.get("download_button")] == [
        "embeddings_recipes.json", "embeddings_recipes.jsonl", "embeddings_recipes.parquet"]
    _recipes_in_graph(graph, ids)
    _button(at, "Preview (dry run)").click().run()
    _button(at, "Push").click().run()
    assert at.success[0].value.startswith(f"Pushed to {neo4j_settings['uri']} (neo4j): 40 vectors: 40 written,")


def test_test_connection_reports_the_server_and_the_missing_index(at, neo4j_settings):
    _button(at, "Test connection").click().run()
    assert [s.value for s in at.success] == [
        f"Connected to {neo4j_settings['uri']} as {neo4j_settings['user']}. No vector index for recipe yet: the "
        "first push creates it."]


def test_push_waits_for_a_dry_run_preview_that_writes_nothing(at, graph, neo4j_settings, ids):
    _recipes_in_graph(graph, ids)
    assert _button(at, "Push").disabled
    _button(at, "Preview (dry run)").click().run()
    assert [i.value for i in at.info] == [
        f"Preview for {neo4j_settings['uri']} (neo4j): 40 vectors: 40 would write, 0 unchanged, 0 unknown ids, "
        "0 rejected."]
    assert not _button(at, "Push").disabled
    written = graph.execute_query("MATCH (n:Recipe) WHERE n.embedding IS NOT NULL RETURN count(n) AS n")
    assert written.records[0]["n"] == 0


def test_push_writes_the_vectors_and_pressing_twice_changes_nothing(at, graph, neo4j_settings, run_dir, ids):
    _recipes_in_graph(graph, ids)
    _button(at, "Preview (dry run)").click().run()
    _button(at, "Push").click().run()
    where = f"{neo4j_settings['uri']} (neo4j)"
    assert [s.value for s in at.success] == [
        f"Pushed to {where}: 40 vectors: 40 written, 0 unchanged, 0 unknown ids, 0 rejected. Pressing Push again "
        "is safe: unchanged vectors are not written twice."]
    assert at.get("progress")[0].proto.text == "40 / 40 vectors"
    stored = {r["id"]: np.array(r["v"]) for r in graph.execute_query(
        "MATCH (n:Recipe) RETURN n.id AS id, n.embedding AS v").records}
    for item in read_embeddings(run_dir / "embeddings_recipes.json"):
        assert np.allclose(stored[item.id], item.embedding, atol=1e-6)
    _button(at, "Push").click().run()
    assert at.success[0].value.startswith(f"Pushed to {where}: 40 vectors: 0 written, 40 unchanged,")


def test_ids_missing_from_the_graph_are_listed_not_dropped(at, graph, ids):
    _recipes_in_graph(graph, ids[:30])
    _button(at, "Preview (dry run)").click().run()
    assert at.warning[0].value.startswith("10 ids are not in the graph (first: ")
    assert at.dataframe[0].value.to_dict("records") == [{"would write": 30, "unchanged": 0, "unknown ids": 10, "rejected": 0}]


def test_a_wrong_password_is_a_clear_message(at, neo4j_settings):
    at.text_input[2].input("wrong-password")
    _button(at, "Test connection").click().run()
    assert [e.value for e in at.error] == [
        f"Neo4j at {neo4j_settings['uri']} refused user '{neo4j_settings['user']}': check NEO4J_USER and NEO4J_PASSWORD"]


def test_an_unreachable_neo4j_is_a_clear_message(at):
    uri = f"bolt://127.0.0.1:{_free_port()}"
    at.text_input[0].input(uri)
    at.text_input[2].input("its-own-password")  # another server than NEO4J_URI: NEO4J_PASSWORD is not sent there
    _button(at, "Preview (dry run)").click().run()
    assert [e.value for e in at.error] == [
        f"Cannot reach Neo4j at {uri}: is it running? Start it with scripts/neo4j.sh start or set NEO4J_URI"]


def test_a_dimension_mismatch_with_the_index_is_refused_before_writing(at, graph, ids):
    _recipes_in_graph(graph, ids)
    graph.execute_query(
        "CREATE VECTOR INDEX recipe_embedding FOR (n:Recipe) ON (n.embedding) "
        "OPTIONS {indexConfig: {`vector.dimensions`: 8, `vector.similarity_function`: 'cosine'}}")
    _button(at, "Test connection").click().run()
    assert at.warning[0].value.endswith(
        "The index recipe_embedding has 8 dimensions but this file has 384: pushing it will be refused.")
    _button(at, "Preview (dry run)").click().run()
    assert at.error[0].value.startswith(
        "The vector index 'recipe_embedding' on :Recipe(embedding) has 8 dimensions but embeddings_recipes.json has "
        "384-dimensional recipe vectors.")


def test_an_unreachable_backend_is_a_clear_message(at):
    url = f"http://127.0.0.1:{_free_port()}"
    at.radio[0].set_value("The backend's import endpoint").run()
    at.text_input[0].input(url)
    at.text_input[1].input("a-token")
    _button(at, "Preview (dry run)").click().run()
    assert [e.value for e in at.error] == [
        f"Cannot reach the backend at {url}/api/embeddings/import/: is it running (./start.sh --demo, or gunicorn "
        "-c backend/gunicorn.conf.py)? Check the URL"]


def test_items_excluded_on_explore_stay_excluded_after_a_reload_and_are_not_pushed(run_dir, graph, neo4j_settings,
                                                                                   ids, tmp_path, monkeypatch):
    """select (the neighbours of an item) -> exclude -> reload -> still excluded -> the download and the push leave
    them out, checked in the graph, and take away the vectors an earlier push gave them; the run's own file keeps
    every vector."""
    work = shutil.copytree(run_dir.parent.parent, tmp_path / "work")
    run = work / "runs" / run_dir.name
    monkeypatch.setenv("CONSOLE_WORKDIR", str(work))
    monkeypatch.delenv("CONSOLE_PASSWORD", raising=False)
    at = AppTest.from_file(APP, default_timeout=120).run().switch_page("pages/explore.py").run()
    at.selectbox(key="explore_item").set_value(ids[0]).run()
    _button(at, "Select the 10 neighbours listed").click().run()
    _button(at, "Exclude 10 selected").click().run()
    excluded = at.dataframe[0].value["id"].tolist()
    assert len(excluded) == 10 and not at.exception

    at = AppTest.from_file(APP, default_timeout=120).run().switch_page("pages/explore.py").run()  # a reload
    assert at.dataframe[0].value["id"].tolist() == excluded
    at.switch_page("pages/export_push.py").run()
    assert [i.value for i in at.info] == [
        "10 excluded items left out of downloads and pushes (excluded on the Explore page; listed in exclusions.jsonl "
        "in the run's folder; the run's vectors are kept)."]
    _recipes_in_graph(graph, ids)
    assert push_to_neo4j(run / "embeddings_recipes.json", neo4j_settings).written == 40  # pushed before excluded
    _button(at, "Preview (dry run)").click().run()
    _button(at, "Push").click().run()
    assert at.success[0].value.startswith(f"Pushed to {neo4j_settings['uri']} (neo4j): 30 vectors: 0 written, 30 "
                                          "unchanged, 0 unknown ids, 0 rejected; 10 excluded items left out, 10 of "
                                          "their vectors removed from Neo4j.")
    assert at.dataframe[0].value.to_dict("records") == [
        {"written": 0, "unchanged": 30, "unknown ids": 0, "rejected": 0, "excluded": 10, "cleared": 10}]
    stored = {r["id"] for r in graph.execute_query(
        "MATCH (n:Recipe) WHERE n.embedding IS NOT NULL RETURN n.id AS id").records}
    assert stored == set(ids) - set(excluded)
    from console.explore.curation import export_file

    path, left_out = export_file(Workspace(work), run / "embeddings_recipes.json", "jsonl")  # the download's file
    assert left_out == 10 and {i.id for i in read_embeddings(path)} == set(ids) - set(excluded)
    assert len(list(read_embeddings(run / "embeddings_recipes.json"))) == 40
