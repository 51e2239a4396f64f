"""A type's vectors during a generation run (:class:`TypeVectors`): one row per distinct text in a scratch file on
disk, so that memory stays flat with the input size (see :mod:`console.generation.generate`)."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np


class TypeVectors:
    """The vectors of one type during a run, by record position (input order among the records of the type).

    Records with the same text share one row ("u", numbered in order of first occurrence) of a scratch file on
    disk; memory per record: its 4-byte row number, per distinct text: 16-byte digest, row, use count, 2 flags.
    """

    BLOCK = 1024  # rows read at once when writing the outputs

    def __init__(self, type_: str, out_dir: Path, dim: int):
        self.type_ = type_
        self.dim = dim
        self.rowbytes = dim * 4
        self.digests = bytearray()
        self.sources: set[str] = set()
        self.count = 0
        self.done = 0
        self.path = out_dir / f".embeddings_{type_}.{os.getpid()}.vectors.raw"
        self.fd: int | None = None
        self._cache: np.ndarray | None = None
        self._cache_start = 0

    def index(self) -> None:
        """After every digest is in: number the distinct texts and map each record to its row (peak ~40 bytes per
        record while sorting, ~30 kept)."""
        n = len(self.digests) // 16
        keys = np.frombuffer(self.digests, dtype="S16") if n else np.zeros(0, dtype="S16")
        order = np.argsort(keys, kind="stable")
        ordered = keys[order]
        del keys
        self.digests = bytearray()
        new_run = np.ones(n, dtype=bool)
        np.not_equal(ordered[1:], ordered[:-1], out=new_run[1:])
        starts = np.flatnonzero(new_run)
        self.keys = ordered[starts]  # sorted distinct digests
        del ordered
        row_type = np.uint32 if n < 2**32 else np.int64
        run_of = np.cumsum(new_run, dtype=row_type)
        del new_run
        run_of -= 1
        first_pos = order[starts]  # the stable sort keeps each run's first record first
        del starts
        self.key_row = np.empty(len(first_pos), dtype=row_type)
        self.key_row[np.argsort(first_pos, kind="stable")] = np.arange(len(first_pos), dtype=row_type)
        del first_pos
        self.pos2row = np.empty(n, dtype=row_type)
        self.pos2row[order] = self.key_row[run_of]
        del order, run_of
        self.rows = len(self.keys)
        self.uses = np.bincount(self.pos2row, minlength=self.rows).astype(row_type)
        self.present = np.zeros(self.rows, dtype=bool)
        self.queued = np.zeros(self.rows, dtype=bool)
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)

    def rows_of(self, hashes: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(indices into `hashes` that this type wants, their rows)."""
        if not hashes or not self.rows:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        try:
            wanted = np.frombuffer(bytes.fromhex("".join(hashes)), dtype="S16")
        except ValueError:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        if len(wanted) != len(hashes):
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        at = np.minimum(np.searchsorted(self.keys, wanted), self.rows - 1)
        hit = np.flatnonzero(self.keys[at] == wanted)
        return hit, self.key_row[at[hit]]

    def missing_rows(self, hashes: list[str], matrix: np.ndarray) -> list[tuple[int, int]]:
        """(index into `hashes`, row) for each row that `hashes` has a vector for and that has none yet; the first
        index of a row that appears twice. Nothing when the vectors have other dimensions."""
        if matrix.shape[1] != self.dim:
            return []
        keep, seen = [], set()
        for i, row in zip(*self.rows_of(hashes)):
            if not self.present[row] and row not in seen:
                seen.add(row)
                keep.append((int(i), int(row)))
        return keep

    def put(self, row: int, vector: np.ndarray) -> None:
        os.pwrite(self.fd, np.ascontiguousarray(vector, dtype="<f4").tobytes(), int(row) * self.rowbytes)
        self.present[row] = True

    def get(self, row: int) -> np.ndarray:
        cache = self._cache
        if cache is None or not self._cache_start <= row < self._cache_start + len(cache):
            n = min(self.BLOCK, self.rows - row)
            data = os.pread(self.fd, n * self.rowbytes, int(row) * self.rowbytes)
            cache = self._cache = np.frombuffer(data, dtype="<f4").reshape(-1, self.dim)
            self._cache_start = int(row)
        return cache[row - self._cache_start]

    def forget_cache(self) -> None:
        self._cache = None

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        self.path.unlink(missing_ok=True)
