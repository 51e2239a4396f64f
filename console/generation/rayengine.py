"""The Ray engine (`generate --engine ray`): the vectors a run misses, embedded by Ray Data actors on many machines.

Everything but the embedding stays the generator's own (`console.generation.generate`): validation before any work, the
content digest of (settings, text) as the unit of "done", the checkpoint, the embedding files and their .meta.json.
Ray only replaces the model's work, between the generator's stage 2 (reuse) and stage 3 (write):

1. `RayEngine.start`: connects to Ray (`--ray-address`: auto, ray://HOST:10001) or starts a local Ray, and learns
   the model's settings (dimensions, max length, document prompt: the checkpoint key) from one Ray task on a worker
   like the others (no model on the driver);
2. `salvage`: part files a killed run left (see 4) go into the checkpoint first, so they count as done;
3. `embed_missing`: the missing texts (one per distinct digest) are written as Parquet files under
   `<storage>/input/<key>/` (`--ray-storage`, default `<output-dir>/.ray`: any folder or URI that pyarrow's
   filesystems reach and every node reads), then `read_parquet(...).map_batches(EmbedWorker, compute=
   ActorPoolStrategy(...), batch_size=...)`: one `Embedder` per actor, built once (the model stays on the actor's
   GPU); each Ray batch is embedded by `Embedder.iter_batches` (length-sorted, `--batch-size` and
   `--max-tokens` as locally, CUDA OOM halving) and written as
   one Parquet part (id, type, digest, embedding as fixed_size_list<float32>[dim]) under `<storage>/parts/<key>/`,
   named by its content, so that a retried batch writes the same file again;
4. the driver streams the one-row summaries (`iter_rows`), reads each part, appends its vectors to the checkpoint
   (fsync'd, as the local engine does), reports progress (rows, rate, ETA), then deletes the part.

Resuming is ours, row level (not Ray Data's checkpointing): whatever reached the checkpoint or a part file is never
embedded again; a changed model or dimensions is another key, so other folders. A worker that dies is restarted by
Ray and its batch retried (Ray Data's actor pools restart actors and retry tasks by default); a record that fails
on its own is embedded alone, and if it fails again it is reported with its id (the run ends with an error naming
them; the rest is kept).
"""
from __future__ import annotations

import hashlib
import logging
import math
import os
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

from console.generation.checkpoint import Checkpoint, content_digest, run_key
from console.errors import ConsoleError, ModelError, OptionError
from console.options import GenerateOptions, parse_range

RAY_DIR = ".ray"
BATCHES_PER_PART = 64  # a Ray batch (one part file): this many --batch-size batches, at most --chunk-size rows
INSTALL_HINT = "pip install 'embedding-console[ray]' (or the pinned ray[data] of requirements.txt)"


def part_rows(opts: GenerateOptions) -> int:
    """Rows per Ray batch (= per part file and per input file)."""
    return max(1, min(opts.chunk_size, opts.batch_size * BATCHES_PER_PART))


def worker_args(opts: GenerateOptions, key: str, storage_uri: str) -> dict:
    """The arguments of each actor's `EmbedWorker` (the run's model settings and batching)."""
    return {"model_args": model_args(opts), "key": key, "batch_size": opts.batch_size,
            "max_tokens": opts.max_tokens, "storage_uri": storage_uri}


def model_args(opts: GenerateOptions) -> dict:
    return {"model": opts.model, "device": opts.device, "dtype": opts.dtype, "dimensions": opts.dimensions,
            "normalize": opts.normalize, "max_length": opts.max_length, "backend": opts.backend,
            "quantize": opts.quantize}


