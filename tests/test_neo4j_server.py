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


def test_status_finds_a_server_on_a_custom_port_from_its_credentials_file(neo4j_settings):
    """The suite's server runs on 7688 or above, never the default 7687: `status` with only NEO4J_HOME set (as a user
    who started it with NEO4J_BOLT_PORT types it later in another shell) finds it through credentials.env."""
    import os
    import subprocess
    from pathlib import Path

    import pytest

    root = Path(__file__).resolve().parent.parent
    port = int(neo4j_settings["uri"].rsplit(":", 1)[1])
    home = root / (".neo4j-test" if port == 7688 else f".neo4j-test-{port}")
    if os.environ.get("TEST_NEO4J_URI") or not (home / "credentials.env").is_file():
        pytest.skip("the suite uses a server it did not start (TEST_NEO4J_URI)")
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEO4J_")}
    env["NEO4J_HOME"] = str(home)
    done = subprocess.run([str(root / "scripts" / "neo4j.sh"), "status"], env=env, capture_output=True, text=True)
    assert (done.returncode, done.stdout.strip()) == (0, f"running on bolt://127.0.0.1:{port}")
    env["NEO4J_BOLT_PORT"] = "1"  # an explicit port still wins over the file
    done = subprocess.run([str(root / "scripts" / "neo4j.sh"), "status"], env=env, capture_output=True, text=True)
    assert done.returncode == 1 and done.stdout.startswith("not running (bolt://127.0.0.1:1, home ")
