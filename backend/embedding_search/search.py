"""The search reads over the graph: one item, the nearest items by vector, the similar items of one item, the
full-text (keyword) search, and both branches of hybrid search in one statement. Used by the API, the HTML pages,
``manage.py evaluate_search`` and ``bench/search.py``; the modes (keyword | semantic | hybrid, fusion) are
:mod:`embedding_search.modes`.

Scores: a vector hit's ``score`` is the **cosine similarity** (-1..1) of the query vector and the item's vector,
the same measure the console's Explore page shows (``console.explore.projection.nearest``). Neo4j's vector index reports
(1 + cosine) / 2 for its cosine indexes; :func:`cosine_from_index_score` converts it back, in this one place. A
keyword hit's ``score`` is Lucene's relevance score (unbounded, comparable only within one search).

Filters (:mod:`embedding_search.filters`): Neo4j 5.26's ``db.index.vector.queryNodes`` cannot filter before it ranks, so the
vector branch over-fetches: it asks the index for more candidates than k, keeps those passing the filters, and
asks again for four times as many until k pass, the index has no more, or :data:`VECTOR_MAX_CANDIDATES` were
looked at (then the answer is marked incomplete). The full-text branch returns every match, so it filters exactly.

The space: the vector and hybrid statements also return the type's EmbeddingSpace node as a stamp (:data:`SPACE_STAMP`,
in :attr:`Hits.stamp`) and ask the vector index only while that node has the query vector's dimensions, so that a
caller searching with a cached space (:func:`embedding_search.query_embedding.on_current_space`) learns in the same round
trip whether the space changed since.
"""
from __future__ import annotations

import re
import threading
import time
import weakref
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Callable, TypeVar

import numpy as np

from console.errors import DimensionMismatch, ItemNotFound, NoEmbeddings
from console.graphschema import FilterSpec, GraphSchema
from console.sinks.neo4j.cypher import filter_matches, filters_known, id_expression, quote, title_expression
from console.sinks.neo4j.schema import EMBEDDING_SPACE_LABEL
from console.sinks.neo4j.store import Neo4jStore
from embedding_search.errors import QueryRejected
from embedding_search.filters import NO_FILTERS, SearchFilters

VECTOR_MAX_CANDIDATES = 10_000   # the most index candidates a filtered vector search looks at
Specs = tuple[FilterSpec, ...]


def vector_branch(schema: GraphSchema, type_: str, specs: Specs) -> str:
    """The vector branch: `$fetch` index candidates, the best `$k` of those passing the filters (and not
    `$exclude`), and how many candidates the index gave (fewer than asked: it has no more)."""
    node_id, title = id_expression(schema, "node", (type_,)), title_expression(schema, "node", (type_,))
    return (
        "CALL db.index.vector.queryNodes($index, $fetch, $vector) YIELD node, score "
        "WITH collect({node: node, score: score}) AS found "
        "CALL (found) { UNWIND found AS candidate WITH candidate.node AS node, candidate.score AS score "
        f"WHERE {node_id} <> $exclude AND {filter_matches(specs)} "
        "WITH node, score ORDER BY score DESC LIMIT $k "
        f"RETURN collect({{id: {node_id}, title: {title}, score: score}}) AS semantic }} "
        "RETURN size(found) AS fetched, semantic")


def fulltext_branch(schema: GraphSchema, types: tuple[str, ...], specs: Specs) -> str:
    """The full-text branch: the best `$depth` matches of the labels `$labels` passing the filters, for the query
    `$q` and, for each of the query's `$words` that the index finds in fewer than `$few` items, that word's fuzzy
    term (:func:`fuzzy_words`); returns the matches (`keyword`) and the words searched fuzzily (`fuzzy`)."""
    node_id, title = id_expression(schema, "node", types), title_expression(schema, "node", types)
    return (
        "CALL () { UNWIND $words AS word "
        "CALL (word) { CALL db.index.fulltext.queryNodes($fulltext, word.word) YIELD node "
        "WITH node LIMIT $few RETURN count(node) AS found } "
        "WITH word, found WHERE found < $few RETURN collect(word) AS fuzzy } "
        "CALL (fuzzy) { "
        "CALL db.index.fulltext.queryNodes($fulltext, reduce(q = $q, w IN fuzzy | q + ' ' + w.fuzzy)) "
        "YIELD node, score "
        "WITH node, score, [l IN labels(node) WHERE l IN $labels][0] AS label "
        f"WHERE label IS NOT NULL AND {filter_matches(specs)} "
        f"WITH node, score, label ORDER BY score DESC, {node_id} LIMIT $depth "
        f"RETURN collect({{id: {node_id}, label: label, title: {title}, score: score}}) AS keyword }} "
        "RETURN keyword, [w IN fuzzy | w.word] AS fuzzy")


