"""python manage.py sync_embeddings [--type T] [--every SECONDS] [--limit N] [--dry-run] [--batch-size N]"""
from __future__ import annotations

import time

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from console.errors import ConsoleError
from console.sinks.neo4j.sync import types_with_vectors
from embedding_search.graph import get_schema, get_store


class Command(BaseCommand):
    help = ("Embed the nodes whose vector is missing, made by another model, or older than their text (the text the "
            "graph schema builds), and those marked changed, with each type's recorded model; killed and run again "
            "it redoes no finished batch. --every keeps it running, a pass every SECONDS.")

    def add_arguments(self, parser):
        parser.add_argument("--type", action="append", dest="types", metavar="T",
                            help="a type of the graph schema (repeatable; default: every type with vectors)")
        parser.add_argument("--every", type=float, default=None, metavar="SECONDS", help="run a pass every SECONDS")
        parser.add_argument("--limit", type=int, default=None, metavar="N", help="at most N nodes per type and pass")
        parser.add_argument("--batch-size", type=int, default=64, help="nodes embedded and written at once (64)")
        parser.add_argument("--dry-run", action="store_true", help="count what is out of date, embed nothing")

    def handle(self, *args, types=None, every=None, limit=None, batch_size=64, dry_run=False, **options):
        run_passes(self, types, every=every, limit=limit, batch_size=batch_size, dry_run=dry_run,
                   quiet=options.get("verbosity", 1) == 0)


def run_passes(command, types, *, every, limit, batch_size, dry_run, quiet) -> None:
    from embedding_search.sync import sync_all

    schema = get_schema()
    unknown = [t for t in types or () if t not in schema.types]
    if unknown:
        raise CommandError(f"unknown type {unknown[0]!r}: the graph schema ({schema.source}) has "
                           f"{', '.join(schema.types)}")
    if (limit is not None and limit < 1) or batch_size < 1 or (every is not None and every <= 0):
        raise CommandError("--limit and --batch-size must be at least 1, --every more than 0")
    while True:
        bars: dict[str, tqdm] = {}
        try:
            reports = sync_all(types or types_with_vectors(get_store()), limit=limit, dry_run=dry_run,
                               batch_size=batch_size, progress=_bar_progress(bars, quiet))
        except ConsoleError as exc:
            raise CommandError(str(exc)) from None
        finally:
            for bar in bars.values():
                bar.close()
        for report in reports:
            command.stdout.write(report.summary())
        if every is None:
            return
        time.sleep(every)


def _bar_progress(bars: dict, quiet: bool):
    def progress(type_: str, done: int, total: int | None) -> None:
        if type_ not in bars:
            bars[type_] = tqdm(desc=f"sync {type_}", unit="node", total=total, disable=quiet)
        bars[type_].update(done - bars[type_].n)
    return progress
