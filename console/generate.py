"""Orchestration: files -> records -> validation -> checkpointed batches -> embedding files, with Progress events.

`generate(options)` is what `embedding-console generate` and `external_embedding_generator.py` run. Steps:
1. read the input files (`console.records`) and validate them (`console.validate`) before loading any model;
   bad records stop the run (default) or are skipped (`on_invalid="skip"`), listed in `<output>/rejects.jsonl`;
2. per type, hash each text with the settings that change vectors; vectors already in the checkpoint
   (`<output>/.checkpoints/`) are reused, the rest are embedded batch by batch and checkpointed as they finish;
3. write `embeddings_<type>.<format>` (+ `.meta.json`) in input order from the finished vectors.

Memory stays flat with the input size (streaming): the inputs are read again at each step instead of being held
(`console.validate.GoodRecords`), records are embedded and written `chunk_size` at a time (length-sorted within a
chunk by the engine), and vectors wait in a scratch file on disk (``.embeddings_<type>.<pid>.vectors.raw``, one
row per distinct text, removed at the end) rather than in memory. What still grows with n, on purpose: per record
a 16-byte content digest and a 4-byte row number, per distinct text a few bytes of bookkeeping (~30 bytes per
record, 30 MB per million: needed to find reused vectors and identical texts), plus the validation's id digests
(see `console.validate.validate_files`). Measured with bench/scale.py's resume stage (model loaded, every vector in
the checkpoint): peak RSS 1,121 MB at 10k records, 1,150 MB at 1M (~0.03 KB per record, sorting temporaries and
memory the allocator keeps included), against ~1.4 KB per record when every record and vector was held.
Progress goes to a callback (`Progress`) and, when `progress_file` is set, to a JSON status file rewritten
atomically after each batch (the web console reads it; format in docs/DESIGN.md).
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from console.checkpoint import Checkpoint, content_digest, settings_key
from console.embfiles import FORMATS, EmbeddedItem, EmbeddingWriter, make_meta
from console.engine import gpu_memory_mb
from console.errors import InputError, OptionError, ValidationFailed
from console.options import DEFAULT_MODEL
from console.progress import Progress
from console.records import Record, find_input_files
from console.validate import ValidationReport, validate_files, write_rejects

REJECTS_FILE = "rejects.jsonl"
CHUNK_SIZE = 10_000  # records read, embedded and written at a time


@dataclass
class GenerateOptions:
    input_dir: Path | None = None
    inputs: Sequence[Path] = ()
    output_dir: Path = Path("embeddings_output")
    model: str = DEFAULT_MODEL
    batch_size: int = 16
    device: str = "auto"
    dtype: str = "auto"
    dimensions: int | None = None
    normalize: bool = True
    max_length: int | None = None
    limit: int | None = None
    dry_run: bool = False
    on_invalid: str = "stop"
    encoding_errors: str = "strict"
    formats: Sequence[str] = ("json",)
    progress_file: Path | None = None
    reuse: Sequence[Path] = ()  # output folders of earlier runs whose checkpoints may hold finished vectors
    chunk_size: int = CHUNK_SIZE  # records embedded and written at a time (bounds the memory of a run)


@dataclass
class GenerateResult:
    report: ValidationReport
    files: list[Path]
    outputs: list[Path] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)  # items written per type
    embedded: int = 0  # vectors computed in this run
    reused: int = 0  # vectors taken from the checkpoint
    rejects_path: Path | None = None
    messages: list[str] = field(default_factory=list)
    meta: dict = field(default_factory=dict)


class StatusFile:
    """The JSON status file for the web console, rewritten atomically (tmp + os.replace)."""

    def __init__(self, path: str | Path | None):
        self.path = Path(path) if path else None
        self.state: dict = {"state": "running", "files": {}, "done": 0, "total": 0, "rate": None, "eta_s": None,
                            "batch_size": None, "gpu_mem_mb": None, "message": None, "outputs": [],
                            "pid": os.getpid(), "updated_at": None}

    def update(self, **values) -> None:
        self.state.update(values)
        if self.path is None:
            return
        self.state["updated_at"] = time.time()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(self.state, ensure_ascii=False, default=str), encoding="utf-8")
        os.replace(tmp, self.path)


def check_options(opts: GenerateOptions) -> None:
    if opts.batch_size < 1:
        raise OptionError("--batch-size must be at least 1")
    if opts.limit is not None and opts.limit < 1:
        raise OptionError("--limit must be at least 1")
    if opts.on_invalid not in ("stop", "skip"):
        raise OptionError("--on-invalid must be stop or skip")
    if opts.encoding_errors not in ("strict", "replace"):
        raise OptionError("--encoding-errors must be strict or replace")
    unknown = [f for f in opts.formats if f not in FORMATS]
    if unknown or not opts.formats:
        raise OptionError(f"--format takes a comma-separated list of {', '.join(FORMATS)}"
                          + (f", not {', '.join(unknown)}" if unknown else ""))
    if opts.dimensions is not None and opts.dimensions < 1:
        raise OptionError("--dimensions must be at least 1")
    if opts.chunk_size < 1:
        raise OptionError("--chunk-size must be at least 1")


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
    except BaseException as exc:
        status.update(state="failed", message=str(exc) or type(exc).__name__)
        raise
    status.update(state="done", message="; ".join(result.messages[-3:]) or None,
                  outputs=[str(p) for p in result.outputs])
    return result


class _TypeVectors:
    """The vectors of one type during a run, by record position (input order among the records of the type).

    Records with the same text share one row ("u", numbered in order of first occurrence) of a scratch file on
    disk; memory per record: its 4-byte row number, per distinct text: 16-byte digest, row, use count, 2 flags.
    """

    BLOCK = 1024  # rows read at once when writing the outputs

    def __init__(self, type_: str, out_dir: Path, dim: int):
        self.type_ = type_
        self.dim = dim
        self.rowbytes = dim * 4
        self.digests = bytearray()
        self.sources: set[str] = set()
        self.count = 0
        self.done = 0
        self.path = out_dir / f".embeddings_{type_}.{os.getpid()}.vectors.raw"
        self.fd: int | None = None
        self._cache: np.ndarray | None = None
        self._cache_start = 0

    def index(self) -> None:
        """After every digest is in: number the distinct texts and map each record to its row (peak ~40 bytes per
        record while sorting, ~30 kept)."""
        n = len(self.digests) // 16
        keys = np.frombuffer(self.digests, dtype="S16") if n else np.zeros(0, dtype="S16")
        order = np.argsort(keys, kind="stable")
        ordered = keys[order]
        del keys
        self.digests = bytearray()
        new_run = np.ones(n, dtype=bool)
        np.not_equal(ordered[1:], ordered[:-1], out=new_run[1:])
        starts = np.flatnonzero(new_run)
        self.keys = ordered[starts]  # sorted distinct digests
        del ordered
        row_type = np.uint32 if n < 2**32 else np.int64
        run_of = np.cumsum(new_run, dtype=row_type)
        del new_run
        run_of -= 1
        first_pos = order[starts]  # the stable sort keeps each run's first record first
        del starts
        self.key_row = np.empty(len(first_pos), dtype=row_type)
        self.key_row[np.argsort(first_pos, kind="stable")] = np.arange(len(first_pos), dtype=row_type)
        del first_pos
        self.pos2row = np.empty(n, dtype=row_type)
        self.pos2row[order] = self.key_row[run_of]
        del order, run_of
        self.rows = len(self.keys)
        self.uses = np.bincount(self.pos2row, minlength=self.rows).astype(row_type)
        self.present = np.zeros(self.rows, dtype=bool)
        self.queued = np.zeros(self.rows, dtype=bool)
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)

    def rows_of(self, hashes: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(indices into `hashes` that this type wants, their rows)."""
        if not hashes or not self.rows:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        try:
            wanted = np.frombuffer(bytes.fromhex("".join(hashes)), dtype="S16")
        except ValueError:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        if len(wanted) != len(hashes):
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        at = np.minimum(np.searchsorted(self.keys, wanted), self.rows - 1)
        hit = np.flatnonzero(self.keys[at] == wanted)
        return hit, self.key_row[at[hit]]

    def put(self, row: int, vector: np.ndarray) -> None:
        os.pwrite(self.fd, np.ascontiguousarray(vector, dtype="<f4").tobytes(), int(row) * self.rowbytes)
        self.present[row] = True

    def get(self, row: int) -> np.ndarray:
        cache = self._cache
        if cache is None or not self._cache_start <= row < self._cache_start + len(cache):
            n = min(self.BLOCK, self.rows - row)
            data = os.pread(self.fd, n * self.rowbytes, int(row) * self.rowbytes)
            cache = self._cache = np.frombuffer(data, dtype="<f4").reshape(-1, self.dim)
            self._cache_start = int(row)
        return cache[row - self._cache_start]

    def forget_cache(self) -> None:
        self._cache = None

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        self.path.unlink(missing_ok=True)


