"""The two HTML pages: search (keyword | semantic) and an item's detail with its similar items."""
from __future__ import annotations

from django.http import Http404
from django.shortcuts import render
from rest_framework.exceptions import APIException

from console.neo4j_store import TYPE_TO_LABEL, ItemNotFound, Neo4jStoreError
from recipes.api import semantic_search
from recipes.graph import get_store, item_neighbours

MODES = ("keyword", "semantic")


def search_page(request):
    q = (request.GET.get("q") or "").strip()
    mode = request.GET.get("mode") if request.GET.get("mode") in MODES else "keyword"
    type_ = request.GET.get("type") if request.GET.get("type") in TYPE_TO_LABEL else "recipe"
    context = {"q": q, "mode": mode, "type": type_, "types": list(TYPE_TO_LABEL), "modes": MODES,
               "results": [], "error": None, "model": None}
    if q:
        try:
            if mode == "semantic":
                answer = semantic_search(q, type_, 20)
                context["results"], context["model"] = answer["results"], answer["model"]
            else:
                context["results"] = get_store().keyword_search(q, type_, 20)
        except (Neo4jStoreError, APIException) as exc:
            context["error"] = str(exc.detail if isinstance(exc, APIException) else exc)
    status = 503 if context["error"] and "Cannot reach" in context["error"] else 200
    return render(request, "recipes/search.html", context, status=status)


def item_page(request, item_id: str):
    try:
        store = get_store()
        item = store.get_item(item_id)
    except ItemNotFound:
        raise Http404(f"No item with id {item_id!r}") from None
    except Neo4jStoreError as exc:
        return render(request, "recipes/search.html", {"error": str(exc), "types": list(TYPE_TO_LABEL),
                                                       "modes": MODES, "mode": "keyword", "type": "recipe"},
                      status=503)
    item.update(item_neighbours(store, item_id))
    similar, similar_error = [], None
    try:
        _, similar = store.similar_items(item_id, 8)
    except Neo4jStoreError as exc:
        similar_error = str(exc)
    return render(request, "recipes/detail.html", {"item": item, "similar": similar, "similar_error": similar_error})
