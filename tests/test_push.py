"""console.push: one call pushes vectors into the real test Neo4j, straight over Bolt or through the backend."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import read_shared_recipes
from console.neo4j_store import Neo4jSettings, Neo4jUnavailable
from console.push import PushError, push_to_neo4j

DIMS = 8


@pytest.fixture
def neo4j_clean(neo4j_driver, neo4j_settings, monkeypatch):
    """conftest's neo4j_clean, emptying the database in implicit transactions (CALL ... IN TRANSACTIONS cannot run
    inside execute_query's explicit one on Neo4j 5.26). Remove once conftest.py has the same fix."""
    db = neo4j_settings["database"]
    with neo4j_driver.session(database=db) as session:
        session.run("MATCH (n) CALL (n) { DETACH DELETE n } IN TRANSACTIONS OF 10000 ROWS").consume()
        for record in list(session.run("SHOW CONSTRAINTS YIELD name")):
            session.run(f"DROP CONSTRAINT `{record['name']}` IF EXISTS").consume()
        for record in list(session.run("SHOW INDEXES YIELD name, type WHERE type <> 'LOOKUP' RETURN name")):
            session.run(f"DROP INDEX `{record['name']}` IF EXISTS").consume()
    for key in ("uri", "user", "password", "database"):
        monkeypatch.setenv(f"NEO4J_{key.upper()}", neo4j_settings[key])
    return neo4j_driver


@pytest.fixture
def recipe_ids(neo4j_clean):
    ids = [f"recipe-{r['URL'].rsplit('/', 1)[-1].split('-', 1)[0]}" for r in read_shared_recipes("ikan", limit=25)]
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