def _generate(opts, progress, embedder, status: StatusFile) -> GenerateResult:
    check_options(opts)
    out_dir = Path(opts.output_dir)
    files, report = load_and_validate(opts)
    result = GenerateResult(report=report, files=files)

    def say(message: str) -> None:
        result.messages.append(message)
        if progress:
            progress(Progress(done=status.state["done"], total=status.state["total"], message=message))
        status.update(message=message)

    counts = report.counts  # good records per type, first-seen order
    total = len(report.good)
    status.update(total=total, files={t: {"done": 0, "total": n} for t, n in counts.items()})

    if report.rejects and not opts.dry_run:
        result.rejects_path = write_rejects(report, out_dir / REJECTS_FILE)
    if report.rejects and opts.on_invalid == "stop":
        raise ValidationFailed(report, result.rejects_path)
    if report.rejects:
        say(f"skipped {len(report.rejects)} invalid record{'s' if len(report.rejects) != 1 else ''}"
            + (f"; listed in {result.rejects_path}" if result.rejects_path else ""))
    if opts.dry_run or not total:
        return result

    for stale in out_dir.glob(".embeddings_*.tmp"):  # left by a run killed while writing its outputs
        stale.unlink(missing_ok=True)
    for stale in out_dir.glob(".embeddings_*.raw"):  # ... and its scratch vectors
        stale.unlink(missing_ok=True)
    if embedder is None:
        from console.engine import Embedder

        say(f"loading model {opts.model} (device {opts.device}, dtype {opts.dtype})")
        embedder = Embedder(opts.model, device=opts.device, dtype=opts.dtype, dimensions=opts.dimensions,
                            normalize=opts.normalize, max_length=opts.max_length)
    if embedder.device_message:
        say(embedder.device_message)
    info = embedder.describe()
    result.meta = info
    key = settings_key(model=info["model"], dimensions=info["dimensions"], normalize=info["normalized"],
                       max_length=info["max_length"], prompt=embedder.document_prompt)
    dim = int(info["dimensions"])
    out_dir.mkdir(parents=True, exist_ok=True)
    states = {t: _TypeVectors(t, out_dir, dim) for t in counts}
    checkpoints = {t: Checkpoint(out_dir, t, key) for t in counts}
    writers: dict[str, EmbeddingWriter] = {}
    try:
        # 1. one read: the content digest of every record, per type
        for record in report.good:
            st = states[record.type]
            st.digests += content_digest(key, record.text)
            st.sources.add(record.source)
            st.count += 1
        for t, st in states.items():
            if st.count != counts[t]:
                raise InputError("the input files changed while the run was reading them",
                                 hint="run the command again once they are complete")
            st.index()

        # 2. vectors already in the checkpoint, or in the checkpoints of earlier runs (--reuse)
        for t, st in states.items():
            def take(ids, hashes, matrix, st=st) -> None:
                if matrix.shape[1] != st.dim:
                    return
                for i, row in zip(*st.rows_of(hashes)):
                    if not st.present[row]:
                        st.put(row, matrix[i])

            loaded = checkpoints[t].scan(take)
            if loaded.repaired:
                say(loaded.repaired)
            for folder in opts.reuse:  # incremental: vectors of an earlier run with the same settings
                if st.present.all() or Path(folder).resolve() == out_dir.resolve():
                    continue
                found = 0

                def take_earlier(ids, hashes, matrix, st=st, cp=checkpoints[t]) -> None:
                    nonlocal found
                    if matrix.shape[1] != st.dim:
                        return
                    keep, seen = [], set()
                    for i, r in zip(*st.rows_of(hashes)):
                        if not st.present[r] and r not in seen:
                            seen.add(r)
                            keep.append((i, r))
                    if not keep:
                        return
                    idx = [i for i, _ in keep]
                    # ids are those of the earlier run's records with the same text
                    cp.append([ids[i] for i in idx], [hashes[i] for i in idx], matrix[idx])
                    for i, r in keep:
                        st.put(r, matrix[i])
                    found += len(keep)

                Checkpoint(folder, t, key).scan(take_earlier)
                if found:
                    say(f"{t}: {found} vectors taken from {folder}")
            reused = int(st.uses[st.present].sum())
            st.done = reused
            result.reused += reused
            if reused:
                say(f"{t}: {reused} of {st.count} vectors reused from the checkpoint")

        # 3. one more read: embed what is missing, chunk by chunk, and write every record in input order
        for t, st in states.items():
            meta = make_meta(model=info["model"], dimensions=info["dimensions"], normalized=info["normalized"],
                             dtype=info["dtype"], count=st.count, type_=t, prompt=info["prompt"],
                             query_prompt=info["query_prompt"], max_length=info["max_length"],
                             sources=sorted(st.sources))
            writers[t] = EmbeddingWriter(out_dir, t, formats=opts.formats, meta=meta)
        t0 = time.monotonic()
        done = result.reused
        batch_size = opts.batch_size

        def report_progress(t: str, p: Progress) -> None:
            elapsed = time.monotonic() - t0
            rate = result.embedded / elapsed if elapsed > 0 and result.embedded else None
            eta = (total - done) / rate if rate else None
            if p.message:
                result.messages.append(p.message)
            status.state["files"][t] = {"done": states[t].done, "total": states[t].count}
            status.update(done=done, rate=rate, eta_s=eta, batch_size=p.batch_size, gpu_mem_mb=p.gpu_mem_mb,
                          **({"message": p.message} if p.message else {}))
            if progress:
                progress(Progress(done=done, total=total, label=t, rate=rate, eta_s=eta, batch_size=p.batch_size,
                                  gpu_mem_mb=p.gpu_mem_mb, message=p.message))

        for t in states:
            status.state["files"][t] = {"done": states[t].done, "total": states[t].count}
        report_progress(next(iter(states)), Progress(batch_size=batch_size))

        def embed(t: str, rows: list[int], texts: list[str], ids: list[str]) -> None:
            nonlocal done, batch_size
            st, cp = states[t], checkpoints[t]
            for idx, vecs, batch_size, messages in embedder.iter_batches(texts, batch_size=batch_size):
                for message in messages:
                    report_progress(t, Progress(batch_size=batch_size, gpu_mem_mb=gpu_memory_mb(), message=message))
                cp.append([ids[i] for i in idx], [content_digest(key, texts[i]).hex() for i in idx], vecs)
                for i, v in zip(idx, vecs):
                    r = rows[i]
                    st.put(r, v)
                    n = int(st.uses[r])
                    st.done += n
                    done += n
                result.embedded += len(idx)
                report_progress(t, Progress(batch_size=batch_size, gpu_mem_mb=gpu_memory_mb()))
            st.forget_cache()

        chunk: list[tuple[_TypeVectors, int, Record]] = []
        queue: dict[str, tuple[list[int], list[str], list[str]]] = {}
        position = dict.fromkeys(states, 0)

        def flush() -> None:
            for t, (rows, texts, ids) in queue.items():
                embed(t, rows, texts, ids)
            queue.clear()
            for st, row, record in chunk:
                if not st.present[row]:
                    raise RuntimeError(f"no vector for record {record.id!r}")  # a bug, not an input problem
                writers[st.type_].add(EmbeddedItem(record.id, record.type, record.text, st.get(row), record.title))
            chunk.clear()

        for record in report.good:
            st = states[record.type]
            p = position[record.type]
            if p >= st.count:
                raise InputError("the input files changed while the run was reading them",
                                 hint="run the command again once they are complete")
            position[record.type] = p + 1
            row = int(st.pos2row[p])
            if not st.present[row] and not st.queued[row]:
                st.queued[row] = True
                rows, texts, ids = queue.setdefault(record.type, ([], [], []))
                rows.append(row)
                texts.append(record.text)
                ids.append(record.id)
            chunk.append((st, row, record))
            if len(chunk) >= opts.chunk_size:
                flush()
        flush()
        for t, writer in list(writers.items()):
            result.outputs += writer.close()
            del writers[t]
            result.counts[t] = states[t].count
        status.update(outputs=[str(p) for p in result.outputs])
    finally:
        for writer in writers.values():
            writer.abort()
        for cp in checkpoints.values():
            cp.close()
        for st in states.values():
            st.close()
    return result


