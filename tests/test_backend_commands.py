"""The backend's management commands as a user runs them (real subprocesses) against the real test Neo4j:
load_demo_data -> export_data_for_embeddings -> the console's generator (MiniLM) -> import_embeddings."""
from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "backend"))
from conftest import empty_database  # noqa: E402
from recipes.testing import free_port, manage  # noqa: E402

ORIGINAL_ID = "recipe-4474061"  # "Orek tempe manis pedas super simple", first row of tempe.csv.gz


@pytest.fixture(scope="module")
def env(neo4j_env):
    return dict(neo4j_env)


@pytest.fixture(scope="module")
def pipeline(neo4j_driver, neo4j_settings, env, tmp_path_factory, minilm_path):
    """300 real recipes loaded and exported, and embedded by the console's CLI with MiniLM."""
    empty_database(neo4j_driver, neo4j_settings["database"])
    base = tmp_path_factory.mktemp("pipeline")
    load = manage("load_demo_data", "--limit", "300", "--verbosity", "0", env=env)
    manage("export_data_for_embeddings", "--output-dir", str(base / "export"), "--verbosity", "0", env=env)
    subprocess.run(
        [sys.executable, str(ROOT / "external_embedding_generator.py"), "--input-dir", str(base / "export"),
         "--output-dir", str(base / "embeddings"), "--model", str(minilm_path), "--batch-size", "32",
         "--format", "json,jsonl,parquet", "--device", "cpu", "--quiet"],
        check=True, capture_output=True, text=True,
    )
    return {"dir": base, "export": base / "export", "emb": base / "embeddings", "load": load}


@pytest.fixture
def no_embeddings(pipeline, neo4j_driver, neo4j_settings):
    """The loaded graph without any embedding, vector index or embedding space."""
    db = neo4j_settings["database"]
    neo4j_driver.execute_query(
        "MATCH (n) WHERE n.embedding IS NOT NULL REMOVE n.embedding, n.embedding_model, n.embedding_dimensions, "
        "n.embedding_updated_at, n.embedding_hash", database_=db)
    neo4j_driver.execute_query("MATCH (s:EmbeddingSpace) DELETE s", database_=db)
    for record in neo4j_driver.execute_query(
            "SHOW VECTOR INDEXES YIELD name RETURN name", database_=db).records:
        neo4j_driver.execute_query(f"DROP INDEX `{record['name']}`", database_=db)
    return pipeline


def count_embedded(driver, label="Recipe") -> int:
    return driver.execute_query(f"MATCH (n:{label}) WHERE n.embedding IS NOT NULL RETURN count(n) AS c"
                                ).records[0]["c"]


# -- load_demo_data ---------------------------------------------------------------------------------------------
def test_load_demo_data_builds_the_graph_from_the_demo_recipes(pipeline, neo4j_driver):
    assert "Loaded 300 recipes from" in pipeline["load"].stdout
    counts = neo4j_driver.execute_query(
        "MATCH (c:Category)<-[:IN_CATEGORY]-(r:Recipe) RETURN c.name AS name, count(r) AS n ORDER BY name").records
    # 50 new recipes from each file; a recipe listed in two files is in both categories
    assert [r["name"] for r in counts] == ["Ayam", "Ikan", "Sapi", "Tahu", "Telur", "Tempe"]
    assert all(r["n"] >= 50 for r in counts)
    assert neo4j_driver.execute_query("MATCH (r:Recipe) RETURN count(r) AS n").records[0]["n"] == 300
    ingredients = neo4j_driver.execute_query(
        "MATCH (:Recipe {id: $id})-[h:HAS_INGREDIENT]->(i:Ingredient) RETURN i.id AS id ORDER BY h.position",
        id=ORIGINAL_ID).records
    assert [r["id"] for r in ingredients][:4] == [
        "ingredient-tempe", "ingredient-cabe-gendot", "ingredient-cabe-keriting", "ingredient-cabe-rawit-merah"]


def test_load_demo_data_twice_changes_no_counts(pipeline, env, neo4j_driver):
    query = "MATCH (n) OPTIONAL MATCH (n)-[r]->() RETURN count(DISTINCT n) AS nodes, count(r) AS rels"
    before = neo4j_driver.execute_query(query).records[0].data()
    manage("load_demo_data", "--limit", "300", "--verbosity", "0", env=env)
    assert neo4j_driver.execute_query(query).records[0].data() == before


