"""Benchmark: vectors/s of the embeddings import (console.neo4j_store.VectorWriter, which import_embeddings and
the console's push use) against one ``MERGE ... SET`` query per item, over the same data, in one run.

    python bench/import.py [--n 20000] [--dims 1024] [--batch-size 2000]

It starts its own Neo4j (scripts/neo4j.sh, home ~/.cache/embedding-console/neo4j-bench, port 7699) and empties it,
so no developer data is touched; pass --use-env to use NEO4J_* instead (refused unless that database is empty).
Ids are the real recipe ids of ../shared/data repeated with a suffix; vectors are seeded random unit vectors.
Writes bench/results/import.json and prints a one-line summary.
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

from console.neo4j_store import Neo4jSettings, Neo4jStore, VectorWriter  # noqa: E402

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


def writer(store: Neo4jStore, items: list[dict], batch_size: int) -> tuple[float, float, dict]:
    """VectorWriter.write as import_embeddings calls it; returns (seconds until the last batch is committed,
    seconds until the call returns, i.e. with a missing index created and online, report)."""
    marks = {}
    started = time.perf_counter()
    report = VectorWriter(store, model=MODEL).write(
        items, batch_size=batch_size, total=len(items),
        progress=lambda done, total: marks.__setitem__("written", time.perf_counter()) if done == total else None)
    ended = time.perf_counter()
    return marks["written"] - started, ended - started, report.to_dict()


def build_index(store: Neo4jStore, dims: int) -> float:
    started = time.perf_counter()
    store.create_vector_index("recipe", dims)
    return time.perf_counter() - started


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=20000, help="vectors (20000)")
    parser.add_argument("--dims", type=int, default=1024, help="dimensions (1024, Qwen3-Embedding-0.6B)")
    parser.add_argument("--batch-size", type=int, default=2000)
    parser.add_argument("--use-env", action="store_true", help="use NEO4J_* (an empty database) instead")
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "import.json")
    args = parser.parse_args(argv)

    started_here = not args.use_env and subprocess.run(
        [str(ROOT / "scripts" / "neo4j.sh"), "status"], env=bench_env(), capture_output=True).returncode != 0
    settings = Neo4jSettings.from_env() if args.use_env else start_own_server()
    store = Neo4jStore(settings)
    if args.use_env and store.query("MATCH (n) RETURN count(n) AS n")[0]["n"]:
        print(f"bench/import.py: the database at {settings.uri} is not empty; use an empty one", file=sys.stderr)
        return 2
    ids = recipe_ids(args.n)
    rng = np.random.default_rng(42)
    vectors = rng.standard_normal((args.n, args.dims)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    items = [{"id": i, "type": "recipe", "embedding": v} for i, v in zip(ids, vectors)]

    reset(store, ids)
    t_base = baseline(store, items)
    t_base_index = build_index(store, args.dims)  # to be searchable, the baseline's vectors need the index too
    print(f"baseline: {args.n / t_base:.0f} vectors/s written, index {t_base_index:.1f} s", file=sys.stderr)

    reset(store, ids)
    t_write, t_first, first = writer(store, items, args.batch_size)  # no index yet: written, then index built
    assert first["written"] == args.n, first
    print(f"writer: {args.n / t_write:.0f} vectors/s written, searchable after {t_first:.1f} s", file=sys.stderr)
    _, t_again, again = writer(store, items, args.batch_size)  # the same file again: all unchanged
    assert again["unchanged"] == args.n, again

    reset(store, ids, keep_index=True)
    _, t_online, online = writer(store, items, args.batch_size)  # the vector index stays online during the writes
    assert online["written"] == args.n, online
    print(f"writer (index online): {args.n / t_online:.0f} vectors/s", file=sys.stderr)

    version = store.query("CALL dbms.components() YIELD versions RETURN versions[0] AS v")[0]["v"]
    try:
        import neo4j_rust_ext  # noqa: F401
        rust = True
    except ImportError:
        rust = False
    result = {
        "benchmark": "import",
        "n": args.n, "dims": args.dims, "batch_size": args.batch_size,
        "write_vps": {"baseline_merge_per_item": round(args.n / t_base, 1), "vector_writer": round(args.n / t_write, 1)},
        "searchable_vps": {"baseline_merge_per_item_then_index": round(args.n / (t_base + t_base_index), 1),
                           "vector_writer_then_index": round(args.n / t_first, 1),
                           "vector_writer_index_online": round(args.n / t_online, 1)},
        "rerun_unchanged_vps": round(args.n / t_again, 1),
        "speedup_write": round(t_base / t_write, 2),
        "speedup_searchable": round((t_base + t_base_index) / t_first, 2),
        "seconds": {"baseline_write": round(t_base, 2), "baseline_index": round(t_base_index, 2),
                    "writer_write": round(t_write, 2), "writer_until_searchable": round(t_first, 2),
                    "writer_index_online": round(t_online, 2), "rerun_unchanged": round(t_again, 2)},
        "notes": "baseline: one auto-committed MERGE ... SET n.embedding = $list per item; writer: VectorWriter "
                 "(UNWIND + db.create.setNodeVectorProperty, 2 sessions) as import_embeddings runs it; "
                 "'searchable' includes creating the cosine vector index and waiting until it is online",
        "load_average_at_end": list(os.getloadavg()),
        "neo4j": version, "neo4j_rust_ext": rust, "cpus": os.cpu_count(), "python": platform.python_version(),
        "machine": platform.machine(), "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    store.close()
    if started_here:
        subprocess.run([str(ROOT / "scripts" / "neo4j.sh"), "stop"], env=bench_env(), check=False)
    print(f"import: VectorWriter {result['write_vps']['vector_writer']:.0f} vectors/s written vs "
          f"{result['write_vps']['baseline_merge_per_item']:.0f}/s one MERGE per item ({result['speedup_write']}x); "
          f"searchable (incl. vector index) {result['searchable_vps']['vector_writer_then_index']:.0f}/s vs "
          f"{result['searchable_vps']['baseline_merge_per_item_then_index']:.0f}/s ({result['speedup_searchable']}x); "
          f"index online during writes {result['searchable_vps']['vector_writer_index_online']:.0f}/s; unchanged "
          f"re-run {result['rerun_unchanged_vps']:.0f}/s ({args.n} x {args.dims}-d, batch {args.batch_size})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
