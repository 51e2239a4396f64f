"""Search benchmark: p50/p95 latency of ``GET /api/semantic-search/`` over 1,000 queries on loopback, with the query
embedding time shown apart from the Neo4j time, for the in-process query embedder and the remote one
(``BACKEND_QUERY_EMBEDDER=remote`` against ``embedding-console serve`` on loopback, same model, same CPU).

    python bench/search.py                       # 3,000 demo recipes, 1,000 queries (setup ~5-10 min on 2 cores)
    python bench/search.py --recipes 11751 --queries 1000 --work-dir /tmp/bench-search   # keep the data for re-runs
    python bench/search.py --index-size 100000 --clients 50   # the index filled to 100k vectors; 50 concurrent clients

Setup, all with the project's own commands against a private Neo4j (own NEO4J_HOME and port): ``load_demo_data``,
``export_data_for_embeddings --type recipe``, the console's generator with the shipped MiniLM, ``import_embeddings``.
Then the real backend (gunicorn with backend/gunicorn.conf.py, DJANGO_DEBUG=0) answers 1,000 distinct queries (titles
of demo recipes, lower-cased), one client, one request at a time.

The API returns no timing fields, so the parts are timed in-process on the same queries:
- ``embed``: ``Embedder.encode_query([q])`` with the same model (what ``embedding_search.query_embedding.local_vector`` does);
  ``embed_remote``: one ``POST /v1/embeddings`` to the same server the remote backend uses;
- ``neo4j``: what ``embedding_search.api.semantic_search`` asks Neo4j per request (``query_embedding.on_current_space``: the
  cached space, checked by the vector search statement itself, one round trip), and
  ``vector_query`` alone (the bare ``db.index.vector.queryNodes`` call) as the plain baseline.
HTTP minus (embed + neo4j) is Django/DRF and loopback overhead.

``--index-size N`` fills the recipe index up to N vectors after the real ones: filler Recipe nodes whose vectors are
real recipe vectors plus Gaussian noise (cosine ~0.9 to their source, re-normalised), written by the project's
VectorWriter with the same model name, so the queries land among them as among real recipes. ``--clients C`` then
sends the same queries from C concurrent clients (threads of this process, on the same two cores as the server) and
reports throughput and the latency each client saw, local and remote. The backends run under gunicorn with
backend/gunicorn.conf.py (2 gthread workers), the query-vector cache off (``BACKEND_QUERY_CACHE_SIZE=0``; the queries
are distinct anyway). Writes bench/results/search.json (with the load average before and after); one-line summary.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "backend"))
from bench.common import (  # noqa: E402
    log,
    percentile,
    private_neo4j,
    run_stage,
    demo_rows,
    summary,
    write_result,
)

# The backend's throttle (300 searches a minute per address by default) is off: this one client sends 1,000 queries.
SPACE_MAX_AGE_S = 30.0  # the backend's BACKEND_SPACE_MAX_AGE_S (default), for the in-process Neo4j timing
ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
       "BACKEND_THROTTLE_SEARCH": "off", "BACKEND_QUERY_CACHE_SIZE": "0"}


def stats(values: list[float]) -> dict:
    ms = [v * 1000 for v in values]
    return {"n": len(ms), "p50_ms": round(percentile(ms, 50), 2), "p95_ms": round(percentile(ms, 95), 2),
            "mean_ms": round(sum(ms) / len(ms), 2), "max_ms": round(max(ms), 2)}


def queries(n: int, skip: int) -> list[str]:
    """Distinct search texts: lower-cased titles of the demo recipes after the first `skip` rows."""
    out, seen = [], set()
    for i, row in enumerate(demo_rows()):
        title = " ".join((row["Title"] or "").split()).lower()
        if i < skip or not title or title in seen:
            continue
        seen.add(title)
        out.append(title)
        if len(out) == n:
            break
    return out


def manage(*args: str, env: dict) -> str:
    result = run_stage([sys.executable, str(ROOT / "backend" / "manage.py"), *args], env={**ENV, **env}, cwd=ROOT)
    result.check("manage.py " + " ".join(args))
    return result.stdout


def setup(env: dict, work: Path, recipes: int) -> dict:
    """Load, export, embed, import (skipped when the graph already holds embedded recipes)."""
    import neo4j

    from console.generation.devmodels import minilm_path

    with neo4j.GraphDatabase.driver(env["NEO4J_URI"], auth=(env["NEO4J_USER"], env["NEO4J_PASSWORD"])) as driver:
        have = driver.execute_query("MATCH (r:Recipe) WHERE r.embedding IS NOT NULL RETURN count(r) AS c"
                                    ).records[0]["c"]
    timings = {}
    if have >= recipes:
        log(f"reusing {have} embedded recipes in {work}")
        return {"reused": have}
    t0 = time.perf_counter()
    manage("load_demo_data", "--limit", str(recipes), "--verbosity", "0", env=env)
    timings["load_demo_data_s"] = round(time.perf_counter() - t0, 1)
    manage("export_data_for_embeddings", "--type", "recipe", "--format", "jsonl", "--output-dir",
           str(work / "export"), "--verbosity", "0", env=env)
    t0 = time.perf_counter()
    run_stage([sys.executable, str(ROOT / "external_embedding_generator.py"), "--input-dir", str(work / "export"),
               "--output-dir", str(work / "embeddings"), "--model", str(minilm_path()), "--batch-size", "32",
               "--format", "jsonl", "--device", "cpu", "--quiet"], env=ENV, cwd=ROOT).check("generate")
    timings["generate_s"] = round(time.perf_counter() - t0, 1)
    t0 = time.perf_counter()
    timings["import"] = manage("import_embeddings", "--embedding-file",
                               str(work / "embeddings" / "embeddings_recipes.jsonl"), "--verbosity", "0",
                               env=env).strip().splitlines()[0]
    timings["import_s"] = round(time.perf_counter() - t0, 1)
    log(f"setup: {timings}")
    return timings


def fill_index(env: dict, size: int, seed: int = 0) -> dict:
    """Add filler recipes until the recipe index holds `size` vectors (skipped when it already does)."""
    import numpy as np

    from console.sinks.neo4j.settings import Neo4jSettings
    from console.sinks.neo4j.store import Neo4jStore
    from console.sinks.neo4j.writer import VectorWriter

    with Neo4jStore(Neo4jSettings.from_env(env)) as store:
        have = store.query("MATCH (r:Recipe) WHERE r.embedding IS NOT NULL RETURN count(r) AS c")[0]["c"]
        if have >= size:
            return {"vectors": have, "filler_added": 0}
        rows = store.query("MATCH (r:Recipe) WHERE r.embedding IS NOT NULL RETURN r.embedding AS v")
        missing = size - len(rows)
        real = np.asarray([r["v"] for r in rows], dtype=np.float32)
        rng = np.random.default_rng(seed)
        noisy = real[rng.integers(0, len(real), missing)]
        noisy += rng.normal(0, 0.025, noisy.shape).astype(np.float32)  # 384-d: cosine ~0.9 to the source
        noisy /= np.linalg.norm(noisy, axis=1, keepdims=True)
        ids = [f"filler-{i}" for i in range(missing)]
        for start in range(0, missing, 10000):
            store.query("UNWIND $ids AS id MERGE (r:Recipe {id: id}) ON CREATE SET r.title = 'filler ' + id",
                        ids=ids[start:start + 10000])
        model = store.embedding_space("recipe")["model"]
        t0 = time.perf_counter()
        report = VectorWriter(store, model=model).write(
            ({"id": i, "type": "recipe", "embedding": v} for i, v in zip(ids, noisy)), total=missing)
        took = time.perf_counter() - t0
    log(f"index filled: {len(rows)} real + {report.written} filler vectors in {took:.0f} s")
    return {"vectors": len(rows) + report.written, "filler_added": report.written, "filler_import_s": round(took, 1)}


def concurrent_http(url: str, texts: list[str], k: int, clients: int) -> dict:
    """`clients` threads take the queries from one shared list; each request timed as its client saw it."""
    from concurrent.futures import ThreadPoolExecutor

    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        parts = list(pool.map(lambda chunk: http_latencies(url, chunk, k), [texts[i::clients] for i in range(clients)]))
    wall = time.perf_counter() - t0
    times = [t for done, _ in parts for t in done]
    problems = [p for _, failed in parts for p in failed]
    return {"clients": clients, "wall_s": round(wall, 2), "requests_per_s": round(len(times) / wall, 1),
            "latency": stats(times), "errors": len(problems), "error_examples": problems[:5]}


def http_latencies(url: str, texts: list[str], k: int) -> tuple[list[float], list[str]]:
    times, problems = [], []
    for q in texts:
        path = f"{url}/api/semantic-search/?q={urllib.parse.quote(q)}&type=recipe&k={k}"
        t0 = time.perf_counter()
        try:
            with urllib.request.urlopen(path, timeout=60) as response:
                body = json.loads(response.read())
            if len(body["results"]) != k:
                problems.append(f"{q}: {len(body['results'])} results")
        except Exception as exc:  # noqa: BLE001 - reported, not fatal
            problems.append(f"{q}: {exc}")
            continue
        times.append(time.perf_counter() - t0)
    return times, problems


def remote_embed_times(server: str, model: str, texts: list[str]) -> list[float]:
    """One ``POST /v1/embeddings`` per query on a keep-alive session (what the remote backend sends)."""
    import requests

    times = []
    with requests.Session() as session:
        for q in texts:
            t0 = time.perf_counter()
            response = session.post(f"{server}/v1/embeddings", json={"model": model, "input": [q]}, timeout=60)
            response.raise_for_status()
            response.json()["data"][0]["embedding"]
            times.append(time.perf_counter() - t0)
    return times


def in_process(env: dict, texts: list[str], k: int, server: str | None = None, backend: str = "torch",
               quantize: str = "none") -> dict:
    from console.generation.engine import Embedder
    from console.sinks.neo4j.settings import Neo4jSettings
    from console.sinks.neo4j.store import Neo4jStore
    from embedding_search.query_embedding import on_current_space
    from embedding_search.search import vector_hits

    with Neo4jStore(Neo4jSettings.from_env(env)) as store:
        space = store.embedding_space("recipe")
        embedder = Embedder(space["model"], device="cpu", backend=backend, quantize=quantize)
        embedder.encode_query(texts[:5])  # warm-up
        embed, api_neo4j, bare = [], [], []
        bare_query = ("CALL db.index.vector.queryNodes($index, $k, $vector) YIELD node, score "
                      "RETURN node.id AS id, coalesce(node.title, node.name) AS title, score")
        for q in texts:
            t0 = time.perf_counter()
            vec = embedder.encode_query([q])[0]
            t1 = time.perf_counter()
            on_current_space(store, "recipe", lambda space: vector_hits(store, "recipe", vec, k, space=space),
                             SPACE_MAX_AGE_S)
            t2 = time.perf_counter()
            store.query(bare_query, index=space["index_name"], k=k, vector=vec.tolist())
            t3 = time.perf_counter()
            embed.append(t1 - t0)
            api_neo4j.append(t2 - t1)
            bare.append(t3 - t2)
    parts = {"embed": stats(embed), "neo4j_as_the_api_does": stats(api_neo4j), "vector_query_only": stats(bare),
             "model": space["model"]}
    if server:
        parts["embed_remote"] = stats(remote_embed_times(server, space["model"], texts))
    return parts


def backend_latencies(env: dict, work: Path, texts: list[str], k: int, name: str,
                      clients: int = 0) -> tuple[list[float], list[str], dict | None]:
    """Sequential latencies of one client, then (with `clients`) the concurrent run, on the same server."""
    from recipes.testing import run_backend

    with run_backend({**ENV, **env}, log_path=work / f"backend-{name}.log", wait_s=120) as url:
        http_latencies(url, texts[:10], k)  # warm-up: loads the query model
        log(f"{name}: sending {len(texts)} queries to {url}/api/semantic-search/")
        times, problems = http_latencies(url, texts, k)
        crowd = None
        if clients:
            concurrent_http(url, texts[:4 * clients], k, clients)  # warm-up: every worker thread loads its model
            log(f"{name}: {len(texts)} queries from {clients} concurrent clients")
            crowd = concurrent_http(url, texts, k, clients)
        return times, problems, crowd


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipes", type=int, default=3000, help="demo recipes loaded and embedded (3000)")
    parser.add_argument("--queries", type=int, default=1000, help="queries sent (1000)")
    parser.add_argument("--output", default="search", help="result name: bench/results/<name>.json (search)")
    parser.add_argument("--k", type=int, default=10, help="results per query (10)")
    parser.add_argument("--index-size", type=int, default=0,
                        help="fill the recipe index with filler vectors up to this many (default: the recipes only)")
    parser.add_argument("--clients", type=int, default=0, help="also send the queries from this many concurrent "
                        "clients (default 0: one client only)")
    parser.add_argument("--query-backend", default="torch/none", metavar="BACKEND/QUANTIZE",
                        help="the backend's in-process query embedder and the served one (BACKEND_QUERY_BACKEND / "
                        "BACKEND_QUERY_QUANTIZE; serve --backend/--quantize), e.g. openvino/int8 (default torch/none)")
    parser.add_argument("--work-dir", type=Path, default=None,
                        help="keep the Neo4j data and files here for re-runs (default: a temporary folder)")
    args = parser.parse_args(argv)
    from console.generation.devmodels import minilm_path
    from recipes.testing import run_embedding_server

    backend, _, quantize = args.query_backend.partition("/")
    quantize = quantize or "none"
    ENV.update(BACKEND_QUERY_BACKEND=backend, BACKEND_QUERY_QUANTIZE=quantize)
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="bench-search-"))
    texts = queries(args.queries, skip=args.recipes + 2000)
    load_before = [round(x, 2) for x in os.getloadavg()]
    try:
        with private_neo4j(work / "neo4j") as env:
            setup_info = setup(env, work, args.recipes)
            if args.index_size:
                setup_info["index"] = fill_index(env, args.index_size)
            http, problems, crowd = backend_latencies(env, work, texts, args.k, "local", args.clients)
            with run_embedding_server(str(minilm_path()), "--backend", backend, "--quantize", quantize,
                                      log_path=work / "serve.log") as server:
                remote_env = {**env, "BACKEND_QUERY_EMBEDDER": "remote", "BACKEND_EMBEDDINGS_URL": server}
                http_remote, problems_remote, crowd_remote = backend_latencies(remote_env, work, texts, args.k,
                                                                               "remote", args.clients)
                log("timing the parts in-process")
                parts = in_process(env, texts, args.k, server, backend, quantize)
    finally:
        if args.work_dir is None:
            shutil.rmtree(work, ignore_errors=True)
    result = {
        "what": "GET /api/semantic-search/ (k results, one client, sequential) on loopback, gunicorn (2 gthread "
                "workers); query embedded in the backend (local) or by embedding-console serve on loopback (remote, "
                "same CPU); in-process split of the same queries into query embedding (MiniLM, CPU) and Neo4j time",
        "query_backend": f"{backend}/{quantize}", "recipes_in_graph": args.recipes, "index_size": args.index_size or args.recipes, "queries": len(texts), "k": args.k, "setup": setup_info,
        "load_avg_before": load_before, "load_avg_after": [round(x, 2) for x in os.getloadavg()],
        "http": stats(http), "errors": len(problems), "error_examples": problems[:5],
        "http_remote": stats(http_remote), "errors_remote": len(problems_remote),
        "error_examples_remote": problems_remote[:5], **parts,
    }
    if args.clients:
        result["concurrent_local"], result["concurrent_remote"] = crowd, crowd_remote
    e, n, h = result["embed"], result["neo4j_as_the_api_does"], result["http"]
    result["http_minus_parts_p50_ms"] = round(h["p50_ms"] - e["p50_ms"] - n["p50_ms"], 2)
    result["remote_adds_p50_ms"] = round(result["http_remote"]["p50_ms"] - h["p50_ms"], 2)
    write_result(args.output, result)
    r = result["http_remote"]
    summary(f"search ({args.recipes} recipes, {len(http)} queries, {len(problems)}+{len(problems_remote)} errors): "
            f"HTTP p50 {h['p50_ms']:.0f} ms / p95 {h['p95_ms']:.0f} ms local, {r['p50_ms']:.0f} / {r['p95_ms']:.0f} ms "
            f"remote; query embedding p50 {e['p50_ms']:.0f} ms (remote call {result['embed_remote']['p50_ms']:.0f} "
            f"ms); Neo4j as "
            f"the API asks it p50 {n['p50_ms']:.1f} ms (bare vector query p50 "
            f"{result['vector_query_only']['p50_ms']:.1f} ms)")
    if args.clients:
        summary(f"{args.clients} concurrent clients: {crowd['requests_per_s']} req/s local (p95 "
                f"{crowd['latency']['p95_ms']:.0f} ms), {crowd_remote['requests_per_s']} req/s remote (p95 "
                f"{crowd_remote['latency']['p95_ms']:.0f} ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
