"""Append-only, fsync'd batch checkpoints: a killed run resumes without redoing, duplicating or losing batches.

One file per (type, model settings): ``<output-dir>/.checkpoints/<type>-<key>.jsonl``. Each line is one finished
batch: ``{"ids": [...], "hashes": [...], "dim": N, "vectors": "<base64 float32, row-major>"}``, written with
flush + fsync before the next batch starts. A run killed mid-write leaves at most one truncated last line: it is
cut off on the next start (and reported), and those items are embedded again.

The key covers everything that changes a vector (model, dimensions, normalisation, max length, document prompt,
backend and quantisation),
so runs with other arguments never mix vectors. Each item's content hash covers the same key plus the text: a
re-run embeds only new or changed texts (incremental), whatever their ids.
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np

CHECKPOINT_DIR = ".checkpoints"


def settings_key(*, model: str, dimensions: int, normalize: bool, max_length: int | None = None,
                 prompt: str | None = None, backend: str = "torch", quantize: str = "none") -> str:
    """A short hex key for the settings that change vectors. The inference backend and quantisation count only
    when not torch/none, so the keys of earlier (torch) runs, their checkpoints and --reuse stay valid."""
    settings = {"model": model, "dimensions": int(dimensions), "normalize": bool(normalize),
                "max_length": max_length, "prompt": prompt}
    if (backend, quantize) != ("torch", "none"):
        settings |= {"backend": backend, "quantize": quantize}
    blob = json.dumps(settings, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def content_hash(key: str, text: str) -> str:
    """Hash of (settings key, text): equal hashes mean an equal vector."""
    return content_digest(key, text).hex()


def content_digest(key: str, text: str) -> bytes:
    """`content_hash` as its 16 raw bytes (what the generator keeps per record)."""
    return hashlib.sha256(f"{key}\0{text}".encode("utf-8")).digest()[:16]


@dataclass
class LoadResult:
    vectors: dict[str, np.ndarray] = field(default_factory=dict)  # content hash -> float32 vector
    batches: int = 0
    repaired: str | None = None  # message when unreadable lines (a truncated tail) were dropped


class Checkpoint:
    """The checkpoint file of one type and settings key."""

    def __init__(self, out_dir: str | Path, type_: str, key: str):
        self.dir = Path(out_dir) / CHECKPOINT_DIR
        self.path = self.dir / f"{type_}-{key}.jsonl"
        self.key = key
        self._fh = None

    def load(self, wanted: set[str] | None = None) -> LoadResult:
        """Read finished batches, streaming (keeping only the vectors whose hash is in `wanted`, when given).

        A truncated or corrupt last line is cut off the file; any unreadable line is reported in `repaired` and
        its items are embedded again. (Holds the vectors it keeps: the generator uses `scan` instead.)
        """
        result = LoadResult()

        def keep(ids, hashes, matrix) -> None:
            for h, vec in zip(hashes, matrix):
                if wanted is None or h in wanted:
                    result.vectors.setdefault(h, vec)

        scanned = self.scan(keep)
        result.batches, result.repaired = scanned.batches, scanned.repaired
        return result

    def scan(self, on_batch) -> LoadResult:
        """Call `on_batch(ids, hashes, matrix)` for each readable batch line, in file order, holding one line at a
        time; returns the batch count and the repair message (vectors are not kept). Same repair as `load`."""
        result = LoadResult()
        if not self.path.exists():
            return result
        problems: list[int] = []
        good_end = pos = 0
        number = 0
        with open(self.path, "rb") as fh:
            for number, raw in enumerate(fh, start=1):
                pos += len(raw)
                try:
                    if not raw.endswith(b"\n"):
                        raise ValueError("no line end")
                    obj = json.loads(raw)
                    ids, hashes, dim = obj["ids"], obj["hashes"], int(obj["dim"])
                    matrix = np.frombuffer(base64.b64decode(obj["vectors"], validate=True), dtype="<f4")
                    matrix = matrix.reshape(len(hashes), dim)
                    if len(ids) != len(hashes):
                        raise ValueError("ids and hashes differ in length")
                except Exception:
                    problems.append(number)
                    continue
                good_end = pos
                result.batches += 1
                on_batch(ids, hashes, matrix)
        if problems:
            if good_end < pos and problems[-1] == number:
                with open(self.path, "r+b") as fh:
                    fh.truncate(good_end)
                    fh.flush()
                    os.fsync(fh.fileno())
            where = ", ".join(str(n) for n in problems)
            result.repaired = (f"{self.path.name}: dropped {len(problems)} unreadable batch line"
                               f"{'s' if len(problems) > 1 else ''} (line {where}; a run was probably killed while "
                               f"writing); those items are embedded again")
        return result

    def append(self, ids: Iterable[str], hashes: Iterable[str], vectors: np.ndarray) -> None:
        """Add one finished batch, durably (flush + fsync) before returning."""
        vectors = np.ascontiguousarray(vectors, dtype="<f4")
        ids, hashes = list(ids), list(hashes)
        if vectors.ndim != 2 or vectors.shape[0] != len(hashes) or len(ids) != len(hashes):
            raise ValueError("one vector per id and hash is needed")
        line = json.dumps({"ids": ids, "hashes": hashes, "dim": int(vectors.shape[1]),
                           "vectors": base64.b64encode(vectors.tobytes()).decode("ascii")}, ensure_ascii=False)
        if self._fh is None:
            self.dir.mkdir(parents=True, exist_ok=True)
            self._fh = open(self.path, "ab")
        self._fh.write(line.encode("utf-8") + b"\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def run_key(embedder) -> str:
    """The checkpoint key of an `Embedder`: the settings that change vectors (see :func:`settings_key`)."""
    info = embedder.describe()
    return settings_key(model=info["model"], dimensions=info["dimensions"], normalize=info["normalized"],
                        max_length=info["max_length"], prompt=embedder.document_prompt,
                        backend=info.get("backend", "torch"), quantize=info.get("quantize", "none"))