# The type's EmbeddingSpace node `s` as a stamp (null when there is none): what a cached space is checked against
# (embedding_search.query_embedding), read in the search statement itself, so that checking costs no round trip.
SPACE_STAMP = "s {.model, .dimensions, .query_prompt, .index_name, updated_at: toString(s.updated_at)}"
# The space node of `$type`, its `stamp`, and whether the vector branch may run (`current`): only when the node
# still has the query vector's `$dimensions`, so that a vector of a stale space never reaches the index.
SPACE_CHECK = (f"OPTIONAL MATCH (s:{EMBEDDING_SPACE_LABEL} {{type: $type}}) "
               f"WITH {SPACE_STAMP} AS stamp, coalesce(s.dimensions = $dimensions, false) AS current")


@lru_cache(maxsize=256)
def vector_statement(schema: GraphSchema, type_: str, specs: Specs) -> str:
    """Semantic: the stamp and the vector branch, one round trip."""
    return (f"{SPACE_CHECK} CALL (current) {{ WITH current WHERE current {vector_branch(schema, type_, specs)} }} "
            f"RETURN stamp, fetched, semantic, {filters_known(specs)}")


@lru_cache(maxsize=256)
def hybrid_statement(schema: GraphSchema, type_: str, specs: Specs) -> str:
    """Hybrid: the stamp and both branches in one statement, one round trip."""
    return (f"{SPACE_CHECK} CALL () {{ {fulltext_branch(schema, (type_,), specs)} }} "
            f"CALL (current) {{ WITH current WHERE current {vector_branch(schema, type_, specs)} }} "
            f"RETURN stamp, keyword, fuzzy, fetched, semantic, {filters_known(specs)}")


@lru_cache(maxsize=256)
def keyword_statement(schema: GraphSchema, types: tuple[str, ...], specs: Specs) -> str:
    return f"CALL () {{ {fulltext_branch(schema, types, specs)} }} RETURN keyword, fuzzy, {filters_known(specs)}"


# The full-text index's name per store, and when it was looked up (the lookup, SHOW INDEXES, is a round trip).
FULLTEXT_MAX_AGE_S = 300.0
_fulltext_names: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_fulltext_lock = threading.Lock()
Ran = TypeVar("Ran")


@dataclass
class Hits:
    """A search's hits, best first; ``complete`` is False when the vector branch stopped at
    :data:`VECTOR_MAX_CANDIDATES` candidates with fewer than k hits (more matching items may exist);
    ``examined``: the vector candidates it looked at; ``stamp``: the type's EmbeddingSpace as the search statement
    read it (:data:`SPACE_STAMP`; None when there is none), to compare with the space the query vector was made for;
    ``fuzzy``: the query's words that the keyword branch also searched as fuzzy terms (:func:`fuzzy_words`)."""

    results: list[dict]
    complete: bool = True
    examined: int = 0
    stamp: dict | None = None
    fuzzy: list[str] = field(default_factory=list)


def get_item(store: Neo4jStore, item_id: str, with_embedding: bool = False) -> dict:
    """The item's fields (its title, the properties the schema shows: ``shown`` names them), its ``type`` and
    ``degree``; with ``with_embedding`` its vector too (``embedding``). One round trip over every type."""
    rows = store.read(item_statement(store.schema, with_embedding), id=item_id)
    if not rows:
        raise ItemNotFound(f"No item with id {item_id!r}")
    row = rows[0]
    spec = store.schema.types[row["type"]]
    fields = row.pop("fields")
    row.update({k: fields.get(k) for k in spec.show})
    row["shown"] = list(spec.show)
    if not with_embedding:
        row.pop("embedding")
    return row


