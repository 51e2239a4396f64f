"""Orchestration: files -> records -> validation -> checkpointed batches -> embedding files, with Progress events.

`generate(options)` is what `embedding-console generate` and `external_embedding_generator.py` run. Steps:
1. read the input files (`console.records`) and validate them (`console.validate`) before loading any model;
   bad records stop the run (default) or are skipped (`on_invalid="skip"`), listed in `<output>/rejects.jsonl`;
2. per type, hash each text with the settings that change vectors; vectors already in the checkpoint
   (`<output>/.checkpoints/`) are reused, the rest are embedded batch by batch and checkpointed as they finish;
3. write `embeddings_<type>.<format>` (+ `.meta.json`) in input order from the finished vectors.
Progress goes to a callback (`Progress`) and, when `progress_file` is set, to a JSON status file rewritten
atomically after each batch (the web console reads it; format in docs/DESIGN.md).
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from console.checkpoint import Checkpoint, content_hash, settings_key
from console.embfiles import FORMATS, EmbeddedItem, make_meta, write_embeddings
from console.engine import DEFAULT_MODEL, gpu_memory_mb
from console.errors import OptionError, ValidationFailed
from console.records import Record, find_input_files, read_records
from console.validate import ValidationReport, validate, write_rejects

REJECTS_FILE = "rejects.jsonl"


@dataclass
class Progress:
    """One progress event: counts, rate (items/s), ETA, current batch size, GPU memory, and an optional message."""
    done: int = 0
    total: int = 0
    label: str = ""
    rate: float | None = None
    eta_s: float | None = None
    batch_size: int | None = None
    gpu_mem_mb: float | None = None
    message: str | None = None


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


def load_and_validate(opts: GenerateOptions) -> tuple[list[Path], ValidationReport]:
    """Input files and their validation report (before any model is loaded)."""
    files = [Path(p) for p in opts.inputs] if opts.inputs else find_input_files(opts.input_dir or "embedding_data")
    records: list[Record] = []
    for path in files:
        records.extend(read_records(path, encoding_errors=opts.encoding_errors))
    report = validate(records)
    if opts.limit is not None:
        report.good = report.good[: opts.limit]
    return files, report


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

    by_type: dict[str, list[Record]] = {}
    for record in report.good:
        by_type.setdefault(record.type, []).append(record)
    total = len(report.good)
    status.update(total=total, files={t: {"done": 0, "total": len(rs)} for t, rs in by_type.items()})

    if report.rejects and not opts.dry_run:
        result.rejects_path = write_rejects(report, out_dir / REJECTS_FILE)
    if report.rejects and opts.on_invalid == "stop":
        raise ValidationFailed(report, result.rejects_path)
    if report.rejects:
        say(f"skipped {len(report.rejects)} invalid record{'s' if len(report.rejects) != 1 else ''}"
            + (f"; listed in {result.rejects_path}" if result.rejects_path else ""))
    if opts.dry_run or not report.good:
        return result

    for stale in out_dir.glob(".embeddings_*.tmp"):  # left by a run killed while writing its outputs
        stale.unlink(missing_ok=True)
    for stale in out_dir.glob(".embeddings_*.raw"):
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

    done_before = 0  # items of finished types
    t0 = time.monotonic()
    for type_, records in by_type.items():
        hashes = [content_hash(key, r.text) for r in records]
        with Checkpoint(out_dir, type_, key) as cp:
            loaded = cp.load(wanted=set(hashes))
            if loaded.repaired:
                say(loaded.repaired)
            vectors = loaded.vectors
            for folder in opts.reuse:  # incremental: vectors of an earlier run with the same settings
                missing = set(hashes) - set(vectors)
                if not missing or Path(folder).resolve() == out_dir.resolve():
                    continue
                earlier = Checkpoint(folder, type_, key).load(wanted=missing)
                if earlier.vectors:
                    found = list(earlier.vectors)
                    ids = {h: r.id for r, h in zip(records, hashes)}
                    cp.append([ids[h] for h in found], found, np.vstack([earlier.vectors[h] for h in found]))
                    vectors.update(earlier.vectors)
                    say(f"{type_}: {len(found)} vectors taken from {folder}")
            todo: dict[str, int] = {}  # hash -> index of its first record
            for i, h in enumerate(hashes):
                if h not in vectors and h not in todo:
                    todo[h] = i
            reused = sum(1 for h in hashes if h in vectors)
            result.reused += reused
            if reused:
                say(f"{type_}: {reused} of {len(records)} vectors reused from the checkpoint")
            todo_hashes = list(todo)
            todo_idx = list(todo.values())
            same_text = {}  # records that share a text with one in `todo` are done when it is
            for i, h in enumerate(hashes):
                if h in todo and todo[h] != i:
                    same_text[h] = same_text.get(h, 0) + 1
            type_done = reused

            def on_batch(idx: np.ndarray, vecs: np.ndarray) -> None:
                nonlocal type_done
                batch_hashes = [todo_hashes[i] for i in idx]
                cp.append([records[todo_idx[i]].id for i in idx], batch_hashes, vecs)
                for h, v in zip(batch_hashes, vecs):
                    vectors[h] = v
                    type_done += 1 + same_text.get(h, 0)
                result.embedded += len(idx)

            def on_progress(p: Progress) -> None:
                done = done_before + type_done
                elapsed = time.monotonic() - t0
                rate = result.embedded / elapsed if elapsed > 0 and result.embedded else None
                eta = (total - done) / rate if rate else None
                event = Progress(done=done, total=total, label=type_, rate=rate, eta_s=eta,
                                 batch_size=p.batch_size, gpu_mem_mb=p.gpu_mem_mb, message=p.message)
                if p.message:
                    result.messages.append(p.message)
                status.state["files"][type_] = {"done": type_done, "total": len(records)}
                status.update(done=done, rate=rate, eta_s=eta, batch_size=p.batch_size, gpu_mem_mb=p.gpu_mem_mb,
                              **({"message": p.message} if p.message else {}))
                if progress:
                    progress(event)

            on_progress(Progress(batch_size=opts.batch_size))
            if todo_idx:
                embedder.encode([records[i].text for i in todo_idx], batch_size=opts.batch_size,
                                on_batch=on_batch, progress=on_progress, label=type_)
        items = (EmbeddedItem(r.id, r.type, r.text, vectors[h], r.title) for r, h in zip(records, hashes))
        meta = make_meta(model=info["model"], dimensions=info["dimensions"], normalized=info["normalized"],
                         dtype=info["dtype"], count=len(records), type_=type_, prompt=info["prompt"],
                         query_prompt=info["query_prompt"], max_length=info["max_length"],
                         sources=sorted({r.source for r in records}))
        result.outputs += write_embeddings(out_dir, type_, items, formats=opts.formats, meta=meta)
        result.counts[type_] = len(records)
        done_before += len(records)
        status.update(outputs=[str(p) for p in result.outputs])
    return result


def progress_dict(p: Progress) -> dict:
    return asdict(p)
