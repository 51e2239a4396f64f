"""Reciprocal rank fusion (console.search.fusion), the one definition the backend's hybrid search and the console's
Evaluate view share, and the Evaluate view's hybrid mode built on it."""
from __future__ import annotations

import numpy as np
import pytest

from console.search.evaluate import RunVectors, console_runs, fused_run
from console.search.fusion import RRF_K, branch_depth, rrf, rrf_score, run_scores
from console.search.querysets import QuerySet


def test_rrf_scores_are_the_sum_of_one_over_sixty_plus_rank():
    fused = rrf({"keyword": ["a", "b", "c"], "semantic": ["b", "d", "a"]})
    by_id = {f.id: f for f in fused}
    assert RRF_K == 60
    assert by_id["a"].score == pytest.approx(1 / 61 + 1 / 63) and by_id["a"].ranks == {"keyword": 1, "semantic": 3}
    assert by_id["b"].score == pytest.approx(1 / 62 + 1 / 61)
    assert by_id["c"].ranks == {"keyword": 3} and by_id["c"].score == pytest.approx(1 / 63)
    assert by_id["d"].score == pytest.approx(rrf_score([2]))
    assert [f.id for f in fused] == ["b", "a", "d", "c"]   # both branches first; then 1/62 > 1/63


def test_an_item_first_in_both_branches_is_first_and_ties_keep_the_first_branch_order():
    assert rrf({"k": ["x", "y"], "s": ["x", "z"]})[0].id == "x"
    assert [f.id for f in rrf({"k": ["y"], "s": ["z"]})] == ["y", "z"]      # 1/61 each: keyword's first
    assert [f.id for f in rrf({"k": [], "s": ["z", "w"]})] == ["z", "w"]    # one empty branch
    assert rrf({"k": [], "s": []}) == []
    with pytest.raises(ValueError, match="RRF constant"):
        rrf({"k": ["a"]}, k=-1)


def test_branch_depth_and_run_scores_keep_the_fused_order():
    assert branch_depth(5) == 20 and branch_depth(10) == 20 and branch_depth(30) == 60
    scores = run_scores(rrf({"k": ["y"], "s": ["z"]}))
    assert list(scores) == ["y", "z"] and scores["y"] > scores["z"]
    assert scores["z"] == pytest.approx(1 / 61, abs=1e-8)


def test_the_evaluate_views_hybrid_fuses_its_keyword_and_semantic_rankings():
    ids = ["r1", "r2", "r3", "r4"]
    texts = ["sambal tempe", "sambal ikan", "sup ayam", "kue coklat"]
    vectors = np.array([[0, 1], [1, 0], [1, 1], [1, 0.1]], dtype=np.float32)
    run = RunVectors("toy", __import__("pathlib").Path("toy.npy"), ids, texts, vectors)
    qs = QuerySet("toy", {"q1": "sambal tempe"}, {"q1": {"r1": 1}})
    encoder = lambda texts: np.array([[1.0, 0.0]] * len(texts), dtype=np.float32)  # noqa: E731  "near r2"
    hybrid = console_runs(qs, [run], ["hybrid"], 3, [encoder])["hybrid"]["q1"]
    deep = console_runs(qs, [run], ["keyword", "semantic"], branch_depth(3), [encoder])   # each branch 20 deep
    keyword, semantic = list(deep["keyword"]["q1"]), list(deep["semantic"]["q1"])
    assert keyword == ["r1", "r2"] and semantic == ["r2", "r4", "r3", "r1"]   # BM25 matches words only
    assert list(hybrid) == ["r2", "r1", "r4"]   # 1/62+1/61, 1/61+1/64, 1/62
    assert hybrid["r1"] == pytest.approx(1 / 61 + 1 / 64, abs=1e-8)
    assert hybrid == fused_run(deep["keyword"], deep["semantic"], 3)["q1"]
