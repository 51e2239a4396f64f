"""`embedding-console`: the command line over `console` (generate, validate). A thin shell: no logic of its own.

    embedding-console generate --input-dir embedding_data --output-dir embeddings_output --batch-size 16
    embedding-console validate --input-dir embedding_data
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

COMMANDS = ("generate", "validate")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, not {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _formats(text: str) -> list[str]:
    from console.embfiles import FORMATS

    formats = [f.strip().lower() for f in text.split(",") if f.strip()]
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        raise argparse.ArgumentTypeError(f"choose from {', '.join(FORMATS)} (comma-separated), not {text!r}")
    return formats


def _add_input_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--input-dir", type=Path, default=None,
                   help="folder with the exported files (*.json arrays, *.jsonl, *.csv); default embedding_data")
    p.add_argument("--input", type=Path, action="append", default=[], metavar="FILE",
                   help="an input file (repeatable); used instead of --input-dir")
    p.add_argument("--on-invalid", choices=("stop", "skip"), default="stop",
                   help="bad records: stop before embedding (default) or skip them and list them in rejects.jsonl")
    p.add_argument("--encoding-errors", choices=("strict", "replace"), default="strict",
                   help="invalid UTF-8: stop with the byte offset (default) or replace bad bytes with U+FFFD")
    p.add_argument("--limit", type=_positive_int, default=None, help="use only the first N valid records")


def build_parser() -> argparse.ArgumentParser:
    from console.engine import DEFAULT_MODEL
    from console.generate import CHUNK_SIZE

    parser = argparse.ArgumentParser(prog="embedding-console",
                                     description="Embed exported recipes/ingredients/categories for Neo4j.")
    parser.add_argument("--version", action="version", version=f"embedding-console {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="{generate,validate}")

    gen = sub.add_parser("generate", help="validate, embed (resumable) and write embedding files",
                         description="Validate the exported records, embed them in checkpointed batches (a re-run "
                                     "resumes), and write embeddings_recipes.*, embeddings_ingredients.*, "
                                     "embeddings_categories.* (embeddings_<type>.* for other types). Other command: "
                                     "`embedding-console validate` (no model).")
    _add_input_options(gen)
    gen.add_argument("--output-dir", type=Path, default=Path("embeddings_output"),
                     help="where the embeddings_*.* files go (and .checkpoints/, rejects.jsonl); default embeddings_output")
    gen.add_argument("--model", default=DEFAULT_MODEL,
                     help=f"sentence-transformers model id or local folder (default {DEFAULT_MODEL})")
    gen.add_argument("--batch-size", type=_positive_int, default=16, help="texts per batch (default 16)")
    gen.add_argument("--device", choices=("auto", "cuda", "cpu"), default="auto")
    gen.add_argument("--dtype", choices=("auto", "float32", "float16", "bfloat16"), default="auto",
                     help="auto: bfloat16 (or float16) on a GPU, float32 on the CPU")
    gen.add_argument("--dimensions", type=_positive_int, default=None,
                     help="Matryoshka: keep the first N dimensions, then re-normalise")
    gen.add_argument("--normalize", dest="normalize", action="store_true", default=True,
                     help="unit-length vectors (default)")
    gen.add_argument("--no-normalize", dest="normalize", action="store_false")
    gen.add_argument("--max-length", type=_positive_int, default=None, help="max tokens per text (longer: cut)")
    gen.add_argument("--chunk-size", type=_positive_int, default=CHUNK_SIZE, metavar="N",
                     help=f"records embedded (sorted by length) and written at a time (default {CHUNK_SIZE:,}): "
                          "larger sorts lengths better, smaller holds less in memory; a resumed run may change it")
    gen.add_argument("--format", type=_formats, default=["json"], metavar="json,jsonl,parquet,npy",
                     help="output formats, comma-separated (default json)")
    gen.add_argument("--dry-run", action="store_true", help="validate only; load no model, write nothing")
    gen.add_argument("--progress-file", type=Path, default=None,
                     help="write a JSON status after each batch (read by the web console)")
    gen.add_argument("--reuse", type=Path, action="append", default=[], metavar="DIR",
                     help="output folder of an earlier run: its vectors for unchanged texts are reused (repeatable)")
    gen.add_argument("--quiet", action="store_true", help="no progress bar")

    val = sub.add_parser("validate", help="check the input files and report bad records (no model needed)")
    _add_input_options(val)
    val.add_argument("--rejects", type=Path, default=None, help="also write the bad records to this JSONL file")
    return parser


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
    from console.generate import CHUNK_SIZE, GenerateOptions

    return GenerateOptions(
        input_dir=args.input_dir, inputs=args.input, output_dir=getattr(args, "output_dir", Path(".")),
        model=getattr(args, "model", None), batch_size=getattr(args, "batch_size", 16),
        device=getattr(args, "device", "auto"), dtype=getattr(args, "dtype", "auto"),
        dimensions=getattr(args, "dimensions", None), normalize=getattr(args, "normalize", True),
        max_length=getattr(args, "max_length", None), limit=args.limit,
        dry_run=getattr(args, "dry_run", False) or args.command == "validate", on_invalid=args.on_invalid,
        encoding_errors=args.encoding_errors, formats=getattr(args, "format", ["json"]),
        progress_file=getattr(args, "progress_file", None), reuse=getattr(args, "reuse", []),
        chunk_size=getattr(args, "chunk_size", None) or CHUNK_SIZE)


def _print_report(report, files) -> None:
    names = ", ".join(p.name for p in files)
    print(f"Read {names}: {report.summary()}.")


def cmd_generate(args) -> int:
    from console.generate import generate

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
    from console.generate import load_and_validate
    from console.validate import write_rejects

    files, report = load_and_validate(_options(args))
    _print_report(report, files)
    for reject in report.rejects:
        print(f"  {reject.message}")
    if args.rejects and report.rejects:
        print(f"Listed in {write_rejects(report, args.rejects)}.")
    return 0 if report.ok else 1


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
        return {"generate": cmd_generate, "validate": cmd_validate}[args.command](args)
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
