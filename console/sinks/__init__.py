"""Where vectors go: :mod:`~console.sinks.push` sends an embedding run to Neo4j directly or to the backend's
endpoint (with progress, a dry run and the exclusions left out); :mod:`console.sinks.neo4j` is the Neo4j access that
the push and the backend's import share (settings, schema, store, writer).
"""
