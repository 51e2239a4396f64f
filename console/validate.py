"""Validation before any model work: missing or duplicate ids, empty text, wrong types.

`validate(records)` never raises: it sorts records into good ones and rejects, each reject with the message the
user sees, e.g. ``recipes.json, line 12: record has no "id" — add a unique id or run with --on-invalid skip``.
The caller decides: stop (the default) or skip the rejects and list them in a rejects file (`write_rejects`).
"""
from __future__ import annotations

import json
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from console.records import PROBLEM_KEY, Record

TYPE_PATTERN = re.compile(r"^[a-z][a-z0-9_]*$")
SKIP_HINT = "or run with --on-invalid skip"


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
    reason: str  # what is wrong, e.g. 'record has no "id"'
    hint: str  # what to do, e.g. 'add a unique id'
    record: Record | None = None

    @property
    def message(self) -> str:
        where = f"{self.source}, line {self.line}" if self.source else f"line {self.line}"
        if self.id is not None and not self.reason.startswith("duplicate id"):
            where += f" (id {json.dumps(self.id, ensure_ascii=False)})"
        return f"{where}: {self.reason} — {self.hint} {SKIP_HINT}"


@dataclass
class ValidationReport:
    good: list[Record] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.rejects

    @property
    def counts(self) -> dict[str, int]:
        """Good records per type, in first-seen order."""
        return dict(Counter(r.type for r in self.good))

    def summary(self) -> str:
        per_type = ", ".join(f"{n} {t}" for t, n in self.counts.items()) or "none"
        text = f"{len(self.good)} valid record{'s' if len(self.good) != 1 else ''} ({per_type})"
        if self.rejects:
            text += f"; {len(self.rejects)} invalid"
        return text


def _check(record: Record) -> tuple[str, str] | None:
    """(reason, hint) for the first problem of a record, or None."""
    problem = record.extra.get(PROBLEM_KEY) if isinstance(record.extra, dict) else None
    if problem:
        return problem, "fix or remove that line"
    if record.id is None:
        return 'record has no "id"', "add a unique id"
    if not isinstance(record.id, str):
        return f'"id" must be a string, not {_json_kind(record.id)}', f'quote it ("{record.id}")'
    if not record.id.strip():
        return '"id" is empty', "add a unique id"
    if record.type is None:
        return 'record has no "type"', 'add "type" (recipe, ingredient or category)'
    if not isinstance(record.type, str) or not TYPE_PATTERN.match(record.type):
        shown = json.dumps(record.type, ensure_ascii=False) if isinstance(record.type, str) else _json_kind(record.type)
        return (f'"type" must be a lowercase word such as "recipe", not {shown}',
                'use recipe, ingredient, category or another lowercase word')
    if record.text is None:
        return 'record has no "text"', "add the text to embed"
    if not isinstance(record.text, str):
        return f'"text" must be a string, not {_json_kind(record.text)}', "put the text to embed in one string"
    if not record.text.strip():
        return '"text" is empty', "fill it in"
    return None


def validate(records: Iterable[Record]) -> ValidationReport:
    """Sort records into good ones and rejects. The first record with an id wins; later duplicates are rejects."""
    report = ValidationReport()
    seen: dict[str, Record] = {}
    for record in records:
        problem = _check(record)
        rid = record.id if isinstance(record.id, str) else None
        if problem is None and record.id in seen:
            first = seen[record.id]
            problem = (f'duplicate id "{record.id}" (first in {first.source}, line {first.line})',
                       "give each record its own id")
        if problem is not None:
            report.rejects.append(Reject(record.source, record.line, rid, problem[0], problem[1], record))
            continue
        seen[record.id] = record
        report.good.append(record)
    return report


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
