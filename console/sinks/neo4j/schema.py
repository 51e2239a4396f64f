"""The graph's schema: the labels allow-list, uniqueness constraints, the full-text index, one vector index per
type (found by label and property, whatever its name), and the ``EmbeddingSpace`` node recording which model
embedded a type. :class:`SchemaAdmin` is what :class:`console.sinks.neo4j.store.Neo4jStore` can do to the schema; it
runs every statement through the store's ``query``."""
from __future__ import annotations

import time
from typing import Callable

from console.errors import DimensionMismatch, Neo4jStoreError, NoEmbeddings
from console.graphschema import GraphSchema, TypeSpec
from console.sinks.neo4j.cypher import quote

# what the writer sets beside the vector (console.sinks.neo4j.writer), removed with it (clear_vectors)
EMBEDDING_METADATA = ("embedding_model", "embedding_dimensions", "embedding_updated_at", "embedding_hash",
                      "embedding_text_hash", "embedding_sync_marked")
EMBEDDING_SPACE_LABEL = "EmbeddingSpace"
SYNC_LEASE_LABEL = "EmbeddingSyncLease"   # one per type while a sync runs (console.sinks.neo4j.sync)
OWN_LABELS = (EMBEDDING_SPACE_LABEL, SYNC_LEASE_LABEL)   # the console's bookkeeping nodes, not the user's graph

IndexProgress = Callable[[str, str, float], None]   # (index name, state, population percent) while an index builds


