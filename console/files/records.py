"""Records (the export format): read JSON arrays, JSON Lines and CSV files, UTF-8, with file and line numbers.

Reading does not judge the records: a record with a missing or wrong field is returned as it was found (its
fields may be None or of another type) and `console.files.validate.validate` reports it. Reading raises `InputError`
only when a file as a whole cannot be read: invalid UTF-8, broken JSON syntax in an array file, a CSV without the
needed columns, an unknown file type.
"""
from __future__ import annotations

import codecs
import csv
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

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


def _encoding_error(path: Path, offset: int, line: int, utf16: bool) -> InputError:
    what = "invalid UTF-8 (the file looks like UTF-16)" if utf16 else "invalid UTF-8"
    return InputError(f"{what} at byte {offset} (line {line})", file=path, hint=ENCODING_HINT)


def _check_errors(encoding_errors: str) -> None:
    if encoding_errors not in ("strict", "replace"):
        raise ValueError("encoding_errors must be 'strict' or 'replace'")


def iter_text_lines(path: str | Path, *, encoding_errors: str = "strict") -> Iterator[str]:
    """The file's lines (split on "\\n", kept), decoded one at a time: memory stays flat whatever the file size.

    Same rules as `read_text`: a leading BOM is dropped; an invalid byte raises InputError with its byte offset
    from the start of the file and its line, unless `encoding_errors="replace"`. A line never splits a UTF-8
    sequence ("\\n" is never part of one), so decoding line by line equals decoding the whole file.
    """
    path = Path(path)
    _check_errors(encoding_errors)
    with open(path, "rb") as fh:
        offset = 0
        utf16 = False
        for number, raw in enumerate(fh, start=1):
            start = 0
            if number == 1:
                utf16 = raw.startswith((b"\xff\xfe", b"\xfe\xff"))
                if raw.startswith(b"\xef\xbb\xbf"):
                    start = 3
            try:
                yield raw[start:].decode("utf-8", errors=encoding_errors) if start else \
                    raw.decode("utf-8", errors=encoding_errors)
            except UnicodeDecodeError as exc:
                raise _encoding_error(path, offset + start + exc.start, number, utf16) from None
            offset += len(raw)


def iter_text_chunks(path: str | Path, *, encoding_errors: str = "strict", size: int = 1 << 20) -> Iterator[str]:
    """The file's text in decoded blocks of about `size` bytes (for files that may be one long line, such as a
    minified JSON array); same BOM and error rules as `iter_text_lines`."""
    path = Path(path)
    _check_errors(encoding_errors)
    decoder = codecs.getincrementaldecoder("utf-8")(errors=encoding_errors)
    offset = 0  # bytes handed to the decoder so far
    newlines = 0  # b"\n" in them
    utf16 = False
    with open(path, "rb") as fh:
        first = True
        while True:
            block = fh.read(max(size, 4) if first else size)  # the BOM check needs the first bytes
            final = not block
            if first:
                utf16 = block.startswith((b"\xff\xfe", b"\xfe\xff"))
                if block.startswith(b"\xef\xbb\xbf"):
                    block = block[3:]
                    offset = 3
                first = False
            pending = decoder.getstate()[0]
            try:
                text = decoder.decode(block, final=final)
            except UnicodeDecodeError as exc:
                data = pending + block
                at = offset - len(pending) + exc.start
                raise _encoding_error(path, at, newlines + data[: exc.start].count(b"\n") + 1, utf16) from None
            offset += len(block)
            newlines += block.count(b"\n")
            if text:
                yield text
            if final:
                return


def read_text(path: str | Path, *, encoding_errors: str = "strict") -> str:
    """The file's text: UTF-8, a leading BOM dropped. Invalid bytes raise InputError with the byte offset,
    unless `encoding_errors="replace"` (each bad byte becomes U+FFFD). Holds the whole file: for small files
    (metadata); inputs are read with `iter_text_lines` / `iter_text_chunks`."""
    return "".join(iter_text_chunks(path, encoding_errors=encoding_errors))


JSON_MARGIN = 64  # a decode that fails or ends this close to the end of the window may only lack data
JSON_WINDOW = 1 << 20


