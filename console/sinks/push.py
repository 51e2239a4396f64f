"""Push embeddings into Neo4j, straight over Bolt or through the backend's import endpoint.

Both functions take the same items (``EmbeddedItem`` objects or dicts with ``id``, ``type``, ``embedding``; or the
path of an embedding file, read with :mod:`console.files.embfiles` and its ``.meta.json``) and return the same
:class:`~console.sinks.neo4j.writer.WriteReport` (written, unchanged, unknown_ids, rejected, dry_run), so a page or a
CLI is one call. ``progress(done, total)`` is called after every batch. Both are safe to run twice: a vector that
is already on its node is counted as unchanged and not written again.
"""
from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping
from urllib.parse import urlsplit

import numpy as np

from console.explore.curation import LeaveOut
from console.errors import Neo4jStoreError
from console.graphschema import GraphSchema, SchemaError, compare, load_schema, schema_from_dict
from console.sinks.neo4j.schema import IndexProgress
from console.sinks.neo4j.settings import Neo4jSettings
from console.sinks.neo4j.store import Neo4jStore
from console.sinks.neo4j.writer import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_WORKERS,
    Progress,
    VectorWriter,
    WriteReport,
    clear_vectors,
    item_text_hash,
)
from console.files.records import item_field


class PushError(Neo4jStoreError):
    """The backend refused or failed a push; the message says why and what to do."""


_DEFAULT_PORTS = {"bolt": 7687, "neo4j": 7687, "http": 80, "https": 443}


def _endpoint(url: str) -> tuple[str, str, int | None]:
    """(scheme family, host, port) of a URI: bolt/neo4j(+s/+ssc) are one family (the same server), http and https
    are not."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower().split("+")[0]
    family = "neo4j" if scheme in ("bolt", "neo4j") else scheme
    try:
        port = parts.port or _DEFAULT_PORTS.get(scheme)
    except ValueError:  # a port that is not a number
        port = -1
    return family, (parts.hostname or "").lower(), port


def same_target(url: str, configured: str) -> bool:
    """Whether ``url`` reaches the same server (scheme family, host, port) as ``configured``."""
    return bool(configured) and _endpoint(url) == _endpoint(configured) and bool(_endpoint(url)[1])


def credential_for(url: str, typed: str, configured_url: str, stored: str, setting: str) -> str:
    """The secret to send to ``url``: what the operator typed, else the stored one (``setting``, e.g.
    NEO4J_PASSWORD) only when ``url`` is the server it belongs to (``configured_url``). A stored secret never goes to
    a target typed into the form: :class:`PushError` asks for that target's own credentials instead."""
    if typed:
        return typed
    if not stored:
        return ""
    if same_target(url, configured_url):
        return stored
    raise PushError(f"{url} is not the configured target ({configured_url}): {setting} is only sent there. Type the "
                    "credentials of this target, or set it as the configured one and restart the console")


IMPORT_PATH = "/api/embeddings/import/"
SCHEMA_PATH = "/api/graph-schema/"


def import_endpoint(url: str) -> str:
    """The backend's import endpoint for what the operator typed: the backend's base URL (``http://host:8000``) or
    the endpoint itself, with or without the last slash."""
    base = url.rstrip("/")
    if base.endswith(IMPORT_PATH.rstrip("/")):
        return base + "/"
    return base + IMPORT_PATH


@dataclass(frozen=True)
class TargetCheck:
    """What a connection test found: ``level`` "success" (a push can go) or "warning" (it would be refused)."""
    level: str
    message: str


def check_neo4j_target(settings: Neo4jSettings, type_: str, dimensions: int | None) -> TargetCheck:
    """Connect to ``settings`` and compare the type's vector index with vectors of ``dimensions``: none yet (the
    first push creates it), the same dimensions, or others (a push would be refused). Store errors raise."""
    with Neo4jStore(settings) as store:
        index = store.find_vector_index(type_)
    connected = f"Connected to {settings.uri} as {settings.user}."
    if index is None:
        return TargetCheck("success", f"{connected} No vector index for {type_} yet: the first push creates it.")
    if index.get("dimensions") != dimensions:
        return TargetCheck("warning", f"{connected} The index {index['name']} has {index['dimensions']} dimensions "
                                      f"but this file has {dimensions}: pushing it will be refused.")
    return TargetCheck("success", f"{connected} Index {index['name']}: {index['dimensions']} dimensions, like this "
                                  "file.")


def _safe_detail(response) -> str:
    """A short, printable message for a failed request: the backend's own JSON ``error`` (its documented error
    format), cut to one line of 200 characters; never the raw body of whatever answered."""
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        error = None
    if not isinstance(error, str) or not error.strip():
        return "not an answer of the embeddings import endpoint: check the URL"
    text = "".join(ch if ch.isprintable() else " " for ch in " ".join(error.split()))
    return text[:200] + ("…" if len(text) > 200 else "")


