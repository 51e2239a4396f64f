"""The JSON API: keyword and semantic search, items and their similar items, and the embeddings import endpoint.

Errors are JSON ``{"error": "<what went wrong and what to do>"}`` with a 4xx status for a bad request (400), a bad
token (401/403), an unknown item (404), a type without embeddings / a dimension mismatch (409), a body or batch too
large (413) or too many requests from one address (429), and 503 when Neo4j (or the query model) is not available.
Statuses follow the exception's type (:mod:`embedding_search.errors`).
"""
from __future__ import annotations

import hmac
import re
from collections import Counter

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.exceptions import APIException, Throttled
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle
from rest_framework.views import APIView
from rest_framework.views import exception_handler as drf_exception_handler

from console.graphschema import to_dict
from console.sinks.neo4j.writer import VectorWriter, clear_vectors
from console.search.fusion import DEFAULT_FUSION, FUSIONS
from embedding_search.conf import settings
from embedding_search.errors import STATUS_FOR, BadRequest
from embedding_search.filters import SearchFilters, filter_example, filter_names, filter_types
from embedding_search.graph import get_schema, get_store, item_neighbours, model_label
from embedding_search.query_embedding import check_model_allowed
from embedding_search.modes import (DEFAULT_MODE, MODES, check_fusion_param, check_mode, note_for, search, semantic_search,
                          similar_search)
from embedding_search.search import get_item, keyword_search
from embedding_search.parsers import BodyTooLarge, BoundedJSONParser

THROTTLE_SETTING = {"search": "BACKEND_THROTTLE_SEARCH", "similar": "BACKEND_THROTTLE_SIMILAR",
                    "import": "BACKEND_THROTTLE_IMPORT"}


def exception_handler(exc, context):
    for cls, code in STATUS_FOR.items():
        if isinstance(exc, cls):
            return Response({"error": str(exc)}, status=code)
    response = drf_exception_handler(exc, context)
    if response is not None:
        if isinstance(exc, Throttled):
            scope = getattr(context.get("view"), "throttle_scope", "")
            response.data = {"error": throttled_message(scope, exc.wait)}
            return response
        detail = response.data.get("detail") if isinstance(response.data, dict) else response.data
        response.data = {"error": str(detail)}
    return response


def throttled_message(scope: str, wait: float | None) -> str:
    rate = settings.THROTTLE_RATES.get(scope)
    again = f"; try again in {int(wait + 0.999)} s" if wait is not None else ""
    return (f"Too many requests from your address: at most {rate} for {scope} ({THROTTLE_SETTING.get(scope)} on "
            f"the backend){again}")


class Throttle(ScopedRateThrottle):
    """Requests per client address and scope (the app's THROTTLE_RATES, embedding_search.conf), counted in the
    cache shared by the server's workers (Django's default cache)."""

    def get_rate(self):
        return settings.THROTTLE_RATES.get(self.scope)


class AppView(APIView):
    """The app's API views carry their own DRF settings, so that they behave the same in any host project whatever
    its REST_FRAMEWORK says: JSON in (bounded) and out, no session or user authentication (the import endpoint
    checks its own token), the app's errors and throttles, and drf-spectacular's OpenAPI schema."""

    renderer_classes = [JSONRenderer]
    parser_classes = [BoundedJSONParser]
    authentication_classes: list = []
    permission_classes: list = []
    schema = AutoSchema()

    def get_exception_handler(self):
        return exception_handler


def _query_param(request, name: str) -> str:
    value = (request.query_params.get(name) or "").strip()
    if not value:
        raise BadRequest(f"Missing query parameter '{name}': e.g. ?{name}=nasi goreng")
    check_query_length(value, name)
    return value


