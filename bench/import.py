"""Benchmark: vectors/s of the embeddings import (console.neo4j_store.VectorWriter, which import_embeddings and
the console's push use) against one ``MERGE ... SET`` query per item, over the same data, in one run.

    python bench/import.py [--n 20000] [--dims 384,1024] [--batch-sizes 100,1000,2000,10000] [--baseline-n 3000]

For each dimension: the one-query-per-item baseline (on the first --baseline-n items: its rate is flat in n), then
VectorWriter at the default batch size (written, then the missing vector index built and awaited = "until
searchable"), the same file again (all unchanged), a sweep over the batch sizes (writes only), one session instead
of two, and the writes with the vector index online. ~6 min on 2 cores with the defaults.

It starts its own Neo4j (scripts/neo4j.sh, home ~/.cache/embedding-console/neo4j-bench, port 7699) and empties it,
so no developer data is touched; pass --use-env to use NEO4J_* instead (refused unless that database is empty).
Ids are the real recipe ids of ../shared/data repeated with a suffix; vectors are seeded random unit vectors.
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

from console.neo4j_store import DEFAULT_BATCH_SIZE, Neo4jSettings, Neo4jStore, VectorWriter  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "indonesian-recipes"
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
    values = {}
    for line in (BENCH_HOME / "credentials.env").read_text().splitlines():
        key, _, value = line.removeprefix("export ").partition("=")
        values[key] = value.strip("'")
    return Neo4jSettings(uri=values["NEO4J_URI"], user=values["NEO4J_USER"], password=values["NEO4J_PASSWORD"],
                         database=values["NEO4J_DATABASE"])


def reset(store: Neo4jStore, ids: list[str], *, keep_index: bool = False) -> None:
    with store.driver.session(database=store.settings.database) as session:
        session.run("MATCH (n) CALL (n) { DETACH DELETE n } IN TRANSACTIONS OF 10000 ROWS").consume()
    store.query("MATCH (s:EmbeddingSpace) DELETE s")
    if not keep_index:
        for index in store.query("SHOW VECTOR INDEXES YIELD name RETURN name"):
            store.query(f"DROP INDEX `{index['name']}`")
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
    seconds until the call returns, i.e. with a missing index created and online, report)."""
    marks = {}
    started = time.perf_counter()
    report = VectorWriter(store, model=MODEL, workers=workers, create_index=create_index).write(
        items, batch_size=batch_size, total=len(items),
        progress=lambda done, total: marks.__setitem__("written", time.perf_counter()) if done == total else None)
    ended = time.perf_counter()
    return marks["written"] - started, ended - started, report.to_dict()


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
    t_write, t_first, first = writer(store, items, DEFAULT_BATCH_SIZE)  # no index yet: written, then index built
    assert first["written"] == n, first
    t_index = t_first - t_write
    say(f"writer batch {DEFAULT_BATCH_SIZE}: {n / t_write:.0f} vectors/s written, index {t_index:.1f} s, "
        f"searchable after {t_first:.1f} s")
    _, t_again, again = writer(store, items, DEFAULT_BATCH_SIZE)  # the same file again: all unchanged
    assert again["unchanged"] == n, again

    sweep = {}
    for size in batch_sizes:
        reset(store, ids)
        t, _, rep = writer(store, items, size, create_index=False)
        assert rep["written"] == n, rep
        sweep[str(size)] = round(n / t, 1)
        say(f"writer batch {size}: {n / t:.0f} vectors/s written")

    reset(store, ids)
    t_one, _, rep = writer(store, items, DEFAULT_BATCH_SIZE, workers=1, create_index=False)
    assert rep["written"] == n, rep
    say(f"writer 1 session: {n / t_one:.0f} vectors/s")

    reset(store, ids, keep_index=True)
    _, t_online, online = writer(store, items, DEFAULT_BATCH_SIZE)  # the vector index stays online during writes
    assert online["written"] == n, online
    say(f"writer with the index online: {n / t_online:.0f} vectors/s")

    # The baseline's vectors need the same index to be searchable: its figure adds the index build measured above.
    base_searchable = n / (n / base_vps + t_index)
    return {
        "dims": dims,
        "write_vps": {"baseline_merge_per_item": round(base_vps, 1),
                      f"vector_writer_batch_{DEFAULT_BATCH_SIZE}": round(n / t_write, 1),
                      "vector_writer_1_session": round(n / t_one, 1)},
        "write_vps_by_batch_size": sweep,
        "searchable_vps": {"baseline_merge_per_item_then_index": round(base_searchable, 1),
                           "vector_writer_then_index": round(n / t_first, 1),
                           "vector_writer_index_online": round(n / t_online, 1)},
        "rerun_unchanged_vps": round(n / t_again, 1),
        "speedup_write": round((n / t_write) / base_vps, 2),
        "speedup_searchable": round((n / t_first) / base_searchable, 2),
        "seconds": {"baseline_write_per_1000": round(1000 / base_vps, 2), "writer_write": round(t_write, 2),
                    "index_build_after_writes": round(t_index, 2), "writer_until_searchable": round(t_first, 2),
                    "writer_index_online": round(t_online, 2), "rerun_unchanged": round(t_again, 2)},
        "payload_build_s_per_batch_of_2000": payload_seconds(vectors),
    }


