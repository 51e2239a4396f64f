"""Search evaluation without Neo4j: query sets in their formats and every bad one, the rankers over a run's
vectors and texts, ranx's metrics on rankings checked by hand, the disagreement between two runs, the shipped demo
query set (rebuilt from its rules)."""
from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from console.errors import ConsoleError, InputError, OptionError
from console.search.evaluate import (
    KeywordIndex,
    RunVectors,
    VectorIndex,
    evaluate_runs,
    neighbour_overlap,
    parse_modes,
    top_k_overlap,
)
from console.search.querysets import list_query_sets, read_query_set, save_query_set

ROOT = Path(__file__).resolve().parent.parent


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


# -- formats --------------------------------------------------------------------------------------------------------
def test_simple_json_lines_with_lists_and_grades(tmp_path):
    qs = read_query_set(write(tmp_path / "q.jsonl", '{"id": "a", "query": "tempe pedas", "relevant": ["r1", "r2"]}\n'
                                                    '\n{"query": "ayam kecap", "relevant": {"r3": 2, "r4": 0}}\n'))
    assert qs.queries == {"a": "tempe pedas", "q3": "ayam kecap"}
    assert qs.qrels == {"a": {"r1": 1, "r2": 1}, "q3": {"r3": 2}}
    assert qs.origin[("q3", "r3")] == (tmp_path / "q.jsonl", 3)


def test_beir_folder_and_beir_file_with_qrels_and_trec_qrels(tmp_path):
    folder = tmp_path / "beir"
    write(folder / "queries.jsonl", '{"_id": "1", "text": "sup ikan"}\n{"_id": "2", "text": "not judged"}\n')
    write(folder / "qrels" / "test.tsv", "query-id\tcorpus-id\tscore\n1\tr9\t1\n1\tr8\t0\n")
    qs = read_query_set(folder)
    assert qs.queries == {"1": "sup ikan"} and qs.qrels == {"1": {"r9": 1}}
    assert qs.notes == ["1 queries without a relevant item were left out (first: '2')"]
    trec = write(tmp_path / "trec.qrels", "1 0 r7 1\n1 0 r6 2\n")
    assert read_query_set(folder / "queries.jsonl", trec).qrels == {"1": {"r7": 1, "r6": 2}}
    tsv = write(tmp_path / "queries.tsv", "1\tsup ikan\n")
    assert read_query_set(tsv, trec).queries == {"1": "sup ikan"}


@pytest.mark.parametrize("name,text,qrels,message", [
    ("empty.jsonl", "\n", None, "empty.jsonl: the query set is empty"),
    ("bad.jsonl", '{"query": "a", "relevant": ["r1"]}\n{"query": "b", "relevant": ["r1"]\n', None,
     "bad.jsonl, line 2: not valid JSON at column 34: Expecting ',' delimiter"),
    ("export.jsonl", '{"id": "recipe-1", "type": "recipe", "text": "x"}\n', None,
     'export.jsonl, line 1: neither a simple query line ("query", "relevant") nor a BEIR query ("_id", "text")'),
    ("norel.jsonl", '{"query": "a", "relevant": "r1"}\n', None,
     'norel.jsonl, line 1: "relevant" must be a list of item ids (or an object {id: grade})'),
    ("noquery.jsonl", '{"query": "a", "relevant": ["r1"]}\n{"relevant": ["r1"]}\n', None,
     'noquery.jsonl, line 2: "query" must be a non-empty string'),
    ("twice.jsonl", '{"id": "x", "query": "a", "relevant": ["r1"]}\n{"id": "x", "query": "b", "relevant": ["r1"]}\n',
     None, "twice.jsonl, line 2: query id 'x' appears twice"),
    ("zero.jsonl", '{"query": "a", "relevant": {"r1": 0}}\n', None, "zero.jsonl: no query with a relevant item"),
    ("beir.jsonl", '{"_id": "1", "text": "a"}\n', None,
     "beir.jsonl: BEIR/TREC queries need a qrels file (query-id, corpus-id, score)"),
    ("beir2.jsonl", '{"_id": "1", "text": "a"}\n', "1\tr1\n", "qrels.tsv, line 1: expected 3 columns (query-id, "
     "corpus-id, score) or 4 (TREC: qid 0 docid rel), found 2"),
    ("beir3.jsonl", '{"_id": "1", "text": "a"}\n', "1\tr1\t1\n7\tr1\t1\n", "qrels.tsv, line 2: query '7' is not "
     "in beir3.jsonl"),
    ("beir4.jsonl", '{"_id": "1", "text": "a"}\n', "1\tr1\tyes\n", "qrels.tsv, line 1: relevance grade must be a "
     "whole number, not 'yes'"),
])
def test_a_bad_query_set_names_the_file_and_line(tmp_path, name, text, qrels, message):
    qrels_path = write(tmp_path / "qrels.tsv", qrels) if qrels is not None else None
    with pytest.raises(InputError) as err:
        read_query_set(write(tmp_path / name, text), qrels_path)
    assert str(err.value).split(" — ")[0] == message


