"""The import peers of ``bench/import.py --peers``, run in their own virtual environment (bench/requirements-peers.txt:
neo4j-graphrag and langchain-neo4j pull LangChain, LangGraph and an older fsspec, none of which the project needs).

    <peers venv>/bin/python bench/peer_import.py --peer graphrag|langchain --data DIR --index NAME --batch 2000

DIR holds ``vectors.npy`` (float32, n x d) and ``ids.json`` (the Recipe ids, in the same order); the nodes exist
already (``bench/import.py`` creates them). NEO4J_URI/USER/PASSWORD/DATABASE say where. Each peer is used as its
documentation shows, on the same :Recipe nodes and ``embedding`` property as the project's import:

- ``graphrag``: ``neo4j_graphrag.indexes.create_vector_index`` (cosine), then ``upsert_vectors`` (it addresses nodes
  by element id, so the element ids of the Recipe ids are looked up first, which a user has to do too), one call per
  ``--batch`` vectors (one call is one transaction: a single call for 20k x 1024-d would hold the whole payload in
  one transaction on a 1 GB heap);
- ``langchain``: ``Neo4jVector.from_embeddings`` with (text, embedding) pairs and ``ids`` on ``node_label="Recipe"``
  (its import query MERGEs on ``id``, so it lands on the existing nodes), ``embedding_dimension`` given, for the
  first ``--batch`` pairs; the rest through ``add_embeddings``, ``--batch`` at a time (each call one query of
  ``CALL { ... } IN TRANSACTIONS OF 1000 ROWS``).

The clock runs from the first call of the peer's API until the index is ONLINE and the last vector is found by a
vector query (:func:`wait_searchable`). Prints one JSON object: seconds_written, seconds_searchable, lookup_s.
Only ``neo4j`` and ``numpy`` are imported at module level, so ``bench/import.py`` reuses :func:`wait_searchable`.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np


def wait_searchable(driver, database: str | None, index: str, last_id: str, last_vector: list[float],
                    timeout: float = 1800.0) -> None:
    """Return once ``index`` is ONLINE and a vector query for the last vector written finds its node first."""
    deadline = time.perf_counter() + timeout
    driver.execute_query("CALL db.awaitIndex($name, $seconds)", name=index, seconds=int(timeout), database_=database)
    query = "CALL db.index.vector.queryNodes($name, 1, $vector) YIELD node RETURN node.id AS id"
    while time.perf_counter() < deadline:
        records, _, _ = driver.execute_query(query, name=index, vector=last_vector, database_=database)
        if records and records[0]["id"] == last_id:
            return
        time.sleep(0.05)
    raise TimeoutError(f"{last_id} was not found in {index} within {timeout:.0f} s")


def run_graphrag(driver, database, ids: list[str], vectors: np.ndarray, index: str, batch: int) -> dict:
    from neo4j_graphrag.indexes import create_vector_index, upsert_vectors

    started = time.perf_counter()
    create_vector_index(driver, index, label="Recipe", embedding_property="embedding",
                        dimensions=int(vectors.shape[1]), similarity_fn="cosine", neo4j_database=database)
    records, _, _ = driver.execute_query("UNWIND $ids AS id MATCH (n:Recipe {id: id}) RETURN id, elementId(n) AS eid",
                                         ids=ids, database_=database)
    element_ids = {r["id"]: r["eid"] for r in records}
    lookup_s = time.perf_counter() - started
    for start in range(0, len(ids), batch):
        upsert_vectors(driver, ids=[element_ids[i] for i in ids[start:start + batch]], embedding_property="embedding",
                       embeddings=vectors[start:start + batch].tolist(), neo4j_database=database)
    return {"started": started, "lookup_s": round(lookup_s, 3)}


class FixedEmbeddings:
    """The ``Embeddings`` object Neo4jVector requires; the vectors are given, so it is only asked for a query vector
    (never, with ``embedding_dimension`` passed)."""

    def __init__(self, dims: int):
        self.dims = dims

    def embed_documents(self, texts):
        raise RuntimeError("the bench passes pre-computed embeddings")

    def embed_query(self, text):
        return [0.0] * (self.dims - 1) + [1.0]


def run_langchain(settings: dict, ids: list[str], vectors: np.ndarray, index: str, batch: int) -> dict:
    from langchain_neo4j import Neo4jVector

    started = time.perf_counter()
    first = slice(0, batch)
    store = Neo4jVector.from_embeddings(
        list(zip(ids[first], vectors[first].tolist())), FixedEmbeddings(vectors.shape[1]), ids=ids[first],
        url=settings["uri"], username=settings["user"], password=settings["password"], database=settings["database"],
        index_name=index, node_label="Recipe", embedding_node_property="embedding", text_node_property="text",
        embedding_dimension=int(vectors.shape[1]))
    for start in range(batch, len(ids), batch):
        part = slice(start, start + batch)
        store.add_embeddings(texts=ids[part], embeddings=vectors[part].tolist(), ids=ids[part])
    return {"started": started, "lookup_s": 0.0, "close": store._driver.close}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--peer", choices=("graphrag", "langchain"), required=True)
    parser.add_argument("--data", type=Path, required=True, help="folder with vectors.npy and ids.json")
    parser.add_argument("--index", required=True, help="name of the vector index the peer creates")
    parser.add_argument("--batch", type=int, default=2000, help="vectors per call (2000, the project's batch)")
    args = parser.parse_args(argv)
    import neo4j

    vectors = np.load(args.data / "vectors.npy")
    ids = json.loads((args.data / "ids.json").read_text())
    settings = {"uri": os.environ["NEO4J_URI"], "user": os.environ.get("NEO4J_USER", "neo4j"),
                "password": os.environ["NEO4J_PASSWORD"], "database": os.environ.get("NEO4J_DATABASE") or "neo4j"}
    with neo4j.GraphDatabase.driver(settings["uri"], auth=(settings["user"], settings["password"])) as driver:
        if args.peer == "graphrag":
            run = run_graphrag(driver, settings["database"], ids, vectors, args.index, args.batch)
        else:
            run = run_langchain(settings, ids, vectors, args.index, args.batch)
        written = time.perf_counter()
        wait_searchable(driver, settings["database"], args.index, ids[-1], vectors[-1].tolist())
        searchable = time.perf_counter()
    if "close" in run:
        run["close"]()
    print(json.dumps({"peer": args.peer, "n": len(ids), "dims": int(vectors.shape[1]),
                      "seconds_written": round(written - run["started"], 3),
                      "seconds_searchable": round(searchable - run["started"], 3), "lookup_s": run["lookup_s"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
