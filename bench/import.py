"""Benchmark: vectors/s of the embeddings import (console.sinks.neo4j.writer.VectorWriter, which import_embeddings and
the console's push use) against one ``MERGE ... SET`` query per item, over the same data, in one run.

    python bench/import.py [--n 20000] [--dims 384,1024] [--batch-sizes 100,1000,2000,10000] [--baseline-n 3000]

For each dimension: the one-query-per-item baseline (on the first --baseline-n items: its rate is flat in n), then
VectorWriter at the default batch size as import_embeddings runs it (the missing vector index created first and
online during the writes, 2 sessions: "until searchable"), the same file again (all unchanged), one session
instead of two, the writes with no index and then the index built over them (the other way), and a sweep over the
batch sizes (writes only, no index). ~6 min on 2 cores with the defaults.

    python bench/import.py --strategy-ab 2 --n 100000 --dims 384   # index after vs online x 1 vs 2 sessions
    python bench/import.py --peers 2 --sizes 20000x1024,100000x384 --parallel 1,2   # against the peers

``--peers``: until searchable, ``import_embeddings --parallel N`` (on a Parquet file) against neo4j-graphrag's
``upsert_vectors`` and langchain-neo4j's ``Neo4jVector`` (bench/peer_import.py, run by the interpreter of their own
venv: bench/requirements-peers.txt, made once under ~/.cache/embedding-console/bench-peers-venv, or --peers-python)
and the writes alone with no index (the floor); bench/results/import-peers.json.

It starts its own Neo4j (scripts/neo4j.sh, home ~/.cache/embedding-console/neo4j-bench, port 7699) and empties it,
so no developer data is touched; pass --use-env to use NEO4J_* instead (refused unless that database is empty).
Ids are the real recipe ids of data/indonesian-recipes repeated with a suffix; vectors are seeded random unit vectors.
Writes bench/results/import.json and prints a one-line summary. Other work on the machine slows both sides alike;
the load average at start and end is in the result.
"""
from __future__ import annotations

import argparse
import csv
import gzip
import json
import os
import platform
import re
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import empty_graph  # noqa: E402
from console.sinks.neo4j.settings import Neo4jSettings  # noqa: E402
from console.sinks.neo4j.store import Neo4jStore  # noqa: E402
from console.sinks.neo4j.writer import DEFAULT_BATCH_SIZE, DEFAULT_WORKERS, VectorWriter  # noqa: E402

DATA = ROOT / "data" / "indonesian-recipes"
BENCH_HOME = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "embedding-console" / "neo4j-bench"
MODEL = "bench-model"


def recipe_ids(n: int) -> list[str]:
    base = []
    for path in sorted(DATA.glob("*.csv.gz")):
        with gzip.open(path, "rt", encoding="utf-8", newline="") as fh:
            for row in csv.DictReader(fh):
                match = re.search(r"/(\d+)", row.get("URL") or "")
                if match:
                    base.append(f"recipe-{match.group(1)}")
    base = list(dict.fromkeys(base)) or ["recipe-0"]
    return [f"{base[i % len(base)]}-{i // len(base)}" for i in range(n)]


def bench_env() -> dict:
    env = dict(os.environ, NEO4J_HOME=str(BENCH_HOME), NEO4J_BOLT_PORT=os.environ.get("BENCH_NEO4J_PORT", "7699"),
               NEO4J_HEAP="1g", NEO4J_PAGECACHE="1g")
    env.pop("NEO4J_PASSWORD", None)
    return env


def start_own_server() -> Neo4jSettings:
    """Start the bench server (unless it runs already); credentials from its folder."""
    subprocess.run([str(ROOT / "scripts" / "neo4j.sh"), "start"], env=bench_env(), check=True)
    return Neo4jSettings.from_env_file(BENCH_HOME / "credentials.env")


def reset(store: Neo4jStore, ids: list[str]) -> None:
    empty_graph(store.driver, store.settings.database)
    store.ensure_schema()
    for start in range(0, len(ids), 10000):
        store.query("UNWIND $ids AS id CREATE (:Recipe {id: id, title: id})", ids=ids[start:start + 10000])