def test_a_missing_file_and_a_folder_that_is_not_beir(tmp_path):
    with pytest.raises(InputError, match="nope.jsonl: no such file or folder"):
        read_query_set(tmp_path / "nope.jsonl")
    with pytest.raises(InputError, match="not a BEIR folder: it needs queries.jsonl and qrels/test.tsv"):
        read_query_set(tmp_path)


def test_judgements_of_unknown_ids_name_the_line(tmp_path):
    qs = read_query_set(write(tmp_path / "q.jsonl", '{"query": "a", "relevant": ["r1"]}\n'
                                                    '{"query": "b", "relevant": ["r1", "r404", "r405"]}\n'))
    qs.check_ids({"r1", "r404", "r405"}, "run X")
    with pytest.raises(InputError) as err:
        qs.check_ids({"r1"}, "run X (1 items)")
    assert str(err.value).startswith("q.jsonl, line 2: query 'q2' judges 'r404', which is not in run X (1 items) "
                                     "(1 more judgements name unknown ids)")


def test_modes_and_k_are_checked():
    assert parse_modes("keyword, semantic,keyword", ["keyword", "semantic"]) == ["keyword", "semantic"]
    with pytest.raises(OptionError, match="--modes: unknown mode 'hybrid': choose from keyword, semantic"):
        parse_modes("keyword,hybrid", ["keyword", "semantic"])
    with pytest.raises(OptionError, match="--modes: name at least one mode"):
        parse_modes(" , ", ["keyword", "semantic"])


def test_uploaded_query_sets_are_checked_then_kept(tmp_path):
    folder = tmp_path / "querysets"
    kept = save_query_set(folder, {"mine.jsonl": b'{"query": "a", "relevant": ["r1"]}\n'})
    beir = save_query_set(folder, {"queries.jsonl": b'{"_id": "1", "text": "a"}\n', "q.tsv": b"1\tr1\t1\n"})
    assert kept == folder / "mine.jsonl" and (beir / "qrels" / "test.tsv").exists()
    sets = list_query_sets(folder)
    assert sets["uploaded: mine.jsonl"] == kept and sets["uploaded: queries"] == beir
    assert sets["shipped: recipes.jsonl"] == ROOT / "data" / "queries" / "recipes.jsonl"
    with pytest.raises(InputError, match="broken.jsonl, line 1: not valid JSON"):
        save_query_set(folder, {"broken.jsonl": b"{\n"})
    assert not (folder / "broken.jsonl").exists()
    with pytest.raises(InputError, match="upload one .jsonl query set"):
        save_query_set(folder, {"a.csv": b"x"})