class SchemaAdmin:
    """Schema and index management over ``self.query(cypher, **params)`` (mixed into ``Neo4jStore``), for the types
    of ``self.schema`` (the graph description, :mod:`console.graphschema`)."""

    query: Callable[..., list[dict]]   # Neo4jStore.query
    schema: GraphSchema

    def spec(self, type_: str) -> TypeSpec:
        """The type's description; :class:`~console.errors.UnknownType` for a type the schema lacks."""
        return self.schema.type(type_)

    def indexes(self) -> list[dict]:
        return self.query(
            "SHOW INDEXES YIELD name, type, labelsOrTypes, properties, state, options "
            "RETURN name, type, labelsOrTypes, properties, state, options"
        )

    def find_fulltext_index(self) -> dict | None:
        wanted = set(self.schema.labels())
        for index in self.indexes():
            if index["type"] == "FULLTEXT" and set(index["labelsOrTypes"] or []) >= wanted:
                return index
        return None

    def find_vector_index(self, type_: str) -> dict | None:
        """The vector index on the type's label and vector property, found by both (whatever its name)."""
        spec = self.spec(type_)
        for index in self.indexes():
            if (
                index["type"] == "VECTOR"
                and index["labelsOrTypes"] == [spec.label]
                and index["properties"] == [spec.vector_property]
            ):
                config = (index.get("options") or {}).get("indexConfig") or {}
                index["dimensions"] = config.get("vector.dimensions")
                index["similarity"] = config.get("vector.similarity_function")
                return index
        return None

    def ensure_schema(self) -> list[str]:
        """Uniqueness constraints on each type's id property and the full-text index; idempotent. Returns what it
        created."""
        created = []
        existing = self.query(
            "SHOW CONSTRAINTS YIELD name, type, labelsOrTypes, properties "
            "WHERE type IN ['UNIQUENESS', 'NODE_KEY'] RETURN labelsOrTypes, properties"
        )
        have = {(tuple(c["labelsOrTypes"]), tuple(c["properties"])) for c in existing}
        keys = [(s.label, s.id) for s in self.schema.types.values()] + [(EMBEDDING_SPACE_LABEL, "type")]
        for label, key in keys:
            if ((label,), (key,)) in have:
                continue
            name = f"{label.lower()}_{key}_unique"
            self.query(f"CREATE CONSTRAINT {quote(name)} IF NOT EXISTS FOR (n:{quote(label)}) "
                       f"REQUIRE n.{quote(key)} IS UNIQUE")
            created.append(name)
        if self.find_fulltext_index() is None:
            name = self.schema.fulltext_index
            labels = "|".join(quote(label) for label in self.schema.labels())
            props = ", ".join(f"n.{quote(p)}" for p in self.schema.fulltext_properties())
            self.query(f"CREATE FULLTEXT INDEX {quote(name)} IF NOT EXISTS FOR (n:{labels}) ON EACH [{props}]")
            created.append(name)
        return created

    def create_vector_index(self, type_: str, dimensions: int, *, wait_s: float = 600,
                            progress: IndexProgress | None = None) -> str:
        """Create the type's vector index (its ``vector_index`` name, cosine, ``dimensions`` from the data) and wait
        until it is online, reporting its population to ``progress(name, state, percent)`` as it goes."""
        spec = self.spec(type_)
        name = spec.vector_index
        self.query(
            f"CREATE VECTOR INDEX {quote(name)} IF NOT EXISTS FOR (n:{quote(spec.label)}) "
            f"ON (n.{quote(spec.vector_property)}) "
            "OPTIONS {indexConfig: {`vector.dimensions`: $dims, `vector.similarity_function`: 'cosine'}}",
            dims=int(dimensions),
        )
        if wait_s:
            self.await_index(name, wait_s=wait_s, progress=progress)
        return name

    def await_index(self, name: str, *, wait_s: float = 600, progress: IndexProgress | None = None,
                    poll_s: float = 0.5) -> None:
        """Poll ``SHOW INDEXES`` until the index is online (``progress`` gets its state and populationPercent at
        each poll); :class:`Neo4jStoreError` when it failed or is still not online after ``wait_s`` seconds."""
        deadline = time.monotonic() + wait_s
        while True:
            rows = self.query(
                "SHOW INDEXES YIELD name, state, populationPercent, failureMessage WHERE name = $name "
                "RETURN state, populationPercent AS percent, failureMessage AS failure", name=name)
            if not rows:
                raise Neo4jStoreError(f"The index {name!r} does not exist (dropped while it was being built?)")
            state, percent = rows[0]["state"], float(rows[0]["percent"] or 0.0)
            if progress:
                progress(name, state, percent)
            if state == "ONLINE":
                return
            if state == "FAILED":
                raise Neo4jStoreError(f"Neo4j could not build the index {name!r}: {rows[0]['failure']} — drop it "
                                      f"(DROP INDEX {name}) and import again")
            if time.monotonic() > deadline:
                raise Neo4jStoreError(f"The index {name!r} is still {state} ({percent:.0f}% populated) after "
                                      f"{wait_s:.0f} s; it keeps building in Neo4j: search works once "
                                      "SHOW VECTOR INDEXES says ONLINE")
            time.sleep(poll_s)

    def drop_vector_index(self, type_: str) -> None:
        """Drop the type's vector index if it exists (the name comes from the schema, never from input)."""
        self.query(f"DROP INDEX {quote(self.spec(type_).vector_index)} IF EXISTS")

    def check_dimensions(self, type_: str, dimensions: int, source: str = "the input") -> dict | None:
        """Raise :class:`DimensionMismatch` when an existing vector index has other dimensions; return the index."""
        index = self.find_vector_index(type_)
        if index is not None and index.get("dimensions") not in (None, dimensions):
            raise DimensionMismatch(
                f"The vector index {index['name']!r} on :{self.spec(type_).label}({self.spec(type_).vector_property}) has "
                f"{index['dimensions']} dimensions but {source} has {dimensions}-dimensional {type_} vectors. "
                f"Use a model with {index['dimensions']} dimensions, or drop the index "
                f"(DROP INDEX {index['name']}) to re-embed every {type_} with the new model."
            )
        return index

    # -- embedding spaces: which model embedded each type --------------------------------------------------------
    def record_embedding_space(self, type_: str, *, model: str, dimensions: int, query_prompt: str | None,
                               index_name: str) -> None:
        self.query(
            f"MERGE (s:{EMBEDDING_SPACE_LABEL} {{type: $type}}) "
            "SET s.label = $label, s.model = $model, s.dimensions = $dims, s.query_prompt = $query_prompt, "
            "s.index_name = $index, s.updated_at = datetime()",
            type=type_, label=self.spec(type_).label, model=model, dims=int(dimensions),
            query_prompt=query_prompt, index=index_name,
        )

    def embedding_space(self, type_: str) -> dict:
        """Model, dimensions and index of a type's embeddings; :class:`NoEmbeddings` when there are none yet."""
        self.spec(type_)
        rows = self.query(
            f"MATCH (s:{EMBEDDING_SPACE_LABEL} {{type: $type}}) "
            "RETURN s.model AS model, s.dimensions AS dimensions, s.query_prompt AS query_prompt, "
            "s.index_name AS index_name, toString(s.updated_at) AS updated_at",
            type=type_,
        )
        index = self.find_vector_index(type_)
        if not rows or index is None:
            from console.files.embfiles import file_stem

            raise NoEmbeddings(
                f"No embeddings for type {type_!r} yet: generate them, then import with "
                f"python backend/manage.py import_embeddings --embedding-file {file_stem(type_)}.json"
            )
        space = rows[0]
        space["index_name"] = index["name"]
        space["index_state"] = index["state"]
        return space