def baseline(store: Neo4jStore, items: list[dict]) -> float:
    """One auto-committed MERGE ... SET query per item (how a first script would do it)."""
    started = time.perf_counter()
    with store.driver.session(database=store.settings.database) as session:
        for item in items:
            session.run(
                "MERGE (n:Recipe {id: $id}) SET n.embedding = $embedding, n.embedding_model = $model, "
                "n.embedding_updated_at = datetime()",
                id=item["id"], embedding=item["embedding"].tolist(), model=MODEL,
            ).consume()
    return time.perf_counter() - started


def writer(store: Neo4jStore, items: list[dict], batch_size: int, *, workers: int = 2,
           create_index: bool = True) -> tuple[float, float, dict]:
    """VectorWriter.write as import_embeddings calls it; returns (seconds until the last batch is committed,
    seconds until the call returns, report). With ``create_index`` a missing index is created before the first
    batch and is online during the writes: when the call returns, every vector is searchable."""
    marks = {}
    started = time.perf_counter()
    report = VectorWriter(store, model=MODEL, workers=workers, create_index=create_index).write(
        items, batch_size=batch_size, total=len(items),
        progress=lambda done, total: marks.__setitem__("written", time.perf_counter()) if done == total else None)
    ended = time.perf_counter()
    return marks["written"] - started, ended - started, report.to_dict()


def write_then_build(store: Neo4jStore, items: list[dict], dims: int, *, workers: int = 2) -> tuple[float, float]:
    """The other way: the writes with no index, then the index built over them (what VectorWriter did before).
    Returns (seconds of the writes, seconds of the index build)."""
    t_write, _, rep = writer(store, items, DEFAULT_BATCH_SIZE, workers=workers, create_index=False)
    assert rep["written"] == len(items), rep
    started = time.perf_counter()
    store.create_vector_index("recipe", dims)
    return t_write, time.perf_counter() - started


def rust_extension() -> bool:
    """neo4j-rust-ext installs the module ``neo4j._rust`` (not ``neo4j_rust_ext``); the driver uses it when present."""
    try:
        import neo4j._rust  # noqa: F401
    except ImportError:
        return False
    return True


def payload_seconds(vectors: np.ndarray, batch: int = 2000) -> dict:
    """Cost of turning one batch of float32 rows into the driver's lists (what VectorWriter does per batch)."""
    part = vectors[:batch]
    out = {}
    for name, convert in (("float32_row_tolist", lambda: [v.tolist() for v in part]),
                          ("float64_row_tolist", lambda: [v.astype(np.float64).tolist() for v in part]),
                          ("matrix_tolist", lambda: part.tolist())):
        started = time.perf_counter()
        for _ in range(3):
            convert()
        out[name] = round((time.perf_counter() - started) / 3, 4)
    return out


