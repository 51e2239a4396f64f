"""console/sinks/neo4j/ (settings, errors, schema, vector writes) and the backend's search reads (recipes/search.py)
against the real test Neo4j."""
from __future__ import annotations

import socket
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import read_demo_recipes
from console.errors import (
    DimensionMismatch,
    Neo4jAuthError,
    Neo4jConfigError,
    Neo4jUnavailable,
    NoEmbeddings,
    UnknownType,
)
from console.sinks.neo4j import settings as neo4j_settings_module
from console.sinks.neo4j import writer as neo4j_writer
from console.graphschema import load_schema
from console.sinks.neo4j.settings import Neo4jSettings
from console.sinks.neo4j.store import Neo4jStore
from console.sinks.neo4j.writer import VectorWriter

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "backend"))
from embedding_search import modes, query_embedding, search  # noqa: E402

DIMS = 16


@pytest.fixture
def store(neo4j_clean, neo4j_settings):
    with Neo4jStore(Neo4jSettings.from_mapping(neo4j_settings)) as s:
        yield s


@pytest.fixture
def recipes(store):
    """40 real recipe titles as :Recipe nodes (ids recipe-<number from the URL>)."""
    rows = []
    for row in read_demo_recipes("tempe", limit=40):
        number = row["URL"].rsplit("/", 1)[-1].split("-", 1)[0]
        rows.append({"id": f"recipe-{number}", "title": row["Title"]})
    store.query("UNWIND $rows AS r CREATE (:Recipe {id: r.id, title: r.title})", rows=rows)
    return rows


def vectors(ids, dims=DIMS, seed=0):
    rng = np.random.default_rng(seed)
    return [{"id": i, "type": "recipe", "embedding": rng.standard_normal(dims).astype(np.float32)} for i in ids]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_settings_come_from_the_four_env_vars():
    s = Neo4jSettings.from_env({"NEO4J_URI": "neo4j+s://x.databases.neo4j.io", "NEO4J_USER": "u",
                                "NEO4J_PASSWORD": "p", "NEO4J_DATABASE": "db"})
    assert (s.uri, s.user, s.password, s.database) == ("neo4j+s://x.databases.neo4j.io", "u", "p", "db")
    assert "p" not in repr(s)


def test_settings_read_the_credentials_file_that_the_neo4j_script_writes(tmp_path):
    creds = tmp_path / "credentials.env"
    creds.write_text("# written by scripts/neo4j.sh\nexport NEO4J_URI='bolt://127.0.0.1:7699'\n"
                     "export NEO4J_USER='neo4j'\nexport NEO4J_PASSWORD='s3cr3t \\$x'\n"
                     "export NEO4J_DATABASE='neo4j'\nNOT_EXPORTED=1\n")
    s = Neo4jSettings.from_env_file(creds)
    assert (s.uri, s.user, s.password, s.database) == ("bolt://127.0.0.1:7699", "neo4j", "s3cr3t \\$x", "neo4j")
    assert "NOT_EXPORTED" not in neo4j_settings_module.read_env_file(creds)


def test_missing_password_says_how_to_set_it():
    with pytest.raises(Neo4jConfigError) as err:
        Neo4jSettings.from_env({"NEO4J_URI": "bolt://127.0.0.1:7687"})
    assert str(err.value) == (
        "NEO4J_PASSWORD is not set: for the local server run eval \"$(scripts/neo4j.sh env)\", "
        "or set NEO4J_URI, NEO4J_USER and NEO4J_PASSWORD for your own Neo4j or Aura"
    )


def test_a_closed_port_gives_the_cannot_reach_message():
    uri = f"bolt://127.0.0.1:{free_port()}"
    with pytest.raises(Neo4jUnavailable) as err:
        Neo4jStore(Neo4jSettings(uri=uri, password="x"))
    assert str(err.value) == (
        f"Cannot reach Neo4j at {uri}: is it running? Start it with scripts/neo4j.sh start or set NEO4J_URI"
    )


def test_a_wrong_password_gives_the_auth_message(neo4j_settings):
    settings = Neo4jSettings(uri=neo4j_settings["uri"], user="neo4j", password="not-the-password")
    with pytest.raises(Neo4jAuthError) as err:
        Neo4jStore(settings)
    assert str(err.value) == (
        f"Neo4j at {neo4j_settings['uri']} refused user 'neo4j': check NEO4J_USER and NEO4J_PASSWORD"
    )


