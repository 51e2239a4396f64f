"""``VectorWriter``: embeddings onto existing nodes, batch by batch, each batch one transaction, with a
``WriteReport`` of what it did (written, unchanged, unknown ids, rejected items with their reasons)."""
from __future__ import annotations

import hashlib
import numbers
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Mapping

import numpy as np

from console.sinks.neo4j.cypher import quote
from console.sinks.neo4j.schema import EMBEDDING_METADATA, IndexProgress
from console.sinks.neo4j.store import Neo4jStore
from console.files.records import item_field

DEFAULT_BATCH_SIZE = 2000
DEFAULT_WORKERS = 2          # sessions writing batches at once (import_embeddings --parallel; see VectorWriter)
UNKNOWN_IDS_KEPT = 1000      # unknown ids a WriteReport lists; unknown_count counts them all

Progress = Callable[[int, int | None], None]


@dataclass
class WriteReport:
    """What a write did. ``unknown_ids`` lists the first :data:`UNKNOWN_IDS_KEPT` ids not in the graph (so that a
    file of a million foreign ids does not hold them all in memory); ``unknown_count`` counts every one."""
    written: int = 0
    unchanged: int = 0
    unknown_ids: list[str] = field(default_factory=list)
    rejected: list[dict] = field(default_factory=list)
    dry_run: bool = False
    total: int = 0
    indexes_created: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0
    unknown_count: int = 0
    rejected_count: int = 0  # every rejection; ``rejected`` may hold only the first ones (the backend sends 100)
    excluded: int = 0  # items the operator excluded (console.explore.curation), left out before writing
    cleared: int = 0   # excluded items whose vector (from an earlier push) was removed (dry run: would be)

    def __post_init__(self) -> None:
        self.unknown_count = max(self.unknown_count, len(self.unknown_ids))
        self.rejected_count = max(self.rejected_count, len(self.rejected))
        del self.unknown_ids[UNKNOWN_IDS_KEPT:]

    def count_rejected(self) -> int:
        """Every rejection, also those only counted (the backend lists the first 100 of a request)."""
        return max(self.rejected_count, len(self.rejected))

    def add_unknown(self, ids: list[str], count: int | None = None) -> None:
        self.unknown_count += len(ids) if count is None else count
        self.unknown_ids.extend(ids[:max(0, UNKNOWN_IDS_KEPT - len(self.unknown_ids))])

    def to_dict(self) -> dict:
        return {
            "written": self.written,
            "unchanged": self.unchanged,
            "unknown_ids": list(self.unknown_ids),
            "unknown_count": self.unknown_count,
            "rejected": list(self.rejected),
            "rejected_count": self.count_rejected(),
            "dry_run": self.dry_run,
            "total": self.total,
            "indexes_created": list(self.indexes_created),
            "elapsed_s": round(self.elapsed_s, 3),
            "excluded": self.excluded,
            "cleared": self.cleared,
        }

    def merge(self, other: "WriteReport") -> None:
        self.written += other.written
        self.unchanged += other.unchanged
        self.add_unknown(other.unknown_ids, other.unknown_count)
        self.rejected_count = self.count_rejected() + other.count_rejected()
        self.rejected.extend(other.rejected)
        self.total += other.total
        self.indexes_created.extend(other.indexes_created)
        self.excluded += other.excluded
        self.cleared += other.cleared

    def summary(self) -> str:
        verb = "would write" if self.dry_run else "written"
        text = (f"{self.total} vectors: {self.written} {verb}, {self.unchanged} unchanged, "
                f"{self.unknown_count} unknown ids, {self.count_rejected()} rejected")
        if self.excluded:
            text += f"; {self.excluded} excluded items left out"
        if self.cleared:
            whose = ", {} of their vectors" if self.excluded else "; {} vectors of excluded items"
            text += whose.format(self.cleared) + f" {'would be ' if self.dry_run else ''}removed from Neo4j"
        return text


