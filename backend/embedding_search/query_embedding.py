"""A search query's vector for a type's EmbeddingSpace: embedded in this process (``BACKEND_QUERY_EMBEDDER=local``,
the default) or by an OpenAI-compatible embeddings service (``remote``: ``embedding-console serve`` on the GPU
machine, HF TEI, vLLM, Infinity) at ``BACKEND_EMBEDDINGS_URL``.

- **The query prompt is applied here, by the backend, in both paths**: the prompt recorded in the EmbeddingSpace
  (the model's query instruction, e.g. Qwen3's "Instruct: ...\\nQuery:") goes before the text; the service encodes
  its input as given (no server applies a sentence-transformers prompt through this API). Without a recorded
  prompt, the local path uses the model's own query prompt and the remote path sends the text alone.
- The service must serve the space's model (its answer's ``model``, compared by the last two path parts) and give at
  least the space's dimensions (longer vectors are cut and normalised, Matryoshka, as the generator does); anything
  else is a :class:`~embedding_search.errors.QueryEmbedderUnavailable` (503) saying which and what to do.
- The type's space is cached per process and checked in the search's own statement, not before it
  (:func:`on_current_space`): the cached space is served at once, the query embedded with it, and the search
  statement also returns the space node's stamp (model, dimensions, prompt, index name, ``updated_at``,
  :data:`embedding_search.search.SPACE_STAMP`). A stamp other than the cached one (a re-import of another model, size, prompt
  or index, by any process) drops the cache, and the space is read again, the query embedded again and the search run
  again: no answer is computed with a stale model, and a warm search is one Neo4j round trip. A cached space older
  than ``BACKEND_SPACE_MAX_AGE_S`` (30 s) is read again first (the index lookup, ``SHOW INDEXES``: an index dropped
  and made again); so is a type with nothing cached (a process's first search).
- Recent query vectors are kept (``BACKEND_QUERY_CACHE_SIZE``, LRU per process, keyed by model, dimensions, prompt
  and text).
"""
from __future__ import annotations

import functools
import logging
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Callable, TypeVar

import numpy as np
from rest_framework.exceptions import APIException

from console.sinks.neo4j.schema import EMBEDDING_SPACE_LABEL
from console.sinks.neo4j.store import Neo4jStore
from embedding_search.conf import settings
from embedding_search.errors import ModelUnavailable, QueryEmbedderUnavailable, SpaceChanging
from embedding_search.graph import model_label
from embedding_search.search import SPACE_STAMP

log = logging.getLogger(__name__)
SPACE_ATTEMPTS = 3      # searches on spaces read in turn before a type whose space keeps changing is a 503
_spaces: dict[str, tuple[float, dict]] = {}  # type -> (time.monotonic() when read, the space with its stamp)
_vectors: OrderedDict[tuple, np.ndarray] = OrderedDict()
_lock = threading.Lock()
_sessions = threading.local()


# -- the type's EmbeddingSpace ------------------------------------------------------------------------------------
def embedding_space(store: Neo4jStore, type_: str) -> dict:
    """``store.embedding_space(type_)`` read now, plus ``type`` and the node's ``stamp``, and cached for
    :func:`on_current_space`; :class:`~console.errors.NoEmbeddings` when the type has none."""
    rows = store.read(f"MATCH (s:{EMBEDDING_SPACE_LABEL} {{type: $type}}) RETURN {SPACE_STAMP} AS stamp", type=type_)
    # the stamp is read first: a space read after it is never older than its stamp (a change in between only
    # makes the next search read the space again)
    space = {**store.embedding_space(type_), "type": type_, "stamp": rows[0]["stamp"] if rows else None}
    with _lock:
        _spaces[type_] = (time.monotonic(), space)
    return dict(space)


def cached_space(type_: str, max_age_s: float) -> dict | None:
    """The space this process read last for ``type_``, unchecked, while younger than ``max_age_s``."""
    with _lock:
        read_at, space = _spaces.get(type_, (0.0, None))
    return dict(space) if space is not None and time.monotonic() - read_at < max_age_s else None


def forget_space(type_: str, stamp: dict | None) -> None:
    """Drop the cached space of ``type_`` if it still has ``stamp`` (one read since by another thread is kept)."""
    with _lock:
        if type_ in _spaces and _spaces[type_][1]["stamp"] == stamp:
            del _spaces[type_]


