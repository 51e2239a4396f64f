"""Records (the export format): read JSON arrays, JSON Lines and CSV files, UTF-8, with file and line numbers.

Reading does not judge the records: a record with a missing or wrong field is returned as it was found (its
fields may be None or of another type) and `console.validate.validate` reports it. Reading raises `InputError`
only when a file as a whole cannot be read: invalid UTF-8, broken JSON syntax in an array file, a CSV without the
needed columns, an unknown file type.
"""
from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from console.errors import InputError

INPUT_SUFFIXES = (".json", ".jsonl", ".ndjson", ".csv")
REQUIRED_FIELDS = ("id", "type", "text")
PROBLEM_KEY = "_problem"  # set in Record.extra when an item could not be read as an object (validate reports it)
ENCODING_HINT = "re-save the file as UTF-8 or pass --encoding-errors replace"


@dataclass(frozen=True)
class Record:
    id: str
    type: str
    text: str
    title: str | None = None  # title or name, for display
    extra: dict = field(default_factory=dict)
    source: str = ""  # file name
    line: int = 0  # 1-based line (JSONL/CSV row line, JSON array: line of the object's start)


def read_text(path: str | Path, *, encoding_errors: str = "strict") -> str:
    """The file's text: UTF-8, a leading BOM dropped. Invalid bytes raise InputError with the byte offset,
    unless `encoding_errors="replace"` (each bad byte becomes U+FFFD)."""
    path = Path(path)
    if encoding_errors not in ("strict", "replace"):
        raise ValueError("encoding_errors must be 'strict' or 'replace'")
    data = path.read_bytes()
    bom = 3 if data.startswith(b"\xef\xbb\xbf") else 0
    try:
        return data[bom:].decode("utf-8", errors=encoding_errors)
    except UnicodeDecodeError as exc:
        offset = bom + exc.start
        line = data.count(b"\n", 0, offset) + 1
        what = "invalid UTF-8"
        if data.startswith((b"\xff\xfe", b"\xfe\xff")):
            what = "invalid UTF-8 (the file looks like UTF-16)"
        raise InputError(f"{what} at byte {offset} (line {line})", file=path, hint=ENCODING_HINT) from None


def _line_counter(text: str):
    """Return f(pos) -> 1-based line number; positions must be asked in increasing order (linear overall)."""
    state = {"pos": 0, "line": 1}

    def line_at(pos: int) -> int:
        state["line"] += text.count("\n", state["pos"], pos)
        state["pos"] = pos
        return state["line"]

    return line_at


def iter_json_array(text: str, path: str | Path) -> Iterator[tuple[int, Any]]:
    """Yield (line, item) for each item of a JSON array, the line being where the item starts.

    Syntax errors raise InputError naming the file, line and column.
    """
    decoder = json.JSONDecoder()
    n = len(text)
    line_at = _line_counter(text)

    def skip_ws(i: int) -> int:
        while i < n and text[i] in " \t\r\n":
            i += 1
        return i

    def syntax_error(msg: str, pos: int) -> InputError:
        line = line_at(pos)
        col = pos - text.rfind("\n", 0, pos)
        return InputError(f"not valid JSON at column {col}: {msg}", file=path, line=line,
                          hint="fix the JSON syntax (a JSON array of objects is expected)")

    i = skip_ws(0)
    if i >= n:
        raise InputError("the file is empty", file=path, hint="export the records again (a JSON array of objects)")
    if text[i] != "[":
        raise InputError("expected a JSON array of records ([{...}, ...])", file=path, line=line_at(i),
                         hint="wrap the records in [ ] or save them as JSON Lines (.jsonl)")
    i = skip_ws(i + 1)
    if i < n and text[i] == "]":
        return
    while True:
        try:
            item, end = decoder.raw_decode(text, i)
        except json.JSONDecodeError as exc:
            raise syntax_error(exc.msg, exc.pos) from None
        yield line_at(i), item
        i = skip_ws(end)
        if i >= n:
            raise syntax_error("the array is not closed (missing ']')", n)
        if text[i] == ",":
            i = skip_ws(i + 1)
            continue
        if text[i] == "]":
            rest = skip_ws(i + 1)
            if rest < n:
                raise syntax_error("extra data after the array", rest)
            return
        raise syntax_error("expected ',' or ']' after a record", i)