class Storage:
    """The work folder every node reads (a local or shared path, or a URI: s3://, gs://, abfs://, hdfs://),
    through pyarrow's filesystems: `<root>/input/<key>/` and `<root>/parts/<key>/`."""

    def __init__(self, uri: str | Path, key: str):
        from pyarrow import fs

        uri = str(uri)
        self.uri = uri if "://" in uri else str(Path(uri).resolve())
        try:
            self.fs, root = fs.FileSystem.from_uri(self.uri)
        except Exception as exc:  # pyarrow: ArrowInvalid, OSError, ...
            raise OptionError(f"--ray-storage {uri!r}: {exc}") from None
        self.input, self.parts = f"{root}/input/{key}", f"{root}/parts/{key}"

    def reset_input(self) -> None:
        from pyarrow import fs

        if self.fs.get_file_info(self.input).type != fs.FileType.NotFound:
            self.fs.delete_dir(self.input)
        self.fs.create_dir(self.input)
        self.fs.create_dir(self.parts)

    def part_names(self) -> list[str]:
        from pyarrow import fs

        if self.fs.get_file_info(self.parts).type == fs.FileType.NotFound:
            return []
        infos = self.fs.get_file_info(fs.FileSelector(self.parts))
        return sorted(i.base_name for i in infos if i.base_name.endswith(".parquet")
                      and not i.base_name.startswith("."))

    def write(self, folder: str, name: str, table) -> None:
        """`table` as `<folder>/<name>`, whole or not at all (a temporary name, then a rename)."""
        import pyarrow.parquet as pq

        tmp = f"{folder}/.{name}.{uuid.uuid4().hex}.tmp"
        pq.write_table(table, tmp, filesystem=self.fs)
        self.fs.move(tmp, f"{folder}/{name}")

    def read_part(self, name: str):
        import pyarrow.parquet as pq

        return pq.read_table(f"{self.parts}/{name}", filesystem=self.fs)

    def delete_part(self, name: str) -> None:
        self.fs.delete_file(f"{self.parts}/{name}")

    def input_bytes(self) -> int:
        """Bytes of the input files as the readers hold them (the text column, uncompressed, is most of it)."""
        import pyarrow.parquet as pq
        from pyarrow import fs

        infos = self.fs.get_file_info(fs.FileSelector(self.input))
        return sum(pq.ParquetFile(i.path, filesystem=self.fs).metadata.row_group(0).total_byte_size
                   for i in infos if i.base_name.endswith(".parquet"))

    def remove_input(self) -> None:
        self.fs.delete_dir(self.input)


def part_table(ids, types, digests, vectors: np.ndarray):
    """A part: id, type, digest, embedding as fixed_size_list<float32>[dim] (plain Parquet for any reader)."""
    import pyarrow as pa

    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    emb = pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1), type=pa.float32()), int(vectors.shape[1]))
    return pa.table({"id": pa.array(ids, pa.string()), "type": pa.array(types, pa.string()),
                     "digest": pa.array(digests, pa.string()), "embedding": emb})


