from django.apps import AppConfig


class RecipesConfig(AppConfig):
    """The demo's own app: `manage.py load_demo_data` (the Indonesian recipes into Neo4j). Search, the pages and
    the export/import commands come from the reusable embedding_search app, installed beside it."""

    name = "recipes"
    verbose_name = "Demo recipe graph"
