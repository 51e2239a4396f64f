from django.apps import AppConfig


class EmbeddingSearchConfig(AppConfig):
    """Semantic, keyword and hybrid search over a Neo4j graph described by a schema file, similar items, and the
    export/import commands of the embedding workflow (README: "Use it in your own Django project")."""

    name = "embedding_search"
    verbose_name = "Embedding search (Neo4j)"

    def ready(self) -> None:
        """The settings and the graph schema are checked once at start: a bad value or file stops the server with
        the setting's name, or the file and the key."""
        from embedding_search.conf import settings
        from embedding_search.graph import get_schema

        settings.check()
        get_schema()