def test_types_outside_the_allow_list_never_become_labels():
    with pytest.raises(UnknownType) as err:
        load_schema().type("Recipe) DETACH DELETE (n")
    assert str(err.value).startswith(
        "Unknown type 'Recipe) DETACH DELETE (n': expected one of recipe, ingredient, category (the graph schema "
    )


def test_clearing_vectors_of_a_type_outside_the_allow_list_removes_nothing(store, recipes):
    ids = [r["id"] for r in recipes[:2]]
    VectorWriter(store, model="m").write(vectors(ids))
    with pytest.raises(UnknownType) as err:
        neo4j_writer.clear_vectors(store, {"recipe": [ids[0]], "Recipe) DETACH DELETE (n": [ids[1]]})
    assert str(err.value).startswith("Unknown type 'Recipe) DETACH DELETE (n': expected one of recipe,")
    assert store.query("MATCH (n:Recipe) WHERE n.embedding IS NOT NULL RETURN count(n) AS c")[0]["c"] == 2
    assert neo4j_writer.clear_vectors(store, {"recipe": ids}, dry_run=True) == 2  # a dry run counts only
    assert neo4j_writer.clear_vectors(store, {"recipe": [*ids, "recipe-none"]}, batch_size=1) == 2
    assert store.query("MATCH (n:Recipe) WHERE n.embedding IS NOT NULL RETURN count(n) AS c")[0]["c"] == 0


def test_ensure_schema_creates_constraints_and_fulltext_index_once(store):
    created = store.ensure_schema()
    assert created == ["recipe_id_unique", "ingredient_id_unique", "category_id_unique",
                       "embeddingspace_type_unique", "item_fulltext"]
    assert store.ensure_schema() == []
    constraints = store.query("SHOW CONSTRAINTS YIELD labelsOrTypes, properties RETURN labelsOrTypes, properties")
    assert {"labelsOrTypes": ["Recipe"], "properties": ["id"]} in constraints


def test_ensure_schema_finds_existing_indexes_by_label_not_by_name(store):
    store.query("CREATE CONSTRAINT my_recipe_key FOR (r:Recipe) REQUIRE r.id IS UNIQUE")
    store.query("CREATE FULLTEXT INDEX my_search FOR (n:Recipe|Ingredient|Category) ON EACH [n.title, n.name]")
    created = store.ensure_schema()
    assert "recipe_id_unique" not in created and "item_fulltext" not in created
    assert store.find_fulltext_index()["name"] == "my_search"


def test_write_sets_vectors_and_creates_the_cosine_index_with_the_data_dimensions(store, recipes):
    items = vectors([r["id"] for r in recipes])
    report = VectorWriter(store, model="test-model", query_prompt="Query:").write(items, batch_size=7)
    assert (report.written, report.unchanged, report.unknown_ids, report.rejected) == (40, 0, [], [])
    assert report.indexes_created == ["recipe_embedding"]
    index = store.find_vector_index("recipe")
    assert (index["dimensions"], index["similarity"], index["state"]) == (DIMS, "COSINE", "ONLINE")
    # the index was online while the batches landed: it finds every vector as soon as write() returns
    for item in items:
        assert search.vector_search(store, "recipe", item["embedding"], k=1)[0]["id"] == item["id"]
    node = store.query("MATCH (n:Recipe {id: $id}) RETURN n.embedding AS e, n.embedding_model AS m, "
                       "n.embedding_dimensions AS d, n.embedding_updated_at IS NOT NULL AS t", id=recipes[0]["id"])[0]
    assert np.allclose(node["e"], items[0]["embedding"]) and (node["m"], node["d"], node["t"]) == ("test-model", DIMS,
                                                                                                   True)
    space = store.embedding_space("recipe")
    assert (space["model"], space["dimensions"], space["query_prompt"]) == ("test-model", DIMS, "Query:")