@lru_cache(maxsize=16)
def item_statement(schema: GraphSchema, with_embedding: bool) -> str:
    branches = []
    for type_, spec in schema.types.items():
        shown = ", ".join(f"{quote(p)}: n.{quote(p)}" for p in spec.show)
        vector = f"n.{quote(spec.vector_property)}"
        branches.append(
            f"MATCH (n:{quote(spec.label)} {{{quote(spec.id)}: $id}}) "
            f"RETURN n, '{type_}' AS type, n.{quote(spec.id)} AS id, n.{quote(spec.title)} AS title, "
            f"{{{shown}}} AS fields, {vector} IS NOT NULL AS has_embedding, "
            f"{vector if with_embedding else 'null'} AS embedding")
    return (f"CALL () {{ {' UNION '.join(branches)} }} RETURN id, type, title, fields, has_embedding, embedding, "
            "n.embedding_model AS embedding_model, COUNT { (n)--() } AS degree LIMIT 1")


def cosine_from_index_score(score: float) -> float:
    """Neo4j's cosine vector index scores (1 + cosine) / 2 (0..1); this is the cosine itself (-1..1)."""
    return 2.0 * float(score) - 1.0


def first_fetch(k: int, exclude_id: str | None = None) -> int:
    """Index candidates asked for first. The index is approximate (HNSW): asking it for more than k, then keeping
    the best k, makes the top k stable and closer to the exact nearest neighbours."""
    return max(4 * k, 50) + (1 if exclude_id else 0)


def _query_vector(type_: str, vector, space: dict) -> list[float]:
    vec = np.asarray(vector, dtype=np.float32).ravel()
    if vec.size != space["dimensions"]:
        raise DimensionMismatch(
            f"The query vector has {vec.size} dimensions but the {type_} index {space['index_name']!r} "
            f"has {space['dimensions']}"
        )
    return vec.tolist()


def _vector_rows(rows: list[dict], type_: str) -> list[dict]:
    for row in rows:
        row["type"] = type_
        row["score"] = cosine_from_index_score(row["score"])
    return rows


def vector_hits(store: Neo4jStore, type_: str, vector, k: int = 10, exclude_id: str | None = None, *,
                space: dict | None = None, filters: SearchFilters = NO_FILTERS, fetch: int | None = None,
                max_candidates: int = VECTOR_MAX_CANDIDATES) -> Hits:
    """The k nearest ``type_`` nodes passing ``filters``, best first, each ``{"id", "title", "type", "score"}``
    with ``score`` the cosine similarity (-1..1), over-fetching as the module says. ``space``: the type's
    :meth:`~console.sinks.neo4j.schema.SchemaAdmin.embedding_space` when the caller already looked it up (semantic search
    does, to pick the query model), so a search asks for it once. ``fetch``: the first candidate count;
    ``max_candidates``: the most it asks the index for. When the space node no longer has the space's dimensions
    the index is not asked (no hits) and the answer's ``stamp`` says what the node is now."""
    space = space if space is not None else store.embedding_space(type_)
    filters = filters.for_type(store.schema, type_)
    vec = _query_vector(type_, vector, space)
    fetch = min(fetch or first_fetch(k, exclude_id), max(max_candidates, k))
    statement = vector_statement(store.schema, type_, filters.specs)
    while True:
        row = store.read(statement, type=type_, dimensions=space["dimensions"], index=space["index_name"], fetch=fetch,
                          vector=vec, exclude=exclude_id or "", k=k, **filters.params())[0]
        filters.check_known(row, store.schema)
        hits, exhausted = row["semantic"], row["fetched"] < fetch
        if len(hits) >= k or exhausted or fetch >= max_candidates:
            return Hits(_vector_rows(hits, type_), len(hits) >= k or exhausted, row["fetched"], row["stamp"])
        fetch = min(4 * fetch, max_candidates)


def vector_search(store: Neo4jStore, type_: str, vector: np.ndarray | list[float], k: int = 10,
                  exclude_id: str | None = None, *, space: dict | None = None,
                  filters: SearchFilters = NO_FILTERS) -> list[dict]:
    """:func:`vector_hits`' hits alone."""
    return vector_hits(store, type_, vector, k, exclude_id, space=space, filters=filters).results


