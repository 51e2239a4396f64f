"""Labelled query sets for search evaluation, in the formats people already have.

- **Simple JSON Lines**: one ``{"id": "q1", "query": "ayam pedas bersantan", "relevant": ["recipe-1", ...]}`` per
  line (``id`` optional: ``q<line>``; ``relevant`` a list of ids, or an object ``{id: grade}`` for graded labels;
  ``kind`` optional: what sort of query it is, e.g. "typo", so that the figures can be reported per kind).
- **BEIR**: ``queries.jsonl`` (``{"_id", "text"}`` per line) with a qrels TSV (``query-id<TAB>corpus-id<TAB>score``,
  header optional), or a BEIR folder holding ``queries.jsonl`` and ``qrels/test.tsv``.
- **TREC**: qrels lines ``qid 0 docid rel``; queries as BEIR ``queries.jsonl`` or a ``queries.tsv`` (``qid<TAB>text``).

Judgements with grade 0 are kept out (not relevant); queries without any relevant item are left out and counted in
``QuerySet.notes``. Every problem raises :class:`InputError` naming the file and line. Plain Python.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

from console.errors import InputError
from console.files.records import iter_json_lines

HINT = ("use JSON Lines {\"query\": ..., \"relevant\": [ids]} or BEIR queries.jsonl + a qrels TSV "
        "(query-id, corpus-id, score) — see README, \"Search quality\"")
BEIR_QRELS = ("qrels/test.tsv", "qrels/dev.tsv", "qrels/train.tsv")


@dataclass
class QuerySet:
    """Queries (id -> text, file order) and their relevant items (id -> {item id: grade >= 1})."""

    name: str
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]
    origin: dict[tuple[str, str], tuple[Path, int]] = field(default_factory=dict)  # (query, item) -> file, line
    notes: list[str] = field(default_factory=list)
    kinds: dict[str, str] = field(default_factory=dict)   # query id -> its kind, where the file gives one

    def subset(self, ids: Iterable[str], name: str) -> "QuerySet":
        """The same set restricted to the queries ``ids`` (file order kept)."""
        keep = set(ids)
        return QuerySet(name, {q: t for q, t in self.queries.items() if q in keep},
                        {q: d for q, d in self.qrels.items() if q in keep},
                        {key: o for key, o in self.origin.items() if key[0] in keep}, [],
                        {q: kd for q, kd in self.kinds.items() if q in keep})

    def by_kind(self) -> dict[str, "QuerySet"]:
        """One subset per kind (first-met order); empty when no query has a kind."""
        kinds = dict.fromkeys(self.kinds[q] for q in self.queries if q in self.kinds)
        return {kind: self.subset([q for q in self.queries if self.kinds.get(q) == kind], f"{self.name} [{kind}]")
                for kind in kinds}

    def __len__(self) -> int:
        return len(self.queries)

    def judged_ids(self) -> set[str]:
        return {doc for docs in self.qrels.values() for doc in docs}

    def check_ids(self, known: Iterable[str] | set[str], where: str) -> None:
        """InputError naming the first judgement (file, line) whose item is not among ``known`` (``where`` names
        what was searched, e.g. "the graph's recipes")."""
        known = known if isinstance(known, (set, frozenset, dict)) else set(known)
        missing = [(q, d) for q, docs in self.qrels.items() for d in docs if d not in known]
        if not missing:
            return
        (query, doc), more = missing[0], len(missing) - 1
        path, line = self.origin.get((query, doc), (None, None))
        also = f" ({more} more judgements name unknown ids)" if more else ""
        raise InputError(f"query {query!r} judges {doc!r}, which is not in {where}{also}", file=path, line=line,
                         hint="fix the ids, or evaluate against the data that holds those items")


def _json_lines(path: Path) -> Iterator[tuple[int, dict]]:
    for number, obj in iter_json_lines(path, hint=HINT):
        if not isinstance(obj, dict):
            raise InputError("expected a JSON object", file=path, line=number, hint=HINT)
        yield number, obj


def _text_lines(path: Path) -> Iterator[tuple[int, str]]:
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except OSError as exc:
        raise InputError(f"cannot read the file: {exc.strerror}", file=path, hint="check the path") from None
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[: exc.start].count(b"\n") + 1
        raise InputError("invalid UTF-8", file=path, line=line, hint=HINT) from None
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip() and not line.lstrip().startswith("#"):
            yield number, line


def _grade(value, path: Path, line: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise InputError(f"relevance grade must be a whole number, not {value!r}", file=path, line=line, hint=HINT)
    try:
        return int(value)
    except ValueError:
        raise InputError(f"relevance grade must be a whole number, not {value!r}", file=path, line=line,
                         hint=HINT) from None


def _read_simple(path: Path, rows: list[tuple[int, dict]], qs: QuerySet) -> None:
    for number, obj in rows:
        text, relevant = obj.get("query"), obj.get("relevant")
        qid = obj.get("id", obj.get("_id", f"q{number}"))
        if not isinstance(text, str) or not text.strip():
            raise InputError('"query" must be a non-empty string', file=path, line=number, hint=HINT)
        if not isinstance(qid, (str, int)) or isinstance(qid, bool) or not str(qid).strip():
            raise InputError('"id" must be a non-empty string', file=path, line=number, hint=HINT)
        qid = str(qid)
        if qid in qs.queries:
            raise InputError(f"query id {qid!r} appears twice", file=path, line=number, hint="give each query its own id")
        if isinstance(relevant, list):
            relevant = {doc: 1 for doc in relevant} if all(isinstance(d, str) and d for d in relevant) else None
        elif isinstance(relevant, dict):
            relevant = {doc: _grade(g, path, number) for doc, g in relevant.items()}
        else:
            relevant = None
        if relevant is None:
            raise InputError('"relevant" must be a list of item ids (or an object {id: grade})', file=path,
                             line=number, hint=HINT)
        kind = obj.get("kind")
        if kind is not None and (not isinstance(kind, str) or not kind.strip()):
            raise InputError('"kind" must be a non-empty string', file=path, line=number, hint=HINT)
        qs.queries[qid] = text.strip()
        qs.qrels[qid] = relevant
        if kind is not None:
            qs.kinds[qid] = kind.strip()
        for doc in relevant:
            qs.origin[(qid, doc)] = (path, number)


def _read_beir_queries(path: Path, rows: Iterable[tuple[int, dict]]) -> dict[str, str]:
    queries: dict[str, str] = {}
    for number, obj in rows:
        qid, text = obj.get("_id"), obj.get("text")
        if not isinstance(qid, (str, int)) or isinstance(qid, bool) or not str(qid).strip():
            raise InputError('a BEIR query needs "_id"', file=path, line=number, hint=HINT)
        if not isinstance(text, str) or not text.strip():
            raise InputError(f'query {qid!r} has no "text"', file=path, line=number, hint=HINT)
        if str(qid) in queries:
            raise InputError(f"query id {qid!r} appears twice", file=path, line=number, hint="give each query its own id")
        queries[str(qid)] = text.strip()
    return queries


def _read_tsv_queries(path: Path) -> dict[str, str]:
    queries: dict[str, str] = {}
    for number, line in _text_lines(path):
        qid, sep, text = line.partition("\t")
        if not sep or not qid.strip() or not text.strip():
            raise InputError("expected query-id<TAB>text", file=path, line=number, hint=HINT)
        if number == 1 and qid.strip().lower() in ("query-id", "qid", "query_id", "id"):
            continue
        queries[qid.strip()] = text.strip()
    return queries


def read_qrels(path: Path) -> Iterator[tuple[int, str, str, int]]:
    """(line, query id, item id, grade) of a BEIR qrels TSV (3 columns) or TREC qrels file (4 columns)."""
    for number, line in _text_lines(path):
        parts = line.split("\t") if "\t" in line else line.split()
        parts = [p.strip() for p in parts]
        if len(parts) == 3:
            qid, doc, grade = parts
        elif len(parts) == 4:
            qid, _, doc, grade = parts
        else:
            raise InputError(f"expected 3 columns (query-id, corpus-id, score) or 4 (TREC: qid 0 docid rel), found "
                             f"{len(parts)}", file=path, line=number, hint=HINT)
        if number == 1 and not grade.lstrip("-").isdigit() and grade.lower() in ("score", "rel", "relevance"):
            continue  # BEIR's header line
        if not qid or not doc:
            raise InputError("empty query or item id", file=path, line=number, hint=HINT)
        yield number, qid, doc, _grade(grade, path, number)


def _attach_qrels(qs: QuerySet, qrels_path: Path) -> None:
    for number, qid, doc, grade in read_qrels(qrels_path):
        if qid not in qs.queries:
            raise InputError(f"query {qid!r} is not in {qs.name}", file=qrels_path, line=number,
                             hint="the qrels and the queries must come from the same set")
        qs.qrels.setdefault(qid, {})[doc] = grade
        qs.origin[(qid, doc)] = (qrels_path, number)


def _finish(qs: QuerySet, path: Path) -> QuerySet:
    """Drop grade-0 judgements and queries without a relevant item (noted); an empty set is an error."""
    unjudged = [q for q in qs.queries if not any(g > 0 for g in qs.qrels.get(q, {}).values())]
    for q in unjudged:
        del qs.queries[q]
        qs.qrels.pop(q, None)
        qs.kinds.pop(q, None)
    qs.qrels = {q: {d: g for d, g in docs.items() if g > 0} for q, docs in qs.qrels.items()}
    if unjudged:
        qs.notes.append(f"{len(unjudged)} queries without a relevant item were left out (first: {unjudged[0]!r})")
    if not qs.queries:
        raise InputError("no query with a relevant item", file=path,
                         hint="add queries with at least one relevant id (" + HINT + ")")
    return qs


def read_query_set(path: str | Path, qrels: str | Path | None = None) -> QuerySet:
    """Read a query set (see the module docstring for the formats); ``qrels`` for BEIR/TREC queries files."""
    path = Path(path)
    if not path.exists():
        raise InputError("no such file or folder", file=path, hint="check the path given for the queries")
    if path.is_dir():
        found = next((path / name for name in BEIR_QRELS if (path / name).exists()), None)
        if not (path / "queries.jsonl").exists() or (found is None and qrels is None):
            raise InputError("not a BEIR folder: it needs queries.jsonl and qrels/test.tsv", file=path, hint=HINT)
        return read_query_set(path / "queries.jsonl", qrels or found)
    qs = QuerySet(name=path.name, queries={}, qrels={})
    if path.suffix.lower() in (".tsv", ".txt"):
        qs.queries = _read_tsv_queries(path)
    else:
        rows = list(_json_lines(path))
        if not rows:
            raise InputError("the query set is empty", file=path, hint=HINT)
        simple = "relevant" in rows[0][1] or "query" in rows[0][1]
        if not simple and "_id" not in rows[0][1]:
            raise InputError('neither a simple query line ("query", "relevant") nor a BEIR query ("_id", "text")',
                             file=path, line=rows[0][0], hint=HINT)
        if simple and qrels is None:
            _read_simple(path, rows, qs)
            return _finish(qs, path)
        if simple:
            raise InputError("a simple query set carries its own \"relevant\" ids; do not pass a qrels file too",
                             file=path, line=rows[0][0], hint=HINT)
        qs.queries = _read_beir_queries(path, rows)
    if qrels is None:
        raise InputError("BEIR/TREC queries need a qrels file (query-id, corpus-id, score)", file=path,
                         hint="pass the qrels TSV too (--qrels FILE), or use {\"query\", \"relevant\"} lines")
    if not qs.queries:
        raise InputError("the query set is empty", file=path, hint=HINT)
    _attach_qrels(qs, Path(qrels))
    return _finish(qs, path)


# -- query sets kept for the console: the shipped ones and the operator's uploads ------------------------------
SHIPPED = Path(__file__).resolve().parents[2] / "data" / "queries"
UPLOAD_SUFFIXES = (".jsonl", ".tsv")


def list_query_sets(folder: str | Path | None = None) -> dict[str, Path]:
    """Label -> path: the project's shipped sets (data/queries/*.jsonl) and those saved in ``folder`` (one
    .jsonl each, or a BEIR folder with queries.jsonl and qrels/)."""
    found = {f"shipped: {p.name}": p for p in sorted(SHIPPED.glob("*.jsonl"))}
    if folder is not None and Path(folder).is_dir():
        for p in sorted(Path(folder).iterdir()):
            if (p.is_file() and p.suffix == ".jsonl") or (p.is_dir() and (p / "queries.jsonl").exists()):
                found[f"uploaded: {p.name}"] = p
    return found


def save_query_set(folder: str | Path, files: dict[str, bytes]) -> Path:
    """Store an uploaded query set in ``folder``: one simple .jsonl, or a BEIR queries .jsonl with its qrels .tsv
    (kept as <name>/queries.jsonl + <name>/qrels/test.tsv). The set is read back first, so a broken upload is
    refused with its file and line and nothing is kept."""
    import re
    import shutil
    import tempfile

    jsonl = [n for n in files if n.lower().endswith(".jsonl")]
    tsv = [n for n in files if n.lower().endswith(".tsv")]
    if len(jsonl) != 1 or len(tsv) > 1 or len(files) != len(jsonl) + len(tsv):
        raise InputError(f"upload one .jsonl query set, or a BEIR queries .jsonl with one qrels .tsv (got: "
                         f"{', '.join(files) or 'nothing'})", hint=HINT)
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", Path(jsonl[0]).stem).strip("-.") or "queries"
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        staged = Path(tmp) / jsonl[0]
        staged.write_bytes(files[jsonl[0]])
        qrels = None
        if tsv:
            qrels = Path(tmp) / tsv[0]
            qrels.write_bytes(files[tsv[0]])
        read_query_set(staged, qrels)  # raises InputError naming the uploaded file and line
        if qrels is None:
            target = folder / f"{stem}.jsonl"
            os.replace(staged, target)
        else:
            target = folder / stem
            shutil.rmtree(target, ignore_errors=True)
            (target / "qrels").mkdir(parents=True)
            os.replace(staged, target / "queries.jsonl")
            os.replace(qrels, target / "qrels" / "test.tsv")
    return target