Checked = TypeVar("Checked")


def on_current_space(store: Neo4jStore, type_: str, search: Callable[[dict], Checked],
                     max_age_s: float) -> tuple[Checked, dict]:
    """``search(space)`` (an answer with the ``stamp`` its statement read) and the space it ran on: the cached space
    (read at most ``max_age_s`` ago) when the answer's stamp is its own, else the space read again and the search run
    again on it (at most :data:`SPACE_ATTEMPTS` searches; then :class:`~embedding_search.errors.SpaceChanging`, 503)."""
    space = cached_space(type_, max_age_s)
    for _ in range(SPACE_ATTEMPTS):
        space = space or embedding_space(store, type_)
        answer = search(space)
        if answer.stamp == space["stamp"]:
            return answer, space
        log.info("the %s EmbeddingSpace changed (%s -> %s): read again", type_, space["stamp"], answer.stamp)
        forget_space(type_, space["stamp"])
        space = None
    raise SpaceChanging(f"The {type_} embeddings changed during each of {SPACE_ATTEMPTS} searches (an import is "
                        "running?): try again when it has finished")


# -- the query's vector ---------------------------------------------------------------------------------------------
def embed_query(space: dict, text: str) -> np.ndarray:
    """The vector of ``text`` for ``space`` (an :func:`embedding_space`), by the configured embedder, from the cache
    of recent queries when it is there. :class:`ModelUnavailable` (503) when the model is not allowed or not here;
    :class:`QueryEmbedderUnavailable` (503) when the remote service fails."""
    model, dimensions = space["model"], space["dimensions"]
    check_model_allowed(model, ModelUnavailable)
    key = (model, dimensions, space.get("query_prompt"), text)
    with _lock:
        if key in _vectors:
            _vectors.move_to_end(key)
            return _vectors[key]
    if settings.QUERY_EMBEDDER == "remote":
        vector = remote_vector(space, text)
    else:
        vector = local_vector(space, text)
    if settings.QUERY_CACHE_SIZE:
        with _lock:
            _vectors[key] = vector
            while len(_vectors) > settings.QUERY_CACHE_SIZE:
                _vectors.popitem(last=False)
    return vector


def local_vector(space: dict, text: str) -> np.ndarray:
    """In this process, with the model's files on this machine (never downloaded)."""
    model = space["model"]
    if not model_is_local(model):
        raise ModelUnavailable(
            f"The model {model_label(model)!r} that embedded these vectors is not on this server, and the backend "
            "never downloads models: put it in the Hugging Face cache (huggingface-cli download <model>) or in a "
            "local folder, import the vectors with that model name or folder, or set BACKEND_QUERY_EMBEDDER=remote")
    embedder = get_embedder(model, space["dimensions"])
    prompt = space.get("query_prompt")
    return embedder.encode_query([text], prompt=prompt if prompt is not None else (embedder.query_prompt or ""))[0]


@functools.lru_cache(maxsize=4)
def get_embedder(model: str, dimensions: int | None = None):
    """A sentence-transformers model per (model, dimensions), loaded once per process from local files only, run by
    BACKEND_QUERY_BACKEND / BACKEND_QUERY_QUANTIZE; ``dimensions`` cuts Matryoshka vectors to the index's size, as
    the console did for the documents."""
    from console.generation.engine import Embedder

    return Embedder(model, dimensions=dimensions, local_files_only=True, backend=settings.QUERY_BACKEND,
                    quantize=settings.QUERY_QUANTIZE)


def check_model_allowed(model: str, error: type[APIException]) -> None:
    """``error`` when BACKEND_QUERY_MODELS is set and does not name ``model``."""
    if settings.QUERY_MODELS and model not in settings.QUERY_MODELS:
        raise error(f"The model {model_label(model)!r} is not one this backend uses: BACKEND_QUERY_MODELS allows "
                    f"{', '.join(model_label(m) for m in settings.QUERY_MODELS)}")


def model_is_local(model: str) -> bool:
    """A folder on this machine (a short name such as ``minilm`` names one), or a model id whose files are in the
    Hugging Face cache (nothing is fetched)."""
    from console.generation.models import resolve_model

    model = resolve_model(model)
    path = Path(model)
    if path.is_absolute() or model.startswith((".", "~")) or path.is_dir():
        return path.is_dir()
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(model, "config.json"), str)
    except Exception:  # not a valid model id (HFValidationError), unreadable cache
        return False