@dataclass
class LoadedItems:
    """What a push writes: the items (a file's are read lazily, each time they are iterated), the model and query
    prompt (given, or from the file's ``.meta.json``), their count when known, and a name for messages."""
    items: Iterable[Any]
    model: str | None
    query_prompt: str | None
    count: int | None
    source: str
    path: Path | None = None

    def count_all(self) -> int:
        """Read a file once through (an unreadable line raises its ``InputError`` before anything is written) and
        keep the exact count."""
        if self.path is not None or isinstance(self.items, LeaveOut):
            self.count = sum(1 for _ in self.items)
        elif self.count is None:
            self.items = list(self.items)
            self.count = len(self.items)
        return self.count

    @property
    def left_out(self) -> int:
        """Excluded items left out by the last read (``exclude=`` of :func:`load_items`)."""
        return self.items.left_out if isinstance(self.items, LeaveOut) else 0

    def left_out_by_type(self, known: Iterable[str]) -> dict[str, set[str]]:
        """The ids of the items the last read left out, by type (those of a ``known`` type, to clear in Neo4j)."""
        if not isinstance(self.items, LeaveOut):
            return {}
        known = set(known)
        return {type_: ids for type_, ids in self.items.by_type.items() if type_ in known}

    def types(self) -> set[str] | None:
        """The item types: the file's (its ``.meta.json``), or those of items in memory; None when unknown."""
        if self.path is not None:
            from console.files.embfiles import read_meta

            type_ = (read_meta(self.path) or {}).get("type")
            return {type_} if type_ else None
        if isinstance(self.items, (list, tuple)):
            return {item_field(i, "type") for i in self.items}
        return None


def load_items(items: Any, model: str | None = None, query_prompt: str | None = None, *,
               exclude: Iterable[str] | None = None) -> LoadedItems:
    """Items, model, query prompt, count and a source name; a path is read lazily with its metadata. Items whose id
    is in ``exclude`` (e.g. the run's exclusions, :mod:`console.explore.curation`) are left out as they are read and
    counted (``left_out``) on each read; the count is then unknown until :meth:`LoadedItems.count_all`."""
    loaded = _load_items(items, model, query_prompt)
    excluded = frozenset(exclude or ())
    if excluded and not isinstance(loaded.items, LeaveOut):
        if loaded.path is None and iter(loaded.items) is loaded.items:  # a generator: kept, to be read twice
            loaded.items = list(loaded.items)
        loaded.items, loaded.count = LeaveOut(loaded.items, excluded), None
    return loaded


def _load_items(items: Any, model: str | None, query_prompt: str | None) -> LoadedItems:
    if isinstance(items, LoadedItems):
        return items
    if isinstance(items, (str, Path)):
        from console.files.embfiles import read_embeddings, read_meta

        path = Path(items)
        meta = read_meta(path) or {}
        model = model or meta.get("model")
        query_prompt = query_prompt if query_prompt is not None else meta.get("query_prompt")
        return LoadedItems(_Reread(path, read_embeddings), model, query_prompt, meta.get("count"), path.name, path)
    count = len(items) if hasattr(items, "__len__") else None
    return LoadedItems(items, model, query_prompt, count, "the input")


class _Reread:
    """A file's items, read again from the start each time they are iterated."""

    def __init__(self, path: Path, read):
        self.path, self.read = path, read

    def __iter__(self):
        return iter(self.read(self.path))


def _settings(settings: Neo4jSettings | Mapping | None) -> Neo4jSettings:
    if settings is None:
        return Neo4jSettings.from_env()
    if isinstance(settings, Neo4jSettings):
        return settings
    return Neo4jSettings.from_mapping(settings)


def _need_model(model: str | None, source: str) -> str:
    if not model:
        raise PushError(
            f"{source} does not say which model made the vectors (no .meta.json beside it): pass the model name, "
            "so that semantic search embeds queries with the same model"
        )
    return model