class _JsonWindow:
    """The window of `iter_json_array` over a stream of text chunks; it always starts at the beginning of a line."""

    def __init__(self, chunks: Iterator[str], path: str | Path):
        self.chunks, self.path = chunks, path
        self.buf = ""
        self.lines_before = 0  # newlines before the window
        self.eof = False
        self.counted_pos, self.counted_line = 0, 1  # incremental line counter inside the window
        self.decoder = json.JSONDecoder()

    def more(self) -> bool:
        if self.eof:
            return False
        for chunk in self.chunks:
            if chunk:
                self.buf += chunk
                return True
        self.eof = True
        return False

    def line_at(self, pos: int) -> int:
        if pos < self.counted_pos:
            self.counted_pos, self.counted_line = 0, 1
        self.counted_line += self.buf.count("\n", self.counted_pos, pos)
        self.counted_pos = pos
        return self.lines_before + self.counted_line

    def compact(self, i: int) -> int:
        """Drop the window up to the line holding position i; return i in the new window."""
        cut = self.buf.rfind("\n", 0, i) + 1
        if cut <= 0:
            return i
        self.lines_before += self.buf.count("\n", 0, cut)
        self.buf = self.buf[cut:]
        self.counted_pos, self.counted_line = 0, 1
        return i - cut

    def skip_ws(self, i: int) -> int:
        while True:
            buf = self.buf
            n = len(buf)
            while i < n and buf[i] in " \t\r\n":
                i += 1
            if i < n or not self.more():
                return i

    def syntax_error(self, msg: str, pos: int) -> InputError:
        line = self.line_at(pos)
        col = pos - self.buf.rfind("\n", 0, pos)
        return InputError(f"not valid JSON at column {col}: {msg}", file=self.path, line=line,
                          hint="fix the JSON syntax (a JSON array of objects is expected)")

    def decode(self, i: int) -> tuple[Any, int]:
        """The JSON value starting at i and the position after it, reading more chunks while it may go on."""
        while True:
            try:
                item, end = self.decoder.raw_decode(self.buf, i)
            except json.JSONDecodeError as exc:
                if not self.eof and (exc.pos >= len(self.buf) - JSON_MARGIN
                                     or exc.msg.startswith("Unterminated string")) and self.more():
                    continue
                raise self.syntax_error(exc.msg, exc.pos) from None
            if not self.eof and end >= len(self.buf) - JSON_MARGIN and self.more():
                continue  # a number or word at the end of the window may go on in the next chunk
            return item, end


def iter_json_array(text: str | Iterable[str], path: str | Path) -> Iterator[tuple[int, Any]]:
    """Yield (line, item) for each item of a JSON array, the line being where the item starts.

    `text` is the whole text or an iterable of text chunks (`iter_text_chunks`): the array is decoded item by
    item over a window of about 1 MB (`json.JSONDecoder.raw_decode`), so memory does not grow with the file.
    Syntax errors raise InputError naming the file, line and column.
    """
    w = _JsonWindow(iter([text]) if isinstance(text, str) else iter(text), path)
    w.more()
    i = w.skip_ws(0)
    if i >= len(w.buf):
        raise InputError("the file is empty", file=path, hint="export the records again (a JSON array of objects)")
    if w.buf[i] != "[":
        raise InputError("expected a JSON array of records ([{...}, ...])", file=path, line=w.line_at(i),
                         hint="wrap the records in [ ] or save them as JSON Lines (.jsonl)")
    i = w.skip_ws(i + 1)
    if i < len(w.buf) and w.buf[i] == "]":
        return
    while True:
        if i > JSON_WINDOW:
            i = w.compact(i)
        item, end = w.decode(i)
        yield w.line_at(i), item
        i = w.skip_ws(end)
        if i >= len(w.buf):
            raise w.syntax_error("the array is not closed (missing ']')", len(w.buf))
        if w.buf[i] == ",":
            i = w.skip_ws(i + 1)
            continue
        if w.buf[i] == "]":
            rest = w.skip_ws(i + 1)
            if rest < len(w.buf):
                raise w.syntax_error("extra data after the array", rest)
            return
        raise w.syntax_error("expected ',' or ']' after a record", i)


