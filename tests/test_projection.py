"""The Explore page's engine: map projections (UMAP fitted on a sample, the rest placed; PCA first), their disk cache,
memory-mapped vectors, nearest neighbours and the WebGL figure.

Vectors come from the real all-MiniLM-L6-v2 over real Indonesian recipe titles (ayam = chicken, tempe = tempeh).
"""
from __future__ import annotations

import numpy as np
import pytest

from conftest import read_demo_recipes
from console.files.embfiles import EmbeddedItem, write_embeddings
from console.explore.projection import (EmbeddingSet, category_of, load_embedding_set, nearest, place_by_neighbours,
                                project, scatter_figure)


@pytest.fixture(scope="module")
def recipes():
    rows = [(r, "Ayam") for r in read_demo_recipes("ayam", 40)] + [(r, "Tempe") for r in read_demo_recipes("tempe", 40)]
    return [
        {"id": f"recipe-{n}", "title": r["Title"], "category": cat,
         "text": f"{r['Title']}. Ingredients: {r['Ingredients'][:200]}. Categories: {cat}."}
        for n, (r, cat) in enumerate(rows)
    ]


@pytest.fixture(scope="module")
def vectors(recipes, minilm_path):
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(minilm_path), device="cpu")
    return model.encode([r["title"] for r in recipes], batch_size=32, normalize_embeddings=True)


def test_nearest_puts_the_item_itself_first_with_score_one(vectors):
    hits = nearest(vectors, vectors[5], k=3)
    assert hits[0][0] == 5
    assert hits[0][1] == pytest.approx(1.0, abs=1e-5)


def test_nearest_leaves_out_the_selected_item_and_sorts_by_score(vectors):
    hits = nearest(vectors, vectors[5], k=10, exclude=5)
    assert 5 not in [i for i, _ in hits]
    scores = [s for _, s in hits]
    assert len(hits) == 10 and scores == sorted(scores, reverse=True)


def test_nearest_never_returns_more_items_than_there_are(vectors):
    assert len(nearest(vectors[:4], vectors[0], k=10, exclude=0)) == 3


def test_a_tempe_query_finds_tempe_recipes(vectors, recipes, minilm_path):
    from sentence_transformers import SentenceTransformer

    query = SentenceTransformer(str(minilm_path), device="cpu").encode("tempe goreng", normalize_embeddings=True)
    top = [recipes[i]["category"] for i, _ in nearest(vectors, query, k=5)]
    assert top.count("Tempe") >= 4, top


def test_a_2d_map_of_a_small_set_shows_every_item(vectors):
    proj = project(vectors, dims=2)
    assert proj.coords.shape == (80, 2)
    assert (proj.fitted, proj.total, proj.placed) == (80, 80, 0)
    assert proj.method == "pca+umap"  # 384 dimensions > 50: PCA first


def test_a_3d_map_has_three_coordinates(vectors):
    assert project(vectors, dims=3).coords.shape == (80, 3)


def test_beyond_the_sample_every_item_is_placed_on_the_map(vectors):
    proj = project(vectors, sample=30)
    assert (proj.fitted, proj.total, proj.placed) == (30, 80, 50)
    assert proj.coords.shape == (80, 2) and np.isfinite(proj.coords).all() and proj.method == "umap+knn"


@pytest.mark.parametrize("placement", ["knn", "umap"])
def test_placed_recipes_land_among_their_own_kind(vectors, recipes, placement):
    """UMAP fitted on 40 of the 80 recipes; each of the other 40 is nearer its own kind's centre than the other's."""
    proj = project(vectors, sample=40, placement=placement)
    kind = np.array([r["category"] for r in recipes])
    fitted = np.zeros(80, dtype=bool)
    fitted[np.sort(np.random.default_rng(42).choice(80, 40, replace=False))] = True  # the seeded sample
    centre = {k: proj.coords[fitted & (kind == k)].mean(axis=0) for k in ("Ayam", "Tempe")}
    right = [np.linalg.norm(proj.coords[i] - centre[kind[i]]) < np.linalg.norm(
             proj.coords[i] - centre[({"Ayam", "Tempe"} - {kind[i]}).pop()]) for i in np.flatnonzero(~fitted)]
    assert sum(right) >= 34, sum(right)  # titles alone: a few recipes name the other kind's ingredient


