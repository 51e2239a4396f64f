"""The three search modes behind ``/api/search/``, the search page and ``manage.py evaluate_search``: keyword
(Lucene full-text, rare words also as fuzzy terms), semantic (the type's vector index, the query embedded with the
recorded model) and hybrid (both, fused by :func:`console.search.fusion.fuse`, the function the console's Evaluate
view uses too; ``fusion`` picks one of :data:`~console.search.fusion.FUSIONS`). Each takes the same filters
(:mod:`embedding_search.filters`).

A hybrid hit's ``score`` is its fused score (by default weighted RRF: ``w_kw/(60 + keyword rank) + w_sem/(60 +
semantic rank)`` over the branches that found it, each branch's weight its trust for this query); each branch
offers its best :func:`console.search.fusion.branch_depth` (k) candidates. With ``explain`` every hit also carries
``keyword_rank``, ``semantic_rank`` (1-based, null where that branch did not offer it) and ``fused_score``
(hybrid), or its own branch's rank (keyword, semantic), and the answer's ``explain`` names the fusion and the
query words the keyword branch searched fuzzily.
"""
from __future__ import annotations

import logging


from console.errors import DimensionMismatch, NoEmbeddings, OptionError
from console.search.fusion import DEFAULT_FUSION, branch_depth, check_fusion, fuse as fuse_branches
from embedding_search.conf import settings
from embedding_search.errors import BadRequest, ModelUnavailable
from embedding_search.filters import NO_FILTERS, SearchFilters
from embedding_search.graph import get_store, model_label
from embedding_search.query_embedding import embed_query, on_current_space
from embedding_search.search import Hits, hybrid_branches, keyword_hits, similar_items, vector_hits

log = logging.getLogger(__name__)
MODES = ("keyword", "semantic", "hybrid")
DEFAULT_MODE = "hybrid"


def check_mode(mode: str | None, parameter: str = "mode") -> str:
    mode = (mode or DEFAULT_MODE).strip()
    if mode not in MODES:
        raise BadRequest(f"Unknown {parameter} {mode!r}: expected one of {', '.join(MODES)}")
    return mode


def check_fusion_param(fusion: str | None) -> str:
    """The ``fusion`` parameter (:data:`~console.search.fusion.DEFAULT_FUSION` when absent); an unknown one is a 400."""
    try:
        return check_fusion(fusion)
    except OptionError as exc:
        raise BadRequest(str(exc)[:1].upper() + str(exc)[1:]) from None


def query_vector(space: dict, q: str, type_: str):
    """The query's vector by the model recorded for the type (its query prompt applied); a model that cannot be
    loaded here is a :class:`ModelUnavailable` whose details (paths) go to the log only."""
    try:
        return embed_query(space, q)
    except ModelUnavailable:
        raise
    except Exception:  # files present but broken, out of memory
        log.exception("query model %s failed", space["model"])
        raise ModelUnavailable(f"The model {model_label(space['model'])!r} that embedded the {type_} vectors cannot "
                               "be loaded here: the backend's log says why") from None


def semantic_hits(store, q: str, type_: str, k: int, filters: SearchFilters = NO_FILTERS) -> tuple[Hits, str]:
    """The vector hits and the query model, on the type's current space (:func:`on_current_space`)."""
    filters.check_type(store.schema, type_)
    hits, space = on_current_space(store, type_, lambda space: vector_hits(
        store, type_, query_vector(space, q, type_), k, space=space, filters=filters), settings.SPACE_MAX_AGE_S)
    return hits, space["model"]


def similar_search(store, item_id: str, k: int, filters: SearchFilters = NO_FILTERS,
                   max_age_s: float | None = None) -> tuple[dict, Hits]:
    """:func:`embedding_search.search.similar_items` on the type's cached space (:func:`on_current_space`; ``max_age_s``:
    ``BACKEND_SPACE_MAX_AGE_S`` by default): when warm, one statement for the item and its vector, one for the search.
    An item whose vector does not fit the cached space (re-embedded at another size since) makes the space read now;
    a vector that does not fit that either is the :class:`~console.errors.DimensionMismatch` it always was."""
    max_age_s = settings.SPACE_MAX_AGE_S if max_age_s is None else max_age_s

    def on_space(type_: str, run) -> Hits:
        try:
            return on_current_space(store, type_, run, max_age_s)[0]
        except DimensionMismatch:
            return on_current_space(store, type_, run, 0.0)[0]  # max age 0: the space read again first

    return similar_items(store, item_id, k, filters, on_space=on_space)


def fuse(keyword: list[dict], semantic: list[dict], k: int, fusion: str = DEFAULT_FUSION,
         depth: int | None = None) -> list[dict]:
    """The fused top k of two branches' hits (best first; each branch asked for ``depth`` candidates), each hit
    with its ranks and both branch scores."""
    by_id = {hit["id"]: hit for hit in semantic} | {hit["id"]: hit for hit in keyword}
    scores = {"keyword": {h["id"]: h["score"] for h in keyword}, "semantic": {h["id"]: h["score"] for h in semantic}}
    out = []
    branches = {name: list(ranked.items()) for name, ranked in scores.items()}
    for item in fuse_branches(branches, fusion, depth or branch_depth(k))[:k]:
        hit = by_id[item.id]
        out.append({"id": hit["id"], "type": hit["type"], "title": hit["title"], "score": item.score,
                    "keyword_rank": item.ranks.get("keyword"), "semantic_rank": item.ranks.get("semantic"),
                    "keyword_score": scores["keyword"].get(item.id), "semantic_score": scores["semantic"].get(item.id),
                    "fused_score": item.score})
    return out


