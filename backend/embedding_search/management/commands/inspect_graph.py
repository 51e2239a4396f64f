"""python manage.py inspect_graph [--output schema.toml]"""
from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from console.sinks.neo4j.inspect import inspect, schema_toml

from ._common import open_store


class Command(BaseCommand):
    help = ("Read the Neo4j graph (labels with node counts, property keys with fill rate and type, relationship "
            "types between labels, vector and full-text indexes) and print a starting graph schema file, or write "
            "it with --output, for you to edit and point GRAPH_SCHEMA_FILE at.")

    def add_arguments(self, parser):
        parser.add_argument("--output", type=Path, default=None, help="write the schema here (refuses to overwrite)")

    def handle(self, *args, output=None, **options):
        text = schema_toml(inspect(open_store()))
        if output is None:
            self.stdout.write(text)
            return
        if output.exists():
            raise CommandError(f"{output} exists: pass another --output, or remove it first")
        output.write_text(text, encoding="utf-8")
        self.stdout.write(f"Wrote {output}: edit it, then set GRAPH_SCHEMA_FILE={output}")