def text_hash(text: str) -> str:
    """``embedding_text_hash``: blake2b-128 of the UTF-8 text a vector was made from (console.sinks.neo4j.sync
    compares it with the text the graph schema builds now)."""
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).hexdigest()


def item_text_hash(item: Any) -> str | None:
    """The text hash of an item: of its ``text``, or the ``text_hash`` it carries (a push through the backend sends
    the hash, not the text); None when it has neither."""
    text, given = item_field(item, "text"), item_field(item, "text_hash")
    if isinstance(text, str):
        return text_hash(text)
    if isinstance(given, str) and len(given) == 32 and all(c in "0123456789abcdef" for c in given):
        return given
    return None


def embedding_hash(model: str, vector: np.ndarray) -> str:
    """Hash of the model name and the float32 bytes of a vector: equal hash = nothing to write."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(model.encode("utf-8"))
    digest.update(b"\0")
    digest.update(np.ascontiguousarray(vector, dtype="<f4").tobytes())
    return digest.hexdigest()


def _as_vector(value: Any) -> tuple[np.ndarray | None, str | None]:
    if value is None:
        return None, "missing 'embedding'"
    if isinstance(value, (str, bytes, Mapping)):
        return None, "'embedding' is not a list of numbers"
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "fiu":  # booleans, strings, objects
            return None, "'embedding' is not a list of numbers"
    elif isinstance(value, (list, tuple)):
        # numpy would turn true/false and "0.1" into numbers: only real numbers (or null, reported as NaN) pass
        if any(isinstance(v, (bool, np.bool_)) or not (v is None or isinstance(v, numbers.Real)) for v in value):
            return None, "'embedding' is not a list of numbers"
    try:
        vec = np.asarray(value, dtype=np.float32)
    except (TypeError, ValueError):
        return None, "'embedding' is not a list of numbers"
    if vec.ndim != 1 or vec.size == 0:
        return None, "'embedding' is not a flat, non-empty list of numbers"
    finite = np.isfinite(vec)
    if not finite.all():
        pos = int(np.argmin(finite))
        return None, f"'embedding' has a non-finite value (NaN or infinity) at position {pos}"
    return vec, None


class VectorWriter:
    """Write embeddings onto existing nodes, batch by batch, each batch one transaction.

    ``UNWIND $rows AS row MATCH (n:Label {id: row.id}) CALL db.create.setNodeVectorProperty(n, 'embedding', ...)``;
    a row whose ``embedding_hash`` (model + vector bytes) is already on the node is counted as unchanged and not
    sent again, so running an import twice changes nothing. Ids not in the graph are reported, bad vectors
    rejected with a reason, never silently dropped. When a type has no vector index yet, the index is created
    before its first batch and kept online while the vectors land (dropped again if none did); when one exists
    with other dimensions, :class:`DimensionMismatch` is raised before anything of that type is written.

    Why before, and why two sessions (``bench/import.py --strategy-ab``, 2 cores, Neo4j 5.26): building the HNSW
    index after the writes costs more than the writes themselves (100k x 384-d: writes 29-34 s, then ~65-70 s of
    index build), while with the index online each transaction adds its vectors as it commits, and two sessions
    do that in parallel: 100k x 384-d searchable after 49 s with 2 sessions, 70 s with 1, 99-101 s building after;
    50k x 1024-d 52 s against 87 s and 90-95 s. Without an index, a second session gains little. ``workers`` is
    that number of sessions (``import_embeddings --parallel N``): each runs one batch's transaction at a time, so
    more of them only help while the server has idle cores (bench/results/import-parallel.json).
    """

    def __init__(self, store: Neo4jStore, *, model: str, query_prompt: str | None = None,
                 dimensions: int | None = None, source: str = "the input", create_index: bool = True,
                 workers: int = DEFAULT_WORKERS):
        if not model:
            raise ValueError("VectorWriter needs the model name that produced the vectors")
        self.store = store
        self.model = model
        self.query_prompt = query_prompt
        self.declared_dimensions = dimensions
        self.source = source
        self.create_index = create_index
        self.workers = max(1, workers)

    def write(self, items: Iterable[Any], *, batch_size: int = DEFAULT_BATCH_SIZE, dry_run: bool = False,
              progress: Progress | None = None, total: int | None = None,
              index_progress: IndexProgress | None = None) -> WriteReport:
        """Write every item; ``progress(done, total)`` after each batch; ``index_progress(name, state, percent)``
        while a missing vector index is created before a type's first batch (it populates from vectors already on
        the nodes, if any)."""
        started = time.perf_counter()
        report = WriteReport(dry_run=dry_run)
        if total is None and hasattr(items, "__len__"):
            total = len(items)  # type: ignore[arg-type]
        dims: dict[str, int] = {}            # type -> dimensions of its vectors in this input
        had_index: dict[str, bool] = {}
        index_names: dict[str, str] = {}     # type -> its vector index (found or created before the first write)
        created: set[str] = set()            # types whose index this write created
        seen = _SeenIds()
        if not dry_run:
            self.store.ensure_schema()
        done = 0
        # Batches are checked here, in input order, and written by up to `workers` sessions at once (each batch
        # one transaction); at most `workers` batches are in flight, so memory stays bounded.
        pending: deque = deque()
        landed: dict[str, int] = {}          # type -> vectors now on their nodes (written or unchanged)
        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            def finish_one() -> None:
                nonlocal done
                future, size = pending.popleft()
                for type_, part in future.result():
                    report.merge(part)
                    landed[type_] = landed.get(type_, 0) + part.written + part.unchanged
                done += size
                report.total = done
                if progress:
                    progress(done, total)

            for batch in _batched(items, batch_size):
                rows_by_type: dict[str, list[dict]] = {}
                seen.start_batch([f"{item_field(i, 'type')}\0{item_field(i, 'id')}" for i in batch])
                for item in batch:
                    row = self._check(item, dims, had_index, seen, report)
                    if row is not None:
                        rows_by_type.setdefault(row.pop("type"), []).append(row)
                seen.end_batch()
                if not dry_run:
                    for type_ in rows_by_type:
                        if type_ not in index_names:
                            index_names[type_] = self._prepare_index(type_, dims[type_], had_index[type_], created,
                                                                     report, index_progress)
                pending.append((pool.submit(self._write_batches, rows_by_type, dry_run), len(batch)))
                while len(pending) >= self.workers:
                    finish_one()
            while pending:
                finish_one()
        report.total = done
        if not dry_run:
            for type_, n_dims in dims.items():
                if not landed.get(type_):
                    # nothing of this type reached a node (all ids unknown): no index, no space
                    if type_ in created:
                        self.store.drop_vector_index(type_)
                        report.indexes_created.remove(index_names[type_])
                    continue
                self.store.record_embedding_space(
                    type_, model=self.model, dimensions=n_dims, query_prompt=self.query_prompt,
                    index_name=index_names.get(type_) or self.store.spec(type_).vector_index,
                )
        report.elapsed_s = time.perf_counter() - started
        return report

    def _prepare_index(self, type_: str, n_dims: int, had_index: bool, created: set[str], report: WriteReport,
                       index_progress: IndexProgress | None) -> str | None:
        """The type's vector index before its first write: the existing one, or a new one (online while the
        vectors land), or None when there is none and ``create_index`` is off."""
        if had_index:
            return self.store.find_vector_index(type_)["name"]
        if not self.create_index:
            return None
        name = self.store.create_vector_index(type_, n_dims, progress=index_progress)
        created.add(type_)
        report.indexes_created.append(name)
        return name

    def _check(self, item, dims, had_index, seen, report) -> dict | None:
        item_id = item_field(item, "id")
        if not isinstance(item_id, str) or not item_id:
            report.rejected.append({"id": item_id, "reason": "missing 'id' (a non-empty string)"})
            return None
        type_ = item_field(item, "type")
        if type_ not in self.store.schema.types:
            report.rejected.append({
                "id": item_id,
                "reason": f"unknown type {type_!r}: expected one of {', '.join(self.store.schema.types)}",
            })
            return None
        vec, problem = _as_vector(item_field(item, "embedding"))
        if problem:
            report.rejected.append({"id": item_id, "reason": problem})
            return None
        if self.declared_dimensions and vec.size != self.declared_dimensions:
            report.rejected.append({
                "id": item_id,
                "reason": f"'embedding' has {vec.size} dimensions, expected {self.declared_dimensions} "
                          f"(declared 'dimensions')",
            })
            return None
        if type_ not in dims:
            index = self.store.check_dimensions(type_, vec.size, self.source)
            dims[type_] = vec.size
            had_index[type_] = index is not None
        elif vec.size != dims[type_]:
            report.rejected.append({
                "id": item_id,
                "reason": f"'embedding' has {vec.size} dimensions, expected {dims[type_]} "
                          f"(the first {type_} vector of {self.source})",
            })
            return None
        if not seen.add(f"{type_}\0{item_id}"):
            report.rejected.append({"id": item_id, "reason": "duplicate id in the input (the first one is kept)"})
            return None
        return {"type": type_, "id": item_id, "vector": vec, "hash": embedding_hash(self.model, vec),
                "text_hash": item_text_hash(item)}

    def _write_batches(self, rows_by_type: dict[str, list[dict]], dry_run: bool) -> list[tuple[str, WriteReport]]:
        parts = []
        for type_, rows in rows_by_type.items():
            part = WriteReport(dry_run=dry_run)
            self._write_batch(type_, rows, dry_run, part)
            parts.append((type_, part))
        return parts

    def _write_batch(self, type_: str, rows: list[dict], dry_run: bool, report: WriteReport) -> None:
        spec = self.store.spec(type_)
        node = f"(n:{quote(spec.label)} {{{quote(spec.id)}: id}})"
        lookup = f"UNWIND $ids AS id OPTIONAL MATCH {node} RETURN id, n IS NOT NULL AS found, " \
                 "n.embedding_hash AS hash, n.embedding_text_hash AS text_hash, n.embedding_sync_marked AS marked"
        write = (
            f"UNWIND $rows AS row WITH row, row.id AS id MATCH {node} "
            "CALL db.create.setNodeVectorProperty(n, $property, row.embedding) "
            "SET n.embedding_model = $model, n.embedding_dimensions = $dims, "
            "n.embedding_updated_at = datetime(), n.embedding_hash = row.hash, "
            "n.embedding_text_hash = row.text_hash, n.embedding_sync_marked = null "
            "RETURN count(n) AS written"
        )

        def plan(tx) -> tuple[list[str], list[dict], int]:
            state = {r["id"]: (r["found"], r["hash"], r["text_hash"], r["marked"])
                     for r in tx.run(lookup, ids=[r["id"] for r in rows])}
            unknown, todo, unchanged = [], [], 0
            for row in rows:
                found, old_hash, old_text_hash, marked = state[row["id"]]
                if not found:
                    unknown.append(row["id"])
                elif old_hash == row["hash"] and not marked and row["text_hash"] in (None, old_text_hash):
                    unchanged += 1
                else:
                    todo.append(row)
            return unknown, todo, unchanged

        def work(tx):
            unknown, todo, unchanged = plan(tx)
            written = 0
            if todo and not dry_run:
                payload = [{"id": r["id"], "embedding": r["vector"].tolist(), "hash": r["hash"],
                            "text_hash": r["text_hash"]} for r in todo]
                written = tx.run(write, rows=payload, model=self.model, dims=len(todo[0]["vector"]),
                                 property=spec.vector_property).single()[0]
            elif dry_run:
                written = len(todo)
            return unknown, written, unchanged

        if dry_run:
            unknown, written, unchanged = self.store.read_tx(work)
        else:
            unknown, written, unchanged = self.store.write_tx(work)
        report.add_unknown(unknown)
        report.written += written
        report.unchanged += unchanged


class _SeenIds:
    """The ``type + id`` keys met so far in one write, to reject a later duplicate (the first one is kept).

    What grows with the input, and why: duplicates must be found across the whole input, so one 8-byte hash
    (blake2b-64) per item is kept, in a sorted numpy array (8 bytes per item instead of ~100 for a set of id
    strings: 8 MB for a million items). The current batch's keys are held exactly in a set and merged into the
    array at the end of each batch (a linear merge of two sorted runs). Two different ids share a 64-bit hash
    with a chance of about n^2 / 2^65 (3e-8 for a million items); such an id would be reported as a duplicate,
    never written twice. The report's ``rejected`` list also grows, but only with bad items, each a line the user
    needs; ``unknown_ids`` is capped (:data:`UNKNOWN_IDS_KEPT`) and counted.
    """

    def __init__(self):
        self.before = np.empty(0, dtype=np.uint64)   # sorted hashes of the earlier batches' keys
        self.hashes: dict[str, int] = {}             # this batch's keys -> hash
        self.earlier: set[str] = set()               # this batch's keys already met in an earlier batch
        self.batch: set[str] = set()                 # this batch's keys accepted so far

    def start_batch(self, keys: list[str]) -> None:
        """Look this batch's keys up among the earlier batches in one vectorised step."""
        self.hashes = {key: int.from_bytes(hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest(), "little")
                       for key in keys}
        if self.before.size and self.hashes:
            values = np.fromiter(self.hashes.values(), dtype=np.uint64, count=len(self.hashes))
            at = np.minimum(np.searchsorted(self.before, values), self.before.size - 1)
            hit = self.before[at] == values
            self.earlier = {key for key, h in zip(self.hashes, hit) if h}

    def add(self, key: str) -> bool:
        """Remember ``key`` (one of those given to :meth:`start_batch`); False when it was met before."""
        if key in self.batch or key in self.earlier:
            return False
        self.batch.add(key)
        return True

    def end_batch(self) -> None:
        if self.batch:
            new = np.sort(np.fromiter((self.hashes[k] for k in self.batch), dtype=np.uint64, count=len(self.batch)))
            self.before = np.sort(np.concatenate([self.before, new]), kind="stable")  # timsort: a linear merge
        self.hashes, self.earlier, self.batch = {}, set(), set()