def sessions_ab(store: Neo4jStore, ids: list[str], dims: int, reps: int) -> dict:
    """1 against 2 sessions at the default batch size, interleaved (1, 2, 1, 2, ...) so that the machine's load
    falls on both alike; writes only. The median of each is reported."""
    rng = np.random.default_rng(7)
    vectors = rng.standard_normal((len(ids), dims)).astype(np.float32)
    items = [{"id": i, "type": "recipe", "embedding": v} for i, v in zip(ids, vectors)]
    rates: dict[int, list[float]] = {1: [], 2: []}
    for _ in range(reps):
        for workers in (1, 2):
            reset(store, ids)
            t, _, rep = writer(store, items, DEFAULT_BATCH_SIZE, workers=workers, create_index=False)
            assert rep["written"] == len(ids), rep
            rates[workers].append(round(len(ids) / t, 1))
            print(f"[{dims}-d] {workers} session(s): {len(ids) / t:.0f} vectors/s", file=sys.stderr)
    return {"dims": dims, "n": len(ids), "batch_size": DEFAULT_BATCH_SIZE, "reps": reps,
            "vps": {"1_session": rates[1], "2_sessions": rates[2]},
            "median_vps": {"1_session": float(np.median(rates[1])), "2_sessions": float(np.median(rates[2]))}}