def check_query_length(value: str, name: str = "q") -> None:
    """:class:`BadRequest` when the search text is longer than SEARCH_MAX_QUERY_CHARS or has more words than
    SEARCH_MAX_QUERY_TERMS."""
    chars, terms = len(value), len(value.split())
    max_chars, max_terms = settings.SEARCH_MAX_QUERY_CHARS, settings.SEARCH_MAX_QUERY_TERMS
    if chars > max_chars or terms > max_terms:
        raise BadRequest(f"The query parameter '{name}' is too long ({chars:,} characters, {terms:,} words): "
                         f"shorten it to at most {max_chars} characters and {max_terms} words")


FIRST_TYPE = "first"  # the schema's first type (the demo's: recipe)


def _type_param(request, required: bool = True, default: str | None = FIRST_TYPE) -> str | None:
    types = get_schema().types
    type_ = request.query_params.get("type") or (next(iter(types)) if default == FIRST_TYPE else default)
    if type_ is None:
        return None
    if type_ not in types:
        raise BadRequest(f"Unknown type {type_!r}: expected one of {', '.join(types)}")
    return type_


def _explain_param(request) -> bool:
    raw = (request.query_params.get("explain") or "").strip().lower()
    if raw in ("", "0", "false", "no"):
        return False
    if raw in ("1", "true", "yes"):
        return True
    raise BadRequest(f"'explain' must be 1 or 0 (true or false), not {raw!r}")


def _k_param(request, default: int) -> int:
    raw = request.query_params.get("k")
    if raw in (None, ""):
        return default
    try:
        k = int(raw)
    except ValueError:
        raise BadRequest(f"'k' must be a whole number from 1 to 100, not {raw!r}") from None
    if not 1 <= k <= 100:
        raise BadRequest(f"'k' must be a whole number from 1 to 100, not {raw!r}")
    return k


class HitSerializer(serializers.Serializer):
    """A vector search hit (semantic search, similar items)."""
    id = serializers.CharField()
    type = serializers.CharField()
    title = serializers.CharField()
    score = serializers.FloatField(help_text="cosine similarity (-1..1) of the query (or item) vector and this "
                                             "item's vector")


class KeywordHitSerializer(HitSerializer):
    """A full-text search hit."""
    score = serializers.FloatField(help_text="Lucene relevance score of the full-text index (0 or more, comparable "
                                             "within one search only)")


class SearchHitSerializer(HitSerializer):
    """A hit of /api/search/; the rank fields come with `explain=1`."""
    score = serializers.FloatField(help_text="by mode: keyword, Lucene's relevance score; semantic, the cosine "
                                             "similarity (-1..1); hybrid, the fused score (see `fusion`)")
    keyword_rank = serializers.IntegerField(required=False, allow_null=True,
                                            help_text="explain=1: rank in the keyword branch (1 = best; null: not "
                                                      "among its candidates)")
    semantic_rank = serializers.IntegerField(required=False, allow_null=True,
                                             help_text="explain=1: rank in the semantic branch (1 = best; null: not "
                                                       "among its candidates)")
    keyword_score = serializers.FloatField(required=False, allow_null=True,
                                           help_text="explain=1, hybrid: the keyword branch's Lucene score")
    semantic_score = serializers.FloatField(required=False, allow_null=True,
                                            help_text="explain=1, hybrid: the semantic branch's cosine")
    fused_score = serializers.FloatField(required=False, help_text="explain=1, hybrid: the fused score (= score)")


class ErrorSerializer(serializers.Serializer):
    error = serializers.CharField()


def hits():
    return HitSerializer(many=True)



Error = ErrorSerializer
Q = OpenApiParameter("q", OpenApiTypes.STR, description="the search text", required=True)
SCHEMA = get_schema()
TYPE = OpenApiParameter("type", OpenApiTypes.STR, enum=list(SCHEMA.types), description="item type (the graph schema's)")
K = OpenApiParameter("k", OpenApiTypes.INT, description="number of results, 1-100")
MODE = OpenApiParameter("mode", OpenApiTypes.STR, enum=list(MODES), default=DEFAULT_MODE,
                        description="keyword (Lucene full-text), semantic (vector index) or hybrid (both, fused by "
                                    "reciprocal rank fusion, k=60, in one Neo4j round trip)")
