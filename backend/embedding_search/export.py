"""Export of the graph in the console's input format (records with id, type, text and metadata), streaming.

Each type is read in pages ordered by its id property (keyset pagination: ``WHERE n.id > $after ORDER BY n.id LIMIT $page``,
backed by the uniqueness constraint's index) and written record by record, so memory stays constant whatever the
size of the graph. What a record holds, and the file's name, come from the graph schema (:mod:`console.graphschema`:
the demo's ``recipes.json``, ``ingredients.json``, ``categories.json``, or ``.jsonl`` / ``.csv``); a file is
written to a temporary name and renamed when complete.
"""
from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Callable, Iterator

from console.graphschema import TypeSpec, record_of
from console.sinks.neo4j.cypher import count_nodes, export_page

FORMATS = ("json", "jsonl", "csv")
LIST_SEPARATOR = "; "


def csv_columns(spec: TypeSpec) -> list[str]:
    return ["id", "type", "title", *spec.record, "text"]


def iter_records(store, type_: str, *, limit: int | None = None, page_size: int = 1000) -> Iterator[dict]:
    """Records of one type in id order, one page at a time, built as the graph schema says
    (:func:`console.graphschema.record_of`)."""
    spec = store.schema.type(type_)
    for rows in store.read_pages(export_page(store.schema, type_), spec.id, page_size=page_size, limit=limit):
        for row in rows:
            yield record_of(spec, row)


def count(store, type_: str) -> int:
    return store.read(count_nodes(store.schema.type(type_)))[0]["n"]


def output_file(out_dir: Path, spec: TypeSpec, fmt: str) -> Path:
    """``<file>.<fmt>``: the schema's file name (the demo's recipes.json, ingredients.json, categories.json)."""
    return Path(out_dir) / f"{spec.file}.{fmt}"


def write_records(records: Iterator[dict], path: Path, fmt: str,
                  progress: Callable[[int], None] | None = None, columns: list[str] | None = None) -> int:
    """Write records one by one to ``path`` (via a temporary file renamed at the end); returns the count."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}: choose one of {', '.join(FORMATS)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    n = 0
    try:
        with open(tmp, "w", encoding="utf-8", newline="") as fh:
            writer = None
            if fmt == "json":
                fh.write("[")
            elif fmt == "csv":
                writer = csv.DictWriter(fh, fieldnames=columns or ["id", "type", "title", "text"],
                                        extrasaction="ignore")
                writer.writeheader()
            for record in records:
                if fmt == "json":
                    fh.write(",\n " if n else "\n ")
                    fh.write(json.dumps(record, ensure_ascii=False))
                elif fmt == "jsonl":
                    fh.write(json.dumps(record, ensure_ascii=False) + "\n")
                else:
                    writer.writerow({k: LIST_SEPARATOR.join(v) if isinstance(v, list) else v
                                     for k, v in record.items()})
                n += 1
                if progress:
                    progress(n)
            if fmt == "json":
                fh.write("\n]\n" if n else "]\n")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return n
