"""The two HTML pages: search (keyword | semantic | hybrid, with the category and ingredient filters) and an item's
detail with its similar items.

They share the API's checks and throttles: the search text's length (400), the rates per client address (429, the
"search" and "similar" scopes), and statuses chosen by exception type (:func:`embedding_search.errors.status_for`).
"""
from __future__ import annotations

from types import SimpleNamespace

from django.http import Http404
from django.shortcuts import render
from rest_framework.exceptions import APIException
from rest_framework.request import Request

from console.errors import ItemNotFound, Neo4jStoreError
from embedding_search.api import Throttle, check_query_length, throttled_message
from embedding_search.errors import message_of, status_for
from embedding_search.filters import SearchFilters, filter_example, filter_names
from embedding_search.graph import get_schema, get_store, item_neighbours
from embedding_search.modes import DEFAULT_MODE, MODES, search, similar_search
from embedding_search.search import get_item

PAGE_MODE = DEFAULT_MODE  # the API's default: hybrid, which answers with keyword results (and says so) before any
# vector is imported


def throttled(request, scope: str):
    """None when the request may go on, else the 429 page (same rates and counters as the API's)."""
    throttle = Throttle()
    if throttle.allow_request(Request(request), SimpleNamespace(throttle_scope=scope)):
        return None
    wait = throttle.wait()
    response = render(request, "embedding_search/search.html", {"error": throttled_message(scope, wait), "modes": MODES,
                                                       "types": list(get_schema().types), "mode": PAGE_MODE,
                                                       "type": next(iter(get_schema().types))}, status=429)
    if wait is not None:
        response["Retry-After"] = str(int(wait + 0.999))
    return response


def search_page(request):
    q = (request.GET.get("q") or "").strip()
    mode = request.GET.get("mode") if request.GET.get("mode") in MODES else PAGE_MODE
    schema = get_schema()
    types = list(schema.types)
    type_ = request.GET.get("type") if request.GET.get("type") in types else types[0]
    context = {"q": q, "mode": mode, "type": type_, "types": types, "modes": MODES,
               "type_names": ", ".join(spec.file for spec in schema.types.values()),
               "filters": [{"name": name, "value": (request.GET.get(name) or "").strip(),
                            "example": filter_example(schema, name)} for name in filter_names(schema)],
               "results": [], "error": None, "model": None, "note": None}
    status = 200
    if q:
        refused = throttled(request, "search")
        if refused is not None:
            return refused
        try:
            check_query_length(q)
            filters = SearchFilters.from_mapping(request.GET, get_schema())
            answer = search(q, mode, type_, 20, filters, explain=mode == "hybrid")
            context.update(results=answer["results"], model=answer["model"], note=answer["note"],
                           mode=answer["mode"])  # keyword when hybrid fell back to it (the note says why)
        except (Neo4jStoreError, APIException) as exc:
            context["error"], status = message_of(exc), status_for(exc) or 500
    return render(request, "embedding_search/search.html", context, status=status)


def item_page(request, item_id: str):
    refused = throttled(request, "similar")
    if refused is not None:
        return refused
    try:
        store = get_store()
        item = get_item(store, item_id)
    except ItemNotFound:
        raise Http404(f"No item with id {item_id!r}") from None
    except Neo4jStoreError as exc:
        return render(request, "embedding_search/search.html", {"error": str(exc), "types": list(get_schema().types),
                                                       "modes": MODES, "mode": PAGE_MODE,
                                                       "type": next(iter(get_schema().types))},
                      status=status_for(exc) or 500)
    item.update(item_neighbours(store, item_id, item["type"]))
    similar, similar_error = [], None
    try:
        similar = similar_search(store, item_id, 8)[1].results
    except Neo4jStoreError as exc:
        similar_error = str(exc)
    fields = [{"name": name, "value": item.get(name)} for name in item.get("shown", [])]
    return render(request, "embedding_search/detail.html", {"item": item, "fields": fields, "similar": similar,
                                                   "similar_error": similar_error})