def iter_json_file(path: str | Path, *, encoding_errors: str = "strict") -> Iterator[tuple[int, Any]]:
    """(line, item) for each item of a JSON array file, streaming (see `iter_json_array`)."""
    return iter_json_array(iter_text_chunks(path, encoding_errors=encoding_errors), path)


def iter_json_lines(path: str | Path, *, hint: str) -> Iterator[tuple[int, Any]]:
    """(line number, value) of each non-blank line of a JSON Lines file, read line by line (a UTF-8 BOM is
    accepted); a line that is not UTF-8 or not JSON raises InputError naming the file, line and column, with
    ``hint`` saying what to do."""
    try:
        fh = open(path, "rb")
    except OSError as exc:
        raise InputError(f"cannot read the file: {exc.strerror}", file=path, hint="check the path") from None
    with fh:
        for number, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            raw = raw.rstrip(b"\r\n")  # columns of an error count on the line itself
            try:
                value = json.loads(raw.decode("utf-8-sig" if number == 1 else "utf-8"))
            except UnicodeDecodeError as exc:
                raise InputError(f"invalid UTF-8 at column {exc.start + 1}", file=path, line=number,
                                 hint=hint) from None
            except json.JSONDecodeError as exc:
                raise InputError(f"not valid JSON at column {exc.colno}: {exc.msg}", file=path, line=number,
                                 hint=hint) from None
            yield number, value


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


def _read_json(path: Path, encoding_errors: str) -> Iterator[Record]:
    for line, item in iter_json_file(path, encoding_errors=encoding_errors):
        yield record_from_object(item, source=path.name, line=line)


def _read_jsonl(path: Path, encoding_errors: str) -> Iterator[Record]:
    for number, raw in enumerate(iter_text_lines(path, encoding_errors=encoding_errors), start=1):
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
_BARE_CR = re.compile(r"(?<=\r)(?!\n)")


def _csv_lines(path: Path, encoding_errors: str) -> Iterator[str]:
    """Lines as csv wants them (newline=""): split on \n, \r\n and a bare \r, line ends kept."""
    for line in iter_text_lines(path, encoding_errors=encoding_errors):
        if "\r" in line[:-2]:
            yield from (part for part in _BARE_CR.split(line) if part)
        else:
            yield line


def _read_csv(path: Path, encoding_errors: str) -> Iterator[Record]:
    # strict: a quote that is never closed is an error, not a cell that swallows the rest of the file
    reader = csv.DictReader(_csv_lines(path, encoding_errors), strict=True)
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


def iter_records(path: str | Path, *, encoding_errors: str = "strict") -> Iterator[Record]:
    """The records of one export file (.json array, .jsonl/.ndjson, .csv), in file order, one at a time: the
    file is never held whole (JSON arrays are decoded item by item), so memory does not grow with its size.
    Raises InputError as `read_records` does (a file without records: once the end is reached)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in INPUT_SUFFIXES:
        raise InputError(f"unknown file type {suffix or '(none)'}", file=path,
                         hint="use .json (array), .jsonl or .csv")
    _check_errors(encoding_errors)
    if suffix == ".json":
        records = _read_json(path, encoding_errors)
    elif suffix in (".jsonl", ".ndjson"):
        records = _read_jsonl(path, encoding_errors)
    else:
        records = _read_csv(path, encoding_errors)
    found = False
    for record in records:
        found = True
        yield record
    if not found:
        # a CSV that got this far has a header row (else its columns were missing)
        what = "only a header row" if suffix == ".csv" else "no records"
        raise InputError(f"the file has {what}", file=path,
                         hint="export the records again, or leave this file out")


def read_records(path: str | Path, *, encoding_errors: str = "strict") -> list[Record]:
    """All records of one export file (.json array, .jsonl/.ndjson, .csv), in file order (a list: for small
    files and previews; the generator streams with `iter_records`)."""
    return list(iter_records(path, encoding_errors=encoding_errors))


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


def item_field(item: Any, name: str) -> Any:
    """A field of an item that is a mapping (a JSON record) or an object (``EmbeddedItem``); None when it has none."""
    return item.get(name) if isinstance(item, Mapping) else getattr(item, name, None)
