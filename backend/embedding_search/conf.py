"""The app's settings, in one place: each is taken from the host project's Django settings when it sets it, else
from its environment variable (backend/README.md's table), else its default. So a host project needs only ``NEO4J``
(or the ``NEO4J_*`` variables) and ``GRAPH_SCHEMA_FILE``; the rest have defaults.

``from embedding_search.conf import settings`` reads like ``django.conf.settings`` (names the app does not own pass
through to Django's). All values are read and checked once, at start (``EmbeddingSearchConfig.ready``): a bad one
stops the server with the setting's name and what it must be.
"""
from __future__ import annotations

import os
from functools import lru_cache
from typing import Any, Callable

from django.conf import settings as django_settings
from django.core.exceptions import ImproperlyConfigured

from console.options import BACKENDS, QUANTIZATIONS


def _text(name: str, default: str = "") -> str:
    return os.environ.get(name, default).strip()


def positive_int(name: str, default: int, minimum: int = 1) -> int:
    """The whole number in the environment variable ``name`` (``default`` when unset), at least ``minimum``; a
    bad one stops the start naming the variable (the demo host's settings.py reads its own numbers with it too)."""
    raw = _text(name) or str(default)
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a whole number, not {raw!r}") from None
    if value < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, not {value}")
    return value


def _positive_float(name: str, default: float) -> float:
    raw = _text(name) or str(default)
    try:
        value = float(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number of seconds, not {raw!r}") from None
    if not value > 0:
        raise ImproperlyConfigured(f"{name} must be more than 0, not {value}")
    return value


def _choice(name: str, default: str, choices: tuple[str, ...], lower: bool = False) -> str:
    value = (_text(name).lower() if lower else _text(name)) or default
    if value not in choices:
        raise ImproperlyConfigured(f"{name} must be one of {', '.join(choices)}, not {value!r}")
    return value


def _rate(name: str, default: str) -> str | None:
    value = _text(name, default)
    return None if value.lower() in ("", "off", "none", "0") else value


def _embeddings_url() -> str:
    url = _text("BACKEND_EMBEDDINGS_URL").rstrip("/").removesuffix("/v1")
    if _choice("BACKEND_QUERY_EMBEDDER", "local", ("local", "remote"), lower=True) == "remote" and \
            not url.startswith(("http://", "https://")):
        raise ImproperlyConfigured("BACKEND_QUERY_EMBEDDER=remote needs BACKEND_EMBEDDINGS_URL, the service's base "
                                   f"URL (e.g. http://gpu-host:8080), not {url!r}")
    return url


# name -> the default, read from the environment when the host's settings do not set the name
DEFAULTS: dict[str, Callable[[], Any]] = {
    "NEO4J": lambda: {"uri": _text("NEO4J_URI", "bolt://127.0.0.1:7687"), "user": _text("NEO4J_USER", "neo4j"),
                      "password": os.environ.get("NEO4J_PASSWORD", ""), "database": _text("NEO4J_DATABASE", "neo4j")},
    # the graph's description (console/demo_schema.toml, the demo's, when unset)
    "GRAPH_SCHEMA_FILE": lambda: _text("GRAPH_SCHEMA_FILE") or None,
    "EMBEDDINGS_IMPORT_TOKEN": lambda: os.environ.get("EMBEDDINGS_IMPORT_TOKEN", ""),
    "IMPORT_BATCH_SIZE": lambda: positive_int("EMBEDDINGS_IMPORT_BATCH_SIZE", 2000),
    # one import request: at most this many bytes of body and items (413 beyond: send smaller batches); the
    # console's push sends 2,000 items per request, ~45 MB of JSON for 1024-d vectors
    "IMPORT_MAX_BODY_BYTES": lambda: positive_int("EMBEDDINGS_IMPORT_MAX_BYTES", 64 * 1024 * 1024),
    "IMPORT_MAX_ITEMS": lambda: positive_int("EMBEDDINGS_IMPORT_MAX_ITEMS", 5000),
    "IMPORT_REJECTED_SHOWN": lambda: 100,  # rejected items listed in an import's answer; all are counted by reason
    # longer queries get a 400 (Lucene refuses more than 1,024 clauses; a model reads ~256-512 tokens)
    "SEARCH_MAX_QUERY_CHARS": lambda: positive_int("SEARCH_MAX_QUERY_CHARS", 500),
    "SEARCH_MAX_QUERY_TERMS": lambda: positive_int("SEARCH_MAX_QUERY_TERMS", 64),
    # when set, the only models the import endpoint records and search loads (names or folders)
    "QUERY_MODELS": lambda: [m.strip() for m in _text("BACKEND_QUERY_MODELS").split(",") if m.strip()],
    # who embeds a search query (embedding_search.query_embedding): "local", this process, with the model's files
    # on this machine; or "remote", an OpenAI-compatible embeddings service (`embedding-console serve` on the GPU
    # machine, HF TEI, vLLM, Infinity) at EMBEDDINGS_URL, with EMBEDDINGS_API_KEY (a Bearer token) if it needs one
    "QUERY_EMBEDDER": lambda: _choice("BACKEND_QUERY_EMBEDDER", "local", ("local", "remote"), lower=True),
    "EMBEDDINGS_URL": _embeddings_url,
    "EMBEDDINGS_API_KEY": lambda: os.environ.get("BACKEND_EMBEDDINGS_API_KEY", ""),
    "EMBEDDINGS_TIMEOUT": lambda: _positive_float("BACKEND_EMBEDDINGS_TIMEOUT", 5.0),  # s to connect, to answer
    # how long a worker serves a type's cached EmbeddingSpace before reading it again with its vector index; a
    # re-import is seen at once anyway, by the search statement's stamp (embedding_search.query_embedding)
    "SPACE_MAX_AGE_S": lambda: _positive_float("BACKEND_SPACE_MAX_AGE_S", 30.0),
    # recent query vectors kept per worker process (model, dimensions, prompt and text); 0 turns it off
    "QUERY_CACHE_SIZE": lambda: positive_int("BACKEND_QUERY_CACHE_SIZE", 1024, minimum=0),
    # the query embedder's inference backend and quantisation (the generator's --backend/--quantize)
    "QUERY_BACKEND": lambda: _choice("BACKEND_QUERY_BACKEND", "torch", BACKENDS),
    "QUERY_QUANTIZE": lambda: _choice("BACKEND_QUERY_QUANTIZE", "none", QUANTIZATIONS),
    # requests per client address and scope ("N/s", "N/min", "N/hour"; None for no limit)
    "THROTTLE_RATES": lambda: {"search": _rate("BACKEND_THROTTLE_SEARCH", "300/min"),
                               "similar": _rate("BACKEND_THROTTLE_SIMILAR", "300/min"),
                               "import": _rate("BACKEND_THROTTLE_IMPORT", "600/min")},
}


class AppSettings:
    """``settings.NAME``: the host's value, else the default of :data:`DEFAULTS` (read once per process)."""

    def __getattr__(self, name: str) -> Any:
        if name not in DEFAULTS:
            return getattr(django_settings, name)
        return _value(name)

    def check(self) -> None:
        """Read every setting now, so that a bad one stops the start naming itself."""
        for name in DEFAULTS:
            _value(name)


@lru_cache(maxsize=None)
def _value(name: str) -> Any:
    if hasattr(django_settings, name):
        return getattr(django_settings, name)
    return DEFAULTS[name]()


settings = AppSettings()
