"""Sync: vectors follow the data. The nodes of a type whose vector is out of date are found in keyset pages and
embedded again, with the type's recorded model, straight from Neo4j to Neo4j (no files).

A node is out of date when it has no vector (``missing``), when its vector was made by another model than the
type's ``EmbeddingSpace`` records (``other model``), when the text the graph schema builds for it now differs from
the text its vector was made from (``stale``: the writer stores ``embedding_text_hash``, a hash of that text, with
every vector whose item carried its text, as the generator's files do), or when the host app marked it
(:func:`mark_changed`, taken first). Vectors live on their nodes, so a deleted node takes its vector with it.

Resumable: each batch is embedded and written in one transaction, and what is written is no longer out of date, so
a sync killed at any point and run again does no finished batch twice and leaves no gap. Two syncs at once: each
takes the type's lease (one ``EmbeddingSyncLease`` node per type, unique by constraint; the write lock Neo4j takes
on it makes the check-and-take atomic), renewed after every batch; the second one is refused with
:class:`SyncBusy` naming the holder, and takes over only when the lease has expired (a killed sync).
"""
from __future__ import annotations

import os
import socket
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Iterator, Sequence

import numpy as np

from console.errors import ConsoleError
from console.graphschema import TypeSpec, record_of
from console.sinks.neo4j.cypher import export_page, quote
from console.sinks.neo4j.schema import EMBEDDING_SPACE_LABEL, SYNC_LEASE_LABEL as LEASE_LABEL
from console.sinks.neo4j.store import Neo4jStore
from console.sinks.neo4j.writer import VectorWriter, WriteReport, text_hash

TEXT_HASH = "embedding_text_hash"    # hash of the text a node's vector was made from (set by the writer)
MARK = "embedding_sync_marked"       # set by mark_changed: the next sync takes the node first
LEASE_TTL_S = 300.0                  # a lease not renewed for this long (a killed sync) may be taken over
REASONS = ("marked", "missing", "other model", "stale")

Encode = Callable[[Sequence[str]], np.ndarray]   # documents (no query prompt) -> vectors, one row each


class SyncBusy(ConsoleError):
    """Another sync holds the type's lease."""


@dataclass
class Freshness:
    """A type's nodes by the state of their vector (``current`` + ``stale`` + ``missing`` + ``other_model`` =
    ``nodes``; ``marked`` counts the nodes marked changed, whatever their state)."""

    type: str
    model: str | None
    nodes: int = 0
    current: int = 0
    stale: int = 0
    missing: int = 0
    other_model: int = 0
    marked: int = 0

    @property
    def out_of_date(self) -> int:
        return self.nodes - self.current

    def to_embed(self, limit: int | None = None) -> int:
        """What a sync would embed, for a progress bar's total: the out-of-date nodes and the marked ones (a marked
        node that is also out of date counts twice), at most ``limit``."""
        total = self.out_of_date + self.marked
        return min(total, limit) if limit else total

    def add(self, reason: str | None, marked: bool) -> None:
        self.nodes += 1
        self.marked += marked
        name = "current" if reason is None else reason.replace(" ", "_")
        setattr(self, name, getattr(self, name) + 1)


@dataclass
class SyncReport:
    type: str
    model: str
    found: dict[str, int] = field(default_factory=lambda: {r: 0 for r in REASONS})
    written: WriteReport = field(default_factory=WriteReport)
    batches: int = 0
    stopped: bool = False

    @property
    def embedded(self) -> int:
        return self.written.written + self.written.unchanged

    def summary(self) -> str:
        found = ", ".join(f"{n} {reason}" for reason, n in self.found.items() if n) or "nothing out of date"
        verb = "would embed" if self.written.dry_run else "embedded"
        return (f"{self.type}: {found}; {verb} {sum(self.found.values()) if self.written.dry_run else self.embedded}"
                f" with {self.model}" + (" (stopped)" if self.stopped else ""))


def _state_columns(spec: TypeSpec) -> str:
    return (f"n.{quote(spec.vector_property)} IS NOT NULL AS __has_vector, n.embedding_model AS __model, "
            f"n.{TEXT_HASH} AS __text_hash, coalesce(n.{MARK}, false) AS __marked")


