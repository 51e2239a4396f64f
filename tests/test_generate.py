"""Generation end to end (library level): validate first, embed in checkpointed batches, write the files;
re-runs reuse finished vectors, changed texts alone are embedded again, changed settings never mix vectors."""
from __future__ import annotations

import json

import numpy as np
import pytest
from sentence_transformers import SentenceTransformer

from conftest import StopAfter, read_demo_recipes
from console.files.embfiles import read_embeddings, read_meta
from console.errors import ValidationFailed
from console.generation.generate import GenerateOptions, generate


def recipe_records(n, name="ayam"):
    return [{"id": f"recipe-{i}", "type": "recipe", "title": r["Title"],
             "text": f"{r['Title']}. Bahan: {r['Ingredients'].replace('--', ', ')}"}
            for i, r in enumerate(read_demo_recipes(name, limit=n))]


def write_json(path, items):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(items, ensure_ascii=False, indent=1), encoding="utf-8")
    return path


@pytest.fixture
def export(tmp_path):
    recipes = recipe_records(24)
    ingredients = [{"id": f"ingredient-{w}", "type": "ingredient", "name": w, "text": w}
                   for w in ["ayam", "bawang putih", "kecap manis", "cabai rawit 🌶️"]]
    write_json(tmp_path / "in" / "recipes.json", recipes)
    write_json(tmp_path / "in" / "ingredients.json", ingredients)
    return tmp_path / "in", recipes, ingredients


def opts(tmp_path, input_dir, model, **kw):
    return GenerateOptions(**{"input_dir": input_dir, "output_dir": tmp_path / "out", "model": str(model),
                              "batch_size": 5, "device": "cpu", **kw})


def _cos(a, b):
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def test_writes_one_seed_file_per_type_equal_to_a_plain_encode(tmp_path, export, minilm_path):
    input_dir, recipes, ingredients = export
    result = generate(opts(tmp_path, input_dir, minilm_path))
    assert result.counts == {"ingredient": 4, "recipe": 24}
    assert (result.embedded, result.reused) == (28, 0)
    items = list(read_embeddings(tmp_path / "out" / "embeddings_recipes.json"))
    assert [i.id for i in items] == [r["id"] for r in recipes]
    plain = SentenceTransformer(str(minilm_path), device="cpu").encode([r["text"] for r in recipes])
    assert _cos(np.vstack([i.embedding for i in items]), plain).min() > 0.9999
    meta = read_meta(tmp_path / "out" / "embeddings_ingredients.json")
    assert (meta["model"], meta["dimensions"], meta["count"], meta["normalized"]) == (str(minilm_path), 384, 4, True)


def test_a_second_run_reuses_every_vector_and_writes_the_same_files(tmp_path, export, minilm_path):
    input_dir, _, _ = export
    generate(opts(tmp_path, input_dir, minilm_path))
    first = (tmp_path / "out" / "embeddings_recipes.json").read_text()
    again = generate(opts(tmp_path, input_dir, minilm_path))
    assert (again.embedded, again.reused) == (0, 28)
    assert (tmp_path / "out" / "embeddings_recipes.json").read_text() == first


def test_incremental_run_embeds_only_new_and_changed_texts(tmp_path, export, minilm_path):
    input_dir, recipes, _ = export
    generate(opts(tmp_path, input_dir, minilm_path))
    recipes[3]["text"] += " Tambah jeruk nipis."
    recipes.append({"id": "recipe-new", "type": "recipe", "text": "Ayam bakar madu"})
    write_json(input_dir / "recipes.json", recipes)
    result = generate(opts(tmp_path, input_dir, minilm_path))
    assert (result.embedded, result.reused) == (2, 27)
    assert "recipe: 23 of 25 vectors reused from the checkpoint" in result.messages


def test_changed_settings_never_reuse_vectors_of_other_settings(tmp_path, export, minilm_path):
    input_dir, _, _ = export
    generate(opts(tmp_path, input_dir, minilm_path))
    result = generate(opts(tmp_path, input_dir, minilm_path, dimensions=128))
    assert (result.embedded, result.reused) == (28, 0)
    items = list(read_embeddings(tmp_path / "out" / "embeddings_recipes.json"))
    assert {len(i.embedding) for i in items} == {128}