def test_load_demo_data_without_the_data_folder_says_where_to_point_it(env, tmp_path):
    proc = manage("load_demo_data", "--data-dir", str(tmp_path), env=env, check=False)
    assert proc.returncode == 1
    assert f"CommandError: No recipe files (*.csv.gz) in {tmp_path}: pass --data-dir or set DEMO_DATA_DIR" \
        in proc.stderr


# -- export_data_for_embeddings -----------------------------------------------------------------------------------
def test_export_writes_the_three_files_with_the_seed_text(pipeline):
    recipes = json.loads((pipeline["export"] / "recipes.json").read_text(encoding="utf-8"))
    ingredients = json.loads((pipeline["export"] / "ingredients.json").read_text(encoding="utf-8"))
    categories = json.loads((pipeline["export"] / "categories.json").read_text(encoding="utf-8"))
    assert (len(recipes), len(categories)) == (300, 6) and len(ingredients) > 500
    orek = next(r for r in recipes if r["id"] == ORIGINAL_ID)
    assert orek["text"] == (
        "Orek tempe manis pedas super simple. Potong2 tempe sesuai selera lalu goreng sebentar. Tumis duo bawang "
        "dan semua cabe (cabe bisa sesuai selera ya pedesnya suka segimana) sampai harum. Masukkan tempe, kecap, "
        "saus tiram, saus tomat… Ingredients: Tempe, Cabe gendot, Cabe keriting, Cabe rawit merah, Bawang merah, "
        "Bawang putih, Kecap, Saus tiram, Saus tomat, Kaldu bubuk, Garam, Gula. Categories: Tempe."
    )
    assert {k: orek[k] for k in ("type", "title", "categories")} == {
        "type": "recipe", "title": "Orek tempe manis pedas super simple", "categories": ["Tempe"]}
    tempe = next(c for c in categories if c["id"] == "category-tempe")
    assert tempe["text"].startswith("Tempe. Category of 54 recipes. Ingredients: Garam, Bawang putih, Tempe, ")
    assert all(i["type"] == "ingredient" and i["text"] for i in ingredients)


def test_export_pages_through_the_graph_with_the_same_result(pipeline, env, tmp_path):
    manage("export_data_for_embeddings", "--output-dir", str(tmp_path), "--type", "recipe", "--page-size", "7",
           "--verbosity", "0", env=env)
    assert (tmp_path / "recipes.json").read_bytes() == (pipeline["export"] / "recipes.json").read_bytes()
    assert not (tmp_path / "ingredients.json").exists()