def push_to_neo4j(items: Any, settings: Neo4jSettings | Mapping | None = None, *, model: str | None = None,
                  query_prompt: str | None = None, batch_size: int = DEFAULT_BATCH_SIZE, dry_run: bool = False,
                  progress: Progress | None = None, index_progress: IndexProgress | None = None,
                  exclude: Iterable[str] | None = None, schema: GraphSchema | None = None) -> WriteReport:
    """Write the vectors onto their nodes over Bolt (:class:`VectorWriter`) as ``schema`` (the graph description;
    default: the console's own, :func:`~console.graphschema.load_schema`) says; ``dry_run`` only counts.
    ``index_progress(name, state, percent)`` follows a missing vector index while it is created before the first
    batch (e.g. "building recipe_embedding: 40%" when the nodes already hold vectors). Items whose id is in
    ``exclude`` are not written, and the vectors an earlier push gave them are removed from their nodes; the report
    counts both (``excluded``, ``cleared``)."""
    loaded = load_items(items, model, query_prompt, exclude=exclude)
    _need_model(loaded.model, loaded.source)
    if exclude and loaded.count is None:
        loaded.count_all()  # the count without the excluded items, for the progress (a broken line raises here)
    with Neo4jStore(_settings(settings), schema=schema) as store:
        return write_loaded(store, loaded, batch_size=batch_size, dry_run=dry_run, progress=progress,
                            index_progress=index_progress)


def write_loaded(store: Neo4jStore, loaded: LoadedItems, *, batch_size: int = DEFAULT_BATCH_SIZE,
                 dry_run: bool = False, progress: Progress | None = None,
                 index_progress: IndexProgress | None = None, workers: int = DEFAULT_WORKERS) -> WriteReport:
    """Write loaded items over an open store (``push_to_neo4j`` and ``manage.py import_embeddings``); ``workers``
    sessions write batches at once. The items left out as excluded lose the vector they may hold from an earlier
    push (:func:`~console.sinks.neo4j.writer.clear_vectors`; a dry run only counts them)."""
    model = _need_model(loaded.model, loaded.source)
    writer = VectorWriter(store, model=model, query_prompt=loaded.query_prompt, source=loaded.source,
                          workers=workers)
    report = writer.write(loaded.items, batch_size=batch_size, dry_run=dry_run, progress=progress,
                          total=loaded.count, index_progress=index_progress)
    report.excluded = loaded.left_out
    report.cleared = clear_vectors(store, loaded.left_out_by_type(store.schema.types), dry_run=dry_run,
                                   batch_size=batch_size)
    return report


def _item_payload(item: Any) -> dict:
    embedding = item_field(item, "embedding")
    if isinstance(embedding, np.ndarray):
        embedding = embedding.astype(np.float32).tolist()
    payload = {"id": item_field(item, "id"), "type": item_field(item, "type"), "embedding": embedding}
    text_hash = item_text_hash(item)  # so that a sync later knows which text the vector was made from
    if text_hash:
        payload["text_hash"] = text_hash
    return payload


def _finite(value: Any) -> Any:
    """NaN/infinity are not JSON: send them as null so that the backend rejects that item with its reason."""
    if isinstance(value, list):
        return [v if not isinstance(v, float) or np.isfinite(v) else None for v in value]
    return value


def _import_answer(response, url: str) -> dict:
    """The import report the backend answered; :class:`PushError` saying what to do for any other answer."""
    if response.status_code in (401, 403):
        raise PushError(f"The backend at {url} refused the token (HTTP {response.status_code}): "
                        "use the value of its EMBEDDINGS_IMPORT_TOKEN setting")
    if 300 <= response.status_code < 400:
        raise PushError(f"The backend at {url} answered HTTP {response.status_code} (a redirect, not followed): "
                        "use the URL it redirects to")
    if response.status_code >= 400:
        raise PushError(f"The backend at {url} answered HTTP {response.status_code}: {_safe_detail(response)}")
    try:
        answer = response.json()
        answer["written"], answer["unchanged"], answer["unknown_ids"], answer["rejected"]  # noqa: B018
    except (ValueError, KeyError, TypeError):
        raise PushError(f"The backend at {url} answered HTTP {response.status_code} without an import report: "
                        "check the URL (it must be the backend's /api/embeddings/import/)") from None
    return answer