def clear_vectors(store: Neo4jStore, ids_by_type: Mapping[str, Iterable[str]], *, dry_run: bool = False,
                  batch_size: int = DEFAULT_BATCH_SIZE) -> int:
    """Remove the vector and the metadata the writer sets (:data:`EMBEDDING_METADATA`) from the nodes of these ids
    that carry a vector: items excluded after an earlier push, so that search no longer finds them. ``ids_by_type``
    maps a type (of the store's schema; another raises ``UnknownType`` before anything is removed) to ids; ids of
    no node or of a node without a vector are passed over. Batches of ``batch_size`` ids, each one statement.
    Returns how many nodes lost their vector; a dry run removes nothing and returns how many would. A node cleared
    has no ``embedding_hash``, so the next write of its id (the exclusion undone) writes its vector again."""
    cleared = 0
    specs = {type_: store.spec(type_) for type_ in ids_by_type}  # every type checked before anything is removed
    for type_, ids in ids_by_type.items():
        spec = specs[type_]
        vector = f"n.{quote(spec.vector_property)}"
        find = f"UNWIND $ids AS id MATCH (n:{quote(spec.label)} {{{quote(spec.id)}: id}}) WHERE {vector} IS NOT NULL "
        remove = ", ".join([vector, *(f"n.{name}" for name in EMBEDDING_METADATA)])
        cypher = find + ("" if dry_run else f"REMOVE {remove} ") + "RETURN count(n) AS n"
        run = store.read if dry_run else store.query
        for batch in _batched(sorted(set(ids)), batch_size):
            cleared += run(cypher, ids=batch)[0]["n"]
    return cleared


def _batched(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    if size < 1:
        raise ValueError("batch_size must be at least 1")
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
