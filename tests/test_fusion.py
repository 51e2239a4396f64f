"""The fusions of hybrid search (console.search.fusion), the one definition the backend's hybrid search and the console's
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
    hybrid = console_runs(qs, [run], ["hybrid"], 3, [encoder], fusions=["rrf"])["hybrid"]["q1"]
    deep = console_runs(qs, [run], ["keyword", "semantic"], branch_depth(3), [encoder])   # each branch 20 deep
    keyword, semantic = list(deep["keyword"]["q1"]), list(deep["semantic"]["q1"])
    assert keyword == ["r1", "r2"] and semantic == ["r2", "r4", "r3", "r1"]   # BM25 matches words only
    assert list(hybrid) == ["r2", "r1", "r4"]   # 1/62+1/61, 1/61+1/64, 1/62
    assert hybrid["r1"] == pytest.approx(1 / 61 + 1 / 64, abs=1e-8)
    assert hybrid == fused_run(deep["keyword"], deep["semantic"], 3, "rrf")["q1"]


# -- the fusions of issue 26: weighted RRF (the default), plain RRF, convex -------------------------------------
from console.errors import OptionError  # noqa: E402
from console.search.fusion import (  # noqa: E402
    CONVEX_ALPHA, DEFAULT_FUSION, FUSIONS, TRUST_POWER, branch_weights, check_fusion, convex, fuse, normalised,
    spread)


def test_the_fusions_are_one_option_set_with_a_default():
    assert FUSIONS == ("weighted-rrf", "rrf", "convex") and DEFAULT_FUSION in FUSIONS
    assert check_fusion(None) == DEFAULT_FUSION and check_fusion(" rrf ") == "rrf"
    with pytest.raises(OptionError, match="choose from weighted-rrf, rrf, convex"):
        check_fusion("borda")


def test_a_branchs_spread_is_how_far_its_best_stands_above_its_last_candidate():
    assert spread([("a", 10.0), ("b", 8.0), ("c", 4.0)], depth=3) == pytest.approx(0.6)
    assert spread([("a", 0.8), ("b", 0.7), ("c", 0.6)], depth=2) == pytest.approx(0.125)   # the depth-th: b
    assert spread([("a", 5.0)], depth=3) == 1.0        # fewer than asked for: the rest score 0
    assert spread([], depth=3) == 0.0 and spread([("a", 0.0)], depth=1) == 0.0
    assert spread([("a", 0.5), ("b", -0.9)], depth=2) == 1.0   # capped at 1
    with pytest.raises(ValueError, match="depth"):
        spread([], 0)


def test_weighted_rrf_weighs_each_branch_by_its_spread_squared():
    keyword = [("a", 9.0), ("b", 3.0), ("c", 3.0)]                 # spread (9 - 3) / 9
    semantic = [("d", 0.80), ("c", 0.79), ("e", 0.78)]            # spread 0.025: all alike
    branches = {"keyword": keyword, "semantic": semantic}
    weights = branch_weights(branches, depth=3)
    assert TRUST_POWER == 2
    assert weights == {"keyword": pytest.approx((6 / 9) ** 2), "semantic": pytest.approx(0.025 ** 2)}
    fused = fuse(branches, "weighted-rrf", depth=3)
    by_id = {f.id: f for f in fused}
    wk, ws = weights["keyword"], weights["semantic"]
    assert by_id["a"].score == pytest.approx(wk / 61) and by_id["d"].score == pytest.approx(ws / 61)
    assert by_id["c"].score == pytest.approx(wk / 63 + ws / 62) and by_id["c"].ranks == {"keyword": 3, "semantic": 2}
    assert [f.id for f in fused] == ["a", "b", "c", "d", "e"]       # the flat branch barely moves the other
    assert [f.id for f in fuse(branches, "rrf", depth=3)] == ["c", "a", "d", "b", "e"]   # plain: c is in both


def test_weighted_rrf_lets_the_other_branch_decide_when_one_found_nothing():
    semantic = [("c", 0.9), ("d", 0.8)]
    assert branch_weights({"keyword": [], "semantic": semantic}, 2)["keyword"] == 0.0
    assert [f.id for f in fuse({"keyword": [], "semantic": semantic}, "weighted-rrf", 2)] == ["c", "d"]


def test_convex_adds_each_branchs_min_max_normalised_score_by_its_share():
    assert normalised([("a", 3.0), ("b", 2.0), ("c", 1.0)]) == {"a": 1.0, "b": 0.5, "c": 0.0}
    assert normalised([("a", 0.4), ("b", 0.4)]) == {"a": 1.0, "b": 1.0} and normalised([]) == {}
    keyword = [("a", 12.0), ("b", 6.0), ("c", 2.0)]
    semantic = [("c", 0.8), ("d", 0.6), ("a", 0.4)]
    fused = {f.id: f.score for f in convex({"keyword": keyword, "semantic": semantic}, alpha=0.7)}
    assert fused["a"] == pytest.approx(0.7 * 1.0 + 0.3 * 0.0)
    assert fused["b"] == pytest.approx(0.7 * 0.4)
    assert fused["c"] == pytest.approx(0.7 * 0.0 + 0.3 * 1.0)
    assert fused["d"] == pytest.approx(0.3 * 0.5)
    default = {f.id: f.score for f in fuse({"keyword": keyword, "semantic": semantic}, "convex")}
    assert default["a"] == pytest.approx(CONVEX_ALPHA) and default["c"] == pytest.approx(1 - CONVEX_ALPHA)
    with pytest.raises(ValueError, match="convex weight"):
        convex({"keyword": keyword}, alpha=1.5)


def test_the_evaluate_views_hybrid_uses_the_fusion_asked_for_and_names_each_column():
    ids = ["r1", "r2", "r3", "r4"]
    run = RunVectors("toy", __import__("pathlib").Path("toy.npy"), ids, ["sambal tempe", "sambal ikan", "sup ayam",
                                                                         "kue coklat"],
                     np.array([[0, 1], [1, 0], [1, 1], [1, 0.1]], dtype=np.float32))
    qs = QuerySet("toy", {"q1": "sambal tempe"}, {"q1": {"r1": 1}})
    encoder = lambda texts: np.array([[1.0, 0.0]] * len(texts), dtype=np.float32)  # noqa: E731
    runs = console_runs(qs, [run], ["hybrid"], 3, [encoder], fusions=["rrf", "weighted-rrf", "convex"])
    assert list(runs) == ["hybrid [rrf]", "hybrid [weighted-rrf]", "hybrid [convex]"]
    # each branch offers fewer than the 20 candidates asked for (the rest count 0): both spreads are 1
    weighted = runs["hybrid [weighted-rrf]"]["q1"]
    assert weighted["r2"] == pytest.approx(1 / 62 + 1 / 61, abs=1e-8)
    assert runs["hybrid [rrf]"]["q1"]["r1"] == pytest.approx(1 / 61 + 1 / 64, abs=1e-8)
    with pytest.raises(OptionError, match="unknown fusion"):
        console_runs(qs, [run], ["hybrid"], 3, [encoder], fusions=["borda"])
