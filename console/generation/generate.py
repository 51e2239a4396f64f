"""Orchestration: files -> records -> validation -> checkpointed batches -> embedding files, with Progress events.

`generate(options)` is what `embedding-console generate` and `external_embedding_generator.py` run. Read it top
to bottom from `_generate`:
- `load_and_validate`: read the input files (`console.files.records`) and validate them (`console.files.validate`) before
  loading any model; `handle_rejects`: bad records stop the run (default) or are skipped (`on_invalid="skip"`),
  listed in `<output>/rejects.jsonl`; `load_embedder`;
- `_embed_all`, four stages over the valid records of every type (`TypeVectors` holds a type's rows):
  1. `collect_digests`: hash each text with the settings that change vectors (`run_key`);
  2. `reuse_vectors`: vectors already in the checkpoint (`<output>/.checkpoints/`) or in `--reuse` folders;
  3. `embed_and_write`: chunk by chunk, the missing texts are embedded (`ChunkEmbedder`, batch by batch from
     `Embedder.iter_batches`, each batch checkpointed as it finishes) and the chunk's records written to
     `embeddings_<type>.<format>` in input order;
  4. `finish`: every output is closed (renamed into place) together, with its `.meta.json`.

Memory stays flat with the input size (streaming): the inputs are read again at each step instead of being held
(`console.files.validate.GoodRecords`), records are embedded and written `chunk_size` at a time (length-sorted within a
chunk by the engine), and vectors wait in a scratch file on disk (``.embeddings_<type>.<pid>.vectors.raw``, one
row per distinct text, removed at the end) rather than in memory. What still grows with n, on purpose: per record
a 16-byte content digest and a 4-byte row number, per distinct text a few bytes of bookkeeping (~30 bytes per
record, 30 MB per million: needed to find reused vectors and identical texts), plus the validation's id digests
(see `console.files.validate.validate_files`). Measured with bench/scale.py's resume stage (model loaded, every vector in
the checkpoint): peak RSS 1,121 MB at 10k records, 1,150 MB at 1M (~0.03 KB per record, sorting temporaries and
memory the allocator keeps included), against ~1.4 KB per record when every record and vector was held.
Progress goes to a callback (`Progress`) and, when `progress_file` is set, to a JSON status file rewritten
atomically after each batch (the web console reads it; format in docs/DESIGN.md).
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

from console.errors import ModelLoadError, ValidationFailed
from console.files.embfiles import EmbeddedItem, EmbeddingWriter, make_meta
from console.files.records import Record, find_input_files
from console.files.validate import ValidationReport, validate_files, write_rejects
from console.generation.checkpoint import Checkpoint, content_digest, run_key
from console.generation.reuse import collect_digests, inputs_changed, reuse_vectors
from console.generation.scratch import TypeVectors
from console.generation.status import StatusFile
from console.generation.tracker import GenerateResult, Tracker
from console.options import GenerateOptions, check_options  # GenerateOptions: also imported from here
from console.progress import Progress

__all__ = ["GenerateOptions", "GenerateResult", "generate", "load_and_validate"]

REJECTS_FILE = "rejects.jsonl"


def load_and_validate(opts: GenerateOptions) -> tuple[list[Path], ValidationReport]:
    """Input files and their validation report (before any model is loaded)."""
    files = [Path(p) for p in opts.inputs] if opts.inputs else find_input_files(opts.input_dir or "embedding_data")
    # streaming: `report.good` reads the files again when iterated, it does not hold the records
    return files, validate_files(files, encoding_errors=opts.encoding_errors, limit=opts.limit)


def generate(opts: GenerateOptions, *, progress: Callable[[Progress], None] | None = None,
             embedder=None) -> GenerateResult:
    """Run the whole generation (see the module docstring). `embedder` may be given to reuse a loaded model."""
    status = StatusFile(opts.progress_file)
    try:
        result = _generate(opts, progress, embedder, status)
    except KeyboardInterrupt:
        status.update(state="stopped", message="stopped: finished batches are kept in the checkpoint; "
                                               "run the same command again to go on")
        raise
    except BaseException as exc:  # error: what kind of failure, for the console (a model that cannot load: no resume)
        status.update(state="failed", message=str(exc) or type(exc).__name__,
                      error="model_load" if isinstance(exc, ModelLoadError) else type(exc).__name__)
        raise
    status.update(state="done", message="; ".join(result.messages[-3:]) or None,
                  outputs=[str(p) for p in result.outputs])
    return result


def _generate(opts: GenerateOptions, progress, embedder, status: StatusFile) -> GenerateResult:
    """The run, stage by stage: validate, load the model, then (`_embed_all`) digests, reuse, embed-and-write, finish."""
    check_options(opts)
    files, report = load_and_validate(opts)
    result = GenerateResult(report=report, files=files)
    tracker = Tracker(result, status, progress, report.counts)
    handle_rejects(report, opts, result, tracker)
    if opts.dry_run or not tracker.total:
        return result
    out_dir = Path(opts.output_dir)
    remove_leftovers(out_dir)
    with open_engine(opts, embedder, tracker.say) as (embedder, remote):
        if embedder.device_message:
            tracker.say(embedder.device_message)
        result.meta = embedder.describe()
        for note in budget_notes(opts, result.meta["max_length"]):
            tracker.say(note)
        out_dir.mkdir(parents=True, exist_ok=True)
        _embed_all(report, opts, embedder, tracker, remote)
    return result


@contextmanager
def open_engine(opts: GenerateOptions, embedder, say: Callable[[str], None]):
    """(embedder, remote): the local engine's model (loaded here), or, with `--engine ray`, the model's settings
    and the Ray run that embeds what is missing (`console.generation.rayengine`; Ray is imported only then)."""
    if opts.engine != "ray":
        yield (embedder if embedder is not None else load_embedder(opts, say)), None
        return
    from console.generation.rayengine import RayEngine

    with RayEngine.start(opts, embedder, say) as remote:
        yield remote.model, remote


def budget_notes(opts: GenerateOptions, max_length: int | None) -> list[str]:
    """What `--max-tokens` will do with this model, when it is not what one may expect: a budget below the model's
    max length embeds longer texts one per batch; a budget that `--batch-size` texts never reach cuts no batch."""
    budget, size = opts.max_tokens, opts.batch_size
    if budget is None or not max_length:
        return []
    if budget < max_length:
        return [f"--max-tokens {budget} is below the model's max length ({max_length} tokens): each text over "
                f"{budget} tokens is embedded in a batch of its own"]
    if size * max_length <= budget:
        return [f"--max-tokens {budget} never cuts a batch: {size} texts (--batch-size) of at most {max_length} "
                f"tokens stay within it; raise --batch-size (e.g. {max(size, budget // 8)}) to let short texts share "
                "bigger batches"]
    return []


def handle_rejects(report: ValidationReport, opts: GenerateOptions, result: GenerateResult, tracker: Tracker) -> None:
    """Bad records: listed in `<output-dir>/rejects.jsonl` (unless a dry run); then stop (ValidationFailed) or say
    how many are skipped."""
    if not report.rejects:
        return
    if not opts.dry_run:
        result.rejects_path = write_rejects(report, Path(opts.output_dir) / REJECTS_FILE)
    if opts.on_invalid == "stop":
        raise ValidationFailed(report, result.rejects_path)
    n = len(report.rejects)
    tracker.say(f"skipped {n} invalid record{'s' if n != 1 else ''}"
                + (f"; listed in {result.rejects_path}" if result.rejects_path else ""))


def remove_leftovers(out_dir: Path) -> None:
    """Files of a run killed while writing its outputs: temporary outputs and scratch vectors."""
    for pattern in (".embeddings_*.tmp", ".embeddings_*.raw"):
        for stale in out_dir.glob(pattern):
            stale.unlink(missing_ok=True)


def load_embedder(opts: GenerateOptions, say: Callable[[str], None]):
    from console.generation.engine import Embedder

    say(f"loading model {opts.model} (device {opts.device}, dtype {opts.dtype}, backend {opts.backend}"
        + (f" {opts.quantize}" if opts.quantize != "none" else "") + ")")
    embedder = Embedder(opts.model, device=opts.device, dtype=opts.dtype, dimensions=opts.dimensions,
                        normalize=opts.normalize, max_length=opts.max_length, backend=opts.backend,
                        quantize=opts.quantize)
    if embedder.backend_message:
        say(embedder.backend_message)
    return embedder


def _embed_all(report: ValidationReport, opts: GenerateOptions, embedder, tracker: Tracker, remote=None) -> None:
    """The four stages over the valid records, with every file of the run closed (or removed) at the end.
    `remote` (the Ray engine) embeds every missing text between stages 2 and 3, so stage 3 only writes."""
    out_dir, counts, key = Path(opts.output_dir), report.counts, run_key(embedder)
    states = {t: TypeVectors(t, out_dir, embedder.dimensions) for t in counts}
    checkpoints = {t: Checkpoint(out_dir, t, key) for t in counts}
    writers: dict[str, EmbeddingWriter] = {}
    try:
        collect_digests(report.good, states, key, counts)  # 1. one read: digests
        if remote is not None:
            remote.salvage(key, checkpoints)  # parts of a killed Ray run: into the checkpoint
        for t, st in states.items():  # 2. vectors of this run's checkpoint and of --reuse folders
            tracker.result.reused += reuse_vectors(st, checkpoints[t], key, opts.reuse, out_dir, tracker.say)
        tracker.start(states.values(), opts.batch_size)
        if remote is not None:
            remote.embed_missing(report.good, states, checkpoints, key, tracker)  # one more read
        writers.update(open_writers(states, out_dir, opts.formats, tracker.result.meta))
        embed = ChunkEmbedder(embedder, key, opts.batch_size, tracker, opts.max_tokens)
        embed_and_write(report.good, states, checkpoints, writers, embed, opts.chunk_size)  # 3. one more read
        finish(writers, states, tracker)  # 4.
    finally:
        for writer in writers.values():
            writer.abort()
        for cp in checkpoints.values():
            cp.close()
        for st in states.values():
            st.close()


def open_writers(states: dict[str, TypeVectors], out_dir: Path, formats: Sequence[str],
                 info: dict) -> dict[str, EmbeddingWriter]:
    """One writer per type (every format), with the metadata of the run."""
    writers = {}
    for t, st in states.items():
        meta = make_meta(model=info["model"], dimensions=info["dimensions"], normalized=info["normalized"],
                         dtype=info["dtype"], count=st.count, type_=t, prompt=info["prompt"],
                         query_prompt=info["query_prompt"], max_length=info["max_length"], sources=sorted(st.sources),
                         backend=info.get("backend", "torch"), quantize=info.get("quantize", "none"))
        writers[t] = EmbeddingWriter(out_dir, t, formats=formats, meta=meta)
    return writers


@dataclass
class Missing:
    """The texts of one type that a chunk needs a vector for: their rows, texts and (first) record ids."""
    rows: list[int] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)


class ChunkEmbedder:
    """Embeds what a chunk misses, batch by batch (`Embedder.iter_batches`): each batch is checkpointed, stored in
    the type's rows and reported. The batch size and token budget carry over from chunk to chunk (after any OOM
    halving). On CUDA the next batch is tokenised while the GPU runs (`Embedder.tokenize_ahead`; same vectors)."""

    def __init__(self, embedder, key: str, batch_size: int, tracker: Tracker, max_tokens: int | None = None):
        self.embedder, self.key, self.batch_size, self.tracker = embedder, key, batch_size, tracker
        self.max_tokens = max_tokens

    def __call__(self, st: TypeVectors, checkpoint: Checkpoint, missing: Missing) -> None:
        rows, texts, ids = missing.rows, missing.texts, missing.ids
        for batch in self.embedder.iter_batches(texts, batch_size=self.batch_size, max_tokens=self.max_tokens,
                                                overlap=self.embedder.tokenize_ahead):
            idx, vectors, self.batch_size = batch.indices, batch.vectors, batch.batch_size
            self.max_tokens = batch.max_tokens
            checkpoint.append([ids[i] for i in idx], [content_digest(self.key, texts[i]).hex() for i in idx], vectors)
            covered = 0
            for i, vector in zip(idx, vectors):
                st.put(rows[i], vector)
                covered += int(st.uses[rows[i]])
            self.tracker.batch(st, len(idx), covered, self.batch_size, batch.messages)
        st.forget_cache()


def embed_and_write(records: Iterable[Record], states: dict[str, TypeVectors], checkpoints: dict[str, Checkpoint],
                    writers: dict[str, EmbeddingWriter], embed: Callable[[TypeVectors, Checkpoint, Missing], None],
                    chunk_size: int) -> None:
    """Stage 3 (one more read of the inputs), `chunk_size` records at a time: the chunk's texts without a vector
    are embedded (`embed`), then the chunk's records are written to their type's outputs, in input order."""
    chunk: list[tuple[TypeVectors, int, Record]] = []
    missing: dict[str, Missing] = {}
    position = dict.fromkeys(states, 0)
    for record in records:
        st = states[record.type]
        p = position[record.type]
        if p >= st.count:
            raise inputs_changed()
        position[record.type] = p + 1
        row = int(st.pos2row[p])
        if not st.present[row] and not st.queued[row]:
            st.queued[row] = True
            m = missing.setdefault(record.type, Missing())
            m.rows.append(row)
            m.texts.append(record.text)
            m.ids.append(record.id)
        chunk.append((st, row, record))
        if len(chunk) >= chunk_size:
            _embed_and_write_chunk(chunk, missing, states, checkpoints, writers, embed)
    _embed_and_write_chunk(chunk, missing, states, checkpoints, writers, embed)


def _embed_and_write_chunk(chunk, missing, states, checkpoints, writers, embed) -> None:
    for t, m in missing.items():
        embed(states[t], checkpoints[t], m)
    missing.clear()
    for st, row, record in chunk:
        if not st.present[row]:
            raise RuntimeError(f"no vector for record {record.id!r}")  # a bug, not an input problem
        writers[st.type_].add(EmbeddedItem(record.id, record.type, record.text, st.get(row), record.title))
    chunk.clear()


def finish(writers: dict[str, EmbeddingWriter], states: dict[str, TypeVectors], tracker: Tracker) -> None:
    """Stage 4: every output of the run is closed (renamed into place) together; counts and paths in the result."""
    result = tracker.result
    for t, writer in list(writers.items()):
        result.outputs += writer.close()
        del writers[t]
        result.counts[t] = states[t].count
    tracker.status.update(outputs=[str(p) for p in result.outputs])
