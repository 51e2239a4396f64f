"""The console's work folder: everything the operator uploads or generates lives here, so nothing is lost on reload.

Layout (root from env ``CONSOLE_WORKDIR``, default ``<project>/work``, git-ignored)::

    uploads/                 export files the operator uploaded (JSON, JSON Lines, CSV)
    runs/<run-id>/           one generation run: its output folder (embeddings_recipes.* etc., .checkpoints/),
                             job.json (the arguments, pid, attempts), status.json (the CLI's progress file),
                             generate.log (the CLI's output)
    runs/<run-id>/exports/   files converted for download (JSON, JSON Lines, Parquet)
    cache/projections/       projections cached by hash of data and parameters

The operator's choices (input source, server folder, model) are kept per browser session by the pages, never in a
file shared by every visitor. A server folder is read only under ``CONSOLE_DATA_ROOTS`` (:func:`allowed_folder`).

Plain Python: no Streamlit import here; the pages are thin shells over this module.
"""
from __future__ import annotations

import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import BinaryIO, Iterable

PROJECT_ROOT = Path(__file__).resolve().parents[2]
INPUT_SUFFIXES = (".json", ".jsonl", ".ndjson", ".csv")
EMBEDDING_SUFFIXES = (".json", ".jsonl", ".parquet", ".npy")
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._ -]+")


@dataclass(frozen=True)
class FileInfo:
    path: Path
    size: int
    modified: datetime

    @property
    def name(self) -> str:
        return self.path.name


@dataclass(frozen=True)
class EmbeddingFile:
    """An embedding file of a run (``embeddings_recipes.json``, or ``embeddings_recipe.json`` of earlier runs)."""

    path: Path
    run_id: str
    type: str
    format: str

    @property
    def label(self) -> str:
        return f"{self.run_id} / {self.path.name}"


def human_size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"  # pragma: no cover


def safe_filename(name: str) -> str:
    """A file name without folders or odd characters (an uploaded name is never trusted as a path)."""
    base = Path(name.replace("\\", "/")).name
    cleaned = _SAFE_NAME.sub("_", base).strip(" .")
    if not cleaned:
        raise ValueError(f"{name!r} is not a usable file name: rename the file and upload it again")
    return cleaned


def _info(path: Path) -> FileInfo:
    st = path.stat()
    return FileInfo(path, st.st_size, datetime.fromtimestamp(st.st_mtime, tz=timezone.utc))


