"""Shared bits of the management commands: the store with user-facing errors, and tqdm progress."""
from __future__ import annotations

from django.core.management.base import CommandError

from console.errors import Neo4jStoreError


def open_store():
    from embedding_search.graph import get_store

    try:
        return get_store()
    except Neo4jStoreError as exc:
        raise CommandError(str(exc)) from None
