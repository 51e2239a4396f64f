"""Neo4j access for the project: settings, schema, vector indexes and the batched vector writer.

Why the official driver and not neomodel/django_neomodel: what this module does is vector-index management
(``SHOW VECTOR INDEXES``, ``CREATE VECTOR INDEX`` with dimensions taken from the data), batched writes with
``UNWIND`` + ``db.create.setNodeVectorProperty`` and index queries (``db.index.vector.queryNodes``,
``db.index.fulltext.queryNodes``). None of that maps onto an object mapper, and the console (which must not import
Django) and the backend share this one module. Cypher here is always parameterised; labels and property names
come only from :data:`TYPE_TO_LABEL` and constants, never from input.
"""
from __future__ import annotations

import hashlib
import logging
import numbers
import os
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Mapping

import numpy as np

TYPE_TO_LABEL = {"recipe": "Recipe", "ingredient": "Ingredient", "category": "Category"}
LABEL_TO_TYPE = {label: type_ for type_, label in TYPE_TO_LABEL.items()}
EMBEDDING_PROPERTY = "embedding"
FULLTEXT_INDEX = "item_fulltext"
FULLTEXT_PROPERTIES = ("title", "text", "name")
EMBEDDING_SPACE_LABEL = "EmbeddingSpace"
DEFAULT_BATCH_SIZE = 2000
UNKNOWN_IDS_KEPT = 1000      # unknown ids a WriteReport lists; unknown_count counts them all

Progress = Callable[[int, int | None], None]
IndexProgress = Callable[[str, str, float], None]   # (index name, state, population percent) while an index builds

# The driver logs connection trouble on the "neo4j" logger before it raises (e.g. "<CONNECTION> error: Failed to read
# from defunct connection" and "Transaction failed and will be retried" when Neo4j dies mid-push). With no logging
# configured, Python's last-resort handler prints those lines to stderr ahead of our own clear error. A NullHandler
# keeps them out of the user's terminal; an application that configures logging (root handlers) still receives them.
logging.getLogger("neo4j").addHandler(logging.NullHandler())


class Neo4jStoreError(Exception):
    """Base class: a message meant for the user, saying what went wrong and what to do."""


class Neo4jConfigError(Neo4jStoreError):
    pass


class Neo4jUnavailable(Neo4jStoreError):
    pass


class Neo4jAuthError(Neo4jStoreError):
    pass


class DimensionMismatch(Neo4jStoreError):
    pass


class UnknownType(Neo4jStoreError):
    pass


class NoEmbeddings(Neo4jStoreError):
    """A type has no vector index (no embeddings imported) yet."""


class ItemNotFound(Neo4jStoreError):
    pass


def label_for(type_: str) -> str:
    try:
        return TYPE_TO_LABEL[type_]
    except (KeyError, TypeError):
        raise UnknownType(
            f"Unknown type {type_!r}: expected one of {', '.join(TYPE_TO_LABEL)}"
        ) from None


def vector_index_name(type_: str) -> str:
    label_for(type_)
    return f"{type_}_embedding"


def read_env_file(path: str | os.PathLike) -> dict[str, str]:
    """The ``export KEY=value`` lines of a shell file such as ``credentials.env`` (``scripts/neo4j.sh env``), as a
    dict; values are unquoted the way the shell would (``shlex``). Other lines are ignored."""
    import shlex

    values = {}
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.startswith("export ") and "=" in line:
                key, _, value = line[len("export "):].strip().partition("=")
                values[key] = "".join(shlex.split(value)) if value else ""
    return values


