"""The suite's Neo4j is a real Community 5.26 server with the vector procedures the project relies on."""


def test_server_is_neo4j_5_26_community(neo4j_driver):
    record = neo4j_driver.execute_query(
        "CALL dbms.components() YIELD name, versions, edition RETURN name, versions[0] AS version, edition"
    ).records[0]
    assert record["name"] == "Neo4j Kernel"
    assert record["version"].startswith("5.26.")
    assert record["edition"] == "community"


def test_vector_index_answers_nearest_neighbour_queries(neo4j_clean):
    db = neo4j_clean
    db.execute_query(
        "CREATE VECTOR INDEX probe_embedding IF NOT EXISTS FOR (n:Probe) ON n.embedding "
        "OPTIONS {indexConfig: {`vector.dimensions`: 3, `vector.similarity_function`: 'cosine'}}"
    )
    db.execute_query(
        "UNWIND $rows AS row CREATE (n:Probe {id: row.id}) "
        "WITH n, row CALL db.create.setNodeVectorProperty(n, 'embedding', row.v)",
        rows=[{"id": "a", "v": [1.0, 0.0, 0.0]}, {"id": "b", "v": [0.0, 1.0, 0.0]}, {"id": "c", "v": [0.9, 0.1, 0.0]}],
    )
    db.execute_query("CALL db.awaitIndexes(60)")
    hits = db.execute_query(
        "CALL db.index.vector.queryNodes('probe_embedding', 2, $q) YIELD node, score RETURN node.id AS id",
        q=[1.0, 0.0, 0.0],
    ).records
    assert [r["id"] for r in hits] == ["a", "c"]