FILTER_PARAMS = [OpenApiParameter(name, OpenApiTypes.STR, description=f"only items with this {name} (matched whole, "
                                  f"ignoring case; e.g. {filter_example(SCHEMA, name)}); for type "
                                  f"{' or '.join(filter_types(SCHEMA, name))}; an unknown value is a 400")
                 for name in filter_names(SCHEMA)]
EXPLAIN = OpenApiParameter("explain", OpenApiTypes.BOOL, description="1: each hit says why it is there "
                           "(keyword_rank, semantic_rank, and in hybrid the branch scores and fused_score), and the "
                           "answer's `explain` names the fusion and the query words also searched as fuzzy terms")
FUSION = OpenApiParameter("fusion", OpenApiTypes.STR, enum=list(FUSIONS), default=DEFAULT_FUSION,
                          description="hybrid: weighted-rrf (each branch's reciprocal ranks weighted by how much of "
                                      "its candidates it found), rrf (plain reciprocal rank fusion, k=60) or convex "
                                      "(0.5 x each branch's min-max normalised score)")
EXPLAIN_OUT = inline_serializer("Explain", {
    "fusion": serializers.CharField(allow_null=True, help_text="hybrid: the fusion used"),
    "fuzzy": serializers.ListField(child=serializers.CharField(), help_text="query words the keyword branch also "
                                   "searched as fuzzy terms (they find fewer than 3 items as written)")})
FILTERS_OUT = inline_serializer("Filters", {name: serializers.CharField(allow_null=True)
                                            for name in filter_names(SCHEMA)})
COMPLETE = serializers.BooleanField(help_text="false when the vector search stopped at its candidate limit with fewer "
                                              "than k hits: more matching items may exist")
NOTE = serializers.CharField(allow_null=True, help_text="why there are fewer than k hits (null when there are k)")


class SemanticSearch(AppView):
    throttle_classes, throttle_scope = [Throttle], "search"

    @extend_schema(
        summary="Semantic search over a type's vector index",
        description="Embeds `q` with the model recorded for the type's index (query prompt applied) and returns "
                    "the k nearest items by cosine similarity (`score`, -1..1: Neo4j's index score (1 + cosine) / 2 "
                    "converted back, the measure the console's Explore page shows).",
        parameters=[Q, TYPE, K],
        responses={200: inline_serializer("SemanticResults", {
            "query": serializers.CharField(), "type": serializers.CharField(), "model": serializers.CharField(),
            "k": serializers.IntegerField(), "results": hits()}), 400: Error, 409: Error, 429: Error, 503: Error},
    )
    def get(self, request):
        q = _query_param(request, "q")
        type_ = _type_param(request)
        return Response(semantic_search(q, type_, _k_param(request, 10)))


class KeywordSearch(AppView):
    throttle_classes, throttle_scope = [Throttle], "search"

    @extend_schema(summary="Full-text search over titles, texts and names", parameters=[Q, TYPE, K],
                   responses={200: inline_serializer("KeywordResults", {
                       "query": serializers.CharField(), "type": serializers.CharField(allow_null=True),
                       "results": KeywordHitSerializer(many=True)}), 400: Error, 429: Error, 503: Error})
    def get(self, request):
        q = _query_param(request, "q")
        type_ = _type_param(request, default=None)
        k = _k_param(request, 10)
        return Response({"query": q, "type": type_, "results": keyword_search(get_store(), q, type_, k)})