def test_an_exact_twin_is_placed_on_its_twin():
    anchors = np.eye(4, 8, dtype=np.float32)
    coords = np.array([[0, 0], [10, 0], [0, 10], [10, 10]], dtype=np.float32)
    placed = place_by_neighbours(anchors, coords, np.array([[0, 0, 3, 0, 0, 0, 0, 0]], dtype=np.float32), k=3)
    np.testing.assert_allclose(placed, [[0, 10]], atol=1e-3)


def test_an_unknown_placement_is_named(vectors):
    with pytest.raises(ValueError, match="placement must be one of"):
        project(vectors, placement="random")


def test_recipes_of_one_kind_sit_closer_together_on_the_map(vectors, recipes):
    coords = project(vectors).coords
    kind = np.array([r["category"] for r in recipes])
    dist = np.linalg.norm(coords[:, None] - coords[None], axis=-1)
    same, other = dist[kind[:, None] == kind[None]].mean(), dist[kind[:, None] != kind[None]].mean()
    assert same < other


def test_a_projection_is_cached_by_data_and_parameters(vectors, tmp_path):
    first = project(vectors, cache_dir=tmp_path)
    again = project(vectors, cache_dir=tmp_path)
    assert (first.from_cache, again.from_cache) == (False, True)
    np.testing.assert_array_equal(first.coords, again.coords)
    assert project(vectors, cache_dir=tmp_path, n_neighbors=5).from_cache is False
    assert project(vectors[:60], cache_dir=tmp_path).from_cache is False


def test_a_handful_of_items_is_still_drawn():
    proj = project(np.eye(3, 8, dtype=np.float32))
    assert proj.coords.shape == (3, 2) and proj.method == "pca"


def test_an_empty_file_cannot_be_projected():
    with pytest.raises(ValueError, match="no vectors to project: the file holds no items"):
        project(np.zeros((0, 8), dtype=np.float32))


def test_category_comes_from_the_field_then_from_the_export_text():
    assert category_of("Nasi goreng. Categories: Nasi, Telur.") == "Nasi"
    assert category_of("whatever", ["Tempe", "Tahu"]) == "Tempe"
    assert category_of("no categories here") == "(none)"


def test_an_embedding_file_loads_with_titles_texts_and_categories(vectors, recipes, tmp_path):
    items = [EmbeddedItem(r["id"], "recipe", r["text"], v, r["title"]) for r, v in zip(recipes, vectors)]
    [path] = [p for p in write_embeddings(tmp_path, "recipe", items, formats=("parquet",), meta={"model": "m"})
              if p.suffix == ".parquet"]
    data = load_embedding_set(path)
    assert len(data) == 80 and data.dimensions == 384
    assert data.titles[0] == recipes[0]["title"] and data.categories[:1] + data.categories[-1:] == ["Ayam", "Tempe"]
    np.testing.assert_allclose(data.vectors, vectors, atol=1e-6)


def test_the_map_colours_by_category_and_highlights_neighbours(vectors, recipes, tmp_path):
    items = [EmbeddedItem(r["id"], "recipe", r["text"], v, r["title"]) for r, v in zip(recipes, vectors)]
    write_embeddings(tmp_path, "recipe", items, formats=("jsonl",), meta={"model": "m"})
    data = load_embedding_set(tmp_path / "embeddings_recipes.jsonl")
    proj = project(data.vectors, sample=50)
    fig = scatter_figure(data, proj, color_by="category", highlight=[1, 2, 3], selected=0)
    names = [t.name for t in fig.data]
    assert names == ["Ayam", "Tempe", "neighbours", "selected"]
    assert sum(len(t.x) for t in fig.data[:2]) == 80 and len(fig.data[2].x) == 3
    assert {t.type for t in fig.data} == {"scattergl"}
    assert fig.data[0].customdata[0] == 0 and fig.data[0].hovertext[0].startswith(f"<b>{data.titles[0]}</b><br>")
    assert fig.data[0].hovertemplate == "%{hovertext}<extra></extra>"
    np.testing.assert_array_equal(fig.data[3].x, proj.coords[[0], 0])


