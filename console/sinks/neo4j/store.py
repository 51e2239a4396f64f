"""``Neo4jStore``: one driver for one database. Every statement goes through :meth:`Neo4jStore.query` (or
:meth:`Neo4jStore.read`, routed to read servers) or a managed transaction, and driver errors become the project's own (``Neo4jUnavailable``, ``Neo4jAuthError``,
``Neo4jConfigError`` in :mod:`console.errors`). Schema and index management come from
:class:`console.sinks.neo4j.schema.SchemaAdmin`."""
from __future__ import annotations

import logging
from contextlib import contextmanager
from typing import Callable, Iterator

from neo4j import RoutingControl

from console.errors import Neo4jAuthError, Neo4jConfigError, Neo4jUnavailable
from console.graphschema import GraphSchema, load_schema
from console.sinks.neo4j.schema import SchemaAdmin
from console.sinks.neo4j.settings import Neo4jSettings

# The driver logs connection trouble on the "neo4j" logger before it raises (e.g. "<CONNECTION> error: Failed to read
# from defunct connection" and "Transaction failed and will be retried" when Neo4j dies mid-push). With no logging
# configured, Python's last-resort handler prints those lines to stderr ahead of our own clear error. A NullHandler
# keeps them out of the user's terminal; an application that configures logging (root handlers) still receives them.
logging.getLogger("neo4j").addHandler(logging.NullHandler())


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


class Neo4jStore(SchemaAdmin):
    """One driver for one database; every query goes through :meth:`query` or a managed transaction. ``schema``:
    the graph's description (default: :func:`console.graphschema.load_schema`, i.e. ``$GRAPH_SCHEMA_FILE`` or the
    demo's)."""

    def __init__(self, settings: Neo4jSettings, *, verify: bool = True, schema: GraphSchema | None = None):
        import neo4j

        self.settings = settings
        self.schema = schema if schema is not None else load_schema()
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

    def read(self, cypher: str, **params) -> list[dict]:
        """Like :meth:`query`, for a statement that only reads: routed to any server that serves reads (on a
        Neo4j cluster, the secondaries and followers, so searches leave the primary to the writes)."""
        with self._errors_translated():
            records, _, _ = self.driver.execute_query(cypher, params, database_=self.settings.database,
                                                      routing_=RoutingControl.READ)
        return [r.data() for r in records]

    def read_pages(self, cypher: str, key: str, *, page_size: int, limit: int | None = None,
                   **params) -> Iterator[list[dict]]:
        """Keyset pages of a reading statement that takes ``$after`` (the previous page's last ``key``, null first)
        and ``$page`` (rows wanted), e.g. ``cypher.export_page``: one list of rows per page, until a short page or
        ``limit`` rows in all. Memory holds one page whatever the size of the graph."""
        after, produced = None, 0
        while True:
            page = page_size if limit is None else min(page_size, limit - produced)
            if page <= 0:
                return
            rows = self.read(cypher, after=after, page=page, **params)
            if rows:
                yield rows
            produced += len(rows)
            if len(rows) < page:
                return
            after = rows[-1][key]

    def write_tx(self, work: Callable, *args):
        """Run ``work(tx, *args)`` in one managed write transaction (retried on transient errors)."""
        with self._errors_translated(), self.driver.session(database=self.settings.database) as session:
            return session.execute_write(work, *args)

    def read_tx(self, work: Callable, *args):
        with self._errors_translated(), self.driver.session(database=self.settings.database) as session:
            return session.execute_read(work, *args)