def _text_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def record_from_object(obj: Any, *, source: str, line: int) -> Record:
    """A Record from one decoded item; wrong shapes are kept for `validate` to report."""
    if not isinstance(obj, dict):
        kind = {list: "a list", str: "a string", int: "a number", float: "a number", bool: "true/false",
                type(None): "null"}.get(type(obj), type(obj).__name__)
        return Record(id=None, type=None, text=None, source=source, line=line,  # type: ignore[arg-type]
                      extra={PROBLEM_KEY: f"the item is {kind}, not an object with \"id\", \"type\" and \"text\""})
    extra = {k: v for k, v in obj.items() if k not in REQUIRED_FIELDS}
    title = _text_or_none(obj.get("title")) or _text_or_none(obj.get("name"))
    return Record(id=obj.get("id"), type=obj.get("type"), text=obj.get("text"), title=title, extra=extra,
                  source=source, line=line)


def _read_json(path: Path, text: str) -> Iterator[Record]:
    for line, item in iter_json_array(text, path):
        yield record_from_object(item, source=path.name, line=line)


def _read_jsonl(path: Path, text: str) -> Iterator[Record]:
    for number, raw in enumerate(io.StringIO(text), start=1):
        if not raw.strip():
            continue
        try:
            item = json.loads(raw.rstrip("\r\n"))
        except json.JSONDecodeError as exc:
            yield Record(id=None, type=None, text=None, source=path.name, line=number,  # type: ignore[arg-type]
                         extra={PROBLEM_KEY: f"not valid JSON at column {exc.colno}: {exc.msg}"})
            continue
        yield record_from_object(item, source=path.name, line=number)


CSV_QUOTE_HINT = 'quote whole cells ("like this") and double the quotes inside them ("")'


def _read_csv(path: Path, text: str) -> Iterator[Record]:
    # strict: a quote that is never closed is an error, not a cell that swallows the rest of the file
    reader = csv.DictReader(io.StringIO(text, newline=""), strict=True)
    try:
        header = reader.fieldnames or []
    except csv.Error as exc:
        raise InputError(f"not valid CSV: {exc}", file=path, line=1, hint=CSV_QUOTE_HINT) from None
    missing = [c for c in REQUIRED_FIELDS if c not in header]
    if missing:
        names = ", ".join(f'"{c}"' for c in missing)
        raise InputError(f"no {names} column (the header has: {', '.join(header) or 'nothing'})", file=path, line=1,
                         hint='the first row must name the columns, at least "id", "type" and "text"')
    start = reader.line_num + 1
    rows = iter(reader)
    while True:
        try:
            row = next(rows)
        except StopIteration:
            return
        except csv.Error as exc:
            reason = ("a quoted cell is never closed" if "unexpected end of data" in str(exc)
                      else f"not valid CSV: {exc}")
            raise InputError(reason, file=path, line=start, hint=CSV_QUOTE_HINT) from None
        if None in row:  # more cells than header names
            row = dict(row)
            row.pop(None)
        yield record_from_object(row, source=path.name, line=start)
        start = reader.line_num + 1


def read_records(path: str | Path, *, encoding_errors: str = "strict") -> list[Record]:
    """All records of one export file (.json array, .jsonl/.ndjson, .csv), in file order."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in INPUT_SUFFIXES:
        raise InputError(f"unknown file type {suffix or '(none)'}", file=path,
                         hint="use .json (array), .jsonl or .csv")
    text = read_text(path, encoding_errors=encoding_errors)
    if suffix == ".json":
        records = list(_read_json(path, text))
    elif suffix in (".jsonl", ".ndjson"):
        records = list(_read_jsonl(path, text))
    else:
        records = list(_read_csv(path, text))
    if not records:
        what = "only a header row" if suffix == ".csv" and text.strip() else "no records"
        raise InputError(f"the file has {what}", file=path,
                         hint="export the records again, or leave this file out")
    return records


def is_output_file(path: Path) -> bool:
    """Files the console writes itself (embeddings, metadata, rejects, status), never read as input."""
    name = path.name
    return name.startswith(("embeddings_", "rejects", ".")) or name.endswith((".meta.json", ".ids.json")) or \
        name in ("status.json", "progress.json")


def find_input_files(directory: str | Path) -> list[Path]:
    """Export files in `directory` (not recursive), sorted by name; the console's own outputs are left out."""
    directory = Path(directory)
    if not directory.is_dir():
        raise InputError("no such folder", file=directory, hint="pass the folder that holds the exported files")
    files = sorted(p for p in directory.iterdir()
                   if p.is_file() and p.suffix.lower() in INPUT_SUFFIXES and not is_output_file(p))
    if not files:
        raise InputError("no input files (*.json, *.jsonl, *.csv) in the folder", file=directory,
                         hint="export the records first, or pass --input FILE")
    return files