@dataclass(frozen=True)
class Neo4jSettings:
    uri: str = "bolt://127.0.0.1:7687"
    user: str = "neo4j"
    password: str = field(default="", repr=False)
    database: str = "neo4j"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Neo4jSettings":
        """NEO4J_URI / NEO4J_USER / NEO4J_PASSWORD / NEO4J_DATABASE (the local server's: scripts/neo4j.sh env)."""
        env = os.environ if env is None else env
        password = env.get("NEO4J_PASSWORD", "")
        if not password:
            raise Neo4jConfigError(
                "NEO4J_PASSWORD is not set: for the local server run eval \"$(scripts/neo4j.sh env)\", "
                "or set NEO4J_URI, NEO4J_USER and NEO4J_PASSWORD for your own Neo4j or Aura"
            )
        return cls(
            uri=env.get("NEO4J_URI") or cls.uri,
            user=env.get("NEO4J_USER") or cls.user,
            password=password,
            database=env.get("NEO4J_DATABASE") or cls.database,
        )

    @classmethod
    def from_env_file(cls, path: str | os.PathLike) -> "Neo4jSettings":
        """From the ``export NEO4J_...='...'`` lines of a credentials file (``$NEO4J_HOME/credentials.env``, which
        ``scripts/neo4j.sh start`` writes for the server it runs)."""
        return cls.from_env(read_env_file(path))

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> "Neo4jSettings":
        """From a dict with uri/user/password/database keys (Django settings, Streamlit secrets, test fixtures)."""
        return cls(
            uri=values.get("uri") or cls.uri,
            user=values.get("user") or cls.user,
            password=values.get("password") or "",
            database=values.get("database") or cls.database,
        )


def _translate(exc: Exception, settings: Neo4jSettings) -> Exception:
    import neo4j.exceptions as ne

    if isinstance(exc, ne.AuthError):
        return Neo4jAuthError(
            f"Neo4j at {settings.uri} refused user {settings.user!r}: check NEO4J_USER and NEO4J_PASSWORD"
        )
    if isinstance(exc, (ne.ServiceUnavailable, ne.SessionExpired, OSError)):
        return Neo4jUnavailable(
            f"Cannot reach Neo4j at {settings.uri}: is it running? "
            "Start it with scripts/neo4j.sh start or set NEO4J_URI"
        )
    if isinstance(exc, ne.ClientError) and "DatabaseNotFound" in (exc.code or ""):
        return Neo4jConfigError(
            f"Database {settings.database!r} does not exist on {settings.uri}: check NEO4J_DATABASE"
        )
    return exc


