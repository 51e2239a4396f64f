"""python manage.py export_data_for_embeddings [--limit N] [--format json|jsonl|csv] [--output-dir DIR] [--type T]"""
from __future__ import annotations

from itertools import islice
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from console.errors import InputError, Neo4jStoreError
from console.files.records import iter_records as read_records
from embedding_search.export import FORMATS, count, csv_columns, iter_records, output_file, write_records
from embedding_search.graph import get_schema

from ._common import open_store


class Command(BaseCommand):
    help = ("Export the graph schema's types for the embedding console (the demo's: recipes.json, ingredients.json, "
            "categories.json) with id, type, text (built as the schema says, e.g. \"Title. Description. "
            "Ingredients: a, b. Categories: x, y.\") and metadata. Streams page by page: constant memory for large "
            "graphs.")

    def add_arguments(self, parser):
        parser.add_argument("--limit", type=int, default=None, help="at most N items per type")
        parser.add_argument("--format", choices=FORMATS, default="json", help="json (default), jsonl or csv")
        parser.add_argument("--output-dir", type=Path, default=Path("embedding_data"),
                            help="folder for the files (default: embedding_data)")
        parser.add_argument("--type", choices=list(get_schema().types), action="append", dest="types",
                            help="export only this type (repeatable; default: every type of the graph schema)")
        parser.add_argument("--page-size", type=int, default=1000, help="items read per query (1000)")

    def handle(self, *args, limit=None, format="json", output_dir=Path("embedding_data"), types=None,
               page_size=1000, **options):
        if limit is not None and limit < 1:
            raise CommandError("--limit must be at least 1")
        store = open_store()
        for type_ in types or list(store.schema.types):
            spec = store.schema.type(type_)
            path = output_file(output_dir, spec, format)
            if limit:
                self._warn_before_overwriting(path, limit)
            try:
                total = count(store, type_)
                total = min(total, limit) if limit else total
                with tqdm(total=total, unit=type_, desc=path.name, disable=options.get("verbosity", 1) == 0) as bar:
                    n = write_records(iter_records(store, type_, limit=limit, page_size=page_size), path, format,
                                      progress=lambda done: bar.update(done - bar.n), columns=csv_columns(spec))
            except Neo4jStoreError as exc:
                raise CommandError(str(exc)) from None
            self.stdout.write(f"Wrote {n} {type_} records to {path}")

    def _warn_before_overwriting(self, path: Path, limit: int) -> None:
        """A warning when --limit is about to replace a bigger export (a full one, made before) in the same folder."""
        if not path.is_file():
            return
        try:
            held = sum(1 for _ in islice(read_records(path), limit + 1))
        except (InputError, OSError, ValueError):
            return  # not an export this command can read: it is replaced as before
        if held > limit:
            self.stderr.write(f"Warning: {path} holds more than {limit} records (an earlier export without --limit?); "
                              f"--limit {limit} now overwrites it with the first {limit}. To keep both, pass another "
                              "--output-dir (e.g. --output-dir test_data) next time.")