class Search(AppView):
    throttle_classes, throttle_scope = [Throttle], "search"

    @extend_schema(
        summary="Search in one mode: keyword, semantic or hybrid, with filters",
        description="`mode=hybrid` (the default) runs the full-text and the vector branch in one Cypher statement "
                    "and fuses their best 2k (at least 20) candidates (`fusion`, weighted reciprocal rank fusion by default). `category` "
                    "and `ingredient` filter recipes in every mode and in both branches; the vector branch "
                    "over-fetches from the index until k matching items are found, the index has no more, or "
                    "10,000 candidates were looked at (`complete: false`); `note` says why fewer than k came back.",
        parameters=[Q, MODE, TYPE, K, *FILTER_PARAMS, EXPLAIN, FUSION],
        responses={200: inline_serializer("SearchResults", {
            "query": serializers.CharField(), "mode": serializers.ChoiceField(choices=list(MODES)),
            "type": serializers.CharField(), "k": serializers.IntegerField(),
            "model": serializers.CharField(allow_null=True, help_text="the query model (null in keyword mode)"),
            "filters": FILTERS_OUT, "complete": COMPLETE, "note": NOTE,
            "results": SearchHitSerializer(many=True),
            "explain": EXPLAIN_OUT}), 400: Error, 409: Error, 429: Error, 503: Error},
    )
    def get(self, request):
        q = _query_param(request, "q")
        mode = check_mode(request.query_params.get("mode"))
        type_ = _type_param(request)
        filters = SearchFilters.from_mapping(request.query_params, get_schema())
        filters.check_type(get_schema(), type_)
        fusion = check_fusion_param(request.query_params.get("fusion"))
        return Response(search(q, mode, type_, _k_param(request, 10), filters, _explain_param(request), fusion))


class ItemDetail(AppView):
    @extend_schema(summary="One item with its ingredients, categories or recipes",
                   responses={200: OpenApiTypes.OBJECT, 404: Error, 503: Error})
    def get(self, request, item_id: str):
        store = get_store()
        item = get_item(store, item_id)
        if item.get("embedding_model"):
            item["embedding_model"] = model_label(item["embedding_model"])
        item.update(item_neighbours(store, item_id, item["type"]))
        return Response(item)


class GraphSchemaView(AppView):
    """The backend's graph description (read-only, no secrets): a console compares it with its own before a push."""

    @extend_schema(summary="The graph schema this backend reads (types, labels, properties, indexes, filters)",
                   responses={200: OpenApiTypes.OBJECT})
    def get(self, request):
        return Response(to_dict(get_schema()))


class SimilarItems(AppView):
    throttle_classes, throttle_scope = [Throttle], "similar"

    @extend_schema(summary="Items nearest to this one in its type's vector index (`score`: cosine similarity)",
                   description="`category` and `ingredient` keep only recipes with that category / ingredient (the "
                               "item must be a recipe); the search over-fetches as /api/search/ does.",
                   parameters=[K, *FILTER_PARAMS],
                   responses={200: inline_serializer("SimilarResults", {
                       "id": serializers.CharField(), "type": serializers.CharField(),
                       "filters": FILTERS_OUT, "complete": COMPLETE, "note": NOTE,
                       "results": hits()}), 400: Error, 404: Error, 409: Error, 429: Error, 503: Error})
    def get(self, request, item_id: str):
        k = _k_param(request, 5)
        filters = SearchFilters.from_mapping(request.query_params, get_schema())
        item, similar = similar_search(get_store(), item_id, k, filters)
        return Response({"id": item["id"], "type": item["type"], "title": item["title"],
                         "filters": filters.as_dict(), "complete": similar.complete,
                         "note": note_for(similar, "semantic", item["type"], k, filters), "results": similar.results})


def check_import_token(request) -> None:
    expected = settings.EMBEDDINGS_IMPORT_TOKEN
    if not expected:
        raise ImportDisabled()
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme != "Token" or not token.strip():
        raise NotAuthenticated()
    if not hmac.compare_digest(token.strip().encode(), expected.encode()):
        raise BadToken()


class ImportDisabled(APIException):
    status_code = 503
    default_detail = "The import endpoint is disabled: set EMBEDDINGS_IMPORT_TOKEN in the backend's environment"


class NotAuthenticated(APIException):
    status_code = 401
    default_detail = "Missing header 'Authorization: Token <EMBEDDINGS_IMPORT_TOKEN>'"


