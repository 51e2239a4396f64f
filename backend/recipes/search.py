"""The search reads over the graph: one item, the nearest items by vector, the similar items of one item, and the
full-text (keyword) search. Used by the API, the HTML pages, ``manage.py evaluate_search`` and ``bench/search.py``.

Scores: a vector hit's ``score`` is the **cosine similarity** (-1..1) of the query vector and the item's vector,
the same measure the console's Explore page shows (``console.projection.nearest``). Neo4j's vector index reports
(1 + cosine) / 2 for its cosine indexes; :func:`vector_search` converts it back, in this one place. A keyword
hit's ``score`` is Lucene's relevance score (unbounded, comparable only within one search).
"""
from __future__ import annotations

import numpy as np

from console.errors import DimensionMismatch, ItemNotFound, NoEmbeddings
from console.neo4j.schema import EMBEDDING_PROPERTY, LABEL_TO_TYPE, TYPE_TO_LABEL, label_for
from console.neo4j.store import Neo4jStore
from recipes.errors import QueryRejected


def get_item(store: Neo4jStore, item_id: str) -> dict:
    labels = " UNION ".join(f"MATCH (n:{label} {{id: $id}}) RETURN n" for label in TYPE_TO_LABEL.values())
    rows = store.query(
        f"CALL () {{ {labels} }} "
        "RETURN n.id AS id, [l IN labels(n) WHERE l IN $labels][0] AS label, "
        "coalesce(n.title, n.name) AS title, n.description AS description, n.text AS text, "
        "n.url AS url, n.embedding_model AS embedding_model, n.embedding IS NOT NULL AS has_embedding, "
        "COUNT { (n)--() } AS degree",
        id=item_id, labels=list(TYPE_TO_LABEL.values()),
    )
    if not rows:
        raise ItemNotFound(f"No item with id {item_id!r}")
    row = rows[0]
    row["type"] = LABEL_TO_TYPE[row.pop("label")]
    return row


def cosine_from_index_score(score: float) -> float:
    """Neo4j's cosine vector index scores (1 + cosine) / 2 (0..1); this is the cosine itself (-1..1)."""
    return 2.0 * float(score) - 1.0


def vector_search(store: Neo4jStore, type_: str, vector: np.ndarray | list[float], k: int = 10,
                  exclude_id: str | None = None, *, space: dict | None = None) -> list[dict]:
    """The k nearest ``type_`` nodes, best first, each ``{"id", "title", "type", "score"}`` with ``score`` the cosine
    similarity (-1..1). ``space``: the type's :meth:`~console.neo4j.schema.SchemaAdmin.embedding_space` when the
    caller already looked it up (semantic search does, to pick the query model), so a search asks for it once."""
    space = space if space is not None else store.embedding_space(type_)
    vec = np.asarray(vector, dtype=np.float32).ravel()
    if vec.size != space["dimensions"]:
        raise DimensionMismatch(
            f"The query vector has {vec.size} dimensions but the {type_} index {space['index_name']!r} "
            f"has {space['dimensions']}"
        )
    # The index is approximate (HNSW): asking it for more candidates than k, then keeping the best k, makes the
    # top k stable and closer to the exact nearest neighbours.
    fetch = max(4 * k, 50) + (1 if exclude_id else 0)
    rows = store.query(
        "CALL db.index.vector.queryNodes($index, $fetch, $vector) YIELD node, score "
        "WHERE node.id <> $exclude "
        "RETURN node.id AS id, coalesce(node.title, node.name) AS title, score "
        "ORDER BY score DESC LIMIT $k",
        index=space["index_name"], fetch=fetch, vector=vec.tolist(), exclude=exclude_id or "", k=k,
    )
    for row in rows:
        row["type"] = type_
        row["score"] = cosine_from_index_score(row["score"])
    return rows


def similar_items(store: Neo4jStore, item_id: str, k: int = 5) -> tuple[dict, list[dict]]:
    """The item and its k nearest items of the same type (cosine scores, the item itself left out)."""
    item = get_item(store, item_id)
    rows = store.query(
        f"MATCH (n:{TYPE_TO_LABEL[item['type']]} {{id: $id}}) RETURN n.{EMBEDDING_PROPERTY} AS embedding",
        id=item_id,
    )
    embedding = rows[0]["embedding"] if rows else None
    if embedding is None:
        raise NoEmbeddings(
            f"Item {item_id!r} has no embedding yet: import the embeddings of type {item['type']!r} first"
        )
    return item, vector_search(store, item["type"], embedding, k, exclude_id=item_id)


def keyword_search(store: Neo4jStore, text: str, type_: str | None = None, k: int = 10) -> list[dict]:
    """Full-text search over titles, texts and names; ``score`` is Lucene's relevance score. A search text the
    full-text index refuses (Lucene's limit of 1,024 clauses: Neo4j's ProcedureCallFailed client error from the
    index procedure) is a :class:`~recipes.errors.QueryRejected`."""
    from neo4j.exceptions import ClientError

    labels = [label_for(type_)] if type_ else list(TYPE_TO_LABEL.values())
    index = store.find_fulltext_index()
    if index is None:
        raise NoEmbeddings("The full-text index does not exist yet: run python backend/manage.py load_demo_data")
    try:
        rows = store.query(
            "CALL db.index.fulltext.queryNodes($index, $q) YIELD node, score "
            "WITH node, score, [l IN labels(node) WHERE l IN $labels][0] AS label WHERE label IS NOT NULL "
            "RETURN node.id AS id, label, coalesce(node.title, node.name) AS title, score "
            "ORDER BY score DESC LIMIT $k",
            index=index["name"], q=lucene_query(text), labels=labels, k=k,
        )
    except ClientError as exc:
        if exc.code != "Neo.ClientError.Procedure.ProcedureCallFailed":
            raise
        raise QueryRejected("The full-text index cannot run this search text (too many words or terms): "
                            "shorten the query 'q'") from None
    for row in rows:
        row["type"] = LABEL_TO_TYPE[row.pop("label")]
    return rows


_LUCENE_SPECIAL = set('+-&|!(){}[]^"~*?:\\/')


def lucene_query(text: str) -> str:
    """Escape Lucene syntax so that user text is searched as words (all terms optional, ranked by score)."""
    escaped = "".join("\\" + ch if ch in _LUCENE_SPECIAL else ch for ch in text)
    words = [w for w in escaped.split() if w.upper() not in {"AND", "OR", "NOT", "TO"}]
    return " ".join(words) or '""'
