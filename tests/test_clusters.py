"""Clusters on the map and their names: HDBSCAN on map coordinates, class-based TF-IDF names without the language's
stopwords, the language detected from the data, and the disk cache. Real Indonesian recipe texts from the demo data."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import read_demo_recipes
from console.explore import clusters as clusters_module
from console.explore.clusters import NOISE, detect_language, find_clusters, name_clusters, stopwords

KINDS = ("tempe", "ayam", "ikan", "sapi")


@pytest.fixture(scope="module")
def recipes():
    """60 real recipes of each kind, as the export writes their text."""
    return [(kind, f"{r['Title']}. Ingredients: {r['Ingredients'][:300].replace('--', ', ')}. "
                   f"Categories: {kind.title()}.")
            for kind in KINDS for r in read_demo_recipes(kind, 60)]


def _blobs(kinds: list[str], seed: int = 0) -> np.ndarray:
    """A map where each kind is a tight blob of its own (what UMAP draws for well-separated recipes)."""
    rng = np.random.default_rng(seed)
    centre = {kind: np.array([10.0 * n, 5.0 * (n % 2)]) for n, kind in enumerate(KINDS)}
    return np.stack([centre[k] + rng.normal(0, 0.5, 2) for k in kinds]).astype(np.float32)


def test_indonesian_recipes_are_detected_as_indonesian(recipes):
    assert detect_language([text for _, text in recipes]) == "id"


def test_english_texts_are_detected_as_english():
    texts = ["Fry the chicken until it is golden, then add the sauce and serve it with rice.",
             "This is the best way to cook tofu: it should be crisp on the outside and soft inside."]
    assert detect_language(texts) == "en"


def test_texts_without_words_fall_back_to_english():
    assert detect_language(["123 456", ""]) == "en"


def test_indonesian_cluster_names_have_distinctive_words_not_stopwords(recipes):
    labels = np.array([KINDS.index(kind) for kind, _ in recipes])
    names = name_clusters([t for _, t in recipes], labels, stopwords("id"))
    words = {c: name.split(" / ") for c, name in names.items()}
    assert all(len(w) == 3 for w in words.values()), names
    assert not {w for ws in words.values() for w in ws} & stopwords("id"), names
    for n, kind in enumerate(KINDS):
        assert kind in words[n], names  # "tempe / ..." for the tempe recipes, "ayam / ..." for the chicken
    assert not {"dan", "yang", "untuk", "ingredients", "categories"} & {w for ws in words.values() for w in ws}


def test_without_the_stopword_list_a_function_word_names_a_cluster():
    """Where one cluster's texts are prose (steps) and the other's are titles, "dan" (and) is distinctive of the
    prose: the stopword list is what keeps it out of the name."""
    rows = [(0, f"{r['Title']}. Steps: {r['Steps'][:400]}") for r in read_demo_recipes("tempe", 60)] + \
           [(1, r["Title"]) for r in read_demo_recipes("ayam", 60)]
    labels, texts = np.array([c for c, _ in rows]), [t for _, t in rows]
    bare = name_clusters(texts, labels, frozenset())
    cleaned = name_clusters(texts, labels, stopwords("id"))
    assert "dan" in bare[0].split(" / "), bare
    assert not {w for n in cleaned.values() for w in n.split(" / ")} & stopwords("id"), cleaned
    assert cleaned[0].startswith("tempe / ") and cleaned[1].startswith("ayam / "), cleaned


def test_clusters_are_found_named_and_placed_at_their_centres(recipes):
    kinds = [kind for kind, _ in recipes]
    coords = _blobs(kinds)
    found = find_clusters(coords, [t for _, t in recipes], min_size=10)
    assert found.language == "id" and len(found.names) == 4
    for kind in KINDS:  # each kind is one cluster, named after it
        labels = {int(found.labels[i]) for i, k in enumerate(kinds) if k == kind} - {NOISE}
        assert len(labels) == 1 and kind in found.names[labels.pop()], found.names
    assert sum(found.sizes.values()) + int((found.labels == NOISE).sum()) == len(recipes)
    assert found.ids() == sorted(found.names, key=lambda c: (-found.sizes[c], c))
    c = found.ids()[0]
    assert np.linalg.norm(np.array(found.centres[c]) - np.median(coords[found.labels == c], axis=0)) < 1e-5
    assert found.names_of_rows()[int(found.rows(c)[0])] == found.names[c]


def test_clusters_are_cached_by_coordinates_texts_and_settings(recipes, tmp_path):
    coords, texts = _blobs([k for k, _ in recipes]), [t for _, t in recipes]
    first = find_clusters(coords, texts, min_size=10, cache_dir=tmp_path)
    again = find_clusters(coords, texts, min_size=10, cache_dir=tmp_path)
    assert (first.from_cache, again.from_cache) == (False, True)
    np.testing.assert_array_equal(first.labels, again.labels)
    assert (first.names, first.centres, first.language) == (again.names, again.centres, again.language)
    assert find_clusters(coords, texts, min_size=11, cache_dir=tmp_path).from_cache is False
    assert find_clusters(coords, texts, min_size=10, language="en", cache_dir=tmp_path).from_cache is False
    assert find_clusters(coords, texts[:-1] + ["other"], min_size=10, cache_dir=tmp_path).from_cache is False
    assert len(list(tmp_path.glob("clusters-*.npz"))) == 4


def test_a_chosen_language_is_used_and_an_unknown_one_is_named(recipes):
    coords, texts = _blobs([k for k, _ in recipes]), [t for _, t in recipes]
    assert find_clusters(coords, texts, min_size=10, language="en").language == "en"
    with pytest.raises(ValueError, match="no stopword list for language 'xx'; choose one of .*id"):
        find_clusters(coords, texts, language="xx")


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="3 texts for 2 points"):
        find_clusters(np.zeros((2, 2)), ["a", "b", "c"])
    with pytest.raises(ValueError, match="min_size must be at least 2"):
        find_clusters(np.zeros((2, 2)), ["a", "b"], min_size=1)


def test_a_handful_of_points_has_no_clusters():
    found = find_clusters(np.zeros((2, 2)), ["ayam goreng", "tempe bacem"], min_size=5)
    assert found.names == {} and found.labels.tolist() == [NOISE, NOISE]
    assert found.names_of_rows() == ["(no cluster)", "(no cluster)"]


def test_beyond_the_fit_sample_every_point_joins_its_nearest_points_cluster(recipes, monkeypatch):
    monkeypatch.setattr(clusters_module, "FIT_SAMPLE", 100)
    kinds = [kind for kind, _ in recipes]
    found = find_clusters(_blobs(kinds), [t for _, t in recipes], min_size=5)
    for kind in KINDS:
        labels = {int(found.labels[i]) for i, k in enumerate(kinds) if k == kind} - {NOISE}
        assert len(labels) == 1, (kind, labels)