class Workspace:
    """The work folder. Create with ``Workspace()`` (env ``CONSOLE_WORKDIR``) or ``Workspace(path)``."""

    def __init__(self, root: str | os.PathLike | None = None):
        root = root or os.environ.get("CONSOLE_WORKDIR") or PROJECT_ROOT / "work"
        self.root = Path(root).expanduser().resolve()
        self.uploads = self.root / "uploads"
        self.runs = self.root / "runs"
        self.cache = self.root / "cache"
        for folder in (self.uploads, self.runs, self.cache):
            folder.mkdir(parents=True, exist_ok=True)

    # -- uploads ---------------------------------------------------------------------------------------------
    def save_upload(self, name: str, data: bytes | BinaryIO) -> Path:
        """Store an uploaded export file under uploads/ (written to a temporary file, then renamed).

        A file with the same name is replaced: the operator uploads a newer export of the same data.
        """
        target = self.uploads / safe_filename(name)
        if target.suffix.lower() not in INPUT_SUFFIXES:
            raise ValueError(
                f"{name}: not an export file (expected .json, .jsonl or .csv): export it with "
                "`manage.py export_data_for_embeddings` and upload that"
            )
        fd, tmp = tempfile.mkstemp(dir=self.uploads, prefix=".upload-", suffix=target.suffix)
        try:
            with os.fdopen(fd, "wb") as out:
                if isinstance(data, (bytes, bytearray, memoryview)):
                    out.write(data)
                else:
                    if hasattr(data, "seek"):
                        data.seek(0)
                    shutil.copyfileobj(data, out, length=1 << 20)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return target

    def list_uploads(self) -> list[FileInfo]:
        return sorted(
            (_info(p) for p in self.uploads.iterdir() if p.is_file() and p.suffix.lower() in INPUT_SUFFIXES),
            key=lambda f: f.name,
        )

    def remove_upload(self, name: str) -> None:
        (self.uploads / safe_filename(name)).unlink(missing_ok=True)

    # -- runs ------------------------------------------------------------------------------------------------
    def new_run_dir(self, label: str = "run") -> Path:
        """A fresh runs/<UTC time>-<label> folder (label: e.g. the model's short name)."""
        slug = re.sub(r"[^a-z0-9]+", "-", Path(label.rstrip("/")).name.lower()).strip("-")[:40] or "run"
        stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
        candidate, n = self.runs / f"{stamp}-{slug}", 1
        while candidate.exists():
            n += 1
            candidate = self.runs / f"{stamp}-{slug}-{n}"
        candidate.mkdir(parents=True)
        return candidate

    def run_dirs(self) -> list[Path]:
        """Run folders, newest first."""
        return sorted((p for p in self.runs.iterdir() if p.is_dir()), key=lambda p: p.name, reverse=True)

    def embedding_files(self, formats: Iterable[str] = ("json", "jsonl", "parquet", "npy")) -> list[EmbeddingFile]:
        """Every embedding file of every run, newest run first, under the current or the older name
        (``console.files.embfiles.parse_embedding_name``); an older-named file is left out when the run also has the
        current name for that type and format."""
        from console.files.embfiles import find_embedding_file, parse_embedding_name

        wanted = set(formats)
        found = []
        for run in self.run_dirs():
            for path in sorted(run.iterdir()):
                parsed = parse_embedding_name(path.name)
                if parsed is None or parsed[1] not in wanted or not path.is_file():
                    continue
                type_, fmt, _ = parsed
                if find_embedding_file(run, type_, fmt) == path:
                    found.append(EmbeddingFile(path, run.name, type_, fmt))
        return found

    def export_file(self, embedding_file: str | os.PathLike, fmt: str) -> Path:
        """The run's embedding file of `fmt` for download: the run's own file when it wrote that format (under the
        current or the older name), else a conversion into the run's ``exports/`` folder under the current name
        (made once, redone when the source is newer)."""
        from console.files.embfiles import (find_embedding_file, output_path, parse_embedding_name, read_embeddings,
                                      read_meta, write_embeddings)

        source = Path(embedding_file)
        parsed = parse_embedding_name(source.name)
        if parsed is None:
            raise ValueError(f"{source.name} is not an embedding file (embeddings_<type>.<format>)")
        type_ = parsed[0]
        native = find_embedding_file(source.parent, type_, fmt)
        if native is not None:
            return native
        folder = source.parent / "exports"
        target = output_path(folder, type_, fmt)
        if not target.exists() or target.stat().st_mtime_ns < source.stat().st_mtime_ns:
            write_embeddings(folder, type_, read_embeddings(source), formats=(fmt,),
                             meta=read_meta(source) or {})
        return target

    def projection_cache(self) -> Path:
        folder = self.cache / "projections"
        folder.mkdir(parents=True, exist_ok=True)
        return folder


# -- "a folder on the server": only under the roots the operator configured -----------------------------------------
DATA_ROOTS_ENV = "CONSOLE_DATA_ROOTS"


class FolderNotAllowed(ValueError):
    """A server folder the console may not read; the message says how to allow it."""


def data_roots(env=None) -> list[Path]:
    """The folders the console may read export files from: ``CONSOLE_DATA_ROOTS`` (separated by ``os.pathsep``),
    resolved (symlinks followed). Empty: reading a server folder is off."""
    env = os.environ if env is None else env
    return [Path(p).expanduser().resolve() for p in env.get(DATA_ROOTS_ENV, "").split(os.pathsep) if p.strip()]


def _inside(path: Path, roots: list[Path]) -> bool:
    return any(path == root or path.is_relative_to(root) for root in roots)


def allowed_folder(folder: str | os.PathLike, roots: list[Path] | None = None) -> Path:
    """``folder`` resolved (symlinks included), when it lies inside one of ``roots`` (default: :func:`data_roots`);
    else :class:`FolderNotAllowed`."""
    roots = data_roots() if roots is None else roots
    if not roots:
        raise FolderNotAllowed(f"reading a folder on the server is off: set {DATA_ROOTS_ENV} to the folders the "
                               f"console may read (separated by '{os.pathsep}') and restart it, or upload the files")
    resolved = Path(folder).expanduser().resolve()
    if not _inside(resolved, roots):
        raise FolderNotAllowed(f"{folder}: outside the folders the console may read "
                               f"({', '.join(str(r) for r in roots)}): pick a folder under one of them, or add it "
                               f"to {DATA_ROOTS_ENV}")
    return resolved