def similar_items(store: Neo4jStore, item_id: str, k: int = 5, filters: SearchFilters = NO_FILTERS, *,
                  on_space: Callable[[str, Callable[[dict | None], Hits]], Hits] | None = None) -> tuple[dict, Hits]:
    """The item and its k nearest items of the same type passing ``filters`` (cosine scores, the item itself left
    out). ``on_space(type, search)`` runs ``search(space)`` on the type's space as the caller keeps it (the backend's
    cached space, :func:`embedding_search.modes.similar_search`); by default the space is read here (``search(None)``). The
    item's own vector of another size than the space is a :class:`DimensionMismatch`."""
    item = get_item(store, item_id, with_embedding=True)
    filters.check_type(store.schema, item["type"])
    embedding = item.pop("embedding")
    if embedding is None:
        raise NoEmbeddings(
            f"Item {item_id!r} has no embedding yet: import the embeddings of type {item['type']!r} first"
        )

    def search(space: dict | None) -> Hits:
        return vector_hits(store, item["type"], embedding, k, exclude_id=item_id, filters=filters, space=space)

    return item, on_space(item["type"], search) if on_space else search(None)


def _fulltext_index(store: Neo4jStore, fresh: bool = False) -> str:
    """The full-text index's name: looked up (``SHOW INDEXES``) once per store and :data:`FULLTEXT_MAX_AGE_S`, or
    now when ``fresh``."""
    with _fulltext_lock:
        read_at, name = _fulltext_names.get(store, (0.0, None))
    if name and not fresh and time.monotonic() - read_at < FULLTEXT_MAX_AGE_S:
        return name
    index = store.find_fulltext_index()
    if index is None:
        raise NoEmbeddings("The full-text index does not exist yet: run python backend/manage.py load_demo_data")
    with _fulltext_lock:
        _fulltext_names[store] = (time.monotonic(), index["name"])
    return index["name"]


class _FulltextIndexGone(Exception):
    """The cached full-text index name is no longer an index (dropped, or made again under another name)."""


def with_fulltext(store: Neo4jStore, run: Callable[[str], Ran]) -> Ran:
    """``run(name of the full-text index)``, the name cached (:func:`_fulltext_index`); when the server no longer
    knows that name, looked up again and run once more."""
    try:
        with _fulltext_errors():
            return run(_fulltext_index(store))
    except _FulltextIndexGone:
        with _fulltext_errors():
            return run(_fulltext_index(store, fresh=True))


@contextmanager
def _fulltext_errors():
    """A search text the full-text index refuses (Lucene's limit of 1,024 clauses: Neo4j's ProcedureCallFailed
    client error from the index procedure) is a :class:`~embedding_search.errors.QueryRejected`; an index name the server
    does not know is :class:`_FulltextIndexGone`."""
    from neo4j.exceptions import ClientError

    try:
        yield
    except ClientError as exc:
        if exc.code != "Neo.ClientError.Procedure.ProcedureCallFailed":
            raise
        if "no such fulltext schema index" in (exc.message or "").lower():
            raise _FulltextIndexGone(exc.message) from None
        raise QueryRejected("The full-text index cannot run this search text (too many words or terms): "
                            "shorten the query 'q'") from None


def _keyword_rows(rows: list[dict], schema: GraphSchema) -> list[dict]:
    types = schema.label_to_type()
    for row in rows:
        row["type"] = types[row.pop("label")]
    return rows


def keyword_hits(store: Neo4jStore, text: str, type_: str | None = None, k: int = 10,
                 filters: SearchFilters = NO_FILTERS) -> Hits:
    """Full-text search over the schema's full-text properties passing ``filters``, rare words also searched as
    fuzzy terms (:func:`fuzzy_words`, named in :attr:`Hits.fuzzy`); ``score`` is Lucene's relevance score."""
    schema = store.schema
    filters = filters.for_type(schema, type_)
    types = (schema.type(type_).name,) if type_ else tuple(schema.types)
    statement = keyword_statement(schema, types, filters.specs)
    row = with_fulltext(store, lambda index: store.read(
        statement, fulltext=index, labels=[schema.types[t].label for t in types], depth=k,
        **fulltext_params(text), **filters.params())[0])
    filters.check_known(row, schema)
    return Hits(_keyword_rows(row["keyword"], schema), fuzzy=row["fuzzy"])