class EmbedWorker:
    """The callable class of `map_batches`: one per Ray actor, holding one `Embedder` (its model on the actor's
    GPU, built once); each call embeds one Ray batch, writes it as one part and returns a one-row summary.
    `--batch-size` and `--max-tokens` batch it as the local engine does (carried from call to call after OOM)."""

    def __init__(self, model_args: dict, key: str, batch_size: int, storage_uri: str, max_tokens: int | None = None):
        from console.generation.engine import Embedder

        self.embedder = Embedder(**model_args)
        if run_key(self.embedder) != key:  # the model changed under the run: never mix its vectors
            raise ModelError(f"this worker's model {model_args['model']!r} gives other vectors than the driver "
                             "expects (another version on this node?); use the same model folder on every node")
        self.key, self.batch_size, self.max_tokens = key, batch_size, max_tokens
        self.storage = Storage(storage_uri, key)

    def __call__(self, batch):
        import pyarrow as pa

        ids, types, digests, texts = (batch.column(c).to_pylist() for c in ("id", "type", "digest", "text"))
        for i, text, digest in zip(ids, texts, digests):
            if content_digest(self.key, text).hex() != digest:
                raise RuntimeError(f"record {i!r}: its text does not match its digest (the work files changed)")
        vectors, ok, errors = self.embed(texts)
        keep = np.flatnonzero(ok)
        name = hashlib.sha256("".join(digests[i] for i in keep).encode()).hexdigest()[:32] + ".parquet"
        if len(keep):
            self.storage.write(self.storage.parts, name, part_table(
                [ids[i] for i in keep], [types[i] for i in keep], [digests[i] for i in keep], vectors[keep]))
        failed = sorted(errors)
        strings = pa.list_(pa.string())
        return pa.table({"part": [name if len(keep) else ""], "rows": [len(keep)], "batch_size": [self.batch_size],
                         "failed": pa.array([[ids[i] for i in failed]], strings),
                         "errors": pa.array([[errors[i] for i in failed]], strings)})

    def embed(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray, dict[int, str]]:
        """(vectors, which rows have one, {row: error}). After an error (not CUDA OOM, which the engine handles),
        the rows still without a vector are embedded one at a time: only a record that fails on its own fails."""
        vectors = np.zeros((len(texts), self.embedder.dimensions), dtype=np.float32)
        ok = np.zeros(len(texts), dtype=bool)
        errors: dict[int, str] = {}
        try:
            for b in self.embedder.iter_batches(texts, batch_size=self.batch_size, max_tokens=self.max_tokens,
                                                overlap=self.embedder.tokenize_ahead):
                vectors[b.indices], ok[b.indices], self.batch_size = b.vectors, True, b.batch_size
                self.max_tokens = b.max_tokens
        except ModelError:
            raise  # out of memory at batch size 1: the whole run has to change its settings
        except Exception:  # noqa: BLE001 - retried one by one below, each error kept with its record
            for i in np.flatnonzero(~ok):
                try:
                    vectors[i] = next(self.embedder.iter_batches([texts[i]], batch_size=1)).vectors[0]
                    ok[i] = True
                except Exception as exc:  # noqa: BLE001
                    errors[int(i)] = f"{type(exc).__name__}: {exc}"[:500]
        return vectors, ok, errors


def _describe(args: dict) -> dict:
    """The model's settings (run on a worker, like the actors)."""
    from console.generation.engine import Embedder

    embedder = Embedder(**args)
    return {**embedder.describe(), "document_prompt": embedder.document_prompt}


class ModelInfo:
    """What the driver needs of the model without holding it: `describe()`, `dimensions`, `document_prompt`."""

    def __init__(self, info: dict):
        self.info = {k: v for k, v in info.items() if k != "document_prompt"}
        self.dimensions = int(info["dimensions"])
        self.document_prompt = info["document_prompt"]
        self.device_message = None
        self.tokenize_ahead = False

    def describe(self) -> dict:
        return dict(self.info)

    def iter_batches(self, *args, **kw):
        raise RuntimeError("the Ray engine left vectors missing")  # a bug: embed_missing checks every row