# -- rankers and metrics ----------------------------------------------------------------------------------------------
def test_metrics_match_hand_computed_values(tmp_path):
    qs = read_query_set(write(tmp_path / "q.jsonl", '{"id": "a", "query": "x", "relevant": ["r1"]}\n'
                                                    '{"id": "b", "query": "y", "relevant": ["r2", "r3"]}\n'))
    run = {"a": {"r9": 0.9, "r1": 0.8}, "b": {"r2": 0.5}}  # a: hit at rank 2; b: one of two at rank 1
    ev = evaluate_runs(qs, {"keyword": run}, 2)
    assert ev.scores["keyword"]["mrr@2"] == pytest.approx((1 / 2 + 1) / 2)
    assert ev.scores["keyword"]["recall@2"] == pytest.approx((1 + 1 / 2) / 2)
    assert ev.scores["keyword"]["precision@2"] == pytest.approx((1 / 2 + 1 / 2) / 2)
    ndcg_a, ndcg_b = 1 / math.log2(3), 1 / (1 + 1 / math.log2(3))
    assert ev.scores["keyword"]["ndcg@2"] == pytest.approx((ndcg_a + ndcg_b) / 2)
    assert ev.per_query["keyword"]["mrr@2"] == pytest.approx({"a": 0.5, "b": 1.0})


def test_two_modes_get_a_paired_test_and_a_table(tmp_path):
    lines = "".join(json.dumps({"id": f"q{i}", "query": "x", "relevant": [f"r{i}"]}) + "\n" for i in range(8))
    qs = read_query_set(write(tmp_path / "q.jsonl", lines))
    good = {f"q{i}": {f"r{i}": 1.0} for i in range(8)}
    bad = {f"q{i}": {"r-none": 1.0, f"r{i}": 0.5} if i % 2 else {"r-none": 1.0, "r-no": 0.9, f"r{i}": 0.5}
           for i in range(8)}  # the hit at rank 2 or 3
    ev = evaluate_runs(qs, {"keyword": bad, "semantic": good}, 5)
    row = next(r for r in ev.comparisons() if r["metric"] == "mrr@5")
    assert (row["mode"], row["against"], row["difference"], row["wins"]) == ("semantic", "keyword", pytest.approx(1 - (1 / 2 + 1 / 3) / 2), 8)
    assert row["p_value"] is not None and row["p_value"] < 0.05 and row["significant"]
    assert "semantic vs keyword, mrr@5: +0.5833 (p=0.0000 *; better on 8, same on 0, worse on 0 queries)" in ev.table()
    assert json.loads(json.dumps(ev.to_dict()))["scores"]["semantic"]["recall@5"] == 1.0


def test_keyword_index_ranks_literal_matches_first():
    index = KeywordIndex(["a", "b", "c"], ["tempe goreng pedas", "sup ikan kuah", "ayam goreng"])
    run = index.search({"q": "ikan kuah", "none": "zzz"}, 10)
    assert list(run["q"]) == ["b"] and run["none"] == {}


def test_vector_index_is_exact_cosine():
    rng = np.random.default_rng(1)
    vectors = rng.normal(size=(50, 16)).astype(np.float32)
    query = rng.normal(size=(1, 16)).astype(np.float32)
    run = VectorIndex([f"d{i}" for i in range(50)], vectors).search({"q": "x"}, 5, lambda texts: query)
    cos = (vectors @ query[0]) / np.linalg.norm(vectors, axis=1) / np.linalg.norm(query)
    assert list(run["q"]) == [f"d{i}" for i in np.argsort(-cos)[:5]]
    assert list(run["q"].values()) == pytest.approx(sorted(cos, reverse=True)[:5], abs=1e-6)
    with pytest.raises(ConsoleError, match="the query vectors have 8 dimensions but the items 16"):
        VectorIndex(["d"], vectors[:1]).search({"q": "x"}, 5, lambda texts: np.ones((1, 8)))