def keyword_search(store: Neo4jStore, text: str, type_: str | None = None, k: int = 10,
                   filters: SearchFilters = NO_FILTERS) -> list[dict]:
    """:func:`keyword_hits`' hits alone."""
    return keyword_hits(store, text, type_, k, filters).results


def hybrid_branches(store: Neo4jStore, text: str, type_: str, vector, depth: int, *, space: dict,
                    filters: SearchFilters = NO_FILTERS) -> tuple[Hits, Hits]:
    """Both branches of hybrid search in one statement: the best ``depth`` keyword hits (as :func:`keyword_hits`
    has them) and the best ``depth`` vector hits of ``type_``, each passing ``filters``, with the space's stamp as
    :func:`vector_hits` has it. Only
    when a selective filter leaves the vector branch short of ``depth`` hits does it ask again, with more candidates
    (:func:`vector_hits`)."""
    schema = store.schema
    filters = filters.for_type(schema, type_)
    vec = _query_vector(type_, vector, space)
    fetch = first_fetch(depth)
    statement = hybrid_statement(schema, type_, filters.specs)
    row = with_fulltext(store, lambda index: store.read(
        statement, fulltext=index, labels=[schema.type(type_).label], depth=depth, type=type_,
        dimensions=space["dimensions"], index=space["index_name"], fetch=fetch, vector=vec, exclude="", k=depth,
        **fulltext_params(text), **filters.params())[0])
    filters.check_known(row, schema)
    semantic, exhausted = row["semantic"], row["fetched"] < fetch
    if len(semantic) >= depth or exhausted:
        vector = Hits(_vector_rows(semantic, type_), True, row["fetched"], row["stamp"])
    else:
        vector = vector_hits(store, type_, vec, depth, space=space, filters=filters,
                             fetch=min(4 * fetch, VECTOR_MAX_CANDIDATES))
    return Hits(_keyword_rows(row["keyword"], schema), fuzzy=row["fuzzy"]), vector


_LUCENE_SPECIAL = set('+-&|!(){}[]^"~*?:\\/')
_LUCENE_OPERATORS = {"AND", "OR", "NOT", "TO"}
_WORD = re.compile(r"[^\W_]+")
FUZZY_BELOW = 3   # a query word the full-text index finds in fewer items than this is also searched fuzzily


def lucene_query(text: str) -> str:
    """Escape Lucene syntax so that user text is searched as words (all terms optional, ranked by score)."""
    escaped = "".join("\\" + ch if ch in _LUCENE_SPECIAL else ch for ch in text)
    words = [w for w in escaped.split() if w.upper() not in _LUCENE_OPERATORS]
    return " ".join(words) or '""'


def edit_distance(word: str) -> int:
    """The edits a fuzzy term of ``word`` allows, by its length (as Elasticsearch's ``AUTO``): none up to 2
    characters, 1 up to 5, else 2."""
    return 0 if len(word) <= 2 else 1 if len(word) <= 5 else 2


def fuzzy_words(text: str) -> list[dict]:
    """The query's words that may be searched fuzzily: letters and digits only (so nothing in them is Lucene
    syntax), lower-cased, long enough for an edit (:func:`edit_distance`); each ``{"word", "fuzzy"}``, the fuzzy
    terms ``word~1 ... word~edits`` (one per edit allowed, so that a term fewer edits away matches more of them and
    ranks first: the word itself matches all, and its exact term too). The full-text branch adds a word's fuzzy term to the query only when the word
    itself finds fewer than :data:`FUZZY_BELOW` items, so a word the index knows is searched as it is written."""
    out = {}
    for word in _WORD.findall(text.lower()):
        if edit_distance(word) and word.upper() not in _LUCENE_OPERATORS:
            out[word] = {"word": word, "fuzzy": " ".join(f"{word}~{d}" for d in range(1, edit_distance(word) + 1))}
    return list(out.values())


def fulltext_params(text: str) -> dict:
    """The full-text branch's query parameters for the user's ``text`` (:func:`fulltext_branch`)."""
    return {"q": lucene_query(text), "words": fuzzy_words(text), "few": FUZZY_BELOW}
