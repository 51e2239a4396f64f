"""Neo4j access shared by the console and the backend, one job per module.

- :mod:`console.sinks.neo4j.settings`: where Neo4j is (``Neo4jSettings``, ``read_env_file``).
- :mod:`console.sinks.neo4j.schema`: the labels allow-list, constraints, the full-text and vector indexes, and the
  ``EmbeddingSpace`` nodes that say which model embedded each type.
- :mod:`console.sinks.neo4j.store`: ``Neo4jStore``, the one driver per database; driver errors become the project's own
  (``console.errors.Neo4jStoreError`` and its subclasses, part of the ``ConsoleError`` family).
- :mod:`console.sinks.neo4j.writer`: ``VectorWriter`` (batched, idempotent vector writes) and its ``WriteReport``;
  ``clear_vectors`` (the vectors of excluded items removed again).

The search reads (vector, similar items, keyword, one item) belong to the backend: ``backend/embedding_search/search.py``.

Why the official driver and not neomodel/django_neomodel: what this package does is vector-index management
(``SHOW VECTOR INDEXES``, ``CREATE VECTOR INDEX`` with dimensions taken from the data) and batched writes with
``UNWIND`` + ``db.create.setNodeVectorProperty``. None of that maps onto an object mapper, and the console (which
must not import Django) and the backend share this one package. Cypher here is always parameterised; labels and
property names come only from the validated graph schema (:mod:`console.graphschema`, quoted by
:mod:`console.sinks.neo4j.cypher`) and constants, never from input.
"""