class BadToken(APIException):
    status_code = 403
    default_detail = "Invalid token: use the backend's EMBEDDINGS_IMPORT_TOKEN"


ImportItem = inline_serializer("ImportItem", {"id": serializers.CharField(), "type": serializers.CharField(),
                                              "embedding": serializers.ListField(child=serializers.FloatField())},
                              many=True)
ExcludedItem = inline_serializer("ExcludedItem", {"id": serializers.CharField(), "type": serializers.CharField()},
                                 many=True, required=False,
                                 help_text="items the operator excluded: their vectors, if any, are removed")


class ImportEmbeddings(AppView):
    throttle_classes, throttle_scope = [Throttle], "import"

    @property
    def max_body_bytes(self) -> int:  # read by embedding_search.parsers.BoundedJSONParser
        return settings.IMPORT_MAX_BODY_BYTES

    @extend_schema(
        summary="Import embeddings (the console's push)",
        description="Header `Authorization: Token <EMBEDDINGS_IMPORT_TOKEN>`. Writes each vector onto the node "
                    "with that id (idempotent: unchanged vectors are skipped); unknown ids and bad vectors are "
                    "reported (the first 100 rejected items, and counts by reason). `create_index` (default "
                    "true) creates a missing vector index before the first write; it stays online while the "
                    "vectors land. At most EMBEDDINGS_IMPORT_MAX_ITEMS items and EMBEDDINGS_IMPORT_MAX_BYTES bytes "
                    "per request (413 beyond: send smaller batches). `exclude` lists items the operator excluded "
                    "({id, type}, as many as `items` may hold): the vector an earlier import gave them is removed "
                    "from their nodes (`cleared` counts them; a dry run only counts).",
        request=inline_serializer("ImportRequest", {
            "model": serializers.CharField(), "dimensions": serializers.IntegerField(required=False),
            "query_prompt": serializers.CharField(required=False, allow_null=True),
            "dry_run": serializers.BooleanField(default=False),
            "create_index": serializers.BooleanField(default=True), "items": ImportItem,
            "exclude": ExcludedItem}),
        responses={200: inline_serializer("ImportReport", {
            "written": serializers.IntegerField(), "unchanged": serializers.IntegerField(),
            "unknown_ids": serializers.ListField(child=serializers.CharField(),
                                                 help_text="the first 1,000 ids not in the graph"),
            "unknown_count": serializers.IntegerField(help_text="all ids not in the graph"),
            "rejected": serializers.ListField(child=serializers.DictField(),
                                              help_text="the first 100 rejected items: {id, reason}"),
            "rejected_count": serializers.IntegerField(help_text="all rejected items"),
            "rejected_reasons": serializers.DictField(child=serializers.IntegerField(),
                                                      help_text="rejected items by reason"),
            "excluded": serializers.IntegerField(help_text="items listed in `exclude`"),
            "cleared": serializers.IntegerField(help_text="of those, the nodes whose vector was removed (dry run: "
                                                          "would be)"),
            "dry_run": serializers.BooleanField()}), 400: Error, 401: Error, 403: Error, 409: Error, 413: Error,
            429: Error, 503: Error},
    )
    def post(self, request):
        check_import_token(request)
        options = import_options(request.data)
        items, dry_run, exclude = options.pop("items"), options.pop("dry_run"), options.pop("exclude")
        writer = VectorWriter(get_store(), source="the request", **options)
        report = writer.write((item if isinstance(item, dict) else {"id": None} for item in items), total=len(items),
                              batch_size=settings.IMPORT_BATCH_SIZE, dry_run=dry_run)
        report.excluded = sum(len(ids) for ids in exclude.values())
        report.cleared = clear_vectors(writer.store, exclude, dry_run=dry_run, batch_size=settings.IMPORT_BATCH_SIZE)
        answer = report.to_dict()
        answer.update(summarise_rejections(report.rejected, settings.IMPORT_REJECTED_SHOWN))
        return Response(answer, status=status.HTTP_200_OK)


MAX_MODEL_NAME = 300
MAX_REASONS = 20


