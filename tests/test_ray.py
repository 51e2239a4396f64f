"""`generate --engine ray` on a local Ray started here (2 logical CPUs, CPU workers of half a CPU each, so that Ray
Data's read tasks always find a CPU): the same vectors in the same order as the local engine, resumable at row
level, a killed worker retried, changed settings never mixing vectors."""
from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import numpy as np
import pytest

ray = pytest.importorskip("ray")

from conftest import StopAfter, read_demo_recipes  # noqa: E402
from console.cli import main  # noqa: E402
from console.files.embfiles import read_embeddings, read_meta  # noqa: E402
from console.errors import OptionError  # noqa: E402
from console.generation.generate import GenerateOptions, generate, run_key  # noqa: E402
from console.generation.rayengine import ModelInfo  # noqa: E402

RAY_OPTS = dict(engine="ray", ray_gpus=0, ray_cpus=0.5)


@pytest.fixture(scope="module")
def local_ray():
    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    yield ray
    ray.shutdown()


def _export(folder: Path, n: int = 30) -> Path:
    recipes = [{"id": f"recipe-{i}", "type": "recipe", "title": r["Title"],
                "text": f"{r['Title']}. Bahan: {r['Ingredients'].replace('--', ', ')}"}
               for i, r in enumerate(read_demo_recipes("ayam", limit=n))]
    ingredients = [{"id": f"ingredient-{w}", "type": "ingredient", "name": w, "text": w}
                   for w in ["ayam", "bawang putih", "kecap manis", "cabai rawit 🌶️", "ayam"]]
    ingredients[-1]["id"] = "ingredient-ayam-2"  # the same text twice: embedded once, written twice
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "recipes.json").write_text(json.dumps(recipes, ensure_ascii=False), encoding="utf-8")
    (folder / "ingredients.json").write_text(json.dumps(ingredients, ensure_ascii=False), encoding="utf-8")
    return folder


def _opts(tmp_path, model, out="ray", **kw) -> GenerateOptions:
    return GenerateOptions(input_dir=tmp_path / "in", output_dir=tmp_path / out, model=str(model), batch_size=4,
                           chunk_size=8, device="cpu", **kw)


def _items(folder: Path, name: str = "embeddings_recipes.json"):
    items = list(read_embeddings(folder / name))
    return [i.id for i in items], np.vstack([i.embedding for i in items])


def _same_as_local(tmp_path, model, out="ray", parts_left=0, **kw) -> None:
    """The Ray run's files hold the local engine's vectors (allclose), ids in input order, each once; no part file
    is left (but `parts_left` of other settings)."""
    local = generate(_opts(tmp_path, model, out="local", **kw))
    for name in ("embeddings_recipes.json", "embeddings_ingredients.json"):
        ids, vectors = _items(tmp_path / out, name)
        local_ids, local_vectors = _items(tmp_path / "local", name)
        assert ids == local_ids and len(set(ids)) == len(ids)
        np.testing.assert_allclose(vectors, local_vectors, atol=1e-5)
    meta, local_meta = read_meta(tmp_path / out / "embeddings_recipes.json"), local.meta
    assert (meta["model"], meta["dimensions"], meta["count"]) == (local_meta["model"], local_meta["dimensions"], 30)
    if parts_left is not None:  # every part taken in
        assert len(list((tmp_path / out / ".ray" / "parts").glob("*/*.parquet"))) == parts_left


def test_cli_engine_ray_gives_the_local_engines_vectors_in_order(tmp_path, local_ray, minilm_path, capsys):
    _export(tmp_path / "in")
    progress = tmp_path / "status.json"
    rc = main(["generate", "--input-dir", str(tmp_path / "in"), "--output-dir", str(tmp_path / "ray"),
               "--model", str(minilm_path), "--device", "cpu", "--batch-size", "4", "--chunk-size", "8",
               "--engine", "ray", "--ray-gpus", "0", "--ray-cpus", "0.5", "--ray-workers", "1",
               "--progress-file", str(progress), "--quiet"])
    assert rc == 0, capsys.readouterr().err
    assert "34 embedded, 0 reused" in capsys.readouterr().out  # 35 records, one text twice
    _same_as_local(tmp_path, minilm_path)
    status = json.loads(progress.read_text())
    assert (status["state"], status["done"], status["total"]) == ("done", 35, 35) and status["rate"] > 0


def test_bad_ray_options_are_refused_before_any_work(tmp_path, local_ray, minilm_path, capsys):
    _export(tmp_path / "in", n=3)
    with pytest.raises(OptionError, match="--ray-workers"):
        generate(_opts(tmp_path, minilm_path, ray_workers="3:1", **{**RAY_OPTS}))
    with pytest.raises(OptionError, match="--ray-gpus"):
        generate(_opts(tmp_path, minilm_path, ray_workers="1", **{**RAY_OPTS, "ray_gpus": 1}))
    with pytest.raises(SystemExit):
        main(["generate", "--engine", "ray", "--ray-workers", "two"])
    assert "--ray-workers" in capsys.readouterr().err
    assert not (tmp_path / "ray").exists()


@pytest.mark.slow
def test_tiny_qwen3_on_ray_equals_the_local_engine(tmp_path, local_ray, tiny_qwen3_path):
    _export(tmp_path / "in")
    generate(_opts(tmp_path, tiny_qwen3_path, ray_workers="2", **RAY_OPTS))
    _same_as_local(tmp_path, tiny_qwen3_path)


@pytest.mark.slow
def test_a_token_budget_run_on_ray_equals_the_local_engine(tmp_path, local_ray, minilm_path):
    _export(tmp_path / "in")
    generate(_opts(tmp_path, minilm_path, ray_workers="2", max_tokens=300, **RAY_OPTS))  # 2-5 texts a batch
    _same_as_local(tmp_path, minilm_path, max_tokens=300)


