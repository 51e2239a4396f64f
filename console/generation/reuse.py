"""Stages 1 and 2 of a generation run: the content digest of every record (:func:`collect_digests`), then the
vectors already there (:func:`reuse_vectors`): this run's checkpoint, and the checkpoints of earlier runs named by
``--reuse``. Hashes decide what is reused, never ids or batch boundaries."""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable, Sequence

from console.errors import InputError
from console.files.records import Record
from console.generation.checkpoint import Checkpoint, content_digest
from console.generation.scratch import TypeVectors


def inputs_changed() -> InputError:
    return InputError("the input files changed while the run was reading them",
                      hint="run the command again once they are complete")


def collect_digests(records: Iterable[Record], states: dict[str, TypeVectors], key: str,
                    counts: dict[str, int]) -> None:
    """Stage 1 (one read of the inputs): the content digest of every record, per type; then each type numbers its
    distinct texts (`TypeVectors.index`). `counts`: the validation's count per type (else the inputs changed)."""
    for record in records:
        st = states[record.type]
        st.digests += content_digest(key, record.text)
        st.sources.add(record.source)
        st.count += 1
    for t, st in states.items():
        if st.count != counts[t]:
            raise inputs_changed()
        st.index()


def reuse_vectors(st: TypeVectors, checkpoint: Checkpoint, key: str, folders: Sequence[Path], out_dir: Path,
                  say: Callable[[str], None]) -> int:
    """Stage 2: vectors of this run's checkpoint, then of the checkpoints of earlier runs (`--reuse`, copied into
    this run's checkpoint). Returns the number of records that have their vector."""
    def take(ids, hashes, matrix) -> None:
        for i, row in st.missing_rows(hashes, matrix):
            st.put(row, matrix[i])

    loaded = checkpoint.scan(take)
    if loaded.repaired:
        say(loaded.repaired)
    for folder in folders:
        if st.present.all() or Path(folder).resolve() == Path(out_dir).resolve():
            continue
        found = _copy_from_earlier_run(st, checkpoint, Checkpoint(folder, st.type_, key))
        if found:
            say(f"{st.type_}: {found} vectors taken from {folder}")
    reused = int(st.uses[st.present].sum())
    st.done = reused
    if reused:
        say(f"{st.type_}: {reused} of {st.count} vectors reused from the checkpoint")
    return reused


def _copy_from_earlier_run(st: TypeVectors, checkpoint: Checkpoint, earlier: Checkpoint) -> int:
    """Vectors that `earlier` has for texts of `st` still without one, appended to `checkpoint` with the ids of
    the earlier run's records (ids in a checkpoint are informational; hashes decide). Returns how many."""
    found = 0

    def take(ids, hashes, matrix) -> None:
        nonlocal found
        keep = st.missing_rows(hashes, matrix)
        if not keep:
            return
        idx = [i for i, _ in keep]
        checkpoint.append([ids[i] for i in idx], [hashes[i] for i in idx], matrix[idx])
        for i, row in keep:
            st.put(row, matrix[i])
        found += len(keep)

    earlier.scan(take)
    return found
