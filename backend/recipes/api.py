"""The JSON API: keyword and semantic search, items and their similar items, and the embeddings import endpoint.

Errors are JSON ``{"error": "<what went wrong and what to do>"}`` with a 4xx status for a bad request (400), a bad
token (401/403), an unknown item (404), a type without embeddings / a dimension mismatch (409), a body or batch too
large (413) or too many requests from one address (429), and 503 when Neo4j (or the query model) is not available.
Statuses follow the exception's type (:mod:`recipes.errors`).
"""
from __future__ import annotations

import hmac
import logging
import re
from collections import Counter

from django.conf import settings
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.exceptions import APIException, Throttled
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle
from rest_framework.views import APIView
from rest_framework.views import exception_handler as drf_exception_handler

from console.neo4j.schema import TYPE_TO_LABEL
from console.neo4j.writer import VectorWriter
from recipes.errors import STATUS_FOR, BadRequest, ModelUnavailable
from recipes.graph import get_store, item_neighbours, model_label
from recipes.query_embedding import check_model_allowed, embed_query, embedding_space
from recipes.search import get_item, keyword_search, similar_items, vector_search
from recipes.parsers import BodyTooLarge

log = logging.getLogger(__name__)
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
    rate = settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"].get(scope)
    again = f"; try again in {int(wait + 0.999)} s" if wait is not None else ""
    return (f"Too many requests from your address: at most {rate} for {scope} ({THROTTLE_SETTING.get(scope)} on "
            f"the backend){again}")


class Throttle(ScopedRateThrottle):
    """Requests per client address and scope (settings REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]), counted in the
    cache shared by the server's workers."""


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


def _type_param(request, required: bool = True, default: str | None = "recipe") -> str | None:
    type_ = request.query_params.get("type") or default
    if type_ is None:
        return None
    if type_ not in TYPE_TO_LABEL:
        raise BadRequest(f"Unknown type {type_!r}: expected one of {', '.join(TYPE_TO_LABEL)}")
    return type_


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


class ErrorSerializer(serializers.Serializer):
    error = serializers.CharField()


def hits():
    return HitSerializer(many=True)



Error = ErrorSerializer
Q = OpenApiParameter("q", OpenApiTypes.STR, description="the search text", required=True)
TYPE = OpenApiParameter("type", OpenApiTypes.STR, enum=list(TYPE_TO_LABEL), description="item type (recipe)")
K = OpenApiParameter("k", OpenApiTypes.INT, description="number of results, 1-100")


def semantic_search(q: str, type_: str, k: int) -> dict:
    store = get_store()
    space = embedding_space(store, type_)
    try:
        vector = embed_query(space, q)
    except ModelUnavailable:
        raise
    except Exception:  # files present but broken, out of memory: the details (paths) go to the log only
        log.exception("query model %s failed", space["model"])
        raise ModelUnavailable(f"The model {model_label(space['model'])!r} that embedded the {type_} vectors cannot "
                               "be loaded here: the backend's log says why") from None
    return {"query": q, "type": type_, "model": model_label(space["model"]), "k": k,
            "results": vector_search(store, type_, vector, k, space=space)}


class SemanticSearch(APIView):
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


class KeywordSearch(APIView):
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


class ItemDetail(APIView):
    @extend_schema(summary="One item with its ingredients, categories or recipes",
                   responses={200: OpenApiTypes.OBJECT, 404: Error, 503: Error})
    def get(self, request, item_id: str):
        store = get_store()
        item = get_item(store, item_id)
        if item.get("embedding_model"):
            item["embedding_model"] = model_label(item["embedding_model"])
        item.update(item_neighbours(store, item_id))
        return Response(item)


class SimilarItems(APIView):
    throttle_classes, throttle_scope = [Throttle], "similar"

    @extend_schema(summary="Items nearest to this one in its type's vector index (`score`: cosine similarity)",
                   parameters=[K],
                   responses={200: inline_serializer("SimilarResults", {
                       "id": serializers.CharField(), "type": serializers.CharField(),
                       "results": hits()}), 404: Error, 409: Error, 429: Error, 503: Error})
    def get(self, request, item_id: str):
        k = _k_param(request, 5)
        item, similar = similar_items(get_store(), item_id, k)
        return Response({"id": item["id"], "type": item["type"], "title": item["title"], "results": similar})


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


class ImportEmbeddings(APIView):
    throttle_classes, throttle_scope = [Throttle], "import"

    @property
    def max_body_bytes(self) -> int:  # read by recipes.parsers.BoundedJSONParser
        return settings.IMPORT_MAX_BODY_BYTES

    @extend_schema(
        summary="Import embeddings (the console's push)",
        description="Header `Authorization: Token <EMBEDDINGS_IMPORT_TOKEN>`. Writes each vector onto the node "
                    "with that id (idempotent: unchanged vectors are skipped); unknown ids and bad vectors are "
                    "reported (the first 100 rejected items, and counts by reason). `create_index` (default "
                    "true) creates a missing vector index before the first write; it stays online while the "
                    "vectors land. At most EMBEDDINGS_IMPORT_MAX_ITEMS items and EMBEDDINGS_IMPORT_MAX_BYTES bytes "
                    "per request (413 beyond: send smaller batches).",
        request=inline_serializer("ImportRequest", {
            "model": serializers.CharField(), "dimensions": serializers.IntegerField(required=False),
            "query_prompt": serializers.CharField(required=False, allow_null=True),
            "dry_run": serializers.BooleanField(default=False),
            "create_index": serializers.BooleanField(default=True), "items": ImportItem}),
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
            "dry_run": serializers.BooleanField()}), 400: Error, 401: Error, 403: Error, 409: Error, 413: Error,
            429: Error, 503: Error},
    )
    def post(self, request):
        check_import_token(request)
        options = import_options(request.data)
        items, dry_run = options.pop("items"), options.pop("dry_run")
        writer = VectorWriter(get_store(), source="the request", **options)
        report = writer.write((item if isinstance(item, dict) else {"id": None} for item in items), total=len(items),
                              batch_size=settings.IMPORT_BATCH_SIZE, dry_run=dry_run)
        answer = report.to_dict()
        answer.update(summarise_rejections(report.rejected, settings.IMPORT_REJECTED_SHOWN))
        return Response(answer, status=status.HTTP_200_OK)


MAX_MODEL_NAME = 300
MAX_REASONS = 20


def import_options(body) -> dict:
    """The import request's fields, checked: model, items, dimensions, query_prompt, dry_run, create_index."""
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
            **flags}


def summarise_rejections(rejected: list[dict], shown: int) -> dict:
    """The first ``shown`` rejected items, their number, and counts by reason (numbers in a reason, such as
    positions and sizes, read as N, so that like reasons count together; at most 20 reasons, the rest as other)."""
    reasons = Counter(re.sub(r"\d+", "N", str(r.get("reason"))) for r in rejected)
    by_reason = dict(reasons.most_common(MAX_REASONS))
    rest = sum(reasons.values()) - sum(by_reason.values())
    if rest:
        by_reason["(other reasons)"] = rest
    return {"rejected": rejected[:shown], "rejected_count": len(rejected), "rejected_reasons": by_reason}