def bench_dims(store: Neo4jStore, ids: list[str], dims: int, batch_sizes: list[int], baseline_n: int) -> dict:
    n = len(ids)
    rng = np.random.default_rng(42)
    vectors = rng.standard_normal((n, dims)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    items = [{"id": i, "type": "recipe", "embedding": v} for i, v in zip(ids, vectors)]
    say = lambda text: print(f"[{dims}-d] {text}", file=sys.stderr)  # noqa: E731

    reset(store, ids)
    baseline(store, items[:200])  # warm-up (a freshly started JVM compiles its query paths): not timed
    reset(store, ids)
    base_n = min(baseline_n, n)
    t_base = baseline(store, items[:base_n])
    base_vps = base_n / t_base
    say(f"baseline (one MERGE per item, {base_n} items): {base_vps:.0f} vectors/s")

    reset(store, ids)
    t_write, t_first, first = writer(store, items, DEFAULT_BATCH_SIZE)  # index created first, online, 2 sessions
    assert first["written"] == n, first
    say(f"writer batch {DEFAULT_BATCH_SIZE}: searchable after {t_first:.1f} s ({n / t_first:.0f} vectors/s)")
    _, t_again, again = writer(store, items, DEFAULT_BATCH_SIZE)  # the same file again: all unchanged
    assert again["unchanged"] == n, again

    reset(store, ids)
    t_one_write, t_one, rep = writer(store, items, DEFAULT_BATCH_SIZE, workers=1)
    assert rep["written"] == n, rep
    say(f"writer 1 session: searchable after {t_one:.1f} s")

    reset(store, ids)
    t_bare, t_index = write_then_build(store, items, dims)
    say(f"writer without index: {n / t_bare:.0f} vectors/s written, then the index built in {t_index:.1f} s")

    sweep = {}
    for size in batch_sizes:
        reset(store, ids)
        t, _, rep = writer(store, items, size, create_index=False)
        assert rep["written"] == n, rep
        sweep[str(size)] = round(n / t, 1)
        say(f"writer batch {size} (no index): {n / t:.0f} vectors/s written")

    # The baseline's vectors need the same index to be searchable: its figure adds the index build measured above.
    base_searchable = n / (n / base_vps + t_index)
    return {
        "dims": dims,
        "write_vps": {"baseline_merge_per_item": round(base_vps, 1),
                      f"vector_writer_batch_{DEFAULT_BATCH_SIZE}_index_online": round(n / t_write, 1),
                      "vector_writer_1_session_index_online": round(n / t_one_write, 1),
                      "vector_writer_no_index": round(n / t_bare, 1)},
        "write_vps_by_batch_size_no_index": sweep,
        "searchable_vps": {"baseline_merge_per_item_then_index": round(base_searchable, 1),
                           "vector_writer": round(n / t_first, 1),
                           "vector_writer_1_session": round(n / t_one, 1),
                           "vector_writer_no_index_then_index": round(n / (t_bare + t_index), 1)},
        "rerun_unchanged_vps": round(n / t_again, 1),
        "speedup_write": round((n / t_write) / base_vps, 2),
        "speedup_searchable": round((n / t_first) / base_searchable, 2),
        "seconds": {"baseline_write_per_1000": round(1000 / base_vps, 2), "writer_until_searchable": round(t_first, 2),
                    "writer_1_session_until_searchable": round(t_one, 2), "writer_no_index": round(t_bare, 2),
                    "index_build_after_writes": round(t_index, 2), "rerun_unchanged": round(t_again, 2)},
        "payload_build_s_per_batch_of_2000": payload_seconds(vectors),
    }


def strategy_ab(store: Neo4jStore, ids: list[str], dims: int, reps: int) -> dict:
    """Until searchable, the four ways to write: the vector index built after the writes or online during them,
    times 1 or 2 writer sessions. Interleaved (each rep runs all four) so that the machine's load falls on all
    alike; the median of each is reported, with the writes' share (the rest is the index build)."""
    rng = np.random.default_rng(11)
    vectors = rng.standard_normal((len(ids), dims)).astype(np.float32)
    items = [{"id": i, "type": "recipe", "embedding": v} for i, v in zip(ids, vectors)]
    ways = [(index, workers) for index in ("build_after", "online_during") for workers in (1, 2)]
    searchable: dict[str, list[float]] = {f"{i}_{w}_session{'s' * (w > 1)}": [] for i, w in ways}
    writes: dict[str, list[float]] = {key: [] for key in searchable}
    for _ in range(reps):
        for (index, workers), key in zip(ways, searchable):
            reset(store, ids)
            if index == "online_during":  # what VectorWriter does
                t_write, t, rep = writer(store, items, DEFAULT_BATCH_SIZE, workers=workers)
                assert rep["written"] == len(ids), rep
            else:
                t_write, t_index = write_then_build(store, items, dims, workers=workers)
                t = t_write + t_index
            searchable[key].append(round(len(ids) / t, 1))
            writes[key].append(round(t_write, 1))
            print(f"[{dims}-d] {key}: searchable at {len(ids) / t:.0f} vectors/s ({t:.1f} s, writes {t_write:.1f} s)",
                  file=sys.stderr)
    return {"dims": dims, "n": len(ids), "batch_size": DEFAULT_BATCH_SIZE, "reps": reps,
            "searchable_vps": searchable, "writes_s": writes,
            "median_searchable_vps": {k: float(np.median(v)) for k, v in searchable.items()}}


PEERS_VENV = BENCH_HOME.parent / "bench-peers-venv"
PEERS_REQUIREMENTS = ROOT / "bench" / "requirements-peers.txt"


def peers_python(given: Path | None) -> Path:
    """The interpreter of the peers' own virtual environment: ``--peers-python``, else PEERS_VENV, created once from
    bench/requirements-peers.txt (the peers pull LangChain and an older fsspec: never into the project's venv)."""
    if given:
        return given
    python = PEERS_VENV / "bin" / "python"
    if not python.exists():
        print(f"bench/import.py: creating {PEERS_VENV} from {PEERS_REQUIREMENTS.name} (once)", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(PEERS_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "-r", str(PEERS_REQUIREMENTS)], check=True)
    return python


def floor_writes(store: Neo4jStore, items: list[dict], batch: int = DEFAULT_BATCH_SIZE, workers: int = 2) -> float:
    """The writes alone: the bare ``UNWIND ... setNodeVectorProperty`` per batch, no index, no lookup of what is there
    already, no checks, as many sessions as VectorWriter; seconds until the last batch is committed."""
    query = ("UNWIND $rows AS row MATCH (n:Recipe {id: row.id}) "
             "CALL db.create.setNodeVectorProperty(n, 'embedding', row.embedding)")

    def write(part: list[dict]) -> None:
        rows = [{"id": i["id"], "embedding": i["embedding"].tolist()} for i in part]
        store.driver.execute_query(query, rows=rows, database_=store.settings.database)

    from concurrent.futures import ThreadPoolExecutor

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(write, [items[s:s + batch] for s in range(0, len(items), batch)]))
    return time.perf_counter() - started


