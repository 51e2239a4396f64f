from django.urls import path

from embedding_search import api, views

app_name = "embedding_search"  # {% url 'embedding_search:item' id %}; include it under any prefix

urlpatterns = [
    path("", views.search_page, name="search"),
    path("items/<str:item_id>/", views.item_page, name="item"),
    path("api/search/", api.Search.as_view(), name="search-api"),
    path("api/semantic-search/", api.SemanticSearch.as_view(), name="semantic-search"),
    path("api/keyword-search/", api.KeywordSearch.as_view(), name="keyword-search"),
    path("api/items/<str:item_id>/", api.ItemDetail.as_view(), name="item-detail"),
    path("api/items/<str:item_id>/similar/", api.SimilarItems.as_view(), name="similar-items"),
    path("api/graph-schema/", api.GraphSchemaView.as_view(), name="graph-schema"),
    path("api/embeddings/import/", api.ImportEmbeddings.as_view(), name="import-embeddings"),
]
