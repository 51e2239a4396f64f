"""The backend's errors and their HTTP statuses, chosen by exception type (never by message text).

Store errors (``console.errors.Neo4jStoreError`` and its subclasses) map through :data:`STATUS_FOR`; the backend's own errors are DRF
``APIException`` subclasses carrying their status. The JSON API and the HTML pages share :func:`status_for` and
:func:`message_of`.
"""
from __future__ import annotations

from rest_framework.exceptions import APIException

from console.errors import (
    DimensionMismatch,
    ItemNotFound,
    Neo4jAuthError,
    Neo4jConfigError,
    Neo4jUnavailable,
    NoEmbeddings,
    UnknownType,
)

STATUS_FOR = {
    UnknownType: 400,
    ItemNotFound: 404,
    NoEmbeddings: 409,
    DimensionMismatch: 409,
    Neo4jUnavailable: 503,
    Neo4jAuthError: 503,
    Neo4jConfigError: 503,
}


class BadRequest(APIException):
    status_code = 400


class QueryRejected(BadRequest):
    """The full-text index refused the search text (e.g. Lucene's limit of 1,024 clauses)."""


class ModelUnavailable(APIException):
    """The model recorded for a type cannot be loaded on this server (not present locally, or not allowed)."""
    status_code = 503


class QueryEmbedderUnavailable(ModelUnavailable):
    """The remote query-embedding service (BACKEND_QUERY_EMBEDDER=remote) timed out, is down, refused the key, or
    serves another model or size than the type's EmbeddingSpace."""


class SpaceChanging(APIException):
    """A type's EmbeddingSpace changed during every try of a search (an import running): no answer from a stale
    model is given."""
    status_code = 503


def status_for(exc: Exception) -> int | None:
    if isinstance(exc, APIException):
        return exc.status_code
    for cls, code in STATUS_FOR.items():
        if isinstance(exc, cls):
            return code
    return None


def message_of(exc: Exception) -> str:
    return str(exc.detail) if isinstance(exc, APIException) else str(exc)