class RayEngine:
    """One run's Ray side. Use `with RayEngine.start(opts, embedder, say) as engine:`."""

    def __init__(self, ray, opts: GenerateOptions, model, say: Callable[[str], None]):
        self.ray, self.opts, self.model, self.say = ray, opts, model, say
        self.storage: Storage | None = None

    @classmethod
    @contextmanager
    def start(cls, opts: GenerateOptions, embedder, say: Callable[[str], None]) -> Iterator["RayEngine"]:
        try:
            import ray
            import ray.data  # noqa: F401
        except ImportError:
            raise OptionError(f"--engine ray needs Ray: {INSTALL_HINT}") from None
        started = not ray.is_initialized()
        if started:
            say(_init_ray(ray, opts))
        ray.data.DataContext.get_current().enable_progress_bars = False  # our own bar counts the rows
        logging.getLogger("ray.data").setLevel(logging.WARNING)
        try:
            _check_resources(ray, opts, say)
            if embedder is None:
                say(f"loading model {opts.model} on a Ray worker to read its settings")
                embedder = ModelInfo(_remote(ray, ray.remote(_describe).options(
                    num_cpus=opts.ray_cpus, num_gpus=opts.ray_gpus, max_retries=1).remote(model_args(opts))))
            yield cls(ray, opts, embedder, say)
        finally:
            if started:
                ray.shutdown()

    def open_storage(self, key: str) -> Storage:
        if self.storage is None:
            self.storage = Storage(self.opts.ray_storage or Path(self.opts.output_dir) / RAY_DIR, key)
        return self.storage

    def salvage(self, key: str, checkpoints: dict[str, Checkpoint]) -> None:
        """Parts that a killed run left for this key: into the checkpoint (then they count as done), then deleted."""
        storage = self.open_storage(key)
        names = storage.part_names()
        for name in names:
            try:
                table = storage.read_part(name)
            except Exception:  # noqa: BLE001 - an unreadable part is embedded again
                storage.delete_part(name)
                continue
            for t, ids, hashes, matrix in _by_type(table):
                if t not in checkpoints:
                    checkpoints[t] = Checkpoint(self.opts.output_dir, t, key)
                checkpoints[t].append(ids, hashes, matrix)
            storage.delete_part(name)
        if names:
            self.say(f"{len(names)} finished Ray part(s) of an earlier run taken into the checkpoint")

    def embed_missing(self, records: Iterable, states: dict, checkpoints: dict[str, Checkpoint], key: str,
                      tracker) -> None:
        """Every text of `states` without a vector: embedded on Ray, each part into the checkpoint and `states`."""
        storage = self.open_storage(key)
        n, files = write_inputs(records, states, key, storage, part_rows(self.opts))
        if not n:
            storage.remove_input()
            return
        low, high = parse_range(self.opts.ray_workers)
        self.say(f"embedding {n} texts on Ray: {low}-{high} worker(s), {self.opts.ray_gpus:g} GPU and "
                 f"{self.opts.ray_cpus:g} CPU each, {part_rows(self.opts)} rows per part")
        ctx = self.ray.data.DataContext.get_current()  # blocks of about one input file (one part), not merged:
        sizes = (ctx.target_min_block_size, ctx.target_max_block_size)  # every worker gets work, progress streams
        ctx.target_min_block_size, ctx.target_max_block_size = 1, max(1024, storage.input_bytes() // files)
        ds = self.ray.data.read_parquet(storage.input, filesystem=storage.fs, override_num_blocks=files).map_batches(
            EmbedWorker, batch_size=part_rows(self.opts), batch_format="pyarrow",
            compute=self.ray.data.ActorPoolStrategy(min_size=low, max_size=high),
            fn_constructor_kwargs=worker_args(self.opts, key, storage.uri),
            num_cpus=self.opts.ray_cpus, num_gpus=self.opts.ray_gpus)
        failures: list[str] = []
        rows = iter(ds.iter_rows())
        try:
            for summary in rows:
                if summary["rows"]:
                    _ingest(storage, summary["part"], states, checkpoints, tracker, summary["batch_size"])
                failures += [f"{i} ({e})" for i, e in zip(summary["failed"], summary["errors"])]
        except self.ray.exceptions.RayTaskError as exc:
            _raise_console_error(exc)
            raise
        finally:
            getattr(rows, "close", lambda: None)()  # on a stop or an error: the actors end now, freeing resources
            ctx.target_min_block_size, ctx.target_max_block_size = sizes
        if failures:
            raise ModelError(f"{len(failures)} record(s) could not be embedded: {'; '.join(failures[:20])}"
                             + (" ..." if len(failures) > 20 else "")
                             + " — the others are in the checkpoint; fix these texts (or leave them out), run again")
        storage.remove_input()
        for st in states.values():
            if not st.present.all():
                raise RuntimeError(f"{st.type_}: the Ray run left {int((~st.present).sum())} vectors missing")


def _init_ray(ray, opts: GenerateOptions) -> str:
    """ray.init for this run: the cluster at --ray-address (with this package shipped to its workers), or a local
    Ray with one logical CPU more than the workers reserve (else Ray Data's read tasks could wait forever)."""
    _, high = parse_range(opts.ray_workers)
    if opts.ray_address:
        import console

        ray.init(address=opts.ray_address, logging_level="WARNING",
                 runtime_env={"py_modules": [str(Path(console.__file__).parent)]})
        where = f"Ray cluster at {opts.ray_address}"
    else:
        cpus = max(os.cpu_count() or 1, math.ceil(high * opts.ray_cpus) + 1)
        ray.init(num_cpus=cpus, include_dashboard=False, logging_level="WARNING")
        where = f"a local Ray ({cpus} CPUs)"
    return f"connected to {where}"


def _check_resources(ray, opts: GenerateOptions, say: Callable[[str], None]) -> None:
    gpus = ray.cluster_resources().get("GPU", 0)
    if opts.ray_gpus > 0 and gpus < opts.ray_gpus:
        message = (f"--ray-gpus {opts.ray_gpus:g}: the Ray cluster has {gpus:g} GPU(s) now")
        if not opts.ray_address:
            raise OptionError(message + "; use --ray-gpus 0 for CPU workers on this machine")
        say(message + "; the workers wait until an autoscaler adds GPU nodes")


def _remote(ray, ref):
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as exc:
        _raise_console_error(exc)
        raise


def _raise_console_error(exc) -> None:
    """A ConsoleError raised on a worker (bad model, OOM at batch size 1) as itself, for a clear message."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, ConsoleError):
        raise cause from None


def write_inputs(records: Iterable, states: dict, key: str, storage: Storage, rows_per_file: int) -> int:
    """The texts without a vector (one per distinct text and type), `rows_per_file` per Parquet file under
    `storage.input`, in input order. One read of the inputs. Returns (texts, files)."""
    import pyarrow as pa

    storage.reset_input()
    position = dict.fromkeys(states, 0)
    queued = {t: np.zeros(st.rows, dtype=bool) for t, st in states.items()}
    cols: dict[str, list] = {"id": [], "type": [], "digest": [], "text": []}
    n = files = 0

    def flush() -> None:
        nonlocal files
        if cols["id"]:
            storage.write(storage.input, f"input-{files:06d}.parquet", pa.table(cols))
            files += 1
            for v in cols.values():
                v.clear()

    for record in records:
        st = states[record.type]
        p = position[record.type]
        position[record.type] = p + 1
        row = int(st.pos2row[p]) if p < st.count else -1
        if row < 0:
            raise RuntimeError("the input files changed while the run was reading them")
        if st.present[row] or queued[record.type][row]:
            continue
        queued[record.type][row] = True
        for name, value in zip(cols, (record.id, record.type, content_digest(key, record.text).hex(), record.text)):
            cols[name].append(value)
        n += 1
        if len(cols["id"]) >= rows_per_file:
            flush()
    flush()
    return n, files


def _by_type(table) -> Iterator[tuple[str, list, list, np.ndarray]]:
    """(type, ids, digests, vectors) of a part, per type."""
    types = table.column("type").to_pylist()
    emb = table.column("embedding").combine_chunks()
    matrix = emb.flatten().to_numpy(zero_copy_only=False).astype(np.float32).reshape(len(types), emb.type.list_size)
    ids, hashes = table.column("id").to_pylist(), table.column("digest").to_pylist()
    for t in dict.fromkeys(types):
        idx = [i for i, x in enumerate(types) if x == t]
        yield t, [ids[i] for i in idx], [hashes[i] for i in idx], matrix[idx]


def _ingest(storage: Storage, name: str, states: dict, checkpoints: dict[str, Checkpoint], tracker,
            batch_size: int) -> None:
    """One finished part: its vectors into the checkpoint (fsync'd) and the run's rows; the part deleted; then
    reported (a stop during the report leaves no part behind that the checkpoint already has)."""
    done = []
    for t, ids, hashes, matrix in _by_type(storage.read_part(name)):
        st = states[t]
        keep = st.missing_rows(hashes, matrix)
        if keep:
            idx = [i for i, _ in keep]
            checkpoints[t].append([ids[i] for i in idx], [hashes[i] for i in idx], matrix[idx])
        for i, row in keep:
            st.put(row, matrix[i])
        st.forget_cache()
        done.append((st, len(keep), sum(int(st.uses[row]) for _, row in keep)))
    storage.delete_part(name)
    for st, embedded, covered in done:
        tracker.batch(st, embedded, covered, batch_size)