def test_export_as_jsonl_and_csv_with_a_limit(pipeline, env, tmp_path):
    manage("export_data_for_embeddings", "--output-dir", str(tmp_path), "--format", "jsonl", "--limit", "5",
           "--verbosity", "0", env=env)
    lines = (tmp_path / "recipes.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 5 and json.loads(lines[0])["type"] == "recipe"
    manage("export_data_for_embeddings", "--output-dir", str(tmp_path), "--format", "csv", "--type", "category",
           "--verbosity", "0", env=env)
    with open(tmp_path / "categories.csv", encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["id"] for r in rows] == ["category-ayam", "category-ikan", "category-sapi", "category-tahu",
                                       "category-telur", "category-tempe"]


def test_export_with_a_limit_warns_before_it_overwrites_a_full_export(pipeline, env, tmp_path):
    manage("export_data_for_embeddings", "--output-dir", str(tmp_path), "--type", "category", "--verbosity", "0",
           env=env)
    proc = manage("export_data_for_embeddings", "--output-dir", str(tmp_path), "--type", "category", "--limit", "2",
                  "--verbosity", "0", env=env)
    assert (f"Warning: {tmp_path / 'categories.json'} holds more than 2 records (an earlier export without --limit?); "
            "--limit 2 now overwrites it with the first 2.") in proc.stderr
    assert len(json.loads((tmp_path / "categories.json").read_text())) == 2
    again = manage("export_data_for_embeddings", "--output-dir", str(tmp_path), "--type", "category", "--limit",
                   "2", "--verbosity", "0", env=env)  # a limited export over a limited one: nothing to lose
    assert "Warning" not in again.stderr


# -- import_embeddings --------------------------------------------------------------------------------------------
def test_import_dry_run_reports_and_writes_nothing(no_embeddings, env, neo4j_driver):
    path = no_embeddings["emb"] / "embeddings_recipes.json"
    proc = manage("import_embeddings", "--embedding-file", str(path), "--dry-run", env=env)
    assert "Dry run, nothing written: embeddings_recipes.json" in proc.stdout
    assert "300 vectors: 300 would write, 0 unchanged, 0 unknown ids, 0 rejected" in proc.stdout
    assert count_embedded(neo4j_driver) == 0
    assert neo4j_driver.execute_query("SHOW VECTOR INDEXES YIELD name RETURN name").records == []


def test_import_writes_creates_the_index_and_a_second_run_changes_nothing(no_embeddings, env, neo4j_driver):
    path = no_embeddings["emb"] / "embeddings_recipes.jsonl"
    first = manage("import_embeddings", "--embedding-file", str(path), env=env)
    assert "300 vectors: 300 written, 0 unchanged, 0 unknown ids, 0 rejected" in first.stdout
    assert "Created vector index recipe_embedding" in first.stdout
    stamp = "MATCH (n:Recipe) RETURN collect(n.embedding_updated_at) AS t"
    before = neo4j_driver.execute_query(stamp).records[0]["t"]
    second = manage("import_embeddings", "--embedding-file", str(path), env=env)
    assert "300 vectors: 0 written, 300 unchanged, 0 unknown ids, 0 rejected" in second.stdout
    assert neo4j_driver.execute_query(stamp).records[0]["t"] == before
    meta = json.loads((no_embeddings["emb"] / "embeddings_recipes.meta.json").read_text())
    space = neo4j_driver.execute_query("MATCH (s:EmbeddingSpace {type: 'recipe'}) RETURN s.model AS model, "
                                       "s.dimensions AS dims").records[0]
    assert (space["model"], space["dims"]) == (meta["model"], 384)


def test_import_reads_a_file_of_an_earlier_run_under_its_earlier_name(no_embeddings, env, tmp_path, neo4j_driver):
    """Runs made before the guide's names wrote embeddings_recipe.jsonl + embeddings_recipe.meta.json: the type comes
    from that name (the items here do not say theirs) and the model from that .meta.json."""
    lines = (no_embeddings["emb"] / "embeddings_recipes.jsonl").read_text().splitlines()
    untyped = [json.dumps({k: v for k, v in json.loads(line).items() if k != "type"}) for line in lines]
    (tmp_path / "embeddings_recipe.jsonl").write_text("\n".join(untyped) + "\n")
    meta = (no_embeddings["emb"] / "embeddings_recipes.meta.json").read_text()
    (tmp_path / "embeddings_recipe.meta.json").write_text(meta)
    proc = manage("import_embeddings", "--embedding-file", str(tmp_path / "embeddings_recipe.jsonl"), env=env)
    assert f"embeddings_recipe.jsonl ({json.loads(meta)['model']}): 300 vectors: 300 written, 0 unchanged" \
        in proc.stdout
    assert count_embedded(neo4j_driver) == 300


def test_import_shows_the_vector_index_being_built(no_embeddings, env):
    proc = manage("import_embeddings", "--embedding-file", str(no_embeddings["emb"] / "embeddings_recipes.json"),
                  env=env)
    assert "building recipe_embedding: 100%" in proc.stderr  # a second bar, after the vectors' bar


def test_import_reads_parquet_too(no_embeddings, env, neo4j_driver):
    path = no_embeddings["emb"] / "embeddings_ingredients.parquet"
    proc = manage("import_embeddings", "--embedding-file", str(path), env=env)
    assert "0 unknown ids, 0 rejected" in proc.stdout
    assert count_embedded(neo4j_driver, "Ingredient") > 500


def test_import_reports_unknown_ids(no_embeddings, env, tmp_path, neo4j_driver):
    items = json.loads((no_embeddings["emb"] / "embeddings_categories.json").read_text())
    items[0]["id"] = "category-rendang"
    path = tmp_path / "embeddings_categories.json"
    path.write_text(json.dumps(items))
    proc = manage("import_embeddings", "--embedding-file", str(path), "--model", "all-MiniLM-L6-v2", env=env)
    assert "6 vectors: 5 written, 0 unchanged, 1 unknown ids, 0 rejected" in proc.stdout
    assert "1 ids are not in the graph (not written): category-rendang" in proc.stderr


def test_a_nan_in_the_file_stops_before_anything_is_written(no_embeddings, env, tmp_path, neo4j_driver):
    lines = (no_embeddings["emb"] / "embeddings_recipes.jsonl").read_text().splitlines()
    lines[41] = lines[41].replace("[", "[NaN, ", 1)
    path = tmp_path / "embeddings_recipes.jsonl"
    path.write_text("\n".join(lines) + "\n")
    proc = manage("import_embeddings", "--embedding-file", str(path), "--model", "m", env=env, check=False)
    assert proc.returncode == 1
    assert "embeddings_recipes.jsonl, line 42: item " in proc.stderr
    assert '"embedding" must be a flat list of finite numbers' in proc.stderr
    assert "(nothing was imported)" in proc.stderr
    assert count_embedded(neo4j_driver) == 0


def test_a_dimension_mismatch_with_the_index_is_a_clear_error(no_embeddings, env, tmp_path, neo4j_driver):
    manage("import_embeddings", "--embedding-file", str(no_embeddings["emb"] / "embeddings_recipes.json"), env=env)
    rng = np.random.default_rng(0)
    items = [{"id": ORIGINAL_ID, "type": "recipe", "embedding": rng.standard_normal(1024).tolist()}]
    path = tmp_path / "embeddings_recipes.json"
    path.write_text(json.dumps(items))
    proc = manage("import_embeddings", "--embedding-file", str(path), "--model", "Qwen/Qwen3-Embedding-0.6B",
                  env=env, check=False)
    assert proc.returncode == 1
    assert ("CommandError: The vector index 'recipe_embedding' on :Recipe(embedding) has 384 dimensions but "
            "embeddings_recipes.json has 1024-dimensional recipe vectors. Use a model with 384 dimensions, or drop "
            "the index (DROP INDEX recipe_embedding) to re-embed every recipe with the new model.") in proc.stderr


def test_a_file_without_metadata_needs_the_model_name(no_embeddings, env, tmp_path):
    path = tmp_path / "embeddings_recipes.json"
    path.write_text((no_embeddings["emb"] / "embeddings_recipes.json").read_text())
    proc = manage("import_embeddings", "--embedding-file", str(path), env=env, check=False)
    assert proc.returncode == 1
    assert ("CommandError: embeddings_recipes.json: no .meta.json beside it says which model made the vectors: "
            "pass --model NAME (semantic search embeds queries with that model)") in proc.stderr


def test_import_of_a_file_that_does_not_exist_says_so(no_embeddings, env, tmp_path):
    path = tmp_path / "embeddings_recipe.json"  # a typo: the generator writes embeddings_recipes.json
    proc = manage("import_embeddings", "--embedding-file", str(path), env=env, check=False)
    assert proc.returncode == 1
    assert f"CommandError: {path}: no such file — pass the embeddings_<type>.json" in proc.stderr
    assert ".meta.json" not in proc.stderr and "--model" not in proc.stderr


def test_import_that_writes_nothing_because_no_id_is_known_exits_non_zero(no_embeddings, env, tmp_path,
                                                                          neo4j_driver):
    items = json.loads((no_embeddings["emb"] / "embeddings_categories.json").read_text())
    for n, item in enumerate(items):
        item["id"] = f"category-elsewhere-{n}"
    path = tmp_path / "embeddings_categories.json"
    path.write_text(json.dumps(items))
    proc = manage("import_embeddings", "--embedding-file", str(path), "--model", "m", env=env, check=False)
    assert proc.returncode == 1
    assert "6 vectors: 0 written, 0 unchanged, 6 unknown ids, 0 rejected" in proc.stdout
    assert ("CommandError: embeddings_categories.json: no vector was written, every item was rejected or is not in "
            "the graph") in proc.stderr
    assert count_embedded(neo4j_driver, "Category") == 0


def test_import_leaves_out_the_items_of_an_exclusion_file(no_embeddings, env, tmp_path, neo4j_driver):
    """The console's exclusions.jsonl (JSON Lines of id, note, at): those items are not written; an id of no file
    is counted, not fatal."""
    path = no_embeddings["emb"] / "embeddings_recipes.jsonl"
    first_ids = [json.loads(line)["id"] for line in path.read_text().splitlines()[:2]]
    exclusions = tmp_path / "exclusions.jsonl"
    exclusions.write_text("".join(json.dumps({"id": i, "note": "ganda", "at": "2026-11-28T12:00:00Z"}) + "\n"
                                  for i in [*first_ids, "recipe-not-here"]))
    proc = manage("import_embeddings", "--embedding-file", str(path), "--exclude", str(exclusions), env=env)
    assert "298 vectors: 298 written, 0 unchanged, 0 unknown ids, 0 rejected; 2 excluded items left out" in proc.stdout
    assert "1 ids of exclusions.jsonl match no item of the imported files (ignored)" in proc.stderr
    embedded = {r["id"] for r in neo4j_driver.execute_query(
        "MATCH (n:Recipe) WHERE n.embedding IS NOT NULL RETURN n.id AS id").records}
    assert len(embedded) == 298 and not embedded & set(first_ids)
    # items excluded after they were imported lose their vector (a dry run only counts them)
    ids = [json.loads(line)["id"] for line in path.read_text().splitlines()]
    every = tmp_path / "every.jsonl"
    every.write_text("".join(json.dumps({"id": i}) + "\n" for i in ids))
    proc = manage("import_embeddings", "--embedding-file", str(path), "--exclude", str(every), "--dry-run", env=env)
    assert "embeddings_recipes.jsonl: all its 300 items are excluded by every.jsonl: nothing to write" in proc.stdout
    assert ("0 vectors: 0 would write, 0 unchanged, 0 unknown ids, 0 rejected; 300 excluded items left out, 298 of "
            "their vectors would be removed from Neo4j") in proc.stdout
    assert count_embedded(neo4j_driver) == 298
    exclusions.write_text("".join(json.dumps({"id": i}) + "\n" for i in ids[2:4]))  # the first two undone
    proc = manage("import_embeddings", "--embedding-file", str(path), "--exclude", str(exclusions), env=env)
    assert ("298 vectors: 2 written, 296 unchanged, 0 unknown ids, 0 rejected; 2 excluded items left out, 2 of their "
            "vectors removed from Neo4j") in proc.stdout
    embedded = {r["id"] for r in neo4j_driver.execute_query(
        "MATCH (n:Recipe) WHERE n.embedding IS NOT NULL RETURN n.id AS id").records}
    assert embedded == set(ids) - set(ids[2:4])


@pytest.mark.parametrize("content, message", [
    ('{"id": "recipe-1"}\nnot json\n', "exclusions.jsonl, line 2: not valid JSON at column 1: Expecting value"),
    ('{"note": "no id"}\n', 'exclusions.jsonl, line 1: no "id"'),
])
def test_a_bad_exclusion_file_stops_before_anything_is_written(no_embeddings, env, tmp_path, neo4j_driver, content,
                                                               message):
    exclusions = tmp_path / "exclusions.jsonl"
    exclusions.write_text(content)
    proc = manage("import_embeddings", "--embedding-file", str(no_embeddings["emb"] / "embeddings_recipes.json"),
                  "--exclude", str(exclusions), env=env, check=False)
    assert proc.returncode == 1
    assert f"CommandError: {message} — each line must be a JSON object" in proc.stderr
    assert proc.stderr.rstrip().endswith("(nothing was imported)")
    assert count_embedded(neo4j_driver) == 0


def test_commands_say_when_neo4j_is_down(pipeline, env):
    uri = f"bolt://127.0.0.1:{free_port()}"
    proc = manage("export_data_for_embeddings", "--output-dir", "/tmp/never", env={**env, "NEO4J_URI": uri},
                  check=False)
    assert proc.returncode == 1
    assert (f"CommandError: Cannot reach Neo4j at {uri}: is it running? Start it with scripts/neo4j.sh start or "
            "set NEO4J_URI") in proc.stderr
