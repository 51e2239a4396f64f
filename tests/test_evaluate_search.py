"""`manage.py evaluate_search` over the live search of the real test Neo4j (300 demo recipes embedded with MiniLM and
imported), against the console's evaluation of the same vectors: the semantic figures must be the same. And each
kind of bad input gets its message."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "backend"))
from conftest import empty_database  # noqa: E402
from recipes.testing import manage  # noqa: E402

from console.files.embfiles import output_path, read_embeddings  # noqa: E402


@pytest.fixture(scope="module")
def live(neo4j_driver, neo4j_settings, neo4j_env, tmp_path_factory, minilm_path):
    """300 demo recipes loaded, exported, embedded with MiniLM and imported; the shipped query set restricted to
    them (judgements of other recipes dropped, queries left without one dropped)."""
    empty_database(neo4j_driver, neo4j_settings["database"])
    base = tmp_path_factory.mktemp("evaluate")
    manage("load_demo_data", "--limit", "300", "--verbosity", "0", env=neo4j_env)
    manage("export_data_for_embeddings", "--output-dir", str(base / "export"), "--type", "recipe", "--verbosity",
           "0", env=neo4j_env)
    subprocess.run([sys.executable, str(ROOT / "external_embedding_generator.py"), "--input-dir", str(base / "export"),
                    "--output-dir", str(base / "emb"), "--model", str(minilm_path), "--batch-size", "32",
                    "--device", "cpu", "--quiet"], check=True, capture_output=True, text=True)
    embeddings = output_path(base / "emb", "recipe", "json")
    manage("import_embeddings", "--embedding-file", str(embeddings), "--verbosity", "0", env=neo4j_env)
    # Neo4j 5.26 quantizes a vector index by default (its scores differ from the exact cosine by ~0.002, enough to
    # swap near ties), so that the live search ranks the same vectors as the console, the index is rebuilt without.
    db = neo4j_settings["database"]
    neo4j_driver.execute_query("DROP INDEX recipe_embedding", database_=db)
    neo4j_driver.execute_query(
        "CREATE VECTOR INDEX recipe_embedding FOR (n:Recipe) ON (n.embedding) OPTIONS {indexConfig: "
        "{`vector.dimensions`: 384, `vector.similarity_function`: 'cosine', `vector.quantization.enabled`: false}}",
        database_=db)
    neo4j_driver.execute_query("CALL db.awaitIndex('recipe_embedding', 300)", database_=db)
    ids = {item.id for item in read_embeddings(embeddings)}
    lines = []
    for line in (ROOT / "data" / "queries" / "recipes.jsonl").read_text(encoding="utf-8").splitlines():
        query = json.loads(line)
        query["relevant"] = [i for i in query["relevant"] if i in ids]
        if query["relevant"]:
            lines.append(json.dumps(query))
    queries = base / "queries.jsonl"
    queries.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return {"base": base, "embeddings": embeddings, "queries": queries, "env": neo4j_env, "count": len(lines)}


def test_the_command_and_the_console_give_the_same_semantic_figures(live, minilm_path, neo4j_settings):
    from console.generation.engine import Embedder
    from console.search.evaluate import evaluate_console, load_run, query_encoder
    from console.search.querysets import read_query_set

    out = live["base"] / "live.json"
    proc = manage("evaluate_search", "--queries", str(live["queries"]), "--modes", "keyword,semantic,hybrid", "--k",
                  "10", "--output", str(out), env=live["env"])
    command = json.loads(out.read_text())
    assert command["modes"] == ["keyword", "semantic", "hybrid"] and command["queries"] == live["count"] >= 20
    assert f"queries.jsonl: {live['count']} queries, k=10" in proc.stdout
    assert "semantic vs keyword, ndcg@10: " in proc.stdout and f"Wrote {out}" in proc.stdout
    assert {r["metric"] for r in command["comparisons"]} == {"ndcg@10", "recall@10", "mrr@10", "precision@10"}

    run = load_run(live["embeddings"])
    console = evaluate_console(read_query_set(live["queries"]), [run], ["semantic"], 10,
                               [query_encoder(Embedder(str(minilm_path), device="cpu"))]).evaluation
    # The live search walks an HNSW graph (approximate even unquantized): on a query far from every recipe (an English
    # "cheese omelette" over Indonesian texts) it may miss an item the exact ranking has. Vectors, texts or prompts
    # that differed between the console and the backend would change most queries; the walk changes a few at most.
    allowed = max(1, round(0.02 * live["count"]))
    for metric in console.metrics:
        ours = console.per_query["semantic"][metric]
        theirs = command["per_query"]["semantic"][metric]
        assert ours.keys() == theirs.keys()
        differ = [q for q in ours if abs(ours[q] - theirs[q]) > 1e-6]
        assert len(differ) <= allowed, (metric, differ)
        if not differ:
            assert console.scores["semantic"][metric] == pytest.approx(command["scores"]["semantic"][metric],
                                                                       abs=1e-9)
    assert 0 < command["scores"]["semantic"]["ndcg@10"] <= 1 and 0 < command["scores"]["keyword"]["ndcg@10"] <= 1
    check_hybrid_is_the_shared_rrf(command, read_query_set(live["queries"]), neo4j_settings,
                                   query_encoder(Embedder(str(minilm_path), device="cpu")))


def check_hybrid_is_the_shared_rrf(command: dict, query_set, neo4j_settings, encode) -> None:
    """The command's hybrid figures are those of console.search.evaluate.fused_run (the Evaluate view's fusion) over the
    live keyword and semantic searches, each branch_depth(10) deep: the backend and the console fuse alike. (The
    console's own keyword ranker is BM25 over the texts, not Lucene, so its hybrid figures differ from the live
    ones; the fusion is what is shared.)"""
    from embedding_search.search import keyword_search, vector_search

    from console.search.evaluate import evaluate_runs, fused_run
    from console.search.fusion import branch_depth
    from console.sinks.neo4j.settings import Neo4jSettings
    from console.sinks.neo4j.store import Neo4jStore

    depth, qids = branch_depth(10), list(query_set.queries)
    vectors = encode([query_set.queries[q] for q in qids])
    store = Neo4jStore(Neo4jSettings.from_mapping(neo4j_settings))
    try:
        keyword = {q: {h["id"]: h["score"] for h in keyword_search(store, query_set.queries[q], "recipe", depth)}
                   for q in qids}
        semantic = {q: {h["id"]: h["score"] for h in vector_search(store, "recipe", vectors[i], depth)}
                    for i, q in enumerate(qids)}
    finally:
        store.close()
    ours = evaluate_runs(query_set, {"hybrid": fused_run(keyword, semantic, 10)}, 10)
    for metric in ours.metrics:
        assert ours.scores["hybrid"][metric] == pytest.approx(command["scores"]["hybrid"][metric], abs=1e-9), metric
    assert command["scores"]["hybrid"]["ndcg@10"] > 0


@pytest.mark.parametrize("case,args,message", [
    ("unknown mode", ["--modes", "keyword,fuzzy"],
     "--modes: unknown mode 'fuzzy': choose from keyword, semantic, hybrid"),
    ("bad k", ["--k", "0"], "--k must be a whole number from 1 to 100, not 0"),
    ("empty set", ["--queries", "{empty}"], "empty.jsonl: the query set is empty"),
    ("wrong format", ["--queries", "{export}"],
     'export.jsonl, line 1: neither a simple query line ("query", "relevant") nor a BEIR query ("_id", "text")'),
    ("unknown ids", ["--queries", "{unknown}"],
     "unknown.jsonl, line 2: query 'q2' judges 'recipe-0', which is not in the graph's recipe items"),
    ("no vectors of the type", ["--queries", "{ingredients}", "--type", "ingredient", "--modes", "semantic"],
     "No embeddings for type 'ingredient' yet"),
])
def test_bad_input_gets_a_clear_message(live, case, args, message):
    base = live["base"]
    files = {
        "empty": base / "empty.jsonl", "export": base / "export.jsonl", "unknown": base / "unknown.jsonl",
        "ingredients": base / "ingredients.jsonl",
    }
    files["empty"].write_text("\n")
    files["export"].write_text('{"id": "recipe-1", "type": "recipe", "text": "Ayam"}\n')
    first = json.loads(live["queries"].read_text().splitlines()[0])
    files["unknown"].write_text(json.dumps(first) + "\n" + json.dumps({"query": "x", "relevant": ["recipe-0"]}) + "\n")
    files["ingredients"].write_text(json.dumps({"query": "cabai", "relevant": ["ingredient-garam"]}) + "\n")
    args = [a.format(**files) for a in args]
    if "--queries" not in args:
        args = ["--queries", str(live["queries"]), *args]
    proc = manage("evaluate_search", *args, env=live["env"], check=False)
    assert proc.returncode == 1, (case, proc.stdout, proc.stderr)
    assert f"CommandError: {message}" in proc.stderr, (case, proc.stderr)