class Neo4jStore:
    """One driver for one database; every query goes through :meth:`query` or a managed transaction."""

    def __init__(self, settings: Neo4jSettings, *, verify: bool = True):
        import neo4j

        self.settings = settings
        try:
            self.driver = neo4j.GraphDatabase.driver(
                settings.uri,
                auth=(settings.user, settings.password),
                connection_timeout=5,
                connection_acquisition_timeout=10,
                max_transaction_retry_time=5,
                notifications_min_severity="OFF",
            )
        except ValueError as exc:  # malformed URI
            raise Neo4jConfigError(f"NEO4J_URI {settings.uri!r} is not a Neo4j URI: {exc}") from None
        if verify:
            self.verify()

    @classmethod
    def from_env(cls, **kw) -> "Neo4jStore":
        return cls(Neo4jSettings.from_env(), **kw)

    def close(self) -> None:
        self.driver.close()

    def __enter__(self) -> "Neo4jStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @contextmanager
    def _errors_translated(self):
        """Driver errors become the store's own (Neo4jUnavailable, Neo4jAuthError, ...); others pass unchanged."""
        try:
            yield
        except Exception as exc:
            translated = _translate(exc, self.settings)
            if translated is exc:
                raise
            raise translated from None

    def verify(self) -> None:
        with self._errors_translated():
            self.driver.verify_connectivity()
            self.query("RETURN 1")

    # -- queries ---------------------------------------------------------------------------------------------
    def query(self, cypher: str, **params) -> list[dict]:
        with self._errors_translated():
            records, _, _ = self.driver.execute_query(cypher, params, database_=self.settings.database)
        return [r.data() for r in records]

    def write_tx(self, work: Callable, *args):
        """Run ``work(tx, *args)`` in one managed write transaction (retried on transient errors)."""
        with self._errors_translated(), self.driver.session(database=self.settings.database) as session:
            return session.execute_write(work, *args)

    def read_tx(self, work: Callable, *args):
        with self._errors_translated(), self.driver.session(database=self.settings.database) as session:
            return session.execute_read(work, *args)

    # -- schema ----------------------------------------------------------------------------------------------
    def indexes(self) -> list[dict]:
        return self.query(
            "SHOW INDEXES YIELD name, type, labelsOrTypes, properties, state, options "
            "RETURN name, type, labelsOrTypes, properties, state, options"
        )

    def find_fulltext_index(self) -> dict | None:
        wanted = set(TYPE_TO_LABEL.values())
        for index in self.indexes():
            if index["type"] == "FULLTEXT" and set(index["labelsOrTypes"] or []) >= wanted:
                return index
        return None

    def find_vector_index(self, type_: str) -> dict | None:
        """The vector index on ``(:Label).embedding``, found by label and property (whatever its name)."""
        label = label_for(type_)
        for index in self.indexes():
            if (
                index["type"] == "VECTOR"
                and index["labelsOrTypes"] == [label]
                and index["properties"] == [EMBEDDING_PROPERTY]
            ):
                config = (index.get("options") or {}).get("indexConfig") or {}
                index["dimensions"] = config.get("vector.dimensions")
                index["similarity"] = config.get("vector.similarity_function")
                return index
        return None

    def ensure_schema(self) -> list[str]:
        """Uniqueness constraints on ``id`` per label and the full-text index; idempotent. Returns what it created."""
        created = []
        existing = self.query(
            "SHOW CONSTRAINTS YIELD name, type, labelsOrTypes, properties "
            "WHERE type IN ['UNIQUENESS', 'NODE_KEY'] RETURN labelsOrTypes, properties"
        )
        have = {(tuple(c["labelsOrTypes"]), tuple(c["properties"])) for c in existing}
        for label in [*TYPE_TO_LABEL.values(), EMBEDDING_SPACE_LABEL]:
            key = "type" if label == EMBEDDING_SPACE_LABEL else "id"
            if ((label,), (key,)) in have:
                continue
            name = f"{label.lower()}_{key}_unique"
            self.query(f"CREATE CONSTRAINT {name} IF NOT EXISTS FOR (n:{label}) REQUIRE n.{key} IS UNIQUE")
            created.append(name)
        if self.find_fulltext_index() is None:
            labels = "|".join(TYPE_TO_LABEL.values())
            props = ", ".join(f"n.{p}" for p in FULLTEXT_PROPERTIES)
            self.query(f"CREATE FULLTEXT INDEX {FULLTEXT_INDEX} IF NOT EXISTS FOR (n:{labels}) ON EACH [{props}]")
            created.append(FULLTEXT_INDEX)
        return created

    def create_vector_index(self, type_: str, dimensions: int, *, wait_s: float = 600,
                            progress: IndexProgress | None = None) -> str:
        """Create ``<type>_embedding`` (cosine, ``dimensions`` from the data) and wait until it is online,
        reporting its population to ``progress(name, state, percent)`` as it goes."""
        label = label_for(type_)
        name = vector_index_name(type_)
        self.query(
            f"CREATE VECTOR INDEX {name} IF NOT EXISTS FOR (n:{label}) ON (n.{EMBEDDING_PROPERTY}) "
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
        """Drop ``<type>_embedding`` if it exists (the name comes from the allow-list, never from input)."""
        self.query(f"DROP INDEX {vector_index_name(type_)} IF EXISTS")

    def check_dimensions(self, type_: str, dimensions: int, source: str = "the input") -> dict | None:
        """Raise :class:`DimensionMismatch` when an existing vector index has other dimensions; return the index."""
        index = self.find_vector_index(type_)
        if index is not None and index.get("dimensions") not in (None, dimensions):
            raise DimensionMismatch(
                f"The vector index {index['name']!r} on :{label_for(type_)}({EMBEDDING_PROPERTY}) has "
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
            type=type_, label=label_for(type_), model=model, dims=int(dimensions),
            query_prompt=query_prompt, index=index_name,
        )

    def embedding_space(self, type_: str) -> dict:
        """Model, dimensions and index of a type's embeddings; :class:`NoEmbeddings` when there are none yet."""
        label_for(type_)
        rows = self.query(
            f"MATCH (s:{EMBEDDING_SPACE_LABEL} {{type: $type}}) "
            "RETURN s.model AS model, s.dimensions AS dimensions, s.query_prompt AS query_prompt, "
            "s.index_name AS index_name, toString(s.updated_at) AS updated_at",
            type=type_,
        )
        index = self.find_vector_index(type_)
        if not rows or index is None:
            from console.embfiles import file_stem

            raise NoEmbeddings(
                f"No embeddings for type {type_!r} yet: generate them, then import with "
                f"python backend/manage.py import_embeddings --embedding-file {file_stem(type_)}.json"
            )
        space = rows[0]
        space["index_name"] = index["name"]
        space["index_state"] = index["state"]
        return space

    # -- reads used by the search features -----------------------------------------------------------------------
    def get_item(self, item_id: str) -> dict:
        labels = " UNION ".join(f"MATCH (n:{label} {{id: $id}}) RETURN n" for label in TYPE_TO_LABEL.values())
        rows = self.query(
            f"CALL () {{ {labels} }} "
            "RETURN n.id AS id, [l IN labels(n) WHERE l IN $labels][0] AS label, "
            "coalesce(n.title, n.name) AS title, n.description AS description, n.text AS text, "
            "n.url AS url, n.embedding_model AS embedding_model, n.embedding IS NOT NULL AS has_embedding, "
            "COUNT { (n)--() } AS degree",
            id=item_id, labels=list(TYPE_TO_LABEL.values()),
        )
        if not rows:
            raise ItemNotFound(f"No item with id {item_id!r}")
        row = rows[0]
        row["type"] = LABEL_TO_TYPE[row.pop("label")]
        return row

    def vector_search(self, type_: str, vector: np.ndarray | list[float], k: int = 10,
                      exclude_id: str | None = None, *, space: dict | None = None) -> list[dict]:
        """The k nearest ``type_`` nodes by cosine. ``space``: the type's :meth:`embedding_space` when the caller
        already looked it up (semantic search does, to pick the query model), so a search asks for it once."""
        space = space if space is not None else self.embedding_space(type_)
        vec = np.asarray(vector, dtype=np.float32).ravel()
        if vec.size != space["dimensions"]:
            raise DimensionMismatch(
                f"The query vector has {vec.size} dimensions but the {type_} index {space['index_name']!r} "
                f"has {space['dimensions']}"
            )
        # The index is approximate (HNSW): asking it for more candidates than k, then keeping the best k, makes the
        # top k stable and closer to the exact nearest neighbours.
        fetch = max(4 * k, 50) + (1 if exclude_id else 0)
        rows = self.query(
            "CALL db.index.vector.queryNodes($index, $fetch, $vector) YIELD node, score "
            "WHERE node.id <> $exclude "
            "RETURN node.id AS id, coalesce(node.title, node.name) AS title, score "
            "ORDER BY score DESC LIMIT $k",
            index=space["index_name"], fetch=fetch, vector=vec.tolist(), exclude=exclude_id or "", k=k,
        )
        for row in rows:
            row["type"] = type_
        return rows

    def similar_items(self, item_id: str, k: int = 5) -> tuple[dict, list[dict]]:
        item = self.get_item(item_id)
        rows = self.query(
            f"MATCH (n:{TYPE_TO_LABEL[item['type']]} {{id: $id}}) RETURN n.{EMBEDDING_PROPERTY} AS embedding",
            id=item_id,
        )
        embedding = rows[0]["embedding"] if rows else None
        if embedding is None:
            raise NoEmbeddings(
                f"Item {item_id!r} has no embedding yet: import the embeddings of type {item['type']!r} first"
            )
        return item, self.vector_search(item["type"], embedding, k, exclude_id=item_id)

    def keyword_search(self, text: str, type_: str | None = None, k: int = 10) -> list[dict]:
        labels = [label_for(type_)] if type_ else list(TYPE_TO_LABEL.values())
        index = self.find_fulltext_index()
        if index is None:
            raise NoEmbeddings("The full-text index does not exist yet: run python backend/manage.py load_demo_data")
        rows = self.query(
            "CALL db.index.fulltext.queryNodes($index, $q) YIELD node, score "
            "WITH node, score, [l IN labels(node) WHERE l IN $labels][0] AS label WHERE label IS NOT NULL "
            "RETURN node.id AS id, label, coalesce(node.title, node.name) AS title, score "
            "ORDER BY score DESC LIMIT $k",
            index=index["name"], q=lucene_query(text), labels=labels, k=k,
        )
        for row in rows:
            row["type"] = LABEL_TO_TYPE[row.pop("label")]
        return rows


_LUCENE_SPECIAL = set('+-&|!(){}[]^"~*?:\\/')


def lucene_query(text: str) -> str:
    """Escape Lucene syntax so that user text is searched as words (all terms optional, ranked by score)."""
    escaped = "".join("\\" + ch if ch in _LUCENE_SPECIAL else ch for ch in text)
    words = [w for w in escaped.split() if w.upper() not in {"AND", "OR", "NOT", "TO"}]
    return " ".join(words) or '""'


# ---------------------------------------------------------------------------------------------------------------
# Vector writes
# ---------------------------------------------------------------------------------------------------------------
@dataclass
class WriteReport:
    """What a write did. ``unknown_ids`` lists the first :data:`UNKNOWN_IDS_KEPT` ids not in the graph (so that a
    file of a million foreign ids does not hold them all in memory); ``unknown_count`` counts every one."""
    written: int = 0
    unchanged: int = 0
    unknown_ids: list[str] = field(default_factory=list)
    rejected: list[dict] = field(default_factory=list)
    dry_run: bool = False
    total: int = 0
    indexes_created: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0
    unknown_count: int = 0
    rejected_count: int = 0  # every rejection; ``rejected`` may hold only the first ones (the backend sends 100)

    def __post_init__(self) -> None:
        self.unknown_count = max(self.unknown_count, len(self.unknown_ids))
        self.rejected_count = max(self.rejected_count, len(self.rejected))
        del self.unknown_ids[UNKNOWN_IDS_KEPT:]

    def count_rejected(self) -> int:
        """Every rejection, also those only counted (the backend lists the first 100 of a request)."""
        return max(self.rejected_count, len(self.rejected))

    def add_unknown(self, ids: list[str], count: int | None = None) -> None:
        self.unknown_count += len(ids) if count is None else count
        self.unknown_ids.extend(ids[:max(0, UNKNOWN_IDS_KEPT - len(self.unknown_ids))])

    def to_dict(self) -> dict:
        return {
            "written": self.written,
            "unchanged": self.unchanged,
            "unknown_ids": list(self.unknown_ids),
            "unknown_count": self.unknown_count,
            "rejected": list(self.rejected),
            "rejected_count": self.count_rejected(),
            "dry_run": self.dry_run,
            "total": self.total,
            "indexes_created": list(self.indexes_created),
            "elapsed_s": round(self.elapsed_s, 3),
        }

    def merge(self, other: "WriteReport") -> None:
        self.written += other.written
        self.unchanged += other.unchanged
        self.add_unknown(other.unknown_ids, other.unknown_count)
        self.rejected_count = self.count_rejected() + other.count_rejected()
        self.rejected.extend(other.rejected)
        self.total += other.total
        self.indexes_created.extend(other.indexes_created)

    def summary(self) -> str:
        verb = "would write" if self.dry_run else "written"
        return (
            f"{self.total} vectors: {self.written} {verb}, {self.unchanged} unchanged, "
            f"{self.unknown_count} unknown ids, {self.count_rejected()} rejected"
        )


def _field(item: Any, name: str) -> Any:
    if isinstance(item, Mapping):
        return item.get(name)
    return getattr(item, name, None)


def embedding_hash(model: str, vector: np.ndarray) -> str:
    """Hash of the model name and the float32 bytes of a vector: equal hash = nothing to write."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(model.encode("utf-8"))
    digest.update(b"\0")
    digest.update(np.ascontiguousarray(vector, dtype="<f4").tobytes())
    return digest.hexdigest()


def _as_vector(value: Any) -> tuple[np.ndarray | None, str | None]:
    if value is None:
        return None, "missing 'embedding'"
    if isinstance(value, (str, bytes, Mapping)):
        return None, "'embedding' is not a list of numbers"
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "fiu":  # booleans, strings, objects
            return None, "'embedding' is not a list of numbers"
    elif isinstance(value, (list, tuple)):
        # numpy would turn true/false and "0.1" into numbers: only real numbers (or null, reported as NaN) pass
        if any(isinstance(v, (bool, np.bool_)) or not (v is None or isinstance(v, numbers.Real)) for v in value):
            return None, "'embedding' is not a list of numbers"
    try:
        vec = np.asarray(value, dtype=np.float32)
    except (TypeError, ValueError):
        return None, "'embedding' is not a list of numbers"
    if vec.ndim != 1 or vec.size == 0:
        return None, "'embedding' is not a flat, non-empty list of numbers"
    finite = np.isfinite(vec)
    if not finite.all():
        pos = int(np.argmin(finite))
        return None, f"'embedding' has a non-finite value (NaN or infinity) at position {pos}"
    return vec, None


class VectorWriter:
    """Write embeddings onto existing nodes, batch by batch, each batch one transaction.

    ``UNWIND $rows AS row MATCH (n:Label {id: row.id}) CALL db.create.setNodeVectorProperty(n, 'embedding', ...)``;
    a row whose ``embedding_hash`` (model + vector bytes) is already on the node is counted as unchanged and not
    sent again, so running an import twice changes nothing. Ids not in the graph are reported, bad vectors
    rejected with a reason, never silently dropped. When a type has no vector index yet, the index is created
    before its first batch and kept online while the vectors land (dropped again if none did); when one exists
    with other dimensions, :class:`DimensionMismatch` is raised before anything of that type is written.

    Why before, and why two sessions (``bench/import.py --strategy-ab``, 2 cores, Neo4j 5.26): building the HNSW
    index after the writes costs more than the writes themselves (100k x 384-d: writes 29-34 s, then ~65-70 s of
    index build), while with the index online each transaction adds its vectors as it commits, and two sessions
    do that in parallel: 100k x 384-d searchable after 49 s with 2 sessions, 70 s with 1, 99-101 s building after;
    50k x 1024-d 52 s against 87 s and 90-95 s. Without an index, a second session gains little.
    """

    def __init__(self, store: Neo4jStore, *, model: str, query_prompt: str | None = None,
                 dimensions: int | None = None, source: str = "the input", create_index: bool = True,
                 workers: int = 2):
        if not model:
            raise ValueError("VectorWriter needs the model name that produced the vectors")
        self.store = store
        self.model = model
        self.query_prompt = query_prompt
        self.declared_dimensions = dimensions
        self.source = source
        self.create_index = create_index
        self.workers = max(1, workers)

    def write(self, items: Iterable[Any], *, batch_size: int = DEFAULT_BATCH_SIZE, dry_run: bool = False,
              progress: Progress | None = None, total: int | None = None,
              index_progress: IndexProgress | None = None) -> WriteReport:
        """Write every item; ``progress(done, total)`` after each batch; ``index_progress(name, state, percent)``
        while a missing vector index is created before a type's first batch (it populates from vectors already on
        the nodes, if any)."""
        started = time.perf_counter()
        report = WriteReport(dry_run=dry_run)
        if total is None and hasattr(items, "__len__"):
            total = len(items)  # type: ignore[arg-type]
        dims: dict[str, int] = {}            # type -> dimensions of its vectors in this input
        had_index: dict[str, bool] = {}
        index_names: dict[str, str] = {}     # type -> its vector index (found or created before the first write)
        created: set[str] = set()            # types whose index this write created
        seen = _SeenIds()
        if not dry_run:
            self.store.ensure_schema()
        done = 0
        # Batches are checked here, in input order, and written by up to `workers` sessions at once (each batch
        # one transaction); at most `workers` batches are in flight, so memory stays bounded.
        pending: deque = deque()
        landed: dict[str, int] = {}          # type -> vectors now on their nodes (written or unchanged)
        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            def finish_one() -> None:
                nonlocal done
                future, size = pending.popleft()
                for type_, part in future.result():
                    report.merge(part)
                    landed[type_] = landed.get(type_, 0) + part.written + part.unchanged
                done += size
                report.total = done
                if progress:
                    progress(done, total)

            for batch in _batched(items, batch_size):
                rows_by_type: dict[str, list[dict]] = {}
                seen.start_batch([f"{_field(i, 'type')}\0{_field(i, 'id')}" for i in batch])
                for item in batch:
                    row = self._check(item, dims, had_index, seen, report)
                    if row is not None:
                        rows_by_type.setdefault(row.pop("type"), []).append(row)
                seen.end_batch()
                if not dry_run:
                    for type_ in rows_by_type:
                        if type_ not in index_names:
                            index_names[type_] = self._prepare_index(type_, dims[type_], had_index[type_], created,
                                                                     report, index_progress)
                pending.append((pool.submit(self._write_batches, rows_by_type, dry_run), len(batch)))
                while len(pending) >= self.workers:
                    finish_one()
            while pending:
                finish_one()
        report.total = done
        if not dry_run:
            for type_, n_dims in dims.items():
                if not landed.get(type_):
                    # nothing of this type reached a node (all ids unknown): no index, no space
                    if type_ in created:
                        self.store.drop_vector_index(type_)
                        report.indexes_created.remove(index_names[type_])
                    continue
                self.store.record_embedding_space(
                    type_, model=self.model, dimensions=n_dims, query_prompt=self.query_prompt,
                    index_name=index_names.get(type_) or vector_index_name(type_),
                )
        report.elapsed_s = time.perf_counter() - started
        return report

    def _prepare_index(self, type_: str, n_dims: int, had_index: bool, created: set[str], report: WriteReport,
                       index_progress: IndexProgress | None) -> str | None:
        """The type's vector index before its first write: the existing one, or a new one (online while the
        vectors land), or None when there is none and ``create_index`` is off."""
        if had_index:
            return self.store.find_vector_index(type_)["name"]
        if not self.create_index:
            return None
        name = self.store.create_vector_index(type_, n_dims, progress=index_progress)
        created.add(type_)
        report.indexes_created.append(name)
        return name

    def _check(self, item, dims, had_index, seen, report) -> dict | None:
        item_id = _field(item, "id")
        if not isinstance(item_id, str) or not item_id:
            report.rejected.append({"id": item_id, "reason": "missing 'id' (a non-empty string)"})
            return None
        type_ = _field(item, "type")
        if type_ not in TYPE_TO_LABEL:
            report.rejected.append({
                "id": item_id,
                "reason": f"unknown type {type_!r}: expected one of {', '.join(TYPE_TO_LABEL)}",
            })
            return None
        vec, problem = _as_vector(_field(item, "embedding"))
        if problem:
            report.rejected.append({"id": item_id, "reason": problem})
            return None
        if self.declared_dimensions and vec.size != self.declared_dimensions:
            report.rejected.append({
                "id": item_id,
                "reason": f"'embedding' has {vec.size} dimensions, expected {self.declared_dimensions} "
                          f"(declared 'dimensions')",
            })
            return None
        if type_ not in dims:
            index = self.store.check_dimensions(type_, vec.size, self.source)
            dims[type_] = vec.size
            had_index[type_] = index is not None
        elif vec.size != dims[type_]:
            report.rejected.append({
                "id": item_id,
                "reason": f"'embedding' has {vec.size} dimensions, expected {dims[type_]} "
                          f"(the first {type_} vector of {self.source})",
            })
            return None
        if not seen.add(f"{type_}\0{item_id}"):
            report.rejected.append({"id": item_id, "reason": "duplicate id in the input (the first one is kept)"})
            return None
        return {"type": type_, "id": item_id, "vector": vec, "hash": embedding_hash(self.model, vec)}

    def _write_batches(self, rows_by_type: dict[str, list[dict]], dry_run: bool) -> list[tuple[str, WriteReport]]:
        parts = []
        for type_, rows in rows_by_type.items():
            part = WriteReport(dry_run=dry_run)
            self._write_batch(type_, rows, dry_run, part)
            parts.append((type_, part))
        return parts

    def _write_batch(self, type_: str, rows: list[dict], dry_run: bool, report: WriteReport) -> None:
        label = TYPE_TO_LABEL[type_]
        lookup = f"UNWIND $ids AS id OPTIONAL MATCH (n:{label} {{id: id}}) RETURN id, n IS NOT NULL AS found, " \
                 "n.embedding_hash AS hash"
        write = (
            f"UNWIND $rows AS row MATCH (n:{label} {{id: row.id}}) "
            f"CALL db.create.setNodeVectorProperty(n, '{EMBEDDING_PROPERTY}', row.embedding) "
            "SET n.embedding_model = $model, n.embedding_dimensions = $dims, "
            "n.embedding_updated_at = datetime(), n.embedding_hash = row.hash "
            "RETURN count(n) AS written"
        )

        def plan(tx) -> tuple[list[str], list[dict], int]:
            state = {r["id"]: (r["found"], r["hash"]) for r in tx.run(lookup, ids=[r["id"] for r in rows])}
            unknown, todo, unchanged = [], [], 0
            for row in rows:
                found, old_hash = state[row["id"]]
                if not found:
                    unknown.append(row["id"])
                elif old_hash == row["hash"]:
                    unchanged += 1
                else:
                    todo.append(row)
            return unknown, todo, unchanged

        def work(tx):
            unknown, todo, unchanged = plan(tx)
            written = 0
            if todo and not dry_run:
                payload = [{"id": r["id"], "embedding": r["vector"].tolist(), "hash": r["hash"]} for r in todo]
                written = tx.run(write, rows=payload, model=self.model, dims=len(todo[0]["vector"])).single()[0]
            elif dry_run:
                written = len(todo)
            return unknown, written, unchanged

        if dry_run:
            unknown, written, unchanged = self.store.read_tx(work)
        else:
            unknown, written, unchanged = self.store.write_tx(work)
        report.add_unknown(unknown)
        report.written += written
        report.unchanged += unchanged


class _SeenIds:
    """The ``type + id`` keys met so far in one write, to reject a later duplicate (the first one is kept).

    What grows with the input, and why: duplicates must be found across the whole input, so one 8-byte hash
    (blake2b-64) per item is kept, in a sorted numpy array (8 bytes per item instead of ~100 for a set of id
    strings: 8 MB for a million items). The current batch's keys are held exactly in a set and merged into the
    array at the end of each batch (a linear merge of two sorted runs). Two different ids share a 64-bit hash
    with a chance of about n^2 / 2^65 (3e-8 for a million items); such an id would be reported as a duplicate,
    never written twice. The report's ``rejected`` list also grows, but only with bad items, each a line the user
    needs; ``unknown_ids`` is capped (:data:`UNKNOWN_IDS_KEPT`) and counted.
    """

    def __init__(self):
        self.before = np.empty(0, dtype=np.uint64)   # sorted hashes of the earlier batches' keys
        self.hashes: dict[str, int] = {}             # this batch's keys -> hash
        self.earlier: set[str] = set()               # this batch's keys already met in an earlier batch
        self.batch: set[str] = set()                 # this batch's keys accepted so far

    def start_batch(self, keys: list[str]) -> None:
        """Look this batch's keys up among the earlier batches in one vectorised step."""
        self.hashes = {key: int.from_bytes(hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest(), "little")
                       for key in keys}
        if self.before.size and self.hashes:
            values = np.fromiter(self.hashes.values(), dtype=np.uint64, count=len(self.hashes))
            at = np.minimum(np.searchsorted(self.before, values), self.before.size - 1)
            hit = self.before[at] == values
            self.earlier = {key for key, h in zip(self.hashes, hit) if h}

    def add(self, key: str) -> bool:
        """Remember ``key`` (one of those given to :meth:`start_batch`); False when it was met before."""
        if key in self.batch or key in self.earlier:
            return False
        self.batch.add(key)
        return True

    def end_batch(self) -> None:
        if self.batch:
            new = np.sort(np.fromiter((self.hashes[k] for k in self.batch), dtype=np.uint64, count=len(self.batch)))
            self.before = np.sort(np.concatenate([self.before, new]), kind="stable")  # timsort: a linear merge
        self.hashes, self.earlier, self.batch = {}, set(), set()


def _batched(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    if size < 1:
        raise ValueError("batch_size must be at least 1")
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