def test_records_with_the_same_text_are_embedded_once(tmp_path, minilm_path):
    write_json(tmp_path / "in" / "c.json", [{"id": f"c{i}", "type": "category", "text": "Ayam"} for i in range(3)])
    result = generate(opts(tmp_path, tmp_path / "in", minilm_path))
    assert (result.embedded, result.counts) == (1, {"category": 3})
    vecs = [i.embedding for i in read_embeddings(tmp_path / "out" / "embeddings_categories.json")]
    np.testing.assert_array_equal(vecs[0], vecs[2])


def test_invalid_records_stop_the_run_before_any_model_is_loaded(tmp_path, export):
    input_dir, recipes, _ = export
    recipes[5]["text"] = ""
    write_json(input_dir / "recipes.json", recipes)
    with pytest.raises(ValidationFailed) as info:
        generate(opts(tmp_path, input_dir, "no-such/model-it-is-never-loaded"))
    assert str(info.value) == (
        "1 invalid record; nothing was embedded:\n"
        '  recipes.json, line 32 (id "recipe-5"): "text" is empty — fill it in or run with --on-invalid skip\n'
        f"All of them are listed in {tmp_path / 'out' / 'rejects.jsonl'}.\n"
        "Fix them, or run with --on-invalid skip to embed the valid records and list the rest.")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["rejects.jsonl"]