def ours_until_searchable(store: Neo4jStore, parquet: Path, workers: int, last: dict) -> tuple[float, float]:
    """``import_embeddings --embedding-file X.parquet --parallel N`` as the command runs it (console.sinks.push.load_items
    and write_loaded: the file read and checked, VectorWriter with N sessions, the missing index created first),
    then the same check as the peers' (index ONLINE, the last vector found by a vector query): (seconds until the
    last batch is committed, seconds until searchable)."""
    from bench.peer_import import wait_searchable
    from console.sinks.push import load_items, write_loaded

    marks = {}
    started = time.perf_counter()
    loaded = load_items(parquet, MODEL)
    report = write_loaded(store, loaded, workers=workers,
                          progress=lambda done, total: marks.__setitem__("written", time.perf_counter()))
    assert report.written == report.total, report.summary()
    wait_searchable(store.driver, store.settings.database, store.spec("recipe").vector_index, last["id"],
                    last["embedding"].tolist())
    return marks["written"] - started, time.perf_counter() - started


def write_parquet(path: Path, ids: list[str], vectors: np.ndarray) -> Path:
    """The generator's Parquet layout (id, type, embedding as list<float32>), what import_embeddings reads."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    flat = pa.array(vectors.reshape(-1), type=pa.float32())
    offsets = pa.array(np.arange(0, vectors.size + 1, vectors.shape[1], dtype=np.int32))
    table = pa.table({"id": ids, "type": ["recipe"] * len(ids), "embedding": pa.ListArray.from_arrays(offsets, flat)})
    pq.write_table(table, path)
    return path


def run_peer(python: Path, peer: str, data: Path, settings: Neo4jSettings) -> dict:
    env = dict(os.environ, NEO4J_URI=settings.uri, NEO4J_USER=settings.user, NEO4J_PASSWORD=settings.password,
               NEO4J_DATABASE=settings.database or "neo4j")
    done = subprocess.run([str(python), str(ROOT / "bench" / "peer_import.py"), "--peer", peer, "--data", str(data),
                           "--index", f"recipe_embedding_{peer}", "--batch", str(DEFAULT_BATCH_SIZE)],
                          env=env, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"peer {peer} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def peers_dims(store: Neo4jStore, ids: list[str], dims: int, python: Path, reps: int, parallel: list[int]) -> dict:
    """One size: ours (import_embeddings --parallel N for each N of ``parallel``), neo4j-graphrag, LangChain and the
    floor on the same vectors, interleaved ``reps`` times (each on an emptied graph with the same nodes); medians of
    seconds and vectors/s until searchable. "ours" in the ratios is the default --parallel."""
    import tempfile

    n = len(ids)
    rng = np.random.default_rng(7)
    vectors = rng.standard_normal((n, dims)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    items = [{"id": i, "type": "recipe", "embedding": v} for i, v in zip(ids, vectors)]
    say = lambda text: print(f"[{n} x {dims}-d] {text}", file=sys.stderr, flush=True)  # noqa: E731
    keys = [f"ours_parallel_{k}" for k in parallel] + ["neo4j_graphrag", "langchain_neo4j", "floor_writes"]
    seconds: dict[str, list[float]] = {k: [] for k in keys}
    written: dict[str, list[float]] = {k: [] for k in seconds}
    with tempfile.TemporaryDirectory(prefix="import-peers-") as tmp:
        data = Path(tmp)
        np.save(data / "vectors.npy", vectors)
        (data / "ids.json").write_text(json.dumps(ids))
        parquet = write_parquet(data / "embeddings_recipes.parquet", ids, vectors)

        def ours(workers: int):
            return lambda: ours_until_searchable(store, parquet, workers, items[-1])

        def peer(name: str):
            def run() -> tuple[float, float]:
                out = run_peer(python, name, data, store.settings)
                return out["seconds_written"], out["seconds_searchable"]
            return run

        def floor() -> tuple[float, float]:
            t = floor_writes(store, items)
            return t, t

        reset(store, ids)
        ours(DEFAULT_WORKERS)()  # warm-up, not timed: a fresh JVM compiles the write and HNSW insert paths first
        contenders = [(f"ours_parallel_{k}", ours(k)) for k in parallel] + [
            ("neo4j_graphrag", peer("graphrag")), ("langchain_neo4j", peer("langchain")), ("floor_writes", floor)]
        for rep in range(reps):  # the order rotates each round, so that no one always runs first (or last)
            shift = rep % len(contenders)
            for key, run in contenders[shift:] + contenders[:shift]:
                reset(store, ids)
                t_write, t = run()
                seconds[key].append(round(t, 3)), written[key].append(round(t_write, 3))
                say(f"{key}: searchable after {t:.1f} s ({n / t:.0f} vectors/s; written after {t_write:.1f} s)")
    med = {k: float(np.median(v)) for k, v in seconds.items()}
    vps = {k: round(n / v, 1) for k, v in med.items()}
    best_peer = max(("neo4j_graphrag", "langchain_neo4j"), key=vps.get)
    ours_key = f"ours_parallel_{DEFAULT_WORKERS}" if DEFAULT_WORKERS in parallel else keys[0]
    best_ours = max(keys[:len(parallel)], key=vps.get)
    return {"n": n, "dims": dims, "reps": reps, "seconds_until_searchable": seconds, "seconds_written": written,
            "median_vps_until_searchable": vps, "ours": ours_key, "best_peer": best_peer, "best_parallel": best_ours,
            "ours_vs_best_peer": round(vps[ours_key] / vps[best_peer], 2),
            "ours_vs_floor": round(vps[ours_key] / vps["floor_writes"], 2),
            "parallel_vs_one_session": {k: round(vps[k] / vps[keys[0]], 2) for k in keys[:len(parallel)]}}


def finish(store: Neo4jStore, started_here: bool, output: Path, result: dict) -> None:
    """Write the result, close the driver, stop the bench server if this run started it."""
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2) + "\n")
    store.close()
    if started_here:
        subprocess.run([str(ROOT / "scripts" / "neo4j.sh"), "stop"], env=bench_env(), check=False)


def main_peers(args, store: Neo4jStore, started_here: bool, load_start: list[float], began: float) -> int:
    python = peers_python(args.peers_python)
    runs = [peers_dims(store, recipe_ids(n), dims, python, args.peers, args.parallel) for n, dims in args.sizes]
    version = store.query("CALL dbms.components() YIELD versions RETURN versions[0] AS v")[0]["v"]
    peer_versions = subprocess.run(
        [str(python), "-c", "import importlib.metadata as m, json; print(json.dumps({p: m.version(p) for p in "
         "('neo4j-graphrag', 'langchain-neo4j', 'neo4j')}))"], capture_output=True, text=True, check=True).stdout
    from bench.common import machine_info

    result = {
        "benchmark": "import-peers", "runs": runs, "batch_size": DEFAULT_BATCH_SIZE,
        "peer_versions": json.loads(peer_versions), "neo4j": version, "neo4j_rust_ext": rust_extension(),
        "machine": machine_info(), "load_average_at_start": load_start, "load_average_at_end": list(os.getloadavg()),
        "total_seconds": round(time.perf_counter() - began, 1),
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "notes": "seconds from the first call until the vector index is ONLINE and a vector query finds the last "
                 "vector (bench/peer_import.py wait_searchable, the same check for all); ours: VectorWriter as "
                 "import_embeddings runs it on a Parquet file (index created first, --parallel N sessions; 'ours' in the ratios is the default N); neo4j_graphrag: create_vector_index, "
                 "element ids looked up, upsert_vectors per batch; langchain_neo4j: Neo4jVector.from_embeddings on "
                 "the first batch, add_embeddings for the rest; floor_writes: the bare UNWIND + "
                 "setNodeVectorProperty per batch, 2 sessions, no index (not searchable: the lower bound of any "
                 "import). Peers run in their own venv (bench/requirements-peers.txt) as a subprocess.",
    }
    output = args.output if args.output.name != "import.json" else args.output.with_name("import-peers.json")
    finish(store, started_here, output, result)
    print("import vs peers (load " f"{load_start[0]:.1f}->{result['load_average_at_end'][0]:.1f}): " + "; ".join(
        f"{r['n']} x {r['dims']}-d: ours {r['median_vps_until_searchable'][r['ours']]:.0f}/s (parallel vs 1 session "
        f"{r['parallel_vs_one_session']}), best peer {r['best_peer']} "
        f"{r['median_vps_until_searchable'][r['best_peer']]:.0f}/s ({r['ours_vs_best_peer']}x), floor "
        f"{r['median_vps_until_searchable']['floor_writes']:.0f}/s ({r['ours_vs_floor']} of it)" for r in runs))
    return 0


def parse_sizes(text: str) -> list[tuple[int, int]]:
    """``20000x1024,100000x384`` -> [(20000, 1024), (100000, 384)]."""
    sizes = []
    for size in filter(None, (part.strip().lower() for part in text.split(","))):
        n, _, dims = size.partition("x")
        if not (n.isdigit() and dims.isdigit() and int(n) > 0 and int(dims) > 0):
            raise argparse.ArgumentTypeError(f"{size!r} is not NxDIMS (e.g. 20000x1024)")
        sizes.append((int(n), int(dims)))
    return sizes


def parse_parallel(text: str) -> list[int]:
    """``1,2,4`` -> [1, 2, 4] (import_embeddings --parallel values)."""
    parts = [part.strip() for part in text.split(",") if part.strip()]
    if not parts or not all(part.isdigit() and int(part) > 0 for part in parts):
        raise argparse.ArgumentTypeError(f"{text!r} is not a list of whole numbers >= 1 (e.g. 1,2)")
    return sorted({int(part) for part in parts})


def add_peers_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--peers", type=int, default=0, metavar="REPS",
                        help="only compare with neo4j-graphrag, langchain-neo4j and the writes-alone floor, REPS "
                             "interleaved rounds per --sizes (bench/results/import-peers.json)")
    parser.add_argument("--sizes", default="20000x1024,100000x384", type=parse_sizes,
                        help="--peers: NxDIMS, comma-separated")
    parser.add_argument("--parallel", default=f"1,{DEFAULT_WORKERS}", type=parse_parallel,
                        help="--peers: the import_embeddings --parallel values to run (1,2: one session against the "
                             "default)")
    parser.add_argument("--peers-python", type=Path, default=None,
                        help=f"--peers: the peers' interpreter (default: {PEERS_VENV}, made once from "
                             "bench/requirements-peers.txt)")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=20000, help="vectors per dimension (20000)")
    parser.add_argument("--dims", default="384,1024", help="dimensions, comma-separated (384 MiniLM, 1024 Qwen3)")
    parser.add_argument("--batch-sizes", default="100,1000,2000,10000", help="batch sizes of the sweep")
    parser.add_argument("--baseline-n", type=int, default=3000, help="items for the one-query-per-item baseline")
    parser.add_argument("--strategy-ab", type=int, default=0, metavar="REPS",
                        help="only compare index built after the writes vs online during them, with 1 and 2 "
                             "sessions, interleaved REPS times, at the first --dims (bench/results/"
                             "import-strategy.json)")
    add_peers_arguments(parser)
    parser.add_argument("--use-env", action="store_true", help="use NEO4J_* (an empty database) instead")
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "import.json")
    args = parser.parse_args(argv)
    dims_list = [int(d) for d in args.dims.split(",") if d.strip()]
    batch_sizes = [int(b) for b in args.batch_sizes.split(",") if b.strip()]

    started_here = not args.use_env and subprocess.run(
        [str(ROOT / "scripts" / "neo4j.sh"), "status"], env=bench_env(), capture_output=True).returncode != 0
    settings = Neo4jSettings.from_env() if args.use_env else start_own_server()
    store = Neo4jStore(settings)
    if args.use_env and store.query("MATCH (n) RETURN count(n) AS n")[0]["n"]:
        print(f"bench/import.py: the database at {settings.uri} is not empty; use an empty one", file=sys.stderr)
        return 2
    load_start = list(os.getloadavg())
    began = time.perf_counter()
    if args.peers:
        return main_peers(args, store, started_here, load_start, began)
    ids = recipe_ids(args.n)
    if args.strategy_ab:
        result = strategy_ab(store, ids, dims_list[0], args.strategy_ab)
        result.update(benchmark="import-strategy", load_average_at_start=load_start,
                      load_average_at_end=list(os.getloadavg()), neo4j_rust_ext=rust_extension(),
                      cpus=os.cpu_count(), when=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                      notes="seconds from the first write until the vector index is online and holds every vector; "
                            "online_during: VectorWriter as it is (index created before the first batch); "
                            "build_after: writes with no index, then CREATE VECTOR INDEX awaited; writes_s: "
                            "until the last batch is committed")
        output = args.output if args.output.name != "import.json" else args.output.with_name("import-strategy.json")
        finish(store, started_here, output, result)
        med = result["median_searchable_vps"]
        best = max(med, key=med.get)
        print(f"import strategy ({args.n} x {dims_list[0]}-d, batch {DEFAULT_BATCH_SIZE}, {args.strategy_ab} reps, "
              f"load {load_start[0]:.1f}->{result['load_average_at_end'][0]:.1f}): searchable "
              + ", ".join(f"{k} {v:.0f}/s" for k, v in med.items()) + f"; best {best}")
        return 0
    runs = [bench_dims(store, ids, dims, batch_sizes, args.baseline_n) for dims in dims_list]
    version = store.query("CALL dbms.components() YIELD versions RETURN versions[0] AS v")[0]["v"]
    result = {
        "benchmark": "import",
        "n": args.n, "baseline_n": min(args.baseline_n, args.n), "default_batch_size": DEFAULT_BATCH_SIZE,
        "batch_sizes": batch_sizes, "runs": runs,
        "notes": "baseline: one auto-committed MERGE ... SET n.embedding = $list per item (its rate on the first "
                 "baseline_n items; its 'searchable' figure adds the index build measured after the writer's writes "
                 "without index); writer: VectorWriter (UNWIND + db.create.setNodeVectorProperty, 2 sessions unless "
                 "stated, the missing cosine index created before the first batch) as import_embeddings runs it; "
                 "'searchable': until every vector is in an online index; the batch-size sweep times the writes "
                 "only, with no index. See the load averages for other work on the same cores.",
        "load_average_at_start": load_start,
        "load_average_at_end": list(os.getloadavg()),
        "total_seconds": round(time.perf_counter() - began, 1),
        "neo4j": version, "neo4j_rust_ext": rust_extension(), "cpus": os.cpu_count(),
        "python": platform.python_version(), "machine": platform.machine(),
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    finish(store, started_here, args.output, result)
    parts = []
    for run in runs:
        sweep = run["write_vps_by_batch_size_no_index"]
        best = max(sweep.items(), key=lambda kv: kv[1]) if sweep else ("-", 0)
        vps = run["searchable_vps"]
        parts.append(
            f"{run['dims']}-d: searchable {vps['vector_writer']:.0f}/s vs {vps['baseline_merge_per_item_then_index']:.0f}"
            f"/s one MERGE per item then index ({run['speedup_searchable']}x); 1 session {vps['vector_writer_1_session']:.0f}"
            f"/s; writes without index then index {vps['vector_writer_no_index_then_index']:.0f}/s; best batch (no "
            f"index) {best[0]} ({best[1]:.0f}/s)")
    print(f"import ({args.n} vectors, rust ext {result['neo4j_rust_ext']}, load {load_start[0]:.1f}->"
          f"{result['load_average_at_end'][0]:.1f}): " + "; ".join(parts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