def push_to_backend(items: Any, url: str, token: str, *, model: str | None = None,
                    query_prompt: str | None = None, batch_size: int = DEFAULT_BATCH_SIZE, dry_run: bool = False,
                    progress: Progress | None = None, timeout: float = 300,
                    exclude: Iterable[str] | None = None, schema: GraphSchema | None = None) -> WriteReport:
    """POST the vectors in batches to the backend's ``/api/embeddings/import/`` (``Authorization: Token ...``),
    after checking that the backend's graph schema (``/api/graph-schema/``) agrees with ``schema`` (the console's own by
    default) on the types pushed: where they differ, :class:`PushError` names both before anything is sent;
    items whose id is in ``exclude`` are not sent: their ids and types go in the requests' ``exclude`` lists (at most
    ``batch_size`` a request, with the batches, then alone), so that the backend removes the vectors an earlier push
    gave them. The report counts both (``excluded``, ``cleared``)."""
    import requests

    loaded = load_items(items, model, query_prompt, exclude=exclude)
    model, query_prompt = _need_model(loaded.model, loaded.source), loaded.query_prompt
    total = loaded.count_all() if exclude and loaded.count is None else loaded.count
    report = WriteReport(dry_run=dry_run)
    headers = {"Authorization": f"Token {token}", "Content-Type": "application/json"}
    theirs = check_backend_schema(url, schema or load_schema(), loaded.types(), timeout=timeout)
    done = 0
    pending: list[dict] = []
    left_out = [{"id": i, "type": t} for t, ids in loaded.left_out_by_type(theirs.types).items() for i in sorted(ids)]
    exclude_chunks = deque(left_out[at:at + batch_size] for at in range(0, len(left_out), batch_size))

    def send(batch: list[dict]) -> None:
        nonlocal done
        dims = next((len(i["embedding"]) for i in batch if isinstance(i["embedding"], list)), None)
        body = {
            "model": model, "dimensions": dims, "query_prompt": query_prompt, "dry_run": dry_run,
            # a missing vector index is created with the first batch and stays online for the rest (create_index
            # defaults to true): faster than building it after the last batch (bench/import.py --strategy-ab)
            "items": [{**i, "embedding": _finite(i["embedding"])} for i in batch],
        }
        if exclude_chunks:
            body["exclude"] = exclude_chunks.popleft()  # their vectors are cleared (writer.clear_vectors)
        try:
            # no redirects: the token goes to this URL only
            response = requests.post(url, data=json.dumps(body), headers=headers, timeout=timeout,
                                     allow_redirects=False)
        except requests.ConnectionError:
            raise PushError(f"Cannot reach the backend at {url}: is it running (./start.sh --demo, or gunicorn "
                            "-c backend/gunicorn.conf.py)? Check the URL") from None
        except requests.Timeout:
            raise PushError(f"The backend at {url} did not answer within {timeout:.0f} s") from None
        answer = _import_answer(response, url)
        part = WriteReport(
            written=answer["written"], unchanged=answer["unchanged"], unknown_ids=answer["unknown_ids"],
            unknown_count=answer.get("unknown_count", 0),  # absent from older backends: the list's length then
            rejected=answer["rejected"], total=len(batch), indexes_created=answer.get("indexes_created", []),
            rejected_count=answer.get("rejected_count", 0),  # the backend lists only the first rejections
            cleared=answer.get("cleared", 0),
        )
        report.merge(part)
        done += len(batch)
        if progress:
            progress(done, total)

    for item in loaded.items:
        pending.append(_item_payload(item))
        if len(pending) >= batch_size:
            send(pending)
            pending = []
    if pending:
        send(pending)
    while exclude_chunks:  # exclusions beyond the batches (all of them when every item is excluded)
        send([])
    report.total = done
    report.excluded = loaded.left_out
    return report


def check_backend_schema(url: str, mine: GraphSchema, types: set[str] | None, *, timeout: float = 30) -> GraphSchema:
    """The backend's graph schema (``GET /api/graph-schema/`` beside the import endpoint ``url``), after checking that it
    agrees with ``mine`` on ``types`` (all of mine when None): :class:`PushError` naming both schemas otherwise. A
    backend that answers no schema (an older one) is taken to have ``mine``."""
    import requests

    schema_url = url[: -len(IMPORT_PATH)] + SCHEMA_PATH if url.endswith(IMPORT_PATH) else url.rstrip("/") + SCHEMA_PATH
    try:
        response = requests.get(schema_url, timeout=timeout, allow_redirects=False)
    except requests.ConnectionError:
        raise PushError(f"Cannot reach the backend at {url}: is it running (./start.sh --demo, or gunicorn "
                        "-c backend/gunicorn.conf.py)? Check the URL") from None
    except requests.Timeout:
        raise PushError(f"The backend at {schema_url} did not answer within {timeout:.0f} s") from None
    try:
        answer = response.json() if response.status_code == 200 else None
    except ValueError:
        answer = None
    if not isinstance(answer, dict) or "types" not in answer:
        return mine  # a backend without the endpoint (older, or not ours): the import request will say what it is
    try:
        theirs = schema_from_dict(answer, source=f"the backend's schema ({schema_url})")
    except SchemaError as exc:
        raise PushError(f"The backend at {schema_url} answered a graph schema this console cannot read: {exc}") from None
    problems = compare(mine, theirs, sorted(types or mine.types), mine_name=f"the console's schema ({mine.source})",
                       theirs_name=f"the backend's ({schema_url})")
    if problems:
        raise PushError("The graph schemas disagree, nothing was sent: " + "; ".join(problems) +
                        " — use the same schema file for both (GRAPH_SCHEMA_FILE)")
    return theirs
