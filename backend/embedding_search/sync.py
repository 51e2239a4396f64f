"""``manage.py sync_embeddings``: the backend's side of :mod:`console.sinks.neo4j.sync`. It embeds the out-of-date
nodes of each type with the type's recorded model (its ``EmbeddingSpace``), through the backend's query embedder
setting: in this process (``BACKEND_QUERY_EMBEDDER=local``, the model's files on this machine) or by the service at
``BACKEND_EMBEDDINGS_URL`` (``remote``: ``embedding-console serve`` on the GPU machine, which encodes the texts as
given, with no prompt: documents). ``mark_changed(type, id)`` is what a host app calls when it writes a node."""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from console.errors import ConsoleError
from console.sinks.neo4j import sync as core
from embedding_search.conf import settings
from embedding_search.errors import QueryEmbedderUnavailable
from embedding_search.graph import get_store
from embedding_search.query_embedding import SERVICE, _session, check_model_allowed, get_embedder, model_is_local


class SyncError(ConsoleError):
    """A sync that cannot start (no recorded model, the model not here)."""


def mark_changed(type_: str, item_id: str | Sequence[str]) -> int:
    """Mark nodes the host app changed (one id or several): the next sync embeds them first."""
    return core.mark_changed(get_store(), type_, item_id)


def document_encoder(space: dict) -> core.Encode:
    """texts -> vectors of ``space``'s model, for documents (no query prompt), by the configured embedder."""
    model, dimensions = space["model"], space["dimensions"]
    check_model_allowed(model, QueryEmbedderUnavailable)
    if settings.QUERY_EMBEDDER == "remote":
        return lambda texts: remote_documents(model, dimensions, texts)
    if not model_is_local(model):
        raise SyncError(f"The model {model!r} that embedded these vectors is not on this machine and the backend "
                        "never downloads models: put it in the Hugging Face cache or a local folder, or set "
                        "BACKEND_QUERY_EMBEDDER=remote to embed with `embedding-console serve` on the GPU machine")
    embedder = get_embedder(model, dimensions)
    return lambda texts: embedder.encode_document(list(texts), batch_size=max(1, len(texts)))


def remote_documents(model: str, dimensions: int, texts: Sequence[str]) -> np.ndarray:
    """``POST /v1/embeddings`` with the texts as given; the vectors cut to the space's size and normalised."""
    import requests

    headers = {"Authorization": f"Bearer {settings.EMBEDDINGS_API_KEY}"} if settings.EMBEDDINGS_API_KEY else {}
    try:
        response = _session().post(f"{settings.EMBEDDINGS_URL}/v1/embeddings", headers=headers,
                                   json={"model": model, "input": list(texts)},
                                   timeout=max(settings.EMBEDDINGS_TIMEOUT, 60.0))
        response.raise_for_status()
        data = sorted(response.json()["data"], key=lambda d: d["index"])
    except (requests.RequestException, ValueError, KeyError, TypeError) as exc:
        raise QueryEmbedderUnavailable(f"{SERVICE} failed for a batch of {len(texts)} texts: {exc}") from None
    vectors = np.asarray([d["embedding"] for d in data], dtype=np.float32)[:, :dimensions]
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


def sync_all(types: Sequence[str], *, limit: int | None, dry_run: bool, batch_size: int,
             progress: Callable[[str, int, int], None] | None = None) -> list[core.SyncReport]:
    """One pass over ``types``: each type's out-of-date nodes embedded with its recorded model."""
    store = get_store()
    reports = []
    for type_ in types:
        space = core.recorded_model(store, type_)
        if space is None:
            raise SyncError(f"{type_} has no recorded model yet (no vectors were ever imported): generate and import "
                            "them once (README: the workflow), then sync keeps them current")
        encode = (lambda texts: None) if dry_run else document_encoder(space)
        step = None
        if progress:  # the bar's total: one read pass first (cheap beside the embedding)
            total = core.freshness(store, type_).to_embed(limit)
            step = lambda done, reason, t=type_, n=total: progress(t, done, n)  # noqa: E731
        reports.append(core.sync_type(store, type_, encode, model=space["model"],
                                      query_prompt=space.get("query_prompt"), limit=limit, batch_size=batch_size,
                                      dry_run=dry_run, progress=step))
    return reports