def _pages(store: Neo4jStore, type_: str, *, marked_only: bool, page_size: int) -> Iterator[list[dict]]:
    """The type's nodes in keyset pages of rows (the export's columns and the vector's state)."""
    spec = store.spec(type_)
    query = export_page(store.schema, type_, where=f"n.{MARK} = true" if marked_only else "",
                        extra=_state_columns(spec))
    yield from store.read_pages(query, spec.id, page_size=page_size)


def reason_of(row: dict, text: str, model: str | None, *, marks: bool = True) -> str | None:
    """Why a node's vector is out of date (one of :data:`REASONS`; "marked" only with ``marks``), or None when it
    is current."""
    if marks and row["__marked"]:
        return "marked"
    if not row["__has_vector"]:
        return "missing"
    if model is not None and row["__model"] != model:
        return "other model"
    if row["__text_hash"] != text_hash(text):
        return "stale"
    return None


def recorded_model(store: Neo4jStore, type_: str) -> dict | None:
    """The type's EmbeddingSpace (model, dimensions, query prompt), or None when it has never been embedded."""
    rows = store.query(f"MATCH (s:{EMBEDDING_SPACE_LABEL} {{type: $type}}) RETURN s.model AS model, "
                       "s.dimensions AS dimensions, s.query_prompt AS query_prompt", type=type_)
    return rows[0] if rows else None


def types_with_vectors(store: Neo4jStore) -> list[str]:
    """The schema's types that have a recorded model (an EmbeddingSpace): those a sync can embed."""
    return [t for t in store.schema.types if recorded_model(store, t) is not None]


def freshness(store: Neo4jStore, type_: str, *, page_size: int = 1000) -> Freshness:
    """Count a type's nodes by the state of their vector (reads every node once, page by page)."""
    space = recorded_model(store, type_)
    result = Freshness(type_, space["model"] if space else None)
    spec = store.spec(type_)
    for rows in _pages(store, type_, marked_only=False, page_size=page_size):
        for row in rows:
            reason = reason_of(row, record_of(spec, row)["text"], result.model, marks=False)
            result.add(reason, bool(row["__marked"]))
    return result


def out_of_date(store: Neo4jStore, type_: str, model: str | None, *, page_size: int = 500
                ) -> Iterator[tuple[dict, str]]:
    """(record, reason) of every out-of-date node: the marked ones first, then the others in id order."""
    spec = store.spec(type_)
    marked: set[str] = set()
    for rows in _pages(store, type_, marked_only=True, page_size=page_size):
        for row in rows:
            marked.add(row[spec.id])
            yield record_of(spec, row), "marked"
    for rows in _pages(store, type_, marked_only=False, page_size=page_size):
        for row in rows:
            record = record_of(spec, row)
            reason = reason_of(row, record["text"], model)
            if reason is not None and record["id"] not in marked:
                yield record, reason


def mark_changed(store: Neo4jStore, type_: str, ids: str | Sequence[str]) -> int:
    """Mark nodes whose text the host app changed: the next sync embeds them first. Returns how many were found."""
    spec = store.spec(type_)
    ids = [ids] if isinstance(ids, str) else list(ids)
    rows = store.query(f"UNWIND $ids AS id MATCH (n:{quote(spec.label)} {{{quote(spec.id)}: id}}) "
                       f"SET n.{MARK} = true RETURN count(n) AS n", ids=ids)
    return rows[0]["n"] if rows else 0


# -- the lease: one sync per type at a time --------------------------------------------------------------------
def default_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def take_lease(store: Neo4jStore, type_: str, owner: str, ttl_s: float = LEASE_TTL_S, *,
               renew: bool = False) -> None:
    """Take the type's lease (``renew``: extend the one this owner holds); :class:`SyncBusy` when another owner
    holds it and it has not expired (a holder on this machine whose process is gone has expired). The first SET
    takes the node's write lock, so the check that follows sees the last committed holder. Taking also makes the
    lease's constraint and looks for a gone holder; a renewal, once per batch, is the one statement."""
    gone = None
    if not renew:
        store.query(f"CREATE CONSTRAINT embedding_sync_lease_type IF NOT EXISTS FOR (l:{LEASE_LABEL}) "
                    "REQUIRE l.type IS UNIQUE")
        gone = _gone_holder(store, type_)
    row = store.query(
        f"MERGE (l:{LEASE_LABEL} {{type: $type}}) SET l.touched = datetime() "
        "WITH l, (l.owner IS NULL OR l.owner = $owner OR l.owner = $gone OR l.expires < datetime()) AS free "
        "SET l.owner = CASE WHEN free THEN $owner ELSE l.owner END, "
        "l.expires = CASE WHEN free THEN datetime() + duration({seconds: $ttl}) ELSE l.expires END "
        "RETURN free, l.owner AS holder, toString(l.expires) AS expires",
        type=type_, owner=owner, ttl=int(ttl_s), gone=gone)[0]
    if not row["free"]:
        raise SyncBusy(f"Another sync of {type_} is running ({row['holder']}; its lease runs until "
                       f"{row['expires']}): wait for it, or let its lease expire if it was killed")


