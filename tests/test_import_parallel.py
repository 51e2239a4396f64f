"""import_embeddings --parallel N (N sessions writing batches at once) against the real test Neo4j: the graph it
leaves is the one a single session leaves. Light on purpose: nodes made by Cypher, vectors random (no model)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "backend"))
from conftest import empty_database  # noqa: E402
from recipes.testing import manage  # noqa: E402

SIZES = {"recipe": ("Recipe", 211, 24), "ingredient": ("Ingredient", 157, 16)}  # type: (label, items, dimensions)


def write_part(path: Path, type_: str, n: int, dims: int, seed: int) -> Path:
    vectors = np.random.default_rng(seed).standard_normal((n, dims)).astype(np.float32)
    table = pa.table({"id": [f"{type_}-{i}" for i in range(n)], "type": [type_] * n,
                      "embedding": pa.array(list(vectors), type=pa.list_(pa.float32()))})
    pq.write_table(table, path)
    path.with_name(path.name.replace(".parquet", ".meta.json")).write_text(json.dumps({"model": "test-model"}))
    return path


@pytest.fixture
def graph(neo4j_driver, neo4j_settings, neo4j_env, tmp_path):
    """Recipe and Ingredient nodes without vectors, and one Parquet file of vectors per type."""
    db = neo4j_settings["database"]
    empty_database(neo4j_driver, db)
    files = []
    for seed, (type_, (label, n, dims)) in enumerate(SIZES.items()):
        neo4j_driver.execute_query(f"UNWIND range(0, $n - 1) AS i CREATE (:{label} {{id: $type + '-' + i}})",
                                   n=n, type=type_, database_=db)
        files.append(write_part(tmp_path / f"embeddings_{type_}s.parquet", type_, n, dims, seed))
    return {"files": files, "env": dict(neo4j_env), "db": db}


def clear_embeddings(driver, db) -> None:
    driver.execute_query("MATCH (n) WHERE n.embedding IS NOT NULL REMOVE n.embedding, n.embedding_model, "
                         "n.embedding_dimensions, n.embedding_updated_at, n.embedding_hash", database_=db)
    driver.execute_query("MATCH (s:EmbeddingSpace) DELETE s", database_=db)
    for record in driver.execute_query("SHOW VECTOR INDEXES YIELD name RETURN name", database_=db).records:
        driver.execute_query(f"DROP INDEX `{record['name']}`", database_=db)


def embedded_graph(driver, db) -> dict:
    """Everything an import writes but its timestamps: the vectors and their properties, the embedding spaces, the
    vector indexes."""
    nodes = driver.execute_query(
        "MATCH (n) WHERE n.embedding IS NOT NULL RETURN labels(n) AS labels, n.id AS id, n.embedding AS embedding, "
        "n.embedding_hash AS hash, n.embedding_model AS model, n.embedding_dimensions AS dims ORDER BY id",
        database_=db).records
    spaces = driver.execute_query("MATCH (s:EmbeddingSpace) RETURN s {.*, updated_at: null} AS s ORDER BY s.type",
                                  database_=db).records
    indexes = driver.execute_query("SHOW VECTOR INDEXES YIELD name, labelsOrTypes, properties, options, state "
                                   "RETURN name, labelsOrTypes, properties, options, state ORDER BY name",
                                   database_=db).records
    return {"nodes": [r.data() for r in nodes], "spaces": [r["s"] for r in spaces],
            "indexes": [r.data() for r in indexes]}


def test_parallel_sessions_leave_the_graph_of_one_session(graph, neo4j_driver):
    """--parallel 4 with batches of 13 (many transactions in flight at once, two files of two types) writes exactly
    what --parallel 1 writes."""
    args = [a for f in graph["files"] for a in ("--embedding-file", str(f))] + ["--batch-size", "13"]
    manage("import_embeddings", *args, "--parallel", "1", "--verbosity", "0", env=graph["env"])
    serial = embedded_graph(neo4j_driver, graph["db"])
    clear_embeddings(neo4j_driver, graph["db"])
    assert embedded_graph(neo4j_driver, graph["db"])["nodes"] == []
    proc = manage("import_embeddings", *args, "--parallel", "4", env=graph["env"])
    assert "211 vectors: 211 written, 0 unchanged, 0 unknown ids, 0 rejected" in proc.stdout
    assert "157 vectors: 157 written, 0 unchanged, 0 unknown ids, 0 rejected" in proc.stdout
    parallel = embedded_graph(neo4j_driver, graph["db"])
    assert len(serial["nodes"]) == 211 + 157
    assert [(s["type"], s["model"], s["dimensions"]) for s in serial["spaces"]] == [
        ("ingredient", "test-model", 16), ("recipe", "test-model", 24)]
    assert [i["state"] for i in serial["indexes"]] == ["ONLINE", "ONLINE"]
    assert parallel == serial


def test_parallel_below_one_is_refused_before_anything_is_written(graph, neo4j_driver):
    proc = manage("import_embeddings", "--embedding-file", str(graph["files"][0]), "--parallel", "0",
                  env=graph["env"], check=False)
    assert proc.returncode == 1
    assert "CommandError: --parallel must be at least 1 (sessions writing at once), not 0" in proc.stderr
    assert embedded_graph(neo4j_driver, graph["db"])["nodes"] == []