def test_dry_run_reports_and_writes_nothing(store, recipes):
    items = vectors([r["id"] for r in recipes] + ["recipe-0"])
    report = VectorWriter(store, model="m").write(items, dry_run=True)
    assert (report.written, report.unchanged, report.unknown_ids, report.dry_run) == (40, 0, ["recipe-0"], True)
    assert store.query("MATCH (n) WHERE n.embedding IS NOT NULL RETURN count(n) AS c")[0]["c"] == 0
    assert store.find_vector_index("recipe") is None
    assert store.query("MATCH (s:EmbeddingSpace) RETURN count(s) AS c")[0]["c"] == 0


def test_writing_the_same_vectors_twice_changes_nothing(store, recipes):
    items = vectors([r["id"] for r in recipes])
    VectorWriter(store, model="m").write(items)
    before = store.query("MATCH (n:Recipe) RETURN n.id AS id, n.embedding_updated_at AS t ORDER BY id")
    again = VectorWriter(store, model="m").write(items)
    assert (again.written, again.unchanged) == (0, 40)
    assert store.query("MATCH (n:Recipe) RETURN n.id AS id, n.embedding_updated_at AS t ORDER BY id") == before


def test_a_changed_vector_or_model_is_written_again(store, recipes):
    items = vectors([r["id"] for r in recipes])
    VectorWriter(store, model="m").write(items)
    items[0]["embedding"] = items[0]["embedding"] * 2
    assert VectorWriter(store, model="m").write(items).written == 1
    assert VectorWriter(store, model="other-model").write(items).written == 40


def test_a_type_whose_ids_are_all_unknown_gets_no_index_and_no_embedding_space(store, recipes):
    report = VectorWriter(store, model="m").write(vectors(["recipe-999", "recipe-998"], dims=4))
    assert report.unknown_ids == ["recipe-999", "recipe-998"] and report.indexes_created == []
    assert store.find_vector_index("recipe") is None
    assert store.query("MATCH (s:EmbeddingSpace) RETURN count(s) AS c")[0]["c"] == 0


def test_unknown_ids_are_reported_not_dropped(store, recipes):
    report = VectorWriter(store, model="m").write(vectors([recipes[0]["id"], "recipe-999", "recipe-998"]))
    assert report.written == 1 and report.unknown_ids == ["recipe-999", "recipe-998"]


def test_a_duplicate_in_a_later_batch_is_rejected_and_the_first_kept(store, recipes):
    ids = [r["id"] for r in recipes[:3]]
    first, again = vectors(ids, seed=1), vectors(ids[:1], seed=2)
    report = VectorWriter(store, model="m").write(first + again, batch_size=2)  # the duplicate is in batch 2
    assert report.written == 3
    assert report.rejected == [{"id": ids[0], "reason": "duplicate id in the input (the first one is kept)"}]
    stored = store.query("MATCH (n:Recipe {id: $id}) RETURN n.embedding AS e", id=ids[0])[0]["e"]
    assert np.allclose(stored, first[0]["embedding"])


def test_unknown_ids_are_counted_all_but_listed_up_to_the_cap(store, recipes, monkeypatch):
    monkeypatch.setattr(neo4j_writer, "UNKNOWN_IDS_KEPT", 3)
    unknown = [f"recipe-missing-{i}" for i in range(5)]
    report = VectorWriter(store, model="m").write(vectors(unknown + [recipes[0]["id"]]), batch_size=2)
    assert (report.unknown_ids, report.unknown_count) == (unknown[:3], 5)
    assert report.summary() == "6 vectors: 1 written, 0 unchanged, 5 unknown ids, 0 rejected"
    assert report.to_dict()["unknown_count"] == 5


