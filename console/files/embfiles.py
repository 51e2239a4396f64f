"""Embedding files: write and read the seed JSON, JSON Lines, Parquet and .npy + ids formats, plus metadata.

Formats (one set per type, in the output folder; ``<stem>`` from :func:`file_stem`):
- ``<stem>.json``: JSON array of {"id", "type", "text", "embedding": [floats]} (the seed format)
- ``<stem>.jsonl``: one such object per line
- ``<stem>.parquet``: columns id, type, text, title, embedding (list<float32>)
- ``<stem>.npy`` (float32 matrix) + ``<stem>.ids.json`` (list of {id, type, text, title})
- ``<stem>.meta.json``: model, dimensions, normalized, dtype, count, type, created_at, tool, ...

Names: a type of the graph schema takes its ``file`` name (the demo's three types have the guide's plural names:
``embeddings_recipes``, ``embeddings_ingredients``, ``embeddings_categories``); any other type keeps its own name
(``embeddings_<type>``, e.g. ``embeddings_tag``).
Earlier runs wrote ``embeddings_<type>`` for every type (``embeddings_recipe.json``): every reader
finds a type's file under either name, the new one first (:func:`find_embedding_file`, :func:`parse_embedding_name`).

Writers stream (items are consumed one at a time) and replace the final file atomically (tmp + os.replace).
Floats are written with 9 significant digits, which round-trips float32 exactly.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from console import __version__
from console.errors import InputError
from console.graphschema import SCHEMA_ENV, load_schema
from console.files.records import iter_json_file, iter_json_lines, read_text

FORMATS = ("json", "jsonl", "parquet", "npy")
SUFFIX = {"json": ".json", "jsonl": ".jsonl", "parquet": ".parquet", "npy": ".npy"}
READ_HINT = "re-create the file with `embedding-console generate`"
PARQUET_CHUNK = 2048


@dataclass
class EmbeddedItem:
    id: str
    type: str
    text: str
    embedding: np.ndarray  # float32, 1-d
    title: str | None = None


# -- names ---------------------------------------------------------------------------------------------------------
PREFIX = "embeddings_"
_EMBEDDING_NAME = re.compile(r"^embeddings_(?P<name>[a-z0-9_-]+)\.(?P<fmt>json|jsonl|parquet|npy)$")


_FILE_NAMES: list = [0.0, None, {}]   # [read at, schema file, names]: a validation asks once per record


def file_names() -> dict[str, str]:
    """type -> file name, from the graph schema (the demo's: recipe -> recipes, the guide's names); read again
    at most once a second, or when GRAPH_SCHEMA_FILE names another file."""
    read_at, source, names = _FILE_NAMES
    wanted = os.environ.get(SCHEMA_ENV)
    if time.monotonic() - read_at > 1.0 or source != wanted:
        _FILE_NAMES[:] = [time.monotonic(), wanted, load_schema().file_names()]
    return _FILE_NAMES[2]


def file_stem(type_: str) -> str:
    """The one place that names a type's files: ``embeddings_<file>`` with the graph schema's file name of the type
    (the demo's ``embeddings_recipes``, ``embeddings_ingredients``, ``embeddings_categories``: the guide's names),
    and ``embeddings_<type>`` unchanged for a type the schema lacks."""
    return PREFIX + file_names().get(type_, type_)


def _stems(type_: str) -> list[str]:
    """A type's file stems, the current name first, then the name earlier runs wrote (``embeddings_<type>``)."""
    return list(dict.fromkeys((file_stem(type_), PREFIX + type_)))


def type_from_stem(stem: str) -> str | None:
    """``embeddings_recipes`` and the older ``embeddings_recipe`` -> "recipe"; ``embeddings_tag`` -> "tag"; a name
    that is not an embedding file's -> None."""
    if not stem.startswith(PREFIX) or len(stem) == len(PREFIX):
        return None
    name = stem[len(PREFIX):]
    return {file: type_ for type_, file in file_names().items()}.get(name, name)


def parse_embedding_name(name: str) -> tuple[str, str, bool] | None:
    """(type, format, is the current name) of an ``embeddings_<...>.<json|jsonl|parquet|npy>`` file name, under the
    current or the older name; None for any other name (metadata, ids, inputs)."""
    m = _EMBEDDING_NAME.match(name)
    if not m:
        return None
    type_ = type_from_stem(PREFIX + m["name"])
    return type_, m["fmt"], PREFIX + m["name"] == file_stem(type_)