def test_disagreement_between_two_runs(tmp_path):
    qs = read_query_set(write(tmp_path / "q.jsonl", '{"id": "a", "query": "x", "relevant": ["r1"]}\n'
                                                    '{"id": "b", "query": "y", "relevant": ["r1"]}\n'))
    first = {"a": {"r1": 3, "r2": 2}, "b": {"r1": 3, "r2": 2}}
    second = {"a": {"r1": 3, "r3": 2}, "b": {"r2": 3, "r1": 2}}
    rows = top_k_overlap(qs, first, second, 2)
    assert [(r["query_id"], r["overlap"], r["only_first"], r["only_second"]) for r in rows] == [
        ("a", 0.5, ["r2"], ["r3"]), ("b", 1.0, [], [])]
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(40, 8)).astype(np.float32)
    ids = [f"r{i}" for i in range(40)]
    same = neighbour_overlap(RunVectors("a", None, ids, [""] * 40, vectors),
                             RunVectors("b", None, ids, [""] * 40, vectors * 2), k=5)
    assert same["mean"] == 1.0 and same["items"] == 40
    other = neighbour_overlap(RunVectors("a", None, ids, [""] * 40, vectors),
                              RunVectors("b", None, ids, [""] * 40, rng.normal(size=(40, 8))), k=5)
    assert other["mean"] < 0.5


# -- the shipped demo query set -----------------------------------------------------------------------------------
def test_the_demo_query_set_is_what_its_rules_give_and_never_names_its_answer():
    check = subprocess.run([sys.executable, str(ROOT / "scripts" / "build_demo_queries.py"), "--check"],
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    qs = read_query_set(ROOT / "data" / "queries" / "recipes.jsonl")
    assert len(qs) >= 150 and all(len(docs) >= 3 for docs in qs.qrels.values())
    assert all(doc.startswith("recipe-") for doc in qs.judged_ids())
    sys.path.insert(0, str(ROOT / "scripts"))
    from build_demo_queries import KINDS

    kinds = qs.by_kind()
    assert set(qs.kinds) == set(qs.queries)
    assert set(kinds) == set(KINDS) and all(len(sub) >= 20 for sub in kinds.values())
    assert sum(len(sub) for sub in kinds.values()) == len(qs)
    rules = json.loads((ROOT / "data" / "queries" / "rules.json").read_text(encoding="utf-8"))
    assert all(set(rule) <= {"id", "kind", "query", "category", "all_of", "none_of"} for rule in rules)


def test_a_query_sets_kinds_give_one_evaluation_per_kind(tmp_path):
    lines = "".join(json.dumps({"id": f"q{i}", "kind": "typo" if i % 2 else "dish", "query": "x",
                                "relevant": [f"r{i}"]}) + "\n" for i in range(6))
    qs = read_query_set(write(tmp_path / "q.jsonl", lines))
    assert qs.kinds == {f"q{i}": "typo" if i % 2 else "dish" for i in range(6)}
    run = {f"q{i}": {f"r{i}": 1.0} if i % 2 else {"r-none": 1.0} for i in range(6)}   # typos found, dishes not
    ev = evaluate_runs(qs, {"keyword": run, "semantic": {q: {"r-x": 1.0} for q in run}}, 5)
    assert list(ev.by_kind) == ["dish", "typo"] and ev.by_kind["typo"].n_queries == 3
    assert ev.by_kind["typo"].scores["keyword"]["ndcg@5"] == 1.0 and ev.by_kind["dish"].scores["keyword"]["ndcg@5"] == 0
    assert ev.scores["keyword"]["ndcg@5"] == pytest.approx(0.5)
    out = json.loads(json.dumps(ev.to_dict(per_query=False)))
    assert out["by_kind"]["typo"]["queries"] == 3 and out["by_kind"]["typo"]["comparisons"]
    assert "typo (3): keyword 1.0000, semantic 0.0000" in ev.table()
    with pytest.raises(InputError, match='line 1: "kind" must be a non-empty string'):
        read_query_set(write(tmp_path / "bad.jsonl", '{"query": "x", "kind": 3, "relevant": ["r1"]}\n'))
