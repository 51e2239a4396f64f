"""Curation: the items of a run the operator excluded, kept beside the run's vectors and left out downstream.

The run's folder holds ``exclusions.jsonl``: one JSON object per excluded item, ``{"id", "note", "at"}`` (``at``: UTC
time, ISO 8601), readable and editable by a person, and usable as it is by ``manage.py import_embeddings --exclude``.
The file always holds the current set: every change (exclude, undo, undo all) rewrites it whole into a temporary file
in the same folder, flushed to disk, then renamed over the old one (``os.replace``): a process killed mid-write leaves
the previous file intact, never half of one. Changes from several sessions at once are serialised by a lock file
(``.exclusions.lock``), so that none is lost. Undo all removes the file.

Nothing is deleted from the run's vectors: downloads (:func:`export_file`) and pushes (``console.sinks.push``, with
``exclude=``) leave the excluded items out as they read, and count them; a push also removes from Neo4j the vectors
those items got from an earlier push (``console.sinks.neo4j.writer.clear_vectors``). Plain Python: no Streamlit or Django.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

from console.errors import InputError
from console.files.records import item_field, iter_json_lines

EXCLUSIONS_FILE = "exclusions.jsonl"
LOCK_FILE = ".exclusions.lock"
HINT = ('each line must be a JSON object with an "id" (text), and optionally a "note" and an "at" (text), e.g. '
        '{"id": "recipe-1", "note": "duplicate"}: fix or remove that line')


@dataclass(frozen=True)
class Exclusion:
    """One excluded item: its id, the operator's note (may be empty) and when it was excluded (UTC, ISO 8601)."""
    id: str
    note: str = ""
    at: str = ""


def now_utc() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def exclusions_path(run: str | os.PathLike) -> Path:
    """The exclusion file of a run: ``run`` is the run's folder or one of its embedding files."""
    path = Path(run)
    return (path if path.is_dir() else path.parent) / EXCLUSIONS_FILE


def _entry(obj: Any, path: Path, line: int) -> Exclusion:
    if not isinstance(obj, dict):
        raise InputError("not an object", file=path, line=line, hint=HINT)
    item_id = obj.get("id")
    if not isinstance(item_id, str) or not item_id.strip():
        raise InputError('no "id"' if item_id is None else '"id" must be a non-empty text', file=path, line=line,
                         hint=HINT)
    for name in ("note", "at"):
        if obj.get(name) is not None and not isinstance(obj[name], str):
            raise InputError(f'"{name}" must be a text', file=path, line=line, hint=HINT)
    return Exclusion(item_id, obj.get("note") or "", obj.get("at") or "")


def read_exclusions(path: str | os.PathLike) -> dict[str, Exclusion]:
    """The exclusions of a file, by id, in file order (an id listed twice: the later line wins); none when the file
    does not exist. A line that is not JSON or has no id raises :class:`InputError` naming the file and line."""
    path = Path(path)
    if not path.exists():
        return {}
    entries: dict[str, Exclusion] = {}
    for line, obj in iter_json_lines(path, hint=HINT):
        entry = _entry(obj, path, line)
        entries.pop(entry.id, None)
        entries[entry.id] = entry
    return entries