def test_on_invalid_skip_embeds_the_rest_and_lists_the_rejects(tmp_path, export, minilm_path):
    input_dir, recipes, _ = export
    recipes[5]["text"] = ""
    recipes[6]["id"] = recipes[7]["id"]
    write_json(input_dir / "recipes.json", recipes)
    result = generate(opts(tmp_path, input_dir, minilm_path, on_invalid="skip"))
    assert result.counts == {"ingredient": 4, "recipe": 22}
    assert result.messages[0] == f"skipped 2 invalid records; listed in {tmp_path / 'out' / 'rejects.jsonl'}"
    rejects = [json.loads(x) for x in (tmp_path / "out" / "rejects.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rejects] == ["recipe-5", "recipe-7"]


def test_dry_run_validates_and_writes_nothing(tmp_path, export):
    input_dir, _, _ = export
    result = generate(opts(tmp_path, input_dir, "no-such/model-it-is-never-loaded", dry_run=True))
    assert result.report.counts == {"ingredient": 4, "recipe": 24}
    assert not (tmp_path / "out").exists()


def test_limit_takes_the_first_valid_records(tmp_path, export, minilm_path):
    input_dir, _, _ = export
    result = generate(opts(tmp_path, input_dir, minilm_path, limit=6))
    assert result.counts == {"ingredient": 4, "recipe": 2}  # ingredients.json comes first by name


def test_progress_counts_up_to_the_total_with_a_rate(tmp_path, export, minilm_path):
    input_dir, _, _ = export
    events = []
    generate(opts(tmp_path, input_dir, minilm_path), progress=events.append)
    counts = [e.done for e in events if not e.message]
    assert counts == sorted(counts) and counts[-1] == 28
    assert {e.total for e in events} == {28}
    assert events[-1].rate > 0 and events[-1].eta_s == 0
    assert {e.batch_size for e in events if not e.message} == {5}


def test_progress_file_tells_the_web_console_where_the_run_is(tmp_path, export, minilm_path):
    input_dir, _, _ = export
    status_path = tmp_path / "status.json"
    seen = []

    def watch(event):
        if status_path.exists():
            seen.append(json.loads(status_path.read_text()))

    generate(opts(tmp_path, input_dir, minilm_path, progress_file=status_path), progress=watch)
    final = json.loads(status_path.read_text())
    assert final["state"] == "done" and (final["done"], final["total"]) == (28, 28)
    assert final["files"] == {"ingredient": {"done": 4, "total": 4}, "recipe": {"done": 24, "total": 24}}
    assert str(tmp_path / "out" / "embeddings_recipes.json") in final["outputs"]
    assert set(final) >= {"rate", "eta_s", "batch_size", "gpu_mem_mb", "message", "pid"}
    assert any(s["state"] == "running" and 0 < s["done"] < 28 for s in seen)


def test_progress_file_reports_a_failure_with_the_users_message(tmp_path, export):
    input_dir, recipes, _ = export
    del recipes[0]["id"]
    write_json(input_dir / "recipes.json", recipes)
    with pytest.raises(ValidationFailed):
        generate(opts(tmp_path, input_dir, "unused", progress_file=tmp_path / "status.json"))
    status = json.loads((tmp_path / "status.json").read_text())
    assert status["state"] == "failed"
    assert status["message"].startswith("1 invalid record; nothing was embedded:\n  recipes.json, line 2: record has "
                                        'no "id"')


def test_all_four_formats_hold_the_same_vectors(tmp_path, export, minilm_path):
    input_dir, _, _ = export
    generate(opts(tmp_path, input_dir, minilm_path, formats=["json", "jsonl", "parquet", "npy"]))
    out = tmp_path / "out"
    sets = [list(read_embeddings(out / f"embeddings_recipes.{ext}")) for ext in ("json", "jsonl", "parquet", "npy")]
    for other in sets[1:]:
        assert [i.id for i in other] == [i.id for i in sets[0]]
        np.testing.assert_array_equal(np.vstack([i.embedding for i in other]),
                                      np.vstack([i.embedding for i in sets[0]]))


def test_qwen3_run_records_the_query_prompt_in_the_metadata(tmp_path, export, tiny_qwen3_path):
    input_dir, _, _ = export
    generate(opts(tmp_path, input_dir, tiny_qwen3_path, limit=8))
    meta = read_meta(tmp_path / "out" / "embeddings_recipes.json")
    assert meta["query_prompt"].startswith("Instruct: Given a web search query")
    assert (meta["prompt"], meta["dimensions"]) == (None, 64)


def test_reuse_takes_unchanged_vectors_from_an_earlier_runs_folder(tmp_path, export, minilm_path):
    input_dir, recipes, _ = export
    generate(opts(tmp_path, input_dir, minilm_path))
    recipes[0]["text"] = "Ayam goreng kremes"
    write_json(input_dir / "recipes.json", recipes)
    later = GenerateOptions(input_dir=input_dir, output_dir=tmp_path / "run2", model=str(minilm_path), batch_size=5,
                            device="cpu", reuse=[tmp_path / "out"])
    result = generate(later)
    assert (result.embedded, result.reused) == (1, 27)
    assert "recipe: 23 vectors taken from " + str(tmp_path / "out") in result.messages
    again = generate(later)  # the new folder now holds every vector itself
    assert (again.embedded, again.reused) == (0, 28)


def test_small_chunks_give_the_same_output_and_embed_each_text_once(tmp_path, export, minilm_path):
    input_dir, recipes, _ = export
    for i in range(4):  # texts repeated in a later chunk reuse the earlier vector
        recipes[20 + i]["text"] = recipes[i]["text"]
    write_json(input_dir / "recipes.json", recipes)
    result = generate(opts(tmp_path, input_dir, minilm_path, chunk_size=7))
    assert (result.embedded, result.counts) == (24, {"ingredient": 4, "recipe": 24})
    items = list(read_embeddings(tmp_path / "out" / "embeddings_recipes.json"))
    assert [i.id for i in items] == [r["id"] for r in recipes]
    for i in range(4):
        np.testing.assert_array_equal(items[20 + i].embedding, items[i].embedding)
    plain = SentenceTransformer(str(minilm_path), device="cpu").encode([r["text"] for r in recipes])
    assert _cos(np.vstack([i.embedding for i in items]), plain).min() > 0.9999
    assert not list((tmp_path / "out").glob(".embeddings_*"))  # the scratch vectors are gone


# -- issue 13 §4: --max-tokens (token-budget batches) -------------------------------------------------------------
def _checkpoint_batches(out):
    """The ids of each checkpointed batch, in file order."""
    return [json.loads(line)["ids"] for path in sorted((out / ".checkpoints").glob("*.jsonl"))
            for line in path.read_text(encoding="utf-8").splitlines()]


def test_a_token_budget_cuts_the_batches_and_writes_the_files_of_count_based_batches(tmp_path, export, minilm_path):
    from console.generation.engine import Embedder

    input_dir, recipes, ingredients = export
    plain = generate(opts(tmp_path, input_dir, minilm_path, output_dir=tmp_path / "plain"))
    budget = generate(opts(tmp_path, input_dir, minilm_path, batch_size=64, max_tokens=600))
    assert (budget.embedded, budget.reused, budget.counts) == (28, 0, plain.counts)
    assert not [m for m in budget.messages if "--max-tokens" in m]  # 64 x 256 tokens > 600: nothing to say
    for name in ("embeddings_recipes.json", "embeddings_ingredients.json"):
        got, want = (list(read_embeddings(tmp_path / d / name)) for d in ("out", "plain"))
        assert [i.id for i in got] == [i.id for i in want]
        assert _cos(np.vstack([i.embedding for i in got]), np.vstack([i.embedding for i in want])).min() > 0.9999
    assert read_meta(tmp_path / "out" / "embeddings_recipes.json").keys() == read_meta(
        tmp_path / "plain" / "embeddings_recipes.json").keys()  # batching is not part of the vectors' record
    tokens = dict(zip([r["id"] for r in recipes + ingredients], Embedder(str(minilm_path), device="cpu").token_lengths(
        [r["text"] for r in recipes + ingredients])))
    batches = _checkpoint_batches(tmp_path / "out")
    assert sorted(i for b in batches for i in b) == sorted(tokens)  # each text once
    assert all(len(b) * max(tokens[i] for i in b) <= 600 for b in batches)
    assert [len(b) for b in batches if b[0].startswith("ingredient-")] == [4]  # 4-7 tokens each: one batch
    recipe_batches = [len(b) for b in batches if b[0].startswith("recipe-")]  # 256 down to 67 tokens
    assert recipe_batches[0] == 2 and max(recipe_batches) >= 5 and len(set(recipe_batches)) >= 3  # long: 2 a batch


def test_a_budget_below_a_texts_tokens_embeds_that_text_alone_and_says_so(tmp_path, export, minilm_path):
    input_dir, recipes, _ = export
    result = generate(opts(tmp_path, input_dir, minilm_path, batch_size=64, max_tokens=20))
    assert "--max-tokens 20 is below the model's max length (256 tokens): each text over 20 tokens is embedded in a " \
           "batch of its own" in result.messages
    assert result.counts == {"ingredient": 4, "recipe": 24} and result.embedded == 28  # none dropped, none twice
    batches = _checkpoint_batches(tmp_path / "out")
    assert sorted(len(b) for b in batches if b[0].startswith("recipe-")) == [1] * 24
    items = list(read_embeddings(tmp_path / "out" / "embeddings_recipes.json"))
    plain = SentenceTransformer(str(minilm_path), device="cpu").encode([r["text"] for r in recipes])
    assert _cos(np.vstack([i.embedding for i in items]), plain).min() > 0.9999


def test_a_budget_that_never_cuts_a_batch_is_said(tmp_path, export, minilm_path):
    input_dir, _, _ = export
    result = generate(opts(tmp_path, input_dir, minilm_path, max_tokens=100_000))  # 5 texts x 256 tokens at most
    assert ("--max-tokens 100000 never cuts a batch: 5 texts (--batch-size) of at most 256 tokens stay within it; "
            "raise --batch-size (e.g. 12500) to let short texts share bigger batches") in result.messages
    assert result.embedded == 28


def test_a_stopped_budget_run_resumes_with_another_budget_without_gaps_or_duplicates(tmp_path, export, minilm_path):
    """Done is decided per text (its content digest in the checkpoint), not per batch: other batch boundaries on
    resume (another --max-tokens, or none) redo nothing and lose nothing."""
    input_dir, recipes, _ = export
    with pytest.raises(KeyboardInterrupt):
        generate(opts(tmp_path, input_dir, minilm_path, batch_size=64, max_tokens=600), progress=StopAfter(3))
    stopped = sum(len(b) for b in _checkpoint_batches(tmp_path / "out"))
    assert 0 < stopped < 28
    again = generate(opts(tmp_path, input_dir, minilm_path, batch_size=64, max_tokens=300))
    assert (again.embedded, again.reused) == (28 - stopped, stopped)
    hashes = [h for path in (tmp_path / "out" / ".checkpoints").glob("*.jsonl")
              for line in path.read_text().splitlines() for h in json.loads(line)["hashes"]]
    assert len(hashes) == len(set(hashes)) == 28
    items = list(read_embeddings(tmp_path / "out" / "embeddings_recipes.json"))
    assert [i.id for i in items] == [r["id"] for r in recipes]
    plain = SentenceTransformer(str(minilm_path), device="cpu").encode([r["text"] for r in recipes])
    assert _cos(np.vstack([i.embedding for i in items]), plain).min() > 0.9999
    third = generate(opts(tmp_path, input_dir, minilm_path))  # count-based batches now: every vector reused
    assert (third.embedded, third.reused) == (0, 28)