def _gone_holder(store: Neo4jStore, type_: str) -> str | None:
    """The lease's holder when it is a process of this machine that no longer runs (a killed sync), else None."""
    rows = store.query(f"MATCH (l:{LEASE_LABEL} {{type: $type}}) RETURN l.owner AS owner", type=type_)
    holder = rows[0]["owner"] if rows else None
    host, _, rest = (holder or "").partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return None
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return holder
    except PermissionError:
        return None
    return None


def release_lease(store: Neo4jStore, type_: str, owner: str) -> None:
    store.query(f"MATCH (l:{LEASE_LABEL} {{type: $type}}) WHERE l.owner = $owner REMOVE l.owner, l.expires",
                type=type_, owner=owner)


@contextmanager
def lease(store: Neo4jStore, type_: str, owner: str | None = None, ttl_s: float = LEASE_TTL_S):
    owner = owner or default_owner()
    take_lease(store, type_, owner, ttl_s)
    try:
        yield lambda: take_lease(store, type_, owner, ttl_s, renew=True)
    finally:
        release_lease(store, type_, owner)


# -- the sync itself -----------------------------------------------------------------------------------------------
def sync_type(store: Neo4jStore, type_: str, encode: Encode, *, model: str, query_prompt: str | None = None,
              limit: int | None = None, batch_size: int = 64, dry_run: bool = False,
              progress: Callable[[int, str], None] | None = None, should_stop: Callable[[], bool] = lambda: False,
              owner: str | None = None) -> SyncReport:
    """Embed (``encode``: texts -> vectors, no prompt) and write the out-of-date nodes of ``type_``, ``batch_size``
    at a time, at most ``limit``; ``progress(done, reason)`` as batches land; ``should_stop()`` is asked between
    batches. ``dry_run`` counts what would be embedded and writes nothing.

    One ``VectorWriter.write`` takes the batches as they are embedded, so the next batch is embedded while the
    last one is written (its sessions), and the index and space checks run once per sync, not once per batch."""
    report = SyncReport(type_, model)
    report.written.dry_run = dry_run
    with lease(store, type_, owner) as renew:
        batches = _found_batches(store, type_, model, limit, batch_size, report)
        if dry_run:
            for _ in batches:
                report.batches += 1
            return report
        writer = VectorWriter(store, model=model, query_prompt=query_prompt, source=f"the sync of {type_}")

        def embedded() -> Iterator[dict]:
            for batch in batches:
                report.batches += 1
                vectors = np.asarray(encode([record["text"] for record in batch]), dtype=np.float32)
                yield from ({"id": r["id"], "type": r["type"], "text": r["text"], "embedding": v}
                            for r, v in zip(batch, vectors))
                renew()
                if should_stop():
                    report.stopped = True
                    return

        step = (lambda done, _total: progress(done, "")) if progress else None
        report.written = writer.write(embedded(), batch_size=batch_size, progress=step)
    return report


def _found_batches(store: Neo4jStore, type_: str, model: str, limit: int | None, batch_size: int,
                   report: SyncReport) -> Iterator[list[dict]]:
    """The out-of-date records, ``batch_size`` at a time, at most ``limit``, counted by reason in ``report``."""
    batch: list[dict] = []
    for record, reason in out_of_date(store, type_, model):
        if limit is not None and sum(report.found.values()) >= limit:
            break
        report.found[reason] += 1
        batch.append(record)
        if len(batch) == batch_size:
            yield batch
            batch = []
    if batch:
        yield batch