def folder_input_files(folder: str | os.PathLike, roots: list[Path] | None = None) -> list[Path]:
    """The export files in an allowed server folder (:func:`console.files.records.find_input_files`), resolved; a file
    that is a link leading out of the roots is left out. Raises FolderNotAllowed or InputError."""
    from console.files.records import find_input_files

    roots = data_roots() if roots is None else roots
    base = allowed_folder(folder, roots)
    return [p.resolve() for p in find_input_files(base) if _inside(p.resolve(), roots)]


# -- what the Upload page shows before anything runs --------------------------------------------------------------
@dataclass
class InputSummary:
    """Per-file counts by type, a preview of the first records, and the validation report, for a set of files."""

    files: list[dict] = field(default_factory=list)  # {"file", "records", "valid", "invalid", <type>: n, "error"}
    preview: list[dict] = field(default_factory=list)
    rejects: list[str] = field(default_factory=list)  # the user-facing message of each reject (first `max_rejects`)
    problems: dict = field(default_factory=lambda: {"duplicates": 0, "empty text": 0, "bad rows": 0, "unreadable files": 0})
    valid: int = 0
    counts: dict = field(default_factory=dict)  # valid records per type
    outside_schema: dict = field(default_factory=dict)  # valid records per type the graph schema lacks
    schema_source: str = ""  # the graph schema's file (the console's own: GRAPH_SCHEMA_FILE or the demo's)

    @property
    def invalid(self) -> int:
        return sum(self.problems.values())


def _problem_kind(kind) -> str:
    """The Upload page's problem count a reject's kind (``console.files.validate.RejectKind``) adds to."""
    from console.files.validate import RejectKind

    if kind is RejectKind.DUPLICATE_ID:
        return "duplicates"
    if kind in (RejectKind.EMPTY_TEXT, RejectKind.NO_TEXT):
        return "empty text"
    return "bad rows"


def inspect_inputs(paths: Iterable[str | os.PathLike], *, preview_rows: int = 50, max_rejects: int = 500) -> InputSummary:
    """Read and validate export files as the generator will (``console.files.records`` + ``console.files.validate``): ids must
    be unique across all the files. A file that cannot be read at all is reported by name, not raised.

    Streaming, like the generator: each file is read once on its own (to find the unreadable ones and count records
    per type), then the readable ones together by :func:`console.files.validate.validate_files` (duplicates across files);
    the preview reads only the first records again. Memory does not grow with the number of records, except for
    the rejects kept for the report."""
    from itertools import islice

    from console.errors import InputError
    from console.files.records import iter_records
    from console.files.validate import RejectKind, check_record, outside_schema, validate_files
    from console.graphschema import load_schema

    summary = InputSummary()
    per_file: dict[str, dict] = {}
    readable: list[Path] = []
    for path in paths:
        path = Path(path)
        row = {"file": path.name, "records": 0, "valid": 0, "invalid": 0, "error": ""}
        per_file[path.name] = row
        summary.files.append(row)
        types: dict[str, int] = {}
        try:
            for record in iter_records(path):
                row["records"] += 1
                if check_record(record) is None:
                    types[record.type] = types.get(record.type, 0) + 1
        except InputError as exc:
            row.update(records=0, error=str(exc))
            summary.problems["unreadable files"] += 1
            summary.rejects.append(str(exc))  # listed with the other problems (the page's "Problems" list)
            continue
        row.update(types, valid=sum(types.values()))
        readable.append(path)
    try:
        report = validate_files(readable)
    except InputError as exc:  # a file changed between the two reads (replaced by a new upload)
        summary.rejects.append(str(exc))
        summary.problems["unreadable files"] += 1
        return summary
    for reject in report.rejects:
        row = per_file.get(reject.source)
        if row is not None:
            row["invalid"] += 1
            if reject.kind is RejectKind.DUPLICATE_ID:  # it passed the checks above, so it was counted as valid
                row["valid"] -= 1
                row[reject.record.type] -= 1
                if not row[reject.record.type]:
                    del row[reject.record.type]
        summary.problems[_problem_kind(reject.kind)] += 1
        if len(summary.rejects) < max_rejects:
            summary.rejects.append(reject.message)
    summary.valid = len(report.good)
    summary.counts = report.counts
    schema = load_schema()
    summary.outside_schema, summary.schema_source = outside_schema(report.counts, schema), schema.source
    for record in islice(report.good, preview_rows):
        text = " ".join(record.text.split())
        summary.preview.append({"file": record.source, "line": record.line, "id": record.id, "type": record.type,
                                "title": record.title or "", "text": text[:200] + ("…" if len(text) > 200 else "")})
    return summary