def test_every_bad_vector_is_rejected_with_its_reason(store, recipes):
    ids = [r["id"] for r in recipes[:6]]
    good = vectors(ids)
    items = [
        good[0],
        {"id": ids[1], "type": "recipe", "embedding": [float("nan")] * DIMS},
        {"id": ids[2], "type": "recipe", "embedding": [0.1] * (DIMS - 1)},
        {"id": "", "type": "recipe", "embedding": [0.1] * DIMS},
        {"id": ids[3], "type": "dish", "embedding": [0.1] * DIMS},
        {"id": ids[4], "type": "recipe"},
        {"id": ids[5], "type": "recipe", "embedding": "0.1, 0.2"},
        good[0],
        {"id": ids[5], "type": "recipe", "embedding": [True, False] * (DIMS // 2)},
        {"id": ids[5], "type": "recipe", "embedding": ["0.1"] * DIMS},
    ]
    report = VectorWriter(store, model="m", source="embeddings_recipes.json").write(items)
    assert report.written == 1
    assert report.rejected == [
        {"id": ids[1], "reason": "'embedding' has a non-finite value (NaN or infinity) at position 0"},
        {"id": ids[2], "reason": f"'embedding' has {DIMS - 1} dimensions, expected {DIMS} "
                                 "(the first recipe vector of embeddings_recipes.json)"},
        {"id": "", "reason": "missing 'id' (a non-empty string)"},
        {"id": ids[3], "reason": "unknown type 'dish': expected one of recipe, ingredient, category"},
        {"id": ids[4], "reason": "missing 'embedding'"},
        {"id": ids[5], "reason": "'embedding' is not a list of numbers"},
        {"id": ids[0], "reason": "duplicate id in the input (the first one is kept)"},
        {"id": ids[5], "reason": "'embedding' is not a list of numbers"},
        {"id": ids[5], "reason": "'embedding' is not a list of numbers"},
    ]


def test_dimension_mismatch_with_an_existing_index_is_an_error_and_writes_nothing(store, recipes):
    VectorWriter(store, model="m").write(vectors([r["id"] for r in recipes[:5]]))
    with pytest.raises(DimensionMismatch) as err:
        VectorWriter(store, model="big", source="embeddings_recipes.json").write(
            vectors([r["id"] for r in recipes[5:10]], dims=32))
    assert str(err.value) == (
        f"The vector index 'recipe_embedding' on :Recipe(embedding) has {DIMS} dimensions but "
        "embeddings_recipes.json has 32-dimensional recipe vectors. Use a model with 16 dimensions, or drop the "
        "index (DROP INDEX recipe_embedding) to re-embed every recipe with the new model."
    )
    assert store.query("MATCH (n:Recipe) WHERE n.embedding_model = 'big' RETURN count(n) AS c")[0]["c"] == 0


def test_progress_gets_done_and_total_after_each_batch(store, recipes):
    calls = []
    VectorWriter(store, model="m").write(vectors([r["id"] for r in recipes]), batch_size=15,
                                         progress=lambda done, total: calls.append((done, total)))
    assert calls == [(15, 40), (30, 40), (40, 40)]


def test_the_index_build_after_the_writes_reports_its_population_until_online(store, recipes):
    calls = []
    VectorWriter(store, model="m").write(vectors([r["id"] for r in recipes]),
                                         index_progress=lambda *call: calls.append(call))
    assert calls and {name for name, _, _ in calls} == {"recipe_embedding"}
    assert calls[-1] == ("recipe_embedding", "ONLINE", 100.0)
    assert all(state == "POPULATING" and 0 <= pct <= 100 for _, state, pct in calls[:-1])


def test_vector_search_and_similar_items_return_the_nearest_nodes(store, recipes):
    ids = [r["id"] for r in recipes[:4]]
    basis = np.eye(DIMS, dtype=np.float32)
    items = [
        {"id": ids[0], "type": "recipe", "embedding": basis[0]},
        {"id": ids[1], "type": "recipe", "embedding": basis[0] + 0.1 * basis[1]},
        {"id": ids[2], "type": "recipe", "embedding": 0.2 * basis[0] + basis[1]},
        {"id": ids[3], "type": "recipe", "embedding": basis[2]},
    ]
    VectorWriter(store, model="m").write(items)
    hits = search.vector_search(store, "recipe", basis[0], k=2)
    assert [h["id"] for h in hits] == [ids[0], ids[1]] and hits[0]["title"] == recipes[0]["title"]
    item, similar = search.similar_items(store, ids[0], k=2)
    assert item["id"] == ids[0] and [s["id"] for s in similar.results] == [ids[1], ids[2]] and similar.complete


class CountingStore(Neo4jStore):
    """The real store, counting how often it lists the indexes (SHOW INDEXES) and the statements it sends."""
    index_lookups = 0
    statements = 0

    def indexes(self):
        self.index_lookups += 1
        return super().indexes()

    def query(self, cypher: str, **params) -> list[dict]:
        self.statements += 1
        return super().query(cypher, **params)

    def read(self, cypher: str, **params) -> list[dict]:
        self.statements += 1
        return super().read(cypher, **params)


def test_vector_search_given_the_embedding_space_does_not_look_it_up_again(store, recipes, neo4j_settings):
    VectorWriter(store, model="m").write(vectors([r["id"] for r in recipes]))
    with CountingStore(Neo4jSettings.from_mapping(neo4j_settings)) as counting:
        space = counting.embedding_space("recipe")  # what semantic search does first, to pick the query model
        hits = search.vector_search(counting, "recipe", np.ones(DIMS), k=3, space=space)
        assert len(hits) == 3 and counting.index_lookups == 1


MAX_AGE_S = 3600.0  # cached spaces never too old here: only the stamp makes a search read the space again


@pytest.fixture
def counting(neo4j_settings):
    """A counting store, and the backend's cache of EmbeddingSpaces empty (as in a new process)."""
    query_embedding._spaces.clear()
    with CountingStore(Neo4jSettings.from_mapping(neo4j_settings)) as store:
        yield store
    query_embedding._spaces.clear()


def searched(store, spaces: list[dict]):
    """A search for on_current_space: the vector of ones of the space's size, the spaces it ran on kept."""
    def run(space: dict) -> search.Hits:
        spaces.append(space)
        return search.vector_hits(store, "recipe", np.ones(space["dimensions"]), k=3, space=space)
    return run


def test_a_warm_search_is_one_statement_and_a_reimport_is_used_by_the_next_search(store, recipes, counting):
    """The cached space is checked by the search's own statement: a warm search sends one statement; after a
    re-import with another model of the same size, or another size, the next search runs again on the new space
    (for another size without asking the index with the stale vector); without a space it is NoEmbeddings."""
    ids, spaces = [r["id"] for r in recipes], []
    VectorWriter(store, model="m").write(vectors(ids))  # then searched with nothing cached: the space is read
    hits, space = query_embedding.on_current_space(counting, "recipe", searched(counting, spaces), MAX_AGE_S)
    assert space["model"] == "m" and len(hits.results) == 3 and counting.index_lookups == 1
    before = counting.statements
    hits, space = query_embedding.on_current_space(counting, "recipe", searched(counting, spaces), MAX_AGE_S)
    assert counting.statements - before == 1 and len(hits.results) == 3 and counting.index_lookups == 1
    VectorWriter(store, model="m2").write(vectors(ids, seed=1))  # another model, same size
    hits, space = query_embedding.on_current_space(counting, "recipe", searched(counting, spaces), MAX_AGE_S)
    assert [s["model"] for s in spaces] == ["m", "m", "m", "m2"] and hits.stamp["model"] == "m2"
    store.drop_vector_index("recipe")
    VectorWriter(store, model="m3").write(vectors(ids, dims=8))  # another size
    stale = len(spaces)
    hits, space = query_embedding.on_current_space(counting, "recipe", searched(counting, spaces), MAX_AGE_S)
    assert [s["model"] for s in spaces[stale:]] == ["m2", "m3"] and space["dimensions"] == 8
    assert len(hits.results) == 3 and hits.stamp["dimensions"] == 8
    store.query("MATCH (s:EmbeddingSpace) DETACH DELETE s")
    with pytest.raises(NoEmbeddings, match="No embeddings for type 'recipe' yet"):
        query_embedding.on_current_space(counting, "recipe", searched(counting, spaces), MAX_AGE_S)


def test_similar_items_on_the_cached_space_take_two_statements_and_follow_a_reimport_of_another_size(
        store, recipes, counting):
    """The backend's similar items (embedding_search.modes.similar_search): the item with its vector in one statement, the
    search in one more once the space is cached; after a re-import of another size the item's new vector is searched
    on the new space, not refused against the cached one."""
    ids = [r["id"] for r in recipes]
    VectorWriter(store, model="m").write(vectors(ids))
    modes.similar_search(counting, ids[0], 3, max_age_s=MAX_AGE_S)  # the space read and cached
    before = counting.statements
    item, hits = modes.similar_search(counting, ids[0], 3, max_age_s=MAX_AGE_S)
    assert counting.statements - before == 2 and len(hits.results) == 3 and ids[0] not in {h["id"] for h in hits.results}
    store.drop_vector_index("recipe")
    VectorWriter(store, model="m8").write(vectors(ids, dims=8))
    item, hits = modes.similar_search(counting, ids[0], 3, max_age_s=MAX_AGE_S)
    assert len(hits.results) == 3 and hits.stamp["model"] == "m8" and hits.stamp["dimensions"] == 8


def test_a_cached_space_older_than_its_limit_is_read_again_first(store, recipes, counting):
    VectorWriter(store, model="m").write(vectors([r["id"] for r in recipes]))
    query_embedding.on_current_space(counting, "recipe", searched(counting, []), MAX_AGE_S)
    query_embedding.on_current_space(counting, "recipe", searched(counting, []), 1e-9)
    assert counting.index_lookups == 2  # the index looked up again (an index dropped and made again is found)


def test_a_space_that_changes_during_every_try_is_a_503_not_a_stale_answer(store, recipes, counting):
    from embedding_search.errors import SpaceChanging

    VectorWriter(store, model="m").write(vectors([r["id"] for r in recipes]))
    spaces = []

    def importing(space: dict) -> search.Hits:  # an import lands between each read of the space and its search
        store.record_embedding_space("recipe", model=f"m{len(spaces)}", dimensions=DIMS, query_prompt=None,
                                     index_name=space["index_name"])
        return searched(counting, spaces)(space)

    with pytest.raises(SpaceChanging) as error:
        query_embedding.on_current_space(counting, "recipe", importing, MAX_AGE_S)
    assert len(spaces) == query_embedding.SPACE_ATTEMPTS and error.value.status_code == 503
    assert str(error.value.detail) == ("The recipe embeddings changed during each of 3 searches (an import is "
                                       "running?): try again when it has finished")


def test_a_type_without_embeddings_says_how_to_import_them(store, recipes):
    with pytest.raises(NoEmbeddings) as err:
        store.embedding_space("category")
    assert str(err.value) == (
        "No embeddings for type 'category' yet: generate them, then import with "
        "python backend/manage.py import_embeddings --embedding-file embeddings_categories.json"
    )


def test_keyword_search_escapes_lucene_syntax(store, recipes):
    store.ensure_schema()
    store.query("CALL db.awaitIndexes(60)")
    hits = search.keyword_search(store, "tempe (goreng", "recipe", k=5)
    assert hits and all("tempe" in h["title"].lower() for h in hits)


def test_reads_are_sent_as_reads_so_a_cluster_can_serve_them_from_any_server(store, recipes):
    """`read` (the backend's searches, item pages, export) runs in a READ transaction: on a cluster the driver routes
    it to the servers that serve reads; the server itself refuses a write sent that way."""
    assert store.read("MATCH (r:Recipe) RETURN count(r) AS n")[0]["n"] == store.query(
        "MATCH (r:Recipe) RETURN count(r) AS n")[0]["n"] > 0
    with pytest.raises(Exception, match="(?i)read"):
        store.read("CREATE (:Recipe {id: 'written-in-a-read'})")
    assert store.query("MATCH (r:Recipe {id: 'written-in-a-read'}) RETURN count(r) AS n")[0]["n"] == 0


def test_the_fulltext_index_is_looked_up_once_and_again_when_it_is_made_under_another_name(store, recipes,
                                                                                         neo4j_settings):
    """Keyword (and hybrid) search keep the full-text index's name: one SHOW INDEXES per store; an index dropped and
    made again under another name is found again by the next search, which still answers."""
    store.ensure_schema()
    store.query("CALL db.awaitIndexes(60)")
    with CountingStore(Neo4jSettings.from_mapping(neo4j_settings)) as counting:
        first = search.keyword_search(counting, "tempe", "recipe", k=3)
        assert len(first) == 3
        assert search.keyword_search(counting, "tempe", "recipe", k=3) == first and counting.index_lookups == 1
        store.query("DROP INDEX item_fulltext")
        store.query("CREATE FULLTEXT INDEX renamed_fulltext FOR (n:Recipe|Ingredient|Category) "
                    "ON EACH [n.title, n.text, n.name]")
        store.query("CALL db.awaitIndexes(60)")
        assert search.keyword_search(counting, "tempe", "recipe", k=3) == first and counting.index_lookups == 2
