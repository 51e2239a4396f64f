"""python manage.py load_demo_data [--data-dir DIR] [--limit N] [--batch-size N]"""
from __future__ import annotations

import time
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from console.errors import Neo4jStoreError
from recipes.demo_data import load, read_recipes

from embedding_search.management.commands._common import open_store


class Command(BaseCommand):
    help = ("Load the Indonesian recipes (data/indonesian-recipes/*.csv.gz in the repository, 11,751 rows from Cookpad) "
            "into Neo4j as Recipe, Ingredient and Category nodes. Idempotent: running it again updates in place.")

    def add_arguments(self, parser):
        parser.add_argument("--data-dir", type=Path, default=None,
                            help="folder of the *.csv.gz files (default: DEMO_DATA_DIR or the "
                                 "repository's data/indonesian-recipes)")
        parser.add_argument("--limit", type=int, default=None,
                            help="load at most N recipes, taken evenly from each file")
        parser.add_argument("--batch-size", type=int, default=500, help="recipes per transaction (500)")

    def handle(self, *args, data_dir=None, limit=None, batch_size=500, **options):
        data_dir = data_dir or settings.DEMO_DATA_DIR
        if limit is not None and limit < 1:
            raise CommandError("--limit must be at least 1")
        try:
            recipes = read_recipes(data_dir, limit)
        except FileNotFoundError as exc:
            raise CommandError(str(exc)) from None
        store = open_store()
        started = time.perf_counter()
        with tqdm(total=len(recipes), unit="recipe", desc="load_demo_data",
                  disable=options.get("verbosity", 1) == 0) as bar:
            try:
                counts = load(store, recipes, batch_size=batch_size,
                              progress=lambda done, total: bar.update(done - bar.n))
            except Neo4jStoreError as exc:
                raise CommandError(f"{exc} ({bar.n} of {len(recipes)} recipes were loaded; run the command "
                                   "again to finish)") from None
        self.stdout.write(
            f"Loaded {len(recipes)} recipes from {data_dir} in {time.perf_counter() - started:.1f} s; the graph "
            f"has {counts['recipes']} recipes, {counts['ingredients']} ingredients, {counts['categories']} categories"
        )