def index_ab(store: Neo4jStore, ids: list[str], dims: int, reps: int) -> dict:
    """Until searchable: vectors written then the index built (what VectorWriter does) against the index created
    first and kept online during the writes; interleaved so that the machine's load falls on both alike."""
    rng = np.random.default_rng(11)
    vectors = rng.standard_normal((len(ids), dims)).astype(np.float32)
    items = [{"id": i, "type": "recipe", "embedding": v} for i, v in zip(ids, vectors)]
    rates: dict[str, list[float]] = {"build_after": [], "online_during": []}
    for _ in range(reps):
        for way in rates:
            reset(store, ids)
            if way == "online_during":
                store.create_vector_index("recipe", dims)
            _, t, rep = writer(store, items, DEFAULT_BATCH_SIZE)
            assert rep["written"] == len(ids), rep
            rates[way].append(round(len(ids) / t, 1))
            print(f"[{dims}-d] index {way}: searchable at {len(ids) / t:.0f} vectors/s", file=sys.stderr)
    return {"dims": dims, "n": len(ids), "batch_size": DEFAULT_BATCH_SIZE, "reps": reps, "searchable_vps": rates,
            "median_searchable_vps": {k: float(np.median(v)) for k, v in rates.items()}}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=20000, help="vectors per dimension (20000)")
    parser.add_argument("--dims", default="384,1024", help="dimensions, comma-separated (384 MiniLM, 1024 Qwen3)")
    parser.add_argument("--batch-sizes", default="100,1000,2000,10000", help="batch sizes of the sweep")
    parser.add_argument("--baseline-n", type=int, default=3000, help="items for the one-query-per-item baseline")
    parser.add_argument("--sessions-ab", type=int, default=0, metavar="REPS",
                        help="only compare 1 and 2 sessions, interleaved REPS times each, at the first --dims "
                             "(result: bench/results/import-sessions.json)")
    parser.add_argument("--index-ab", type=int, default=0, metavar="REPS",
                        help="only compare index built after the writes vs online during them, interleaved REPS "
                             "times, at the first --dims (result: bench/results/import-index.json)")
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
    ids = recipe_ids(args.n)
    if args.sessions_ab:
        result = sessions_ab(store, ids, dims_list[0], args.sessions_ab)
        result.update(benchmark="import-sessions", load_average_at_start=load_start,
                      load_average_at_end=list(os.getloadavg()), neo4j_rust_ext=rust_extension(),
                      cpus=os.cpu_count(), when=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                      notes="VectorWriter writes only (no index), 1 vs 2 sessions interleaved; other processes "
                            "ran on the same cores (load averages)")
        output = args.output if args.output.name != "import.json" else args.output.with_name("import-sessions.json")
        output.write_text(json.dumps(result, indent=2) + "\n")
        store.close()
        if started_here:
            subprocess.run([str(ROOT / "scripts" / "neo4j.sh"), "stop"], env=bench_env(), check=False)
        med = result["median_vps"]
        print(f"import sessions ({args.n} x {dims_list[0]}-d, batch {DEFAULT_BATCH_SIZE}, {args.sessions_ab} reps, "
              f"load {load_start[0]:.1f}->{result['load_average_at_end'][0]:.1f}): 1 session {med['1_session']:.0f}"
              f"/s vs 2 sessions {med['2_sessions']:.0f}/s (ratio {med['1_session'] / med['2_sessions']:.2f})")
        return 0
    if args.index_ab:
        result = index_ab(store, ids, dims_list[0], args.index_ab)
        result.update(benchmark="import-index", load_average_at_start=load_start,
                      load_average_at_end=list(os.getloadavg()), neo4j_rust_ext=rust_extension(),
                      cpus=os.cpu_count(), when=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                      notes="seconds from the first write until the vector index is online and holds every vector; "
                            "online_during leaves out creating the empty index first (about a second); other processes ran on the "
                            "same cores (load averages)")
        output = args.output if args.output.name != "import.json" else args.output.with_name("import-index.json")
        output.write_text(json.dumps(result, indent=2) + "\n")
        store.close()
        if started_here:
            subprocess.run([str(ROOT / "scripts" / "neo4j.sh"), "stop"], env=bench_env(), check=False)
        med = result["median_searchable_vps"]
        print(f"import index ({args.n} x {dims_list[0]}-d, {args.index_ab} reps, load {load_start[0]:.1f}->"
              f"{result['load_average_at_end'][0]:.1f}): searchable {med['build_after']:.0f}/s building the index "
              f"after the writes vs {med['online_during']:.0f}/s with it online "
              f"(ratio {med['build_after'] / med['online_during']:.2f})")
        return 0
    runs = [bench_dims(store, ids, dims, batch_sizes, args.baseline_n) for dims in dims_list]
    version = store.query("CALL dbms.components() YIELD versions RETURN versions[0] AS v")[0]["v"]
    result = {
        "benchmark": "import",
        "n": args.n, "baseline_n": min(args.baseline_n, args.n), "default_batch_size": DEFAULT_BATCH_SIZE,
        "batch_sizes": batch_sizes, "runs": runs,
        "notes": "baseline: one auto-committed MERGE ... SET n.embedding = $list per item (its rate on the first "
                 "baseline_n items; its 'searchable' figure adds the index build measured for the writer); writer: "
                 "VectorWriter (UNWIND + db.create.setNodeVectorProperty, 2 sessions unless stated) as "
                 "import_embeddings runs it; 'searchable' includes creating the cosine vector index and waiting "
                 "until it is online; the batch-size sweep times the writes only. Other processes (test suites of "
                 "other developers) ran on the same 2 cores: see the load averages.",
        "load_average_at_start": load_start,
        "load_average_at_end": list(os.getloadavg()),
        "total_seconds": round(time.perf_counter() - began, 1),
        "neo4j": version, "neo4j_rust_ext": rust_extension(), "cpus": os.cpu_count(),
        "python": platform.python_version(), "machine": platform.machine(),
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    store.close()
    if started_here:
        subprocess.run([str(ROOT / "scripts" / "neo4j.sh"), "stop"], env=bench_env(), check=False)
    parts = []
    for run in runs:
        best = max(run["write_vps_by_batch_size"].items(), key=lambda kv: kv[1]) if run["write_vps_by_batch_size"] \
            else ("-", 0)
        parts.append(
            f"{run['dims']}-d: writer {run['write_vps'][f'vector_writer_batch_{DEFAULT_BATCH_SIZE}']:.0f}/s vs "
            f"{run['write_vps']['baseline_merge_per_item']:.0f}/s one MERGE per item ({run['speedup_write']}x), "
            f"searchable {run['searchable_vps']['vector_writer_then_index']:.0f}/s vs "
            f"{run['searchable_vps']['baseline_merge_per_item_then_index']:.0f}/s, index online "
            f"{run['searchable_vps']['vector_writer_index_online']:.0f}/s, best batch {best[0]} ({best[1]:.0f}/s)")
    print(f"import ({args.n} vectors, rust ext {result['neo4j_rust_ext']}, load {load_start[0]:.1f}->"
          f"{result['load_average_at_end'][0]:.1f}): " + "; ".join(parts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
