"""The backend's one connection to Neo4j (shared by views and commands) and the recipe-specific queries.

All Neo4j access goes through :mod:`console.sinks.neo4j` (the official driver, not an ORM: vector indexes,
``UNWIND`` batch writes and index queries are what the app needs, and the console shares the same code); the
search reads are :mod:`recipes.search`; a query's vector is :mod:`recipes.query_embedding`.
"""
from __future__ import annotations

import threading
from pathlib import PurePath

from django.conf import settings

from console.sinks.neo4j.settings import Neo4jSettings
from console.sinks.neo4j.store import Neo4jStore

_lock = threading.Lock()
_store: Neo4jStore | None = None


def neo4j_settings() -> Neo4jSettings:
    return Neo4jSettings.from_mapping(settings.NEO4J)


def get_store() -> Neo4jStore:
    """The process-wide store; connects (and verifies) on first use, retries on the next call after a failure."""
    global _store
    with _lock:
        if _store is None:
            config = neo4j_settings()
            if not config.password:
                Neo4jSettings.from_env({})  # raises Neo4jConfigError with the how-to message
            _store = Neo4jStore(config)
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


def item_neighbours(store: Neo4jStore, item_id: str, limit: int = 50) -> dict:
    """Ingredients and categories of a recipe, or the best-loved recipes of an ingredient/category."""
    rows = store.read(
        "MATCH (r:Recipe {id: $id}) "
        "RETURN [(r)-[h:HAS_INGREDIENT]->(i:Ingredient) | {id: i.id, title: i.name, position: h.position}] "
        "AS ingredients, [(r)-[:IN_CATEGORY]->(c:Category) | {id: c.id, title: c.name}] AS categories",
        id=item_id,
    )
    if rows:
        row = rows[0]
        row["ingredients"].sort(key=lambda i: (i["position"] is None, i["position"]))
        row["categories"].sort(key=lambda c: c["title"] or "")
        return row
    rows = store.read(
        "CALL () { MATCH (n:Ingredient {id: $id}) RETURN n UNION MATCH (n:Category {id: $id}) RETURN n } "
        "MATCH (n)<-[:HAS_INGREDIENT|IN_CATEGORY]-(r:Recipe) "
        "WITH r ORDER BY r.loves DESC, r.id LIMIT $limit RETURN collect({id: r.id, title: r.title}) AS recipes",
        id=item_id, limit=limit,
    )
    return rows[0] if rows else {}
