"""python manage.py import_embeddings --embedding-file embeddings_recipes.json [--dry-run] [--batch-size N]
[--exclude exclusions.jsonl] [--parallel N]"""
from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from console.explore.curation import read_exclusions
from console.errors import InputError, Neo4jStoreError
from console.sinks.neo4j.writer import DEFAULT_BATCH_SIZE, DEFAULT_WORKERS
from console.sinks.push import LoadedItems, load_items, write_loaded

from ._common import open_store

SHOWN = 20


class Command(BaseCommand):
    help = ("Import embeddings (the console's JSON, JSON Lines or Parquet output) onto the graph's nodes: every "
            "vector is checked first (finite, one dimension for the file and the index, known ids), then written "
            "in batches with UNWIND and db.create.setNodeVectorProperty. Idempotent; --dry-run only reports. Items "
            "of --exclude are left out, and the vectors an earlier import gave them are removed.")

    def add_arguments(self, parser):
        parser.add_argument("--embedding-file", type=Path, action="append", required=True, dest="files",
                            help="embeddings_recipes.json (embeddings_<type>.json of earlier runs), .jsonl or .parquet; "
                                 "any name when the items say their type or a <name>.meta.json does (repeatable)")
        parser.add_argument("--dry-run", action="store_true", help="check and report, write nothing")
        parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE,
                            help=f"vectors per transaction ({DEFAULT_BATCH_SIZE})")
        parser.add_argument("--parallel", type=int, default=DEFAULT_WORKERS, metavar="N",
                            help=f"sessions writing batches at once ({DEFAULT_WORKERS}); more only help when the Neo4j "
                                 "server has idle cores (README, Performance)")
        parser.add_argument("--model", default=None,
                            help="model that made the vectors, when no .meta.json lies beside the file")
        parser.add_argument("--exclude", type=Path, default=None, metavar="FILE",
                            help="leave out the items listed in FILE (JSON Lines of {\"id\", \"note\", \"at\"}: "
                                 "the exclusions.jsonl the console writes in a run's folder), and remove the vectors "
                                 "an earlier import gave them")

    def handle(self, *args, files, dry_run=False, batch_size=DEFAULT_BATCH_SIZE, model=None, exclude=None,
               parallel=DEFAULT_WORKERS, **options):
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1")
        if parallel < 1:
            raise CommandError(f"--parallel must be at least 1 (sessions writing at once), not {parallel}")
        quiet = options.get("verbosity", 1) == 0
        missing = [str(path) for path in files if not path.is_file()]
        if missing:
            raise CommandError(f"{', '.join(missing)}: no such file — pass the embeddings_<type>.json (or .jsonl, "
                               ".parquet) that the generator wrote, with its path (nothing was imported)")
        excluded = self._exclusions(exclude)
        matched: set[str] = set()
        wrote_nothing: list[str] = []
        store = None
        for path in files:
            loaded = self._load(path, model, excluded)
            matched |= loaded.items.matched if excluded else set()
            if loaded.count == 0:  # still written through: an earlier import's vectors of these items are cleared
                self.stdout.write(f"{path.name}: all its {loaded.left_out} items are excluded by {exclude.name}: "
                                  "nothing to write")
            store = store or open_store()
            index_bars: dict[str, tqdm] = {}

            def index_progress(name: str, state: str, percent: float) -> None:
                """A second bar while a missing vector index is created before the writes (populationPercent, polled:
                it fills from vectors already on the nodes, if any, at once otherwise)."""
                if name not in index_bars:
                    index_bars[name] = tqdm(total=100, unit="%", desc=f"building {name}", disable=quiet,
                                            bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed}")
                bar = index_bars[name]
                bar.update(max(0.0, (100.0 if state == "ONLINE" else percent) - bar.n))

            try:
                with tqdm(total=loaded.count, unit="vec", desc=path.name, disable=quiet) as bar:
                    report = write_loaded(store, loaded, batch_size=batch_size, dry_run=dry_run, workers=parallel,
                                          progress=lambda done, _total: bar.update(done - bar.n),
                                          index_progress=index_progress)
            except InputError as exc:
                raise CommandError(f"{exc} (batches before it were written; fix the file and run again: written "
                                   "vectors are skipped)") from None
            except Neo4jStoreError as exc:
                raise CommandError(str(exc)) from None
            finally:
                for index_bar in index_bars.values():
                    index_bar.close()
            self._report(path, loaded.model, report)
            if report.total and not (report.written or report.unchanged):
                wrote_nothing.append(path.name)
        if len(matched) < len(excluded):
            self.stderr.write(f"{len(excluded) - len(matched)} ids of {exclude.name} match no item of the imported "
                              "files (ignored)")
        if wrote_nothing:
            raise CommandError(f"{', '.join(wrote_nothing)}: no vector {'would be' if dry_run else 'was'} written, "
                               "every item was rejected or is not in the graph (see above): check that the file "
                               "belongs to this graph (export it from here, embed, import)")

    @staticmethod
    def _exclusions(path: Path | None) -> frozenset[str]:
        """The ids of the --exclude file; a missing or broken file stops the import before anything is written."""
        if path is None:
            return frozenset()
        if not path.is_file():
            raise CommandError(f"{path}: no such exclusion file — pass the exclusions.jsonl of the run (nothing was "
                               "imported)")
        try:
            return frozenset(read_exclusions(path))
        except InputError as exc:
            raise CommandError(f"{exc} (nothing was imported)") from None

    @staticmethod
    def _load(path: Path, model: str | None, excluded: frozenset[str] = frozenset()) -> LoadedItems:
        """The file as the push loads it (model and query prompt from its .meta.json), read through once first, so
        that a broken line stops the import before anything is written; the excluded items are left out."""
        loaded = load_items(path, model, exclude=excluded)
        if not loaded.model:
            raise CommandError(
                f"{path.name}: no .meta.json beside it says which model made the vectors: pass --model NAME "
                "(semantic search embeds queries with that model)"
            )
        try:
            total = loaded.count_all()
        except InputError as exc:
            raise CommandError(f"{exc} (nothing was imported)") from None
        if total == 0 and not loaded.left_out:
            raise CommandError(f"{path.name}: the file holds no embeddings — re-create it with "
                               "`embedding-console generate` (nothing was imported)")
        return loaded

    def _report(self, path, model, report) -> None:
        prefix = "Dry run, nothing written: " if report.dry_run else ""
        self.stdout.write(f"{prefix}{path.name} ({model}): {report.summary()} in {report.elapsed_s:.1f} s")
        for name in report.indexes_created:
            self.stdout.write(f"Created vector index {name}")
        if report.unknown_count:
            more = report.unknown_count - min(SHOWN, len(report.unknown_ids))
            self.stderr.write(f"{report.unknown_count} ids are not in the graph (not written): "
                              + ", ".join(report.unknown_ids[:SHOWN]) + (f" and {more} more" if more > 0 else ""))
        for reject in report.rejected[:SHOWN]:
            self.stderr.write(f"rejected {reject['id']}: {reject['reason']}")
        if len(report.rejected) > SHOWN:
            self.stderr.write(f"... and {len(report.rejected) - SHOWN} more rejected")
