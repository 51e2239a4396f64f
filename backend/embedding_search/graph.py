"""The backend's one connection to Neo4j (shared by views and commands), the graph's description it reads
(:func:`get_schema`) and the item page's related items.

All Neo4j access goes through :mod:`console.sinks.neo4j` (the official driver, not an ORM: vector indexes,
``UNWIND`` batch writes and index queries are what the app needs, and the console shares the same code); the
search reads are :mod:`embedding_search.search`; a query's vector is :mod:`embedding_search.query_embedding`.
"""
from __future__ import annotations

import threading
from pathlib import PurePath


from console.graphschema import GraphSchema, Hop, load_schema
from console.sinks.neo4j.cypher import hops, quote
from console.sinks.neo4j.settings import Neo4jSettings
from console.sinks.neo4j.store import Neo4jStore
from embedding_search.conf import settings

_lock = threading.Lock()
_store: Neo4jStore | None = None


def neo4j_settings() -> Neo4jSettings:
    return Neo4jSettings.from_mapping(settings.NEO4J)


def get_schema() -> GraphSchema:
    """The graph's description: the GRAPH_SCHEMA_FILE setting (default: $GRAPH_SCHEMA_FILE, else the demo's)."""
    return load_schema(getattr(settings, "GRAPH_SCHEMA_FILE", None))


def get_store() -> Neo4jStore:
    """The process-wide store; connects (and verifies) on first use, retries on the next call after a failure."""
    global _store
    with _lock:
        if _store is None:
            config = neo4j_settings()
            if not config.password:
                Neo4jSettings.from_env({})  # raises Neo4jConfigError with the how-to message
            _store = Neo4jStore(config, schema=get_schema())
        return _store


def reset_store() -> None:
    global _store
    with _lock:
        if _store is not None:
            _store.close()
        _store = None


def model_label(model: str) -> str:
    """What pages and answers show for a model: its id, or for a folder its last two path parts (the id for a
    folder in the Hugging Face cache), never the server's full path."""
    path = PurePath(model)
    if not path.is_absolute() and not model.startswith((".", "~")) and len(path.parts) <= 2:
        return model
    for part in path.parts:
        if part.startswith("models--"):
            return part[len("models--"):].replace("--", "/")
    return "/".join(path.parts[-2:])


def neighbour_groups(schema: GraphSchema, type_: str) -> list[tuple[str, str, str]]:
    """The item page's groups of related items for a type: (name, Cypher expression of its list, kind "tags" or
    "list"). Its own one-hop lists without a limit that end at another type ("ingredients", "categories" of a
    recipe), and, for the types whose one-hop lists end at it, those items, best first, at most 50 ("recipes" of an
    ingredient)."""
    spec = schema.type(type_)
    by_label = {s.label: s for s in schema.types.values()}
    groups = []
    for name, ls in spec.lists.items():
        end = by_label.get(ls.end_label)
        if len(ls.path) == 1 and end is not None and ls.limit is None:  # a list with a limit is a sample
            key = (f"coalesce(rel.{quote(ls.order[4:])}, 0), e.{quote(end.title)}" if ls.order.startswith("rel.")
                   else f"e.{quote(end.title)}")
            groups.append((name, _group(ls.path, end, key, 0), "tags"))
    linked = {ls.end_label for ls in spec.lists.values() if len(ls.path) == 1 and ls.limit is None}
    for other in schema.types.values():
        if other.name == type_ or other.label in linked:  # already a group of its own lists
            continue
        for ls in other.lists.values():
            if len(ls.path) == 1 and ls.end_label == spec.label:
                back = Hop(ls.path[0].rel, {"in": "out", "out": "in"}.get(ls.path[0].direction, "both"), other.label)
                key = (f"e.{quote(other.best)} DESC, " if other.best else "") + f"e.{quote(other.id)}"
                groups.append((other.file, _group((back,), other, key, 50), "list"))
                break
    return groups


def _group(path, end, order: str, limit: int) -> str:
    return (f"COLLECT {{ MATCH {hops('n', path, 'e', 'rel')} RETURN {{id: e.{quote(end.id)}, "
            f"title: e.{quote(end.title)}}} AS v ORDER BY {order}{f' LIMIT {limit}' if limit else ''} }}")


def item_neighbours(store: Neo4jStore, item_id: str, type_: str) -> dict:
    """The item's related items by group (:func:`neighbour_groups`), and ``groups``: their names and kinds in
    order, for the item page."""
    schema = store.schema
    spec = schema.type(type_)
    groups = neighbour_groups(schema, type_)
    if not groups:
        return {"groups": []}
    columns = ", ".join(f"{expr} AS {quote(name)}" for name, expr, _ in groups)
    rows = store.read(f"MATCH (n:{quote(spec.label)} {{{quote(spec.id)}: $id}}) RETURN {columns}", id=item_id)
    row = rows[0] if rows else {name: [] for name, _, _ in groups}
    row["groups"] = [{"name": name, "kind": kind, "items": row[name]} for name, _, kind in groups]
    return row
