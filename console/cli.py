"""`embedding-console`: the command line over `console` (generate, validate, exclude, serve). A thin shell: no
logic of its own.

    embedding-console generate --input-dir embedding_data --output-dir embeddings_output --batch-size 16
    embedding-console validate --input-dir embedding_data
    embedding-console exclude work/runs/<run-id> --id recipe-1 --note "duplicate"   (--undo, --undo-all; alone: list)
    embedding-console serve --model MODEL --port 8080     # query embeddings over HTTP (console/generation/serve.py)
    python external_embedding_generator.py --input-dir ... (same options as `generate`)

Exit status: 0 done, 1 bad input, options or model (the message says what to do), 130 interrupted.
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path

from console import __version__
from console.options import BACKENDS, DTYPES, QUANTIZATIONS, add_arguments, add_exclude_arguments, from_args

COMMANDS = ("generate", "validate", "exclude", "serve", "sync")


def build_parser() -> argparse.ArgumentParser:
    """The parser; the options of `generate` (and the input options of `validate`) come from `console.options`."""
    parser = argparse.ArgumentParser(prog="embedding-console",
                                     description="Embed exported recipes/ingredients/categories for Neo4j.")
    parser.add_argument("--version", action="version", version=f"embedding-console {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="{generate,validate,exclude,serve,sync}")

    gen = sub.add_parser("generate", help="validate, embed (resumable) and write embedding files",
                         description="Validate the exported records, embed them in checkpointed batches (a re-run "
                                     "resumes), and write embeddings_recipes.*, embeddings_ingredients.*, "
                                     "embeddings_categories.* (embeddings_<type>.* for other types). Other command: "
                                     "`embedding-console validate` (no model).")
    add_arguments(gen)
    gen.add_argument("--quiet", action="store_true", help="no progress bar")

    val = sub.add_parser("validate", help="check the input files and report bad records (no model needed)")
    add_arguments(val, group="input")
    val.add_argument("--rejects", type=Path, default=None, help="also write the bad records to this JSONL file")

    exc = sub.add_parser("exclude", help="exclude items of a run from downloads and pushes, undo, or list them",
                         description="Mark items of a run excluded (RUN/exclusions.jsonl, as the web console's "
                                     "Explore page does): downloads, pushes and `manage.py import_embeddings "
                                     "--exclude` leave them out (and remove from Neo4j the vectors an earlier push "
                                     "gave them); the run's vectors are kept. Without --id: list them.")
    add_exclude_arguments(exc)
    add_serve_arguments(sub)
    add_sync_arguments(sub)
    return parser


def add_sync_arguments(sub) -> None:
    syn = sub.add_parser("sync", help="embed the out-of-date nodes straight from Neo4j to Neo4j, on this machine",
                         description="Find the nodes whose vector is missing, made by another model, older than "
                                     "their text, or marked changed (NEO4J_* and GRAPH_SCHEMA_FILE say where and "
                                     "what), and embed them with each type's recorded model on this machine's GPU "
                                     "or CPU; killed and run again it redoes no finished batch. The backend's "
                                     "`manage.py sync_embeddings` does the same through its query embedder.")
    syn.add_argument("--type", action="append", dest="types", metavar="T",
                     help="a type of the graph schema (repeatable; default: every type with vectors)")
    syn.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (auto)")
    syn.add_argument("--batch-size", type=int, default=64, help="nodes embedded and written at once (64)")
    syn.add_argument("--limit", type=int, default=None, metavar="N", help="at most N nodes per type")
    syn.add_argument("--dry-run", action="store_true", help="count what is out of date, embed nothing")
    syn.add_argument("--quiet", action="store_true", help="no progress bar")


def add_serve_arguments(sub) -> None:
    srv = sub.add_parser("serve", help="serve query embeddings over HTTP (OpenAI-compatible /v1/embeddings)",
                         description="An OpenAI-compatible embeddings endpoint over the console's Embedder, for the "
                                     "backend's BACKEND_QUERY_EMBEDDER=remote. Inputs are encoded as given (the "
                                     "client applies the query prompt). Binding other than 127.0.0.1 needs "
                                     "EMBEDDINGS_API_KEY in the environment.")
    srv.add_argument("--model", required=True, help="model id or local folder (the one the vectors were made with)")
    srv.add_argument("--served-model-name", default=None,
                     help="the name clients ask for and answers carry (default: --model); it must match the model "
                          "recorded in the backend's EmbeddingSpace (last two path parts compared)")
    srv.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
    srv.add_argument("--port", type=int, default=8080, help="port (8080)")
    srv.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (auto)")
    srv.add_argument("--dtype", default="auto", choices=list(DTYPES))
    srv.add_argument("--max-batch", type=int, default=64, help="texts encoded together at most (64)")
    srv.add_argument("--batch-wait-ms", type=float, default=0.0,
                     help="wait this long after a request for others to batch with it (0: batch only the requests "
                          "that queued while the model was busy)")
    srv.add_argument("--max-length", type=int, default=None, help="cut texts to this many tokens")
    srv.add_argument("--backend", default="torch", choices=list(BACKENDS),
                     help="inference backend on the CPU: torch, onnx, openvino or auto (torch)")
    srv.add_argument("--quantize", default="none", choices=list(QUANTIZATIONS), help="none or int8 (onnx/openvino)")


class _Bar:
    """Renders Progress events with tqdm: items/s and ETA; messages printed above the bar."""

    def __init__(self, disable: bool):
        self.bar = None
        self.disable = disable

    def __call__(self, p) -> None:
        from tqdm import tqdm

        if p.message:
            (tqdm.write if self.bar is not None else print)(p.message, file=sys.stderr)
        if self.disable or not p.total or (p.message and self.bar is None):
            return  # the bar starts with the first batch event (after the model has loaded)
        if self.bar is None:
            # initial: items reused from a checkpoint count as done but not towards the rate
            self.bar = tqdm(total=p.total, initial=p.done, unit="item", dynamic_ncols=True, smoothing=0.1,
                            file=sys.stderr)
        if p.done > self.bar.n:
            self.bar.update(p.done - self.bar.n)
        postfix = {}
        if p.label:
            postfix["type"] = p.label
        if p.batch_size:
            postfix["batch"] = p.batch_size
        if p.gpu_mem_mb:
            postfix["gpu_mb"] = int(p.gpu_mem_mb)
        self.bar.set_postfix(postfix, refresh=False)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _options(args):
    return from_args(args, dry_run=True) if args.command == "validate" else from_args(args)


def _print_report(report, files) -> None:
    names = ", ".join(p.name for p in files)
    print(f"Read {names}: {report.summary()}.")


def cmd_generate(args) -> int:
    from console.generation.generate import generate

    bar = _Bar(disable=args.quiet or args.dry_run)
    try:
        result = generate(_options(args), progress=bar)
    finally:
        bar.close()
    _print_report(result.report, result.files)
    if args.dry_run:
        for reject in result.report.rejects:
            print(f"  {reject.message}")
        print("Dry run: nothing embedded.")
        return 0
    if result.meta:
        m = result.meta
        print(f"Model {m['model']} on {m['device']} ({m['dtype']}), {m['dimensions']}-d, "
              f"{'normalised' if m['normalized'] else 'not normalised'}: {result.embedded} embedded, "
              f"{result.reused} reused from the checkpoint.")
    for path in result.outputs:
        print(f"Wrote {path}")
    return 0


def cmd_validate(args) -> int:
    from console.generation.generate import load_and_validate
    from console.files.validate import write_rejects

    files, report = load_and_validate(_options(args))
    _print_report(report, files)
    for reject in report.rejects:
        print(f"  {reject.message}")
    if args.rejects and report.rejects:
        print(f"Listed in {write_rejects(report, args.rejects)}.")
    return 0 if report.ok else 1


def cmd_exclude(args) -> int:
    from console.explore import curation
    from console.errors import OptionError

    if not args.run.is_dir():
        raise OptionError(f"{args.run}: no such run folder — pass the folder of a generation run (work/runs/<run-id>)")
    if args.undo_all:
        print(f"Undone: all {curation.undo_all(args.run)} exclusions of {args.run.name}.")
        return 0
    if args.undo and not args.ids:
        raise OptionError("--undo needs the items to take back: --id ID (repeatable), or --undo-all")
    if args.ids and args.undo:
        print(f"Undone: {curation.undo(args.run, args.ids)} of {len(set(args.ids))} items.")
    elif args.ids:
        added = curation.exclude(args.run, args.ids, args.note)
        unknown = len(set(args.ids) - curation.run_ids(args.run))
        print(f"Excluded {added} new items ({len(set(args.ids)) - added} were already)."
              + (f" {unknown} ids are in none of the run's embedding files (kept in the list anyway)." if unknown
                 else ""))
    entries = curation.read_exclusions(curation.exclusions_path(args.run))
    for entry in entries.values():
        print(f"{entry.id}\t{entry.at}\t{entry.note}")
    print(f"{len(entries)} excluded items in {curation.exclusions_path(args.run)}")
    return 0


def cmd_serve(args) -> int:
    from console.generation.serve import embedder_service, make_server

    service = embedder_service(args.model, device=args.device, dtype=args.dtype, served_name=args.served_model_name,
                               max_batch=args.max_batch, wait_ms=args.batch_wait_ms, max_length=args.max_length,
                               backend=args.backend, quantize=args.quantize)
    server = make_server(service, args.host, args.port)
    host, port = server.server_address[:2]
    print(f"Serving {service.served} ({service.dimensions}-d) on http://{host}:{port}/v1/embeddings"
          f"{' (API key required)' if service.api_key else ''}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: a clean stop
        print("stopped", file=sys.stderr)
    finally:
        server.server_close()
        service.batcher.close()
    return 0


def sync_here(store, type_: str, *, device: str = "auto", batch_size: int = 64, limit: int | None = None,
              dry_run: bool = False, progress=None, should_stop=lambda: False):
    """One type's out-of-date nodes embedded on this machine with its recorded model (console.sinks.neo4j.sync);
    the CLI's `sync` and the web console's Graph page run this."""
    from console.errors import NoEmbeddings
    from console.generation.engine import Embedder
    from console.sinks.neo4j.sync import recorded_model, sync_type

    space = recorded_model(store, type_)
    if space is None:
        raise NoEmbeddings(f"{type_} has no recorded model yet: generate and push (or import) its vectors once")
    encode = lambda texts: None  # noqa: E731
    if not dry_run:
        embedder = Embedder(space["model"], device=device, dimensions=space["dimensions"])
        encode = lambda texts: embedder.encode_document(list(texts), batch_size=batch_size)  # noqa: E731
    return sync_type(store, type_, encode, model=space["model"], query_prompt=space.get("query_prompt"),
                     limit=limit, batch_size=batch_size, dry_run=dry_run, progress=progress, should_stop=should_stop)


def cmd_sync(args) -> int:
    from tqdm import tqdm

    from console.sinks.neo4j.store import Neo4jStore
    from console.sinks.neo4j.sync import freshness, types_with_vectors

    with Neo4jStore.from_env() as store:
        for type_ in args.types or types_with_vectors(store):
            total = freshness(store, type_).to_embed(args.limit)
            with tqdm(total=total, desc=f"sync {type_}", unit="node", disable=args.quiet or args.dry_run) as bar:
                report = sync_here(store, type_, device=args.device, batch_size=args.batch_size, limit=args.limit,
                                   dry_run=args.dry_run, progress=lambda done, _: bar.update(done - bar.n))
            print(report.summary())
    return 0


def _stop_on_sigterm(signum, frame):  # SIGTERM (the web console's Stop) ends a run like Ctrl-C does
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    from console.errors import ConsoleError

    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in COMMANDS and argv[0] != "--version":
        argv.insert(0, "generate")  # `external_embedding_generator.py --input-dir ...` means generate
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # our own bar is the one that counts items
    args = build_parser().parse_args(argv)
    try:
        previous = signal.signal(signal.SIGTERM, _stop_on_sigterm)
    except ValueError:  # not the main thread: leave signals alone
        previous = None
    try:
        return {"generate": cmd_generate, "validate": cmd_validate, "exclude": cmd_exclude,
                "serve": cmd_serve, "sync": cmd_sync}[args.command](args)
    except ConsoleError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted: finished batches are in the checkpoint; run the same command again to go on",
              file=sys.stderr)
        return 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
