#!/usr/bin/env python3
"""Search quality on the demo data: keyword (BM25), semantic (MiniLM) and hybrid (their fusion) with the shipped query set.

    python bench/evaluate.py [--limit 1800] [--work /tmp/evaluate-demo] [--model PATH] [--k 10]
                             [--fusions weighted-rrf,rrf,convex] [--live]

Takes the first ``--limit`` demo recipes (evenly from the six files, as ``load_demo_data --limit`` does; 0 = all
11,239), writes them as export records (the backend's text: title, first steps, ingredients, categories), embeds
them with the console's CLI (skipped when ``--work`` already holds that run), restricts the shipped
data/queries/recipes.jsonl to those recipes (judgements of other recipes dropped; queries left without a relevant
recipe dropped) and scores the three modes with console.search.evaluate, as the console's Evaluate view does, hybrid
once per fusion of ``--fusions`` (all of console.search.fusion.FUSIONS by default), overall and per kind of query.
``--live`` also loads the same recipes into a private Neo4j (its own folder and port), imports the run and scores the live
search in the three modes with ``manage.py evaluate_search`` (Lucene keyword search with its fuzzy terms, the
quantized vector index, hybrid in one Cypher statement with the default fusion). Writes
bench/results/evaluate-demo.json, with the machine's load before and after.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DEMO_DATA, RESULTS, ROOT, machine_info  # noqa: E402

sys.path.insert(0, str(ROOT / "backend"))
QUERIES = ROOT / "data" / "queries" / "recipes.jsonl"


def export(limit: int, folder: Path) -> Path:
    from recipes.demo_data import read_recipes

    folder.mkdir(parents=True, exist_ok=True)
    rows = [r.row() for r in read_recipes(DEMO_DATA, limit=limit or None)]
    records = [{"id": r["id"], "type": "recipe", "title": r["title"], "text": r["text"]} for r in rows]
    path = folder / "recipes.json"
    path.write_text(json.dumps(records, ensure_ascii=False), encoding="utf-8")
    return path


def restricted(query_set, ids: set[str]):
    """The query set with judgements of recipes outside ``ids`` dropped, and queries left with none dropped."""
    kept = {q: {d: g for d, g in docs.items() if d in ids} for q, docs in query_set.qrels.items()}
    dropped = [q for q, docs in kept.items() if not docs]
    query_set.qrels = {q: docs for q, docs in kept.items() if docs}
    query_set.queries = {q: t for q, t in query_set.queries.items() if q in query_set.qrels}
    if dropped:
        query_set.notes.append(f"{len(dropped)} queries have no relevant recipe in this subset: {', '.join(dropped)}")
    return query_set


def live(limit: int, run_dir: Path, queries, work: Path, k: int) -> dict:
    """The same query set against the live search of a private Neo4j holding the same recipes and vectors."""
    from common import private_neo4j
    from recipes.testing import manage

    from console.files.embfiles import output_path

    queries_file = work / "queries-subset.jsonl"
    queries_file.write_text("".join(json.dumps({"id": q, "kind": queries.kinds.get(q, "query"), "query": t,
                                                "relevant": sorted(queries.qrels[q])}) + "\n"
                                    for q, t in queries.queries.items()), encoding="utf-8")
    out = work / "live.json"
    with private_neo4j(work / "neo4j", heap="512m", pagecache="256m") as env:
        t0 = time.monotonic()
        manage("load_demo_data", "--limit", str(limit or 100_000), "--verbosity", "0", env=env)
        manage("import_embeddings", "--embedding-file", str(output_path(run_dir, "recipe", "json")), "--verbosity",
               "0", env=env)
        proc = manage("evaluate_search", "--queries", str(queries_file), "--modes", "keyword,semantic,hybrid", "--k",
                      str(k), "--output", str(out), env=env)
    print(proc.stdout)
    result = json.loads(out.read_text(encoding="utf-8"))
    result.pop("per_query", None)
    return dict(result, elapsed_s=round(time.monotonic() - t0, 1))


def main(argv=None) -> int:
    from console.cli import main as cli
    from console.generation.devmodels import minilm_path
    from console.files.embfiles import output_path
    from console.generation.engine import Embedder
    from console.search.evaluate import evaluate_console, load_run, query_encoder
    from console.search.fusion import FUSIONS, check_fusion
    from console.search.querysets import read_query_set

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=1800, help="demo recipes to use (0 = all 11,239)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/evaluate-demo"))
    parser.add_argument("--model", default=None, help="sentence-transformers model (default: the shipped MiniLM)")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--fusions", default=",".join(FUSIONS), help="hybrid's fusions to score (comma-separated)")
    parser.add_argument("--live", action="store_true", help="also score the live search of a private Neo4j")
    args = parser.parse_args(argv)
    fusions = [check_fusion(f) for f in args.fusions.split(",") if f.strip()]
    model = args.model or str(minilm_path())
    export_dir, run_dir = args.work / f"export-{args.limit}", args.work / f"run-{args.limit}"
    embedding_file = output_path(run_dir, "recipe", "npy")
    generate_s = None
    if not embedding_file.exists():
        export(args.limit, export_dir)
        t0 = time.monotonic()
        code = cli(["generate", "--input-dir", str(export_dir), "--output-dir", str(run_dir), "--model", model,
                    "--device", "cpu", "--batch-size", "16", "--format", "npy,json", "--quiet"])
        if code != 0:
            return code
        generate_s = round(time.monotonic() - t0, 1)
    run = load_run(embedding_file, f"minilm-{args.limit}")
    query_set = restricted(read_query_set(QUERIES), set(run.ids))
    t0 = time.monotonic()
    encoder = query_encoder(Embedder(run.meta.get("model") or model, dimensions=run.meta.get("dimensions")))
    result = evaluate_console(query_set, [run], ["keyword", "semantic", "hybrid"], args.k, [encoder],
                              fusions=fusions)
    ev = result.evaluation
    print(ev.table())
    out = {
        "name": "evaluate-demo", "machine": machine_info(), "recipes": len(run.ids), "limit": args.limit,
        "model": run.meta.get("model"), "dimensions": int(run.vectors.shape[1]), "query_set": str(QUERIES.relative_to(ROOT)), "generate_s": generate_s,
        "evaluate_s": round(time.monotonic() - t0, 1),
        "keyword": "BM25 (bm25s) over the export text; the live backend's keyword search is Lucene's",
        "semantic": "exact cosine over the run's vectors, queries with the model's query prompt",
        "hybrid": "console.search.fusion.fuse of the keyword and semantic rankings, each branch_depth(k) = max(2k, 20) "
                  "deep, once per fusion (the column's name); live: the backend's hybrid search with the default "
                  "fusion (one Cypher statement)",
        "fusions": fusions,
        "evaluation": ev.to_dict(),
        "keyword_vs_semantic_top_k_overlap_mean": (sum(r["overlap"] for r in result.overlap) / len(result.overlap)
                                                   if result.overlap else None),
    }
    if args.live:
        out["live"] = live(args.limit, run_dir, query_set, args.work, args.k)
    out["load_avg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    RESULTS.mkdir(parents=True, exist_ok=True)
    target = RESULTS / "evaluate-demo.json"
    target.write_text(json.dumps(out, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"Wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
