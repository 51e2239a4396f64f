"""Validation before any model work: missing or duplicate ids, empty text, wrong types.

`validate(records)` never raises: it sorts records into good ones and rejects, each reject with the message the
user sees, e.g. ``recipes.json, line 12: record has no "id" — add a unique id or run with --on-invalid skip``.
The caller decides: stop (the default) or skip the rejects and list them in a rejects file (`write_rejects`).
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from array import array
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from enum import Enum
from typing import Iterable, Iterator, NamedTuple, Sequence

import numpy as np

from console.files.embfiles import file_names
from console.errors import InputError
from console.files.records import PROBLEM_KEY, Record, iter_records

TYPE_PATTERN = re.compile(r"^[a-z][a-z0-9_]*$")
SKIP_HINT = "or run with --on-invalid skip"


class RejectKind(str, Enum):
    """What is wrong with a rejected record, for counting and grouping (the message says it in words)."""
    BAD_ROW = "bad_row"            # a line that is not JSON, an array item that is not an object
    BAD_ID = "bad_id"              # no id, not a string, empty
    BAD_TYPE = "bad_type"          # no type, not a lowercase word, a guide type's plural
    NO_TEXT = "no_text"            # no "text" field
    BAD_TEXT = "bad_text"          # "text" is not a string
    EMPTY_TEXT = "empty_text"      # "text" is empty or only spaces
    DUPLICATE_ID = "duplicate_id"  # an id already seen (the first record with it is kept)


class Problem(NamedTuple):
    kind: RejectKind
    reason: str  # what is wrong
    hint: str    # what to do


def _json_kind(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, (int, float)):
        return f"the number {value}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


@dataclass(frozen=True)
class Reject:
    source: str
    line: int
    id: str | None
    kind: RejectKind  # what is wrong, as a kind (grouping and counts go by it, never by the message's text)
    reason: str  # what is wrong, e.g. 'record has no "id"'
    hint: str  # what to do, e.g. 'add a unique id'
    record: Record | None = None

    @classmethod
    def of(cls, record: Record, problem: Problem) -> "Reject":
        rid = record.id if isinstance(record.id, str) else None
        return cls(record.source, record.line, rid, problem.kind, problem.reason, problem.hint, record)

    @property
    def message(self) -> str:
        where = f"{self.source}, line {self.line}" if self.source else f"line {self.line}"
        if self.id is not None and self.kind is not RejectKind.DUPLICATE_ID:
            where += f" (id {json.dumps(self.id, ensure_ascii=False)})"
        return f"{where}: {self.reason} — {self.hint} {SKIP_HINT}"


@dataclass
class ValidationReport:
    good: "list[Record] | GoodRecords" = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.rejects

    @property
    def counts(self) -> dict[str, int]:
        """Good records per type, in first-seen order."""
        if isinstance(self.good, GoodRecords):
            return dict(self.good.counts)
        return dict(Counter(r.type for r in self.good))

    def summary(self) -> str:
        per_type = ", ".join(f"{n} {t}" for t, n in self.counts.items()) or "none"
        text = f"{len(self.good)} valid record{'s' if len(self.good) != 1 else ''} ({per_type})"
        if self.rejects:
            text += f"; {len(self.rejects)} invalid"
        return text


def check_record(record: Record) -> Problem | None:
    """(kind, reason, hint) for the first problem of a record, or None."""
    problem = record.extra.get(PROBLEM_KEY) if isinstance(record.extra, dict) else None
    if problem:
        return Problem(RejectKind.BAD_ROW, problem, "fix or remove that line")
    if record.id is None:
        return Problem(RejectKind.BAD_ID, 'record has no "id"', "add a unique id")
    if not isinstance(record.id, str):
        return Problem(RejectKind.BAD_ID, f'"id" must be a string, not {_json_kind(record.id)}',
                       f'quote it ("{record.id}")')
    if not record.id.strip():
        return Problem(RejectKind.BAD_ID, '"id" is empty', "add a unique id")
    return _check_type(record) or _check_text(record)


def _check_type(record: Record) -> Problem | None:
    if record.type is None:
        return Problem(RejectKind.BAD_TYPE, 'record has no "type"', 'add "type" (recipe, ingredient or category)')
    if not isinstance(record.type, str) or not TYPE_PATTERN.match(record.type):
        shown = json.dumps(record.type, ensure_ascii=False) if isinstance(record.type, str) else _json_kind(record.type)
        return Problem(RejectKind.BAD_TYPE, f'"type" must be a lowercase word such as "recipe", not {shown}',
                       'use recipe, ingredient, category or another lowercase word')
    singular = next((t for t, plural in file_names().items() if plural == record.type and plural != t), None)
    if singular:  # its files would be named like the singular type's (embeddings_recipes.*)
        return Problem(RejectKind.BAD_TYPE, f'"type" is "{record.type}", the plural of "{singular}"',
                       f'use "{singular}"')
    return None


def _check_text(record: Record) -> Problem | None:
    if record.text is None:
        return Problem(RejectKind.NO_TEXT, 'record has no "text"', "add the text to embed")
    if not isinstance(record.text, str):
        return Problem(RejectKind.BAD_TEXT, f'"text" must be a string, not {_json_kind(record.text)}',
                       "put the text to embed in one string")
    if not record.text.strip():
        return Problem(RejectKind.EMPTY_TEXT, '"text" is empty', "fill it in")
    return None


def outside_schema(counts: dict[str, int], schema=None) -> dict[str, int]:
    """The types among ``counts`` (records per type) that the graph schema does not describe (``schema``, else the
    console's own, ``load_schema()``): they can be embedded and downloaded, but a push or an import leaves them out
    as unknown types. Reported at upload, before any model work."""
    from console.graphschema import load_schema

    known = (schema or load_schema()).types
    return {type_: n for type_, n in counts.items() if type_ not in known}


def duplicate_problem(record: Record, first: Record) -> Problem:
    return Problem(RejectKind.DUPLICATE_ID, f'duplicate id "{record.id}" (first in {first.source}, line {first.line})',
                   "give each record its own id")


def validate(records: Iterable[Record]) -> ValidationReport:
    """Sort records into good ones and rejects. The first record with an id wins; later duplicates are rejects."""
    report = ValidationReport()
    seen: dict[str, Record] = {}
    for record in records:
        problem = check_record(record)
        if problem is None and record.id in seen:
            problem = duplicate_problem(record, seen[record.id])
        if problem is not None:
            report.rejects.append(Reject.of(record, problem))
            continue
        seen[record.id] = record
        report.good.append(record)
    return report


class GoodRecords:
    """The valid records of some files, without holding them: `len()`, per-type `counts`, and iteration, which
    reads the files again (`console.files.records.iter_records`) and yields exactly the records that
    `validate_files` judged good, in file order. A file changed since it was validated raises InputError."""

    def __init__(self, files: Sequence[Path], encoding_errors: str, stamps: list, duplicates: set[int],
                 cutoff: int, counts: dict[str, int]):
        self.files = list(files)
        self.encoding_errors = encoding_errors
        self._stamps = stamps
        self._duplicates = duplicates  # ordinals (among records that pass `check_record`) of later duplicates
        self._cutoff = cutoff  # ordinals from here on are past --limit
        self.counts = counts

    def __len__(self) -> int:
        return sum(self.counts.values())

    def __iter__(self) -> Iterator[Record]:
        k = 0
        for path, stamp in zip(self.files, self._stamps):
            if _stamp(path) != stamp:
                raise _changed(path)
            for record in iter_records(path, encoding_errors=self.encoding_errors):
                if check_record(record) is not None:
                    continue
                if k >= self._cutoff:
                    return
                if k not in self._duplicates:
                    yield record
                k += 1
            if _stamp(path) != stamp:
                raise _changed(path)


def _stamp(path: Path) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_size, st.st_mtime_ns


def _changed(path: Path) -> InputError:
    return InputError("the file changed while the run was reading it", file=path,
                      hint="run the command again once the file is complete")


def _id_digest(value: str) -> bytes:
    return hashlib.blake2b(value.encode("utf-8", "surrogatepass"), digest_size=16).digest()


def validate_files(files: Iterable[str | Path], *, encoding_errors: str = "strict",
                   limit: int | None = None) -> ValidationReport:
    """`validate` over whole files, streaming: the same rejects (in file order) and the same good records, but the
    good records are not kept (`report.good` is a `GoodRecords`: it reads the files again when iterated).

    Memory: the rejects are kept (with their records), and per record that passes the checks a 16-byte digest of
    its id and a 4-byte type number (~20 bytes, 20 MB per million records, needed to find duplicate ids across
    all files); they are sorted once at the end. A second read happens only when digests repeat, to confirm the
    duplicates by their real ids and list them with their records. `limit`: the first N good records only.
    """
    files = [Path(p) for p in files]
    rejects: list[tuple[int, Reject]] = []  # (ordinal among all records, reject)
    digests = bytearray()
    type_ids = array("I")
    type_index: dict[str, int] = {}
    stamps = []
    for path in files:
        stamps.append(_stamp(path))
    ordinal = 0
    for path in files:
        for record in iter_records(path, encoding_errors=encoding_errors):
            problem = check_record(record)
            if problem is not None:
                rejects.append((ordinal, Reject.of(record, problem)))
            else:
                digests += _id_digest(record.id)
                type_ids.append(type_index.setdefault(record.type, len(type_index)))
            ordinal += 1
    n = len(type_ids)
    keys = np.frombuffer(digests, dtype="S16") if n else np.zeros(0, dtype="S16")
    order = np.argsort(keys, kind="stable")
    ordered = keys[order]
    del keys
    digests = None
    same = ordered[1:] == ordered[:-1] if n > 1 else np.zeros(0, dtype=bool)
    del ordered
    duplicates: set[int] = set()
    if same.any():
        # members of digest groups with more than one record: read them again and compare the real ids
        members = np.zeros(n, dtype=bool)
        members[order[1:][same]] = True
        members[order[:-1][same]] = True
        del order, same
        first_by_id: dict[str, Record] = {}
        k = ordinal = 0
        for path in files:
            for record in iter_records(path, encoding_errors=encoding_errors):
                if check_record(record) is None:
                    if members[k]:
                        first = first_by_id.setdefault(record.id, record)
                        if first is not record:
                            duplicates.add(k)
                            rejects.append((ordinal, Reject.of(record, duplicate_problem(record, first))))
                    k += 1
                ordinal += 1
        del members, first_by_id
    else:
        del order, same
    rejects.sort(key=lambda pair: pair[0])
    good_mask = np.ones(n, dtype=bool)
    if duplicates:
        good_mask[np.fromiter(duplicates, dtype=np.int64)] = False
    cutoff = n
    if limit is not None:
        positions = np.flatnonzero(good_mask)
        if len(positions) > limit:
            cutoff = int(positions[limit])
            good_mask[cutoff:] = False
    types = np.frombuffer(type_ids, dtype=np.uint32) if n else np.zeros(0, dtype=np.uint32)
    names = list(type_index)
    per_type = np.bincount(types[good_mask], minlength=len(names)) if n else np.zeros(len(names), dtype=np.int64)
    first_seen = {t: int(np.argmax(good_mask & (types == t))) for t in range(len(names)) if per_type[t]}
    counts = {names[t]: int(per_type[t]) for t in sorted(first_seen, key=first_seen.get)}
    good = GoodRecords(files, encoding_errors, stamps, duplicates, cutoff, counts)
    return ValidationReport(good=good, rejects=[r for _, r in rejects])


def write_rejects(report: ValidationReport, path: str | Path) -> Path:
    """Write the rejects as JSON Lines: {"source", "line", "id", "error", "record"} (atomically)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        for r in report.rejects:
            rec = r.record
            raw = None
            if rec is not None:
                raw = {"id": rec.id, "type": rec.type, "text": rec.text,
                       **{k: v for k, v in rec.extra.items() if k != PROBLEM_KEY}}
            fh.write(json.dumps({"source": r.source, "line": r.line, "id": r.id, "error": r.message, "record": raw},
                                ensure_ascii=False, default=str) + "\n")
    os.replace(tmp, path)
    return path
