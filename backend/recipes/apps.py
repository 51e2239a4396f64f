from django.apps import AppConfig


class RecipesConfig(AppConfig):
    name = "recipes"
    verbose_name = "Recipe graph (Neo4j)"

    def ready(self) -> None:
        """The graph schema is validated once at start: a bad file stops the server with the file and the key."""
        from recipes.graph import get_schema

        get_schema()