# -- the remote service ---------------------------------------------------------------------------------------------
SERVICE = "The query-embedding service (BACKEND_EMBEDDINGS_URL)"


def _session():
    import requests

    if getattr(_sessions, "session", None) is None:  # one per thread: keep-alive connections, no shared state
        _sessions.session = requests.Session()
    return _sessions.session


def remote_vector(space: dict, text: str) -> np.ndarray:
    """``POST {BACKEND_EMBEDDINGS_URL}/v1/embeddings`` with the recorded query prompt before ``text``; the answer
    checked against the space (model, dimensions) and normalised."""
    import requests

    model, type_ = space["model"], space.get("type", "these")
    headers = {"Authorization": f"Bearer {settings.EMBEDDINGS_API_KEY}"} if settings.EMBEDDINGS_API_KEY else {}
    body = {"model": model, "input": [(space.get("query_prompt") or "") + text]}
    try:
        response = _session().post(f"{settings.EMBEDDINGS_URL}/v1/embeddings", json=body, headers=headers,
                                   timeout=settings.EMBEDDINGS_TIMEOUT)
    except requests.Timeout:
        raise QueryEmbedderUnavailable(
            f"{SERVICE} did not answer within {settings.EMBEDDINGS_TIMEOUT:g} s (BACKEND_EMBEDDINGS_TIMEOUT): check "
            "that it is running and not overloaded, or raise the timeout") from None
    except requests.RequestException as exc:
        log.warning("query-embedding service %s: %s", settings.EMBEDDINGS_URL, exc)
        raise QueryEmbedderUnavailable(
            f"{SERVICE} cannot be reached: start it (embedding-console serve --model <model> on the GPU machine) or "
            "set BACKEND_EMBEDDINGS_URL to where it runs; the backend's log has the address and error") from None
    return check_answer(response, model, type_, space["dimensions"])


def check_answer(response, model: str, type_: str, dimensions: int) -> np.ndarray:
    """The vector in a ``/v1/embeddings`` answer, or :class:`QueryEmbedderUnavailable` saying what is wrong."""
    wrong_model = (f"{SERVICE} does not serve {model_label(model)!r}, the model that embedded the {type_} vectors: "
                   "start it with that model (embedding-console serve --model ..., or the server's served model "
                   "name), or import vectors made by the model it serves")
    if response.status_code in (401, 403):
        raise QueryEmbedderUnavailable(f"{SERVICE} refused the backend's key ({response.status_code}): set "
                                       "BACKEND_EMBEDDINGS_API_KEY to the service's API key")
    if response.status_code == 404:
        text = response.text.lower()
        if "model" in text and "no such path" not in text:  # vLLM: "The model `x` does not exist"; ours too
            raise QueryEmbedderUnavailable(wrong_model)
        raise QueryEmbedderUnavailable(f"{SERVICE} has no POST /v1/embeddings (404): set BACKEND_EMBEDDINGS_URL to "
                                       "the service's base URL, e.g. http://gpu-host:8080")
    if response.status_code != 200:
        log.warning("query-embedding service answered %s: %s", response.status_code, response.text[:500])
        raise QueryEmbedderUnavailable(f"{SERVICE} answered {response.status_code}: its log says why; the backend's "
                                       "log has the first 500 characters of the answer")
    try:
        answer = response.json()
        served = answer.get("model")
        vector = np.asarray(answer["data"][0]["embedding"], dtype=np.float32).ravel()
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        raise QueryEmbedderUnavailable(f"{SERVICE} answered without an embedding: is BACKEND_EMBEDDINGS_URL an "
                                       "OpenAI-compatible embeddings API (POST /v1/embeddings)?") from None
    if not isinstance(served, str) or model_label(served.rstrip("/")) != model_label(model.rstrip("/")):
        raise QueryEmbedderUnavailable(wrong_model + f" (it serves {served!r})")
    if vector.size < dimensions:
        raise QueryEmbedderUnavailable(
            f"{SERVICE} gives {vector.size}-d vectors but the {type_} index holds {dimensions}-d ones: serve the "
            f"model that made them, or re-import the {type_} vectors made by the served model")
    vector = vector[:dimensions]
    return vector / max(float(np.linalg.norm(vector)), 1e-12)