@pytest.mark.slow
def test_a_stopped_run_started_again_embeds_only_the_rest(tmp_path, local_ray, minilm_path):
    _export(tmp_path / "in")
    with pytest.raises(KeyboardInterrupt):
        generate(_opts(tmp_path, minilm_path, ray_workers="2", **RAY_OPTS), progress=StopAfter(2))
    again = generate(_opts(tmp_path, minilm_path, ray_workers="2", **RAY_OPTS))
    assert again.reused > 0 and again.embedded > 0
    hashes = [h for path in sorted((tmp_path / "ray" / ".checkpoints").glob("*.jsonl"))
              for line in path.read_text().splitlines() for h in json.loads(line)["hashes"]]
    assert len(hashes) == len(set(hashes)) == 34  # every distinct text embedded once over both runs
    _same_as_local(tmp_path, minilm_path)
    third = generate(_opts(tmp_path, minilm_path, ray_workers="2", **RAY_OPTS))
    assert (third.embedded, third.reused) == (0, 35)


def _ray_worker_pids() -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and b"EmbedWorker" in (entry / "cmdline").read_bytes():
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


@pytest.mark.slow
def test_a_killed_worker_is_replaced_and_the_output_is_complete(tmp_path, local_ray, minilm_path):
    _export(tmp_path / "in")
    killed = []

    def kill_one(p) -> None:
        if p.rate is not None and not killed:
            pids = _ray_worker_pids()
            assert pids, "no Ray worker process found"
            os.kill(pids[0], signal.SIGKILL)
            killed.append(pids[0])

    result = generate(_opts(tmp_path, minilm_path, ray_workers="2", **RAY_OPTS), progress=kill_one)
    assert killed and result.counts == {"recipe": 30, "ingredient": 5}
    _same_as_local(tmp_path, minilm_path)


@pytest.mark.slow
def test_changed_settings_ignore_earlier_parts(tmp_path, local_ray, minilm_path):
    _export(tmp_path / "in")
    with pytest.raises(KeyboardInterrupt):
        generate(_opts(tmp_path, minilm_path, ray_workers="2", **RAY_OPTS), progress=StopAfter(1))
    parts = tmp_path / "ray" / ".ray" / "parts"
    earlier = sorted(parts.glob("*/*.parquet"))  # parts finished after the stop: another key's, left alone
    changed = generate(_opts(tmp_path, minilm_path, ray_workers="2", dimensions=128, **RAY_OPTS))
    assert (changed.embedded, changed.reused) == (34, 0)
    assert read_meta(tmp_path / "ray" / "embeddings_recipes.json")["dimensions"] == 128
    _same_as_local(tmp_path, minilm_path, dimensions=128, parts_left=None)
    new_key = run_key(ModelInfo({**changed.meta, "document_prompt": ""}))  # MiniLM has no document prompt
    assert (parts / new_key).is_dir() and not list((parts / new_key).glob("*.parquet"))  # all taken in
    assert set(earlier) <= set(parts.glob("*/*.parquet"))  # the earlier settings' parts: left alone


def test_a_record_that_fails_alone_is_reported_with_its_id_and_the_others_kept(minilm_path):
    """The actor's embedding step (no Ray needed): after an error, the batch's texts are embedded one at a time, so
    only the record that fails on its own fails; its error is kept for the report."""
    from console.generation.engine import Embedder
    from console.generation.rayengine import EmbedWorker

    class FailsOnBoom(Embedder):  # the real model; one text it cannot take
        def _encode_batch(self, texts, prompt):
            if any("BOOM" in t for t in texts):
                raise ValueError("cannot tokenise this text")
            return super()._encode_batch(texts, prompt)

    worker = EmbedWorker.__new__(EmbedWorker)
    worker.embedder, worker.batch_size = FailsOnBoom(str(minilm_path), device="cpu"), 4
    texts = ["nasi goreng", "BOOM", "soto ayam", "rendang sapi"]
    vectors, ok, errors = worker.embed(texts)
    assert ok.tolist() == [True, False, True, True]
    assert list(errors) == [1] and "cannot tokenise this text" in errors[1]
    plain = Embedder(str(minilm_path), device="cpu").encode([texts[i] for i in (0, 2, 3)])
    np.testing.assert_allclose(vectors[[0, 2, 3]], plain, atol=1e-5)


def test_the_workers_batch_with_the_runs_token_budget(tmp_path, minilm_path):
    """--max-tokens reaches every actor (`worker_args` are its constructor's arguments; no Ray needed): the worker
    batches by the budget (a text over it alone) and gives the local engine's vectors."""
    from console.generation.engine import Embedder
    from console.generation.rayengine import EmbedWorker, worker_args

    opts = _opts(tmp_path, minilm_path, max_tokens=20, **RAY_OPTS)
    plain = Embedder(str(minilm_path), device="cpu")
    args = worker_args(opts, run_key(plain), str(tmp_path / "storage"))
    assert (args["max_tokens"], args["batch_size"]) == (20, 4)
    worker = EmbedWorker(**args)
    texts = ["nasi goreng", "soto ayam", "rendang sapi dengan santan, cabai, bawang merah, bawang putih, jahe, "
             "lengkuas, serai, daun jeruk dan kunyit yang dimasak lama"]
    vectors, ok, errors = worker.embed(texts)
    assert ok.all() and not errors
    assert worker.max_tokens == 20  # the budget path ran (the count-based one carries no budget)
    np.testing.assert_allclose(vectors, plain.encode(texts), atol=1e-5)
