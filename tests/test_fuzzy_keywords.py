"""Keyword search that forgives typos (issue 26 part 1): a query word the full-text index finds in fewer than
FUZZY_BELOW items is also searched as a Lucene fuzzy term (edits by word length), on the real test Neo4j."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from console.sinks.neo4j.settings import Neo4jSettings
from console.sinks.neo4j.store import Neo4jStore

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "backend"))
from embedding_search import search  # noqa: E402

RECIPES = [
    ("r-gulai", "Gulai kambing muda", "santan kunyit"),
    ("r-sate", "Sate kambing bumbu kecap", "kecap manis"),
    ("r-orek", "Tempe orek kecap", "tempe kecap"),
    ("r-mendoan", "Tempe mendoan", "tempe tepung"),
    ("r-bacem", "Tempe bacem", "tempe gula merah"),
    ("r-kembang", "Tumis kembang kol", "kembang kol wortel"),
    ("r-kambang", "Sayur kambang", "labu"),      # one edit from "kembang", two from "kambing" and "kambig"
]
INGREDIENTS = [("i-kemangi", "Kemangi"), ("i-lengkuas", "Lengkuas"), ("i-kecap", "Kecap manis")]


@pytest.fixture
def store(neo4j_clean, neo4j_settings):
    with Neo4jStore(Neo4jSettings.from_mapping(neo4j_settings)) as s:
        s.query("UNWIND $rows AS r CREATE (:Recipe {id: r[0], title: r[1], text: r[2]})", rows=RECIPES)
        s.query("UNWIND $rows AS r CREATE (:Ingredient {id: r[0], name: r[1]})", rows=INGREDIENTS)
        s.ensure_schema()
        s.query("CALL db.awaitIndexes(60)")
        yield s


def ids(hits) -> list[str]:
    return [h["id"] for h in hits.results]


def test_edit_distance_grows_with_the_words_length_and_syntax_stays_escaped():
    assert [search.edit_distance(w) for w in ("ab", "abc", "abcde", "abcdef")] == [0, 1, 1, 2]
    words = search.fuzzy_words('Kambig~ (tempe) "OR" ab to')
    assert words == [{"word": "kambig", "fuzzy": "kambig~1 kambig~2"},
                     {"word": "tempe", "fuzzy": "tempe~1"}]
    assert search.lucene_query('kambig~ (tempe)') == "kambig\\~ \\(tempe\\)"


def test_typos_of_dish_and_ingredient_names_find_their_items(store):
    typo = search.keyword_hits(store, "kambig", "recipe", k=5)
    assert set(ids(typo)[:2]) == {"r-gulai", "r-sate"} and typo.fuzzy == ["kambig"]   # 1 edit, before 2 edits
    assert ids(search.keyword_hits(store, "tmepe mendon", "recipe", k=5))[0] == "r-mendoan"
    ingredient = search.keyword_hits(store, "kemangu", "ingredient", k=5)
    assert ids(ingredient) == ["i-kemangi"] and ingredient.fuzzy == ["kemangu"]
    assert search.keyword_search(store, "lengkuass", None, k=5)[0]["id"] == "i-lengkuas"


def test_a_word_the_index_knows_well_is_searched_as_written(store):
    hits = search.keyword_hits(store, "tempe", "recipe", k=10)   # in 3 recipes: not fuzzy
    assert set(ids(hits)) == {"r-orek", "r-mendoan", "r-bacem"} and hits.fuzzy == []


def test_a_correct_word_never_ranks_below_its_fuzzy_neighbours(store):
    hits = search.keyword_hits(store, "kembang", "recipe", k=10)   # one recipe: fuzzy, "kambang" is 1 edit away
    assert hits.fuzzy == ["kembang"] and ids(hits)[:2] == ["r-kembang", "r-kambang"]
    assert hits.results[0]["score"] > hits.results[1]["score"]
    both = search.keyword_hits(store, "kambang", "recipe", k=10)
    assert ids(both)[0] == "r-kambang"


def test_lucene_syntax_in_a_misspelt_query_is_still_searched_as_words(store):
    hits = search.keyword_hits(store, 'kambig" OR (* ~', "recipe", k=5)
    assert set(ids(hits)[:2]) == {"r-gulai", "r-sate"} and hits.fuzzy == ["kambig"]
    assert search.keyword_hits(store, "zzzzzzzz", "recipe", k=5).results == []