def find_embedding_file(folder: str | Path, type_: str, fmt: str = "json") -> Path | None:
    """A type's existing embedding file of one format in `folder`, under the current name first, else under the
    older one (``embeddings_recipe.json`` of earlier runs); None when there is neither."""
    for stem in _stems(type_):
        path = Path(folder) / (stem + SUFFIX[fmt])
        if path.is_file():
            return path
    return None


def output_path(out_dir: str | Path, type_: str, fmt: str) -> Path:
    """Where a type's file of one format is written (:func:`file_stem`)."""
    if fmt not in SUFFIX:
        raise ValueError(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")
    return Path(out_dir) / f"{file_stem(type_)}{SUFFIX[fmt]}"


def meta_path_for(path: str | Path) -> Path:
    """embeddings_recipes.{json,jsonl,parquet,npy,ids.json} -> embeddings_recipes.meta.json (any name: the stem's)"""
    path = Path(path)
    name = path.name
    for suffix in (".ids.json", ".json", ".jsonl", ".parquet", ".npy"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    return path.with_name(name + ".meta.json")


def make_meta(*, model: str, dimensions: int, normalized: bool, dtype: str, count: int, type_: str,
              prompt: str | None = None, query_prompt: str | None = None, **more) -> dict:
    return {
        "model": model, "dimensions": int(dimensions), "normalized": bool(normalized), "dtype": dtype,
        "count": int(count), "type": type_,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "tool": "embedding-console", "tool_version": __version__, "prompt": prompt, "query_prompt": query_prompt,
        **more,
    }


def _floats(vector: np.ndarray) -> str:
    return "[" + ",".join(f"{x:.9g}" for x in np.asarray(vector, dtype=np.float32).tolist()) + "]"


def _item_json(item: EmbeddedItem) -> str:
    head = json.dumps({"id": item.id, "type": item.type, "text": item.text}, ensure_ascii=False)
    return head[:-1] + ', "embedding": ' + _floats(item.embedding) + "}"


def _tmp(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


class _Writers:
    """One open writer per format; each item goes to all of them."""

    def __init__(self, out_dir: Path, type_: str, formats: Iterable[str]):
        self.type_ = type_
        self.targets: dict[str, Path] = {f: output_path(out_dir, type_, f) for f in formats}
        self.count = 0
        self.dim: int | None = None
        self._fh: dict[str, object] = {}
        self._parquet = None
        self._rows: list[EmbeddedItem] = []
        for fmt, path in self.targets.items():
            if fmt == "json":
                self._fh["json"] = open(_tmp(path), "w", encoding="utf-8")
                self._fh["json"].write("[")
            elif fmt == "jsonl":
                self._fh["jsonl"] = open(_tmp(path), "w", encoding="utf-8")
            elif fmt == "npy":
                self._fh["npy"] = open(_tmp(path) .with_suffix(".raw"), "wb")
                self._fh["ids"] = open(_tmp(path.with_name(path.stem + ".ids.json")), "w", encoding="utf-8")
                self._fh["ids"].write("[")

    def add(self, item: EmbeddedItem) -> None:
        vec = np.asarray(item.embedding, dtype=np.float32).reshape(-1)
        if self.dim is None:
            self.dim = int(vec.shape[0])
        elif vec.shape[0] != self.dim:
            raise ValueError(f"item {item.id!r} has {vec.shape[0]} dimensions, the others {self.dim}")
        sep = "\n" if self.count == 0 else ",\n"
        if "json" in self._fh or "jsonl" in self._fh:
            line = _item_json(EmbeddedItem(item.id, item.type, item.text, vec, item.title))
            if "json" in self._fh:
                self._fh["json"].write(sep + line)
            if "jsonl" in self._fh:
                self._fh["jsonl"].write(line + "\n")
        if "npy" in self._fh:
            self._fh["npy"].write(vec.tobytes())
            self._fh["ids"].write(sep + json.dumps({"id": item.id, "type": item.type, "text": item.text,
                                                    "title": item.title}, ensure_ascii=False))
        if "parquet" in self.targets:
            self._rows.append(EmbeddedItem(item.id, item.type, item.text, vec, item.title))
            if len(self._rows) >= PARQUET_CHUNK:
                self._flush_parquet()
        self.count += 1

    def _flush_parquet(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        schema = pa.schema([("id", pa.string()), ("type", pa.string()), ("text", pa.string()),
                            ("title", pa.string()), ("embedding", pa.list_(pa.float32()))])
        if self._parquet is None:
            self._parquet = pq.ParquetWriter(_tmp(self.targets["parquet"]), schema)
        if not self._rows:
            return
        dim = self.dim or 0
        flat = np.concatenate([r.embedding for r in self._rows]) if dim else np.zeros(0, np.float32)
        offsets = np.arange(0, (len(self._rows) + 1) * dim, dim, dtype=np.int32)
        emb = pa.ListArray.from_arrays(pa.array(offsets), pa.array(flat, type=pa.float32()))
        table = pa.Table.from_arrays(
            [pa.array([r.id for r in self._rows]), pa.array([r.type for r in self._rows]),
             pa.array([r.text for r in self._rows]), pa.array([r.title for r in self._rows], type=pa.string()), emb],
            schema=schema)
        self._parquet.write_table(table)
        self._rows = []

    def close(self) -> list[Path]:
        written = []
        for fmt, path in self.targets.items():
            if fmt == "json":
                fh = self._fh["json"]
                fh.write("\n]\n" if self.count else "]\n")
                fh.close()
                os.replace(_tmp(path), path)
            elif fmt == "jsonl":
                self._fh["jsonl"].close()
                os.replace(_tmp(path), path)
            elif fmt == "parquet":
                self._flush_parquet()
                self._parquet.close()
                os.replace(_tmp(path), path)
            elif fmt == "npy":
                raw = _tmp(path).with_suffix(".raw")
                self._fh["npy"].close()
                ids_path = path.with_name(path.stem + ".ids.json")
                self._fh["ids"].write("\n]\n" if self.count else "]\n")
                self._fh["ids"].close()
                with open(_tmp(path), "wb") as out, open(raw, "rb") as src:
                    header = {"descr": "<f4", "fortran_order": False, "shape": (self.count, self.dim or 0)}
                    np.lib.format.write_array_header_1_0(out, header)
                    shutil.copyfileobj(src, out, 1 << 20)
                raw.unlink()
                os.replace(_tmp(path), path)
                os.replace(_tmp(ids_path), ids_path)
                written.append(path)
                path = ids_path
            written.append(path)
        return written

    def abort(self) -> None:
        for fh in self._fh.values():
            fh.close()
        if self._parquet is not None:
            self._parquet.close()
        for path in self.targets.values():
            for p in (_tmp(path), _tmp(path).with_suffix(".raw"), _tmp(path.with_name(path.stem + ".ids.json"))):
                p.unlink(missing_ok=True)


class EmbeddingWriter:
    """Streams the items of one type into each format; `close()` replaces the files atomically and writes the
    metadata (`meta` with the final count and dimensions); `abort()` removes the unfinished files. Several can be
    open at once (the generator writes every type in one pass over its inputs)."""

    def __init__(self, out_dir: str | Path, type_: str, *, formats=("json",), meta: dict):
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        formats = list(dict.fromkeys(formats))
        for fmt in formats:
            output_path(self.out_dir, type_, fmt)  # raises on an unknown format
        self.type_ = type_
        self.meta = meta
        self._writers = _Writers(self.out_dir, type_, formats)

    @property
    def count(self) -> int:
        return self._writers.count

    def add(self, item: EmbeddedItem) -> None:
        self._writers.add(item)

    def close(self) -> list[Path]:
        written = self._writers.close()
        meta = dict(self.meta, count=self._writers.count, type=self.type_)
        if self._writers.dim is not None:
            meta["dimensions"] = self._writers.dim
        mpath = self.out_dir / f"{file_stem(self.type_)}.meta.json"
        tmp = _tmp(mpath)
        tmp.write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        os.replace(tmp, mpath)
        return written + [mpath]

    def abort(self) -> None:
        self._writers.abort()


def write_embeddings(out_dir: str | Path, type_: str, items: Iterable[EmbeddedItem], *, formats=("json",),
                     meta: dict) -> list[Path]:
    """Write `items` of one type in each format, then the metadata file (`meta` with the final count)."""
    writer = EmbeddingWriter(out_dir, type_, formats=formats, meta=meta)
    try:
        for item in items:
            writer.add(item)
    except BaseException:
        writer.abort()
        raise
    return writer.close()


def read_meta(path: str | Path) -> dict | None:
    """The .meta.json beside an embedding file (or the meta file itself), if present."""
    path = Path(path)
    mpath = path if path.name.endswith(".meta.json") else meta_path_for(path)
    if not mpath.exists():
        return None
    return json.loads(read_text(mpath))


def _item_from_obj(obj, path: Path, line: int, default_type: str | None = None) -> EmbeddedItem:
    if not isinstance(obj, dict):
        raise InputError("expected an object with \"id\" and \"embedding\"", file=path, line=line, hint=READ_HINT)
    if not isinstance(obj.get("id"), str) or not obj["id"]:
        raise InputError('item has no "id"', file=path, line=line, hint=READ_HINT)
    emb = obj.get("embedding")
    if isinstance(emb, np.ndarray) and emb.dtype == np.float32 and emb.ndim == 1 and emb.size:  # Parquet, fast path
        if not np.all(np.isfinite(emb)):
            raise InputError(f'item "{obj["id"]}": "embedding" must be a flat list of finite numbers', file=path,
                             line=line, hint=READ_HINT)
        return EmbeddedItem(id=obj["id"], type=obj.get("type") or default_type or "", text=obj.get("text") or "",
                            embedding=emb, title=obj.get("title"))
    if not isinstance(emb, list) or not emb:
        raise InputError(f'item "{obj["id"]}" has no "embedding" list', file=path, line=line, hint=READ_HINT)
    # numpy would turn true/false and "0.1" into floats: only real JSON numbers make a vector.
    if not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in emb):
        raise InputError(f'item "{obj["id"]}": "embedding" must be a list of numbers', file=path, line=line,
                         hint=READ_HINT)
    try:
        vec = np.asarray(emb, dtype=np.float32)
    except (TypeError, ValueError):
        raise InputError(f'item "{obj["id"]}": "embedding" must be a list of numbers', file=path, line=line,
                         hint=READ_HINT) from None
    if vec.ndim != 1 or not np.all(np.isfinite(vec)):
        raise InputError(f'item "{obj["id"]}": "embedding" must be a flat list of finite numbers', file=path,
                         line=line, hint=READ_HINT)
    return EmbeddedItem(id=obj["id"], type=obj.get("type") or default_type or "", text=obj.get("text") or "",
                        embedding=vec, title=obj.get("title"))


def _default_type(path: Path) -> str | None:
    """The type of items that do not say theirs: from the file's name (either naming), else from its .meta.json
    (a file the user renamed, e.g. test_embeddings.json beside test_embeddings.meta.json)."""
    mpath = meta_path_for(path)
    found = type_from_stem(mpath.name[: -len(".meta.json")])
    if found is None and mpath.is_file():
        try:
            found = json.loads(read_text(mpath)).get("type") or None
        except (ValueError, AttributeError, InputError):
            found = None  # a broken .meta.json is reported by whoever needs its model
    return found


def read_embeddings(path: str | Path) -> Iterator[EmbeddedItem]:
    """Items of an embedding file (.json, .jsonl, .parquet, .npy with its .ids.json), checking that all have the
    same number of dimensions. Problems raise InputError naming the file and line (or row)."""
    path = Path(path)
    default_type = _default_type(path)
    dim = None

    def check(item: EmbeddedItem, line: int) -> EmbeddedItem:
        nonlocal dim
        if dim is None:
            dim = item.embedding.shape[0]
        elif item.embedding.shape[0] != dim:
            raise InputError(f'item "{item.id}" has {item.embedding.shape[0]} dimensions, the items before it {dim}',
                             file=path, line=line, hint=READ_HINT)
        return item

    if not path.exists():
        raise InputError("no such file", file=path, hint="check the path")
    name = path.name.lower()
    if name.endswith(".jsonl") or name.endswith(".ndjson"):
        for number, obj in iter_json_lines(path, hint=READ_HINT):
            yield check(_item_from_obj(obj, path, number, default_type), number)
    elif name.endswith(".json") and not name.endswith(".ids.json"):
        for line, obj in iter_json_file(path):  # item by item: the file is never held whole
            yield check(_item_from_obj(obj, path, line, default_type), line)
    elif name.endswith(".parquet"):
        for row, obj in _parquet_rows(path):
            yield check(_item_from_obj(obj, path, row, default_type), row)
    elif name.endswith(".npy") or name.endswith(".ids.json"):
        npy = path if name.endswith(".npy") else path.with_name(path.name[: -len(".ids.json")] + ".npy")
        ids_path = npy.with_name(npy.stem + ".ids.json")
        if not ids_path.exists():
            raise InputError(f"{ids_path.name} is missing beside it", file=npy,
                             hint="keep the .npy and its .ids.json together")
        shape, rows = _npy_rows(npy)
        # the ids file is streamed twice (a count first, so that a mismatch is found before any item is used)
        count = sum(1 for _ in iter_json_file(ids_path))
        if len(shape) != 2 or count != shape[0]:
            raise InputError(f"{count} ids for a matrix of shape {shape}", file=npy, hint=READ_HINT)
        for (_, meta), vector in zip(iter_json_file(ids_path), rows):
            meta = meta if isinstance(meta, dict) else {"id": meta}
            yield EmbeddedItem(id=meta["id"], type=meta.get("type") or default_type or "",
                               text=meta.get("text") or "", embedding=vector, title=meta.get("title"))
    else:
        raise InputError("unknown embedding file type", file=path, hint="use .json, .jsonl, .parquet or .npy")


NPY_BLOCK_ROWS = 4096


def _npy_rows(path: Path) -> tuple[tuple, Iterator[np.ndarray]]:
    """The matrix shape and its rows (float32 copies), read in blocks with plain file reads: no memory map, whose
    touched pages would count in the process's memory and grow with the file."""
    fh = open(path, "rb")
    try:
        version = np.lib.format.read_magic(fh)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
            np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read_header(fh)
    except Exception:
        fh.close()
        raise
    if fortran or len(shape) != 2 or dtype.hasobject:  # not a plain row-major matrix: numpy reads it
        fh.close()
        matrix = np.load(path, mmap_mode="r")
        return tuple(matrix.shape), (np.array(row, dtype=np.float32) for row in matrix) if matrix.ndim == 2 \
            else iter(())

    def rows() -> Iterator[np.ndarray]:
        with fh:
            left = shape[0]
            while left:
                n = min(left, NPY_BLOCK_ROWS)
                data = fh.read(n * shape[1] * dtype.itemsize)
                block = np.frombuffer(data, dtype=dtype).reshape(-1, shape[1]).astype(np.float32)
                if block.shape[0] != n:
                    raise InputError(f"the matrix ends after {shape[0] - left + block.shape[0]} of {shape[0]} rows",
                                     file=path, hint=READ_HINT)
                yield from block
                left -= n

    return tuple(shape), rows()


def _parquet_rows(path: Path) -> Iterator[tuple[int, dict]]:
    """(row number, {column: value}) one row group at a time; the embedding column comes as a float32 array
    (no Python floats) when every row has one of the same length and no nulls."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(path, pre_buffer=False, buffer_size=1 << 20)
    missing = {"id", "embedding"} - set(pf.schema_arrow.names)
    if missing:
        raise InputError(f"no {', '.join(sorted(missing))} column", file=path, hint=READ_HINT)
    row = 0
    for group in range(pf.num_row_groups):
        for batch in pf.iter_batches(batch_size=PARQUET_CHUNK, row_groups=[group], use_threads=False):
            n = batch.num_rows
            emb = batch.column("embedding")
            cols = {k: batch.column(k).to_pylist() for k in batch.schema.names if k != "embedding"}
            fast = None
            if pa.types.is_list(emb.type) or pa.types.is_large_list(emb.type):
                values = emb.values
                offsets = np.asarray(emb.offsets)
                lengths = np.diff(offsets)
                if (n and emb.null_count == 0 and values.null_count == 0 and lengths.min() > 0
                        and (lengths == lengths[0]).all() and pa.types.is_floating(values.type)):
                    flat = values.slice(int(offsets[0]), int(offsets[-1] - offsets[0])).to_numpy(zero_copy_only=False)
                    fast = np.asarray(flat, dtype=np.float32).reshape(n, int(lengths[0]))
            pylist = None if fast is not None else emb.to_pylist()
            for i in range(n):
                row += 1
                obj = {k: cols[k][i] for k in cols}
                obj["embedding"] = fast[i] if fast is not None else pylist[i]
                yield row, obj
