"""The generator's stages, each on its own (digests, reuse from checkpoints, embed-and-write chunks, finish), with
real records, real checkpoint files and the real MiniLM model."""
from __future__ import annotations

import json

import numpy as np
import pytest
from sentence_transformers import SentenceTransformer

from console.generation.checkpoint import Checkpoint, content_digest
from console.files.embfiles import read_embeddings, read_meta
from console.generation.engine import Embedder
from console.errors import InputError
from console.generation.generate import ChunkEmbedder, embed_and_write, finish, open_writers, run_key
from console.generation.reuse import collect_digests, reuse_vectors
from console.generation.scratch import TypeVectors
from console.generation.status import StatusFile
from console.generation.tracker import GenerateResult, Tracker
from console.files.records import Record

KEY = "k" * 16
TEXTS = ["Soto ayam", "Rawon", "Soto ayam", "Gado-gado", "Rawon", "Nasi goreng kampung"]


def _records(texts=TEXTS, type_="recipe"):
    return [Record(f"{type_}-{i}", type_, t, title=t, source="recipes.json", line=i + 1) for i, t in enumerate(texts)]


def _states(tmp_path, records, dim=3, key=KEY):
    tmp_path.mkdir(parents=True, exist_ok=True)
    counts = {}
    for r in records:
        counts[r.type] = counts.get(r.type, 0) + 1
    states = {t: TypeVectors(t, tmp_path, dim) for t in counts}
    collect_digests(records, states, key, counts)
    return states


@pytest.fixture(scope="module")
def minilm(minilm_path):
    return Embedder(str(minilm_path), device="cpu")


def _tracker(counts, events=None, status_path=None):
    return Tracker(GenerateResult(report=None, files=[]), StatusFile(status_path), events.append if events is not None
                   else None, counts)


def test_collect_digests_gives_each_distinct_text_one_row_in_order_of_first_use(tmp_path):
    st = _states(tmp_path, _records())["recipe"]
    assert (st.count, st.rows, st.sources) == (6, 4, {"recipes.json"})
    assert st.pos2row.tolist() == [0, 1, 0, 2, 1, 3]
    assert st.uses.tolist() == [2, 2, 1, 1]
    st.close()


def test_collect_digests_notices_inputs_that_changed_since_validation(tmp_path):
    states = {"recipe": TypeVectors("recipe", tmp_path, 3)}
    with pytest.raises(InputError) as info:
        collect_digests(_records(), states, KEY, {"recipe": 5})
    assert str(info.value).startswith("the input files changed while the run was reading them")


def test_reuse_vectors_takes_this_runs_checkpoint_and_counts_the_records_it_covers(tmp_path):
    with Checkpoint(tmp_path, "recipe", KEY) as cp:  # an earlier attempt finished "Soto ayam" and "Gado-gado"
        cp.append(["recipe-0", "recipe-3"], [content_digest(KEY, t).hex() for t in ("Soto ayam", "Gado-gado")],
                  np.array([[1, 0, 0], [0, 1, 0]], dtype=np.float32))
    st = _states(tmp_path, _records())["recipe"]
    said = []
    with Checkpoint(tmp_path, "recipe", KEY) as cp:
        assert reuse_vectors(st, cp, KEY, [], tmp_path, said.append) == 3  # "Soto ayam" serves two records
    assert said == ["recipe: 3 of 6 vectors reused from the checkpoint"]
    assert st.present.tolist() == [True, False, True, False] and st.done == 3
    np.testing.assert_array_equal(st.get(2), [0, 1, 0])
    st.close()


