"""The Explore page's engine: map projections (sample, PCA, UMAP), their disk cache, and nearest neighbours.

Vectors come from the real all-MiniLM-L6-v2 over real Indonesian recipe titles (ayam = chicken, tempe = tempeh).
"""
from __future__ import annotations

import numpy as np
import pytest

from conftest import read_demo_recipes
from console.embfiles import EmbeddedItem, write_embeddings
from console.projection import category_of, load_embedding_set, nearest, project, scatter_figure


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
    assert (proj.sample_size, proj.total, proj.sampled) == (80, 80, False)
    assert proj.method == "pca+umap"  # 384 dimensions > 50: PCA first


def test_a_3d_map_has_three_coordinates(vectors):
    assert project(vectors, dims=3).coords.shape == (80, 3)


def test_a_large_set_is_sampled_and_the_sample_size_reported(vectors):
    proj = project(vectors, sample=30)
    assert (proj.sample_size, proj.total, proj.sampled) == (30, 80, True)
    assert len(set(proj.index.tolist())) == 30 and proj.coords.shape == (30, 2)


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
    shown = proj.index.tolist()
    fig = scatter_figure(data, proj, color_by="category", highlight=shown[1:4], selected=shown[0])
    names = [t.name for t in fig.data]
    assert names == ["Ayam", "Tempe", "neighbours", "selected"]
    assert sum(len(t.x) for t in fig.data[:2]) == 50 and len(fig.data[2].x) == 3
    assert fig.data[0].customdata[0][1] == data.titles[shown[0]]
    assert "%{customdata[1]}" in fig.data[0].hovertemplate
