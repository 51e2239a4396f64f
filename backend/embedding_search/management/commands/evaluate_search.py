"""python manage.py evaluate_search --queries FILE [--qrels FILE] --modes keyword,semantic,hybrid --k 10
[--fusion weighted-rrf] [--output F]"""
from __future__ import annotations

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from console.errors import ConsoleError
from console.search.fusion import DEFAULT_FUSION, FUSIONS, check_fusion
from console.search.evaluate import STAT_TESTS, check_k, evaluate_runs, parse_modes
from console.sinks.neo4j.cypher import quote
from embedding_search.graph import get_schema
from console.search.querysets import read_query_set

from ._common import open_store


def _keyword(store, text: str, type_: str, k: int) -> list[dict]:
    from embedding_search.search import keyword_search

    return keyword_search(store, text, type_, k)


def _semantic(store, text: str, type_: str, k: int) -> list[dict]:
    from embedding_search.modes import semantic_search

    return semantic_search(text, type_, k)["results"]


def _hybrid(store, text: str, type_: str, k: int, fusion: str = DEFAULT_FUSION) -> list[dict]:
    from console.search.fusion import Fused, run_scores
    from embedding_search.modes import hybrid_hits

    hits = hybrid_hits(store, text, type_, k, fusion=fusion)[0].results
    scores = run_scores([Fused(hit["id"], hit["score"]) for hit in hits])  # ties in the fused order, as served
    return [dict(hit, score=scores[hit["id"]]) for hit in hits]


# The live searches, as the API serves them: mode -> (store, query, type, k) -> [{"id", "score", ...}, best first].
# A new search mode of the backend is one more entry here.
LIVE_SEARCHES = {"keyword": _keyword, "semantic": _semantic, "hybrid": _hybrid}


class Command(BaseCommand):
    help = ("Score the live search against a labelled query set (simple JSON Lines {\"query\", \"relevant\"}, or "
            "BEIR queries.jsonl + qrels TSV, or a BEIR folder): recall@k, MRR@k, nDCG@k and precision@k per mode, "
            "and a paired significance test between the modes (ranx). Prints a table; --output writes JSON.")

    def add_arguments(self, parser):
        parser.add_argument("--queries", type=Path, required=True,
                            help="query set: .jsonl (simple or BEIR), queries.tsv, or a BEIR folder")
        parser.add_argument("--qrels", type=Path, default=None, help="qrels TSV (BEIR or TREC) for BEIR/TREC queries")
        parser.add_argument("--modes", default=",".join(LIVE_SEARCHES),
                            help=f"comma-separated, from: {', '.join(LIVE_SEARCHES)} (default all)")
        parser.add_argument("--k", type=int, default=10, help="results per query, 1-100 (10)")
        parser.add_argument("--type", dest="type_", default="recipe", help=f"item type: {', '.join(get_schema().types)}")
        parser.add_argument("--stat-test", default="student", help=f"paired test: {', '.join(STAT_TESTS)}")
        parser.add_argument("--fusion", default=DEFAULT_FUSION,
                            help=f"hybrid's fusion: {', '.join(FUSIONS)} (default {DEFAULT_FUSION})")
        parser.add_argument("--output", type=Path, default=None, help="write the results as JSON to this file")

    def handle(self, *args, queries, qrels=None, modes=",".join(LIVE_SEARCHES), k=10, type_="recipe",
               stat_test="student", output=None, fusion=DEFAULT_FUSION, **options):
        try:
            chosen = parse_modes(modes, list(LIVE_SEARCHES))
            fusion = check_fusion(fusion, "--fusion")
            check_k(k)
            if type_ not in get_schema().types:
                raise CommandError(f"--type: unknown type {type_!r}: choose from {', '.join(get_schema().types)}")
            if stat_test not in STAT_TESTS:
                raise CommandError(f"--stat-test must be one of {', '.join(STAT_TESTS)}, not {stat_test!r}")
            query_set = read_query_set(queries, qrels)
            store = open_store()
            query_set.check_ids(_existing_ids(store, type_, query_set.judged_ids()), f"the graph's {type_} items")
            searches = dict(LIVE_SEARCHES, hybrid=lambda *a: _hybrid(*a, fusion=fusion))
            runs = {mode: self._rank(store, searches[mode], query_set, type_, k) for mode in chosen}
            evaluation = evaluate_runs(query_set, runs, k, stat_test=stat_test)
        except ConsoleError as exc:  # bad query set, Neo4j errors (Neo4jStoreError) included
            raise CommandError(str(exc)) from None
        self.stdout.write(evaluation.table())
        if output is not None:
            result = dict(evaluation.to_dict(), type=type_, fusion=fusion, source="live search (evaluate_search)")
            output.parent.mkdir(parents=True, exist_ok=True)
            output.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
            self.stdout.write(f"Wrote {output}")

    @staticmethod
    def _rank(store, search, query_set, type_: str, k: int) -> dict[str, dict[str, float]]:
        from rest_framework.exceptions import APIException

        try:
            return {qid: {hit["id"]: float(hit["score"]) for hit in search(store, text, type_, k)}
                    for qid, text in query_set.queries.items()}
        except APIException as exc:  # e.g. the query model cannot be loaded here
            raise CommandError(str(exc.detail)) from None


def _existing_ids(store, type_: str, ids: set[str]) -> set[str]:
    spec = store.spec(type_)
    key = f"n.{quote(spec.id)}"
    rows = store.query(f"UNWIND $ids AS id MATCH (n:{quote(spec.label)}) WHERE {key} = id RETURN {key} AS id",
                       ids=sorted(ids))
    return {row["id"] for row in rows}