def hybrid_hits(store, q: str, type_: str, k: int, filters: SearchFilters = NO_FILTERS,
                fusion: str = DEFAULT_FUSION) -> tuple[Hits, str]:
    """The fused hits and the query model, on the type's current space (:func:`on_current_space`)."""
    filters.check_type(store.schema, type_)

    def branches(space: dict) -> Hits:
        keyword, semantic = hybrid_branches(store, q, type_, query_vector(space, q, type_), branch_depth(k),
                                            space=space, filters=filters)
        return Hits(fuse(keyword.results, semantic.results, k, fusion), semantic.complete, semantic.examined,
                    semantic.stamp, keyword.fuzzy)

    hits, space = on_current_space(store, type_, branches, settings.SPACE_MAX_AGE_S)
    return hits, space["model"]


EXPLAIN_FIELDS = ("keyword_rank", "semantic_rank", "keyword_score", "semantic_score", "fused_score")


def _explained(results: list[dict], mode: str, explain: bool) -> list[dict]:
    if mode == "hybrid":
        return results if explain else [{k: v for k, v in r.items() if k not in EXPLAIN_FIELDS} for r in results]
    if explain:
        for rank, hit in enumerate(results, start=1):
            hit[f"{mode}_rank"] = rank
    return results


def note_for(hits: Hits, mode: str, type_: str | None, k: int, filters: SearchFilters) -> str | None:
    """What the answer says when it has fewer than k hits: all there are, or (incomplete) the candidates ran out."""
    n = len(hits.results)
    if n >= k:
        return None
    what = f"{type_ or 'item'}s" + (f" with {filters.describe()}" if filters.active else "")
    if not hits.complete:
        return (f"{n} of k={k} hits: the vector search looked at the {hits.examined:,} nearest {type_}s (its limit) "
                f"and found no more {what}; more may exist further away")
    if mode == "keyword":
        return f"{n} of k={k} hits: only {n} {what} match the words of the query"
    return f"{n} of k={k} hits: only {n} {what} have a vector" + (" or match the words" if mode == "hybrid" else "")


def search(q: str, mode: str, type_: str | None, k: int, filters: SearchFilters = NO_FILTERS,
           explain: bool = False, fusion: str = DEFAULT_FUSION) -> dict:
    """One search in ``mode``: ``{"query", "mode", "type", "k", "model", "filters", "complete", "note",
    "results"}``, with ``explain`` also ``"explain": {"fusion" (hybrid), "fuzzy"}``: the fusion and the query words
    the keyword branch also searched as fuzzy terms (keyword and hybrid). Hybrid on a type without vectors answers
    with the keyword results and says so in ``note``."""
    store, model, fallback = get_store(), None, None
    if mode == "hybrid":
        try:
            hits, model = hybrid_hits(store, q, type_, k, filters, fusion)
        except NoEmbeddings:  # before any import: the keyword half still answers, and the note says so
            mode, fallback = "keyword", keyword_fallback_note(type_)
    if mode == "keyword":
        hits = keyword_hits(store, q, type_, k, filters)
    elif mode == "semantic":
        hits, model = semantic_hits(store, q, type_, k, filters)
    note = "; ".join(n for n in (fallback, note_for(hits, mode, type_, k, filters)) if n) or None
    answer = {"query": q, "mode": mode, "type": type_, "k": k, "model": model_label(model) if model else None,
              "filters": filters.as_dict(), "complete": hits.complete, "note": note,
              "results": _explained(hits.results, mode, explain)}
    if explain:
        answer["explain"] = {"fusion": fusion if mode == "hybrid" else None,
                             "fuzzy": hits.fuzzy if mode != "semantic" else []}
    return answer


def keyword_fallback_note(type_: str | None) -> str:
    """What a hybrid search says when the type has no vectors yet and keyword search answered alone."""
    from console.files.embfiles import file_stem

    stem = f" --embedding-file {file_stem(type_)}.json" if type_ else ""
    return (f"keyword results only: {f'type {type_!r}' if type_ else 'the type'} has no vectors yet, so hybrid search "
            f"fell back to keyword search (generate them, then python backend/manage.py import_embeddings{stem}; "
            "./start.sh --demo does both for the demo)")


def semantic_search(q: str, type_: str, k: int) -> dict:
    """``/api/semantic-search/``'s answer: ``{"query", "type", "model", "k", "results"}``."""
    hits, model = semantic_hits(get_store(), q, type_, k)
    return {"query": q, "type": type_, "model": model_label(model), "k": k, "results": hits.results}
