"""The backend's one connection to Neo4j (shared by views and commands) and the recipe-specific queries.

All Neo4j access goes through :mod:`console.neo4j` (the official driver, not an ORM: vector indexes,
``UNWIND`` batch writes and index queries are what the app needs, and the console shares the same code); the
search reads are :mod:`recipes.search`.
"""
from __future__ import annotations

import functools
import threading
from pathlib import Path, PurePath

from django.conf import settings
from rest_framework.exceptions import APIException

from console.neo4j.settings import Neo4jSettings
from console.neo4j.store import Neo4jStore
from recipes.errors import ModelUnavailable

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


@functools.lru_cache(maxsize=4)
def get_embedder(model: str, dimensions: int | None = None):
    """A sentence-transformers model per (model, dimensions), loaded once per process from local files only;
    ``dimensions`` cuts Matryoshka vectors to the index's size, as the console did for the documents."""
    from console.engine import Embedder

    return Embedder(model, dimensions=dimensions, local_files_only=True, backend=settings.QUERY_BACKEND,
                    quantize=settings.QUERY_QUANTIZE)


def embed_query(model: str, text: str, dimensions: int | None = None):
    """The query's vector, by the model recorded for the index; :class:`ModelUnavailable` when that model is not
    allowed here or not on this machine (a search never downloads a model)."""
    check_model_allowed(model, ModelUnavailable)
    if not model_is_local(model):
        raise ModelUnavailable(
            f"The model {model_label(model)!r} that embedded these vectors is not on this server, and the backend "
            "never downloads models: put it in the Hugging Face cache (huggingface-cli download <model>) or in a "
            "local folder, and import the vectors with that model name or folder")
    return get_embedder(model, dimensions).encode_query([text])[0]


def check_model_allowed(model: str, error: type[APIException]) -> None:
    """``error`` when BACKEND_QUERY_MODELS is set and does not name ``model``."""
    if settings.QUERY_MODELS and model not in settings.QUERY_MODELS:
        raise error(f"The model {model_label(model)!r} is not one this backend uses: BACKEND_QUERY_MODELS allows "
                    f"{', '.join(model_label(m) for m in settings.QUERY_MODELS)}")


def model_is_local(model: str) -> bool:
    """A folder on this machine, or a model id whose files are in the Hugging Face cache (nothing is fetched)."""
    path = Path(model)
    if path.is_absolute() or model.startswith((".", "~")) or path.is_dir():
        return path.is_dir()
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(model, "config.json"), str)
    except Exception:  # not a valid model id (HFValidationError), unreadable cache
        return False


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
    rows = store.query(
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
    rows = store.query(
        "CALL () { MATCH (n:Ingredient {id: $id}) RETURN n UNION MATCH (n:Category {id: $id}) RETURN n } "
        "MATCH (n)<-[:HAS_INGREDIENT|IN_CATEGORY]-(r:Recipe) "
        "WITH r ORDER BY r.loves DESC, r.id LIMIT $limit RETURN collect({id: r.id, title: r.title}) AS recipes",
        id=item_id, limit=limit,
    )
    return rows[0] if rows else {}