def _set(recipes, vectors) -> EmbeddingSet:
    return EmbeddingSet([r["id"] for r in recipes], ["recipe"] * 80, [r["title"] for r in recipes],
                        [r["text"] for r in recipes], vectors, [r["category"] for r in recipes], ["f"] * 80)


def test_beyond_the_hover_limit_every_point_is_drawn_and_a_subset_has_hover_text(vectors, recipes):
    fig = scatter_figure(_set(recipes, vectors), project(vectors), color_by="category", hover_limit=30)
    assert sum(len(t.x) for t in fig.data) == 80
    assert sum(len(t.hovertext) for t in fig.data if t.hovertext is not None) == 30
    assert sum(len(t.customdata) for t in fig.data) == 80  # every point has its row: a box selects it too
    assert [(t.name, t.showlegend is not False) for t in fig.data] == [
        ("Ayam", True), ("Ayam", False), ("Tempe", True), ("Tempe", False)]
    assert fig.data[0].marker.color == fig.data[1].marker.color  # one colour per category, hover or not


def test_clusters_are_drawn_named_and_can_be_hidden(vectors, recipes):
    from console.explore.clusters import find_clusters

    data, proj = _set(recipes, vectors), project(vectors)
    found = find_clusters(proj.coords, data.texts, min_size=5)
    fig = scatter_figure(data, proj, color_by="cluster", clusters=found)
    assert [a.text for a in fig.layout.annotations] == [found.names[c] for c in found.ids()]
    assert len(found.names) >= 2 and sum(len(t.x) for t in fig.data) == 80
    row = int(fig.data[0].customdata[0])
    assert fig.data[0].hovertext[0].endswith(f"<br>cluster: {found.names_of_rows()[row]}")
    first = found.ids()[0]
    only = scatter_figure(data, proj, color_by="cluster", clusters=found, shown_clusters=[first])
    assert [a.text for a in only.layout.annotations] == [found.names[first]]
    assert sum(len(t.x) for t in only.data) == found.sizes[first]
    assert not scatter_figure(data, proj, clusters=found, cluster_labels=False).layout.annotations
    with pytest.raises(ValueError, match="needs the clusters"):
        scatter_figure(data, proj, color_by="cluster")


def test_vectors_are_memory_mapped_from_a_cache_written_once(vectors, recipes, tmp_path):
    items = [EmbeddedItem(r["id"], "recipe", r["text"], v, r["title"]) for r, v in zip(recipes, vectors)]
    write_embeddings(tmp_path / "run", "recipe", items, formats=("jsonl",), meta={"model": "m"})
    path = tmp_path / "run" / "embeddings_recipes.jsonl"
    data = load_embedding_set(path, vectors_dir=tmp_path / "cache")
    assert isinstance(data.vectors, np.memmap) and data.vectors.shape == (80, 384)
    np.testing.assert_allclose(data.vectors, vectors, atol=1e-6)
    [cached] = (tmp_path / "cache").glob("vectors-*.npy")
    stamp = cached.stat().st_mtime_ns
    again = load_embedding_set(path, vectors_dir=tmp_path / "cache")
    assert cached.stat().st_mtime_ns == stamp and again.ids == data.ids  # read back, not written again
    assert nearest(again.vectors, vectors[3], k=5) == nearest(vectors, vectors[3], k=5)
    write_embeddings(tmp_path / "run", "recipe", items[:70], formats=("jsonl",), meta={"model": "m"})
    assert load_embedding_set(path, vectors_dir=tmp_path / "cache").vectors.shape == (70, 384)
    assert len(list((tmp_path / "cache").glob("vectors-*.npy"))) == 2
    assert not list((tmp_path / "cache").glob(".*"))  # no temporary file left