def _write(path: Path, entries: Iterable[Exclusion]) -> None:
    """Replace ``path`` atomically: a temporary file in the same folder, flushed and synced, then renamed. Called
    under the lock: a temporary file already there was left by a writer that was killed, and goes."""
    for stale in path.parent.glob(f".{path.name}.*.tmp"):
        stale.unlink(missing_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            for entry in entries:
                out.write(json.dumps(asdict(entry), ensure_ascii=False) + "\n")
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _sync_folder(path.parent)


def _sync_folder(folder: Path) -> None:
    """The rename itself reaches the disk (a power cut after it keeps the new file)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """One change at a time to a run's exclusions, across sessions and processes (read, change, write)."""
    with open(path.parent / LOCK_FILE, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def exclude(run: str | os.PathLike, ids: Iterable[str], note: str = "") -> int:
    """Mark ``ids`` excluded in the run (folder or embedding file) with ``note``; returns how many were not excluded
    before. An id already excluded keeps its time, and takes the new note when one is given."""
    path = exclusions_path(run)
    ids = [i for i in dict.fromkeys(ids) if isinstance(i, str) and i.strip()]
    note = " ".join((note or "").split())
    with _locked(path):
        entries = read_exclusions(path)
        added = 0
        at = now_utc()
        for item_id in ids:
            old = entries.get(item_id)
            if old is None:
                added += 1
                entries[item_id] = Exclusion(item_id, note, at)
            elif note and note != old.note:
                entries[item_id] = Exclusion(item_id, note, old.at)
        if ids:
            _write(path, entries.values())
    return added


def undo(run: str | os.PathLike, ids: Iterable[str]) -> int:
    """Take ``ids`` out of the run's exclusions; returns how many were excluded."""
    path = exclusions_path(run)
    wanted = set(ids)
    with _locked(path):
        entries = read_exclusions(path)
        kept = [e for e in entries.values() if e.id not in wanted]
        if not kept:
            path.unlink(missing_ok=True)
        elif len(kept) != len(entries):
            _write(path, kept)
    return len(entries) - len(kept)


def undo_all(run: str | os.PathLike) -> int:
    """Remove every exclusion of the run (the file goes); returns how many there were."""
    path = exclusions_path(run)
    with _locked(path):
        count = len(read_exclusions(path)) if path.exists() else 0
        path.unlink(missing_ok=True)
    _sync_folder(path.parent)
    return count


def digest(ids: Iterable[str]) -> str:
    """A short fingerprint of a set of ids (a download made for other exclusions is made again)."""
    return hashlib.sha256("\n".join(sorted(ids)).encode()).hexdigest()[:16]


def selected_ids(points: Iterable[Mapping], row_ids: Sequence[str]) -> list[str]:
    """The item ids of points selected on a map (clicked, boxed or lassoed), in order, once each: a point carries
    its item's row number as its ``customdata`` (``console.explore.projection.scatter_figure``), ``row_ids`` gives the id
    of each row; highlight points without customdata are skipped."""
    ids: dict[str, None] = {}
    for point in points:
        data = point.get("customdata")
        if isinstance(data, (list, tuple)):
            data = data[0] if data else None
        if isinstance(data, (int, float)) and not isinstance(data, bool) and 0 <= int(data) < len(row_ids):
            ids[row_ids[int(data)]] = None
    return list(ids)


class LeaveOut:
    """``items`` without those whose id is in ``ids``; iterable again and again (a file is read anew each time).
    After an iteration, ``left_out`` counts the items left out, ``matched`` holds their ids and ``by_type`` the same
    ids by their item's type (what ``console.sinks.neo4j.writer.clear_vectors`` takes)."""

    def __init__(self, items: Iterable[Any], ids: Iterable[str]):
        self.items = items
        self.ids = frozenset(ids)
        self.left_out = 0
        self.matched: set[str] = set()
        self.by_type: dict[str, set[str]] = {}

    def __iter__(self) -> Iterator[Any]:
        left_out, by_type = 0, {}
        for item in self.items:
            item_id = item_field(item, "id")
            if item_id in self.ids:
                left_out += 1
                by_type.setdefault(item_field(item, "type"), set()).add(item_id)
                continue
            yield item
        self.left_out, self.by_type = left_out, by_type
        self.matched = set().union(*by_type.values())


def file_ids(path: str | os.PathLike) -> list[str]:
    """The ids of an embedding file, in order (a Parquet file's id column only; other formats are read through)."""
    from console.files.embfiles import read_embeddings

    path = Path(path)
    if path.suffix.lower() == ".parquet":
        import pyarrow.parquet as pq

        return [str(i) for i in pq.read_table(path, columns=["id"]).column("id").to_pylist()]
    return [item.id for item in read_embeddings(path)]


def run_ids(run: str | os.PathLike) -> set[str]:
    """The ids of every embedding file of a run's folder (one file per type, the fastest format to read)."""
    from console.files.embfiles import parse_embedding_name

    chosen: dict[str, Path] = {}
    order = ("parquet", "npy", "jsonl", "json")
    for path in sorted(Path(run).iterdir()):
        parsed = parse_embedding_name(path.name)
        if parsed is None or parsed[1] not in order or not path.is_file():
            continue
        best = chosen.get(parsed[0])
        if best is None or order.index(parsed[1]) < order.index(parse_embedding_name(best.name)[1]):
            chosen[parsed[0]] = path
    return {i for path in chosen.values() for i in file_ids(path)}


def export_file(workspace, source: str | os.PathLike, fmt: str) -> tuple[Path, int]:
    """The file to download for the run's embedding file ``source`` in ``fmt``, and how many excluded items it leaves
    out. Without exclusions: ``workspace.export_file`` (the run's own file, or a conversion). With them: a copy
    without the excluded items in the run's ``exports/curated/<fmt>/`` (made again when the source or the exclusions
    change); the run's own files are not touched."""
    from console.files.embfiles import EmbeddingWriter, output_path, parse_embedding_name, read_embeddings, read_meta

    source = Path(source)
    excluded = read_exclusions(exclusions_path(source))
    if not excluded:
        return workspace.export_file(source, fmt), 0
    parsed = parse_embedding_name(source.name)
    if parsed is None:
        raise ValueError(f"{source.name} is not an embedding file (embeddings_<type>.<format>)")
    folder = source.parent / "exports" / "curated" / fmt  # one folder per format: each has its own .meta.json
    target = output_path(folder, parsed[0], fmt)
    fingerprint = digest(excluded)
    made = read_meta(target) if target.exists() else None
    if made and made.get("exclusions_digest") == fingerprint and target.stat().st_mtime_ns >= source.stat().st_mtime_ns:
        return target, int(made.get("excluded_left_out", 0))
    items = LeaveOut(read_embeddings(source), excluded)
    writer = EmbeddingWriter(folder, parsed[0], formats=(fmt,), meta=dict(read_meta(source) or {}))
    try:
        for item in items:
            writer.add(item)
    except BaseException:
        writer.abort()
        raise
    writer.meta.update(exclusions_digest=fingerprint, excluded_left_out=items.left_out)
    writer.close()
    return target, items.left_out
