"""Embedding files: every format round-trips ids, texts and float32 vectors exactly; metadata sits beside them."""
from __future__ import annotations

import json

import numpy as np
import pytest

from console import __version__
from console.files.embfiles import (EmbeddedItem, file_stem, find_embedding_file, make_meta, output_path,
                               parse_embedding_name, read_embeddings, read_meta, type_from_stem, write_embeddings)
from console.errors import InputError


def _items(n=5, dim=8, seed=0):
    rng = np.random.default_rng(seed)
    vecs = rng.standard_normal((n, dim)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    texts = ["Nasi goreng 🌶️", "Crème brûlée à la Jawa", "Soto \"ayam\"\nkuah kuning", "Tempe", "Rendang"]
    return [EmbeddedItem(f"recipe-{i}", "recipe", texts[i % len(texts)], vecs[i], title=f"T{i}") for i in range(n)]


META = make_meta(model="m", dimensions=8, normalized=True, dtype="float32", count=0, type_="recipe")


@pytest.mark.parametrize("fmt", ["json", "jsonl", "parquet", "npy"])
def test_each_format_round_trips_ids_texts_and_vectors_exactly(tmp_path, fmt):
    items = _items()
    paths = write_embeddings(tmp_path, "recipe", iter(items), formats=[fmt], meta=META)
    back = list(read_embeddings(paths[0]))
    assert [(b.id, b.type, b.text) for b in back] == [(i.id, i.type, i.text) for i in items]
    for b, i in zip(back, items):
        assert b.embedding.dtype == np.float32
        np.testing.assert_array_equal(b.embedding, i.embedding)


def test_seed_json_format_has_exactly_id_type_text_embedding(tmp_path):
    [path, meta_path] = write_embeddings(tmp_path, "recipe", _items(2), formats=["json"], meta=META)
    assert path.name == "embeddings_recipes.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    assert [sorted(d) for d in data] == [["embedding", "id", "text", "type"]] * 2
    assert data[0]["text"] == "Nasi goreng 🌶️"  # UTF-8, not \u escapes
    assert "🌶️" in path.read_text(encoding="utf-8")


def test_npy_format_writes_a_float32_matrix_and_an_ids_file(tmp_path):
    paths = write_embeddings(tmp_path, "recipe", _items(3), formats=["npy"], meta=META)
    assert [p.name for p in paths] == ["embeddings_recipes.npy", "embeddings_recipes.ids.json",
                                       "embeddings_recipes.meta.json"]
    matrix = np.load(paths[0])
    assert (matrix.shape, matrix.dtype) == ((3, 8), np.float32)
    assert json.loads(paths[1].read_text())[1] == {"id": "recipe-1", "type": "recipe",
                                                   "text": "Crème brûlée à la Jawa", "title": "T1"}


def test_parquet_keeps_the_title_column(tmp_path):
    import pyarrow.parquet as pq

    [path, _] = write_embeddings(tmp_path, "recipe", _items(2), formats=["parquet"], meta=META)
    table = pq.read_table(path)
    assert table.column_names == ["id", "type", "text", "title", "embedding"]
    assert table.column("title").to_pylist() == ["T0", "T1"]


def test_metadata_records_model_count_dimensions_and_tool_version(tmp_path):
    paths = write_embeddings(tmp_path, "recipe", _items(4), formats=["json", "jsonl"], meta=META)
    meta = read_meta(paths[0])
    assert meta == read_meta(paths[1])
    assert {k: meta[k] for k in ("model", "dimensions", "normalized", "dtype", "count", "type", "tool",
                                 "tool_version")} == {
        "model": "m", "dimensions": 8, "normalized": True, "dtype": "float32", "count": 4, "type": "recipe",
        "tool": "embedding-console", "tool_version": __version__}
    assert meta["created_at"].endswith("Z")


def test_an_empty_set_writes_valid_empty_files(tmp_path):
    paths = write_embeddings(tmp_path, "category", [], formats=["json", "jsonl", "parquet"], meta=META)
    for path in paths[:3]:
        assert list(read_embeddings(path)) == []
    assert read_meta(paths[0])["count"] == 0


def test_a_failure_while_writing_leaves_no_half_written_file(tmp_path):
    def items():
        yield from _items(2)
        raise RuntimeError("model crashed")

    with pytest.raises(RuntimeError):
        write_embeddings(tmp_path, "recipe", items(), formats=["json", "npy"], meta=META)
    assert list(tmp_path.iterdir()) == []


def test_reading_an_item_without_embedding_names_file_and_line(tmp_path):
    path = tmp_path / "embeddings_recipes.json"
    path.write_text('[\n{"id": "r1", "type": "recipe", "text": "a", "embedding": [0.1, 0.2]},\n'
                    '{"id": "r2", "type": "recipe", "text": "b"}\n]')
    with pytest.raises(InputError) as info:
        list(read_embeddings(path))
    assert str(info.value) == ('embeddings_recipes.json, line 3: item "r2" has no "embedding" list — '
                               're-create the file with `embedding-console generate`')


def test_reading_mixed_dimensions_names_the_item(tmp_path):
    path = tmp_path / "embeddings_recipes.jsonl"
    path.write_text('{"id": "r1", "embedding": [0.1, 0.2]}\n{"id": "r2", "embedding": [0.1, 0.2, 0.3]}\n')
    with pytest.raises(InputError) as info:
        list(read_embeddings(path))
    assert str(info.value) == ('embeddings_recipes.jsonl, line 2: item "r2" has 3 dimensions, the items before it 2 — '
                               're-create the file with `embedding-console generate`')


@pytest.mark.parametrize("name", ["embeddings_ingredients.jsonl", "embeddings_ingredient.jsonl"])
def test_type_defaults_to_the_one_in_the_file_name(tmp_path, name):
    path = tmp_path / name  # the current name, and the one of earlier runs
    path.write_text('{"id": "i1", "embedding": [0.6, 0.8]}\n')
    [item] = read_embeddings(path)
    assert item.type == "ingredient"


def test_a_renamed_file_takes_its_type_from_its_meta(tmp_path):
    path = tmp_path / "test_embeddings.jsonl"  # the guide's "test_embeddings.json": a name of the user's own
    path.write_text('{"id": "c1", "embedding": [0.6, 0.8]}\n')
    (tmp_path / "test_embeddings.meta.json").write_text(json.dumps({"model": "m", "type": "category"}))
    [item] = read_embeddings(path)
    assert item.type == "category"


# -- names -----------------------------------------------------------------------------------------------------------
def test_the_guides_three_types_get_the_guides_names_and_other_types_keep_theirs(tmp_path):
    assert [file_stem(t) for t in ("recipe", "ingredient", "category", "tag", "menu_item")] == [
        "embeddings_recipes", "embeddings_ingredients", "embeddings_categories", "embeddings_tag",
        "embeddings_menu_item"]
    assert output_path(tmp_path, "category", "parquet") == tmp_path / "embeddings_categories.parquet"
    paths = write_embeddings(tmp_path, "category", _items(2), formats=["json", "jsonl", "parquet", "npy"], meta=META)
    assert [p.name for p in paths] == [
        "embeddings_categories.json", "embeddings_categories.jsonl", "embeddings_categories.parquet",
        "embeddings_categories.npy", "embeddings_categories.ids.json", "embeddings_categories.meta.json"]


def test_names_are_read_back_under_the_current_and_the_earlier_names():
    assert [type_from_stem(s) for s in ("embeddings_recipes", "embeddings_recipe", "embeddings_categories",
                                        "embeddings_category", "embeddings_tag", "embeddings_", "recipes")] == [
        "recipe", "recipe", "category", "category", "tag", None, None]
    assert parse_embedding_name("embeddings_recipes.json") == ("recipe", "json", True)
    assert parse_embedding_name("embeddings_ingredient.parquet") == ("ingredient", "parquet", False)
    assert parse_embedding_name("embeddings_tag.npy") == ("tag", "npy", True)
    for other in ("embeddings_recipes.meta.json", "embeddings_recipes.ids.json", "recipes.json", "embeddings_x.csv"):
        assert parse_embedding_name(other) is None


def test_find_embedding_file_takes_the_current_name_first_then_the_earlier_one(tmp_path):
    assert find_embedding_file(tmp_path, "recipe") is None
    (tmp_path / "embeddings_recipe.json").write_text("[]")
    assert find_embedding_file(tmp_path, "recipe") == tmp_path / "embeddings_recipe.json"
    assert find_embedding_file(tmp_path, "recipe", "jsonl") is None
    (tmp_path / "embeddings_recipes.json").write_text("[]")
    assert find_embedding_file(tmp_path, "recipe") == tmp_path / "embeddings_recipes.json"
    (tmp_path / "embeddings_tag.jsonl").write_text("")
    assert find_embedding_file(tmp_path, "tag", "jsonl") == tmp_path / "embeddings_tag.jsonl"