def test_reuse_vectors_copies_an_earlier_runs_vectors_into_this_checkpoint(tmp_path):
    earlier = tmp_path / "earlier"
    with Checkpoint(earlier, "recipe", KEY) as cp:
        cp.append(["old-1"], [content_digest(KEY, "Rawon").hex()], np.array([[0, 0, 1]], dtype=np.float32))
    out = tmp_path / "out"
    st = _states(out, _records())["recipe"]
    said = []
    with Checkpoint(out, "recipe", KEY) as cp:
        assert reuse_vectors(st, cp, KEY, [earlier], out, said.append) == 2
    assert said == [f"recipe: 1 vectors taken from {earlier}", "recipe: 2 of 6 vectors reused from the checkpoint"]
    [line] = (out / ".checkpoints" / f"recipe-{KEY}.jsonl").read_text().splitlines()
    assert json.loads(line)["ids"] == ["old-1"]  # the earlier run's id: ids are informational, hashes decide
    st.close()


def test_reuse_vectors_ignores_vectors_of_other_dimensions(tmp_path):
    with Checkpoint(tmp_path, "recipe", KEY) as cp:
        cp.append(["recipe-1"], [content_digest(KEY, "Rawon").hex()], np.ones((1, 5), dtype=np.float32))
    st = _states(tmp_path, _records())["recipe"]
    with Checkpoint(tmp_path, "recipe", KEY) as cp:
        assert reuse_vectors(st, cp, KEY, [], tmp_path, print) == 0
    st.close()


def test_embed_and_write_embeds_each_missing_text_once_and_writes_in_input_order(tmp_path, minilm, minilm_path):
    records = _records()
    key = run_key(minilm)
    states = _states(tmp_path, records, dim=minilm.dimensions, key=key)
    events = []
    tracker = _tracker({"recipe": 6}, events)
    writers = open_writers(states, tmp_path, ["jsonl"], minilm.describe())
    tracker.start(states.values(), 2)
    with Checkpoint(tmp_path, "recipe", key) as cp:
        embed_and_write(records, states, {"recipe": cp}, writers, ChunkEmbedder(minilm, key, 2, tracker), 3)
    finish(writers, states, tracker)
    assert tracker.result.embedded == 4 and tracker.done == 6
    # chunk 1 (records 0-2) embeds "Soto ayam" and "Rawon", which serve 4 records; chunk 2 the other two texts
    assert [(e.done, e.batch_size) for e in events] == [(0, 2), (4, 2), (6, 2)]
    items = list(read_embeddings(tmp_path / "embeddings_recipes.jsonl"))
    assert [i.id for i in items] == [r.id for r in records]
    plain = SentenceTransformer(str(minilm_path), device="cpu").encode(TEXTS)
    np.testing.assert_allclose(np.vstack([i.embedding for i in items]), plain, atol=1e-5)
    lines = (tmp_path / ".checkpoints" / f"recipe-{key}.jsonl").read_text().splitlines()
    assert [json.loads(x)["ids"] for x in lines] == [["recipe-0", "recipe-1"], ["recipe-5", "recipe-3"]]  # longest first
    states["recipe"].close()


def test_finish_closes_every_output_and_records_counts_and_paths(tmp_path, minilm):
    states = _states(tmp_path, _records(["Rawon"]), dim=2)
    states["recipe"].put(0, np.array([0.6, 0.8], dtype=np.float32))
    tracker = _tracker({"recipe": 1}, status_path=tmp_path / "status.json")
    writers = open_writers(states, tmp_path, ["json", "npy"], {**minilm.describe(), "dimensions": 2})
    embed_and_write(_records(["Rawon"]), states, {}, writers, None, 10)
    assert not (tmp_path / "embeddings_recipes.json").exists()  # not before the end of the run
    finish(writers, states, tracker)
    assert writers == {} and tracker.result.counts == {"recipe": 1}
    assert [p.name for p in tracker.result.outputs] == ["embeddings_recipes.json", "embeddings_recipes.npy",
                                                          "embeddings_recipes.ids.json", "embeddings_recipes.meta.json"]
    assert json.loads((tmp_path / "status.json").read_text())["outputs"] == [str(p) for p in tracker.result.outputs]
    assert read_meta(tmp_path / "embeddings_recipes.json")["count"] == 1
    states["recipe"].close()