def import_options(body) -> dict:
    """The import request's fields, checked: model, items, dimensions, query_prompt, dry_run, create_index, and
    exclude (as ``{type: ids}``)."""
    if not isinstance(body, dict):
        raise BadRequest("The body must be a JSON object with 'model' and 'items'")
    model = body.get("model")
    if not isinstance(model, str) or not model.strip():
        raise BadRequest("'model' is required: the name of the model that made the vectors")
    model = model.strip()
    if len(model) > MAX_MODEL_NAME or not model.isprintable():
        raise BadRequest(f"'model' must be a model id or folder of at most {MAX_MODEL_NAME} printable characters")
    check_model_allowed(model, BadRequest)
    items = body.get("items")
    if not isinstance(items, list):
        raise BadRequest("'items' is required: a list of {\"id\", \"type\", \"embedding\"}")
    if len(items) > settings.IMPORT_MAX_ITEMS:
        raise BodyTooLarge(f"{len(items):,} items in one request, more than this backend takes "
                           f"({settings.IMPORT_MAX_ITEMS:,}, EMBEDDINGS_IMPORT_MAX_ITEMS): send smaller batches")
    dimensions = body.get("dimensions")
    if dimensions is not None and (isinstance(dimensions, bool) or not isinstance(dimensions, int)
                                   or dimensions < 1):
        raise BadRequest(f"'dimensions' must be a positive whole number, not {dimensions!r}")
    flags = {}
    for name, default in (("dry_run", False), ("create_index", True)):
        value = body.get(name, default)
        if not isinstance(value, bool):
            raise BadRequest(f"'{name}' must be true or false, not {value!r}")
        flags[name] = value
    query_prompt = body.get("query_prompt")
    if query_prompt is not None and not isinstance(query_prompt, str):
        raise BadRequest("'query_prompt' must be a string or null")
    return {"model": model, "items": items, "dimensions": dimensions, "query_prompt": query_prompt,
            "exclude": exclude_option(body.get("exclude")), **flags}


def exclude_option(value) -> dict[str, set[str]]:
    """The request's ``exclude`` (a list of ``{"id", "type"}``, optional) as ids by type; a bad entry is a 400 naming
    its position."""
    if value is None:
        return {}
    if not isinstance(value, list):
        raise BadRequest("'exclude' must be a list of {\"id\", \"type\"}: the items the operator excluded")
    if len(value) > settings.IMPORT_MAX_ITEMS:
        raise BodyTooLarge(f"{len(value):,} excluded items in one request, more than this backend takes "
                           f"({settings.IMPORT_MAX_ITEMS:,}, EMBEDDINGS_IMPORT_MAX_ITEMS): send smaller batches")
    by_type: dict[str, set[str]] = {}
    for at, entry in enumerate(value):
        item_id = entry.get("id") if isinstance(entry, dict) else None
        type_ = entry.get("type") if isinstance(entry, dict) else None
        if not isinstance(item_id, str) or not item_id.strip() or not isinstance(type_, str) \
                or type_ not in get_schema().types:
            raise BadRequest(f"'exclude' item {at} needs an \"id\" (a non-empty string) and a \"type\" (one of "
                             f"{', '.join(get_schema().types)})")
        by_type.setdefault(type_, set()).add(item_id)
    return by_type


def summarise_rejections(rejected: list[dict], shown: int) -> dict:
    """The first ``shown`` rejected items, their number, and counts by reason (numbers in a reason, such as
    positions and sizes, read as N, so that like reasons count together; at most 20 reasons, the rest as other)."""
    reasons = Counter(re.sub(r"\d+", "N", str(r.get("reason"))) for r in rejected)
    by_reason = dict(reasons.most_common(MAX_REASONS))
    rest = sum(reasons.values()) - sum(by_reason.values())
    if rest:
        by_reason["(other reasons)"] = rest
    return {"rejected": rejected[:shown], "rejected_count": len(rejected), "rejected_reasons": by_reason}
